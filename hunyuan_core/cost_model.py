"""How much work a job is, by kind, from the model's own config files and the job's size.

Work is counted per phase and per kind (matrix products of linear layers,
attention, 3-D convolutions, pixels to encode, bytes to load), because each kind
runs at its own speed on a given host: `runner/calibrate.py` measures one rate per
kind at the model's own shapes, so one measurement carries over between sizes.
The formulas follow diffusers' HunyuanVideo code; see NOTES section 4.
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .host import memory_limit_bytes
from .precision import component_weights

# The pipeline pads the Llama prompt to 256 tokens after its template; the runner
# trims the padding (it is masked out), so attention runs over the prompt's own tokens.
TEXT_TOKENS = 256
# The real Llama-3 tokenizer turns the template into 95 tokens (the pipeline's crop_start).
DEFAULT_TEMPLATE_TOKENS = 95
# English runs about 4 characters per Llama-3 token; the demo model's tokenizer is per character.
DEFAULT_CHARS_PER_TOKEN = 4.0
CLIP_TOKENS = 77


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
    text_hidden: int
    text_vocab: int
    text_layer_params: int
    clip_params: int
    template_tokens: int
    chars_per_token: float
    weight_bytes: int  # all safetensors files, as stored

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
        llama = _read_json(root / "text_encoder" / "config.json")
        text_params, text_hidden, text_vocab = _llama_params(llama), llama["hidden_size"], llama.get("vocab_size", 0)
        text_layer_params = text_params // max(llama["num_hidden_layers"], 1)
        clip_params = _clip_params(_read_json(root / "text_encoder_2" / "config.json"))
    except (OSError, KeyError, ValueError):
        text_params, text_hidden, text_vocab, text_layer_params, clip_params = 0, 0, 0, 0, 0
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
        text_hidden=text_hidden,
        text_vocab=text_vocab,
        text_layer_params=text_layer_params,
        clip_params=clip_params,
        template_tokens=meta.get("prompt_template_crop_start", DEFAULT_TEMPLATE_TOKENS),
        chars_per_token=meta.get("chars_per_token", DEFAULT_CHARS_PER_TOKEN),
        weight_bytes=sum(
            component_weights(root, c)["bytes"] for c in ("transformer", "vae", "text_encoder", "text_encoder_2")
        ),
    )


def geometry(model_dir):
    """Read a diffusers HunyuanVideo folder's configs (cached until they change)."""
    config = Path(model_dir) / "transformer" / "config.json"
    return _geometry_cached(str(model_dir), config.stat().st_mtime_ns)


def latent_shape(params, geo):
    """(frames, height, width) of the job's latent video."""
    frames = (params["video_length"] - 1) // geo.temporal_ratio + 1
    return frames, params["height"] // geo.spatial_ratio, params["width"] // geo.spatial_ratio


def prompt_tokens(params, geo):
    """Tokens of the prompt after the template, padding trimmed (estimated from its length)."""
    estimate = int(len(params.get("prompt") or "") / geo.chars_per_token) + 2
    return max(1, min(TEXT_TOKENS, estimate))


def sequence_length(params, geo):
    """Tokens the transformer attends over: image patches plus the prompt's tokens."""
    frames, height, width = latent_shape(params, geo)
    image = (frames // geo.patch_t) * (height // geo.patch) * (width // geo.patch)
    return image + prompt_tokens(params, geo)


def uses_true_cfg(params):
    """Real classifier-free guidance runs the transformer twice per step."""
    return params.get("guidance_scale", 1.0) > 1.0


def step_work(params, geo):
    """`{"linear", "attention"}` FLOPs of one denoising step, doubled by real CFG."""
    n = sequence_length(params, geo)
    d = geo.width
    passes = 2 if uses_true_cfg(params) else 1
    return {
        "linear": 24 * d * d * n * geo.blocks * passes,
        "attention": 4 * n * n * d * geo.blocks * passes,
    }


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


# diffusers' tiled decoding: 256-pixel tiles every 192 pixels, 16-frame chunks every 12.
TILE, TILE_STRIDE, CHUNK_FRAMES, CHUNK_STRIDE = 256, 192, 16, 12
# The runner decodes in one piece when a full-size activation takes under this share of memory.
UNTILED_MEMORY_SHARE = 0.25


def decode_tiled(params, geo, memory_bytes):
    """Whether the runner will tile this video's decoding (run_plan.decoding; runner/stage_options.py applies it)."""
    activation = video_voxels(params) * geo.vae_channels[0] * 4 * 4
    return activation >= UNTILED_MEMORY_SHARE * memory_bytes


def tiling_overlap(params):
    """How many more pixels tiled decoding computes than the video has, from the tiles' overlap."""

    def axis(size, tile, stride):
        if size <= tile:
            return 1.0
        tiles = -(-(size - tile) // stride) + 1
        return tiles * tile / size

    return (axis(params["width"], TILE, TILE_STRIDE) * axis(params["height"], TILE, TILE_STRIDE)
            * axis(params["video_length"], CHUNK_FRAMES, CHUNK_STRIDE))


def video_voxels(params):
    """Pixels times frames of the finished video (what the MP4 encoder handles)."""
    return params["video_length"] * params["height"] * params["width"]


def job_work(params, geo, memory_bytes=None):
    """The work of each phase of a job, by kind: `{phase: {kind: amount}}`.

    Kinds: "linear", "attention" and "conv" in FLOPs, "voxels" in pixels x frames,
    "bytes" of weights to load, "fixed" (1 per job: interpreter start-up,
    imports and per-job overheads, which cost the same whatever the size), and
    "steps" (denoising steps: each also pays a fixed overhead, learnt from jobs).
    Decoding counts the tiles' overlap when the video is big enough to be tiled
    in `memory_bytes` (default: this machine's memory).
    """
    step = step_work(params, geo)
    steps = params["num_inference_steps"]
    decode = float(decode_flops(params, geo))
    if decode_tiled(params, geo, memory_bytes or memory_limit_bytes()):
        decode *= tiling_overlap(params)
    return {
        "starting": {"fixed": 1.0},
        "loading_model": {"fixed": 1.0, "bytes": float(geo.weight_bytes)},
        "encoding_text": {"linear": float(text_flops(params, geo))},
        "denoising": {**{kind: float(amount) * steps for kind, amount in step.items()}, "steps": float(steps)},
        "decoding": {"conv": decode},
        "writing_video": {"voxels": float(video_voxels(params))},
    }


# Measured with bench/stage_memory.py (13B architecture, 640x480x61): besides its
# weights, the transformer stage held ~4.9 GiB: about 16 activations of
# tokens x width in fp32, one dual-stream block's weights upcast to fp32, and
# the interpreter; the text stage ~4.1 GiB: the embedding table and one decoder
# layer upcast to fp32, and the interpreter.
ACTIVATIONS_PER_TOKEN_WIDTH = 16
PROCESS_OVERHEAD_BYTES = 2**30


def stage_overheads(params, geo):
    """Bytes each big stage needs beside its stored weights, for `params`: `{component: bytes}`."""
    tokens = sequence_length(params, geo)
    width = geo.width
    return {
        "transformer": ACTIVATIONS_PER_TOKEN_WIDTH * tokens * width * 4 + 24 * width * width * 4
        + PROCESS_OVERHEAD_BYTES,
        "text_encoder": (geo.text_vocab * geo.text_hidden + geo.text_layer_params) * 4 + PROCESS_OVERHEAD_BYTES,
    }
