"""How much work a job is, by kind, from the model's own config files and the job's size.

Work is counted per phase and per kind (matrix products of linear layers,
attention, 3-D convolutions, pixels to encode, bytes to load), because each kind
runs at its own speed on a given host: `runner/calibrate.py` measures one rate per
kind at the model's own shapes, so one measurement carries over between sizes.
The formulas follow diffusers' HunyuanVideo code; see NOTES section 4. Every
family is priced by the same formulas from its geometry (hunyuan_core/cost_geometry.py):
what differs is how many tokens each encoder and the transformer run over, the
image encoders of image-to-video models, and 1.5's VAE attention (its decoder's
mid-block attends over every latent position of a tile under a dense causal mask).
"""

import re

from .cost_geometry import (  # noqa: F401  (Geometry and geometry are used through this module)
    TEXT_TOKENS,
    Geometry,
    geometry,
)
from .host import memory_limit_bytes


def latent_shape(params, geo):
    """(frames, height, width) of the job's latent video."""
    frames = (params["video_length"] - 1) // geo.temporal_ratio + 1
    return frames, params["height"] // geo.spatial_ratio, params["width"] // geo.spatial_ratio


# 1.5's pipeline gives ByT5 the prompt's quoted text, as `Text "..."` phrases (its extract_glyph_texts).
_QUOTED = re.compile(r"\"(.*?)\"|\u201c(.*?)\u201d")


def glyph_tokens(prompt, geo):
    """ByT5 tokens of the prompt's quoted text that reach 1.5's transformer (a byte each and an end
    token; 0 without quoted text, or for a family that has no ByT5)."""
    if not geo.glyph_tokens:
        return 0
    texts = list(dict.fromkeys(a or b for a, b in _QUOTED.findall(prompt or "")))
    if not texts:
        return 0
    phrase = ". ".join(f'Text "{text}"' for text in texts) + ". "
    return min(geo.second_text_tokens, len(phrase.encode("utf-8")) + 1)


def prompt_tokens(params, geo):
    """Text tokens of the prompt that reach the transformer, padding trimmed (estimated from its
    length): the prompt and the template's closing tokens; 1.5 adds its quoted text's ByT5 tokens."""
    if not geo.trims_prompt:
        return 0
    prompt = params.get("prompt") or ""
    estimate = int(len(prompt) / geo.chars_per_token) + geo.prompt_tail_tokens
    return max(1, min(geo.prompt_limit, estimate)) + glyph_tokens(prompt, geo)


def sequence_length(params, geo):
    """Tokens the transformer attends over: video patches, the prompt's tokens and the family's fixed
    ones (the 13B image-to-video image tokens; 1.5 image-to-video's 729 SigLIP tokens)."""
    frames, height, width = latent_shape(params, geo)
    image = (frames // geo.patch_t) * (height // geo.patch) * (width // geo.patch)
    return image + prompt_tokens(params, geo) + geo.extra_tokens


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
    """FLOPs of encoding the prompt (and the negative prompt under real CFG).

    13B: Llama over the template and 256 tokens (Llava: with the image's 576 more, and
    its CLIP tower over the image), CLIP over 77; 1.5: Qwen over its chat template and
    1000 tokens, ByT5 over 256.
    """
    tokens = geo.template_tokens + geo.text_tokens
    once = 2 * geo.text_params * tokens + 2 * geo.clip_params * geo.second_text_tokens
    if geo.encodes_image and not geo.family.startswith("hunyuanvideo-1.5"):
        once += 2 * geo.image_params * geo.image_tokens
    return once * (2 if uses_true_cfg(params) else 1)


def image_work(params, geo):
    """`{"linear", "conv"}` FLOPs of the image stage (image-to-video): 1.5's SigLIP, and the
    VAE encoding the first frame (priced like decoding one frame)."""
    if not geo.encodes_image:
        return {}
    one_frame = dict(params, video_length=1)
    work = {"conv": float(decode_flops(one_frame, geo))}
    if geo.family.startswith("hunyuanvideo-1.5"):
        work["linear"] = float(2 * geo.image_params * geo.image_tokens)
    return work


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


# Units of memory-bound work per channel x voxel: a resnet's two norms, two SiLUs and its residual
# add count 1 (what calibration times, runner/calibrate.py); an upsampler's rearranges, repeat, concat
# and add over its output about as much; the output norm and SiLU half.
RESNET_ELEMENT_UNITS, UPSAMPLE_ELEMENT_UNITS, NORM_OUT_ELEMENT_UNITS = 1.0, 1.0, 0.5


def decode_elements(params, geo):
    """Channel x voxels of the VAE decoder's memory-bound steps, level by level, in the units above
    (0 for a VAE whose decoding is priced by its convolutions alone: the 13B one).

    Measured on the scaled-down 1.5 VAE (32 channels at full size, 848x480x13, bf16): each of its
    RMS norms took longer than the convolution after it, and the norms, SiLUs and upsampling
    rearranges together more than half the decode, which convolution FLOPs alone priced 2.6x low.
    """
    if not geo.vae_elementwise:
        return 0
    frames, height, width = latent_shape(params, geo)
    channels = list(reversed(geo.vae_channels))
    total = 0.0
    for level, ch in enumerate(channels):
        resnets = geo.vae_layers_per_block + 1 + (2 if level == 0 else 0)
        total += RESNET_ELEMENT_UNITS * resnets * ch * frames * height * width
        if level < len(channels) - 1:
            # The 1.5 decoder's upsampler i doubles space while 2^i < the spatial ratio and time
            # (all frames but the first) while 2^i < the temporal ratio.
            if 2**level < geo.temporal_ratio:
                frames = 2 * frames - 1
            if 2**level < geo.spatial_ratio:
                height, width = 2 * height, 2 * width
            total += UPSAMPLE_ELEMENT_UNITS * channels[level + 1] * frames * height * width
    return total + NORM_OUT_ELEMENT_UNITS * channels[-1] * frames * height * width


# diffusers' tiled decoding: 256-pixel tiles every 192 pixels, 16-frame chunks every 12.
TILE, TILE_STRIDE, CHUNK_FRAMES, CHUNK_STRIDE = 256, 192, 16, 12
# The runner decodes in one piece when a full-size activation takes under this share of memory.
UNTILED_MEMORY_SHARE = 0.25


def vae_attention_scores(params, geo, tiled):
    """Scores (query x key pairs) of the 1.5 VAE decoder's mid-block attention, summed over tiles.

    It attends over every latent position of what it decodes (a tile's, when tiled in space:
    diffusers cuts 256-pixel tiles every 192 pixels, in latents 16 every 12) under a dense
    causal mask; 0 for a VAE without it.
    """
    if not geo.vae_attention:
        return 0
    frames, height, width = latent_shape(params, geo)
    if not tiled:
        return (frames * height * width) ** 2
    tile, stride = TILE // geo.spatial_ratio, TILE_STRIDE // geo.spatial_ratio
    rows = [min(tile, height - i) for i in range(0, height, stride)]
    columns = [min(tile, width - j) for j in range(0, width, stride)]
    return sum((frames * r * c) ** 2 for r in rows for c in columns)


def decode_tiled(params, geo, memory_bytes):
    """Whether the runner will tile this video's decoding (run_plan.decoding; runner/stage_options.py applies it)."""
    activation = video_voxels(params) * geo.vae_channels[0] * 4 * 4
    # The 1.5 VAE's mid-block attention builds a dense causal fp32 mask over every latent
    # position (9.7 GB for 848x480x121 untiled); a 256-pixel tile keeps it small.
    activation += 4 * vae_attention_scores(params, geo, tiled=False)
    return activation >= UNTILED_MEMORY_SHARE * memory_bytes


def tiling_overlap(params, geo=None):
    """How many more pixels tiled decoding computes than the video has, from the tiles' overlap.

    The 1.5 VAE tiles in space only (no temporal chunks)."""

    def axis(size, tile, stride):
        if size <= tile:
            return 1.0
        tiles = -(-(size - tile) // stride) + 1
        return tiles * tile / size

    spatial = axis(params["width"], TILE, TILE_STRIDE) * axis(params["height"], TILE, TILE_STRIDE)
    if geo is not None and geo.family.startswith("hunyuanvideo-1.5"):
        return spatial
    return spatial * axis(params["video_length"], CHUNK_FRAMES, CHUNK_STRIDE)


def video_voxels(params):
    """Pixels times frames of the finished video (what the MP4 encoder handles)."""
    return params["video_length"] * params["height"] * params["width"]


def job_work(params, geo, memory_bytes=None):
    """The work of each phase of a job, by kind: `{phase: {kind: amount}}`.

    Kinds: "linear", "attention" and "conv" in FLOPs, "vae_attention" in scores of the 1.5
    VAE's masked mid-block attention (measured per score at its channels), "vae_elements" in
    channel x voxels of the 1.5 VAE decoder's memory-bound steps, "voxels" in pixels x frames,
    "bytes" of weights to load, "fixed" (1 per job: interpreter start-up,
    imports and per-job overheads, which cost the same whatever the size), and
    "steps" (denoising steps: each also pays a fixed overhead, learnt from jobs).
    Decoding counts the tiles' overlap when the video is big enough to be tiled
    in `memory_bytes` (default: this machine's memory).
    """
    step = step_work(params, geo)
    steps = params["num_inference_steps"]
    decode = float(decode_flops(params, geo))
    elements = float(decode_elements(params, geo))
    tiled = decode_tiled(params, geo, memory_bytes or memory_limit_bytes())
    if tiled:
        decode *= tiling_overlap(params, geo)
        elements *= tiling_overlap(params, geo)
    decoding = {"conv": decode}
    if elements:
        decoding["vae_elements"] = elements
    scores = vae_attention_scores(params, geo, tiled)
    if scores:
        decoding["vae_attention"] = float(scores)
    text = {"linear": float(text_flops(params, geo))}
    for kind, amount in image_work(params, geo).items():
        text[kind] = text.get(kind, 0.0) + amount
    return {
        "starting": {"fixed": 1.0},
        "loading_model": {"fixed": 1.0, "bytes": float(geo.weight_bytes)},
        "encoding_text": text,
        "denoising": {**{kind: float(amount) * steps for kind, amount in step.items()}, "steps": float(steps)},
        "decoding": decoding,
        "writing_video": {"voxels": float(video_voxels(params))},
    }


# Measured with bench/stage_memory.py (13B architecture, 640x480x61): besides its
# weights, the transformer stage held ~4.9 GiB: about 16 activations of
# tokens x width in fp32, one dual-stream block's weights upcast to fp32, and
# the interpreter; the text stage ~4.1 GiB: the embedding table and one decoder
# layer upcast to fp32, and the interpreter.
ACTIVATIONS_PER_TOKEN_WIDTH = 16
PROCESS_OVERHEAD_BYTES = 2**30
# The 1.5 VAE decoding one 256 x 256 tile of 61 frames in bf16 (bench/stage_memory.py, 2026-11-30)
# peaked at 9.3 GiB: 0.4 GiB of process, up to 2.3 GiB of weights and ~6.6 GiB beside them, about
# 7 full-size activations (61 x 256 x 256 voxels x 128 channels, 1 GiB each in bf16).
VAE_ACTIVATIONS = 7


def decode_activation_bytes(params, geo, dtype_bytes=4):
    """Bytes of the VAE decoder's biggest activation (its full-size level) for what it decodes at
    once: a tile's frames x pixels when tiled (1.5: in space only; 13B: 16-frame chunks too)."""
    tiled = decode_tiled(params, geo, memory_limit_bytes())
    frames, height, width = params["video_length"], params["height"], params["width"]
    if tiled:
        height, width = min(height, TILE), min(width, TILE)
        if not geo.vae_attention:
            frames = min(frames, CHUNK_FRAMES)
    return frames * height * width * geo.vae_channels[0] * dtype_bytes


def stage_overheads(params, geo, dtype_bytes=4):
    """Bytes each big stage needs beside its stored weights, for `params`: `{component: bytes}`.

    `dtype_bytes`: the compute dtype's size, for the VAE's activations (measured in bf16).
    """
    tokens = sequence_length(params, geo)
    width = geo.width
    tiled = decode_tiled(params, geo, memory_limit_bytes())
    # 1.5's VAE attention: a dense causal mask in the compute dtype over a tile's latent positions.
    one = dict(params, width=min(params["width"], TILE), height=min(params["height"], TILE)) if tiled else params
    mask = dtype_bytes * vae_attention_scores(one, geo, tiled=False)
    return {
        "transformer": ACTIVATIONS_PER_TOKEN_WIDTH * tokens * width * 4 + 24 * width * width * 4
        + PROCESS_OVERHEAD_BYTES,
        "text_encoder": (geo.text_vocab * geo.text_hidden + geo.text_layer_params) * 4 + PROCESS_OVERHEAD_BYTES,
        "vae": VAE_ACTIVATIONS * decode_activation_bytes(params, geo, dtype_bytes) + mask + PROCESS_OVERHEAD_BYTES,
    }
