"""The API contract, through Flask's test client: fields, defaults, ranges, errors, docs."""

import re

import pytest

from hunyuan_core import params
from hunyuan_core.job_record import new_job, new_job_id
from hunyuan_core.model_source import EMBEDDED_MODEL_NAME

from .conftest import SMALL_REQUEST, make_app

SEED_STATUS_FIELDS = {
    "job_id",
    "status",
    "progress",
    "created_at",
    "updated_at",
    "video_url",
    "error",
    "estimated_time",
}

# The request bodies of the API document: the quick start and its three recommended settings.
SEED_REQUESTS = [
    {"prompt": "A cat walks on the grass, realistic style.", "width": 640, "height": 480, "video_length": 61, "fps": 15, "num_inference_steps": 30},
    {"prompt": "Your prompt here", "width": 480, "height": 360, "video_length": 61, "fps": 15, "num_inference_steps": 25},
    {"prompt": "Your prompt here", "width": 640, "height": 480, "video_length": 61, "fps": 15, "num_inference_steps": 30},
    {"prompt": "Your prompt here", "width": 720, "height": 480, "video_length": 61, "fps": 15, "num_inference_steps": 40},
    {"prompt": "A cat walks on the grass, realistic style.", "width": 640, "height": 480, "video_length": 61, "fps": 15,
     "seed": None, "num_inference_steps": 30, "guidance_scale": 1.0, "flow_shift": 7.0, "embedded_guidance_scale": 6.0},
]


def submit(client, body=None):
    response = client.post("/api/generate", json=body or SMALL_REQUEST)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# -- general endpoints -------------------------------------------------------------


def test_index_points_to_docs_and_names_the_demo_model(client):
    body = client.get("/").get_json()
    assert body["docs"] == "/docs" and body["redoc"] == "/redoc"
    assert body["model"]["demo"] is True and "MODEL_PATH" in body["model"]["note"]


def test_health_reports_ready_model_and_counts(client):
    submit(client)
    body = client.get("/health").get_json()
    assert body["status"] == "healthy" and body["model_loaded"] is True
    assert (body["active_jobs"], body["queued_jobs"], body["total_jobs"]) == (0, 1, 1)
    assert body["model"]["demo"] is True and body["max_workers"] == 2


def test_info_lists_every_parameter_with_the_documented_range(client):
    body = client.get("/api/info").get_json()
    for p in params.PARAMETERS:
        assert body["parameters"][p.name]["default"] == p.default
        assert (body["parameters"][p.name]["minimum"], body["parameters"][p.name]["maximum"]) == (p.minimum, p.maximum)
    assert body["model"]["demo"] is True and "MODEL_PATH" in body["using_real_weights"]
    assert body["size_rules"]["width_height_multiple"] == 16


def test_the_default_demo_is_listed_as_the_one_model_and_recorded_in_jobs(client, store):
    info = client.get("/api/info").get_json()
    (model,) = info["models"]
    assert (model["name"], model["family"], model["task"], model["demo"], model["default"]) == (
        "demo-hunyuanvideo", "hunyuanvideo", "text-to-video", True, True)
    assert model["parameters"] == info["parameters"] and model["precision"] == info["precision"]
    assert info["precision"]["for_request"] == "the default request (640x480, 61 frames)"
    job = store.get(submit(client)["job_id"])
    # `name` stays the build's name: this host's timing statistics are kept under it.
    assert job["model"] | {"path": None} == {"name": EMBEDDED_MODEL_NAME, "path": None, "demo": True,
                                             "family": "hunyuanvideo", "task": "text-to-video",
                                             "served_as": "demo-hunyuanvideo"}
    health = client.get("/health").get_json()
    assert [(m["served_as"], m["ready"]) for m in health["models"]] == [("demo-hunyuanvideo", True)]


def test_model_being_built_gives_the_documented_503(tmp_path):
    client = make_app(tmp_path / "empty").test_client()
    health = client.get("/health").get_json()
    assert health["status"] == "starting" and health["model_loaded"] is False
    response = client.post("/api/generate", json=SMALL_REQUEST)
    assert response.status_code == 503
    assert response.get_json()["detail"] == "Model not initialized yet. Please try again in a few moments."
    assert int(response.headers["Retry-After"]) > 0


def test_missing_model_path_is_explained(tmp_path):
    client = make_app(tmp_path / "data", MODEL_PATH=str(tmp_path / "nowhere")).test_client()
    response = client.post("/api/generate", json=SMALL_REQUEST)
    assert response.status_code == 503
    assert "MODEL_PATH" in response.get_json()["detail"] and "does not exist" in response.get_json()["detail"]


# -- submitting -------------------------------------------------------------------


def test_submit_answers_as_documented_and_writes_a_job_file(client, store):
    body = submit(client, {"prompt": "A cat walks on the grass, realistic style."})
    assert body["status"] == "queued"
    assert body["message"] == "Video generation job submitted successfully"
    assert body["check_status_url"] == f"/api/status/{body['job_id']}"
    job = store.get(body["job_id"])
    assert job["params"] == body["params"]
    for p in params.PARAMETERS:
        assert job["params"][p.name] == p.default
    assert body["estimated_time"] > 0 and body["queue_position"] == 1


@pytest.mark.parametrize("request_body", SEED_REQUESTS)
def test_every_request_of_the_api_document_is_accepted(client, request_body):
    body = submit(client, request_body)
    used = body["params"]
    assert used["width"] % 16 == 0 and used["height"] % 16 == 0 and (used["video_length"] - 1) % 4 == 0
    if request_body["height"] == 360:
        assert used["height"] == 368
        assert any("height 360 rounded to 368" in a for a in body["adjustments"])


def test_status_has_every_documented_field(client):
    job_id = submit(client)["job_id"]
    body = client.get(f"/api/status/{job_id}").get_json()
    assert SEED_STATUS_FIELDS <= set(body)
    assert body["status"] == "queued" and body["progress"] == 0.0
    assert body["video_url"] is None and body["error"] is None
    assert isinstance(body["estimated_time"], float) and body["estimated_time"] > 0
    assert body["queue_position"] == 1 and body["eta_seconds"] >= body["estimated_time"] - 0.1


def test_estimates_grow_with_the_size_of_the_job(client):
    big = dict(SMALL_REQUEST, width=1280, height=720, video_length=129, num_inference_steps=50)
    small = submit(client, dict(SMALL_REQUEST))["estimated_time"]
    large = submit(client, big)["estimated_time"]
    assert large > 5 * small
    # Real CFG runs the transformer twice per step: the denoising part of the estimate doubles.
    cfg = submit(client, dict(big, guidance_scale=5.0))["estimated_time"]
    assert 1.3 * large < cfg < 2.05 * large


def test_queue_positions_follow_submission_order(client):
    ids = [submit(client)["job_id"] for _ in range(3)]
    positions = [client.get(f"/api/status/{i}").get_json()["queue_position"] for i in ids]
    assert positions == [1, 2, 3]
    etas = [client.get(f"/api/status/{i}").get_json()["eta_seconds"] for i in ids]
    assert etas[0] <= etas[1] <= etas[2]


# -- bad input ------------------------------------------------------------------


@pytest.mark.parametrize("p", params.PARAMETERS, ids=lambda p: p.name)
def test_out_of_range_values_get_422_naming_field_and_range(client, p):
    step = 1 if p.kind is int else 0.5
    for value in (p.minimum - step, p.maximum + step):
        response = client.post("/api/generate", json={"prompt": "x", p.name: value})
        assert response.status_code == 422
        detail = response.get_json()["detail"]
        assert p.name in detail and f"between {p.minimum} and {p.maximum}" in detail


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({}, "prompt", "Missing data"),
        ({"prompt": "   "}, "prompt", "empty"),
        ({"prompt": "x" * 2001}, "prompt", "2000"),
        ({"prompt": 5}, "prompt", "Not a valid string"),
        ({"prompt": "x", "width": "wide"}, "width", "Not a valid integer"),
        ({"prompt": "x", "width": 640.5}, "width", "Not a valid integer"),
        ({"prompt": "x", "seed": -1}, "seed", "between 0 and"),
        ({"prompt": "x", "seed": 1.5}, "seed", "Not a valid integer"),
        ({"prompt": "x", "guidance_scale": "NaN"}, "guidance_scale", ""),
        ({"prompt": "x", "steps": 20}, "steps", "Unknown field"),
    ],
)
def test_invalid_requests_get_422_naming_the_field(client, body, field, words):
    response = client.post("/api/generate", json=body)
    assert response.status_code == 422
    detail = response.get_json()["detail"]
    assert detail.startswith("Invalid request:") and field in detail and words in detail


def test_malformed_json_is_a_400_with_detail(client):
    response = client.post("/api/generate", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.get_json()["detail"]


def test_unknown_routes_and_methods_have_detail(client):
    assert client.get("/api/nothing").get_json()["detail"]
    response = client.put("/api/generate", json={})
    assert response.status_code == 405 and response.get_json()["detail"]


# -- job list -------------------------------------------------------------------


def test_list_is_newest_first_with_filter_and_limit(client, store):
    ids = [submit(client)["job_id"] for _ in range(3)]
    store.update(ids[0], lambda j: j.update(status="completed"))
    body = client.get("/api/jobs").get_json()
    assert [j["job_id"] for j in body["jobs"]] == ids[::-1] and body["total"] == 3
    body = client.get("/api/jobs?status=queued&limit=1").get_json()
    assert [j["job_id"] for j in body["jobs"]] == [ids[2]] and (body["count"], body["total"]) == (1, 2)
    assert [j["job_id"] for j in client.get("/api/jobs?status=completed").get_json()["jobs"]] == [ids[0]]


def test_list_limit_defaults_to_50(client, store):
    for _ in range(55):
        store.create(new_job(new_job_id(), {"prompt": "p"}, dict(SMALL_REQUEST, seed=1), [], {}))
    body = client.get("/api/jobs").get_json()
    assert (body["count"], body["total"]) == (50, 55)


@pytest.mark.parametrize("query, field", [("limit=0", "limit"), ("limit=101", "limit"), ("status=done", "status"), ("limit=x", "limit")])
def test_list_rejects_bad_query_with_422(client, query, field):
    response = client.get(f"/api/jobs?{query}")
    assert response.status_code == 422 and field in response.get_json()["detail"]


def test_corrupt_job_file_is_reported_everywhere_and_deletable(client, store):
    good = submit(client)["job_id"]
    bad = new_job_id()
    store.job_path(bad).write_text('{"job_id": "' + bad + '", "stat')
    body = client.get("/api/jobs").get_json()
    assert [j["job_id"] for j in body["jobs"]] == [good]
    assert body["unreadable"][0]["job_id"] == bad and "not valid JSON" in body["unreadable"][0]["error"]
    response = client.get(f"/api/status/{bad}")
    assert response.status_code == 500 and str(store.job_path(bad)) in response.get_json()["detail"]
    health = client.get("/health").get_json()
    assert health["unreadable_jobs"] == 1 and health["total_jobs"] == 2
    assert client.delete(f"/api/jobs/{bad}").status_code == 200
    assert not store.job_path(bad).exists()


# -- deleting -------------------------------------------------------------------


def test_delete_queued_job_removes_it_before_it_starts(client, app, store):
    job_id = submit(client)["job_id"]
    response = client.delete(f"/api/jobs/{job_id}")
    assert response.status_code == 200 and response.get_json()["job_id"] == job_id
    assert client.get(f"/api/status/{job_id}").status_code == 404
    assert app.extensions["hunyuan_api"].supervisor.tick() == []


def test_delete_unknown_job_is_404(client):
    response = client.delete(f"/api/jobs/{new_job_id()}")
    assert response.status_code == 404 and response.get_json()["detail"] == "Job not found"


def test_delete_processing_job_is_refused_with_400(client, store):
    job_id = submit(client)["job_id"]
    store.update(job_id, lambda j: j.update(status="processing"))
    response = client.delete(f"/api/jobs/{job_id}")
    assert response.status_code == 400
    assert response.get_json()["detail"] == "Cannot delete job that is currently processing"
    assert store.job_path(job_id).exists()


def test_delete_completed_job_removes_its_video(client, store):
    job_id = submit(client)["job_id"]
    store.update(job_id, lambda j: j.update(status="completed", video={"file": f"{job_id}.mp4"}))
    store.video_path(job_id).write_bytes(b"\x00" * 100)
    assert client.delete(f"/api/jobs/{job_id}").status_code == 200
    assert not store.video_path(job_id).exists()
    assert client.get(f"/api/videos/{job_id}.mp4").status_code == 404


# -- videos ---------------------------------------------------------------------


@pytest.fixture
def video(client, store):
    """A completed job whose record names its video file (only such files are served)."""
    job_id = submit(client)["job_id"]
    payload = bytes(range(256)) * 40
    store.video_path(job_id).write_bytes(payload)
    store.update(job_id, lambda j: j.update(status="completed", video={"file": f"{job_id}.mp4"}))
    return job_id, payload


def test_video_is_served_as_mp4_with_ranges(client, video):
    job_id, payload = video
    response = client.get(f"/api/videos/{job_id}.mp4")
    assert response.status_code == 200 and response.mimetype == "video/mp4"
    assert response.data == payload and response.headers["Accept-Ranges"] == "bytes"
    partial = client.get(f"/api/videos/{job_id}.mp4", headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206 and partial.data == payload[100:200]
    assert partial.headers["Content-Range"] == f"bytes 100-199/{len(payload)}"
    tail = client.get(f"/api/videos/{job_id}.mp4", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == payload[-10:]
    beyond = client.get(f"/api/videos/{job_id}.mp4", headers={"Range": f"bytes={len(payload) + 5}-"})
    assert beyond.status_code == 416


@pytest.mark.parametrize(
    "name",
    [
        "..%2Fjobs%2F{id}.json",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "..",
        ".{id}.mp4.partial",
        "{id}.json",
        "{id}.mp4%00",
        "%2Fetc%2Fpasswd",
        "{id}.MP4",
    ],
)
def test_names_outside_the_video_folder_are_refused(client, store, video, name):
    job_id, _ = video
    store.partial_video_path(job_id).write_bytes(b"partial")
    response = client.get("/api/videos/" + name.format(id=job_id))
    assert response.status_code == 404
    assert response.get_json()["detail"]


# -- documentation ----------------------------------------------------------------


@pytest.mark.parametrize("page, script", [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_docs_pages_load_their_scripts_from_this_server(client, page, script):
    html = client.get(page).get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") for s in sources), sources
    local = next(s for s in sources if s.endswith(script))
    asset = client.get(local)
    assert asset.status_code == 200 and len(asset.data) > 100_000


def test_openapi_documents_every_endpoint(client):
    spec = client.get("/openapi.json").get_json()
    assert set(spec["paths"]) >= {
        "/",
        "/health",
        "/api/info",
        "/api/generate",
        "/api/status/{job_id}",
        "/api/videos/{filename}",
        "/api/jobs",
        "/api/jobs/{job_id}",
    }
    generate = spec["components"]["schemas"]["GenerateRequest"]["properties"]
    assert generate["width"]["minimum"] == 256 and generate["width"]["maximum"] == 1280
    assert "detail" in spec["components"]["schemas"]["Error"]["properties"]
