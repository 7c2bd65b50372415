"""PyTorch baseline for the GPU benchmark: the harness's architecture, trained the nanoGPT way.

Same model as ``training.model`` (pre-norm RMSNorm, rotary positions, no biases, GELU MLP 4d, tied
embeddings), trained as nanoGPT trains: ``torch.compile``, attention through
``F.scaled_dot_product_attention(is_causal=True)`` (flash attention on GPU), fused AdamW, bf16
autocast with fp32 parameters and optimizer state, grad clipping at 1.0, TF32 matmuls allowed.

    python experiments/nanogpt_torch.py --layers 12 --width 768 --heads 12 --context 1024 \
        --vocab 50304 --batch-size 16 --steps 20 [--device cuda] [--no-compile]

Prints one JSON object: tokens/s over the timed steps (after warm-up steps that compile).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d))

    def forward(self, x):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight.type_as(x)


def rotary(x_BxHxLxK, base: float = 10000.0):
    L, K = x_BxHxLxK.shape[-2], x_BxHxLxK.shape[-1]
    freq = base ** (-torch.arange(0, K // 2, device=x_BxHxLxK.device, dtype=torch.float32) * 2.0 / K)
    angle = torch.arange(L, device=x_BxHxLxK.device, dtype=torch.float32)[:, None] * freq[None, :]
    sin, cos = angle.sin(), angle.cos()
    x = x_BxHxLxK.float()
    x1, x2 = x[..., : K // 2], x[..., K // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x_BxHxLxK)


class Block(nn.Module):
    def __init__(self, d: int, heads: int, layers: int):
        super().__init__()
        self.heads = heads
        self.attn_norm, self.mlp_norm = RMSNorm(d), RMSNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.up, self.down = nn.Linear(d, 4 * d, bias=False), nn.Linear(4 * d, d, bias=False)
        for lin in (self.qkv, self.up):
            nn.init.normal_(lin.weight, std=0.02)
        for lin in (self.out, self.down):
            nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * layers))

    def forward(self, x_BxLxD):
        B, L, D = x_BxLxD.shape
        q, k, v = self.qkv(self.attn_norm(x_BxLxD)).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(rotary(q), rotary(k), v, is_causal=True)
        x_BxLxD = x_BxLxD + self.out(y.transpose(1, 2).reshape(B, L, D))
        return x_BxLxD + self.down(F.gelu(self.up(self.mlp_norm(x_BxLxD))))


class GPT(nn.Module):
    def __init__(self, layers: int, width: int, heads: int, vocab: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(width, heads, layers) for _ in range(layers))
        self.final_norm = RMSNorm(width)

    def forward(self, tokens_BxL, targets_BxL):
        x = self.embed(tokens_BxL)
        for block in self.blocks:
            x = block(x)
        logits = self.final_norm(x) @ self.embed.weight.T
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets_BxL.reshape(-1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--heads", type=int, required=True)
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--min-seconds", type=float, default=0.0, help="repeat chunks of --steps steps until this long")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args(argv)

    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    model = GPT(args.layers, args.width, args.heads, args.vocab).to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    fused = args.device.startswith("cuda")
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, fused=fused)
    step_model = model if args.no_compile else torch.compile(model)
    autocast_dtype = torch.bfloat16
    gen = torch.Generator(device="cpu").manual_seed(0)
    batches = [torch.randint(0, args.vocab, (args.batch_size, args.context + 1), generator=gen).to(args.device) for _ in range(2)]

    def step(i):
        batch = batches[i % 2]
        with torch.autocast(device_type=args.device.split(":")[0], dtype=autocast_dtype):
            loss = step_model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for i in range(args.warmup):
        loss = step(i)
    loss.item()
    if fused:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    done = 0
    while done == 0 or time.perf_counter() - t0 < args.min_seconds:
        for i in range(args.steps):
            loss = step(i)
        done += args.steps
        final = loss.item()  # waits for the device
        if fused:
            torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens_per_s = done * args.batch_size * args.context / seconds
    device_name = torch.cuda.get_device_name() if fused else "cpu"
    print(json.dumps({"framework": "torch", "torch": torch.__version__, "device": device_name, "n_params_total": n_params,
                      "layers": args.layers, "width": args.width, "heads": args.heads, "context": args.context,
                      "vocab": args.vocab, "batch_size": args.batch_size, "steps_timed": done,
                      "seconds": seconds, "tokens_per_s": tokens_per_s, "final_loss": final, "compiled": not args.no_compile}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
