"""bench/stage_memory.py for HunyuanVideo 1.5 (`--family hunyuanvideo-1.5`): its build and its measure.

`build` writes the full-size 480p text-to-video architecture with random weights
generated here (nothing downloaded), as bf16 safetensors shards: the 8.3B
transformer (54 dual-stream blocks, 16 heads of 128), Qwen2.5-VL-7B's text model
(28 layers, width 3584, its real vocabulary), Glyph-ByT5-small (12 layers, width
1472) and the 1.5 VAE (32 latent channels, 16x spatial and 4x temporal
compression). Tokenizers, scheduler and guider are the demo model's offline ones
(a byte-level Qwen tokenizer with the chat template, ByT5's), so the Qwen encoder
still runs over the pipeline's fixed 1000 tokens after its template.

`measure` runs a 848x480x61 job's stages with the runner's own staged pipeline
(runner/pipeline.py) and the service's run plan (hunyuan_core/run_plan.py) for the
given memory. What runs in full and what is bounded (one full step at this size is
~480 TFLOP per guidance pass, about an hour here):

- text encoders: in full, prompt and negative prompt (default guidance 6);
- transformer: loaded as planned (every weight page read, as a whole step would), then
  the pipeline's own call runs the embedders,
  the token refiner and the first dual-stream block at the full sequence length
  (the 25,440 video tokens and the prompt's valid text tokens, with no attention mask,
  as the runner calls it: runner/unpadded.py; before 2026-11-30 it was 27,425 tokens under
  a dense token x token mask). All 54 blocks have the same shapes, so this is the step's
  activation peak;
- VAE: one spatial tile of tiled decoding (16 x 16 latents, all 16 latent frames,
  to 61 frames of 256 x 256 pixels). The 1.5 VAE tiles in space only; tiled decoding
  repeats this tile by tile, and only the decoded tiles (61 x 3 x 256 x 256 each)
  and the output video accumulate beside it.
"""

import json
import shutil
import time
from pathlib import Path

import torch

from hunyuan_core import cost_model, families, precision, run_plan
from hunyuan_core import params as api_params
from hunyuan_core.host import memory_limit_bytes
from hunyuan_core.model_source import METADATA_FILE

# Qwen2.5-VL-7B-Instruct's language model (the 1.5 pipelines' text encoder).
QWEN_7B = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000, rms_norm_eps=1e-6,
               rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]})
# Glyph-SDXL-v2's ByT5-small encoder (its width is the transformer's text_embed_2_dim, 1472).
BYT5_SMALL = dict(d_model=1472, d_kv=64, d_ff=3584, num_layers=12, num_heads=6, feed_forward_proj="gated-gelu")
REQUEST = {"prompt": "A cat walks on the grass, realistic style.", "seed": 1, "width": 848, "height": 480,
           "video_length": 61, "num_inference_steps": 1}


class StopForward(Exception):
    """Raised by a hook to end the denoising call once the measured block has run."""


def build(dest, write_component):
    """Write the full-size random-weight 1.5 folder; `write_component` is stage_memory's shard writer."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLHunyuanVideo15, HunyuanVideo15Transformer3DModel
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel, T5Config, T5EncoderModel

    from runner import demo_models

    dest = Path(dest)
    started = time.time()
    # The demo pipeline gives the folder's layout, tokenizers, scheduler and guider;
    # its four weighted components are then replaced by full-size ones.
    pipe = demo_models.build_hunyuanvideo15()
    pipe.save_pretrained(dest, safe_serialization=True)
    tokenizer, tokenizer_2 = pipe.tokenizer, pipe.tokenizer_2
    family = families.by_demo_name("demo-hunyuanvideo-1.5")
    meta = dict(demo_models._metadata(family, pipe), name="full-size-random-hunyuanvideo-1.5",
                description="Full-size HunyuanVideo 1.5 (480p text-to-video) with random weights, for memory "
                            "benchmarks.")
    del pipe
    with init_empty_weights():
        components = {
            "transformer": HunyuanVideo15Transformer3DModel(task_type="t2v"),
            "text_encoder": Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
                bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                **QWEN_7B)),
            "text_encoder_2": T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), **BYT5_SMALL)),
            "vae": AutoencoderKLHunyuanVideo15(),
        }
    for name, module in components.items():
        shutil.rmtree(dest / name)
        diffusers_style = name in ("transformer", "vae")
        stem = "diffusion_pytorch_model" if diffusers_style else "model"
        write_component(module, dest / name, f"{stem}.safetensors", f"{stem}.safetensors.index.json")
    (dest / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    size = sum(p.stat().st_size for p in dest.rglob("*.safetensors"))
    print(f"built {dest}: {size / 1e9:.1f} GB of safetensors in {time.time() - started:.0f} s")


def measure(model_dir, storage, plan_gib=None):
    """Run the stages at 848x480x61 under the run plan for `plan_gib` GiB (default: this machine's memory)."""
    from runner.pipeline import StagedPipeline
    from runner.stage_options import configure_decoding

    used = resolved(model_dir)
    memory = int(plan_gib * 2**30) if plan_gib else memory_limit_bytes()
    plan = host_plan(model_dir, memory / 2**30, storage)
    print(f"this machine {memory_limit_bytes() / 2**30:.1f} GiB; plan for {memory / 2**30:.1f} GiB: "
          + ("; ".join(plan["reasons"]) or "everything in its file's dtype"), flush=True)
    print(f"request {used['width']}x{used['height']}x{used['video_length']}, guidance {used['guidance_scale']}",
          flush=True)
    staged = StagedPipeline(model_dir, "cpu", plan)
    timings = {}

    started = time.time()
    prompt = staged.encode(used)
    timings["text_encoders"] = time.time() - started
    print(f"text stage done in {timings['text_encoders']:.0f} s", flush=True)

    started = time.time()
    seen = {}

    def after_first_block(module, args, output):
        seen["tokens"] = output[0].shape[1] + output[1].shape[1]
        raise StopForward

    def on_loaded():
        transformer = staged.pipe.transformer
        # Weights stored in the file's dtype are memory-mapped and become resident as a step
        # reads them; a whole step reads every block, the one block run here only its own.
        # Read one value per page of every weight, so the stage holds what a real step holds.
        for tensor in (*transformer.parameters(), *transformer.buffers()):
            flat = tensor.detach().reshape(-1)
            flat[:: max(1, 4096 // flat.element_size())].float().sum()
        print(f"transformer loaded (and every weight page read) in {time.time() - started:.0f} s", flush=True)
        transformer.transformer_blocks[0].register_forward_hook(after_first_block)

    try:
        staged.denoise(used, prompt, lambda index: None, on_loaded=on_loaded)
    except StopForward:
        pass
    staged.memory.end("transformer")
    staged._free("transformer")
    staged.memory.freed("transformer")
    timings["transformer"] = time.time() - started
    print(f"transformer stage done in {timings['transformer']:.0f} s ({seen['tokens']} tokens)", flush=True)

    started = time.time()
    staged.memory.start("vae")
    staged.pipe.vae = staged._load("vae")
    staged.memory.loaded("vae")
    vae = staged.pipe.vae
    mode = configure_decoding(vae, used, cost_model.geometry(model_dir), "cpu")
    latent_frames = (used["video_length"] - 1) // 4 + 1
    side_h, side_w = used["height"] // 16, used["width"] // 16
    tile_h, tile_w = (vae.tile_latent_min_height, vae.tile_latent_min_width) if mode == "tiled" else (side_h, side_w)
    stride_h = int(vae.tile_latent_min_height * (1 - vae.tile_overlap_factor))
    stride_w = int(vae.tile_latent_min_width * (1 - vae.tile_overlap_factor))
    tiles = len(range(0, side_h, stride_h)) * len(range(0, side_w, stride_w)) if mode == "tiled" else 1
    latents = torch.randn(1, vae.config.latent_channels, latent_frames, tile_h, tile_w)
    with torch.no_grad():
        frames = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    staged.memory.end("vae")
    timings["vae"] = time.time() - started
    print(f"VAE ({mode}): one tile decoded to {tuple(frames.shape)} in {timings['vae']:.0f} s; "
          f"the video is {tiles} tiles", flush=True)
    del frames, vae
    staged._free("vae")
    staged.memory.freed("vae")
    return staged.memory.stages, plan, timings, seen["tokens"], tiles


def resolved(model_dir):
    """The 848x480x61 request's parameters as the service resolves them for this model."""
    family = families.family_of(model_dir)
    return api_params.resolve(REQUEST, family.parameters, family, model_dir)[0]


def host_plan(model_dir, gib, storage="auto"):
    """The service's run plan for the request on a CPU host of `gib` GiB with MAX_WORKERS=1."""
    return run_plan.make_plan(model_dir, resolved(model_dir), {"weight_dtype": storage, "max_workers": 1}, "cpu",
                              int(gib * 2**30))


def expected_peaks(plan):
    """The run plan's expected peak of each stage, in words."""
    return ", ".join(f"{stage['name']} {stage['peak_bytes'] / 2**30:.1f} GiB" for stage in plan["stages"])


def report(model_dir, storage, plan_gib, print_table):
    """Measure, then print the table (`print_table`: stage_memory's) and the plans for 32 and 24 GiB hosts."""
    stages, plan, timings, tokens, tiles = measure(model_dir, storage, plan_gib)
    compute = plan["compute_dtype"]
    params = {name: precision.component_weights(model_dir, name)["params"]
              for name in ("transformer", "text_encoder", "text_encoder_2", "vae")}
    # Rows show all of a stage's weights: ByT5 and the VAE are kept in the compute dtype.
    shown = dict(plan["storage"])
    shown["text_encoder"] = dict(shown["text_encoder"], bytes=shown["text_encoder"]["bytes"]
                                 + params["text_encoder_2"] * precision.DTYPE_BYTES[compute])
    shown["vae"] = {"dtype": compute, "bytes": params["vae"] * precision.DTYPE_BYTES[compute]}
    print_table(stages, dict(plan, storage=shown), timings, {
        "text_encoders": "text encoders (Qwen2.5-VL-7B + ByT5-small, "
                         f"{(params['text_encoder'] + params['text_encoder_2']) / 1e9:.1f}B)",
        "transformer": f"transformer ({params['transformer'] / 1e9:.1f}B; {tokens:,} tokens, first block)",
        "vae": f"VAE decode ({plan['decoding']}: one of {tiles} tiles, all frames)",
    })
    print("run plan's expected stage peaks: " + expected_peaks(plan))
    for gib in (32, 24):
        other = host_plan(model_dir, gib)
        print(f"{gib} GiB host, MAX_WORKERS=1: " + ("; ".join(other["reasons"][1:]) or "every component in bf16")
              + "; expected stage peaks " + expected_peaks(other))
