"""VIDEO_TTL retention and signed webhooks: real runner processes, a real HTTP receiver."""

import json
from datetime import datetime, timedelta

import pytest

from hunyuan_core.housekeeping import Housekeeping
from hunyuan_core.job_record import new_job, new_job_id
from hunyuan_core.job_store import JobStore

from .conftest import SMALL_REQUEST, fixture_runner, make_app, wait_for
from .webhook_receiver import WebhookReceiver

SECRET = "test-secret"


def app_with(data_dir, runner="sleeps_then_completes", autostart=False, **environ):
    environ.setdefault("SUPERVISOR_POLL_INTERVAL", "0.1")
    # The receivers here listen on loopback, which webhooks may reach only when the operator allows it.
    environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    app = make_app(data_dir, WORK_COMMAND=fixture_runner(runner), SUPERVISOR_AUTOSTART=autostart,
                   ENVIRON={k: str(v) for k, v in environ.items()})
    return app


@pytest.fixture
def running_apps():
    """Apps whose supervisor threads run for real; stopped after the test."""
    apps = []
    yield apps.append
    for app in apps:
        app.extensions["hunyuan_api"].supervisor.stop()


def submit(client, **fields):
    response = client.post("/api/generate", json=dict(SMALL_REQUEST, prompt="sleep 0", **fields))
    assert response.status_code == 200, response.json
    return response.json["job_id"]


def tick_until(app, predicate, timeout=30, message="condition"):
    supervisor = app.extensions["hunyuan_api"].supervisor
    return wait_for(lambda: supervisor.tick() is not None and predicate(), timeout, interval=0.1, message=message)


# -- retention ------------------------------------------------------------------


def test_finished_jobs_expire_after_video_ttl_with_their_files(data_dir, store):
    app = app_with(data_dir, VIDEO_TTL=2)
    client = app.test_client()
    job_id = submit(client)
    job = tick_until(app, lambda: (j := store.get(job_id))["status"] == "completed" and j.get("expires_at") and j,
                     message="completed with expires_at")
    store.video_path(job_id).write_bytes(b"video")
    finished = datetime.fromisoformat(job["finished_at"])
    assert datetime.fromisoformat(job["expires_at"]) == finished + timedelta(seconds=2)
    assert client.get(f"/api/status/{job_id}").json["expires_at"] == job["expires_at"]
    tick_until(app, lambda: not store.job_path(job_id).exists(), timeout=10, message="the job removed")
    assert not store.video_path(job_id).exists() and not store.log_path(job_id).exists()
    assert client.get(f"/api/status/{job_id}").status_code == 404


def test_without_video_ttl_jobs_are_kept(data_dir, store):
    app = app_with(data_dir)
    job_id = submit(app.test_client())
    tick_until(app, lambda: store.get(job_id)["status"] == "completed", message="completed")
    for _ in range(3):
        app.extensions["hunyuan_api"].supervisor.tick()
    job = store.get(job_id)
    assert "expires_at" not in job and app.test_client().get(f"/api/status/{job_id}").json["expires_at"] is None


def test_an_expired_jobs_idempotency_key_is_freed(data_dir, store):
    app = app_with(data_dir, VIDEO_TTL=0.5)
    client = app.test_client()
    headers = {"Idempotency-Key": "nightly-1"}
    body = dict(SMALL_REQUEST, prompt="sleep 0")
    job_id = client.post("/api/generate", json=body, headers=headers).json["job_id"]
    tick_until(app, lambda: not store.job_path(job_id).exists(), message="the job to expire")
    assert list((store.root / "idempotency").glob("*.json")) == []
    assert client.post("/api/generate", json=body, headers=headers).json["job_id"] != job_id


def test_job_files_without_the_new_fields_still_load(client, store):
    # A job file written before retention and webhooks existed: no expires_at, webhook or key fields.
    job = new_job(new_job_id(), {"prompt": "old"}, dict(SMALL_REQUEST, seed=1), [], {})
    job.update(status="completed", finished_at=job["created_at"])
    store.create(job)
    body = client.get(f"/api/status/{job['job_id']}").json
    assert body["status"] == "completed" and body["expires_at"] is None and body["webhook"] is None
    assert client.get("/api/jobs").json["total"] == 1


# -- webhooks -------------------------------------------------------------------


def test_a_finished_job_posts_its_signed_status_once(data_dir, store, running_apps):
    app = app_with(data_dir, autostart=True, WEBHOOK_SECRET=SECRET)
    running_apps(app)
    client = app.test_client()
    with WebhookReceiver(SECRET) as receiver:
        job_id = submit(client, webhook_url=receiver.url)
        wait_for(lambda: store.get(job_id)["webhook"]["delivered_at"], 30, message="delivery")
        headers, body, _ = receiver.requests[0]
        assert receiver.signature_ok(headers, body)
        assert headers["X-Hunyuan-Event"] == "job.completed" and int(headers["X-Hunyuan-Timestamp"]) > 0
        assert headers["Content-Type"] == "application/json"
        sent = json.loads(body)
        assert sent["job_id"] == job_id and sent["status"] == "completed" and sent["progress"] == 1.0
        assert set(client.get(f"/api/status/{job_id}").json) == set(sent)
        for _ in range(5):
            app.extensions["hunyuan_api"].supervisor.tick()
        assert len(receiver.requests) == 1
    status = client.get(f"/api/status/{job_id}").json["webhook"]
    assert status["url"] == receiver.url and status["attempts"] == 1 and status["last_error"] is None


def test_a_failing_receiver_is_retried_with_backoff_until_it_succeeds(data_dir, store, running_apps):
    app = app_with(data_dir, autostart=True, WEBHOOK_SECRET=SECRET, WEBHOOK_RETRY_SECONDS=0.2)
    running_apps(app)
    with WebhookReceiver(SECRET, fail_first=2) as receiver:
        job_id = submit(app.test_client(), webhook_url=receiver.url)
        wait_for(lambda: store.get(job_id)["webhook"]["delivered_at"], 30, message="delivery")
        assert [status for _, _, status in receiver.requests] == [500, 500, 204]
        assert all(receiver.signature_ok(headers, body) for headers, body, _ in receiver.requests)
        assert len(receiver.delivered()) == 1
    hook = store.get(job_id)["webhook"]
    assert hook["attempts"] == 3 and hook["last_status"] == 204 and hook["gave_up_at"] is None


def test_an_unreachable_receiver_is_given_up_after_the_last_attempt(data_dir, store, running_apps):
    app = app_with(data_dir, autostart=True, WEBHOOK_SECRET=SECRET, WEBHOOK_RETRY_SECONDS=0.1,
                   WEBHOOK_MAX_ATTEMPTS=2)
    running_apps(app)
    with WebhookReceiver(SECRET) as receiver:
        url = receiver.url
    job_id = submit(app.test_client(), webhook_url=url)  # nothing listens there any more
    hook = wait_for(lambda: store.get(job_id)["webhook"]["gave_up_at"] and store.get(job_id)["webhook"], 30,
                    message="giving up")
    assert hook["attempts"] == 2 and hook["delivered_at"] is None and hook["last_error"] == "failed: could not connect"
    assert store.get(job_id)["status"] == "completed"  # a webhook never changes the job itself


def test_a_canceled_job_sends_its_webhook(data_dir, store, running_apps):
    app = app_with(data_dir, runner="hangs", autostart=True, WEBHOOK_SECRET=SECRET)
    running_apps(app)
    client = app.test_client()
    with WebhookReceiver(SECRET) as receiver:
        job_id = submit(client, webhook_url=receiver.url)
        wait_for(lambda: store.get(job_id).get("phase") == "denoising", 30, message="the job working")
        assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 200
        wait_for(receiver.delivered, 30, message="delivery")
        headers, body, _ = receiver.requests[0]
        assert receiver.signature_ok(headers, body) and headers["X-Hunyuan-Event"] == "job.canceled"
        assert json.loads(body)["status"] == "canceled"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "http://"])
def test_webhook_url_must_be_http_or_https(client, url):
    response = client.post("/api/generate", json=dict(SMALL_REQUEST, webhook_url=url))
    assert response.status_code == 422 and "webhook_url" in response.json["detail"]


class CountingStore(JobStore):
    """The real store, counting the job files it parses (to show the sweeper re-reads nothing unchanged)."""

    reads = 0

    def get(self, job_id):
        CountingStore.reads += 1
        return super().get(job_id)


def test_a_sweep_with_nothing_changed_parses_no_job_file(data_dir):
    store = CountingStore(data_dir)
    for _ in range(20):
        job = new_job(new_job_id(), {"prompt": "x"}, dict(SMALL_REQUEST, seed=1), [], {})
        job.update(status="completed", finished_at=job["created_at"])
        store.create(job)
    housekeeping = Housekeeping(store, video_ttl=3600)
    housekeeping.run()  # stamps expires_at on all 20
    housekeeping.run()  # reads each rewritten file once more
    CountingStore.reads = 0
    assert housekeeping.run() == []
    assert CountingStore.reads == 0
    assert all(job["expires_at"] for job in store.list()[0])
