"""The OpenAI-compatible face's core (hunyuan_core/video_objects.py) and its index cursor, without HTTP.

The SDK drives the whole face through real gunicorn in test_openai_sdk.py; here the
translation rules themselves, each at its edges, and what /v1 answers through the
Flask test client where no render is needed (light: no model build).
"""

from datetime import datetime, timedelta, timezone

import pytest

from hunyuan_core import catalog, video_objects
from hunyuan_core.errors import InvalidInput
from hunyuan_core.job_record import mark_finished, new_job, new_job_id, JobStatus, Phase
from hunyuan_core.job_store import JobStore

from .conftest import make_app

DEFAULT = catalog.from_settings({"DATA_DIR": "/nowhere", "MIN_STEPS": 10, "DEFAULT_STEPS": 30, "MAX_STEPS": 50,
                                 "DEFAULT_FLOW_SHIFT": 7.0, "MAX_FLOW_SHIFT": 10.0}).default


def job(status="queued", **changes):
    record = new_job(new_job_id(), request={"prompt": "p", "seed": None},
                     params={"prompt": "p", "width": 640, "height": 480, "video_length": 61, "fps": 15, "seed": 9},
                     adjustments=[], model={"name": "tiny", "path": "/nowhere", "served_as": "hv"})
    if status != "queued":
        record["status"] = status
    record.update(changes)
    return record


def test_size_and_seconds_become_width_height_and_frames_at_the_fps_asked_for():
    fields = video_objects.generation_fields({"prompt": "p", "size": "256x320", "seconds": "2", "fps": 8}, DEFAULT)
    assert fields == {"prompt": "p", "width": 256, "height": 320, "video_length": 16, "fps": 8}
    # Without fps, the model's default (15): 4 s is 60 frames (made as 61, by /api/generate's rounding).
    assert video_objects.generation_fields({"prompt": "p", "seconds": 4}, DEFAULT)["video_length"] == 60


@pytest.mark.parametrize("fields, words", [
    ({"size": "640"}, "Must be WIDTHxHEIGHT"),
    ({"size": "100x480"}, "width must be between 256 and 1280"),
    ({"size": "640x2000"}, "height must be between 256 and 1280"),
    ({"size": 640}, "Must be WIDTHxHEIGHT"),
    ({"size": "640x480", "width": 640}, "Given together with width"),
    ({"seconds": "0.5"}, "between 0.867 and 8.6 seconds at 15 fps"),
    ({"seconds": "10", "fps": 30}, "between 0.433 and 4.3 seconds at 30 fps"),
    ({"seconds": "four"}, "Must be a number of seconds"),
    ({"seconds": "-1"}, "Must be a number of seconds"),
    ({"seconds": True}, "Must be a number of seconds"),
    ({"seconds": "2", "video_length": 13}, "Given together with video_length"),
])
def test_a_bad_size_or_seconds_names_its_field(fields, words):
    with pytest.raises(InvalidInput) as caught:
        video_objects.generation_fields(dict(fields, prompt="p"), DEFAULT)
    assert caught.value.field in ("size", "seconds") and words in caught.value.message


def test_a_video_object_for_each_status():
    queued = video_objects.video_object(job())
    assert (queued["status"], queued["progress"], queued["size"], queued["seconds"], queued["model"]) \
        == ("queued", 0, "640x480", "4.067", "hv")
    assert queued["completed_at"] is None and queued["error"] is None and queued["object"] == "video"
    running = video_objects.video_object(job("processing", progress=0.999))
    assert (running["status"], running["progress"]) == ("in_progress", 99)
    done = mark_finished(job("processing", progress=0.9), JobStatus.COMPLETED, Phase.DONE)
    done["video"] = {"file": "x.mp4", "width": 512, "height": 384}
    finished = video_objects.video_object(done, video_ttl=3600)
    assert (finished["status"], finished["progress"], finished["size"]) == ("completed", 100, "512x384")
    assert finished["expires_at"] == finished["completed_at"] + 3600 >= finished["created_at"]
    failed = video_objects.video_object(mark_finished(job(), JobStatus.FAILED, Phase.FAILED, "Out of memory."))
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "generation_failed", "message": "Out of memory."}
    canceled = video_objects.video_object(mark_finished(job(), JobStatus.CANCELED, Phase.CANCELED))
    assert canceled["status"] == "failed" and canceled["error"]["code"] == "canceled"
    stamped = job("completed", finished_at="2026-01-01T00:00:00.000+00:00", expires_at="2026-01-02T00:00:00.000+00:00")
    assert video_objects.video_object(stamped, video_ttl=60)["expires_at"] == 1767312000


def test_poll_after_is_a_fifth_of_the_time_left_within_bounds():
    assert [video_objects.poll_after_ms(eta) for eta in (None, 0.0, 1.0, 10.0, 30.0, 3600.0)] \
        == [1000, 500, 500, 2000, 6000, 10_000]


def test_a_remix_keeps_the_settings_and_seed_and_drops_the_webhook():
    source = job(request={"prompt": "old", "seed": None, "width": 640, "webhook_url": "https://example.com/h",
                          "model": None})
    assert video_objects.remix_request(source, "new") == {"prompt": "new", "seed": 9, "width": 640, "model": "hv"}


def test_the_index_pages_by_age_after_a_cursor_for_one_owner_or_all(tmp_path):
    store = JobStore(tmp_path / "data")
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids = []
    for i in range(5):
        record = job(owner="bob" if i == 2 else "alice")
        record["created_at"] = (start + timedelta(seconds=i)).isoformat(timespec="milliseconds")
        store.create(record)
        ids.append(record["job_id"])
    alices = [ids[4], ids[3], ids[1], ids[0]]
    assert store.index.page_after(None, 2, "desc", "alice", False) == (alices[:2], True)
    assert store.index.page_after(alices[1], 2, "desc", "alice", False) == (alices[2:], False)
    assert store.index.page_after(None, 10, "asc", None, True) == (ids, False)
    assert store.index.page_after(ids[1], 2, "asc", None, True) == (ids[2:4], True)
    with pytest.raises(LookupError):
        store.index.page_after(ids[2], 2, "desc", "alice", False)  # bob's job is no cursor for alice


def test_api_errors_keep_their_shape_while_v1_answers_in_openais(data_dir):
    client = make_app(data_dir, ENVIRON={"API_KEY": "alice:a-key"}).test_client()
    key = {"Authorization": "Bearer a-key"}
    assert client.get("/api/status/nope", headers=key).json == {
        "code": 404, "status": "Not Found", "message": "Job not found", "detail": "Job not found"}
    assert client.get("/v1/videos/nope", headers=key).json == {"error": {
        "message": "No video with id 'nope'", "type": "invalid_request_error", "param": None, "code": "not_found"}}
    unauthorized = client.get("/v1/videos")
    assert unauthorized.status_code == 401 and unauthorized.json["error"]["type"] == "authentication_error"
    assert client.get("/api/jobs").json["detail"].startswith("Missing API key")
    bad = client.post("/v1/videos", json={"prompt": "p", "num_inference_steps": 5000}, headers=key)
    assert bad.status_code == 422 and bad.json["error"]["param"] == "num_inference_steps"
    whole = client.post("/v1/videos", json=["not", "an", "object"], headers=key)
    assert whole.status_code == 422 and whole.json["error"]["param"] is None
    assert client.get("/v1/videos?limit=0", headers=key).json["error"]["param"] == "limit"
    assert client.post("/v1/videos/x/remix", data="{", content_type="application/json",
                       headers=key).json["error"]["code"] == "bad_request"
