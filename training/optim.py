"""AdamW with fp32 state, global-norm clipping and a warmup + cosine schedule that ends at D.

Schedule over optimizer updates s = 1..S (update s consumes tokens (s-1)*b .. s*b, b = batch*context,
so update S ends exactly at the token budget D = S b):

    lr(s) = peak * s / W                                            for s <= W (linear warmup)
    lr(s) = floor + (peak - floor) * (1 + cos(pi (s - W) / (S - W))) / 2     for W < s <= S
    floor = peak * floor_ratio  (0.1: Chinchilla's "decay by 10x"), so lr(S) = floor exactly.

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
