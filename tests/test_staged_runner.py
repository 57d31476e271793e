"""Running stage by stage: memory given back between stages, priority, step caches, GPU."""

import subprocess
import sys

import psutil
import pytest
import torch

from hunyuan_core import model_source, params
from hunyuan_core.job_record import new_job, new_job_id
from hunyuan_core.precision import component_weights
from hunyuan_core.supervisor import Supervisor

from .conftest import COMPUTE_HERE, ROOT, SMALL_REQUEST, make_app, wait_for

# data_dir holds the built demo model and this host's calibration (tests/conftest.py).
pytestmark = pytest.mark.demo_model

# Same architecture as the demo model, with a text encoder (~300 MB) and a transformer
# (~170 MB) big enough that freeing them shows in the process's resident memory.
MEASURABLE = {
    "text_encoder": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 8,
                     "num_attention_heads": 12, "num_key_value_heads": 4},
    "transformer": {"num_attention_heads": 6, "attention_head_dim": 128, "rope_axes_dim": (16, 56, 56),
                    "num_layers": 2, "num_single_layers": 2, "text_embed_dim": 768},
}


@pytest.fixture(scope="module")
def measurable_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "measurable-hunyuanvideo"
    code = ("import sys; from runner.tiny_model import build_tiny_model; "
            f"build_tiny_model(sys.argv[1], overrides={MEASURABLE!r}, name='measurable-hunyuanvideo')")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=ROOT, capture_output=True)
    return path


def run_job(store, model_dir, request, supervisor=None, watch=None):
    used, adjustments = params.resolve(request)
    meta = model_source.read_metadata(model_dir)
    job_id = store.create(new_job(new_job_id(), request, used, adjustments,
                                  {"name": meta["name"], "path": str(model_dir), "demo": True}))["job_id"]
    supervisor = supervisor or Supervisor(store, max_workers=1)

    def finished():
        supervisor.tick()
        job = store.get(job_id)
        if watch:
            watch(job)
        return job if job["status"] in ("completed", "failed") and (job["runner"] or {}).get("ended_at") else None

    return wait_for(finished, 300, interval=0.2, message="job to finish")


def test_each_stage_gives_its_memory_back_and_runners_run_at_low_priority(store, measurable_model):
    niceness = []

    def watch(job):
        worker = (job.get("runner") or {}).get("worker")
        if worker and job["phase"] == "denoising" and not niceness:
            try:
                niceness.append(psutil.Process(worker["pid"]).nice())
            except psutil.NoSuchProcess:
                pass

    job = run_job(store, measurable_model, dict(SMALL_REQUEST, seed=1), watch=watch)
    assert job["status"] == "completed", job["error"]
    assert niceness and niceness[0] >= 10 > psutil.Process().nice()

    memory = job["memory"]
    # What each stage holds: its parameters in the dtype the runner stored them in.
    size = {"float32": 4, "bfloat16": 2, "float8_e4m3fn": 1}
    text_mb, transformer_mb = (
        component_weights(measurable_model, name)["params"] * size[job["runner"]["weights"][name]] / 2**20
        for name in ("text_encoder", "transformer")
    )
    assert text_mb > 125 and transformer_mb > 75
    text, transformer = memory["text_encoders"], memory["transformer"]
    # Each stage's peak holds its weights; freeing them gives (nearly) all of it back.
    assert text["peak_rss_mb"] - text["rss_before_mb"] > 0.8 * text_mb
    assert text["peak_rss_mb"] - text["rss_after_free_mb"] > 0.8 * text_mb
    assert transformer["peak_rss_mb"] - transformer["rss_after_free_mb"] > 0.8 * transformer_mb
    # The transformer stage starts with the text encoder already gone. (Its own peak also counts
    # the checkpoint's mapped pages while a smaller storage copy is made, so it is not compared.)
    assert transformer["rss_before_mb"] < text["peak_rss_mb"] - 0.8 * text_mb


def test_weights_stored_smaller_than_they_compute(store, measurable_model, tmp_path):
    # fp8 storage: what the text stage keeps resident while it computes shrinks by about the bytes saved.
    full = run_job(store, measurable_model, dict(SMALL_REQUEST, seed=2))
    app = make_app(store.root, ENVIRON={"WEIGHT_DTYPE": "float8"})
    supervisor = app.extensions["hunyuan_api"].supervisor
    small = run_job(store, measurable_model, dict(SMALL_REQUEST, seed=2), supervisor=supervisor)
    assert small["status"] == "completed", small["error"]
    assert small["runner"]["weights"] == {"transformer": "float8_e4m3fn", "text_encoder": "float8_e4m3fn"}
    assert small["runner"]["dtype"] == full["runner"]["dtype"] == COMPUTE_HERE
    # The full run stores the text encoder in the compute dtype (the fp32 file shrinks to bf16 where
    # bf16 is native); fp8 saves all but one byte of each parameter's compute-dtype bytes.
    params = component_weights(measurable_model, "text_encoder")["params"]
    compute_bytes = {"float32": 4, "bfloat16": 2}[COMPUTE_HERE]
    expected_mb = params * (compute_bytes - 1) / 2**20
    stage = "text_encoders"
    saved = full["memory"][stage]["compute_peak_rss_mb"] - small["memory"][stage]["compute_peak_rss_mb"]
    assert saved > 0.66 * expected_mb


@pytest.mark.parametrize(
    "cache, model, recorded",
    [
        ("taylorseer", "tiny_model", "taylorseer"),
        ("first_block", "measurable_model", "first_block"),
        # The demo model has a single block: First Block Cache has nothing to skip, so it runs uncached.
        ("first_block", "tiny_model", "none (first_block needs at least two transformer blocks; this model has one)"),
    ],
)
def test_step_caches_render_and_are_recorded(store, request, cache, model, recorded):
    app = make_app(store.root, ENVIRON={"STEP_CACHE": cache})
    job = run_job(store, request.getfixturevalue(model), dict(SMALL_REQUEST, seed=3),
                  supervisor=app.extensions["hunyuan_api"].supervisor)
    assert job["status"] == "completed", job["error"]
    assert job["runner"]["step_cache"] == recorded
    assert job["video"]["frames"] == 13


def test_taylorseer_skips_transformer_work(tiny_model):
    from hunyuan_core import precision
    from runner.pipeline import StagedPipeline

    used, _ = params.resolve(dict(SMALL_REQUEST, seed=4, num_inference_steps=12))

    def attention_calls(step_cache):
        staged = StagedPipeline(str(tiny_model), "cpu", precision.plan(str(tiny_model), "cpu"),
                                step_cache=step_cache, keep_loaded=True)
        kwargs = staged.encode(used)
        staged.pipe.transformer = staged._load("transformer")
        calls = []
        processor = staged.pipe.transformer.transformer_blocks[0].attn.processor
        staged.pipe.transformer.transformer_blocks[0].attn.processor = (
            lambda *a, **k: calls.append(1) or processor(*a, **k)
        )
        staged.denoise(used, kwargs, lambda index: None)
        return len(calls)

    plain = attention_calls(None)
    cached = attention_calls({"kind": "taylorseer", "interval": 4, "warmup": 3})
    assert plain == 12 and cached < plain


def test_step_range_follows_configuration_for_distilled_checkpoints(data_dir):
    env = {"MIN_STEPS": "4", "DEFAULT_STEPS": "6", "MAX_STEPS": "12", "DEFAULT_FLOW_SHIFT": "17",
           "MAX_FLOW_SHIFT": "20"}
    client = make_app(data_dir, ENVIRON=env).test_client()
    body = client.post("/api/generate", json={"prompt": "a cat"}).get_json()
    assert (body["params"]["num_inference_steps"], body["params"]["flow_shift"]) == (6, 17.0)
    response = client.post("/api/generate", json={"prompt": "a cat", "num_inference_steps": 20})
    assert response.status_code == 422 and "between 4 and 12" in response.get_json()["detail"]
    assert client.post("/api/generate", json={"prompt": "a cat", "flow_shift": 19.5}).status_code == 200
    spec = client.get("/openapi.json").get_json()["components"]["schemas"]["GenerateRequest"]["properties"]
    assert (spec["num_inference_steps"]["minimum"], spec["num_inference_steps"]["maximum"]) == (4, 12)
    assert spec["flow_shift"]["default"] == 17.0
    info = client.get("/api/info").get_json()["parameters"]["num_inference_steps"]
    assert (info["minimum"], info["default"], info["maximum"]) == (4, 6, 12)
    # The API document's ranges stay the default.
    assert make_app(data_dir).test_client().post(
        "/api/generate", json={"prompt": "a cat", "num_inference_steps": 6}
    ).status_code == 422


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_the_gpu_path_renders_in_bf16(tiny_model):
    from hunyuan_core import precision
    from runner.pipeline import StagedPipeline

    plan = precision.plan(str(tiny_model), "cuda")
    assert plan["compute_dtype"] == "bfloat16"
    staged = StagedPipeline(str(tiny_model), "cuda", plan)
    used, _ = params.resolve(dict(SMALL_REQUEST, seed=5))
    frames, _mode = staged.decode(staged.denoise(used, staged.encode(used), lambda index: None), used)
    assert frames.shape == (13, 256, 256, 3) and torch.cuda.max_memory_allocated() > 0
