"""How close the full-width HunyuanVideo blocks run to this CPU's fp32 matrix-multiply peak.

    .venv/bin/python bench/block_efficiency.py                 # 256x256x13 and 640x480x61 (~10 min here)
    .venv/bin/python bench/block_efficiency.py --sizes 256x256x13

Builds one dual-stream and one single-stream block of the real model's width
(hidden 3072 = 24 heads x 128, random weights), feeds them the real sequence
length of a request (image patches plus the 256 padded prompt tokens, with the
pipeline's key-padding mask and rotary embeddings), and times a forward pass.
FLOPs are counted from the shapes actually multiplied: every nn.Linear call
(hooked) plus attention's two matrix products (4 * N^2 * width). The reference is
a large fp32 GEMM timed in the same run. The issue's target: blocks at >= 70% of it.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from diffusers.models.transformers.transformer_hunyuan_video import (
    HunyuanVideoRotaryPosEmbed,
    HunyuanVideoSingleTransformerBlock,
    HunyuanVideoTransformerBlock,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hunyuan_api.cost_model import TEXT_TOKENS  # noqa: E402

HEADS, HEAD_DIM, LATENT_CHANNELS = 24, 128, 16
WIDTH = HEADS * HEAD_DIM
PROMPT_TOKENS = 40  # a typical prompt: the rest of the 256 text tokens is masked padding


def gemm_flops_per_second(n=4096, repeats=3):
    """Best-of-`repeats` fp32 GEMM throughput for n x n x n."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class LinearFlops:
    """Counts 2 * tokens * in * out for every nn.Linear call inside a module."""

    def __init__(self, module):
        self.flops = 0
        self._hooks = [m.register_forward_hook(self._hook) for m in module.modules() if isinstance(m, torch.nn.Linear)]

    def _hook(self, module, args, _output):
        tokens = args[0].numel() // module.in_features
        self.flops += 2 * tokens * module.in_features * module.out_features

    def remove(self):
        """Detach the hooks."""
        for hook in self._hooks:
            hook.remove()


def block_inputs(frames, height, width):
    """Hidden states, prompt states, conditioning, mask and RoPE for one request size."""
    latent = (1, LATENT_CHANNELS, (frames - 1) // 4 + 1, height // 8, width // 8)
    rope = HunyuanVideoRotaryPosEmbed(patch_size=2, patch_size_t=1, rope_dim=(16, 56, 56), theta=256.0)
    rotary = rope(torch.empty(latent))
    image_tokens = rotary[0].shape[0]
    mask = torch.zeros(1, 1, 1, image_tokens + TEXT_TOKENS, dtype=torch.bool)
    mask[..., : image_tokens + PROMPT_TOKENS] = True
    return {
        "hidden_states": torch.randn(1, image_tokens, WIDTH),
        "encoder_hidden_states": torch.randn(1, TEXT_TOKENS, WIDTH),
        "temb": torch.randn(1, WIDTH),
        "attention_mask": mask,
        "rotary": rotary,
    }


def run_block(block, inputs):
    """Time one forward pass; returns (seconds, FLOPs)."""
    counter = LinearFlops(block)
    n = inputs["hidden_states"].shape[1] + inputs["encoder_hidden_states"].shape[1]
    with torch.no_grad():
        seconds = _timed(
            lambda: block(
                inputs["hidden_states"],
                inputs["encoder_hidden_states"],
                inputs["temb"],
                inputs["attention_mask"],
                inputs["rotary"],
            )
        )
    counter.remove()
    return seconds, counter.flops + 4 * n * n * WIDTH


def main():
    """Print the efficiency table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256x256x13,640x480x61", help="WIDTHxHEIGHTxFRAMES, comma-separated")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per block at sizes under 8k tokens")
    args = parser.parse_args()
    torch.manual_seed(0)
    blocks = {
        "dual-stream": HunyuanVideoTransformerBlock(HEADS, HEAD_DIM, mlp_ratio=4.0, qk_norm="rms_norm").eval(),
        "single-stream": HunyuanVideoSingleTransformerBlock(HEADS, HEAD_DIM, mlp_ratio=4.0, qk_norm="rms_norm").eval(),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    gemm_before = gemm_flops_per_second()
    rows = []
    for size in args.sizes.split(","):
        width, height, frames = (int(v) for v in size.split("x"))
        inputs = block_inputs(frames, height, width)
        tokens = inputs["hidden_states"].shape[1] + TEXT_TOKENS
        for name, block in blocks.items():
            # Small sizes: warm up and keep the best pass; big ones take minutes a pass.
            passes = args.repeats + 1 if tokens < 8192 else 1
            results = [run_block(block, inputs) for _ in range(passes)]
            seconds, flops = min(results[1:] or results)
            rows.append((size, tokens, name, seconds, flops))
            print(f"  measured {size} {name}: {seconds:.2f} s", flush=True)
    gemm = max(gemm_before, gemm_flops_per_second())
    print(f"\nreference fp32 GEMM 4096^3: {gemm / 1e9:.1f} GFLOP/s (best of the runs before and after)\n")
    print("| request | tokens | block | seconds | TFLOP | GFLOP/s | % of GEMM |")
    print("|---|---|---|---|---|---|---|")
    for size, tokens, name, seconds, flops in rows:
        rate = flops / seconds
        print(f"| {size} | {tokens} | {name} | {seconds:.2f} | {flops / 1e12:.2f} | {rate / 1e9:.1f} | {100 * rate / gemm:.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
