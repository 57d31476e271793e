"""The many-host mode's store on a real redis-server: the API answers as on files, writes are atomic,
an outage is a 503 with Retry-After that heals by itself, and the cluster's rounds settle lost hosts
and missing dispatches."""

import json
import threading
import time

import pytest
import redis as redis_client
from rq import Queue

from hunyuan_core import cluster, dispatch, hosts
from hunyuan_core.job_record import new_job, new_job_id, utc_now
from hunyuan_core.redis_store import RedisJobStore, StoreUnavailable

from .conftest import make_app

REQUEST = {"prompt": "sleep 1", "width": 256, "height": 256, "video_length": 13, "num_inference_steps": 10}


def redis_app(data_dir, redis_server, tmp_path, **environ):
    """An app in the many-host mode over `redis_server`, artifacts in a shared folder, its ticks off."""
    shared = tmp_path / "shared"
    shared.mkdir(exist_ok=True)
    environ = {"REDIS_URL": redis_server.url, "ARTIFACTS_URL": shared.as_uri(), **environ}
    return make_app(data_dir, ENVIRON=environ)


def queue_length(redis_server, model="demo-hunyuanvideo"):
    connection = redis_client.Redis.from_url(redis_server.url)
    return Queue(dispatch.queue_name(model), connection=connection).count


def test_the_api_on_redis_answers_as_on_files(data_dir, redis_server, tmp_path):
    app = redis_app(data_dir, redis_server, tmp_path, API_KEY="alice:key-a,bob:key-b", MAX_QUEUE="3")
    client = app.test_client()
    alice, bob = {"X-API-Key": "key-a"}, {"X-API-Key": "key-b"}
    first = client.post("/api/generate", json=REQUEST, headers=alice)
    assert first.status_code == 200, first.get_json()
    job_id = first.get_json()["job_id"]
    # The record is the job file's document, under its key, and its RQ entry waits on the model's queue.
    raw = json.loads(redis_client.Redis.from_url(redis_server.url).get(f"hunyuan:job:{job_id}"))
    assert raw["format_version"] == 1 and raw["status"] == "queued" and raw["owner"] == "alice"
    assert queue_length(redis_server) == 1
    assert raw["dispatch"]["rq_job"] == dispatch.rq_job_id(job_id, 0)
    # Idempotency keys: the same body gets the same job, another body a 409.
    keyed = dict(alice, **{"Idempotency-Key": "k1"})
    once = client.post("/api/generate", json=REQUEST, headers=keyed).get_json()["job_id"]
    assert client.post("/api/generate", json=REQUEST, headers=keyed).get_json()["job_id"] == once
    conflict = client.post("/api/generate", json=dict(REQUEST, prompt="other"), headers=keyed)
    assert conflict.status_code == 409 and "Idempotency-Key" in conflict.get_json()["detail"]
    # Scoping: bob sees none of alice's jobs; the list, the counts and a status say so.
    bob_job = client.post("/api/generate", json=REQUEST, headers=bob).get_json()["job_id"]
    assert client.get(f"/api/status/{job_id}", headers=bob).status_code == 404
    listed = client.get("/api/jobs", headers=alice).get_json()
    assert [job["job_id"] for job in listed["jobs"]] == [once, job_id] and listed["total"] == 2
    assert [job["job_id"] for job in client.get("/api/jobs", headers=bob).get_json()["jobs"]] == [bob_job]
    # The queue cap holds across hosts: three queued, the fourth is a 429.
    refused = client.post("/api/generate", json=dict(REQUEST, prompt="fourth"), headers=bob)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    # /v1 pagination walks the same index.
    page = client.get("/v1/videos?limit=1&order=asc", headers=alice).get_json()
    assert [video["id"] for video in page["data"]] == [job_id] and page["has_more"] is True
    after = client.get(f"/v1/videos?limit=5&order=asc&after={job_id}", headers=alice).get_json()
    assert [video["id"] for video in after["data"]] == [once]
    # Cancel and delete: the queued job is canceled at once, then removed with its index entries.
    canceled = client.post(f"/api/jobs/{job_id}/cancel", headers=alice)
    assert canceled.status_code == 200 and canceled.get_json()["status"] == "canceled"
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=alice).status_code == 409
    assert client.delete(f"/api/jobs/{job_id}", headers=alice).status_code in (200, 204)
    assert client.get(f"/api/status/{job_id}", headers=alice).status_code == 404
    health = client.get("/health").get_json()
    assert health["queued_jobs"] == 2 and health["total_jobs"] == 2


def test_concurrent_updates_from_many_writers_lose_nothing(data_dir, redis_server):
    store = RedisJobStore(data_dir, redis_server.url)
    job_id = new_job_id()
    store.create(new_job(job_id, request={}, params={}, adjustments=[], model={"name": "m"}))

    def bump(job):
        job["step"] = job.get("step", 0) + 1

    def writer():
        other = RedisJobStore(data_dir, redis_server.url)  # each writer its own connection, as hosts have
        for _ in range(100):
            other.update(job_id, bump)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get(job_id)["step"] == 400
    counts, unreadable = store.index.counts()
    assert counts == {"queued": 1} and unreadable == 0


def test_redis_down_is_a_503_with_retry_after_and_the_service_heals(data_dir, redis_server, tmp_path):
    client = redis_app(data_dir, redis_server, tmp_path).test_client()
    job_id = client.post("/api/generate", json=REQUEST).get_json()["job_id"]
    redis_server.kill()  # SIGKILL: what is not in the append-only file is gone
    for answer in (client.get("/api/jobs"), client.get(f"/api/status/{job_id}"),
                   client.post("/api/generate", json=REQUEST)):
        assert answer.status_code == 503, answer.data
        assert answer.headers["Retry-After"] == "5"
        assert "Redis" in answer.get_json()["detail"]
    redis_server.start()
    # Nothing was lost (appendfsync always), and the same app answers again without a restart.
    status = client.get(f"/api/status/{job_id}")
    assert status.status_code == 200 and status.get_json()["status"] == "queued"
    assert client.post("/api/generate", json=REQUEST).status_code == 200


def test_a_lost_host_fails_its_job_naming_it_or_requeues_it_once(data_dir, redis_server):
    store = RedisJobStore(data_dir, redis_server.url)

    def running_on(host):
        job = new_job(new_job_id(), request={}, params={}, adjustments=[],
                      model={"name": "m", "served_as": "demo-hunyuanvideo"})
        job.update(status="processing", phase="denoising", started_at=utc_now(),
                   runner={"host": host, "guard": None, "worker": None, "ended_at": None})
        return store.create(job)["job_id"]

    hosts.announce(store, {"name": "alive", "slots": 1}, lost_seconds=30)
    hosts.announce(store, {"name": "gone", "slots": 1}, lost_seconds=0.2)
    keep, lose = running_on("alive"), running_on("gone")
    time.sleep(0.3)  # its announcement expires: the host is lost
    assert cluster.ClusterTick(store, lost_seconds=0.2).settle_lost_hosts() == [lose]
    failed = store.get(lose)
    assert failed["status"] == "failed" and "worker host gone was lost" in failed["error"]
    assert failed["runner"]["ended_at"] and failed["lost_hosts"][0]["host"] == "gone"
    assert store.get(keep)["status"] == "processing"

    # RETRY_LOST_JOBS=1: requeued once (and enqueued again), failed the second time.
    again = running_on("gone")
    tick = cluster.ClusterTick(store, lost_seconds=0.2, retry_lost=1)
    tick.settle_lost_hosts()
    requeued = store.get(again)
    assert requeued["status"] == "queued" and requeued["runner"] is None
    assert requeued["dispatch"]["attempt"] == 1 and queue_length(redis_server) == 1

    def claim(job):
        job.update(status="processing", runner={"host": "gone", "guard": None, "worker": None, "ended_at": None})

    store.update(again, claim)
    tick.settle_lost_hosts()
    twice = store.get(again)
    assert twice["status"] == "failed" and "already requeued 1 time" in twice["error"]


def test_a_queued_job_without_its_rq_entry_is_dispatched_again(data_dir, redis_server):
    store = RedisJobStore(data_dir, redis_server.url)
    job = new_job(new_job_id(), request={}, params={}, adjustments=[],
                  model={"name": "m", "served_as": "demo-hunyuanvideo"})
    job["created_at"] = "2026-01-01T00:00:00.000+00:00"  # older than the grace period
    store.create(job)  # written, never enqueued: a crash between the two
    tick = cluster.ClusterTick(store, lost_seconds=30)
    assert tick.redispatch() == [job["job_id"]]
    assert queue_length(redis_server) == 1
    assert tick.redispatch() == []  # its entry is there now: not sent twice


def test_store_unavailable_names_redis(data_dir, redis_server):
    store = RedisJobStore(data_dir, redis_server.url)
    redis_server.kill()
    with pytest.raises(StoreUnavailable) as caught:
        store.get(new_job_id())
    assert caught.value.status_code == 503 and caught.value.headers == {"Retry-After": "5"}


def test_webhooks_are_sent_once_and_signed_and_retention_removes_artifacts_whichever_host_ticks(
        data_dir, redis_server, tmp_path):
    from .conftest import wait_for
    from .webhook_receiver import WebhookReceiver

    settings = {"WEBHOOK_SECRET": "s3cret", "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "VIDEO_TTL": "1"}
    first = redis_app(data_dir, redis_server, tmp_path, **settings)
    (tmp_path / "other").mkdir()
    second = redis_app(tmp_path / "other", redis_server, tmp_path, **settings)  # another web host, same Redis
    ticks = [app.extensions["hunyuan_api"].cluster for app in (first, second)]
    store = first.extensions["hunyuan_api"].store
    with WebhookReceiver("s3cret") as receiver:
        job_id = first.test_client().post("/api/generate", json=dict(REQUEST, webhook_url=receiver.url)).get_json()[
            "job_id"]

        def finish(job):
            job.update(status="completed", phase="done", finished_at=utc_now(), video={"file": f"{job_id}.mp4"})

        store.update(job_id, finish)
        store.artifacts.put_bytes(job_id, "video", b"mp4 bytes")
        # Both hosts tick, over and over: the record's claim lets one delivery through.
        wait_for(lambda: [tick.run() for tick in ticks] and receiver.delivered(), 20, message="the webhook")
        for _ in range(5):
            for tick in ticks:
                tick.run()
        assert len(receiver.requests) == 1
        headers, body, _ = receiver.requests[0]
        assert receiver.signature_ok(headers, body) and json.loads(body)["job_id"] == job_id
        # VIDEO_TTL: stamped, then removed with its video in the artifact store, by whichever host ticks.
        wait_for(lambda: [tick.run() for tick in ticks] and
                 second.test_client().get(f"/api/status/{job_id}").status_code == 404, 20, message="expiry")
        assert store.artifacts.size(job_id, "video") is None


@pytest.mark.parametrize("environ, named", [
    ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
    ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "ARTIFACTS_URL"),  # many hosts need a shared artifact store
    ({"HOST_HEARTBEAT_SECONDS": "10", "HOST_LOST_SECONDS": "15"}, "HOST_LOST_SECONDS"),
    ({"RETRY_LOST_JOBS": "4"}, "RETRY_LOST_JOBS"),
    ({"RETRY_LOST_JOBS": "-1"}, "RETRY_LOST_JOBS"),
    ({"WORKER_NAME": "a b"}, "WORKER_NAME"),
])
def test_bad_many_host_settings_stop_the_service_naming_them(environ, named):
    from hunyuan_core import config

    with pytest.raises(ValueError, match=named):
        config.from_environ(environ)


def test_a_worker_host_without_redis_says_why_and_exits(tmp_path):
    import subprocess
    import sys

    from .conftest import ROOT

    result = subprocess.run([sys.executable, "-m", "runner.worker_host"], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path)}, timeout=60)
    assert result.returncode == 2 and "REDIS_URL is not set" in result.stderr
