"""AdamW with fp32 state, global-norm clipping, and two schedules: warmup + cosine that ends at D,
or warmup-stable-decay (WSD).

Schedule over optimizer updates s = 1..S (update s consumes tokens (s-1)*b .. s*b, b = batch*context,
so update S ends exactly at the token budget D = S b):

    lr(s) = peak * s / W                                            for s <= W (linear warmup)
    lr(s) = floor + (peak - floor) * (1 + cos(pi (s - W) / (S - W))) / 2     for W < s <= S
    floor = peak * floor_ratio  (0.1: Chinchilla's "decay by 10x"), so lr(S) = floor exactly.

WSD (Hagele et al. 2024; Hu et al. 2024, MiniCPM) over updates s = 1..S with K cool-down updates
(K = round(cooldown_fraction * S)), the cool-down starting after update S_c = S - K:

    lr(s) = peak * s / W                                 for s <= W (linear warmup, as above)
    lr(s) = peak                                         for W < s <= S_c (stable)
    lr(s) = floor + (peak - floor) * shape(p),  p = (s - S_c) / K      for S_c < s <= S (cool-down)
    shape(p) = 1 - p ("linear") or 1 - sqrt(p) ("1-sqrt"), so lr(S) = floor exactly.

Two WSD schedules with the same (peak, W) agree on every update up to the earlier cool-down start,
which is what lets a branch resume a constant-rate trunk (K = 0) and cool down from there.

optax passes the number of updates already applied (count = s - 1) to the schedule.
Weight decay applies to matrices only (not to RMSNorm scales).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax


def default_learning_rate(d_model: int) -> float:
    """3e-3 for widths up to 256, then 3e-3 * 256 / d_model (1e-3 at GPT-2 small's 768)."""
    return 3e-3 * min(1.0, 256.0 / d_model)


def warmup_steps(total_steps: int, warmup_fraction: float) -> int:
    """round(fraction * S), at least 1 when the fraction is positive, and at most S - 1."""
    if warmup_fraction <= 0 or total_steps <= 1:
        return 0
    return min(total_steps - 1, max(1, round(warmup_fraction * total_steps)))


def lr_at(step: jax.Array | int, *, peak: float, total_steps: int, warmup: int, floor_ratio: float) -> jax.Array:
    """lr(s) for update number s (1-based); see the module docstring."""
    s = jnp.asarray(step, jnp.float32)
    floor = peak * floor_ratio
    warm = peak * s / max(warmup, 1)
    progress = jnp.clip((s - warmup) / max(total_steps - warmup, 1), 0.0, 1.0)
    cosine = floor + (peak - floor) * 0.5 * (1.0 + jnp.cos(math.pi * progress))
    cosine = jnp.where(s >= total_steps, floor, cosine)  # exactly the floor at D, whatever cos(pi) rounds to
    return jnp.where(s <= warmup, warm, cosine).astype(jnp.float32)


def make_schedule(*, peak: float, total_steps: int, warmup: int, floor_ratio: float) -> optax.Schedule:
    """optax schedule: count (updates already applied) -> lr(count + 1)."""
    return lambda count: lr_at(count + 1, peak=peak, total_steps=total_steps, warmup=warmup, floor_ratio=floor_ratio)


COOLDOWN_SHAPES = ("linear", "1-sqrt")


def cooldown_steps(total_steps: int, cooldown_fraction: float) -> int:
    """K = round(fraction * S), at least 1 when the fraction is positive, at most S."""
    if cooldown_fraction <= 0:
        return 0
    return min(total_steps, max(1, round(cooldown_fraction * total_steps)))


def make_wsd_schedule(*, peak: float, total_steps: int, warmup: int, cooldown: int, floor_ratio: float,
                      shape: str = "linear") -> optax.Schedule:
    """optax schedule (count = s - 1 -> lr(s)) for WSD; see the module docstring. Built with
    ``optax.join_schedules`` from a linear warmup, a constant and the cool-down."""
    if shape not in COOLDOWN_SHAPES:
        raise ValueError(f"cool-down shape {shape!r}: expected one of {COOLDOWN_SHAPES}")
    floor = peak * floor_ratio
    stable_end = total_steps - cooldown  # S_c: updates before the cool-down starts

    def cool(count):  # count = s - 1 - S_c
        p = jnp.clip((jnp.asarray(count, jnp.float32) + 1.0) / max(cooldown, 1), 0.0, 1.0)
        frac = 1.0 - (p if shape == "linear" else jnp.sqrt(p))
        return jnp.where(p >= 1.0, jnp.float32(floor), floor + (peak - floor) * frac).astype(jnp.float32)

    pieces, boundaries = [], []
    if warmup:  # count c -> peak (c + 1) / W
        pieces.append(optax.linear_schedule(peak / warmup, peak, transition_steps=max(warmup - 1, 1)))
        boundaries.append(warmup)
    pieces.append(optax.constant_schedule(peak))
    if cooldown:
        boundaries.append(stable_end)
        pieces.append(cool)
    if len(pieces) == 1:
        return lambda count: jnp.asarray(peak, jnp.float32)
    joined = optax.join_schedules(pieces, boundaries)
    return lambda count: jnp.asarray(joined(count), jnp.float32)


def _is_matrix(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(
    schedule: optax.Schedule, *, weight_decay: float, beta1: float, beta2: float, grad_clip: float
) -> optax.GradientTransformation:
    """clip_by_global_norm(grad_clip) then AdamW(schedule). Moments take the parameters' dtype (fp32)."""
    adamw = optax.adamw(schedule, b1=beta1, b2=beta2, eps=1e-8, weight_decay=weight_decay, mask=_is_matrix)
    return optax.chain(optax.clip_by_global_norm(grad_clip), adamw) if grad_clip > 0 else adamw


def cross_entropy(logits_BxLxV: jax.Array, targets_BxL: jax.Array, z_loss: float = 0.0) -> tuple[jax.Array, jax.Array]:
    """Mean next-token cross-entropy in nats, computed in fp32; plus z_loss * mean(logsumexp^2).

    Returns (objective, cross-entropy): the objective is what is differentiated, the
    cross-entropy is what is reported.
    """
    logits = logits_BxLxV.astype(jnp.float32)
    lse_BxL = jax.nn.logsumexp(logits, axis=-1)
    target_logit_BxL = jnp.take_along_axis(logits, targets_BxL[..., None], axis=-1)[..., 0]
    ce = jnp.mean(lse_BxL - target_logit_BxL)
    return ce + z_loss * jnp.mean(lse_BxL**2), ce
