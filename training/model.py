"""Decoder-only transformer in flax.nnx: pre-norm RMSNorm, rotary positions, no biases, tied embeddings.

Parameters are float32; activations and matmuls run in ``compute_dtype`` (bfloat16 by default).
Tensor names carry their shapes: B batch, L sequence, D d_model, H heads, K head_dim, F d_ff, V vocab.

    h_0 = E[tokens]   (a row gather; or one_hot(tokens) @ E for small vocabularies, see ``embed_lookup``)
    h_l+1 = h_l + Attn(RMSNorm(h_l));  h_l+1 = h_l+1 + MLP(RMSNorm(h_l+1))
    logits = RMSNorm(h_L) E^T
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from training.sizing import Shape

Dtype = jnp.dtype

# Up to this vocabulary size "auto" looks embeddings up as one_hot(tokens) @ E. A gather's gradient is
# a scatter-add, and on a GPU a byte-level vocabulary sends tens of thousands of atomic adds per step
# into a few hundred rows; the one-hot product's gradient is a plain matmul (2 B L V d FLOPs, small
# at such V). experiments/bench_embedding.py, one H200, 7 x 512 byte-level model on stdlib text:
# train step 521k tokens/s with the gather, 2.20M with the one-hot product.
ONE_HOT_MAX_VOCAB = 4096


def rotary(x_BxLxHxK: jax.Array, base: float = 10000.0) -> jax.Array:
    """Rotary position embedding: rotate pairs (x_i, x_{i+K/2}) by angle pos * base^(-2i/K), in fp32."""
    L, K = x_BxLxHxK.shape[1], x_BxLxHxK.shape[3]
    freq_K2 = base ** (-jnp.arange(0, K // 2, dtype=jnp.float32) * 2.0 / K)
    angle_LxK2 = jnp.arange(L, dtype=jnp.float32)[:, None] * freq_K2[None, :]
    sin, cos = jnp.sin(angle_LxK2)[None, :, None, :], jnp.cos(angle_LxK2)[None, :, None, :]
    x = x_BxLxHxK.astype(jnp.float32)
    x1, x2 = x[..., : K // 2], x[..., K // 2 :]
    out = jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return out.astype(x_BxLxHxK.dtype)


def _dense(d_in: int, d_out: int, dtype: Dtype, rngs: nnx.Rngs, std: float) -> nnx.Linear:
    init = nnx.initializers.normal(stddev=std)
    return nnx.Linear(d_in, d_out, use_bias=False, dtype=dtype, param_dtype=jnp.float32, kernel_init=init, rngs=rngs)


class Attention(nnx.Module):
    """Causal multi-head self-attention through ``jax.nn.dot_product_attention``."""

    def __init__(self, shape: Shape, dtype: Dtype, rngs: nnx.Rngs, implementation: str | None = None):
        d, std = shape.d_model, 0.02
        self.n_heads, self.head_dim, self.implementation = shape.n_heads, shape.head_dim, implementation
        self.qkv = _dense(d, 3 * d, dtype, rngs, std)
        self.out = _dense(d, d, dtype, rngs, std / (2 * shape.n_layers) ** 0.5)

    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        B, L, _ = x_BxLxD.shape
        qkv_BxLx3xHxK = self.qkv(x_BxLxD).reshape(B, L, 3, self.n_heads, self.head_dim)
        q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = (qkv_BxLx3xHxK[:, :, i] for i in range(3))
        q_BxLxHxK, k_BxLxHxK = rotary(q_BxLxHxK), rotary(k_BxLxHxK)
        y_BxLxHxK = jax.nn.dot_product_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, is_causal=True, implementation=self.implementation)
        return self.out(y_BxLxHxK.reshape(B, L, -1))


class MLP(nnx.Module):
    """Two-layer GELU MLP, d -> 4d -> d."""

    def __init__(self, shape: Shape, dtype: Dtype, rngs: nnx.Rngs):
        self.up = _dense(shape.d_model, shape.d_ff, dtype, rngs, 0.02)
        self.down = _dense(shape.d_ff, shape.d_model, dtype, rngs, 0.02 / (2 * shape.n_layers) ** 0.5)

    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        return self.down(jax.nn.gelu(self.up(x_BxLxD)))


def _norm(d: int, dtype: Dtype, rngs: nnx.Rngs) -> nnx.RMSNorm:
    return nnx.RMSNorm(d, epsilon=1e-6, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


class Block(nnx.Module):
    def __init__(self, shape: Shape, dtype: Dtype, rngs: nnx.Rngs, attention: str | None):
        self.attn_norm, self.attn = _norm(shape.d_model, dtype, rngs), Attention(shape, dtype, rngs, attention)
        self.mlp_norm, self.mlp = _norm(shape.d_model, dtype, rngs), MLP(shape, dtype, rngs)

    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        x_BxLxD = x_BxLxD + self.attn(self.attn_norm(x_BxLxD))
        return x_BxLxD + self.mlp(self.mlp_norm(x_BxLxD))


class Transformer(nnx.Module):
    """tokens (B, L) int -> logits (B, L, V) in ``compute_dtype``.

    ``attention``: the ``jax.nn.dot_product_attention`` implementation, None/"xla" (any device) or
    "cudnn" (cuDNN flash attention: GPU, bf16, head_dim <= 128).
    ``embed_lookup``: "gather", "one_hot", or "auto" (one-hot up to ``ONE_HOT_MAX_VOCAB`` tokens).
    Both give the same forward values; they differ in the backward pass's kernels.
    """

    def __init__(self, shape: Shape, *, compute_dtype: str = "bfloat16", attention: str | None = None,
                 embed_lookup: str = "auto", rngs: nnx.Rngs):
        if embed_lookup not in ("auto", "gather", "one_hot"):
            raise ValueError(f"embed_lookup={embed_lookup!r}: expected 'auto', 'gather' or 'one_hot'")
        dtype = jnp.dtype(compute_dtype)
        self.shape, self.compute_dtype = shape, dtype
        self.one_hot_lookup = embed_lookup == "one_hot" or (embed_lookup == "auto" and shape.vocab_size <= ONE_HOT_MAX_VOCAB)
        self.embed = nnx.Embed(
            shape.vocab_size, shape.d_model, dtype=dtype, param_dtype=jnp.float32,
            embedding_init=nnx.initializers.normal(stddev=0.02), rngs=rngs,
        )
        self.blocks = nnx.List([Block(shape, dtype, rngs, attention) for _ in range(shape.n_layers)])
        self.final_norm = _norm(shape.d_model, dtype, rngs)

    def __call__(self, tokens_BxL: jax.Array) -> jax.Array:
        if self.one_hot_lookup:
            one_hot_BxLxV = jax.nn.one_hot(tokens_BxL, self.shape.vocab_size, dtype=self.compute_dtype)
            x_BxLxD = one_hot_BxLxV @ self.embed.embedding[...].astype(self.compute_dtype)
        else:
            x_BxLxD = self.embed(tokens_BxL)
        for block in self.blocks:
            x_BxLxD = block(x_BxLxD)
        return self.embed.attend(self.final_norm(x_BxLxD))


def count_params(model: nnx.Module) -> int:
    """The number of scalars in the model's ``nnx.Param`` leaves."""
    state = nnx.state(model, nnx.Param)
    return sum(int(x.size) for x in jax.tree.leaves(state))
