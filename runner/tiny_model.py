"""Build the embedded default model: a tiny random-weight HunyuanVideo pipeline.

The service has to run, and be tested, on machines with no GPU and no access to a
model hub. So it builds its own demo pipeline: the same diffusers and transformers
classes as the real 13B checkpoint, with tiny configs and tokenizers made from an
in-memory vocabulary, seeded so that every build is byte-for-byte identical. It is
saved as an ordinary diffusers folder and loaded through `from_pretrained`, exactly
like real weights. Its videos are noise: it exists to exercise the whole path.

Run `python -m runner.tiny_model DEST` to build it by hand.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Bump the version in EMBEDDED_MODEL_NAME when anything below changes what gets
# built, so an old build is never mistaken for the current one.
from hunyuan_core.model_source import EMBEDDED_MODEL_NAME, METADATA_FILE

# The tokenizers are shared with the other families' demo models (runner/demo_models.py);
# the old private names stay for the benchmarks that build bigger variants.
from runner.demo_tokenizers import LLAMA_SPECIAL_TOKENS  # noqa: F401  (re-exported)
from runner.demo_tokenizers import clip_tokenizer as _clip_tokenizer
from runner.demo_tokenizers import llama_tokenizer as _llama_tokenizer

# Sized for the 60 s budget of the seed's default request (640x480, 61 frames, 30
# steps) on two cores: one attention head keeps the 19k-token attention cheap, and
# a VAE with no extra resnets and no mid-block attention keeps decoding at full
# resolution to a few convolutions. Patch size and compression ratios match the
# real model, so the same sizes are valid for both.
TRANSFORMER_CONFIG = dict(
    in_channels=4,
    out_channels=4,
    num_attention_heads=1,
    attention_head_dim=16,
    num_layers=1,
    num_single_layers=0,
    num_refiner_layers=1,
    mlp_ratio=4.0,
    patch_size=2,
    patch_size_t=1,
    qk_norm="rms_norm",
    guidance_embeds=True,
    text_embed_dim=16,
    pooled_projection_dim=8,
    rope_theta=256.0,
    rope_axes_dim=(4, 6, 6),
)
VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    down_block_types=("HunyuanVideoDownBlock3D",) * 4,
    up_block_types=("HunyuanVideoUpBlock3D",) * 4,
    block_out_channels=(4, 4, 4, 4),
    layers_per_block=0,
    norm_num_groups=2,
    spatial_compression_ratio=8,
    temporal_compression_ratio=4,
    mid_block_add_attention=False,
)
LLAMA_CONFIG = dict(
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
)
CLIP_CONFIG = dict(
    hidden_size=8,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    projection_dim=8,
    max_position_embeddings=77,
)


def _prompt_template_crop_start(tokenizer):
    """Count the tokens of the pipeline's prompt template that come before the user's prompt.

    The pipeline's default `crop_start` (95) is right for the real Llama-3 tokenizer
    only; with the tiny tokenizer the template is longer, and the wrong crop would
    cut the prompt itself away.
    """
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

    prefix = DEFAULT_PROMPT_TEMPLATE["template"].split("{}")[0]
    return len(tokenizer(prefix)["input_ids"])


def build_pipeline(overrides=None):
    """Create the tiny pipeline in memory, with weights drawn from fixed seeds.

    `overrides` maps a component ("transformer", "vae", "text_encoder",
    "text_encoder_2") to config values replacing the tiny ones: benchmarks and
    tests use it to build bigger models of the same architecture.
    """
    overrides = overrides or {}
    import torch
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    tokenizer = _llama_tokenizer()
    tokenizer_2 = _clip_tokenizer()
    # Each component gets its own seed so changing one config leaves the others' weights alone.
    torch.manual_seed(0)
    transformer = HunyuanVideoTransformer3DModel(**{**TRANSFORMER_CONFIG, **overrides.get("transformer", {})})
    torch.manual_seed(1)
    vae = AutoencoderKLHunyuanVideo(**{**VAE_CONFIG, **overrides.get("vae", {})})
    torch.manual_seed(2)
    llama = {**LLAMA_CONFIG, **overrides.get("text_encoder", {})}
    text_encoder = LlamaModel(LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **llama))
    torch.manual_seed(3)
    text_encoder_2 = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer_2),
            bos_token_id=tokenizer_2.bos_token_id,
            eos_token_id=tokenizer_2.eos_token_id,
            pad_token_id=tokenizer_2.pad_token_id,
            **{**CLIP_CONFIG, **overrides.get("text_encoder_2", {})},
        )
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    return HunyuanVideoPipeline(
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        transformer=transformer.eval(),
        vae=vae.eval(),
        scheduler=scheduler,
        text_encoder_2=text_encoder_2.eval(),
        tokenizer_2=tokenizer_2,
    )


def service_metadata(pipeline):
    """What the service needs to know about this model beyond the diffusers files."""
    return {
        "name": EMBEDDED_MODEL_NAME,
        "demo": True,
        "description": (
            "Embedded demo model: a tiny HunyuanVideo pipeline with random weights, built offline by "
            "the service. It exercises the whole generation path but its videos are noise. Set "
            "MODEL_PATH to a diffusers-format HunyuanVideo folder to generate real videos."
        ),
        "prompt_template_crop_start": _prompt_template_crop_start(pipeline.tokenizer),
        # Its tokenizer has one token per character; estimates count prompt tokens with this.
        "chars_per_token": 1.0,
    }


def build_tiny_model(dest, overrides=None, name=None):
    """Build the tiny pipeline and save it as a diffusers folder at `dest`.

    `overrides` and `name` make a variant (see build_pipeline). Returns the path.
    """

    def metadata(pipeline):
        meta = service_metadata(pipeline)
        if name:
            meta["name"] = name
        return meta

    return save_model_folder(dest, lambda: build_pipeline(overrides), metadata)


def save_model_folder(dest, make_pipeline, make_metadata):
    """Save `make_pipeline()` as a diffusers folder at `dest`, with the service's metadata file.

    The folder appears atomically: it is written beside `dest` and renamed into
    place, so a crash never leaves a half-written model that looks complete. A
    folder already complete at `dest` is kept as it is. Returns the path.
    """
    dest = Path(dest)
    if (dest / METADATA_FILE).exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        pipeline = make_pipeline()
        pipeline.save_pretrained(staging, safe_serialization=True)
        # The metadata file is written last: its presence marks a complete model.
        (staging / METADATA_FILE).write_text(json.dumps(make_metadata(pipeline), indent=2) + "\n")
        os.chmod(staging, 0o755)  # mkdtemp creates it private
        os.replace(staging, dest)
    except OSError:
        # Another process finished the same build first; its copy is identical.
        if not (dest / METADATA_FILE).exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def main(argv=None):
    """Command line: build the tiny model into the given folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", help="folder to create (skipped if it already holds a complete build)")
    args = parser.parse_args(argv)
    path = build_tiny_model(args.dest)
    print(f"embedded model ready at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
