"""What a step cache buys: denoising time and fidelity to the uncached video, same seed.

    .venv/bin/python bench/step_cache.py                      # the embedded model, 640x480x61, 30 steps
    .venv/bin/python bench/step_cache.py --width 256 --height 256 --frames 13 --steps 30
    .venv/bin/python bench/step_cache.py --scaled-down --width 256 --height 256 --frames 13  # 6 real-shaped blocks

Renders the same request (same seed) with STEP_CACHE none, taylorseer (at two
refresh intervals) and first_block, through the runner's staged pipeline, and
prints the denoising time, the speed-up, and the PSNR of each decoded video
against the uncached one (higher is closer; identical videos are infinite).
First Block Cache needs a model with two or more transformer blocks; on the
one-block demo model it cannot apply and is reported as such.
"""

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scaled_down import build_scaled_down  # noqa: E402
from hunyuan_core import cost_model, params, run_plan  # noqa: E402
from hunyuan_core.model_source import EMBEDDED_MODEL_NAME, EmbeddedModelBuilder, ModelSource  # noqa: E402

SETTINGS = [
    ("none", None),
    ("taylorseer, refresh every 4 steps", {"kind": "taylorseer", "interval": 4, "warmup": 3}),
    ("taylorseer, refresh every 2 steps", {"kind": "taylorseer", "interval": 2, "warmup": 3}),
    ("first_block, threshold 0.05", {"kind": "first_block", "threshold": 0.05}),
]


def psnr(reference, frames):
    """Peak signal-to-noise ratio in dB between two uint8 videos."""
    mse = np.mean((reference.astype(np.float64) - frames.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def main():
    """Render each setting and print the table."""
    from runner.pipeline import StagedPipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the embedded demo model, built if needed)")
    parser.add_argument("--scaled-down", action="store_true",
                        help="build and use the scaled-down model with the real block structure (bench/scaled_down.py)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=61)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    model = args.model
    if args.scaled_down:
        model = str(build_scaled_down(Path(tempfile.gettempdir()) / "hunyuan-bench"))
    if not model:
        model = str(Path(tempfile.gettempdir()) / "hunyuan-bench" / EMBEDDED_MODEL_NAME)
        EmbeddedModelBuilder(ModelSource(Path(model), embedded=True)).build_now()
    blocks = cost_model.geometry(model).blocks
    used, _ = params.resolve({"prompt": "A cat walks on the grass, realistic style.", "seed": 42,
                              "width": args.width, "height": args.height, "video_length": args.frames,
                              "num_inference_steps": args.steps})
    plan = run_plan.make_plan(model)
    rows, reference = [], None
    for label, setting in SETTINGS:
        effective, recorded = run_plan.step_cache(setting, blocks)
        if setting and effective is None:
            rows.append((label, None, None, recorded))
            continue
        staged = StagedPipeline(model, "cpu", plan, step_cache=effective)
        prompt = staged.encode(used)
        started = time.perf_counter()
        latents = staged.denoise(used, prompt, lambda index: None)
        seconds = time.perf_counter() - started
        frames, _mode = staged.decode(latents, used)
        if reference is None:
            reference = frames
        rows.append((label, seconds, psnr(reference, frames), ""))
        print(f"  {label}: {seconds:.1f} s", flush=True)
    base = rows[0][1]
    print(f"\nmodel {Path(model).name} ({blocks} transformer block(s)); {args.width}x{args.height}, "
          f"{args.frames} frames, {args.steps} steps, seed 42, computing in {plan['compute_dtype']}\n")
    print("| step cache | denoising s | speed-up | PSNR vs uncached (dB) | note |")
    print("|---|---|---|---|---|")
    for label, seconds, quality, note in rows:
        if seconds is None:
            print(f"| {label} | - | - | - | {note} |")
        else:
            shown = "identical" if math.isinf(quality) else f"{quality:.1f}"
            print(f"| {label} | {seconds:.1f} | {base / seconds:.2f}x | {shown} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
