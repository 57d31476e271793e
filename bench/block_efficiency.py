"""How close the full-width HunyuanVideo blocks run to this CPU's matrix-multiply peak.

    .venv/bin/python bench/block_efficiency.py                 # 256x256x13 and 640x480x61 (~5-10 min here)
    .venv/bin/python bench/block_efficiency.py --sizes 256x256x13
    .venv/bin/python bench/block_efficiency.py --dtype float32 # force fp32 where the runner would use bf16
    .venv/bin/python bench/block_efficiency.py --family hunyuanvideo-1.5   # 848x480x61 and 848x480x121
    .venv/bin/python bench/block_efficiency.py --family hunyuanvideo-1.5 --masked  # as diffusers alone runs it

HunyuanVideo 1.5 (`--family hunyuanvideo-1.5`): one dual-stream block of the 8.3B
transformer (hidden 2048 = 16 heads x 128, a 4x MLP; its 54 blocks are all alike)
at the 480p sequence lengths, as the runner calls it (runner/unpadded.py): the
video's latent positions (patch 1 over the VAE's 16x spatial, 4x temporal
compression: 31 x 30 x 53 = 49,290 at 848x480x121) plus a typical text-to-video
prompt's valid text tokens (120), attention with no mask. `--masked` times it as
the pipeline alone does: all 1,985 added tokens (1000 Qwen, 256 ByT5, 729 image
tokens, padding masked), and a dense token x token boolean mask built from the
key-padding mask in every block (2.6 GB at 51,275 tokens), which the timing includes.

Builds one dual-stream and one single-stream block of the real model's width
(hidden 3072 = 24 heads x 128, random weights), feeds them the real sequence
length of a request (image patches plus the 256 padded prompt tokens, with the
pipeline's key-padding mask and rotary embeddings), and times a forward pass.
FLOPs are counted from the shapes actually multiplied: every nn.Linear call
(hooked) plus attention's two matrix products (4 * N^2 * width). The reference is
a large fp32 GEMM timed in the same run. The issue's target: blocks at >= 70% of it.

The blocks run in the compute dtype the runner would choose here (COMPUTE_DTYPE=auto:
bf16 only where the CPU multiplies bf16 natively), so the table also gives their
share of a GEMM in that dtype, which is the stricter comparison on such a CPU.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from diffusers.models.transformers.transformer_hunyuan_video import (
    HunyuanVideoRotaryPosEmbed,
    HunyuanVideoSingleTransformerBlock,
    HunyuanVideoTransformerBlock,
)
from diffusers.models.transformers.transformer_hunyuan_video15 import (
    HunyuanVideo15RotaryPosEmbed,
    HunyuanVideo15TransformerBlock,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hunyuan_core.cost_geometry import BYT5_TOKENS, QWEN_TOKENS, SIGLIP_TOKENS  # noqa: E402
from hunyuan_core.cost_model import TEXT_TOKENS  # noqa: E402
from hunyuan_core.precision import choose_compute  # noqa: E402
from runner.memory import peak_rss_bytes, release, reset_peak  # noqa: E402
from runner.unpadded import UnmaskedAttnProcessor  # noqa: E402

HEADS, HEAD_DIM, LATENT_CHANNELS = 24, 128, 16
WIDTH = HEADS * HEAD_DIM
PROMPT_TOKENS = 40  # a typical prompt: the rest of the 256 text tokens is masked padding
# HunyuanVideo 1.5 (480p): 16 heads of 128, 32 latent channels, patch 1, 16x / 4x VAE compression.
HEADS_15, LATENT_CHANNELS_15, SPATIAL_15 = 16, 32, 16
WIDTH_15 = HEADS_15 * HEAD_DIM
EXTRA_TOKENS_15 = QWEN_TOKENS + BYT5_TOKENS + SIGLIP_TOKENS
# A typical prompt's valid tokens (text-to-video: the image tokens are all padding).
VALID_15 = PROMPT_TOKENS + 2 * PROMPT_TOKENS  # Qwen tokens, and ByT5's bytes (about 3 per Qwen token)


def gemm_flops_per_second(n=4096, repeats=3, dtype=torch.float32):
    """Best-of-`repeats` GEMM throughput for n x n x n in `dtype`."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
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


def block_inputs(frames, height, width, dtype=torch.float32):
    """Hidden states, prompt states, conditioning, mask and RoPE for one request size."""
    latent = (1, LATENT_CHANNELS, (frames - 1) // 4 + 1, height // 8, width // 8)
    rope = HunyuanVideoRotaryPosEmbed(patch_size=2, patch_size_t=1, rope_dim=(16, 56, 56), theta=256.0)
    rotary = rope(torch.empty(latent))
    image_tokens = rotary[0].shape[0]
    mask = torch.zeros(1, 1, 1, image_tokens + TEXT_TOKENS, dtype=torch.bool)
    mask[..., : image_tokens + PROMPT_TOKENS] = True
    return {
        "hidden_states": torch.randn(1, image_tokens, WIDTH, dtype=dtype),
        "encoder_hidden_states": torch.randn(1, TEXT_TOKENS, WIDTH, dtype=dtype),
        "temb": torch.randn(1, WIDTH, dtype=dtype),
        "attention_mask": mask,
        "rotary": rotary,
    }


def block_inputs_15(frames, height, width, dtype=torch.float32, masked=False):
    """As block_inputs, for a 1.5 block: as the runner calls it, the valid text tokens only (all-true
    mask); `masked`: the 1,985 added tokens, valid ones first, as the transformer orders them."""
    latent = (1, LATENT_CHANNELS_15, (frames - 1) // 4 + 1, height // SPATIAL_15, width // SPATIAL_15)
    rope = HunyuanVideo15RotaryPosEmbed(patch_size=1, patch_size_t=1, rope_dim=(16, 56, 56), theta=256.0)
    rotary = rope(torch.empty(1, 1, *latent[2:]))  # only its shape is read
    video_tokens = rotary[0].shape[0]
    text_tokens = EXTRA_TOKENS_15 if masked else VALID_15
    mask = torch.zeros(1, text_tokens, dtype=torch.bool)
    mask[:, :VALID_15] = True
    return {
        "hidden_states": torch.randn(1, video_tokens, WIDTH_15, dtype=dtype),
        "encoder_hidden_states": torch.randn(1, text_tokens, WIDTH_15, dtype=dtype),
        "temb": torch.randn(1, WIDTH_15, dtype=dtype),
        "attention_mask": mask,
        "rotary": rotary,
    }


def run_block(block, inputs):
    """Time one forward pass; returns (seconds, FLOPs)."""
    counter = LinearFlops(block)
    width = inputs["hidden_states"].shape[2]
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
    return seconds, counter.flops + 4 * n * n * width


def main():
    """Print the efficiency table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="hunyuanvideo", choices=["hunyuanvideo", "hunyuanvideo-1.5"],
                        help="whose blocks: the 13B model's (dual- and single-stream) or 1.5's (dual-stream)")
    parser.add_argument("--sizes", default=None,
                        help="WIDTHxHEIGHTxFRAMES, comma-separated (default: 256x256x13,640x480x61; "
                             "1.5: 848x480x61,848x480x121)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per block at sizes under 8k tokens")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                        help="compute dtype of the blocks (auto: what the runner picks on this CPU)")
    parser.add_argument("--masked", action="store_true",
                        help="1.5: all 1,985 added tokens under diffusers' dense mask, not the runner's unpadded call")
    parser.add_argument("--both", action="store_true",
                        help="1.5: the unpadded and the masked block, alternately, in the same run")
    parser.add_argument("--rounds", type=int, default=1,
                        help="passes of each block at sizes over 8k tokens (alternating with --both; the best kept)")
    args = parser.parse_args()
    name, why = choose_compute("cpu", args.dtype)
    dtype = getattr(torch, name)
    torch.manual_seed(0)
    is_15 = args.family == "hunyuanvideo-1.5"
    sizes = args.sizes or ("848x480x61,848x480x121" if is_15 else "256x256x13,640x480x61")
    if is_15:
        # (label, masked): the runner's call (runner/unpadded.py), diffusers' own, or both.
        variants = [("unpadded", False), ("masked", True)] if args.both else [
            ("masked", True) if args.masked else ("unpadded", False)]
        blocks = {}
        for variant, masked in variants:
            block = HunyuanVideo15TransformerBlock(HEADS_15, HEAD_DIM, 4.0, qk_norm="rms_norm")
            if not masked:
                block.attn.set_processor(UnmaskedAttnProcessor())
            blocks[f"1.5 dual-stream, {variant}"] = (block, masked)
    else:
        blocks = {
            "dual-stream": (HunyuanVideoTransformerBlock(HEADS, HEAD_DIM, mlp_ratio=4.0, qk_norm="rms_norm"), None),
            "single-stream": (HunyuanVideoSingleTransformerBlock(HEADS, HEAD_DIM, mlp_ratio=4.0, qk_norm="rms_norm"),
                              None),
        }

    def make_inputs(frames, height, width, dtype, masked):
        if masked is None:
            return block_inputs(frames, height, width, dtype)
        return block_inputs_15(frames, height, width, dtype, masked=masked)

    blocks = {label: (block.to(dtype).eval(), masked) for label, (block, masked) in blocks.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; blocks in {name}" + (f" ({why})" if why else ""))
    gemm_before = gemm_flops_per_second()
    same_before = gemm_before if dtype == torch.float32 else gemm_flops_per_second(dtype=dtype)
    rows = []
    for size in sizes.split(","):
        width, height, frames = (int(v) for v in size.split("x"))
        best = {}
        for round_ in range(args.rounds):
            for label, (block, masked) in blocks.items():
                inputs = make_inputs(frames, height, width, dtype, masked)
                tokens = inputs["hidden_states"].shape[1] + inputs["encoder_hidden_states"].shape[1]
                if masked is not None and round_ == 0:
                    text = inputs["encoder_hidden_states"].shape[1]
                    mask = (f"dense attention mask {tokens * tokens / 2**30:.2f} GiB of bools per block" if masked
                            else "no attention mask")
                    print(f"  {size} {label}: {inputs['hidden_states'].shape[1]:,} video + {text:,} text tokens; "
                          f"{mask}", flush=True)
                # Small sizes: warm up and keep the best pass; big ones take minutes a pass.
                passes = args.repeats + 1 if tokens < 8192 else 1
                release()
                reset_peak()
                results = [run_block(block, inputs) for _ in range(passes)]
                seconds, flops = min(results[1:] or results)
                del inputs
                print(f"  measured {size} {label}: {seconds:.2f} s, peak RSS {peak_rss_bytes() / 2**30:.1f} GiB, "
                      f"load average {os.getloadavg()[0]:.1f}", flush=True)
                if label not in best or seconds < best[label][1]:
                    best[label] = (tokens, seconds, flops)
        rows += [(size, tokens, label, seconds, flops) for label, (tokens, seconds, flops) in best.items()]
    gemm = max(gemm_before, gemm_flops_per_second())
    same = gemm if dtype == torch.float32 else max(same_before, gemm_flops_per_second(dtype=dtype))
    print(f"\nreference GEMM 4096^3 (best of the runs before and after): fp32 {gemm / 1e9:.1f} GFLOP/s, "
          f"{name} {same / 1e9:.1f} GFLOP/s\n")
    print(f"| request | tokens | block ({name}) | seconds | TFLOP | GFLOP/s | % of fp32 GEMM | % of {name} GEMM |")
    print("|---|---|---|---|---|---|---|---|")
    for size, tokens, label, seconds, flops in rows:
        rate = flops / seconds
        print(f"| {size} | {tokens:,} | {label} | {seconds:.2f} | {flops / 1e12:.2f} | {rate / 1e9:.1f} | "
              f"{100 * rate / gemm:.0f}% | {100 * rate / same:.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
