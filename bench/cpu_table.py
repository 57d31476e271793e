"""What the real HunyuanVideo models cost on a CPU: the tables in docs/performance.md.

    .venv/bin/python bench/cpu_table.py                            # 13B, then HunyuanVideo 1.5
    .venv/bin/python bench/cpu_table.py --family hunyuanvideo-1.5  # one of them

Measures this machine's speed at the real model's own shapes (matrix products
at width 3072, attention with 24 heads of 128, the VAE's 128-channel 3-D
convolutions: runner/calibrate.py, no weights needed) in fp32, and in bf16 too
where this CPU multiplies bf16 natively (the runner then computes in it), then prices each
setting of the API document with the cost model (hunyuan_core/cost_model.py):
text encoding, every denoising step, VAE decoding. The 8-core host is this
machine's measured per-core speed times 8 cores, which assumes a CPU of the same
class (Render does not publish its CPU model) and perfect scaling: a best case,
with one column per dtype because whether that host has native bf16 is unknown.

HunyuanVideo 1.5 (480p: 8.3B transformer of 54 blocks at width 2048, Qwen2.5-VL-7B
over its fixed 1000 tokens plus ByT5, the 1.5 VAE) is priced the same way at its
own shapes, for its default 848x480x121 with real classifier-free guidance (two
transformer passes a step) at 50 steps, and for the distilled checkpoints without
it (50 steps; 8 steps step-distilled).
"""

import argparse

import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hunyuan_core import cost_model, precision  # noqa: E402
from hunyuan_core.host import cpu_cores, cpu_model  # noqa: E402
from runner.calibrate import measure  # noqa: E402
from runner.pipeline import DTYPES  # noqa: E402

REAL_CONFIGS_13B = {
    "model_index": {"_class_name": "HunyuanVideoPipeline"},
    "transformer": {"num_attention_heads": 24, "attention_head_dim": 128, "num_layers": 20, "num_single_layers": 40,
                    "patch_size": 2, "patch_size_t": 1},
    "vae": {"spatial_compression_ratio": 8, "temporal_compression_ratio": 4, "latent_channels": 16,
            "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2},
    "text_encoder": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32},
    "text_encoder_2": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12},
}
# HunyuanVideo 1.5 at 480p (the community's diffusers conversion of Tencent's configs).
REAL_CONFIGS_15 = {
    "model_index": {"_class_name": "HunyuanVideo15Pipeline"},
    "transformer": {"num_attention_heads": 16, "attention_head_dim": 128, "num_layers": 54, "patch_size": 1,
                    "patch_size_t": 1, "target_size": 640},
    "vae": {"spatial_compression_ratio": 16, "temporal_compression_ratio": 4, "latent_channels": 32,
            "block_out_channels": [128, 256, 512, 1024, 1024], "layers_per_block": 2},
    "text_encoder": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "vocab_size": 152064},
    "text_encoder_2": {"d_model": 1472, "d_kv": 64, "d_ff": 3584, "num_layers": 12, "num_heads": 6},
}
# (width, height, frames, steps, guidance_scale, note). The API document's performance table
# and recommended settings, then what a CPU host can realistically offer: a small preview,
# and a step-distilled checkpoint (6 steps). 1.5: its defaults (121 frames, CFG 6, 50 steps),
# then CFG- and step-distilled checkpoints (no CFG; 50 and 8 steps), and 61 frames.
SETTINGS_13B = [(480, 360, 61, 25, 1.0, ""), (640, 480, 61, 30, 1.0, ""), (720, 480, 61, 35, 1.0, ""),
                (720, 480, 61, 40, 1.0, ""), (960, 544, 61, 40, 1.0, ""), (256, 256, 13, 10, 1.0, " (preview)"),
                (480, 360, 61, 6, 1.0, ", step-distilled")]
SETTINGS_15 = [(848, 480, 121, 50, 6.0, ", CFG 6 (defaults)"), (848, 480, 121, 50, 1.0, ", CFG-distilled"),
               (848, 480, 121, 8, 1.0, ", step-distilled"), (848, 480, 61, 50, 6.0, ", CFG 6"),
               (848, 480, 61, 8, 1.0, ", step-distilled")]
FAMILIES = {"hunyuanvideo": ("the 13B model", REAL_CONFIGS_13B, SETTINGS_13B),
            "hunyuanvideo-1.5": ("HunyuanVideo 1.5 (480p)", REAL_CONFIGS_15, SETTINGS_15)}
PROMPT = "A cat walks on the grass, realistic style, golden hour light, slow camera pan."


def real_geometry(configs):
    """A model's geometry from its config values (no weights)."""
    folder = Path(tempfile.mkdtemp(prefix="hunyuan-geometry-"))
    for name, config in configs.items():
        if name == "model_index":
            (folder / "model_index.json").write_text(json.dumps(config))
            continue
        (folder / name).mkdir()
        (folder / name / "config.json").write_text(json.dumps(config))
    return cost_model.geometry(folder)


def seconds(work, rates):
    """Seconds of `{kind: amount}` at `rates` (seconds per unit)."""
    return sum(amount * rates[kind] for kind, amount in work.items() if kind in rates)


def human(total):
    """A duration in hours, or minutes under one hour."""
    return f"{total / 3600:.1f} h" if total >= 3600 else f"{total / 60:.0f} min"


def table(family):
    """Measure this machine at `family`'s shapes and print its table."""
    title, configs, settings = FAMILIES[family]
    geo = real_geometry(configs)
    cores = cpu_cores()
    compute, why = precision.choose_compute("cpu", "auto")
    # fp32 always (a host without native bf16 computes in it); bf16 too where this CPU has it.
    dtypes = ["float32"] + (["bfloat16"] if compute == "bfloat16" else [])
    here = {name: measure(geo, cores, DTYPES[name]) for name in dtypes}
    per_core_scale = 8 / cores
    host8 = {name: {kind: rate / per_core_scale for kind, rate in measured.items()} for name, measured in here.items()}
    print(f"\n{title}: {cpu_model()}, {cores} cores, torch {torch.__version__}; the runner computes in {compute} "
          f"here ({why}).")
    for name, rates in here.items():
        print(f"Measured in {name} at its shapes: {1 / rates['linear'] / 1e9:.0f} GFLOP/s linear, "
              f"{1 / rates['attention'] / 1e9:.0f} GFLOP/s attention, {1 / rates['conv'] / 1e9:.0f} GFLOP/s VAE "
              "convolution")
    columns = [f"8-core host, {name} (best case)" for name in dtypes]
    print(f"\n| request | steps | TFLOP per step | this machine ({cores} cores, {compute}) | " + " | ".join(columns)
          + " | per step on 8 cores |")
    print("|---|---|---|---|" + "---|" * len(columns) + "---|")
    phases = ("encoding_text", "denoising", "decoding")
    for width, height, frames, steps, guidance, note in settings:
        params = {"prompt": PROMPT, "width": width, "height": (height + 8) // 16 * 16, "video_length": frames,
                  "num_inference_steps": steps, "guidance_scale": guidance}
        work = cost_model.job_work(params, geo, memory_bytes=32 * 2**30)
        step = sum(cost_model.step_work(params, geo).values())
        t_here = sum(seconds(work[p], here[compute]) for p in phases)
        totals = [human(sum(seconds(work[p], host8[name]) for p in phases)) for name in dtypes]
        per_step = [seconds({k: v / steps for k, v in work["denoising"].items()}, host8[name]) / 60 for name in dtypes]
        print(f"| {width}x{params['height']}x{frames}{note} | {steps} | {step / 1e12:.0f} | {human(t_here)} | "
              + " | ".join(totals) + " | " + " / ".join(f"{m:.1f}" for m in per_step) + " min |")


def main():
    """Measure and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=[*FAMILIES, "all"], default="all")
    args = parser.parse_args()
    for family in FAMILIES if args.family == "all" else [args.family]:
        table(family)
    return 0


if __name__ == "__main__":
    sys.exit(main())
