"""Measuring this host's speed at each kind of work a model does, with the model's own shapes.

    python -m runner.calibrate MODEL_DIR --data-dir DATA_DIR [--max-workers N]

No weights are loaded: the measurements use random tensors shaped like the
model's layers (its hidden width, attention heads and head size, the VAE's
full-size channel count), at each thread count a runner can get (all cores when
alone, its share beside others). The result calibrates every estimate the
service makes for that model (hunyuan_core/timing_stats.py). Takes a few seconds;
runs again when the host's CPU or core count changes.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone

import numpy as np
import psutil
import torch
import torch.nn.functional as F

import runner.pipeline  # noqa: F401  (imported like a runner imports it, so start-up is measured truly)
from hunyuan_core import cost_model, families, model_source, precision
from hunyuan_core.host import cpu_cores, cpu_model
from hunyuan_core.timing_stats import TimingStats
from runner.casting import DTYPES

LINEAR_TOKENS = 1024
# Attention is sampled with about this many FLOPs: a long sequence for a narrow
# model (whose cost per score is mostly the softmax), 4096 tokens for the real one.
ATTENTION_SAMPLE_FLOPS = 2e11


def best_seconds(fn, repeats=2):
    """The fastest of `repeats` timed calls of `fn`, after one untimed call."""
    fn()  # warm-up: first calls pay for allocation and kernel selection
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(geo, threads, dtype=torch.float32):
    """Seconds per unit of each kind of work with `threads` threads, for a model of geometry `geo`,
    computing in `dtype` (the runner's compute dtype: bf16 is ~2x fp32 with native support, ~100x slower without)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        width = max(geo.width, 64)
        x = torch.randn(LINEAR_TOKENS, width, dtype=dtype)
        w = torch.randn(4 * width, width, dtype=dtype)
        linear = best_seconds(lambda: F.linear(x, w)) / (2 * LINEAR_TOKENS * width * 4 * width)

        heads, head_dim = geo.heads, geo.head_dim
        n = int(min(max((ATTENTION_SAMPLE_FLOPS / (4 * heads * head_dim)) ** 0.5, 2048), 16384))
        q, k, v = (torch.randn(1, heads, n, head_dim, dtype=dtype) for _ in range(3))
        # The 13B pipelines pass a key-padding mask, which changes which kernel runs; 1.5 runs
        # with none (runner/unpadded.py).
        mask = None
        if not geo.unmasked_attention:
            mask = torch.ones(1, 1, 1, n, dtype=torch.bool)
            mask[..., -64:] = False
        attention = best_seconds(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)) / (
            4 * n * n * head_dim * heads
        )

        channels = geo.vae_channels[0]  # the full-size level, where decoding spends its time
        conv = torch.nn.Conv3d(channels, channels, 3).to(dtype).eval()
        volume = torch.randn(1, channels, 9 + 2, 96 + 2, 96 + 2, dtype=dtype)
        with torch.no_grad():
            conv_seconds = best_seconds(lambda: conv(volume))
        conv_rate = conv_seconds / (27 * 2 * channels * channels * 9 * 96 * 96)
        rates = {"linear": linear, "attention": attention, "conv": conv_rate}
        if geo.vae_attention:
            rates["vae_attention"] = vae_attention_seconds(geo, dtype)
        if geo.vae_elementwise:
            rates["vae_elements"] = vae_elements_seconds(geo, dtype)
    finally:
        torch.set_num_threads(previous)
    return rates


# The 1.5 VAE's attention is sampled over frames of a 16 x 16 latent tile: up to 32 (a narrow
# demo VAE, whose cost per score is its mask and softmax), fewer for a wide one, about 5e10 FLOPs.
VAE_ATTENTION_TILE, VAE_ATTENTION_FLOPS = 16 * 16, 5e10


def vae_attention_seconds(geo, dtype):
    """Seconds per score of the 1.5 VAE decoder's mid-block attention, as diffusers runs it:
    its dense causal mask built over the latent positions, then one head as wide as the
    decoder's deepest level, under that mask."""
    from diffusers.models.autoencoders.autoencoder_kl_hunyuanvideo15 import HunyuanVideo15AttnBlock

    channels, positions = geo.vae_channels[-1], VAE_ATTENTION_TILE
    frames = int(min(max((VAE_ATTENTION_FLOPS / (4 * channels)) ** 0.5 / positions, 4), 32))
    n = frames * positions
    q, k, v = (torch.randn(1, 1, n, channels, dtype=dtype) for _ in range(3))

    def attend():
        mask = HunyuanVideo15AttnBlock.prepare_causal_attention_mask(frames, positions, dtype, "cpu", batch_size=1)
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    return best_seconds(attend, repeats=1) / (n * n)


VAE_ELEMENTS_SAMPLE = 24e6


def vae_elements_seconds(geo, dtype):
    """Seconds per channel x voxel of the 1.5 VAE decoder's memory-bound work, as one of its
    resnets does it at the full-size level: its RMS norm as the runner runs it (runner/vae_norms.py)
    and SiLU twice, then the residual add (the convolutions between them are priced as "conv")."""
    from runner.vae_norms import ChannelRMSNorm

    channels = geo.vae_channels[0]
    norm = ChannelRMSNorm(channels, images=False).to(dtype).eval()
    # Far bigger than the caches, as a full-size level is: these steps are memory-bound, and a
    # cached volume ran them 1.6x faster than the 848x480 decode did.
    side = int((VAE_ELEMENTS_SAMPLE / (9 * channels)) ** 0.5)
    volume = torch.randn(1, channels, 9, side, side, dtype=dtype)

    def resnet_without_convs():
        hidden = F.silu(norm(volume))
        hidden = F.silu(norm(hidden))
        return hidden + volume

    with torch.no_grad():
        seconds = best_seconds(resnet_without_convs)
    return seconds / volume.numel()


def _write_like_a_job(frames, folder):
    """What a job's writing phase does: encode the MP4, check the file, save the poster."""
    from runner import video_file

    video_file.write_mp4(frames, f"{folder}/probe.mp4", 8)
    video_file.probe(f"{folder}/probe.mp4")
    video_file.write_jpeg(frames[0], f"{folder}/probe.jpg")


def measure_video_writing():
    """Seconds per voxel of a job's writing phase (H.264 encoding, its check, the poster)."""
    frames = (np.random.default_rng(0).random((13, 256, 256, 3)) * 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        seconds = best_seconds(lambda: _write_like_a_job(frames, folder), repeats=1)
    return seconds / frames[..., 0].size


# Small models also render short probe jobs of different sizes and step counts, so the
# per-phase fits (timing_stats) can tell a phase's set-up from its per-step cost and its
# scale before the first real job. Worth it only while they cost seconds: not for the 13B
# model, whose kind rates are measured at its real shapes anyway. Cheapest first; a probe
# is rendered only while the predicted total stays within the budget.
PROBES = ({"width": 256, "height": 256, "video_length": 13, "num_inference_steps": 2},
          {"width": 384, "height": 256, "video_length": 21, "num_inference_steps": 8},
          {"width": 512, "height": 384, "video_length": 29, "num_inference_steps": 4})
PROBE_BUDGET_SECONDS = 30


def probe_job(family, model_dir, probe, number):
    """The parameters (and input image, for image-to-video) of probe job `number` on a model of `family`.

    Sizes follow the family's rules (1.5: the nearest bucket; image-to-video: the
    image's shape), the rest are the family's defaults, as a request would get.
    """
    from runner.pictures import picture

    used = dict(family.defaults, prompt="A calibration probe.", negative_prompt=None, seed=number,
                video_length=probe["video_length"], num_inference_steps=probe["num_inference_steps"])
    for name in family.unused_fields:
        used.pop(name, None)
    width, height = probe["width"], probe["height"]
    image = None
    if family.takes_image:
        # A picture of the probe's shape: encoders cost the same whatever it shows.
        image = picture(width, height)
        width, height = families.size_for_image(family, model_dir, width, height, width, height)
    else:
        width, height = families.size_for_request(family, model_dir, width, height)
    used.update(width=width, height=height)
    return used, image


def probe_samples(model_dir, rates, threads, compute="auto"):
    """Render the probe jobs (if cheap enough), computing in `compute`, and return their timing samples."""
    from hunyuan_core import run_plan
    from hunyuan_core.timing_stats import PRIOR_RATES, Rates
    from runner.memory import freeze_long_lived
    from runner.pipeline import StagedPipeline

    geo = cost_model.geometry(model_dir)
    family = families.family_of(model_dir)
    kinds = dict(PRIOR_RATES, **rates)
    predicted, probes = 0.0, []
    for number, probe in enumerate(PROBES):
        used, image = probe_job(family, model_dir, probe, number)
        work = cost_model.job_work(used, geo)
        predicted += sum(Rates(kinds, {}, True).raw_seconds(p, work[p]) for p in ("denoising", "decoding"))
        if predicted > PROBE_BUDGET_SECONDS:
            break
        probes.append((used, image))
    if not probes:
        return []
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    samples = []
    try:
        # Each stage loads and frees its weights as in a job, so the probes' phases include
        # what a job pays beside the work itself (loading, the first call's set-up, freeing).
        staged = StagedPipeline(model_dir, "cpu", run_plan.make_plan(model_dir, None, {"compute_dtype": compute}))
        freeze_long_lived()  # as a runner does, so the probes' stage overheads match a job's
        for number, (used, image) in enumerate(probes):
            phases, work = {}, cost_model.job_work(used, geo)
            started = time.perf_counter()
            prompt = staged.encode(used, image)
            condition = staged.encode_image(used, image) if image is not None else None
            phases["encoding_text"] = time.perf_counter() - started
            started = time.perf_counter()
            latents = staged.denoise(used, prompt, lambda index: None, condition=condition)
            phases["denoising"] = time.perf_counter() - started
            started = time.perf_counter()
            frames, _mode = staged.decode(latents, used)
            phases["decoding"] = time.perf_counter() - started
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                _write_like_a_job(frames, folder)
                phases["writing_video"] = time.perf_counter() - started
            samples.append({"job_id": f"calibration-probe-{number + 1}", "threads": threads,
                            "phases": {p: {"seconds": round(t, 3), "work": work[p]} for p, t in phases.items()}})
    finally:
        torch.set_num_threads(previous)
    return samples


def host_identity():
    """What makes calibrations comparable: the CPU and how many cores this process gets."""
    return {"host": platform.node(), "cpu": cpu_model(), "cores": cpu_cores()}


def is_current(calibration, compute="float32", geo=None):
    """True if `calibration` was taken on a host like this one, computing in `compute`, and
    (given the model's geometry `geo`) measured every kind of work the model does."""
    if not calibration:
        return False
    ours = host_identity()
    kinds = set.intersection(*[set(rates) for rates in (calibration.get("by_threads") or {"": {}}).values()])
    if geo is not None and geo.vae_attention and "vae_attention" not in kinds:
        return False
    if geo is not None and geo.vae_elementwise and "vae_elements" not in kinds:
        return False
    return (calibration.get("cpu") == ours["cpu"] and calibration.get("cores") == ours["cores"]
            and calibration.get("compute_dtype", "float32") == compute)


def calibrate(model_dir, max_workers=1, startup_seconds=None, compute="float32"):
    """Measure every kind of work for the model in `model_dir`, computing in `compute`; returns the record."""
    geo = cost_model.geometry(model_dir)
    cores = cpu_cores()
    counts = sorted({cores, max(1, cores // max(1, max_workers))})
    by_threads = {}
    writing = measure_video_writing()
    for threads in counts:
        rates = measure(geo, threads, DTYPES[compute])
        rates["voxels"] = writing
        if startup_seconds:
            rates["fixed"] = startup_seconds
        by_threads[str(threads)] = rates
    return dict(host_identity(), compute_dtype=compute,
                measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), by_threads=by_threads)


def ensure(model_dir, data_dir, max_workers=1, startup_seconds=None, force=False, compute=None, name=None):
    """Calibrate the model unless a current calibration is stored; returns True if it measured.

    `compute` is the runner's compute dtype on the CPU (default: what COMPUTE_DTYPE=auto
    picks here). Stores the kind rates, and for small models the probe jobs' samples too,
    under the statistics of `name` (default: the model's metadata name, as jobs record it).
    """
    compute = compute or precision.choose_compute("cpu", "auto")[0]
    name = name or model_source.read_metadata(model_dir).get("name", str(model_dir).rstrip("/").split("/")[-1])
    stats = TimingStats(data_dir, name)
    if not force and is_current(stats.calibration(), compute, cost_model.geometry(model_dir)):
        return False
    calibration = calibrate(model_dir, max_workers, startup_seconds, compute)
    stats.set_calibration(calibration)
    threads = max(int(t) for t in calibration["by_threads"])
    for sample in probe_samples(model_dir, calibration["by_threads"][str(threads)], threads, compute):
        stats.record(sample)
    return True


def main(argv=None):
    """Command line: calibrate one model folder into a data folder's statistics."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--max-workers", type=int, default=1)
    parser.add_argument("--force", action="store_true", help="measure even if a current calibration exists")
    args = parser.parse_args(argv)
    # This process started like a runner does: its age now is what a runner's start-up costs.
    startup = time.time() - psutil.Process().create_time()
    # The same COMPUTE_DTYPE setting the runners get (gunicorn passes its environment on).
    compute, _ = precision.choose_compute("cpu", os.environ.get("COMPUTE_DTYPE", "auto").strip().lower())
    measured = ensure(args.model_dir, args.data_dir, args.max_workers, startup, force=args.force, compute=compute)
    print("calibrated" if measured else "calibration is current", args.model_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
