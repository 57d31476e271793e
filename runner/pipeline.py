"""Loading HunyuanVideoPipeline and running its three stages for one job.

The stages are run separately (text encoding, denoising to latents, VAE
decoding) so the job can report each as a phase. Each is still the pipeline's
own code: `encode_prompt`, `__call__` with `output_type="latent"`, `vae.decode`.
"""

import json
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, HunyuanVideoPipeline
from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

from hunyuan_api.model_source import METADATA_FILE

# Decode the whole video at once when its largest activation stays under this
# share of free memory; otherwise tile it (the real VAE at 640x480x61 needs ~10 GB
# per full-size activation untiled, and its attention mask far more).
UNTILED_DECODE_MEMORY_SHARE = 0.25


def select_device(requested):
    """'cuda' when asked for, or when 'auto' and a GPU is present; else 'cpu'."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("DEVICE=cuda was requested but no CUDA device is available")
    if requested in ("cuda", "cpu"):
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def select_dtype(device):
    """bf16 on a GPU; fp32 on a CPU, where bf16 matrix products are emulated and ~50x slower."""
    return torch.bfloat16 if device == "cuda" else torch.float32


def load(model_dir, device, dtype):
    """Load the pipeline from a local diffusers folder; never reaches out to a hub."""
    pipe = HunyuanVideoPipeline.from_pretrained(model_dir, dtype=dtype, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def prompt_template(model_dir):
    """The pipeline's prompt template, with the crop length the model's tokenizer needs."""
    try:
        meta = json.loads((Path(model_dir) / METADATA_FILE).read_text())
    except (OSError, ValueError):
        meta = {}
    template = dict(DEFAULT_PROMPT_TEMPLATE)
    if "prompt_template_crop_start" in meta:
        template["crop_start"] = meta["prompt_template_crop_start"]
    return template


def encode_prompts(pipe, params, template, device):
    """Encode the prompt (and, under real CFG, the negative prompt) into pipeline arguments."""
    embeds, pooled, mask = pipe.encode_prompt(prompt=params["prompt"], prompt_template=template, device=device)
    kwargs = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled, "prompt_attention_mask": mask}
    if params["guidance_scale"] > 1.0:
        # Real CFG needs an unconditional branch; Tencent's code uses an empty negative prompt.
        negative = params.get("negative_prompt") or ""
        n_embeds, n_pooled, n_mask = pipe.encode_prompt(prompt=negative, prompt_template=template, device=device)
        kwargs.update(
            negative_prompt_embeds=n_embeds,
            negative_pooled_prompt_embeds=n_pooled,
            negative_prompt_attention_mask=n_mask,
        )
    return kwargs


def denoise(pipe, params, prompt_kwargs, on_step):
    """Run the denoising loop and return latents; `on_step(index)` is called after each step."""
    # flow_shift is the scheduler's shift, not a pipeline argument.
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, shift=params["flow_shift"])
    # A CPU generator gives the same noise for a seed on every device.
    generator = torch.Generator(device="cpu").manual_seed(params["seed"])

    def callback(_pipe, index, _timestep, callback_kwargs):
        on_step(index)
        return callback_kwargs

    result = pipe(
        **prompt_kwargs,
        height=params["height"],
        width=params["width"],
        num_frames=params["video_length"],
        num_inference_steps=params["num_inference_steps"],
        guidance_scale=params["embedded_guidance_scale"],
        true_cfg_scale=params["guidance_scale"],
        generator=generator,
        output_type="latent",
        callback_on_step_end=callback,
    )
    return result.frames


def _available_memory_bytes(device):
    if device == "cuda":
        free, _total = torch.cuda.mem_get_info()
        return free
    import psutil

    return psutil.virtual_memory().available


def _configure_decoding(vae, latents, device):
    """Decode in one piece when it fits comfortably in memory, tiled otherwise."""
    frames, height, width = latents.shape[2:]
    full_voxels = ((frames - 1) * vae.config.temporal_compression_ratio + 1) * (
        height * width * vae.config.spatial_compression_ratio**2
    )
    full_size_channels = vae.config.block_out_channels[0]
    # A resnet at full size holds its input, its output and two intermediates.
    activation = full_voxels * full_size_channels * latents.element_size() * 4
    if activation < UNTILED_DECODE_MEMORY_SHARE * _available_memory_bytes(device):
        vae.disable_tiling()
        vae.use_framewise_decoding = False
        return "whole"
    vae.enable_tiling()
    vae.use_framewise_decoding = True
    return "tiled"


@torch.no_grad()
def decode(pipe, latents):
    """Decode latents to frames: a uint8 array of shape (frames, height, width, 3)."""
    vae = pipe.vae
    mode = _configure_decoding(vae, latents, latents.device.type)
    video = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    frames = pipe.video_processor.postprocess_video(video, output_type="pt")[0]  # (T, C, H, W) in [0, 1]
    frames = (frames.permute(0, 2, 3, 1).float() * 255).round().clamp(0, 255).to(torch.uint8)
    return frames.cpu().numpy(), mode
