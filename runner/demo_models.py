"""Build the embedded demo models of every HunyuanVideo family, offline and tiny.

Like today's 13B text-to-video demo (runner/tiny_model.py), each is the real
pipeline class with the real component classes, tiny configs and seeded random
weights, saved with `save_pretrained` as an ordinary diffusers folder and loaded
back through `from_pretrained`, exactly like real weights. Their videos are noise.

What stays real, because the service's size rules and cost model depend on it:
the VAE compression (8x/4x for 13B, 16x/4x for 1.5), the patch sizes, the number
of image tokens (576 Llava tokens for the 13B image-to-video model, 729 SigLIP
tokens for 1.5) and the pipelines' fixed prompt lengths (1000 Qwen tokens + 256
ByT5 tokens for 1.5). Only widths and depths shrink. The 1.5 demos' transformers
have a `target_size` of 256, so their size buckets are a scaled-down 480p
(336x192 for 16:9, 256x256 square).

Run `python -m runner.demo_models DEMO_NAME DEST` to build one by hand.

Just over 300 lines: three families' tiny configurations sit side by side so their
shared sizes (image tokens, prompt lengths, compression) can be compared at a glance.
"""

import argparse
import json
import sys
from pathlib import Path

from hunyuan_core import families
from hunyuan_core.model_source import METADATA_FILE
from runner import demo_tokenizers as tok
from runner import tiny_model

# A scaled-down 480p: the buckets of a 256x256 area (16:9 is 336x192).
DEMO_TARGET_SIZE = 256
# Llava-1.5's CLIP ViT-L/14-336 yields 24x24 = 576 image tokens; SigLIP-384/14 yields 27x27 = 729.
# Tiny vision towers keep those counts with 2-pixel patches on small images.
LLAVA_IMAGE_SIDE = 48
SIGLIP_IMAGE_SIDE = 54
VISION_PATCH = 2
# OpenAI CLIP's and SigLIP's normalisation constants, as in the real processors' configs.
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)

LATENT_CHANNELS_15 = 4
TRANSFORMER_15_CONFIG = dict(
    # Noisy latents + the image's latents + a mask channel, as in the real 65 = 32 + 32 + 1.
    in_channels=2 * LATENT_CHANNELS_15 + 1,
    out_channels=LATENT_CHANNELS_15,
    num_attention_heads=2,
    attention_head_dim=8,
    num_layers=1,
    num_refiner_layers=1,
    mlp_ratio=2.0,
    patch_size=1,
    patch_size_t=1,
    text_embed_dim=16,
    text_embed_2_dim=8,
    image_embed_dim=8,
    rope_axes_dim=(2, 2, 4),
    target_size=DEMO_TARGET_SIZE,
)
# Five blocks, four of them downsampling: the real 16x spatial and 4x temporal compression.
VAE_15_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=LATENT_CHANNELS_15,
    # Narrow at full resolution, where decoding spends its time.
    block_out_channels=(4, 4, 8, 8, 8),
    layers_per_block=0,
    spatial_compression_ratio=16,
    temporal_compression_ratio=4,
)
QWEN_CONFIG = dict(
    hidden_size=16,
    intermediate_size=32,
    # The pipeline reads the third hidden state from the end: three layers make that a real layer's output.
    num_hidden_layers=3,
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=2048,
    # Qwen2.5-VL's multimodal rotary sections must fill half the head dimension (8 / 2).
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [1, 1, 2]},
)
BYT5_CONFIG = dict(d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2)
SIGLIP_CONFIG = dict(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2)
LLAVA_VISION_CONFIG = dict(hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                           projection_dim=8)


def build_hunyuanvideo_i2v():
    """The 13B image-to-video pipeline in miniature: today's demo transformer and VAE, plus Llava."""
    import torch
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoImageToVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    tokenizer = tok.llama_tokenizer([tok.LLAVA_IMAGE_TOKEN])
    tokenizer_2 = tok.clip_tokenizer()
    torch.manual_seed(0)
    # "token_replace": the current HunyuanVideo-I2V (16 latent channels in, distilled guidance);
    # the first release ("latent_concat", 33 channels) drops 4 frames and needs true CFG.
    transformer = HunyuanVideoTransformer3DModel(**tiny_model.TRANSFORMER_CONFIG, image_condition_type="token_replace")
    torch.manual_seed(1)
    vae = AutoencoderKLHunyuanVideo(**tiny_model.VAE_CONFIG)
    torch.manual_seed(2)
    text_encoder = LlavaForConditionalGeneration(
        LlavaConfig(
            vision_config=CLIPVisionConfig(
                image_size=LLAVA_IMAGE_SIDE, patch_size=VISION_PATCH, **LLAVA_VISION_CONFIG
            ),
            text_config=LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                    **tiny_model.LLAMA_CONFIG),
            image_token_index=tokenizer.convert_tokens_to_ids(tok.LLAVA_IMAGE_TOKEN),
            image_seq_length=(LLAVA_IMAGE_SIDE // VISION_PATCH) ** 2,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    torch.manual_seed(3)
    text_encoder_2 = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer_2),
            bos_token_id=tokenizer_2.bos_token_id,
            eos_token_id=tokenizer_2.eos_token_id,
            pad_token_id=tokenizer_2.pad_token_id,
            **tiny_model.CLIP_CONFIG,
        )
    )
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": LLAVA_IMAGE_SIDE},
        crop_size={"height": LLAVA_IMAGE_SIDE, "width": LLAVA_IMAGE_SIDE},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    return HunyuanVideoImageToVideoPipeline(
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        transformer=transformer.eval(),
        vae=vae.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer_2=tokenizer_2,
        image_processor=image_processor,
    )


def build_hunyuanvideo15(image_to_video=False, overrides=None):
    """HunyuanVideo 1.5 in miniature (text-to-video, or image-to-video with a SigLIP image encoder);
    `overrides` (`{component: {config key: value}}`) make a bigger one (bench/scaled_down.py)."""
    overrides = overrides or {}
    import torch
    from diffusers import (
        AutoencoderKLHunyuanVideo15,
        ClassifierFreeGuidance,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideo15ImageToVideoPipeline,
        HunyuanVideo15Pipeline,
        HunyuanVideo15Transformer3DModel,
    )
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel, T5Config, T5EncoderModel

    tokenizer = tok.qwen_tokenizer()
    tokenizer_2 = tok.byt5_tokenizer()
    torch.manual_seed(0)
    transformer = HunyuanVideo15Transformer3DModel(
        **{**TRANSFORMER_15_CONFIG, **overrides.get("transformer", {})}, task_type="i2v" if image_to_video else "t2v"
    )
    torch.manual_seed(1)
    vae = AutoencoderKLHunyuanVideo15(**{**VAE_15_CONFIG, **overrides.get("vae", {})})
    torch.manual_seed(2)
    text_encoder = Qwen2_5_VLTextModel(
        Qwen2_5_VLTextConfig(vocab_size=len(tokenizer), bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id,
                             **{**QWEN_CONFIG, **overrides.get("text_encoder", {})})
    )
    torch.manual_seed(3)
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2),
                                             **{**BYT5_CONFIG, **overrides.get("text_encoder_2", {})}))
    components = dict(
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        transformer=transformer.eval(),
        vae=vae.eval(),
        # Tencent: flow shift 5 at 480p (the demo's scaled-down buckets count as 480p).
        scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer_2=tokenizer_2,
        guider=ClassifierFreeGuidance(guidance_scale=6.0),
    )
    if not image_to_video:
        return HunyuanVideo15Pipeline(**components)
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(4)
    image_encoder = SiglipVisionModel(
        SiglipVisionConfig(image_size=SIGLIP_IMAGE_SIDE, patch_size=VISION_PATCH, **SIGLIP_CONFIG)
    )
    feature_extractor = tok.square_image_processor(SiglipImageProcessor, SIGLIP_IMAGE_SIDE, SIGLIP_MEAN, SIGLIP_STD)
    return HunyuanVideo15ImageToVideoPipeline(
        **components, image_encoder=image_encoder.eval(), feature_extractor=feature_extractor
    )


def _metadata(family, pipeline):
    """The service's metadata for a demo model: name, description, and its tokenizer's prompt offsets."""
    meta = {
        "name": family.demo_folder,
        "demo": True,
        "description": (
            f"Embedded demo model: a tiny {family.name} pipeline ({family.task}) with random weights, built "
            "offline by the service. It exercises the whole generation path but its videos are noise."
        ),
        # Character- and byte-level tokenizers: estimates count prompt tokens with this.
        "chars_per_token": 1.0,
    }
    if family.name == "hunyuanvideo-i2v":
        meta["prompt_template"] = _llava_template_offsets(pipeline.tokenizer)
    elif family.name.startswith("hunyuanvideo-1.5"):
        meta["prompt_template_encode_start_idx"] = tok.chat_prefix_length(pipeline.tokenizer, pipeline.system_message)
    return meta


def _llava_template_offsets(tokenizer):
    """Where the 13B image-to-video template's pieces fall with this tokenizer.

    The pipeline's defaults (crop 103, image tokens at 5..581) count real Llama-3
    tokens; the demo's character-level tokenizer needs its own counts, or the crop
    would cut the prompt and the image tokens would be misplaced.
    """
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE

    prefix = tokenizer(DEFAULT_PROMPT_TEMPLATE["template"].split("{}")[0])["input_ids"]
    start = prefix.index(tokenizer.convert_tokens_to_ids(tok.LLAVA_IMAGE_TOKEN))
    length = (LLAVA_IMAGE_SIDE // VISION_PATCH) ** 2
    return {"crop_start": len(prefix), "image_emb_start": start, "image_emb_end": start + length,
            "image_emb_len": length}


BUILDERS = {
    "demo-hunyuanvideo": tiny_model.build_pipeline,
    "demo-hunyuanvideo-i2v": build_hunyuanvideo_i2v,
    "demo-hunyuanvideo-1.5": build_hunyuanvideo15,
    "demo-hunyuanvideo-1.5-i2v": lambda: build_hunyuanvideo15(image_to_video=True),
}


def build_demo_model(demo_name, dest):
    """Build the demo model `demo_name` (e.g. "demo-hunyuanvideo-1.5") as a diffusers folder at `dest`.

    Atomic and idempotent like the 13B demo's build (tiny_model.save_model_folder).
    Returns the path; raises UnknownFamilyError for an unknown name.
    """
    family = families.by_demo_name(demo_name)
    if family.name == "hunyuanvideo":
        return tiny_model.build_tiny_model(dest)
    return tiny_model.save_model_folder(dest, BUILDERS[demo_name], lambda pipe: _metadata(family, pipe))


def prepare_pipeline(pipeline, folder):
    """Apply a model folder's service metadata to its loaded pipeline; returns extra `__call__` arguments.

    The demo models' tokenizers count the prompt templates differently from the
    real ones; their metadata file says how. A folder without one (real weights)
    keeps the pipeline's own defaults.
    """
    try:
        meta = json.loads((Path(folder) / METADATA_FILE).read_text())
    except (OSError, ValueError):
        meta = {}
    kwargs = {}
    if "prompt_template_encode_start_idx" in meta:
        pipeline.prompt_template_encode_start_idx = meta["prompt_template_encode_start_idx"]
    if "prompt_template" in meta:
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE

        kwargs["prompt_template"] = {**DEFAULT_PROMPT_TEMPLATE, **meta["prompt_template"]}
    if "prompt_template_crop_start" in meta:
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

        kwargs["prompt_template"] = {**DEFAULT_PROMPT_TEMPLATE, "crop_start": meta["prompt_template_crop_start"]}
    return kwargs


def main(argv=None):
    """Command line: build one demo model into the given folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", choices=sorted(BUILDERS), help="which demo model")
    parser.add_argument("dest", help="folder to create (skipped if it already holds a complete build)")
    args = parser.parse_args(argv)
    path = build_demo_model(args.demo, args.dest)
    print(f"{args.demo} ready at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
