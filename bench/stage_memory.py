"""Peak memory of each stage of a job with the full-size HunyuanVideo architecture.

    .venv/bin/python bench/stage_memory.py build /var/tmp/hunyuan-full     # ~42 GB of random bf16 weights
    .venv/bin/python bench/stage_memory.py measure /var/tmp/hunyuan-full   # 640x480x61 on this machine
    .venv/bin/python bench/stage_memory.py build --family hunyuanvideo-1.5 /var/tmp/hunyuan15-full  # ~35 GB
    .venv/bin/python bench/stage_memory.py measure --plan-gib 32 /var/tmp/hunyuan15-full  # 848x480x61

The 13B model is described here; HunyuanVideo 1.5's build and measure are in
bench/stage_memory_15.py (same shard writer, same table). Both:

`build` writes a diffusers-format folder with the real model's architecture
(12.8B transformer, 7.5B Llama text encoder, CLIP-L, the real VAE), random
weights generated here, tensor by tensor, and saved as safetensors shards in bf16
like the community conversion. Nothing is downloaded.

`measure` runs the runner's own staged pipeline (runner/pipeline.py) with the
storage plan the service picks for this machine's memory, and prints each stage's
peak RSS. What runs in full and what is bounded, because one full step at
640x480x61 is ~543 TFLOP (over an hour here):

- text encoders: run in full (the real prompt template, 679 tokens);
- transformer: all 60 blocks' weights loaded as planned; the forward pass runs
  the embedders, the token refiner and the first dual-stream block at the full
  19,456-token sequence, then one single-stream block on the same activations.
  All 60 blocks have these same shapes, so this is the step's activation peak;
- VAE: one temporal chunk of tiled decoding (13 frames, every 640x480 spatial
  tile). Tiled decoding repeats this for each chunk; only the decoded frames
  (61 x 480 x 640 x 3 floats, 225 MB) accumulate beside it.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hunyuan_core import params as api_params  # noqa: E402
from hunyuan_core import cost_model, families, precision  # noqa: E402
from hunyuan_core.host import memory_limit_bytes  # noqa: E402

SHARD_BYTES = 4 * 2**30
LLAMA = dict(vocab_size=128320, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
             num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192)
CLIP = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, projection_dim=768, max_position_embeddings=77)


class StopForward(Exception):
    """Raised by a hook to end a forward pass once the measured blocks have run."""


def _random_like(meta, generator):
    """Random values shaped like a meta tensor: ones for norm scales, small noise elsewhere."""
    if meta.dim() == 1:
        return torch.ones(meta.shape, dtype=torch.bfloat16)
    out = torch.empty(meta.shape, dtype=torch.bfloat16)
    flat = out.view(-1)
    for start in range(0, flat.numel(), 2**26):  # in 256 MB fp32 pieces, so memory stays flat
        piece = flat[start : start + 2**26]
        piece.copy_(torch.randn(piece.numel(), generator=generator) * 0.02)
    return out


def write_component(module, folder, weights_name, index_name):
    """Save a meta-device module's config and random bf16 weights as safetensors shards.

    One shard is generated, written and dropped at a time, so a 12.8B-parameter
    model is written with about 4 GB of memory.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(module, "save_config"):
        module.save_config(folder)
    else:
        module.config.save_pretrained(folder)
    state = module.state_dict()
    groups, current, size = [], [], 0
    for name, meta in state.items():
        current.append(name)
        size += meta.numel() * 2
        if size >= SHARD_BYTES:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    stem, ext = weights_name.rsplit(".", 1)
    generator = torch.Generator().manual_seed(0)
    weight_map = {}
    for number, names in enumerate(groups, start=1):
        file_name = f"{stem}-{number:05d}-of-{len(groups):05d}.{ext}" if len(groups) > 1 else weights_name
        shard = {name: _random_like(state[name], generator) for name in names}
        save_file(shard, folder / file_name, metadata={"format": "pt"})
        weight_map.update({name: file_name for name in names})
        del shard
        print(f"  {folder.name}: shard {number}/{len(groups)}", flush=True)
    if len(groups) > 1:
        (folder / index_name).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))


def build(dest):
    """Write the full-size random-weight model folder."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoTransformer3DModel
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    from runner.tiny_model import _clip_tokenizer, _llama_tokenizer, _prompt_template_crop_start

    dest = Path(dest)
    started = time.time()
    with init_empty_weights():
        transformer = HunyuanVideoTransformer3DModel()
        vae = AutoencoderKLHunyuanVideo()
        llama = LlamaModel(LlamaConfig(**LLAMA))
        clip = CLIPTextModel(CLIPTextConfig(**CLIP))
    write_component(transformer, dest / "transformer", "diffusion_pytorch_model.safetensors",
                          "diffusion_pytorch_model.safetensors.index.json")
    write_component(llama, dest / "text_encoder", "model.safetensors", "model.safetensors.index.json")
    write_component(clip, dest / "text_encoder_2", "model.safetensors", "model.safetensors.index.json")
    write_component(vae, dest / "vae", "diffusion_pytorch_model.safetensors",
                    "diffusion_pytorch_model.safetensors.index.json")
    tokenizer, tokenizer_2 = _llama_tokenizer(), _clip_tokenizer()
    tokenizer.save_pretrained(dest / "tokenizer")
    tokenizer_2.save_pretrained(dest / "tokenizer_2")
    from diffusers import FlowMatchEulerDiscreteScheduler

    FlowMatchEulerDiscreteScheduler(shift=7.0).save_pretrained(dest / "scheduler")
    (dest / "model_index.json").write_text(json.dumps({
        "_class_name": "HunyuanVideoPipeline", "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "LlamaModel"], "text_encoder_2": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "LlamaTokenizerFast"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "transformer": ["diffusers", "HunyuanVideoTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLHunyuanVideo"],
    }, indent=2))
    (dest / "hunyuan_api_model.json").write_text(json.dumps({
        "name": "full-size-random-hunyuanvideo", "demo": True,
        "description": "Full-size HunyuanVideo architecture with random weights, for memory benchmarks.",
        "prompt_template_crop_start": _prompt_template_crop_start(tokenizer), "chars_per_token": 1.0,
    }, indent=2))
    size = sum(p.stat().st_size for p in dest.rglob("*.safetensors"))
    print(f"built {dest}: {size / 1e9:.1f} GB of safetensors in {time.time() - started:.0f} s")


def measure(model_dir, storage):
    """Run the stages at 640x480x61 and print each one's memory."""
    from runner.pipeline import StagedPipeline

    budget = memory_limit_bytes()
    plan = precision.plan(model_dir, "cpu", "auto", storage, budget)
    print(f"machine memory {budget / 2**30:.1f} GiB; plan: " + "; ".join(plan["reasons"]), flush=True)
    used, _ = api_params.resolve({"prompt": "A cat walks on the grass, realistic style.", "seed": 1,
                                  "width": 640, "height": 480, "video_length": 61, "num_inference_steps": 1})
    staged = StagedPipeline(model_dir, "cpu", plan)
    timings = {}

    started = time.time()
    prompt = staged.encode(used)
    timings["text_encoders"] = time.time() - started
    print(f"text stage done in {timings['text_encoders']:.0f} s", flush=True)

    started = time.time()
    staged.pipe.transformer = staged._load("transformer")
    transformer = staged.pipe.transformer
    captured = {}

    def after_first_dual(module, args, output):
        # Keep what the single-stream blocks would receive, then end the pass.
        captured["hidden"], captured["encoder"] = output
        raise StopForward

    def before_first_dual(module, args, kwargs):
        captured["temb"], captured["mask"], captured["rotary"] = args[2], args[3], args[4]

    hooks = [transformer.transformer_blocks[0].register_forward_hook(after_first_dual),
             transformer.transformer_blocks[0].register_forward_pre_hook(before_first_dual, with_kwargs=True)]
    staged.memory.start("transformer")
    staged.memory.loaded("transformer")
    try:
        staged.denoise(used, prompt, lambda index: None)
    except StopForward:
        pass
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        transformer.single_transformer_blocks[0](
            captured["hidden"], captured["encoder"], captured["temb"], captured["mask"], captured["rotary"]
        )
    staged.memory.end("transformer")
    timings["transformer"] = time.time() - started
    tokens = captured["hidden"].shape[1] + captured["encoder"].shape[1]
    del captured, transformer
    staged._free("transformer")
    staged.memory.freed("transformer")
    print(f"transformer stage done in {timings['transformer']:.0f} s ({tokens} tokens)", flush=True)

    started = time.time()
    latents = torch.randn(1, 16, 4, 60, 80)  # one temporal chunk: 4 latent frames = 13 video frames
    staged.memory.start("vae")
    staged.pipe.vae = staged._load("vae")
    staged.memory.loaded("vae")
    vae = staged.pipe.vae
    vae.enable_tiling()
    with torch.no_grad():
        # As the runner does: latents in the VAE's dtype (the compute dtype, bf16 on some CPUs).
        frames = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    staged.memory.end("vae")
    timings["vae"] = time.time() - started
    print(f"VAE chunk decoded to {tuple(frames.shape)} in {timings['vae']:.0f} s", flush=True)
    del frames, vae
    staged._free("vae")
    staged.memory.freed("vae")

    weights = print_table(staged.memory.stages, plan, timings, {})
    transformer_entry = weights["transformer"]
    bf16 = precision.component_weights(model_dir, "transformer")["params"] * 2
    projected = staged.memory.stages["transformer"]["compute_peak_rss_mb"] / 1024 - (
        transformer_entry["bytes"] - bf16) / 2**30
    print(f"with bf16 transformer storage: transformer stage ~{projected:.1f} GiB "
          f"(this run's peak with {bf16 / 2**30:.1f} GiB of bf16 weights in place of "
          f"{transformer_entry['bytes'] / 2**30:.1f} GiB of {transformer_entry['dtype']})")
    # What the service plans on the 32 GiB target host with MAX_WORKERS=1 (the whole memory for one runner).
    host32 = precision.plan(model_dir, "cpu", "auto", "auto", 32 * 2**30,
                            overheads=cost_model.stage_overheads(used, cost_model.geometry(model_dir)))
    print("32 GiB host, MAX_WORKERS=1: " + "; ".join(
        f"{name} stored as {entry['dtype']}, planned stage peak {entry['stage_peak_bytes'] / 2**30:.1f} GiB"
        for name, entry in host32["storage"].items()))

def print_table(stages, plan, timings, labels):
    """Print each stage's stored weights and memory as a Markdown table, then the whole job's peak.

    `labels` names the stages' rows (default: the stage's name). Returns the plan's storage entries.
    """
    weights = dict(plan["storage"])
    print()
    print("| stage | weights stored as | weights GiB | load peak RSS GiB | compute peak RSS GiB | "
          "RSS after freeing GiB | seconds |")
    print("|---|---|---|---|---|---|---|")
    for stage, component in (("text_encoders", "text_encoder"), ("transformer", "transformer"), ("vae", "vae")):
        m = stages[stage]
        entry = weights.get(component, {"dtype": plan["compute_dtype"], "bytes": 0})
        print(f"| {labels.get(stage, stage)} | {entry['dtype']} | {entry['bytes'] / 2**30:.1f} | "
              f"{m.get('load_peak_rss_mb', 0) / 1024:.1f} | {m['compute_peak_rss_mb'] / 1024:.1f} | "
              f"{m['rss_after_free_mb'] / 1024:.1f} | {timings[stage]:.0f} |")
    job_peak = max(max(m["compute_peak_rss_mb"], m.get("load_peak_rss_mb", 0)) for m in stages.values()) / 1024
    compute_peak = max(m["compute_peak_rss_mb"] for m in stages.values()) / 1024
    print(f"\nwhole job: peak RSS {job_peak:.1f} GiB ({job_peak * 2**30 / 1e9:.1f} GB), compute peak "
          f"{compute_peak:.1f} GiB (stages run one after another; loads peak on reclaimable file pages)")
    return weights


def main():
    """Command line: build or measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "measure"])
    parser.add_argument("model_dir")
    parser.add_argument("--weight-dtype", default="auto", help="WEIGHT_DTYPE for measure (auto picks what fits)")
    parser.add_argument("--family", default="hunyuanvideo", choices=["hunyuanvideo", "hunyuanvideo-1.5"],
                        help="the architecture to build (measure reads it from the folder)")
    parser.add_argument("--plan-gib", type=float, default=None,
                        help="1.5 measure: plan for a host of this many GiB (default: this machine's memory)")
    args = parser.parse_args()
    if args.command == "build" and args.family == "hunyuanvideo-1.5":
        import stage_memory_15

        stage_memory_15.build(args.model_dir, write_component)
    elif args.command == "build":
        build(args.model_dir)
    elif families.family_of(args.model_dir).name.startswith("hunyuanvideo-1.5"):
        import stage_memory_15

        stage_memory_15.report(args.model_dir, args.weight_dtype, args.plan_gib, print_table)
    else:
        measure(args.model_dir, args.weight_dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
