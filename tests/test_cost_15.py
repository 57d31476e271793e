"""HunyuanVideo 1.5 priced as the runner runs it: valid tokens only, its VAE's attention, its VAE's memory."""

import json

import pytest

from hunyuan_core import cost_model, run_plan

# The 480p model's configs (as bench/cpu_table.py prices it), without weights.
CONFIGS = {
    "transformer": {"num_attention_heads": 16, "attention_head_dim": 128, "num_layers": 54, "patch_size": 1,
                    "patch_size_t": 1, "target_size": 640},
    "vae": {"spatial_compression_ratio": 16, "temporal_compression_ratio": 4, "latent_channels": 32,
            "block_out_channels": [128, 256, 512, 1024, 1024], "layers_per_block": 2},
    "text_encoder": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "vocab_size": 152064},
    "text_encoder_2": {"d_model": 1472, "d_kv": 64, "d_ff": 3584, "num_layers": 12, "num_heads": 6},
}
PIPELINES = {"text": "HunyuanVideo15Pipeline", "image": "HunyuanVideo15ImageToVideoPipeline"}
GIB = 2**30


@pytest.fixture(params=["text", "image"])
def geometry_15(request, tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": PIPELINES[request.param]}))
    for name, config in CONFIGS.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    return cost_model.geometry(tmp_path)


def job(prompt="A cat walks on the grass.", width=848, height=480, frames=61):
    return {"prompt": prompt, "width": width, "height": height, "video_length": frames, "num_inference_steps": 50,
            "guidance_scale": 6.0}


def test_the_transformer_runs_over_the_video_and_the_valid_tokens_only(geometry_15):
    video = 16 * 30 * 53  # 61 frames: 16 latent frames of 30 x 53
    image = 729 if geometry_15.encodes_image else 0  # text-to-video's zero image tokens are dropped
    plain = job()
    assert cost_model.sequence_length(plain, geometry_15) == video + image + int(25 / 4) + 5
    # Quoted text reaches ByT5, a token per byte of `Text "HELLO". ` and its end token.
    sign = job(prompt='A cat holds a sign that says "HELLO".')
    assert cost_model.glyph_tokens(sign["prompt"], geometry_15) == len('Text "HELLO". ') + 1
    assert cost_model.sequence_length(sign, geometry_15) == video + image + int(37 / 4) + 5 + 15
    # Never more than the pipeline's 1000 Qwen tokens.
    assert cost_model.prompt_tokens(job(prompt="x" * 10_000), geometry_15) == 1000


def test_decoding_prices_the_vae_attention_over_each_tile(geometry_15):
    tiled = cost_model.job_work(job(frames=121), geometry_15, memory_bytes=32 * GIB)["decoding"]
    # 848x480 in 256-pixel tiles every 192: 3 rows x 5 columns of 31 latent frames; edge tiles are smaller.
    rows, columns = [16, 16, 6], [16, 16, 16, 16, 5]
    assert tiled["vae_attention"] == sum((31 * r * c) ** 2 for r in rows for c in columns)
    # A small video decoded whole attends over all its latent positions at once.
    whole = cost_model.job_work(job(width=256, height=256, frames=13), geometry_15, memory_bytes=32 * GIB)
    assert whole["decoding"]["vae_attention"] == (4 * 16 * 16) ** 2


def test_the_vae_stage_plans_for_its_tile_activations(geometry_15):
    overheads = cost_model.stage_overheads(job(), geometry_15, dtype_bytes=2)
    # Measured: one 256 x 256 tile of 61 frames peaked at 9.3 GiB in bf16 with 2.3 GiB of weights.
    assert 6 * GIB < overheads["vae"] < 9 * GIB
    longer = cost_model.stage_overheads(job(frames=121), geometry_15, dtype_bytes=2)
    assert longer["vae"] > 1.8 * (overheads["vae"] - GIB)
    # No dense token x token mask in the transformer's stage any more: its activations and one block's weights.
    tokens = cost_model.sequence_length(job(frames=121), geometry_15)
    assert longer["transformer"] < 16 * tokens * 2048 * 4 + 2 * GIB


def test_the_13b_vae_stage_plans_a_chunk_not_the_video(tmp_path):
    for name, config in (("transformer", {"num_layers": 20, "num_single_layers": 40}),
                         ("vae", {"block_out_channels": [128, 256, 512, 512]})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    geo = cost_model.geometry(tmp_path)
    big = job(width=640, height=480, frames=61)
    assert cost_model.decode_tiled(big, geo, run_plan.memory_limit_bytes())
    assert cost_model.stage_overheads(big, geo)["vae"] == 7 * 16 * 256 * 256 * 128 * 4 + GIB
    assert "vae_attention" not in cost_model.job_work(big, geo)["decoding"]
    assert "vae_elements" not in cost_model.job_work(big, geo)["decoding"]


def test_decoding_prices_the_vae_memory_bound_steps_level_by_level(geometry_15):
    small = job(width=256, height=256, frames=13)
    # Levels from the latent (4 x 16 x 16) up: 1024 channels (3 resnets and the mid block's 2),
    # then 1024, 512, 256, 128 (3 resnets each), each after an upsampler that doubles space (and
    # time but the first frame, twice: 4, 7, 13 frames) into the next level's channels; the output
    # norm at full size.
    sizes = [4 * 16 * 16, 7 * 32 * 32, 13 * 64 * 64, 13 * 128 * 128, 13 * 256 * 256]
    channels = [1024, 1024, 512, 256, 128]
    expected = 5 * channels[0] * sizes[0] + sum(3 * c * v + c * v for c, v in zip(channels[1:], sizes[1:]))
    expected += 0.5 * 128 * 13 * 256 * 256
    assert cost_model.decode_elements(small, geometry_15) == expected
    whole = cost_model.job_work(small, geometry_15, memory_bytes=32 * GIB)["decoding"]
    assert whole["vae_elements"] == expected
    # Tiled, the tiles' overlap is paid as the convolutions pay it.
    big = job(frames=121)
    tiled = cost_model.job_work(big, geometry_15, memory_bytes=32 * GIB)["decoding"]
    overlap = cost_model.tiling_overlap(big, geometry_15)
    assert overlap > 1
    assert tiled["vae_elements"] == pytest.approx(cost_model.decode_elements(big, geometry_15) * overlap)


@pytest.mark.demo_model
@pytest.mark.parametrize("kind", ["vae_attention", "vae_elements"])
def test_calibration_measures_the_vae_kinds_and_wants_them(demo_folders, kind):
    from runner import calibrate

    geo = cost_model.geometry(demo_folders["demo-hunyuanvideo-1.5"])
    rates = calibrate.measure(geo, 1)
    assert rates[kind] > 0 and set(rates) == {"linear", "attention", "conv", "vae_attention", "vae_elements"}
    # A calibration taken before the kind existed is measured again for a 1.5 model, not for the 13B.
    older = dict(calibrate.host_identity(), compute_dtype="float32",
                 by_threads={"1": {k: v for k, v in rates.items() if k != kind}})
    assert not calibrate.is_current(older, "float32", geo)
    assert calibrate.is_current(older, "float32", cost_model.geometry(demo_folders["demo-hunyuanvideo"]))
    assert calibrate.is_current(dict(older, by_threads={"1": rates}), "float32", geo)
