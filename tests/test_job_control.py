"""POST /api/jobs/{job_id}/cancel through the Flask test client, with real runner processes."""

import os
import signal

import psutil
import pytest

from hunyuan_core import processes

from .conftest import SMALL_REQUEST, fixture_runner, make_app, wait_for


@pytest.fixture
def hanging(data_dir):
    """An app whose runners hang (tests/fixtures/runners/hangs.py), one at a time."""
    app = make_app(data_dir, WORK_COMMAND=fixture_runner("hangs"), ENVIRON={"MAX_WORKERS": "1"})
    yield app
    for job in app.extensions["hunyuan_api"].store.list()[0]:
        guard = (job.get("runner") or {}).get("guard")
        if processes.is_alive(guard):
            os.killpg(guard["pid"], signal.SIGKILL)


def submit(client, **overrides):
    response = client.post("/api/generate", json=dict(SMALL_REQUEST, **overrides))
    assert response.status_code == 200, response.json
    return response.json["job_id"]


def start_and_wait_working(app, store, job_id):
    """Tick until the job's work process is running and has reported its phase."""
    supervisor = app.extensions["hunyuan_api"].supervisor

    def working():
        supervisor.tick()
        job = store.get(job_id)
        return job if job.get("phase") == "denoising" and (job.get("runner") or {}).get("worker") else None

    return wait_for(working, 30, interval=0.1, message=f"job {job_id} to be working")


def test_cancel_a_queued_job_it_never_starts(client, app, store):
    job_id = submit(client)
    response = client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "canceled" and body["phase"] == "canceled" and body["finished_at"]
    app.extensions["hunyuan_api"].supervisor.tick()
    job = store.get(job_id)
    assert job["status"] == "canceled" and job["runner"] is None
    assert client.get(f"/api/status/{job_id}").json["status"] == "canceled"
    assert client.get("/api/jobs?status=canceled").json["total"] == 1


def test_cancel_a_processing_job_ends_its_process_group_and_the_next_job_starts(hanging, store):
    client = hanging.test_client()
    first, second = submit(client), submit(client)
    job = start_and_wait_working(hanging, store, first)
    guard, worker = job["runner"]["guard"], job["runner"]["worker"]
    store.partial_video_path(first).write_bytes(b"half a video")
    assert processes.is_alive(guard) and processes.is_alive(worker)

    response = client.post(f"/api/jobs/{first}/cancel")

    assert response.status_code == 200 and response.json["status"] == "canceled"
    # The whole process group is gone within 5 s (the bound).
    wait_for(lambda: not processes.is_alive(guard) and not processes.is_alive(worker), 5, message="runners gone")
    group = [p for p in psutil.process_iter() if _pgid(p.pid) == guard["pid"] and p.status() != psutil.STATUS_ZOMBIE]
    assert group == []
    assert not store.partial_video_path(first).exists()
    assert store.log_path(first).exists() and store.job_path(first).exists()
    # The slot is free: the next queued job starts, and the canceled job stays canceled (no guard overwrote it).
    start_and_wait_working(hanging, store, second)
    canceled = store.get(first)
    assert canceled["status"] == "canceled" and canceled["error"] is None
    assert canceled["runner"]["ended_at"] and canceled["runner"]["canceled"] is True
    assert client.post(f"/api/jobs/{second}/cancel").json["status"] == "canceled"


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.parametrize("status", ["completed", "failed", "canceled"])
def test_cancel_a_finished_job_is_409(client, store, status):
    job_id = submit(client)
    store.update(job_id, lambda job: job.update(status=status))
    response = client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert f"already {status}" in response.json["detail"]
    assert store.get(job_id)["status"] == status


def test_cancel_unknown_job_is_404(client):
    response = client.post("/api/jobs/00000000-0000-4000-8000-000000000000/cancel")
    assert response.status_code == 404 and response.json["detail"] == "Job not found"
    assert client.post("/api/jobs/not-a-job/cancel").status_code == 404


def test_delete_keeps_its_rule_and_removes_a_canceled_job(hanging, store):
    client = hanging.test_client()
    job_id = submit(client)
    start_and_wait_working(hanging, store, job_id)
    assert client.delete(f"/api/jobs/{job_id}").status_code == 400
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 200
    assert client.delete(f"/api/jobs/{job_id}").status_code == 200
    assert not store.job_path(job_id).exists() and not store.log_path(job_id).exists()


def test_cancel_is_in_the_openapi_document(client):
    spec = client.get("/openapi.json").json
    operation = spec["paths"]["/api/jobs/{job_id}/cancel"]["post"]
    assert {"200", "404", "409"} <= set(operation["responses"])
    status_enum = spec["components"]["schemas"]["JobStatus"]["properties"]["status"]["enum"]
    assert "canceled" in status_enum
