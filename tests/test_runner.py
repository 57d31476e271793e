"""The real runner and the real diffusers pipeline on the tiny model."""

import hashlib
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from hunyuan_core import cost_model, model_source, params
from hunyuan_core.job_record import Phase, new_job, new_job_id
from hunyuan_core.supervisor import Supervisor
from hunyuan_core.timing_stats import TimingStats

from .conftest import COMPUTE_HERE, ROOT, SMALL_REQUEST, copy_artifact, wait_for
from .mp4_check import assert_playable_mp4

# data_dir holds the built demo model and this host's calibration (tests/conftest.py).
pytestmark = pytest.mark.demo_model


def queue(store, tiny_model, request):
    used, adjustments = params.resolve(request)
    model = {"name": model_source.EMBEDDED_MODEL_NAME, "path": str(tiny_model), "demo": True}
    return store.create(new_job(new_job_id(), request, used, adjustments, model))["job_id"]


def run_to_end(supervisor, job_ids, timeout):
    """Tick until every job is settled; return their records."""

    def settled():
        supervisor.tick()
        jobs = [supervisor.store.get(i) for i in job_ids]
        done = all(j["status"] in ("completed", "failed") and j["runner"] and j["runner"].get("ended_at") for j in jobs)
        return jobs if done else None

    return wait_for(settled, timeout, interval=0.25, message="jobs to finish")


def test_a_job_renders_a_real_mp4_with_progress_through_every_phase(store, tiny_model):
    job_id = queue(store, tiny_model, dict(SMALL_REQUEST, seed=42))
    supervisor = Supervisor(store, max_workers=1)
    observed, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            job = store.get(job_id)
            observed.append((job["progress"], job["phase"]))
            stop.wait(0.01)  # denoising 10 small steps takes ~0.1 s

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        (job,) = run_to_end(supervisor, [job_id], timeout=180)
    finally:
        stop.set()
        watcher.join()
    assert job["status"] == "completed", job["error"]
    path = store.video_path(job_id)
    copy_artifact(path, "runner-small.mp4")
    info = assert_playable_mp4(path, frames=13, width=256, height=256, fps=8)
    assert job["video"]["frames"] == info["frames"] and job["video"]["bytes"] == path.stat().st_size
    assert job["progress"] == 1.0 and job["phase"] == "done"

    progress = [p for p, _ in observed]
    assert progress == sorted(progress), "progress went backwards"
    phases = [phase for _, phase in observed]
    seen = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    order = ["queued", "starting", "loading_model", "encoding_text", "denoising", "decoding", "writing_video", "done"]
    assert [p for p in order if p in seen] == seen, seen
    assert {"starting", "denoising", "done"} <= set(seen)
    assert 0.05 < max(p for p, phase in observed if phase == "denoising") < 1.0

    assert set(job["timings"]) == set(order[1:-1])
    assert job["step"] == 10 and job["step_seconds"] > 0
    assert job["runner"]["device"] == "cpu" and job["runner"]["dtype"] == COMPUTE_HERE
    sample = TimingStats(store.root, model_source.EMBEDDED_MODEL_NAME).samples()[-1]
    assert sample["job_id"] == job_id and sample["phases"]["denoising"]["work"]["attention"] > 0
    assert sample["threads"] == job["runner"]["threads"] >= 1
    assert set(sample["phases"]) == set(order[1:-1])
    assert set(job["memory"]) == {"text_encoders", "transformer", "vae"}
    assert all(stage["peak_rss_mb"] > 0 for stage in job["memory"].values())
    assert not list(store.videos_dir.glob(".*")), "no partial file left behind"


def test_the_first_job_on_an_unmeasured_host_calibrates_it(store, tiny_model):
    shutil.rmtree(store.root / "stats")
    job_id = queue(store, tiny_model, dict(SMALL_REQUEST, seed=9))
    (job,) = run_to_end(Supervisor(store, max_workers=1), [job_id], timeout=240)
    assert job["status"] == "completed", job["error"]
    stats = TimingStats(store.root, model_source.EMBEDDED_MODEL_NAME)
    calibration = stats.calibration()
    assert calibration["cores"] >= 1 and str(job["runner"]["threads"]) in calibration["by_threads"]
    assert set(calibration["by_threads"][str(job["runner"]["threads"])]) >= {"linear", "attention", "conv"}
    samples = stats.samples()
    # The demo model is cheap enough for every probe render (different sizes and step counts),
    # then the job itself, whose start-up ran long for the calibration and is left out.
    assert [s["job_id"] for s in samples] == [f"calibration-probe-{n}" for n in (1, 2, 3)] + [job_id]
    assert len({s["phases"]["denoising"]["work"]["steps"] for s in samples[:3]}) == 3
    assert "starting" not in samples[-1]["phases"] and "denoising" in samples[-1]["phases"]
    assert min(stats.rates(job["runner"]["threads"]).fits["denoising"]) >= 0


def test_the_documents_recommended_settings_all_produce_videos(store, tiny_model):
    # Quality presets of the API document, at full size and step count; 480x360 becomes 480x368.
    presets = [(480, 360, 25), (640, 480, 30), (720, 480, 40)]
    ids = [
        queue(store, tiny_model, {"prompt": "Your prompt here", "width": w, "height": h, "video_length": 61, "fps": 15,
                                  "num_inference_steps": s, "seed": 1})
        for w, h, s in presets
    ]
    jobs = run_to_end(Supervisor(store, max_workers=2), ids, timeout=600)
    for job, (width, height, _) in zip(jobs, presets):
        assert job["status"] == "completed", job["error"]
        used = job["params"]
        assert (used["width"], used["height"]) == (width, params.nearest_multiple(height, 16))
        assert_playable_mp4(store.video_path(job["job_id"]), 61, used["width"], used["height"], 15)
    copy_artifact(store.video_path(jobs[0]["job_id"]), "runner-480x368.mp4")


# -- the pipeline stages, in this process -------------------------------------------


@pytest.fixture(scope="module")
def staged(tiny_model):
    from hunyuan_core import precision
    from runner.pipeline import StagedPipeline

    # keep_loaded: one load serves every render of these tests.
    return StagedPipeline(str(tiny_model), "cpu", precision.plan(str(tiny_model), "cpu"), keep_loaded=True)


def render_frames(staged, calls=None, **overrides):
    used, _ = params.resolve({**SMALL_REQUEST, "seed": 7, **overrides})
    kwargs = staged.encode(used)
    if calls is not None:
        calls.append(kwargs)
    latents = staged.denoise(used, kwargs, lambda index: None)
    frames, _mode = staged.decode(latents, used)
    return frames


def test_same_seed_same_video_and_every_input_matters(staged):
    base = render_frames(staged)
    assert base.shape == (13, 256, 256, 3) and base.dtype == np.uint8
    assert np.array_equal(base, render_frames(staged))
    for change in ({"seed": 8}, {"prompt": "A dog runs on the beach."}, {"embedded_guidance_scale": 12.0},
                   {"flow_shift": 2.0}, {"guidance_scale": 4.0}):
        assert not np.array_equal(base, render_frames(staged, **change)), change


def test_parameters_reach_the_pipeline_where_they_belong(staged):
    calls = []
    forwards = []
    render_frames(staged)  # loads every stage's component (kept loaded)
    hook = staged.pipe.transformer.register_forward_hook(lambda module, args, kwargs_out: forwards.append(1))
    try:
        render_frames(staged, calls, flow_shift=3.5)
        assert staged.pipe.scheduler.config.shift == 3.5
        assert "negative_prompt_embeds" not in calls[-1]
        assert len(forwards) == 10  # one transformer pass per step without real CFG
        forwards.clear()
        render_frames(staged, calls, guidance_scale=3.0, negative_prompt="blurry")
        assert "negative_prompt_embeds" in calls[-1]
        assert len(forwards) == 20  # real CFG: conditional and unconditional pass per step
    finally:
        hook.remove()


def test_the_prompt_survives_the_template_crop(staged, tiny_model):
    from runner import pipeline

    render_frames(staged)
    template = pipeline.prompt_template(str(tiny_model))
    ids = staged.pipe.tokenizer(template["template"].format("abc"))["input_ids"]
    tokens = staged.pipe.tokenizer.convert_ids_to_tokens(ids)
    # The cropped sequence starts with the prompt itself, then the template's closing marker.
    assert tokens[template["crop_start"] :] == ["a", "b", "c", "<|eot_id|>"]
    _embeds, _pooled, mask = staged.pipe.encode_prompt(prompt="abc", prompt_template=template, device="cpu")
    assert int(mask.sum()) == 4
    # The runner drops the masked padding: the transformer sees the prompt's 4 tokens, not 256.
    kwargs = staged.encode(dict(params.resolve({**SMALL_REQUEST, "prompt": "abc"})[0]))
    assert kwargs["prompt_embeds"].shape[1] == 4 and bool(kwargs["prompt_attention_mask"].all())


def test_trimming_the_prompt_padding_leaves_the_video_unchanged(staged):
    import torch

    used, _ = params.resolve({**SMALL_REQUEST, "seed": 7})
    trimmed = staged.encode(used)
    template = __import__("runner.pipeline", fromlist=["x"]).prompt_template(staged.model_dir)
    embeds, pooled, mask = staged.pipe.encode_prompt(prompt=used["prompt"], prompt_template=template, device="cpu")
    padded = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled, "prompt_attention_mask": mask}
    assert padded["prompt_embeds"].shape[1] == 256 > trimmed["prompt_embeds"].shape[1]
    a = staged.denoise(used, trimmed, lambda index: None)
    b = staged.denoise(used, padded, lambda index: None)
    # Equal up to rounding: fp32 agrees to 1e-4; bf16 (where the CPU computes in it) keeps 8 bits of mantissa.
    tolerance = {"rtol": 1e-5, "atol": 1e-4} if a.dtype == torch.float32 else {"rtol": 2**-6, "atol": 2**-6}
    assert torch.allclose(a, b, **tolerance), float((a - b).abs().max())


def test_the_tiny_model_builds_identically_every_time(tiny_model, tmp_path):
    rebuilt = tmp_path / model_source.EMBEDDED_MODEL_NAME
    subprocess.run([sys.executable, "-m", "runner.tiny_model", str(rebuilt)], check=True, cwd=ROOT,
                   capture_output=True)

    def digest(folder):
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    assert digest(rebuilt) == digest(tiny_model)
    assert (rebuilt / "model_index.json").exists() and model_source.read_metadata(rebuilt)["demo"] is True


def test_the_web_package_never_imports_torch_or_diffusers(tmp_path):
    code = (
        "import sys, hunyuan_api; from hunyuan_api import create_app; "
        f"app = create_app({{'DATA_DIR': {str(tmp_path)!r}, 'SUPERVISOR_AUTOSTART': False}}); "
        "app.test_client().get('/api/info'); app.test_client().get('/openapi.json'); "
        "import hunyuan_api.gunicorn_conf; "
        "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_first_steps_time_leaves_out_loading_the_transformer(store, tiny_model):
    from runner.progress import ProgressReporter

    job_id = queue(store, tiny_model, dict(SMALL_REQUEST, seed=1))
    job = store.get(job_id)
    reporter = ProgressReporter(store, job, cost_model.geometry(tiny_model), TimingStats(store.root, "m").rates())
    reporter.enter(Phase.DENOISING)
    time.sleep(1.0)  # the stage loads the transformer, then the loop begins
    reporter.steps_begin()
    reporter.step_done(0)
    first = store.get(job_id)
    assert first["step"] == 1 and first["step_seconds"] < 0.5, first["step_seconds"]
    time.sleep(0.2)
    reporter.step_done(1)
    second = store.get(job_id)
    assert second["step"] == 2 and 0.15 < second["step_seconds"] < 1.0, second["step_seconds"]
