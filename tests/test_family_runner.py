"""Every family's demo model through the real runner, and its staged stages against its own pipeline.

A job on the 13B image-to-video, 1.5 text-to-video and 1.5 image-to-video demo
models runs in a real work process (supervisor, guard, render) to a decoded MP4
of the size and frame count its family makes, with every denoising step in the
job record (1.5 has no step callback: its scheduler's steps are counted) and the
memory of each stage. The image stage's precomputed encodings give the same
latents as the pipeline's own `__call__` computing them itself.
"""

import io

import pytest
from PIL import Image

from hunyuan_core import families, model_source
from hunyuan_core.images import decode_image
from hunyuan_core.job_record import new_job, new_job_id
from hunyuan_core.supervisor import Supervisor
from hunyuan_core.timing_stats import TimingStats
from runner.pictures import picture_png

from .conftest import copy_artifact, wait_for
from .mp4_check import assert_playable_mp4

pytestmark = pytest.mark.demo_model

NEW_FAMILIES = ("demo-hunyuanvideo-i2v", "demo-hunyuanvideo-1.5", "demo-hunyuanvideo-1.5-i2v")
STEPS = 3
FRAMES = 9
# Not a bucket, not a multiple of 16: the family's size rule decides.
REQUESTED = (264, 200)
IMAGE_SIZE = (200, 120)


def job_params(folder, image=None, **overrides):
    """The parameters a job on this model gets: the family's defaults, its size rule, small sizes."""
    family = families.family_of(folder)
    params = dict(family.defaults, prompt='A cat holds a sign that says "HELLO".', negative_prompt=None, seed=5,
                  video_length=FRAMES, num_inference_steps=STEPS, fps=8)
    for name in family.unused_fields:
        params.pop(name, None)
    if image is not None:
        size = families.size_for_image(family, folder, image.width, image.height, *REQUESTED)
    else:
        size = families.size_for_request(family, folder, *REQUESTED)
    params["width"], params["height"] = size
    params.update(overrides)
    return params


def queue(store, folder, **overrides):
    """A queued job on the model in `folder`, with its input image stored when the model takes one."""
    family = families.family_of(folder)
    image = decode_image(picture_png(*IMAGE_SIZE)) if family.takes_image else None
    params = job_params(folder, image, **overrides)
    meta = model_source.read_metadata(folder)
    model = {"name": meta["name"], "path": str(folder), "demo": True, "family": family.name, "task": family.task}
    job_id = new_job_id()
    job = new_job(job_id, {"prompt": params["prompt"]}, params, [], model)
    if image is not None:
        job["image"] = store.save_input(job_id, image)
    return store.create(job)["job_id"]


@pytest.fixture
def family_store(store, demo_folders):
    """The test's store, with this host's calibration (the session's, measured on the 13B demo)
    filed under every demo model, as after their first jobs: tests do not each calibrate."""
    calibration = TimingStats(store.root, model_source.EMBEDDED_MODEL_NAME).calibration()
    for name in NEW_FAMILIES:
        TimingStats(store.root, model_source.read_metadata(demo_folders[name])["name"]).set_calibration(calibration)
    return store


def run(store, job_id, watch=None):
    supervisor = Supervisor(store, max_workers=1)

    def settled():
        supervisor.tick()
        job = store.get(job_id)
        if watch:
            watch(job)
        return job if job["status"] in ("completed", "failed") and (job["runner"] or {}).get("ended_at") else None

    return wait_for(settled, 240, interval=0.05, message="the job to finish")


@pytest.mark.parametrize("demo", NEW_FAMILIES)
def test_a_job_on_each_family_renders_its_video_with_steps_and_memory(family_store, demo_folders, demo):
    store, folder = family_store, demo_folders[demo]
    family = families.family_of(folder)
    job_id = queue(store, folder)
    steps_seen = []
    job = run(store, job_id, watch=lambda j: steps_seen.append(j["step"]) if j["phase"] == "denoising" else None)
    assert job["status"] == "completed", job["error"]

    params = job["params"]
    frames = families.output_frame_count(family, folder, params["video_length"])
    path = store.video_path(job_id)
    copy_artifact(path, f"runner-{demo}.mp4")
    info = assert_playable_mp4(path, frames=frames, width=params["width"], height=params["height"], fps=8)
    assert (job["video"]["frames"], job["video"]["width"], job["video"]["height"]) == (
        info["frames"], info["width"], info["height"])
    expected_size = (families.size_for_image(family, folder, *IMAGE_SIZE, *REQUESTED) if family.takes_image
                     else families.size_for_request(family, folder, *REQUESTED))
    assert (info["width"], info["height"]) == expected_size

    # Every denoising step reached the job record, in order (1.5: counted at its scheduler).
    assert job["step"] == STEPS and job["step_seconds"] > 0
    assert steps_seen == sorted(steps_seen) and set(steps_seen) <= set(range(STEPS + 1))
    stages = {"text_encoders", "transformer", "vae"} | ({"image_encoders"} if family.takes_image else set())
    assert set(job["memory"]) == stages
    assert all(stage["peak_rss_mb"] > 0 and stage["rss_after_free_mb"] > 0 for stage in job["memory"].values())

    sample = TimingStats(store.root, job["model"]["name"]).samples()[-1]
    assert sample["job_id"] == job_id
    # The image stage's work is priced in the text phase: the VAE encoding the image.
    assert ("conv" in sample["phases"]["encoding_text"]["work"]) == family.takes_image


def test_an_image_to_video_job_whose_image_is_gone_fails_saying_so(family_store, demo_folders):
    store = family_store
    job_id = queue(store, demo_folders["demo-hunyuanvideo-1.5-i2v"])
    store.input_path(job_id).unlink()
    job = run(store, job_id)
    assert job["status"] == "failed"
    assert "input image" in job["error"] and "missing" in job["error"], job["error"]
    assert not store.video_path(job_id).exists()


# -- the stages in this process, against the pipeline's own __call__ -------------------


def _plain_latents(folder, params, image):
    """What the family's own pipeline, all components loaded, makes from the same inputs."""
    import diffusers
    import torch

    from runner import demo_models

    family = families.family_of(folder)
    pipe = getattr(diffusers, family.pipeline_class).from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    kwargs = demo_models.prepare_pipeline(pipe, folder)
    pipe.scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config,
                                                                          shift=params["flow_shift"])
    if family.cfg == "guider":
        pipe.guider = pipe.guider.new(guidance_scale=params["guidance_scale"])
    else:
        kwargs.update(guidance_scale=params["embedded_guidance_scale"], true_cfg_scale=params["guidance_scale"],
                      negative_prompt="" if params["guidance_scale"] > 1 else None)
    if not (family.takes_image and family.bucketed):
        kwargs.update(width=params["width"], height=params["height"])
    if image is not None:
        kwargs["image"] = image
    return pipe(prompt=params["prompt"], num_frames=params["video_length"],
                num_inference_steps=params["num_inference_steps"], output_type="latent",
                generator=torch.Generator().manual_seed(params["seed"]), **kwargs).frames


# Under real CFG (Qwen, ByT5, the guider's two passes); 1.5 text-to-video also drops its zero image tokens.
@pytest.mark.parametrize("demo, guidance", [("demo-hunyuanvideo-1.5-i2v", 6.0), ("demo-hunyuanvideo-1.5", 6.0),
                                            ("demo-hunyuanvideo-i2v", 1.0)])
def test_staged_stages_make_what_the_pipeline_makes(demo_folders, demo, guidance):
    import torch

    from hunyuan_core import precision
    from runner.pipeline import StagedPipeline

    folder = demo_folders[demo]
    family = families.family_of(folder)
    image = Image.open(io.BytesIO(picture_png(*IMAGE_SIZE))).convert("RGB") if family.takes_image else None
    params = job_params(folder, image, guidance_scale=guidance)
    staged = StagedPipeline(str(folder), "cpu", precision.plan(str(folder), "cpu", compute="float32"))
    steps = []
    prompt = staged.encode(params, image)
    condition = staged.encode_image(params, image) if image is not None else None
    latents = staged.denoise(params, prompt, steps.append, condition=condition)
    assert steps == list(range(STEPS))
    # Each stage's components were freed after it.
    assert staged.pipe.transformer is None and staged.pipe.text_encoder is None and staged.pipe.vae is None
    expected = _plain_latents(folder, params, image)
    # The runner drops the prompt's masked padding (13B: runner/family_calls.py `_trimmed`; 1.5:
    # runner/unpadded.py, image tokens too for text-to-video), exact up to float rounding.
    assert torch.allclose(latents, expected, rtol=1e-4, atol=1e-4), float((latents - expected).abs().max())
    frames, _mode = staged.decode(latents, params)
    count = families.output_frame_count(family, folder, params["video_length"])
    assert frames.shape == (count, params["height"], params["width"], 3)


def test_calibration_probes_each_family_by_its_own_rules(demo_folders, monkeypatch):
    """Calibrating a 1.5 image-to-video model renders probe jobs of its buckets, with an image."""
    from runner import calibrate

    folder = str(demo_folders["demo-hunyuanvideo-1.5-i2v"])
    family = families.family_of(folder)
    for number, probe in enumerate(calibrate.PROBES):
        used, image = calibrate.probe_job(family, folder, probe, number)
        assert (used["width"], used["height"]) == families.nearest_bucket(image.width, image.height, 256)
        assert "embedded_guidance_scale" not in used and used["guidance_scale"] == 6.0
    # The first probe alone keeps the test short; the kind rates are the priors.
    monkeypatch.setattr(calibrate, "PROBES", calibrate.PROBES[:1])
    samples = calibrate.probe_samples(folder, {}, threads=2, compute="float32")
    assert [s["job_id"] for s in samples] == ["calibration-probe-1"]
    for sample in samples:
        assert set(sample["phases"]) == {"encoding_text", "denoising", "decoding", "writing_video"}
        # The image stage (SigLIP and the VAE encoding the image) is priced in the text phase.
        assert sample["phases"]["encoding_text"]["work"]["conv"] > 0
        assert all(phase["seconds"] > 0 for phase in sample["phases"].values())
