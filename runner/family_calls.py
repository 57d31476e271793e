"""What each HunyuanVideo family does at each stage of a staged run.

runner/pipeline.py's StagedPipeline loads a component when its stage starts and
frees it after, whatever the family. What differs is said here, one class per
family: how the pipeline object is made without its big components, which
components the text and image stages need, how the prompt (and image) are
encoded ahead of the denoising loop, and what the pipeline's own `__call__` is
given so that it runs its loop on those encodings and returns latents.

Image-to-video: both image pipelines encode their image inside `__call__` (the
13B one VAE-encodes it while preparing latents; 1.5 runs SigLIP and VAE-encodes
the first frame). Keeping those components loaded through denoising would add
the 1.5 VAE (1.26B parameters, 5 GB in fp32) and SigLIP (0.4B) to the
transformer's stage, the one that decides whether a job fits. So the image stage
runs them before denoising, frees them, and the denoising call is handed the
results: 1.5's pipeline object gets `encode_image`/`_get_image_latents` answering
with them, the 13B one a stand-in VAE whose one `encode` answers with them.
"""

import json
from pathlib import Path
from types import SimpleNamespace

from hunyuan_core.run_plan import stage_components
from runner import demo_models
from runner.stage_options import prompt_template
from runner.unpadded import run_unpadded

IMAGE_STAGE = "image_encoders"


def _config(model_dir, component):
    try:
        return json.loads((Path(model_dir) / component / "config.json").read_text())
    except (OSError, ValueError):
        return {}


class Calls13B:
    """HunyuanVideoPipeline (13B text-to-video): Llama + CLIP, embedded guidance, true CFG as an option."""

    # Components the pipeline is made without: each is loaded by its stage.
    deferred = ("text_encoder", "text_encoder_2", "transformer", "vae")

    def __init__(self, family, model_dir):
        self.family = family
        self.model_dir = str(model_dir)
        # What the text and image stages load: the core's stage table (hunyuan_core/run_plan.py).
        self.text_components = stage_components(family.name, "text_encoders")
        self.image_components = stage_components(family.name, IMAGE_STAGE)

    def construct(self, pipeline_class):
        """The pipeline with tokenizers and scheduler only."""
        pipe = pipeline_class.from_pretrained(self.model_dir, local_files_only=True,
                                              **{name: None for name in self.deferred})
        vae = _config(self.model_dir, "vae")
        # Set by the pipeline from its VAE, which is not loaded yet.
        pipe.vae_scale_factor_temporal = vae.get("temporal_compression_ratio", 4)
        pipe.vae_scale_factor_spatial = vae.get("spatial_compression_ratio", 8)
        return pipe

    def template(self):
        """The Llama prompt template with this model's crop length."""
        return prompt_template(self.model_dir)

    def encode(self, pipe, params, image, device):
        """Pipeline arguments for the prompt, and the negative prompt under real CFG (Tencent: empty)."""
        template = self.template()
        kwargs = _trimmed(*pipe.encode_prompt(prompt=params["prompt"], prompt_template=template, device=device), "")
        if params["guidance_scale"] > 1.0:
            negative = params.get("negative_prompt") or ""
            kwargs.update(_trimmed(*pipe.encode_prompt(prompt=negative, prompt_template=template, device=device),
                                   "negative_"))
        return kwargs

    def encode_image(self, pipe, params, image, device, compute):
        """No image stage for text-to-video."""
        return {}

    def call(self, pipe, params, prompt_kwargs, condition, on_step, generator):
        """`(kwargs for pipe(...), undo)`: the denoising call on pre-encoded inputs, to latents."""

        def callback(_pipe, index, _timestep, callback_kwargs):
            on_step(index)
            return callback_kwargs

        kwargs = dict(
            prompt_kwargs,
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
        return kwargs, _nothing


class Calls13BImage(Calls13B):
    """HunyuanVideoImageToVideoPipeline: Llava encodes the prompt with the image; the VAE encodes the image."""

    def construct(self, pipeline_class):
        """As 13B, with the VAE's scaling factor and the demo's template offsets read from the folder."""
        pipe = super().construct(pipeline_class)
        # The pipeline reads the VAE's scaling factor at construction; the VAE is not loaded yet.
        pipe.vae_scaling_factor = _config(self.model_dir, "vae").get("scaling_factor", pipe.vae_scaling_factor)
        self.pipe_kwargs = demo_models.prepare_pipeline(pipe, self.model_dir)
        return pipe

    def template(self):
        """The Llava template (with the image tokens' place), the demo's offsets if it has its own."""
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE

        return self.pipe_kwargs.get("prompt_template", DEFAULT_PROMPT_TEMPLATE)

    def _interleave(self):
        # The pipeline's own choice: every 4th image token for token_replace, every 2nd for latent_concat.
        kind = _config(self.model_dir, "transformer").get("image_condition_type")
        return {"latent_concat": 2, "token_replace": 4}.get(kind, 1)

    def encode(self, pipe, params, image, device):
        """The prompt encoded by Llava with the image; under real CFG, the negative prompt with a black image."""
        import PIL.Image

        template = self.template()
        encoded = pipe.encode_prompt(image=image, prompt=params["prompt"], prompt_template=template, device=device,
                                     image_embed_interleave=self._interleave())
        kwargs = _trimmed(*encoded, "")
        if params["guidance_scale"] > 1.0:
            # What the pipeline itself pairs the negative prompt with.
            black = PIL.Image.new("RGB", (params["width"], params["height"]), 0)
            encoded = pipe.encode_prompt(image=black, prompt=params.get("negative_prompt") or "",
                                         prompt_template=template, device=device)
            kwargs.update(_trimmed(*encoded, "negative_"))
        return kwargs

    def encode_image(self, pipe, params, image, device, compute):
        """The image's latents, as the pipeline's prepare_latents takes them (stretched to the video's size)."""
        vae = pipe.vae
        pixels = pipe.video_processor.preprocess(image, params["height"], params["width"]).to(device, vae.dtype)
        latents = vae.encode(pixels.unsqueeze(2)).latent_dist.mode()
        return {"image": image, "image_latents": latents}

    def call(self, pipe, params, prompt_kwargs, condition, on_step, generator):
        """As 13B, with the image and its template; a stand-in VAE answers with the image's latents."""
        kwargs, _ = super().call(pipe, params, prompt_kwargs, condition, on_step, generator)
        kwargs.update(image=condition["image"], prompt_template=self.template())
        previous, pipe.vae = pipe.vae, _EncodedImage(condition["image_latents"])

        def undo():
            pipe.vae = previous

        return kwargs, undo


class Calls15(Calls13B):
    """HunyuanVideo15Pipeline: Qwen2.5-VL + ByT5, CFG through the guider, no step callback."""

    deferred = ("text_encoder", "text_encoder_2", "transformer")

    def construct(self, pipeline_class):
        """The pipeline with tokenizers, scheduler and guider; its VAE only as an empty shell.

        The 1.5 pipelines read `vae.config` while constructing; the VAE's classes are
        made on the meta device from its config (no weights), then dropped.
        """
        from accelerate import init_empty_weights

        index = json.loads((Path(self.model_dir) / "model_index.json").read_text())
        library, class_name = index["vae"]
        vae_class = getattr(__import__(library, fromlist=[class_name]), class_name)
        with init_empty_weights():
            shell = vae_class.from_config(vae_class.load_config(self.model_dir, subfolder="vae"))
        extra = {name: None for name in self.deferred}
        if "image_encoder" in index:
            extra["image_encoder"] = None
        pipe = pipeline_class.from_pretrained(self.model_dir, local_files_only=True, vae=shell, **extra)
        pipe.vae = None
        # Read from the transformer at construction, which is not loaded yet: a 720p model or the
        # demo (target size 256) would otherwise get 480p buckets.
        transformer = _config(self.model_dir, "transformer")
        pipe.target_size = transformer.get("target_size", pipe.target_size)
        pipe.vision_states_dim = transformer.get("image_embed_dim", pipe.vision_states_dim)
        demo_models.prepare_pipeline(pipe, self.model_dir)
        return pipe

    def encode(self, pipe, params, image, device):
        """Qwen and ByT5 encodings of the prompt (and negative prompt under guidance), padded to
        1000 + 256 tokens as `__call__` takes them; the transformer drops the padding (runner/unpadded.py)."""
        names = ("prompt_embeds", "prompt_embeds_mask", "prompt_embeds_2", "prompt_embeds_mask_2")
        dtype = pipe.text_encoder.dtype
        kwargs = dict(zip(names, pipe.encode_prompt(prompt=params["prompt"], device=device, dtype=dtype)))
        if params["guidance_scale"] > 1.0:
            # The pipeline encodes a missing negative prompt as "" too.
            encoded = pipe.encode_prompt(prompt=params.get("negative_prompt") or "", device=device, dtype=dtype)
            kwargs.update(zip(("negative_" + name for name in names), encoded))
        return kwargs

    def call(self, pipe, params, prompt_kwargs, condition, on_step, generator):
        """The guider set to the job's guidance, steps counted at the scheduler, pre-encoded prompts."""
        # Real classifier-free guidance is the guider's: 1.0 turns it off (one transformer pass per step).
        pipe.guider = pipe.guider.new(guidance_scale=params["guidance_scale"])
        # No step callback in 1.5's __call__: its scheduler steps once per denoising step, CFG or not.
        scheduler_step, count = pipe.scheduler.step, [0]

        def counted_step(*args, **kwargs):
            result = scheduler_step(*args, **kwargs)
            on_step(count[0])
            count[0] += 1
            return result

        pipe.scheduler.step = counted_step
        kwargs = dict(prompt_kwargs, num_frames=params["video_length"],
                      num_inference_steps=params["num_inference_steps"], generator=generator, output_type="latent")
        if not self.family.takes_image:
            kwargs.update(height=params["height"], width=params["width"])
        # The transformer sees only valid tokens and attends with no mask (exact: runner/unpadded.py).
        return kwargs, run_unpadded(pipe.transformer)


class Calls15Image(Calls15):
    """HunyuanVideo15ImageToVideoPipeline: as 1.5, plus SigLIP and the VAE-encoded first frame."""

    def encode_image(self, pipe, params, image, device, compute):
        """SigLIP's embedding and the VAE latents of the image, cropped to its bucket as the pipeline does."""
        processor = pipe.video_processor
        height, width = processor.calculate_default_height_width(height=image.size[1], width=image.size[0],
                                                                 target_size=pipe.target_size)
        if (width, height) != (params["width"], params["height"]):
            raise ValueError(f"the model makes {width}x{height} videos from this image, but the job asks for "
                             f"{params['width']}x{params['height']}")
        cropped = processor.resize(image, height=height, width=width, resize_mode="crop")
        embeds = pipe.encode_image(image=cropped, batch_size=1, device=device, dtype=compute)
        latents = pipe._get_image_latents(vae=pipe.vae, image_processor=processor, image=cropped, height=height,
                                          width=width, device=device)
        # The original goes to __call__, which picks the same bucket from it (a bucket-sized
        # picture may itself lie nearer another bucket).
        return {"image": image, "image_embeds": embeds, "image_latents": latents}

    def call(self, pipe, params, prompt_kwargs, condition, on_step, generator):
        """As 1.5, with the image; its encoders answered with the image stage's results."""
        kwargs, padded = super().call(pipe, params, prompt_kwargs, condition, on_step, generator)
        kwargs["image"] = condition["image"]
        embeds, latents = condition["image_embeds"], condition["image_latents"]
        # The pipeline's own image encoders, answered with what the image stage computed.
        pipe.encode_image = lambda image, batch_size, device, dtype: embeds.repeat(batch_size, 1, 1).to(device, dtype)
        pipe._get_image_latents = lambda **_ignored: latents

        def undo():
            del pipe.encode_image, pipe._get_image_latents
            padded()

        return kwargs, undo


class _EncodedImage:
    """Stands in for the VAE inside the 13B image pipeline's `__call__`: its one `encode` of
    the image answers with the latents the image stage computed."""

    def __init__(self, latents):
        self.latents = latents
        self.dtype = latents.dtype

    def encode(self, _pixels):
        """The image stage's latents, shaped like the VAE's output (`latent_dist.mode()`)."""
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: self.latents))


CALLS = {"hunyuanvideo": Calls13B, "hunyuanvideo-i2v": Calls13BImage, "hunyuanvideo-1.5": Calls15,
         "hunyuanvideo-1.5-i2v": Calls15Image}


def calls_for(family, model_dir):
    """The stage calls of `family` (hunyuan_core.families.Family) for the model in `model_dir`."""
    return CALLS[family.name](family, model_dir)


def _trimmed(embeds, pooled, mask, prefix):
    """Pipeline arguments for one 13B prompt, with the masked padding after it cut off.

    The pipeline pads every prompt to 256 tokens and masks the padding out of
    attention; dropping it is exact (masked keys contribute nothing, and what the
    padding positions compute is never read) and saves their share of every
    attention and text-stream layer: 20% of the tokens of a 256x256x13 video.
    """
    length = max(int(mask.sum(dim=1).max()), 1)
    return {
        f"{prefix}prompt_embeds": embeds[:, :length],
        f"{prefix}pooled_prompt_embeds": pooled,
        f"{prefix}prompt_attention_mask": mask[:, :length],
    }


def _nothing():
    """Nothing to undo after the denoising call."""
