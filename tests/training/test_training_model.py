import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from training.model import Transformer, rotary
from training.sizing import Shape

SHAPE = Shape(n_layers=2, d_model=32, n_heads=2, vocab_size=256, context=16)


@pytest.mark.slow
def test_future_tokens_cannot_change_earlier_logits():
    model = Transformer(SHAPE, compute_dtype="float32", rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 256, dtype=jnp.int32)
    changed = tokens.at[:, 9:].set((tokens[:, 9:] + 7) % 256)
    before, after = model(tokens), model(changed)
    np.testing.assert_array_equal(before[:, :9], after[:, :9])
    assert not np.allclose(before[:, 9:], after[:, 9:])  # the change is visible from position 9 on


def test_rotary_preserves_norms_and_encodes_relative_position():
    q = jax.random.normal(jax.random.key(0), (1, 8, 2, 16))
    rq = rotary(q)
    np.testing.assert_allclose(jnp.linalg.norm(rq, axis=-1), jnp.linalg.norm(q, axis=-1), rtol=1e-5)
    # the same vector at every position: <R_i q, R_j q> depends only on i - j
    same = jnp.broadcast_to(q[:, :1], q.shape)
    r = rotary(same)[0, :, 0]
    dots = r @ r.T
    np.testing.assert_allclose(dots[0, 2], dots[3, 5], rtol=1e-5)


def test_bf16_compute_with_fp32_params_and_optimizer_state():
    model = Transformer(SHAPE, compute_dtype="bfloat16", rngs=nnx.Rngs(0))
    tokens = jnp.zeros((2, 16), jnp.int32)
    assert model(tokens).dtype == jnp.bfloat16
    # every matmul in the forward pass runs on bf16 operands
    jaxpr = jax.make_jaxpr(lambda t: model(t))(tokens)
    dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
    assert dots and all(v.aval.dtype == jnp.bfloat16 for e in dots for v in e.invars)
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert params and all(p.dtype == jnp.float32 for p in params)
    optimizer = nnx.Optimizer(model, optax.adamw(1e-3), wrt=nnx.Param)
    floats = [x for x in jax.tree.leaves(nnx.state(optimizer, nnx.OptState)) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and all(x.dtype == jnp.float32 for x in floats)


@pytest.mark.slow
def test_one_hot_and_gather_lookups_agree_in_values_and_gradients():
    tokens = jax.random.randint(jax.random.key(2), (2, 16), 0, 256, dtype=jnp.int32)

    def loss_and_grad(lookup):
        model = Transformer(SHAPE, compute_dtype="float32", embed_lookup=lookup, rngs=nnx.Rngs(0))
        loss = lambda m: jnp.mean(m(tokens) ** 2)  # noqa: E731
        return nnx.value_and_grad(loss)(model)

    (loss_g, grad_g), (loss_o, grad_o) = loss_and_grad("gather"), loss_and_grad("one_hot")
    np.testing.assert_allclose(loss_o, loss_g, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grad_g), jax.tree.leaves(grad_o), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-7)
    assert Transformer(SHAPE, rngs=nnx.Rngs(0)).one_hot_lookup  # "auto" at a byte vocabulary
    big = Shape(n_layers=1, d_model=8, n_heads=1, vocab_size=50304, context=4)
    assert not Transformer(big, rngs=nnx.Rngs(0)).one_hot_lookup
