"""The runner: ``run(spec) -> RunResult``.

One process, one device by default; ``RunSpec.devices`` trains data-parallel over several local
devices (``training.parallel``: batch split, parameters replicated). The model and optimizer live
as one nnx state pytree; the train step is a pure jitted function of (state, batch). Checkpoints
(Orbax) hold that state plus the loss curve, at each evaluation; a run started again with the same
``checkpoint_dir`` resumes from the newest one and, since batch k depends only on (seed, k), reaches
the same final loss (bitwise on CPU).

Warmup-stable-decay: a *trunk* (``schedule="wsd"``, ``cooldown_fraction=0``: constant rate after the
warmup) keeps its checkpoints at ``save_at_tokens`` besides the newest two; a *branch*
(``branch_from`` = the trunk's checkpoint folder, ``branch_at_tokens``) starts from the trunk's
checkpoint at that token count and trains on to its own D with its cool-down. The WSD schedule up to
the cool-down does not depend on D, and batches depend only on (seed, step), so a branch equals a
straight WSD run of the same spec (bitwise on CPU). A branch resumes from its own checkpoints, when it
has some, as any run does.
"""

from __future__ import annotations

import datetime
import logging
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from training import data as data_lib
from training import optim, parallel
from training.model import Transformer
from training.sizing import Shape, explicit_shape, shape_for_params
from training.spec import RunResult, RunSpec, SpecError

# bf16 dense peak FLOP/s per device kind (datasheet, dense, no sparsity); MFU is None elsewhere.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L4": 121e12, "A10G": 125e12}


def peak_flops(device: jax.Device) -> float | None:
    kind = getattr(device, "device_kind", "")
    for name, peak in PEAK_BF16_FLOPS.items():
        if name.lower() in kind.lower().replace("nvidia ", "").split(" ")[0].lower():
            return peak
    return None


def library_versions() -> dict[str, str]:
    import flax
    import orbax.checkpoint

    return {
        "python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__,
        "optax": optax.__version__, "orbax-checkpoint": getattr(orbax.checkpoint, "__version__", "?"),
        "numpy": np.__version__,
    }


@dataclass(frozen=True)
class Plan:
    """Everything a spec resolves to before training starts."""

    shape: Shape
    steps: int
    warmup: int
    peak_lr: float
    eval_steps: tuple[int, ...]  # 1-based update numbers after which the validation loss is scored
    checkpoint_steps: tuple[int, ...]
    cooldown: int = 0  # WSD: updates in the cool-down (the last ``cooldown`` of ``steps``)
    keep_steps: tuple[int, ...] = ()  # WSD trunk: checkpoints kept for branches
    branch_step: int = 0  # WSD branch: the trunk's update count it starts from


def make_plan(spec: RunSpec, vocab_size: int) -> Plan:
    """Resolve shape, step count, schedule and evaluation points; ``SpecError`` if impossible."""
    if spec.n_layers:
        shape = explicit_shape(spec.n_layers, spec.d_model, spec.n_heads, vocab_size=vocab_size, context=spec.context)
    else:
        shape = shape_for_params(
            spec.params, vocab_size=vocab_size, context=spec.context,
            aspect_ratio=spec.aspect_ratio, convention=spec.param_convention,
        )
    steps = spec.tokens // spec.tokens_per_step
    if steps < 1:
        raise SpecError(
            f"RunSpec.tokens={spec.tokens}: below one batch (batch_size * context = {spec.tokens_per_step} tokens)"
        )
    n_evals = min(spec.eval_points, steps)
    eval_steps = sorted({round(steps * (i + 1) / n_evals) for i in range(n_evals)} | {steps})
    b = spec.tokens_per_step
    keep = tuple(sorted({t // b for t in spec.save_at_tokens} - {0}))
    if len(keep) < len(spec.save_at_tokens):
        raise SpecError(f"RunSpec.save_at_tokens={list(spec.save_at_tokens)}: expected distinct token counts of at "
                        f"least one batch ({b} tokens) each")
    ckpt = set(range(spec.checkpoint_every, steps + 1, spec.checkpoint_every)) | {steps} if spec.checkpoint_every else set(eval_steps)
    if spec.warmup_tokens:
        warmup = min(steps - 1, spec.warmup_tokens // b)
    else:
        warmup = optim.warmup_steps(steps, spec.warmup_fraction)
    cooldown = min(optim.cooldown_steps(steps, spec.cooldown_fraction), steps - warmup) if spec.schedule == "wsd" else 0
    branch_step = spec.branch_at_tokens // b
    if spec.branch_from and not 0 < branch_step <= steps - cooldown:
        raise SpecError(f"RunSpec.branch_at_tokens={spec.branch_at_tokens}: expected a token count from one batch ({b}) "
                        f"up to where this run's cool-down starts ({(steps - cooldown) * b} tokens)")
    return Plan(
        shape=shape, steps=steps, warmup=warmup,
        peak_lr=spec.learning_rate or optim.default_learning_rate(shape.d_model),
        eval_steps=tuple(eval_steps), checkpoint_steps=tuple(sorted(ckpt | set(keep))),
        cooldown=cooldown, keep_steps=keep, branch_step=branch_step,
    )


def make_schedule(spec: RunSpec, plan: Plan) -> optax.Schedule:
    """The run's learning-rate schedule (count = updates already applied -> lr)."""
    if spec.schedule == "wsd":
        return optim.make_wsd_schedule(peak=plan.peak_lr, total_steps=plan.steps, warmup=plan.warmup,
                                       cooldown=plan.cooldown, floor_ratio=spec.lr_floor_ratio, shape=spec.cooldown_shape)
    return optim.make_schedule(peak=plan.peak_lr, total_steps=plan.steps, warmup=plan.warmup, floor_ratio=spec.lr_floor_ratio)


def attention_implementation(spec: RunSpec, shape: Shape) -> str:
    """"auto": cuDNN flash attention where it applies (GPU, bf16, head_dim a multiple of 8 up to 128), else XLA."""
    if spec.attention != "auto":
        return spec.attention
    on_gpu = jax.devices()[0].platform == "gpu"
    fits = spec.compute_dtype == "bfloat16" and shape.head_dim % 8 == 0 and shape.head_dim <= 128
    return "cudnn" if on_gpu and fits else "xla"


def build(spec: RunSpec, plan: Plan) -> tuple[Transformer, nnx.Optimizer]:
    model = Transformer(plan.shape, compute_dtype=spec.compute_dtype, attention=attention_implementation(spec, plan.shape),
                        rngs=nnx.Rngs(spec.seed))
    tx = optim.make_optimizer(make_schedule(spec, plan), weight_decay=spec.weight_decay, beta1=spec.beta1, beta2=spec.beta2, grad_clip=spec.grad_clip)
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


def make_steps(graphdef: nnx.GraphDef, z_loss: float, mesh=None):
    """Jitted pure functions: train_step(state, batch) -> (state, ce) and eval_step(state, batch) -> ce.
    With a ``mesh`` (data parallelism) the state is replicated and each batch split over its devices."""

    def loss_fn(model: Transformer, batch_BxL1: jax.Array):
        logits_BxLxV = model(batch_BxL1[:, :-1])
        return optim.cross_entropy(logits_BxLxV, batch_BxL1[:, 1:], z_loss)

    def train_step(state, batch_BxL1):
        model, optimizer = nnx.merge(graphdef, state)
        (_, ce), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, batch_BxL1)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), ce

    def eval_step(state, batch_BxL1):
        model, _ = nnx.merge(graphdef, state)
        return loss_fn(model, batch_BxL1)[1]

    # The old state is donated: its buffers are reused for the new one (halves the state's memory).
    if mesh is None:
        return jax.jit(train_step, donate_argnums=0), jax.jit(eval_step)
    everywhere, split = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    return (jax.jit(train_step, donate_argnums=0, in_shardings=(everywhere, split), out_shardings=(everywhere, everywhere)),
            jax.jit(eval_step, in_shardings=(everywhere, split), out_shardings=everywhere))


_CHECKPOINT_EXPECTED = ("expected the checkpoints this harness wrote for the same spec (shape, optimizer); move the "
                        "folder away (or pass another checkpoint_dir) to start over")


def _checkpoint_manager(directory: str, keep_steps: tuple[int, ...] = (), read_only: bool = False):
    """Orbax's manager for ``directory``: keeps the newest two checkpoints, and those at ``keep_steps``;
    ``read_only`` (a trunk read by a branch) saves and deletes nothing."""
    import orbax.checkpoint as ocp

    path = Path(directory).resolve()
    if path.exists() and not path.is_dir():
        raise SpecError(f"RunSpec.checkpoint_dir={directory!r}: a file, expected a folder for checkpoints")
    if read_only:
        options = ocp.CheckpointManagerOptions(read_only=True, max_to_keep=None, save_interval_steps=0, create=False,
                                               enable_async_checkpointing=False)
    elif keep_steps:
        policies = ocp.checkpoint_managers
        keep = policies.AnyPreservationPolicy([policies.LatestN(2), policies.CustomSteps(list(keep_steps))])
        options = ocp.CheckpointManagerOptions(preservation_policy=keep, enable_async_checkpointing=False, create=True)
    else:
        options = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False, create=True)
    logging.disable(logging.ERROR)  # Orbax logs a damaged metadata file with a traceback; _restore says it
    try:
        return ocp.CheckpointManager(path, options=options, item_names=("state", "meta"))
    except (OSError, ValueError) as err:
        raise SpecError(f"RunSpec.checkpoint_dir={directory!r}: cannot be used ({type(err).__name__}: "
                        f"{_first_line(err)}); {_CHECKPOINT_EXPECTED}") from None
    finally:
        logging.disable(logging.NOTSET)


def _first_line(err: BaseException, limit: int = 200) -> str:
    text = (str(err).strip().splitlines() or [""])[0]
    return text[:limit]


def _save(manager, step: int, state, meta: dict[str, Any]) -> None:
    import orbax.checkpoint as ocp

    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)


def _restore(manager, abstract_state, directory: str = "?", step: int | None = None, field: str = "checkpoint_dir",
             check=None):
    """The newest checkpoint (or the one at ``step``) as (step, state, meta), or None; a damaged,
    truncated or foreign one (another spec's shapes) raises ``SpecError`` naming the folder and step.

    ``check(meta)`` sees the checkpoint's own record before its arrays are read, so a checkpoint that
    another spec wrote is refused by the field that differs (its ``SpecError``), not by Orbax's shape error."""
    import orbax.checkpoint as ocp

    logging.disable(logging.ERROR)  # Orbax logs a damaged file with a traceback; the SpecError below says it
    try:
        step = manager.latest_step() if step is None else step
        if step is None:
            return None
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if not isinstance(meta, dict) or not isinstance(meta.get("curve"), list):
            raise ValueError("its meta is not the harness's record")
        if check is not None:
            check(meta)
        restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
        return step, restored["state"], meta
    except SpecError:
        raise
    except Exception as err:  # noqa: BLE001 -- Orbax, TensorStore and JSON raise many types for a damaged file
        where = f" at step {step}" if step is not None else ""
        raise SpecError(f"RunSpec.{field}={directory!r}: the checkpoint{where} cannot be restored "
                        f"({type(err).__name__}: {_first_line(err)}); {_CHECKPOINT_EXPECTED}") from None
    finally:
        logging.disable(logging.NOTSET)


# Fields a branch may set differently from its trunk: everything else (data, shape, optimizer, seed)
# must be the trunk's, or the branch would not continue the same run.
BRANCH_FREE_FIELDS = {"tokens", "cooldown_fraction", "cooldown_shape", "save_at_tokens", "run_id", "group", "checkpoint_dir",
                      "checkpoint_every", "progress", "eval_points", "branch_from", "branch_at_tokens", "devices"}


def _branch_start(spec: RunSpec, plan: Plan, abstract_state):
    """(step, state, meta) of the trunk checkpoint that ``spec`` branches from; ``SpecError`` naming
    the field when the folder, the token count or the trunk's spec does not fit."""
    if not Path(spec.branch_from).is_dir():
        raise SpecError(f"RunSpec.branch_from={spec.branch_from!r}: no such folder; expected a WSD trunk's checkpoint_dir")
    manager = _checkpoint_manager(spec.branch_from, read_only=True)
    try:
        steps = sorted(manager.all_steps())
        if plan.branch_step not in steps:
            have = [s * spec.tokens_per_step for s in steps]
            raise SpecError(f"RunSpec.branch_at_tokens={spec.branch_at_tokens}: the trunk in {spec.branch_from!r} has no "
                            f"checkpoint at {plan.branch_step * spec.tokens_per_step} tokens; expected one of {have}")
        step, state, meta = _restore(manager, abstract_state, spec.branch_from, plan.branch_step, field="branch_from",
                                     check=lambda meta: _check_trunk(spec, plan, meta))
    finally:
        manager.close()
    trunk = {"run_id": meta.get("run_id", ""), "tokens": step * spec.tokens_per_step, "curve": list(meta["curve"])}
    branch_meta = {"curve": list(meta["curve"]), "window": list(meta.get("window", [])), "wall_time": 0.0,
                   "timed_seconds": 0.0, "timed_tokens": 0, "trunk": trunk}
    return step, state, branch_meta


def _check_trunk(spec: RunSpec, plan: Plan, meta: dict[str, Any]) -> None:
    """``SpecError`` naming the field when the trunk checkpoint in ``spec.branch_from`` is not a WSD
    trunk of the same run as ``spec`` (data, shape, optimizer, seed, warm-up)."""
    trunk_spec = meta.get("spec") or {}
    if trunk_spec.get("schedule") != "wsd":
        raise SpecError(f"RunSpec.branch_from={spec.branch_from!r}: expected a WSD trunk's checkpoints (schedule 'wsd'), "
                        f"found schedule {trunk_spec.get('schedule')!r}")
    differs = _first_difference(spec, trunk_spec, BRANCH_FREE_FIELDS)
    if differs is not None:
        name, mine, theirs = differs
        raise SpecError(f"RunSpec.{name}={mine!r}: expected the trunk's value {theirs!r} (branch_from={spec.branch_from!r})")
    if (meta.get("warmup"), meta.get("peak_lr")) != (plan.warmup, plan.peak_lr):
        raise SpecError(f"RunSpec.warmup_tokens={spec.warmup_tokens}: this branch warms up for {plan.warmup} updates at "
                        f"peak {plan.peak_lr:g}, the trunk for {meta.get('warmup')} at {meta.get('peak_lr')}; expected "
                        "the same (give both the same warmup_tokens)")


# Fields a run resumed from its own checkpoint_dir may set differently from the run that wrote it
# (how it is executed and recorded); a WSD trunk may also train on to more tokens and keep more branch
# points. Everything else must be the writer's, or the checkpoint is another run's.
RESUME_FREE_FIELDS = {"run_id", "group", "checkpoint_dir", "checkpoint_every", "progress", "eval_points", "devices"}
TRUNK_FREE_FIELDS = RESUME_FREE_FIELDS | {"tokens", "save_at_tokens"}


def _first_difference(spec: RunSpec, written: dict[str, Any], free: set[str]):
    """(field, this spec's value, the written spec's) of the first field outside ``free`` where the
    spec that wrote a checkpoint (``meta["spec"]``, JSON: lists for tuples) differs; None if none does."""
    mine = spec.to_dict()
    for name in sorted(set(mine) - free):
        theirs = written.get(name)
        if isinstance(theirs, list):
            theirs = tuple(theirs)
        if theirs != mine[name]:
            return name, mine[name], theirs
    return None


def _check_resume(spec: RunSpec, plan: Plan, meta: dict[str, Any]) -> None:
    """``SpecError`` naming the field when the checkpoint in ``spec.checkpoint_dir`` was written by
    another run: resuming it would silently continue that run (another token count's schedule, say)."""
    written = meta.get("spec")
    where = f"the checkpoint in {spec.checkpoint_dir!r}"
    advice = "move the folder away (or pass another checkpoint_dir) to start over"
    if not isinstance(written, dict):
        raise SpecError(f"RunSpec.checkpoint_dir={spec.checkpoint_dir!r}: {where} does not record the spec that wrote it; "
                        f"expected this harness's checkpoints of the same run; {advice}")
    free = TRUNK_FREE_FIELDS if spec.role == "trunk" and written.get("cooldown_fraction") == 0 else RESUME_FREE_FIELDS
    differs = _first_difference(spec, written, free)
    if differs is not None:
        name, mine, theirs = differs
        raise SpecError(f"RunSpec.{name}={mine!r}: {where} was written by run {meta.get('run_id', '?')!r} "
                        f"with {name}={theirs!r}; expected the same run to resume it; {advice}")
    if (meta.get("warmup"), meta.get("peak_lr")) != (plan.warmup, plan.peak_lr):
        raise SpecError(f"RunSpec.checkpoint_dir={spec.checkpoint_dir!r}: {where} warms up for {meta.get('warmup')} updates "
                        f"at peak {meta.get('peak_lr')}, this run for {plan.warmup} at {plan.peak_lr:g}; {advice}")


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def run(spec: RunSpec, *, stop_after_steps: int | None = None) -> RunResult:
    """Train ``spec`` to its token budget and score the validation loss at D.

    ``stop_after_steps`` stops (with a checkpoint, status "interrupted") once that many updates are
    done, as a preempted job would; running the same spec again resumes it.
    """
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    n_devices = parallel.device_count(spec) if spec.devices != 1 else 1
    mesh = parallel.data_mesh(n_devices) if n_devices > 1 else None
    corpus = data_lib.load_corpus(spec)
    plan = make_plan(spec, corpus.vocab_size)
    model, optimizer = build(spec, plan)
    graphdef, state = nnx.split((model, optimizer))
    del model, optimizer
    train_step, eval_step = make_steps(graphdef, spec.z_loss, mesh)
    val_batches = [jnp.asarray(b) for b in data_lib.eval_batches(corpus.val, n_tokens=spec.eval_tokens, batch_size=spec.batch_size, context=spec.context)]

    meta: dict[str, Any] = {"curve": [], "window": [], "wall_time": 0.0, "timed_seconds": 0.0, "timed_tokens": 0}
    start_step = 0
    manager = _checkpoint_manager(spec.checkpoint_dir, plan.keep_steps) if spec.checkpoint_dir else None
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    found = (_restore(manager, abstract, spec.checkpoint_dir, check=lambda meta: _check_resume(spec, plan, meta))
             if manager is not None else None)
    if found is None and spec.branch_from:
        found = _branch_start(spec, plan, abstract)
    if found is not None:
        start_step, state, meta = found
    # who wrote a checkpoint: what a branch checks its trunk against
    meta.update(run_id=spec.resolved_run_id, spec=spec.to_dict(), warmup=plan.warmup, peak_lr=plan.peak_lr)
    schedule = make_schedule(spec, plan)
    if mesh is not None:
        state = parallel.replicate(state, mesh)

    def evaluate(state) -> float:
        return float(np.mean([float(eval_step(state, b)) for b in val_batches]))

    bar = _progress_bar(spec, plan, start_step)
    status, error, steps_done = "ok", "", start_step
    t_process = time.perf_counter()
    t_mark = None
    pending: list[jax.Array] = []
    log_every = max(1, plan.steps // 200)
    b = spec.tokens_per_step
    for step in range(start_step, plan.steps):
        batch = data_lib.train_batch(corpus.train, seed=spec.seed, step=step, batch_size=spec.batch_size, context=spec.context)
        state, ce = train_step(state, batch)
        pending.append(ce)
        s = steps_done = step + 1
        at_eval, at_ckpt = s in plan.eval_steps, s in plan.checkpoint_steps
        if not (s % log_every == 0 or at_eval or at_ckpt or s == start_step + 1 or s == stop_after_steps):
            continue
        # Read the losses back, but leave the newest step running on the device while the host
        # prepares the next batch, unless this step is evaluated, saved, or ends the timing-free start.
        drain = at_eval or at_ckpt or s == stop_after_steps or t_mark is None
        ready, pending = (pending, []) if drain else (pending[:-1], pending[-1:])
        if not ready:
            continue
        losses = [float(x) for x in ready]  # waits for the device
        now = time.perf_counter()
        if t_mark is not None:  # the first step of a process (compilation) is not timed
            meta["timed_seconds"] += now - t_mark
            meta["timed_tokens"] += len(ready) * b
        meta["window"] = (meta["window"] + losses)[-max(log_every, 10):]  # recent train losses, for the curve
        if not all(math.isfinite(x) for x in losses):
            status, error = "failed", f"training loss became {losses[-1]} by step {s} ({s * b} tokens)"
            break
        if bar is not None:
            bar.update(len(losses) * b)
            rate = meta["timed_tokens"] / meta["timed_seconds"] if meta["timed_seconds"] else 0.0
            bar.set_postfix(loss=f"{losses[-1]:.4f}", tok_s=f"{rate:,.0f}", refresh=False)
        if at_eval:
            val = evaluate(state)
            lr = float(schedule(s - 1))
            meta["curve"].append({"step": s, "tokens": s * b, "lr": lr, "train_loss": float(np.mean(meta["window"])), "val_loss": val if math.isfinite(val) else None})
            if not math.isfinite(val):
                status, error = "failed", f"validation loss became {val} at step {s}"
                break
        if manager is not None and (at_ckpt or s == stop_after_steps):
            _save(manager, s, state, {**meta, "wall_time": meta["wall_time"] + time.perf_counter() - t_process})
        if s == stop_after_steps and s < plan.steps:
            status = "interrupted"
            break
        t_mark = time.perf_counter()
    if bar is not None:
        bar.close()
    if manager is not None:
        manager.wait_until_finished()
        manager.close()
    return _result(spec, plan, corpus, meta, status, error, steps_done, start_step, time.perf_counter() - t_process, started,
                   n_devices)


def _progress_bar(spec: RunSpec, plan: Plan, start_step: int):
    if not spec.progress:
        return None
    from tqdm.auto import tqdm

    total = plan.steps * spec.tokens_per_step
    return tqdm(total=total, initial=start_step * spec.tokens_per_step, unit="tok", unit_scale=True, file=sys.stderr,
                desc=f"N={plan.shape.n_params(spec.param_convention):.3g}", dynamic_ncols=True, mininterval=0.5)


def _result(spec, plan, corpus, meta, status, error, steps_done, start_step, seconds, started, n_devices=1) -> RunResult:
    shape = plan.shape
    N = shape.n_params(spec.param_convention)
    D = plan.steps * spec.tokens_per_step
    curve = meta["curve"]
    final = curve[-1] if curve and curve[-1]["step"] == plan.steps and status == "ok" else None
    loss = _finite_or_none(final["val_loss"]) if final else None
    tokens_per_s = meta["timed_tokens"] / meta["timed_seconds"] if meta["timed_seconds"] > 0 else None
    device = jax.devices()[0]
    peak = peak_flops(device)
    bpb = loss / math.log(2) / corpus.bytes_per_token if loss is not None and math.isfinite(corpus.bytes_per_token) else None
    trunk = meta.get("trunk") or {}
    branch_tokens = trunk.get("tokens", 0) if spec.branch_from else 0
    return RunResult(
        schedule=spec.schedule, cooldown_shape=spec.cooldown_shape if spec.schedule == "wsd" else "",
        cooldown_tokens=plan.cooldown * spec.tokens_per_step, role=spec.role, trunk_id=trunk.get("run_id", ""),
        branch_tokens=branch_tokens, C_own=6.0 * N * (D - branch_tokens), trunk_curve=list(trunk.get("curve", [])),
        run_id=spec.resolved_run_id, status=status, error=error, loss=loss, bits_per_byte=bpb,
        train_loss=_finite_or_none(final["train_loss"]) if final else None,
        N=N, param_convention=spec.param_convention, n_params_total=shape.n_params_total,
        n_params_embedding=shape.n_params_embedding, n_params_non_embedding=shape.n_params_non_embedding,
        D=D, C=6.0 * N * D, C_appendix_f=shape.flops_per_token_appendix_f() * D,
        flops_per_token_6n=shape.flops_per_token_6n(spec.param_convention),
        flops_per_token_appendix_f=shape.flops_per_token_appendix_f(),
        n_layers=shape.n_layers, d_model=shape.d_model, n_heads=shape.n_heads, d_ff=shape.d_ff,
        context=spec.context, vocab_size=shape.vocab_size, batch_size=spec.batch_size,
        steps=plan.steps, steps_done=steps_done, learning_rate=plan.peak_lr, seed=spec.seed,
        corpus_id=corpus.corpus_id, corpus_hash=corpus.corpus_hash,
        wall_time=meta["wall_time"] + seconds, tokens_per_s=tokens_per_s,
        mfu=tokens_per_s * shape.flops_per_token_nanogpt() / (peak * n_devices) if tokens_per_s and peak else None,
        device=f"{device.platform}:{getattr(device, 'device_kind', '?')}" + (f" x{n_devices}" if n_devices > 1 else ""),
        versions=library_versions(),
        resumed_from_step=start_step, group=spec.group, curve=curve, spec=spec.to_dict(),
        started_at=started, finished_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
