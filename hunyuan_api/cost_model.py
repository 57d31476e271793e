"""How much work a job is, from the model's own config files and the job's size.

Work is counted in floating-point operations (FLOPs) per phase, so that one
measured rate (seconds per FLOP) carries over between sizes and between models.
The formulas follow diffusers' HunyuanVideo code; see NOTES section 4.
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# The pipeline pads the Llama prompt to 256 tokens after its template.
TEXT_TOKENS = 256
# The real Llama-3 tokenizer turns the template into 95 tokens (the pipeline's crop_start).
DEFAULT_TEMPLATE_TOKENS = 95
CLIP_TOKENS = 77
# One attention score costs a max, an exp and a sum beside its two multiply-adds:
# counted as this many FLOPs, it makes small-head models (like the demo model,
# where the softmax dominates) and the real one fit the same rate.
SOFTMAX_FLOPS_PER_SCORE = 20


@dataclass(frozen=True)
class Geometry:
    """The sizes of a model that decide the cost of running it."""

    heads: int
    head_dim: int
    blocks: int  # dual-stream plus single-stream transformer blocks
    patch: int
    patch_t: int
    spatial_ratio: int
    temporal_ratio: int
    latent_channels: int
    vae_channels: tuple
    vae_layers_per_block: int
    text_params: int  # Llama text encoder, roughly
    clip_params: int
    template_tokens: int

    @property
    def width(self):
        """The transformer's hidden size."""
        return self.heads * self.head_dim


def _read_json(path):
    return json.loads(Path(path).read_text())


def _llama_params(cfg):
    hidden, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    return layers * (4 * hidden * hidden + 3 * hidden * inter)


def _clip_params(cfg):
    hidden, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    return layers * (4 * hidden * hidden + 2 * hidden * inter)


@lru_cache(maxsize=8)
def _geometry_cached(model_dir, _stamp):
    root = Path(model_dir)
    tcfg = _read_json(root / "transformer" / "config.json")
    vcfg = _read_json(root / "vae" / "config.json")
    try:
        text_params = _llama_params(_read_json(root / "text_encoder" / "config.json"))
        clip_params = _clip_params(_read_json(root / "text_encoder_2" / "config.json"))
    except (OSError, KeyError, ValueError):
        text_params, clip_params = 0, 0
    try:
        meta = _read_json(root / "hunyuan_api_model.json")
    except (OSError, ValueError):
        meta = {}
    return Geometry(
        heads=tcfg.get("num_attention_heads", 24),
        head_dim=tcfg.get("attention_head_dim", 128),
        blocks=tcfg.get("num_layers", 20) + tcfg.get("num_single_layers", 40),
        patch=tcfg.get("patch_size", 2),
        patch_t=tcfg.get("patch_size_t", 1),
        spatial_ratio=vcfg.get("spatial_compression_ratio", 8),
        temporal_ratio=vcfg.get("temporal_compression_ratio", 4),
        latent_channels=vcfg.get("latent_channels", 16),
        vae_channels=tuple(vcfg.get("block_out_channels", (128, 256, 512, 512))),
        vae_layers_per_block=vcfg.get("layers_per_block", 2),
        text_params=text_params,
        clip_params=clip_params,
        template_tokens=meta.get("prompt_template_crop_start", DEFAULT_TEMPLATE_TOKENS),
    )


def geometry(model_dir):
    """Read a diffusers HunyuanVideo folder's configs (cached until they change)."""
    config = Path(model_dir) / "transformer" / "config.json"
    return _geometry_cached(str(model_dir), config.stat().st_mtime_ns)


def latent_shape(params, geo):
    """(frames, height, width) of the job's latent video."""
    frames = (params["video_length"] - 1) // geo.temporal_ratio + 1
    return frames, params["height"] // geo.spatial_ratio, params["width"] // geo.spatial_ratio


def sequence_length(params, geo):
    """Tokens the transformer attends over: image patches plus the padded prompt."""
    frames, height, width = latent_shape(params, geo)
    return (frames // geo.patch_t) * (height // geo.patch) * (width // geo.patch) + TEXT_TOKENS


def uses_true_cfg(params):
    """Real classifier-free guidance runs the transformer twice per step."""
    return params.get("guidance_scale", 1.0) > 1.0


def step_flops(params, geo):
    """FLOPs of one denoising step: linear layers plus attention, doubled by real CFG."""
    n = sequence_length(params, geo)
    d = geo.width
    linear = 24 * d * d * n * geo.blocks
    attention = (4 * n * n * d + SOFTMAX_FLOPS_PER_SCORE * n * n * geo.heads) * geo.blocks
    return (linear + attention) * (2 if uses_true_cfg(params) else 1)


def text_flops(params, geo):
    """FLOPs of encoding the prompt (and the negative prompt under real CFG)."""
    tokens = geo.template_tokens + TEXT_TOKENS
    once = 2 * geo.text_params * tokens + 2 * geo.clip_params * CLIP_TOKENS
    return once * (2 if uses_true_cfg(params) else 1)


def decode_flops(params, geo):
    """FLOPs of the VAE decoder's 3x3x3 convolutions, level by level.

    The decoder works from the latent size up to full size, halving its channels
    on the way; at each level it runs (layers_per_block + 1) resnets of two
    convolutions plus an upsampling convolution. The full-size levels dominate.
    """
    frames, height, width = latent_shape(params, geo)
    channels = list(reversed(geo.vae_channels))
    levels = len(channels)
    total = 0
    voxels = frames * height * width
    full_voxels = params["video_length"] * params["height"] * params["width"]
    for level, ch in enumerate(channels):
        convs = 2 * (geo.vae_layers_per_block + 1)
        if level == 0:
            convs += 4  # the mid block's two resnets
        total += convs * 27 * 2 * ch * ch * voxels
        if level < levels - 1:
            # Upsample (space 2x; time 2x too after the first level) then convolve at the new size.
            voxels = min(voxels * (4 if level == 0 else 8), full_voxels)
            total += 27 * 2 * ch * channels[level + 1] * voxels
    total += 27 * 2 * channels[-1] * 3 * full_voxels  # conv_out to RGB
    return total


def video_voxels(params):
    """Pixels times frames of the finished video (what the MP4 encoder handles)."""
    return params["video_length"] * params["height"] * params["width"]


def job_work(params, geo):
    """The work of each phase of a job, in the units its rate is measured in.

    Starting (interpreter and imports) and loading are counted as 1 unit each:
    they cost about the same for every job of a model.
    """
    return {
        "starting": 1.0,
        "loading_model": 1.0,
        "encoding_text": float(text_flops(params, geo)),
        "denoising": float(step_flops(params, geo)) * params["num_inference_steps"],
        "decoding": float(decode_flops(params, geo)),
        "writing_video": float(video_voxels(params)),
    }
