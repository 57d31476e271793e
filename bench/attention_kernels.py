"""Which attention kernel could lift a HunyuanVideo 1.5 block nearer the CPU's GEMM speed, and at what accuracy.

    .venv/bin/python bench/attention_kernels.py                      # 8,192 tokens, ~1 min
    .venv/bin/python bench/attention_kernels.py --tokens 25560       # 848x480x61's video tokens, ~5 min
    .venv/bin/python bench/attention_kernels.py --flex               # adds FlexAttention (Inductor compiles ~30 s)

Times 1.5's attention shape (16 heads of 128, bf16) through PyTorch's SDPA (what the
runner calls), chunked attention written with matrix products (fp32 scores and softmax;
bf16 scores) and optionally FlexAttention compiled by Inductor, against a 4096^3 bf16 GEMM
in the same run. Then checks each kernel's accuracy against fp32 attention on RMS-normed
queries and keys scaled to larger and larger scores (a bf16 score keeps 8 bits of mantissa,
which matters once scores are large). See docs/performance.md, "HunyuanVideo 1.5" under
"Efficiency".
"""

import argparse

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.calibrate import best_seconds  # noqa: E402

HEADS, HEAD_DIM = 16, 128
CHUNK = 512


def gemm_rate():
    """GFLOP/s of a 4096^3 bf16 matrix product."""
    a, b = (torch.randn(4096, 4096, dtype=torch.bfloat16) for _ in range(2))
    return 2 * 4096**3 / best_seconds(lambda: a @ b) / 1e9


def sdpa(q, k, v):
    """PyTorch's scaled dot-product attention (its CPU flash kernel: fp32 scores and softmax)."""
    return F.scaled_dot_product_attention(q, k, v)


def chunked_fp32_scores(q, k, v):
    """Queries a chunk at a time: scores and softmax in fp32, the softmax's output times V in bf16."""
    out = torch.empty_like(q)
    scaled = q.float() * q.shape[-1] ** -0.5
    keys = k.float().transpose(-1, -2)
    for head in range(q.shape[1]):
        for start in range(0, q.shape[2], CHUNK):
            scores = scaled[0, head, start:start + CHUNK] @ keys[0, head]
            weights = torch.softmax(scores, dim=-1).to(v.dtype)
            out[0, head, start:start + CHUNK] = weights @ v[0, head]
    return out


def chunked_bf16_scores(q, k, v):
    """Queries a chunk at a time, every product in bf16: the scores are rounded to bf16 before the softmax."""
    out = torch.empty_like(q)
    scaled = q * q.shape[-1] ** -0.5
    keys = k.transpose(-1, -2)
    for head in range(q.shape[1]):
        for start in range(0, q.shape[2], CHUNK):
            scores = scaled[0, head, start:start + CHUNK] @ keys[0, head]
            out[0, head, start:start + CHUNK] = torch.softmax(scores, dim=-1) @ v[0, head]
    return out


def flex(q, k, v):
    """FlexAttention compiled by Inductor (compiled on first use)."""
    from torch.nn.attention.flex_attention import flex_attention

    global _compiled_flex
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention)
    return _compiled_flex(q, k, v)


_compiled_flex = None


def accuracy(kernel, tokens=2048, heads=4, seed=0):
    """`[(largest score, max abs error, relative error)]` of `kernel` against fp32 attention, on
    RMS-normed queries and keys scaled up step by step (some keys equal to queries, as in a video's
    repeated content)."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for amplitude in (1, 2, 3, 4):
        def normed(shape):
            x = torch.randn(shape, generator=generator)
            return F.normalize(x, dim=-1) * HEAD_DIM**0.5 * amplitude

        q = normed((1, heads, tokens, HEAD_DIM))
        k = normed((1, heads, tokens, HEAD_DIM))
        k[:, :, :64] = q[:, :, :64]
        v = torch.randn(1, heads, tokens, HEAD_DIM, generator=generator)
        qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
        reference = F.scaled_dot_product_attention(qb.float(), kb.float(), vb.float())
        got = kernel(qb, kb, vb).float()
        largest = (qb.float() @ kb.float().transpose(-1, -2)).amax().item() * HEAD_DIM**-0.5
        error = (got - reference).abs().max().item()
        rows.append((largest, error, ((got - reference).norm() / reference.norm()).item()))
    return rows


def main():
    """Time each kernel, check its accuracy, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--flex", action="store_true", help="also FlexAttention compiled by Inductor")
    args = parser.parse_args()
    kernels = {"SDPA (the runner's)": sdpa, "chunked, fp32 scores": chunked_fp32_scores,
               "chunked, bf16 scores": chunked_bf16_scores}
    if args.flex:
        kernels["FlexAttention (Inductor)"] = flex
    print(f"threads {torch.get_num_threads()}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"bf16 GEMM {gemm_rate():.1f} GFLOP/s")
    q, k, v = (torch.randn(1, HEADS, args.tokens, HEAD_DIM, dtype=torch.bfloat16) for _ in range(3))
    flops = 4 * args.tokens**2 * HEAD_DIM * HEADS
    print(f"\n| attention | {args.tokens:,} tokens: seconds | GFLOP/s |\n|---|---|---|")
    for name, kernel in kernels.items():
        seconds = best_seconds(lambda: kernel(q, k, v), repeats=1)
        print(f"| {name} | {seconds:.2f} | {flops / seconds / 1e9:.1f} |", flush=True)
    print("\n| attention | largest score | max abs error | relative error |\n|---|---|---|---|")
    for name, kernel in kernels.items():
        for largest, error, relative in accuracy(kernel):
            print(f"| {name} | {largest:.0f} | {error:.4f} | {relative:.2%} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
