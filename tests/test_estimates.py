"""The cost model, calibrated rates, and the estimates built on them."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from hunyuan_core import cost_model, estimates
from hunyuan_core.job_record import new_job, new_job_id
from hunyuan_core.timing_stats import PRIOR_RATES, TimingStats

# data_dir holds the built demo model and this host's calibration (tests/conftest.py).
pytestmark = pytest.mark.demo_model

REAL_TRANSFORMER = {
    "num_attention_heads": 24, "attention_head_dim": 128, "num_layers": 20, "num_single_layers": 40,
    "patch_size": 2, "patch_size_t": 1,
}
REAL_VAE = {"spatial_compression_ratio": 8, "temporal_compression_ratio": 4, "latent_channels": 16,
            "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2}
LONG_PROMPT = "x" * 4000  # 256 tokens after the template, the pipeline's maximum


@pytest.fixture
def real_geometry(tmp_path):
    """The real 13B model's geometry, from its config files alone."""
    for name, config in (("transformer", REAL_TRANSFORMER), ("vae", REAL_VAE)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    for name, config in (("text_encoder", {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32}),
                         ("text_encoder_2", {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    return cost_model.geometry(tmp_path)


def request(width, height, frames, steps=30, **extra):
    return {"prompt": LONG_PROMPT, "width": width, "height": height, "video_length": frames,
            "num_inference_steps": steps, "guidance_scale": 1.0, **extra}


def test_token_counts_match_tencents_logs(real_geometry):
    # 720x1280x129: Tencent's logs print 118,800 image tokens.
    assert cost_model.sequence_length(request(1280, 720, 129), real_geometry) - 256 == 118_800
    assert cost_model.sequence_length(request(640, 480, 61), real_geometry) == 19_456


def test_flops_per_step_match_the_notes(real_geometry):
    # NOTES section 4: 640x480x61 is ~543 TFLOP per step, 256x256x13 ~18.6 TFLOP.
    step = cost_model.step_work(request(640, 480, 61), real_geometry)
    assert sum(step.values()) == pytest.approx(543e12, rel=0.01)
    small = cost_model.step_work(request(256, 256, 13), real_geometry)
    assert sum(small.values()) == pytest.approx(18.6e12, rel=0.01)
    cfg = cost_model.step_work(request(640, 480, 61, guidance_scale=5.0), real_geometry)
    assert sum(cfg.values()) == pytest.approx(2 * sum(step.values()))


def test_short_prompts_cost_fewer_tokens(real_geometry):
    short = dict(request(256, 256, 13), prompt="A cat walks on the grass, realistic style.")
    assert cost_model.sequence_length(short, real_geometry) == 1024 + 12


def test_the_tiny_model_counts_one_token_per_character(tiny_model):
    geo = cost_model.geometry(tiny_model)
    assert geo.chars_per_token == 1.0 and geo.width == 16 and geo.blocks == 1
    assert cost_model.prompt_tokens({"prompt": "abc"}, geo) == 5  # the prompt and the template's closing tokens


def test_the_phases_of_a_real_job_in_proportion(real_geometry):
    params = request(640, 480, 61)
    work = cost_model.job_work(params, real_geometry, memory_bytes=32 * 2**30)
    denoising = work["denoising"]["linear"] + work["denoising"]["attention"]
    # 30 steps of ~543 TFLOP; text ~5 TFLOP (NOTES section 4).
    assert denoising == pytest.approx(30 * 543e12, rel=0.01) and work["denoising"]["steps"] == 30
    assert work["encoding_text"]["linear"] == pytest.approx(5e12, rel=0.25)
    # Decoding: ~244 TFLOP of convolutions, tiled at this size (the real VAE would need ~38 GB whole),
    # and the tiles overlap: 3 x 3 tiles of 256 px for 640 x 480, 5 chunks of 16 frames for 61.
    assert 200e12 < cost_model.decode_flops(params, real_geometry) < 300e12
    assert cost_model.decode_tiled(params, real_geometry, 32 * 2**30)
    assert cost_model.tiling_overlap(params) == pytest.approx((768 / 640) * (768 / 480) * (80 / 61))
    assert work["decoding"]["conv"] == pytest.approx(
        cost_model.decode_flops(params, real_geometry) * cost_model.tiling_overlap(params))


def stats_with(data_dir, calibration=None, samples=()):
    stats = TimingStats(data_dir, "m")
    if calibration:
        stats.set_calibration(calibration)
    for sample in samples:
        stats.record(sample)
    return stats


def test_rates_come_from_calibration_then_samples(tmp_path):
    assert TimingStats(tmp_path, "m").rates().kinds == PRIOR_RATES
    calibration = {"cpu": "c", "cores": 2, "by_threads": {"2": {"attention": 1e-11, "linear": 2e-11, "conv": 3e-10,
                                                                  "voxels": 1e-7, "fixed": 5.0}}}
    stats = stats_with(tmp_path, calibration)
    rates = stats.rates(2)
    assert rates.kinds["attention"] == 1e-11 and rates.calibrated and rates.fits == {}
    # One thread where only two were measured: a proportional stretch.
    assert stats.rates(1).kinds["attention"] == pytest.approx(2e-11)
    # A job whose denoising took 5 s more than calibrated: with one job, fixed and per-step costs
    # cannot be told apart, and the difference is counted per step.
    work = {"attention": 1e12, "steps": 10.0}
    stats.record({"job_id": "a", "threads": 2, "phases": {"denoising": {"seconds": 15.0, "work": work}}})
    rates = stats.rates(2)
    assert rates.fits["denoising"] == pytest.approx((0.0, 0.5, 1.0))
    assert rates.phase_seconds("denoising", work) == pytest.approx(15.0)
    # Twice the steps: the overhead doubles too.
    assert rates.phase_seconds("denoising", {"attention": 2e12, "steps": 20.0}) == pytest.approx(30.0)


def test_fixed_and_per_step_costs_and_scale_are_told_apart_by_jobs_of_different_sizes():
    from hunyuan_core.timing_stats import fit_phase

    # Truth: 0.5 s of set-up, 0.1 s per step, and the work really runs 1.5x slower than calibrated.
    def truth(steps, raw):
        return 0.5 + 0.1 * steps + 1.5 * raw

    points = [(steps, raw, truth(steps, raw)) for steps, raw in ((20, 2.0), (30, 60.0), (40, 8.0), (4, 0.1))]
    fixed, per_step, scale = fit_phase(points)
    assert fixed == pytest.approx(0.5, rel=0.05) and per_step == pytest.approx(0.1, rel=0.05)
    assert scale == pytest.approx(1.5, rel=0.02)
    # A job faster than calibrated shrinks the scale instead of going negative.
    assert fit_phase([(10, 20.0, 10.0)]) == pytest.approx((0.0, 0.0, 0.5), abs=0.01)


def test_small_probe_jobs_do_not_set_the_scale_of_work_they_barely_contain():
    from hunyuan_core.timing_stats import fit_phase

    # Two small jobs whose time is nearly all set-up and per-step cost, with a little jitter:
    # their tiny calibrated work must not be read as "the work runs 3x slower than calibrated".
    points = [(2, 0.003, 0.560), (8, 0.015, 0.730)]
    fixed, per_step, scale = fit_phase(points)
    assert scale == pytest.approx(1.0, abs=0.1)
    # So a big job is predicted from its calibrated work, not from an extrapolated slope.
    big = fixed + per_step * 30 + scale * 7.0
    assert 7.0 < big < 10.0


def make_job(status, params, created, started=None, **fields):
    job = new_job(new_job_id(), {}, params, [], {"name": "m", "path": "unused"})
    job.update(status=status, created_at=created.isoformat(), started_at=started and started.isoformat(), **fields)
    return job


def test_remaining_time_follows_measured_steps(tiny_model, tmp_path):
    geo = cost_model.geometry(tiny_model)
    rates = TimingStats(tmp_path, "m").rates()
    now = datetime.now(timezone.utc)
    params = {**request(640, 480, 61), "prompt": "a cat"}
    predicted = estimates.predict(params, geo, rates)
    job = make_job("processing", params, now, started=now - timedelta(seconds=20), phase="denoising",
                   phase_started_at=(now - timedelta(seconds=10)).isoformat(), step=10, step_seconds=1.0)
    left = estimates.remaining(job, predicted, rates, now)
    # Nothing measured on this host: 20 steps at this job's own 1.0 s, then decoding and writing
    # scaled by how much faster or slower than predicted this job runs.
    factor = 1.0 / (predicted["denoising"] / 30)
    assert left == pytest.approx(20 * 1.0 + (predicted["decoding"] + predicted["writing_video"]) * factor)
    total, left_again = estimates.run_estimate(job, geo, rates, now)
    assert left_again == pytest.approx(left) and total == pytest.approx(20 + left)
    assert 0.0 < estimates.progress(job, geo, rates, now) < 1.0


def test_queued_jobs_wait_for_the_slots_ahead_of_them():
    now = datetime.now(timezone.utc)
    jobs = [make_job("processing", {}, now - timedelta(seconds=9)),
            make_job("queued", {}, now - timedelta(seconds=8)),
            make_job("queued", {}, now - timedelta(seconds=7)),
            make_job("completed", {}, now - timedelta(seconds=10))]
    durations = {jobs[0]["job_id"]: (100.0, 30.0), jobs[1]["job_id"]: (50.0, 50.0), jobs[2]["job_id"]: (60.0, 60.0)}
    plan = estimates.schedule(jobs, lambda job: durations[job["job_id"]], max_workers=2)
    assert plan[jobs[0]["job_id"]] == {"queue_position": 0, "eta_seconds": 30.0, "estimated_time": 100.0}
    # The first queued job takes the free slot at once; the second waits for the running one.
    assert plan[jobs[1]["job_id"]]["eta_seconds"] == 50.0 and plan[jobs[1]["job_id"]]["queue_position"] == 1
    assert plan[jobs[2]["job_id"]]["eta_seconds"] == 30.0 + 60.0 and plan[jobs[2]["job_id"]]["queue_position"] == 2
    assert jobs[3]["job_id"] not in plan


def test_steps_are_predicted_without_the_stages_fixed_cost_and_blend_with_measured_ones(tiny_model, tmp_path):
    geo = cost_model.geometry(tiny_model)
    calibration = {"cpu": "c", "cores": 2, "by_threads": {"2": {"attention": 1e-11, "linear": 1e-11, "conv": 1e-10,
                                                                  "voxels": 1e-7, "fixed": 5.0}}}
    params = {**request(640, 480, 61), "prompt": "a cat"}
    raw = TimingStats(tmp_path / "raw", "m")
    raw.set_calibration(calibration)
    work = cost_model.job_work(params, geo)["denoising"]
    raw_seconds = raw.rates(2).raw_seconds("denoising", work)
    # Past jobs: 3 s to load and free the transformer, and steps that cost what calibration says.
    samples = []
    for number, steps in enumerate((10, 30, 50)):
        sized = {**work, "steps": float(steps)}
        for kind in ("linear", "attention"):
            sized[kind] = work[kind] * steps / 30
        seconds = 3.0 + raw_seconds * steps / 30
        samples.append({"job_id": str(number), "threads": 2, "phases": {"denoising": {"seconds": seconds, "work": sized}}})
    rates = stats_with(tmp_path, calibration, samples).rates(2)
    predicted = estimates.predict(params, geo, rates)
    assert rates.fixed_seconds("denoising") == pytest.approx(3.0, rel=0.05)
    per_step = raw_seconds / 30
    assert predicted["denoising"] == pytest.approx(3.0 + 30 * per_step, rel=0.02)

    def estimate(step, step_seconds):
        return estimates.step_estimate({"params": params, "step": step, "step_seconds": step_seconds}, predicted, rates)

    # Before any step: the prediction, without the stage's fixed cost.
    assert estimate(0, None) == pytest.approx(per_step, rel=0.03)
    # The first step (timed from the end of loading) counts as one step against the prediction's half.
    assert estimate(1, 2 * per_step) == pytest.approx(per_step * (2 + 0.5) / 1.5, rel=0.03)
    # Later, the mean of the steps after the first counts as that many steps: (8 x 2 + 0.5 x 1) / 8.5.
    assert estimate(9, 2 * per_step) == pytest.approx(per_step * 16.5 / 8.5, rel=0.03)
