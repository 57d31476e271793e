"""A HunyuanVideo pipeline run one stage at a time, holding only the weights of the stage at hand.

The 13B model cannot have all its parts resident on a 32 GB host (about 41 GB of
bf16 weights with its text encoder), and it need not: the text encoders are only
used before denoising, the transformer only during it, the VAE only after. So:

1. text: load the text encoders, encode the prompt(s), free them;
   image (image-to-video models): load the image encoders (1.5: SigLIP; both: the
   VAE's encoder), encode the image, free them;
2. denoise: load the transformer, run the pipeline's own loop to latents, free it;
3. decode: load the VAE, decode (tiled when the video is big), free it.

Every family (hunyuan_core/families.py, read from the folder's model_index.json)
runs this way; what its stages call is in runner/family_calls.py. Every stage is
still the pipeline's own code (`encode_prompt`, `__call__` with
`output_type="latent"`, `vae.decode`); components are loaded with their
`from_pretrained` from the same local folder, memory-mapped when stored in the
file's own dtype, and upcast layer by layer when stored smaller than the compute
dtype (see hunyuan_core/precision.py; runner/casting.py applies it). How each
stage runs beside its weights (prompt template, step cache, tiled decoding) is
in runner/stage_options.py; what to do is the core's run plan
(hunyuan_core/run_plan.py).
"""

import importlib
import json
from pathlib import Path

import diffusers
import torch
from diffusers.hooks import apply_layerwise_casting

from hunyuan_core import cost_model, families
from runner.beats import watch_blocks
from runner.casting import DTYPES, casting_skips, upcast_unhooked
from runner.family_calls import IMAGE_STAGE, calls_for
from runner.memory import StageMemory, release
from runner.stage_options import configure_decoding, step_cache_config
from runner.stage_options import prompt_template  # noqa: F401  (reached here by tests and benches)
from runner.vae_norms import use_channel_rms_norms

# On a GPU, offload a component block by block when its weights exceed this share of free memory.
GPU_RESIDENT_SHARE = 0.8


def select_device(requested):
    """'cuda' when asked for, or when 'auto' and a GPU is present; else 'cpu'."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("DEVICE=cuda was requested but no CUDA device is available")
    if requested in ("cuda", "cpu"):
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


class StagedPipeline:
    """One job's pipeline, loaded and freed stage by stage."""

    def __init__(self, model_dir, device, plan, step_cache=None, keep_loaded=False, beat=None):
        self.model_dir = str(model_dir)
        # Progress heartbeat (hunyuan_core/heartbeat.py): called around loads and in every block.
        self.beat = beat or _no_beat
        self.device = device
        self.compute = DTYPES[plan["compute_dtype"]]
        self.storage = {name: DTYPES[entry["dtype"]] for name, entry in plan.get("storage", {}).items()}
        self.file_dtypes = {
            name: DTYPES.get(entry.get("file_dtype"), self.compute) for name, entry in plan.get("storage", {}).items()
        }
        self.step_cache = step_cache
        self.keep_loaded = keep_loaded  # tests reuse one pipeline for many renders
        self.memory = StageMemory(torch.cuda if device == "cuda" else None)
        self.index = json.loads((Path(model_dir) / "model_index.json").read_text())
        self.family = families.family_of(model_dir)
        self.calls = calls_for(self.family, model_dir)
        # Tokenizers, scheduler (and guider) only: the big components are loaded by their stages.
        self.beat()
        self.pipe = self.calls.construct(getattr(diffusers, self.family.pipeline_class))
        self.beat()
        self.pipe.set_progress_bar_config(disable=True)

    # -- loading -----------------------------------------------------------

    def _load(self, name):
        """Load one component from its subfolder in its storage dtype, ready to compute in the compute dtype."""
        library, class_name = self.index[name]
        cls = getattr(importlib.import_module(library), class_name)
        storage = self.storage.get(name, self.compute)
        # Loaders cannot create fp8 modules directly: load in the file's own dtype (memory-mapped,
        # no copy) and let layerwise casting convert the weights to fp8.
        load_dtype = storage if storage != torch.float8_e4m3fn else self.file_dtypes.get(name, self.compute)
        # Loading has no hooks to beat in: beat on either side (RUNNER_STALL_SECONDS covers a slow disk).
        self.beat()
        module = cls.from_pretrained(self.model_dir, subfolder=name, dtype=load_dtype, local_files_only=True)
        self.beat()
        module.eval().requires_grad_(False)
        # Before any hook wraps their forward: the 1.5 VAE's norms in fewer passes (runner/vae_norms.py).
        use_channel_rms_norms(module)
        if storage != self.compute:
            apply_layerwise_casting(module, storage_dtype=storage, compute_dtype=self.compute,
                                    skip_modules_pattern=casting_skips(module, storage, load_dtype))
            # After a conversion, copy what was left unconverted too: one tensor still backed by
            # the memory-mapped checkpoint keeps the whole file's pages resident.
            upcast_unhooked(module, self.compute, copy=storage != load_dtype, beat=self.beat)
        watch_blocks(module, self.beat)
        module = self._place(module, storage)
        self.beat()
        return module

    def _place(self, module, storage):
        if self.device != "cuda":
            return module
        size = sum(p.numel() for p in module.parameters()) * torch.tensor([], dtype=storage).element_size()
        free, _total = torch.cuda.mem_get_info()
        if size > GPU_RESIDENT_SHARE * free and hasattr(module, "enable_group_offload"):
            # Too big for the card: keep weights in host memory and stream them in a block at a time.
            module.enable_group_offload(
                onload_device=torch.device("cuda"), offload_device=torch.device("cpu"),
                offload_type="block_level", num_blocks_per_group=1,
            )
            return module
        return module.to("cuda")

    def _free(self, *names):
        if self.keep_loaded:
            return
        for name in names:
            setattr(self.pipe, name, None)
        release()
        if self.device == "cuda":
            torch.cuda.empty_cache()

    # -- stages ------------------------------------------------------------

    @torch.no_grad()
    def encode(self, params, image=None):
        """Stage 1: encode the prompt (and negative prompt under real CFG; with the image for the
        13B image-to-video model, a PIL image); returns pipeline arguments."""
        self.memory.start("text_encoders")
        names = self.calls.text_components
        for name in names:
            if getattr(self.pipe, name) is None:
                setattr(self.pipe, name, self._load(name))
        self.memory.loaded("text_encoders")
        kwargs = self.calls.encode(self.pipe, params, image, self.device)
        self.memory.end("text_encoders")
        self._free(*names)
        self.memory.freed("text_encoders")
        return kwargs

    @torch.no_grad()
    def encode_image(self, params, image):
        """Stage 1b, image-to-video models only: encode the input image (a PIL image) with the
        image encoders, which are freed after; returns what the denoising stage conditions on."""
        names = self.calls.image_components
        if not names:
            return {}
        self.memory.start(IMAGE_STAGE)
        for name in names:
            if getattr(self.pipe, name) is None:
                setattr(self.pipe, name, self._load(name))
        self.memory.loaded(IMAGE_STAGE)
        condition = self.calls.encode_image(self.pipe, params, image, self.device, self.compute)
        self.memory.end(IMAGE_STAGE)
        self._free(*names)
        self.memory.freed(IMAGE_STAGE)
        return condition

    @torch.no_grad()
    def denoise(self, params, prompt_kwargs, on_step, on_loaded=None, condition=None):
        """Stage 2: run the denoising loop to latents; `on_loaded()` once the transformer is
        loaded, `on_step(index)` after each step. `condition`: encode_image's result."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        self.memory.start("transformer")
        if self.pipe.transformer is None:
            self.pipe.transformer = self._load("transformer")
        self.memory.loaded("transformer")
        if on_loaded is not None:
            on_loaded()
        transformer = self.pipe.transformer
        cache = step_cache_config(self.step_cache, self.device)
        if cache is not None:
            transformer.enable_cache(cache)
        # flow_shift is the scheduler's shift, not a pipeline argument.
        self.pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(
            self.pipe.scheduler.config, shift=params["flow_shift"]
        )
        # A CPU generator gives the same noise for a seed on every device.
        generator = torch.Generator(device="cpu").manual_seed(params["seed"])
        kwargs, undo = self.calls.call(self.pipe, params, prompt_kwargs, condition or {}, on_step, generator)
        try:
            latents = self.pipe(**kwargs).frames
        finally:
            undo()
            if cache is not None:
                transformer.disable_cache()
        self.memory.end("transformer")
        del transformer
        self._free("transformer")
        self.memory.freed("transformer")
        return latents

    @torch.no_grad()
    def decode(self, latents, params):
        """Stage 3: decode latents to frames, a uint8 array (frames, height, width, 3); returns (frames, mode)."""
        self.memory.start("vae")
        if self.pipe.vae is None:
            self.pipe.vae = self._load("vae")
        self.memory.loaded("vae")
        vae = self.pipe.vae
        mode = configure_decoding(vae, params, cost_model.geometry(self.model_dir), self.device)
        video = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        self.beat()
        frames = self.pipe.video_processor.postprocess_video(video, output_type="pt")[0]  # (T, C, H, W) in [0, 1]
        frames = (frames.permute(0, 2, 3, 1).float() * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        self.beat()
        del video, vae
        self.memory.end("vae")
        self._free("vae")
        self.memory.freed("vae")
        return frames, mode


def _no_beat(*_ignored):
    """No heartbeat (tests and benchmarks that use the pipeline outside a job)."""


