"""How much work a job is, by kind, from the model's own config files and the job's size.

Work is counted per phase and per kind (matrix products of linear layers,
attention, 3-D convolutions, pixels to encode, bytes to load), because each kind
runs at its own speed on a given host: `runner/calibrate.py` measures one rate per
kind at the model's own shapes, so one measurement carries over between sizes.
The formulas follow diffusers' HunyuanVideo code; see NOTES section 4. Every
family is priced by the same formulas from its geometry (hunyuan_core/cost_geometry.py):
what differs is how many tokens each encoder and the transformer run over, the
image encoders of image-to-video models, and 1.5's dense attention mask.
"""

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


def prompt_tokens(params, geo):
    """Tokens of the prompt after the template, padding trimmed (estimated from its length);
    0 for 1.5, whose fixed text tokens are counted in `geo.extra_tokens`."""
    if not geo.trims_prompt:
        return 0
    estimate = int(len(params.get("prompt") or "") / geo.chars_per_token) + 2
    return max(1, min(TEXT_TOKENS, estimate))


def sequence_length(params, geo):
    """Tokens the transformer attends over: video patches, the prompt's tokens and the family's fixed ones."""
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


# diffusers' tiled decoding: 256-pixel tiles every 192 pixels, 16-frame chunks every 12.
TILE, TILE_STRIDE, CHUNK_FRAMES, CHUNK_STRIDE = 256, 192, 16, 12
# The runner decodes in one piece when a full-size activation takes under this share of memory.
UNTILED_MEMORY_SHARE = 0.25


def decode_tiled(params, geo, memory_bytes):
    """Whether the runner will tile this video's decoding (run_plan.decoding; runner/stage_options.py applies it)."""
    activation = video_voxels(params) * geo.vae_channels[0] * 4 * 4
    if geo.family.startswith("hunyuanvideo-1.5"):
        # The 1.5 VAE's mid-block attention builds a dense causal fp32 mask over every latent
        # position (9.7 GB for 848x480x121 untiled); a 256-pixel tile keeps it small.
        frames, height, width = latent_shape(params, geo)
        activation += 4 * (frames * height * width) ** 2
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
        decode *= tiling_overlap(params, geo)
    text = {"linear": float(text_flops(params, geo))}
    for kind, amount in image_work(params, geo).items():
        text[kind] = text.get(kind, 0.0) + amount
    return {
        "starting": {"fixed": 1.0},
        "loading_model": {"fixed": 1.0, "bytes": float(geo.weight_bytes)},
        "encoding_text": text,
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
DENSE_MASKS = 3


def stage_overheads(params, geo):
    """Bytes each big stage needs beside its stored weights, for `params`: `{component: bytes}`."""
    tokens = sequence_length(params, geo)
    width = geo.width
    # 1.5's attention builds a dense token x token boolean mask: a row mask repeated, a column
    # mask repeated and their conjunction, alive together (2.6 GB each at 848x480x121).
    mask = DENSE_MASKS * tokens * tokens if geo.dense_mask else 0
    return {
        "transformer": ACTIVATIONS_PER_TOKEN_WIDTH * tokens * width * 4 + 24 * width * width * 4 + mask
        + PROCESS_OVERHEAD_BYTES,
        "text_encoder": (geo.text_vocab * geo.text_hidden + geo.text_layer_params) * 4 + PROCESS_OVERHEAD_BYTES,
    }
