import jax
import jax.numpy as jnp
import numpy as np
import pytest

from training import optim


@pytest.mark.parametrize("steps,warmup_fraction", [(100, 0.05), (37, 0.1), (5, 0.0), (1, 0.05)])
def test_schedule_reaches_its_floor_exactly_at_the_last_update(steps, warmup_fraction):
    peak, ratio = 3e-3, 0.1
    warmup = optim.warmup_steps(steps, warmup_fraction)
    schedule = optim.make_schedule(peak=peak, total_steps=steps, warmup=warmup, floor_ratio=ratio)
    lrs = np.array([float(schedule(jnp.int32(c))) for c in range(steps)])  # count = updates already applied
    assert lrs[-1] == np.float32(peak * ratio)  # the update that ends at D uses exactly the floor
    if steps > 1:
        assert lrs[-2] > lrs[-1]
    assert np.all(np.diff(lrs[warmup:]) <= 0)  # non-increasing after warmup
    if warmup:  # linear warmup: update s (count s - 1) uses peak * s / W, reaching the peak at s = W
        np.testing.assert_allclose(lrs[:warmup], peak * np.arange(1, warmup + 1) / warmup, rtol=1e-6)
    assert lrs.max() <= peak * (1 + 1e-6)


def test_cross_entropy_matches_log_softmax_and_z_loss_adds_lse_squared():
    logits = jax.random.normal(jax.random.key(0), (2, 3, 5)).astype(jnp.bfloat16)
    targets = jnp.array([[0, 1, 2], [3, 4, 0]], jnp.int32)
    objective, ce = optim.cross_entropy(logits, targets)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    expected = -jnp.mean(jnp.take_along_axis(logp, targets[..., None], -1))
    assert ce.dtype == jnp.float32 and float(ce) == pytest.approx(float(expected), rel=1e-6)
    assert float(objective) == float(ce)
    z_objective, _ = optim.cross_entropy(logits, targets, z_loss=1e-2)
    lse = jax.nn.logsumexp(logits.astype(jnp.float32), -1)
    assert float(z_objective) == pytest.approx(float(ce + 1e-2 * jnp.mean(lse**2)), rel=1e-6)


def test_weight_decay_spares_norm_scales():
    params = {"kernel": jnp.ones((2, 2)), "scale": jnp.ones((2,))}
    tx = optim.make_optimizer(lambda _: 0.1, weight_decay=0.5, beta1=0.9, beta2=0.95, grad_clip=1.0)
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    assert float(updates["kernel"][0, 0]) == pytest.approx(-0.1 * 0.5)
    assert float(updates["scale"][0]) == 0.0
