"""How a stage runs, beside its weights: the prompt template, the step cache and VAE decoding.

Each turns a setting or a rule of the core (hunyuan_core/run_plan.py) into the
diffusers objects a stage needs.
"""

import json
from pathlib import Path

import torch
from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

from hunyuan_core import run_plan
from hunyuan_core.host import memory_limit_bytes
from hunyuan_core.model_source import METADATA_FILE


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


def step_cache_config(setting, device):
    """A diffusers cache config from the STEP_CACHE setting, or None.

    `setting` is `{"kind": "none"|"first_block"|"taylorseer", "threshold", "interval"}`.
    """
    kind = (setting or {}).get("kind", "none")
    if kind == "first_block":
        from diffusers import FirstBlockCacheConfig

        return FirstBlockCacheConfig(threshold=float(setting.get("threshold", 0.05)))
    if kind == "taylorseer":
        from diffusers import TaylorSeerCacheConfig

        return TaylorSeerCacheConfig(
            cache_interval=int(setting.get("interval", 4)),
            disable_cache_before_step=int(setting.get("warmup", 3)),
            # bf16 arithmetic is emulated on most CPUs; keep the Taylor factors in fp32 there.
            taylor_factors_dtype=torch.bfloat16 if device == "cuda" else torch.float32,
        )
    return None


def configure_decoding(vae, params, geo, device):
    """Decode in one piece when it fits comfortably in memory, tiled otherwise.

    The rule is the run plan's (cost_model.decode_tiled), so estimates price the same choice:
    the real VAE at 640x480x61 needs ~10 GB per full-size activation untiled.
    """
    if device == "cuda":
        memory, _total = torch.cuda.mem_get_info()
    else:
        memory = memory_limit_bytes()
    # The 13B VAE also decodes frame chunk by frame chunk when tiling; the 1.5 VAE tiles in space only.
    framewise = hasattr(vae, "use_framewise_decoding")
    if run_plan.decoding(params, geo, memory) == "whole":
        vae.disable_tiling()
        if framewise:
            vae.use_framewise_decoding = False
        return "whole"
    vae.enable_tiling()
    if framewise:
        vae.use_framewise_decoding = True
    return "tiled"
