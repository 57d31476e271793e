"""How much the runner's 1.5 VAE norms (runner/vae_norms.py) save in decoding, and how much they change it.

    .venv/bin/python bench/vae_norms.py                 # the 1.5 demo VAE and the scaled-down 1.5 VAE, ~4 min
    .venv/bin/python bench/vae_norms.py --demo-only     # ~30 s
    .venv/bin/python bench/vae_norms.py --full-size     # the real 1.5 VAE's shapes (random weights), one tile, ~5 min

Decodes the same latents with diffusers' own `HunyuanVideo15RMS_norm` and with the
runner's `ChannelRMSNorm`, alternately (twice each, in the runner's compute dtype), in one
process, and prints a table: seconds each way, the speed-up, and how far the two videos
are apart (pixels in [-1, 1]) next to how far diffusers' own decode in that dtype is from
its fp32 decode (the dtype's own error), on the demo VAE and on the scaled-down 1.5 VAE
(bench/scaled_down.py: 32 channels at full size, the real five levels). `--full-size`
builds the real 1.5 VAE's architecture (128 channels at full size, 1.26B parameters) with
random weights in memory and decodes one 256x256x13 tile, without the fp32 comparison.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffusers import AutoencoderKLHunyuanVideo15  # noqa: E402

from bench.scaled_down import build_scaled_down_15  # noqa: E402
from hunyuan_core import precision  # noqa: E402
from runner.casting import DTYPES  # noqa: E402
from runner.demo_models import build_demo_model  # noqa: E402
from runner.vae_norms import ChannelRMSNorm  # noqa: E402
from diffusers.models.autoencoders.autoencoder_kl_hunyuanvideo15 import HunyuanVideo15RMS_norm  # noqa: E402


def set_norms(vae, cls):
    """Make every RMS norm of `vae` diffusers' (cls=HunyuanVideo15RMS_norm) or the runner's."""
    for module in vae.modules():
        if isinstance(module, HunyuanVideo15RMS_norm):
            module.__class__ = cls


def compare(label, load, size, dtype, reference=True):
    """One table row: decode `size` = (width, height, frames) both ways with the VAE `load(dtype)` makes."""
    width, height, frames = size
    vae = load(dtype)
    vae.disable_tiling()
    latents = torch.randn(1, vae.config.latent_channels, (frames - 1) // 4 + 1, height // 16, width // 16,
                          generator=torch.Generator().manual_seed(0))
    seconds, videos = {}, {}
    with torch.no_grad():
        for name, cls in [("diffusers", HunyuanVideo15RMS_norm), ("runner", ChannelRMSNorm)] * 2:
            set_norms(vae, cls)
            start = time.perf_counter()
            videos[name] = vae.decode(latents.to(dtype), return_dict=False)[0].float()
            seconds[name] = min(seconds.get(name, float("inf")), time.perf_counter() - start)
        del vae
        own = "-"
        if reference:
            exact = load(torch.float32)
            exact.disable_tiling()
            error = (videos["diffusers"] - exact.decode(latents, return_dict=False)[0]).abs()
            own = f"{error.mean():.4f} / {error.max():.3f}"
    apart = (videos["runner"] - videos["diffusers"]).abs()
    print(f"| {label} | {width}x{height}x{frames} | {seconds['diffusers']:.2f} | {seconds['runner']:.2f} | "
          f"{seconds['diffusers'] / seconds['runner']:.2f}x | {apart.mean():.4f} / {apart.max():.3f} | {own} |",
          flush=True)


def from_folder(folder):
    """A loader of the VAE in a model folder, in a given dtype."""
    return lambda dtype: AutoencoderKLHunyuanVideo15.from_pretrained(folder, subfolder="vae", dtype=dtype).eval()


def full_size(dtype):
    """The real 1.5 VAE's architecture with random weights (diffusers' defaults are its config)."""
    torch.manual_seed(0)
    return AutoencoderKLHunyuanVideo15(latent_channels=32, block_out_channels=(128, 256, 512, 1024, 1024),
                                       layers_per_block=2).to(dtype).eval()


def main():
    """Build the VAEs, decode both ways, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-only", action="store_true")
    parser.add_argument("--full-size", action="store_true", help="only the real 1.5 VAE's architecture, one tile")
    args = parser.parse_args()
    compute = precision.choose_compute("cpu", "auto")[0]
    dtype = DTYPES[compute]
    work = Path(tempfile.mkdtemp(prefix="hunyuan-vae-norms-"))
    print(f"threads {torch.get_num_threads()}, decoding in {compute}\n")
    print("| VAE | video | diffusers' norms s | runner's norms s | speed-up | runner vs diffusers, mean / max "
          f"| diffusers {compute} vs fp32, mean / max |")
    print("|---|---|---|---|---|---|---|")
    if args.full_size:
        compare("1.5, full size (random weights)", full_size, (256, 256, 13), dtype, reference=False)
        return 0
    demo = work / "demo-hunyuanvideo-1.5"
    build_demo_model("demo-hunyuanvideo-1.5", demo)
    for size in ((336, 192, 61), (256, 256, 121)):
        compare("1.5 demo", from_folder(demo), size, dtype)
    if not args.demo_only:
        compare("scaled-down 1.5", from_folder(build_scaled_down_15(work)), (848, 480, 13), dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
