"""What goes in (``RunSpec``) and what comes out (``RunResult``) of one training run.

Both are plain dataclasses of JSON-able values, so a run can be described on a command line, sent
to another process and stored as a row without any of this package installed on the reader's side.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


SCHEDULES = ("cosine", "wsd")
COOLDOWN_SHAPES = ("linear", "1-sqrt")  # training.optim.COOLDOWN_SHAPES (kept here: no JAX import)
# Fields added with WSD: left out of the derived run_id at their defaults.
WSD_FIELDS = ("warmup_tokens", "schedule", "cooldown_fraction", "cooldown_shape", "save_at_tokens", "branch_from",
              "branch_at_tokens")


class SpecError(ValueError):
    """A run specification that cannot be run. The message names the field and what was expected."""


@dataclass(frozen=True)
class RunSpec:
    """One training run: a target size N (parameters) trained on D tokens.

    The shape (depth, width, heads) comes from ``training.sizing.shape_for_params`` unless all of
    ``n_layers``, ``d_model`` and ``n_heads`` are given. The run trains for
    ``steps = tokens // (batch_size * context)`` optimizer steps; the recorded D is exactly
    ``steps * batch_size * context`` and the learning-rate schedule reaches its floor on the last step.
    """

    params: int = 0  # target parameter count N (by ``param_convention``); 0 when the shape is given
    tokens: int = 0  # token budget D
    seed: int = 0
    # data
    corpus: str = "stdlib"  # "stdlib", a text file or folder, or a .bin token file (nanoGPT style)
    tokenizer: str = "byte"  # "byte" (256 symbols) or "bpe" (needs the `tokenizers` package)
    vocab_size: int = 0  # BPE vocabulary, or the vocabulary of a token file; 0 = from the tokenizer
    token_dtype: str = "uint16"  # element type of a .bin token file: "uint16" or "uint32"
    val_fraction: float = 0.1  # share of documents (or of a single file's tail) held out
    eval_tokens: int = 32768  # validation tokens scored for each evaluation
    eval_points: int = 8  # evaluations along the run (the last one is at D); 0 = only at the end
    # shape
    context: int = 128
    batch_size: int = 16
    aspect_ratio: float = 64.0  # target d_model / n_layers for the sizing rule
    param_convention: str = "total"  # which count is N: "total" or "non_embedding"
    n_layers: int = 0
    d_model: int = 0
    n_heads: int = 0
    # optimizer (AdamW, fp32 state) and schedule (linear warmup, cosine to lr/10 at D)
    learning_rate: float = 0.0  # peak; 0 = 3e-3 * min(1, 256 / d_model)
    lr_floor_ratio: float = 0.1
    warmup_fraction: float = 0.05
    warmup_tokens: int = 0  # > 0: warmup of warmup_tokens // (batch_size * context) updates, whatever D
    # warmup-stable-decay (``schedule="wsd"``): trunks (cooldown_fraction=0) and branches
    schedule: str = "cosine"  # "cosine" or "wsd" (warmup, constant peak, cool-down to the floor)
    cooldown_fraction: float = 0.2  # wsd: share of the updates spent cooling down; 0 = a constant-rate trunk
    cooldown_shape: str = "linear"  # wsd: "linear" or "1-sqrt"
    save_at_tokens: tuple[int, ...] = ()  # wsd trunk: keep checkpoints at these token counts (branch points)
    branch_from: str = ""  # wsd branch: the trunk's checkpoint_dir
    branch_at_tokens: int = 0  # wsd branch: the trunk checkpoint (token count) to resume and cool down from
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    z_loss: float = 0.0  # weight of mean(logsumexp(logits)^2); 1e-4 is a common choice
    compute_dtype: str = "bfloat16"  # activations and matmuls; parameters are always float32
    attention: str = "auto"  # "xla", "cudnn" (flash attention on GPU), or "auto" (cudnn on GPU in bf16)
    devices: int = 1  # local devices, data-parallel (batch split, parameters replicated); 0 = all
    # bookkeeping
    run_id: str = ""  # default: derived from the spec
    group: str = "training"
    checkpoint_dir: str = ""  # "" = no checkpoints
    checkpoint_every: int = 0  # steps between checkpoints; 0 = at each evaluation
    progress: bool = True

    def __post_init__(self) -> None:
        self._check_branch_fields()
        for name in ("params", "tokens", "vocab_size", "n_layers", "d_model", "n_heads", "seed", "devices",
                     "warmup_tokens", "branch_at_tokens"):
            value = getattr(self, name)
            if isinstance(value, float):  # 1e6 from JSON or Python: fine when whole
                if value != int(value):
                    raise SpecError(f"RunSpec.{name}={value!r}: expected a whole number")
                object.__setattr__(self, name, int(value))
        checks = [
            ("tokens", self.tokens > 0, "a positive token budget D"),
            ("seed", self.seed >= 0, "a non-negative integer"),
            ("tokenizer", self.tokenizer in ("byte", "bpe"), '"byte" or "bpe"'),
            ("token_dtype", self.token_dtype in ("uint16", "uint32"), '"uint16" or "uint32"'),
            ("val_fraction", 0.0 < self.val_fraction < 1.0, "a fraction in (0, 1)"),
            ("eval_tokens", self.eval_tokens >= self.context, f"at least one context ({self.context})"),
            ("eval_points", self.eval_points >= 0, "a non-negative integer"),
            ("context", self.context >= 2, "at least 2"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("aspect_ratio", self.aspect_ratio > 0, "a positive number"),
            ("param_convention", self.param_convention in ("total", "non_embedding"), '"total" or "non_embedding"'),
            ("learning_rate", self.learning_rate >= 0, "a non-negative number (0 = default rule)"),
            ("lr_floor_ratio", 0.0 <= self.lr_floor_ratio <= 1.0, "a fraction in [0, 1]"),
            ("warmup_fraction", 0.0 <= self.warmup_fraction < 1.0, "a fraction in [0, 1)"),
            ("grad_clip", self.grad_clip >= 0, "a non-negative number (0 = no clipping)"),
            ("z_loss", self.z_loss >= 0, "a non-negative number"),
            ("compute_dtype", self.compute_dtype in ("bfloat16", "float32"), '"bfloat16" or "float32"'),
            ("attention", self.attention in ("auto", "xla", "cudnn"), '"auto", "xla" or "cudnn"'),
            ("checkpoint_every", self.checkpoint_every >= 0, "a non-negative integer"),
            ("devices", self.devices >= 0, "a non-negative integer (0 = all local devices)"),
            ("warmup_tokens", self.warmup_tokens >= 0, "a non-negative integer (0 = warmup_fraction)"),
            ("schedule", self.schedule in SCHEDULES, " or ".join(f'"{x}"' for x in SCHEDULES)),
            ("cooldown_fraction", 0.0 <= self.cooldown_fraction <= 1.0, "a fraction in [0, 1]"),
            ("cooldown_shape", self.cooldown_shape in COOLDOWN_SHAPES, " or ".join(f'"{x}"' for x in COOLDOWN_SHAPES)),
            ("save_at_tokens", all(0 < t <= self.tokens for t in self.save_at_tokens),
             f"token counts in (0, tokens={self.tokens}]"),
            ("save_at_tokens", not self.save_at_tokens or (self.schedule == "wsd" and bool(self.checkpoint_dir)),
             'schedule="wsd" and a checkpoint_dir (a trunk keeps its branch points there)'),
            ("branch_from", not self.branch_from or self.schedule == "wsd", 'only with schedule="wsd"'),
            ("branch_from", not self.branch_from or self.branch_from != self.checkpoint_dir,
             "a trunk's checkpoint_dir other than this branch's own checkpoint_dir"),
            ("branch_at_tokens", (self.branch_at_tokens > 0) == bool(self.branch_from),
             "a positive token count exactly when branch_from is given"),
            ("branch_at_tokens", self.branch_at_tokens < self.tokens, f"fewer than tokens={self.tokens}"),
            ("warmup_tokens", self.role == "run" or self.warmup_tokens > 0 or self.warmup_fraction == 0,
             "a positive warmup in tokens for a WSD trunk or branch (a warmup_fraction would change with D, "
             "so a trunk extended later or its branches would warm up differently)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise SpecError(f"RunSpec.{name}={getattr(self, name)!r}: expected {expected}")
        shape = (self.n_layers, self.d_model, self.n_heads)
        if any(shape) and not all(shape):
            raise SpecError(f"RunSpec shape n_layers/d_model/n_heads={shape}: give all three or none")
        if self.devices > 1 and self.batch_size % self.devices:
            raise SpecError(f"RunSpec.batch_size={self.batch_size}: expected a multiple of devices={self.devices}")
        if not any(shape) and self.params <= 0:
            raise SpecError(f"RunSpec.params={self.params!r}: expected a positive target N (or an explicit shape)")

    def _check_branch_fields(self) -> None:
        """``save_at_tokens`` from JSON is a list: make it a sorted tuple of whole numbers."""
        values = self.save_at_tokens
        if isinstance(values, (int, float)):
            values = (values,)
        if not isinstance(values, (list, tuple)) or not all(isinstance(v, (int, float)) and v == int(v) for v in values):
            raise SpecError(f"RunSpec.save_at_tokens={self.save_at_tokens!r}: expected a list of whole token counts")
        object.__setattr__(self, "save_at_tokens", tuple(sorted({int(v) for v in values})))

    @property
    def role(self) -> str:
        """"branch" (resumes a trunk), "trunk" (WSD without cool-down) or "run"."""
        if self.branch_from:
            return "branch"
        return "trunk" if self.schedule == "wsd" and self.cooldown_fraction == 0 else "run"

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.context

    @property
    def resolved_run_id(self) -> str:
        """``run_id`` if given, else ``N<params>-D<tokens>-s<seed>-<hash of the spec>`` (how the run
        is executed, ``progress``, ``checkpoint_dir`` and ``devices``, is not part of the hash)."""
        if self.run_id:
            return self.run_id
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        fields = {k: v for k, v in self.to_dict().items() if k not in ("run_id", "progress", "checkpoint_dir", "devices")
                  and not (k in WSD_FIELDS and v == defaults[k])}  # cosine runs keep the ids they had
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]
        return f"N{self.params}-D{self.tokens}-s{self.seed}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"RunSpec: unknown field(s) {unknown}; known fields are {sorted(known)}")
        return cls(**data)


@dataclass
class RunResult:
    """The measured outcome of a run. ``loss`` is the final validation loss in nats per token.

    ``status`` is "ok", "failed" (a NaN/Inf loss or an error mid-run; see ``error``) or
    "interrupted" (stopped before D on purpose; resumable from its checkpoint).
    """

    run_id: str
    status: str
    loss: float | None  # validation nats/token at D
    bits_per_byte: float | None
    train_loss: float | None  # mean training loss over the last logged window
    N: int  # parameters under ``param_convention``
    param_convention: str
    n_params_total: int
    n_params_embedding: int
    n_params_non_embedding: int
    D: int  # tokens trained (steps * batch_size * context)
    C: float  # 6 N D
    C_appendix_f: float  # Chinchilla Appendix F FLOPs per token (forward + backward) times D
    flops_per_token_6n: float
    flops_per_token_appendix_f: float
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    context: int
    vocab_size: int
    batch_size: int
    steps: int
    steps_done: int
    learning_rate: float
    seed: int
    corpus_id: str
    corpus_hash: str
    wall_time: float  # seconds of this process's training loop (compilation included)
    tokens_per_s: float | None  # measured after the first (compiling) step
    mfu: float | None  # (6N + 12 L d T) tokens/s over the device's bf16 peak, when the peak is known
    device: str
    versions: dict[str, str]
    resumed_from_step: int = 0
    # schedule; for WSD branches, the trunk they resumed
    schedule: str = "cosine"
    cooldown_shape: str = ""  # wsd only
    cooldown_tokens: int = 0  # tokens trained while cooling down (0 for cosine runs and trunks)
    role: str = "run"  # "run", "trunk" or "branch"
    trunk_id: str = ""  # branch: the trunk's run_id
    branch_tokens: int = 0  # branch: the trunk's token count it resumed from
    C_own: float = 0.0  # 6 N x the tokens this run trained itself (a branch: D - branch_tokens)
    trunk_curve: list[dict[str, float]] = field(default_factory=list)  # branch: the trunk's curve up to the branch
    error: str = ""
    group: str = "training"
    source: str = "training"
    curve: list[dict[str, float]] = field(default_factory=list)  # {step, tokens, lr, train_loss, val_loss}
    spec: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False, default=str)
