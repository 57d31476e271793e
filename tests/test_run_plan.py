"""The one run plan (hunyuan_core/run_plan.py) on the light model: no torch, no weights needed."""

import pytest

from hunyuan_core import cost_model, params, run_plan
from hunyuan_core.config import runner_runtime

from .conftest import LIGHT_MODEL, SMALL_REQUEST, make_app

GB = 2**30


def _request(**changes):
    used, _ = params.resolve(dict(SMALL_REQUEST, seed=1, **changes))
    return used


def test_the_device_must_be_detected_before_planning():
    with pytest.raises(ValueError, match="detected device"):
        run_plan.make_plan(LIGHT_MODEL, _request(), {}, device="auto")


def test_a_plan_names_device_dtypes_step_cache_and_decoding():
    runtime = {"compute_dtype": "float32", "step_cache": {"kind": "taylorseer", "interval": 4}}
    plan = run_plan.make_plan(LIGHT_MODEL, _request(), runtime, "cpu", memory_bytes=8 * GB)
    assert plan["device"] == "cpu" and plan["compute_dtype"] == "float32"
    assert plan["memory_budget_bytes"] == 8 * GB
    assert plan["step_cache"] == runtime["step_cache"] and plan["step_cache_label"] == "taylorseer"
    assert plan["decoding"] == "whole"
    # On a GPU the decoding choice waits for the memory free when decoding starts.
    assert run_plan.make_plan(LIGHT_MODEL, _request(), runtime, "cuda", memory_bytes=8 * GB)["decoding"] is None


def test_first_block_cache_needs_two_blocks():
    blocks = cost_model.geometry(LIGHT_MODEL).blocks
    plan = run_plan.make_plan(LIGHT_MODEL, None, {"step_cache": {"kind": "first_block"}}, "cpu", memory_bytes=8 * GB)
    if blocks < 2:
        assert plan["step_cache"] is None and plan["step_cache_label"].startswith("none (first_block needs")
    else:
        assert plan["step_cache_label"] == "first_block"
    assert run_plan.step_cache({"kind": "first_block"}, 2) == ({"kind": "first_block"}, "first_block")
    assert run_plan.step_cache(None, 60) == (None, "none")


def test_decoding_is_tiled_when_the_video_does_not_fit_comfortably():
    geo = cost_model.geometry(LIGHT_MODEL)
    assert run_plan.decoding(_request(), geo, 64 * GB) == "whole"
    assert run_plan.decoding(_request(), geo, 2**20) == "tiled"


def test_api_info_shows_the_plans_precision_part(data_dir):
    app = make_app(data_dir)
    info = app.test_client().get("/api/info").get_json()
    model = info["model"]["path"]
    default = {p.name: p.default for p in app.config["PARAMETERS"]} | {"prompt": "A cat walks on the grass, realistic style."}
    device = "cpu" if app.config["DEVICE"] == "auto" else app.config["DEVICE"]
    expected = run_plan.make_plan(model, default, runner_runtime(app.config), device)
    assert info["precision"] == {key: expected[key] for key in run_plan.PRECISION_KEYS} | {
        "for_request": "the default request (640x480, 61 frames)"}
