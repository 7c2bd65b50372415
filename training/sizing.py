"""From a target parameter count N to a transformer shape, with exact counts and FLOPs per token.

The model (``training.model``) is a decoder-only transformer with tied input/output embeddings,
no biases, RMSNorm scales, d_ff = 4 d_model and d_model = n_heads * head_dim. Its exact counts are

    embedding      = V d
    non_embedding  = L (4 d^2 + 2 d d_ff + 2 d) + d      (attention q,k,v,o; MLP in,out; 2 norms; final norm)
    total          = embedding + non_embedding

Sizing rule (aspect ratio, after Chinchilla's table of shapes, where d_model / n_layers is 40-128):
for every depth L, solve the width d whose count matches the target N, round it to the width grid
(multiples of 16 below 256 with head_dim 16; multiples of 64 from 256 on with head_dim 64), and keep
the depth whose d / L is closest (in log) to the target aspect ratio (64 by default). At tiny N this
degenerates to 1-2 layers, which is the only way to spend a 1e4-parameter budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from training.spec import SpecError

MIN_WIDTH = 16
MAX_LAYERS = 256
FFN_MULT = 4


@dataclass(frozen=True)
class Shape:
    n_layers: int
    d_model: int
    n_heads: int
    vocab_size: int
    context: int

    @property
    def d_ff(self) -> int:
        return FFN_MULT * self.d_model

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_params_embedding(self) -> int:
        return self.vocab_size * self.d_model

    @property
    def n_params_non_embedding(self) -> int:
        d, L = self.d_model, self.n_layers
        return L * (4 * d * d + 2 * d * self.d_ff + 2 * d) + d

    @property
    def n_params_total(self) -> int:
        return self.n_params_embedding + self.n_params_non_embedding

    def n_params(self, convention: str) -> int:
        """N under a convention: "total" (Chinchilla) or "non_embedding" (Kaplan)."""
        return {"total": self.n_params_total, "non_embedding": self.n_params_non_embedding}[convention]

    def flops_per_token_6n(self, convention: str = "total") -> float:
        """Training FLOPs per token by the 6N rule (2N forward + 4N backward)."""
        return 6.0 * self.n_params(convention)

    def flops_per_token_appendix_f(self) -> float:
        """Chinchilla (Hoffmann et al. 2022) Appendix F, forward + backward (= 3 x forward), per token.

        Forward per sequence of length T, with key_size * heads = d:
          embeddings 2 T V d; per layer: QKV 2*3 T d d, logits 2 T T d, softmax 3 H T T,
          softmax @ values 2 T T d, output projection 2 T d d, MLP 2 T (d d_ff + d_ff d);
          final logits 2 T d V.
        """
        T, V, d, H, L = self.context, self.vocab_size, self.d_model, self.n_heads, self.n_layers
        attention = 2 * 3 * T * d * d + 2 * T * T * d + 3 * H * T * T + 2 * T * T * d + 2 * T * d * d
        dense = 2 * T * (d * self.d_ff + self.d_ff * d)
        forward = 2 * T * V * d + L * (attention + dense) + 2 * T * d * V
        return 3.0 * forward / T

    def flops_per_token_nanogpt(self) -> float:
        """nanoGPT's MFU count: 6 N_total + 12 L d T (attention scores and values, fwd + bwd)."""
        return 6.0 * self.n_params_total + 12.0 * self.n_layers * self.d_model * self.context


def head_dim_for(width: int) -> int:
    return 16 if width < 256 else 64


def round_width(width: float) -> list[int]:
    """The grid widths just below and above ``width`` (at least MIN_WIDTH)."""
    step = 16 if width < 256 else 64
    low = max(MIN_WIDTH, int(width // step) * step)
    high = low + (16 if low < 256 else 64)
    return [low, high]


def shape_for_params(
    target: int, *, vocab_size: int, context: int, aspect_ratio: float = 64.0, convention: str = "total"
) -> Shape:
    """The shape whose N (by ``convention``) is near ``target`` with d/L nearest ``aspect_ratio``.

    Among the depths L = 1..MAX_LAYERS, each gets the grid width whose count is closest to the target
    in log; depths whose best count misses the target by more than a factor 1.5 are discarded (the
    grid is coarse at tiny widths); of the rest, the one with log(d/L) nearest log(aspect_ratio) wins.
    """
    smallest = Shape(1, MIN_WIDTH, 1, vocab_size, context)
    if target < smallest.n_params(convention) / 1.5:
        raise SpecError(
            f"RunSpec.params={target}: too small for any shape; the smallest model (1 layer, width "
            f"{MIN_WIDTH}, vocabulary {vocab_size}) has {smallest.n_params(convention)} {convention} parameters"
        )
    best: tuple[float, Shape] | None = None
    for L in range(1, MAX_LAYERS + 1):
        # Solve a d^2 + b d = target for the continuous width, then try the grid points around it.
        a = L * (4 + 2 * FFN_MULT)
        b = 2 * L + 1 + (vocab_size if convention == "total" else 0)
        d_star = (-b + math.sqrt(b * b + 4 * a * target)) / (2 * a)
        candidates = []
        for d in round_width(d_star):
            shape = Shape(L, d, d // head_dim_for(d), vocab_size, context)
            candidates.append((abs(math.log(shape.n_params(convention) / target)), shape))
        miss, shape = min(candidates, key=lambda c: c[0])
        if miss > math.log(1.5):
            continue
        score = abs(math.log(shape.d_model / L / aspect_ratio))
        if best is None or score < best[0]:
            best = (score, shape)
    if best is None:
        raise SpecError(f"RunSpec.params={target}: no shape with up to {MAX_LAYERS} layers comes within 1.5x")
    return best[1]


def explicit_shape(n_layers: int, d_model: int, n_heads: int, *, vocab_size: int, context: int) -> Shape:
    """A user-given shape, checked: d_model must split evenly into heads with an even head_dim (rotary)."""
    if d_model % n_heads or (d_model // n_heads) % 2:
        raise SpecError(
            f"RunSpec.d_model={d_model}, n_heads={n_heads}: expected d_model divisible by n_heads "
            "with an even head dimension (rotary embeddings rotate pairs)"
        )
    return Shape(n_layers, d_model, n_heads, vocab_size, context)
