import math

import pytest
from flax import nnx

from training.model import Transformer, count_params
from training.sizing import Shape, explicit_shape, shape_for_params
from training.spec import SpecError


@pytest.mark.parametrize("layers,width,heads,vocab", [(1, 16, 1, 256), (2, 48, 3, 256), (3, 64, 4, 97), (2, 128, 2, 1000)])
def test_param_count_formula_equals_real_count(layers, width, heads, vocab):
    shape = Shape(layers, width, heads, vocab, context=16)
    model = Transformer(shape, rngs=nnx.Rngs(0))
    assert count_params(model) == shape.n_params_total
    assert count_params(model.embed) == shape.n_params_embedding
    assert shape.n_params_total == shape.n_params_embedding + shape.n_params_non_embedding


@pytest.mark.parametrize("target", [1e4, 3e4, 1e5, 1e6, 1.24e8])
def test_sizing_lands_near_target_with_valid_heads(target):
    vocab = 256 if target < 1e7 else 50304
    shape = shape_for_params(int(target), vocab_size=vocab, context=64)
    assert abs(math.log(shape.n_params_total / target)) < math.log(1.5)
    assert shape.d_model % shape.n_heads == 0 and shape.head_dim % 2 == 0


def test_sizing_follows_the_aspect_ratio_at_scale():
    shape = shape_for_params(124_000_000, vocab_size=50304, context=1024)
    assert (shape.n_layers, shape.d_model, shape.n_heads) == (12, 768, 12)  # GPT-2 small's shape, d/L = 64
    deep = shape_for_params(124_000_000, vocab_size=50304, context=1024, aspect_ratio=32)
    assert deep.n_layers > shape.n_layers


def test_non_embedding_convention_counts_without_embeddings():
    shape = shape_for_params(1_000_000, vocab_size=256, context=64, convention="non_embedding")
    assert abs(math.log(shape.n_params_non_embedding / 1e6)) < math.log(1.5)


def test_flops_per_token_conventions():
    shape = Shape(n_layers=4, d_model=128, n_heads=8, vocab_size=256, context=64)
    L, d, H, T, V, F = 4, 128, 8, 64, 256, 512
    # Appendix F per token, forward: embeddings + logits 4Vd; per layer 8d^2 (QKV+out) + 4dF (MLP)
    # + 4Td (scores and values) + 3HT (softmax); training = 3 x forward.
    assert shape.flops_per_token_appendix_f() == pytest.approx(3 * (4 * V * d + L * (8 * d * d + 4 * d * F + 4 * T * d + 3 * H * T)))
    assert shape.flops_per_token_6n() == 6 * shape.n_params_total
    assert shape.flops_per_token_6n("non_embedding") == 6 * shape.n_params_non_embedding


def test_too_small_a_target_is_a_clear_error():
    with pytest.raises(SpecError, match=r"RunSpec.params=100: too small for any shape"):
        shape_for_params(100, vocab_size=256, context=64)


def test_explicit_shape_needs_whole_even_heads():
    with pytest.raises(SpecError, match="n_heads"):
        explicit_shape(2, 48, 5, vocab_size=256, context=16)
