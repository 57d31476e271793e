"""End to end on real gunicorn (two web workers): API key, cancel of a real render, webhooks sent
once across workers, and one job per Idempotency-Key under concurrent retries."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from hunyuan_core import processes

from .conftest import SMALL_REQUEST, artifact_path, wait_for
from .server import GunicornServer, kill_all_runners, runner_processes
from .webhook_receiver import WebhookReceiver

# data_dir holds the built demo model and this host's calibration (tests/conftest.py).
pytestmark = [pytest.mark.timeout(600), pytest.mark.demo_model]

SECRET = "e2e-secret"
KEY = {"X-API-Key": "e2e-key"}
# Long enough to be caught mid-denoising.
MEDIUM_REQUEST = dict(SMALL_REQUEST, width=640, height=480, video_length=61, num_inference_steps=30)


@pytest.fixture
def server(data_dir):
    with GunicornServer(data_dir, workers=2, MAX_WORKERS=1, API_KEY="e2e-key", WEBHOOK_SECRET=SECRET,
                        WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
                        SUPERVISOR_POLL_INTERVAL="0.5", MIN_FREE_DISK_MB="1") as running:
        yield running
    kill_all_runners(data_dir)


def job_file(data_dir, job_id):
    return json.loads((data_dir / "jobs" / f"{job_id}.json").read_text())


def status(server, job_id):
    return server.get(f"/api/status/{job_id}", headers=KEY).json()


def test_cancel_a_real_render_then_the_next_job_completes_with_one_signed_webhook_each(server, data_dir):
    assert server.get("/api/jobs").status_code == 401
    assert server.get("/health").status_code == 200
    with WebhookReceiver(SECRET) as receiver:
        first = server.post("/api/generate", json=dict(MEDIUM_REQUEST, webhook_url=receiver.url), headers=KEY)
        second = server.post("/api/generate", json=dict(SMALL_REQUEST, webhook_url=receiver.url), headers=KEY)
        first, second = first.json()["job_id"], second.json()["job_id"]
        wait_for(lambda: status(server, first)["phase"] == "denoising", 180, interval=0.25, message="denoising")
        runner = job_file(data_dir, first)["runner"]
        assert runner_processes(data_dir)

        began = time.monotonic()
        response = server.post(f"/api/jobs/{first}/cancel", headers=KEY)
        answered = time.monotonic() - began

        assert response.status_code == 200 and response.json()["status"] == "canceled"
        wait_for(lambda: not processes.is_alive(runner["guard"]) and not processes.is_alive(runner["worker"]), 5,
                 message="the canceled job's runner processes to be gone")
        artifact_path("cancel-timing.txt").write_text(
            f"cancel answered in {answered:.3f} s; runner gone {time.monotonic() - began:.3f} s after the request\n")
        assert not (data_dir / "videos" / f".{first}.mp4.partial").exists()
        done = wait_for(lambda: (s := status(server, second))["status"] in ("completed", "failed") and s, 180,
                        interval=0.25, message="the next job to finish")
        assert done["status"] == "completed", done["error"]
        assert server.get(done["video_url"], headers=KEY).status_code == 200
        assert status(server, first)["status"] == "canceled"

        wait_for(lambda: len(receiver.delivered()) >= 2, 30, message="both webhooks")
        # Both web workers tick; give a second sender every chance to send again.
        wait_for(lambda: all(status(server, j)["webhook"]["delivered_at"] for j in (first, second)), 10)
        time.sleep(3)
        sent = {body["job_id"]: body["status"] for body in receiver.delivered()}
        assert len(receiver.requests) == 2 and sent == {first: "canceled", second: "completed"}
        assert all(receiver.signature_ok(headers, body) for headers, body, _ in receiver.requests)


def test_concurrent_retries_with_one_idempotency_key_make_one_job(server, data_dir):
    headers = dict(KEY, **{"Idempotency-Key": "retry-storm"})
    body = dict(SMALL_REQUEST, prompt="one job only")

    def post(_):
        return server.post("/api/generate", json=body, headers=headers)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert {answer.status_code for answer in answers} == {200}
    job_ids = {answer.json()["job_id"] for answer in answers}
    assert len(job_ids) == 1
    assert len(list((data_dir / "jobs").glob("*.json"))) == 1
    job_id = job_ids.pop()
    assert server.post(f"/api/jobs/{job_id}/cancel", headers=KEY).status_code in (200, 409)
