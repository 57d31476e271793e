"""Events, log and metrics end to end: real gunicorn, real HTTP, real runners rendering with the tiny model."""

import threading

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from hunyuan_core.job_record import Phase

from .conftest import SMALL_REQUEST, wait_for
from .server import GunicornServer, kill_all_runners
from .sse import events_only, parse_blocks

# data_dir holds the built demo model and this host's calibration (tests/conftest.py).
pytestmark = [pytest.mark.timeout(600), pytest.mark.demo_model]
# Few steps at the smallest size: seconds per job on two cores, yet several progress events.
FAST = dict(SMALL_REQUEST, num_inference_steps=4)
SERVER_ENV = {"MIN_STEPS": "2", "DEFAULT_STEPS": "4", "MAX_STEPS": "8", "EVENTS_POLL_INTERVAL": "0.05"}
PHASE_ORDER = [phase.value for phase in Phase]


def submit(server, body):
    response = server.post("/api/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()["job_id"]


def follow(server, job_id, into):
    """Read a job's whole event stream over HTTP (returns when the server closes it)."""
    with requests.get(f"{server.base_url}/api/jobs/{job_id}/events", stream=True, timeout=(5, 60)) as response:
        into["status"] = response.status_code
        into["content_type"] = response.headers["Content-Type"]
        into["text"] = "".join(chunk.decode() for chunk in response.iter_content(chunk_size=None))
    into["messages"] = parse_blocks(into["text"])


def test_events_log_and_metrics_of_real_jobs(data_dir):
    try:
        with GunicornServer(data_dir, workers=2, MAX_WORKERS=1, **SERVER_ENV) as server:
            first = submit(server, FAST)
            second = submit(server, dict(FAST, num_inference_steps=2))  # waits behind the first
            streams = {first: {}, second: {}}
            readers = [threading.Thread(target=follow, args=(server, job_id, streams[job_id])) for job_id in streams]
            for reader in readers:
                reader.start()
            for reader in readers:
                reader.join(timeout=300)
                assert not reader.is_alive(), "an event stream did not close after its job ended"

            for job_id, stream in streams.items():
                assert stream["status"] == 200 and stream["content_type"].startswith("text/event-stream")
                events = events_only(stream["messages"])
                names = [e["event"] for e in events]
                assert names[-1] == "completed" and set(names[:-1]) == {"progress"}, names
                progress = [e["data"]["progress"] for e in events]
                assert progress == sorted(progress) and progress[-1] == 1.0, progress
                # Phases arrive in the order a job goes through them (a short one may fall between two polls).
                phases = list(dict.fromkeys(e["data"]["phase"] for e in events))
                assert phases == sorted(phases, key=PHASE_ORDER.index) and phases[-1] == "done", phases
                steps = [e["data"]["step"] for e in events]
                assert steps == sorted(steps)
                # The final event is the status as the job became terminal; the guard's record of the
                # runner's exit (a moment later) only moves updated_at.
                final = {k: v for k, v in server.get(f"/api/status/{job_id}").json().items() if k != "updated_at"}
                assert {k: v for k, v in events[-1]["data"].items() if k != "updated_at"} == final
            # The second job was seen queued behind the first, then moving up.
            queued = [e["data"] for e in events_only(streams[second]["messages"]) if e["data"]["status"] == "queued"]
            positions = [body["queue_position"] for body in queued]
            assert positions and positions == sorted(positions, reverse=True) and positions[-1] == 1, positions
            assert events_only(streams[first]["messages"])[-1]["data"]["step"] == 4

            # The runner's log of a real run.
            log = server.get(f"/api/jobs/{first}/log")
            assert log.status_code == 200 and log.headers["Content-Type"].startswith("text/plain")
            assert "[guard" in log.text and "starting work process" in log.text
            assert f"job {first} is completed" in log.text
            last = server.get(f"/api/jobs/{first}/log", params={"tail": 1}).text
            assert last.count("\n") == 1 and last == log.text.splitlines(keepends=True)[-1]
            assert server.get(f"/api/status/{first}").json()["log_url"] == f"/api/jobs/{first}/log"

            # Metrics agree across web workers: each scrape reads the job files.
            wait_for(lambda: server.get("/health").json()["running_runners"] == 0, 30, message="runners to exit")
            for _ in range(4):
                found = {}
                for family in text_string_to_metric_families(server.get("/metrics").text):
                    for sample in family.samples:
                        found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
                assert found["hunyuan_jobs", (("status", "completed"),)] == 2
                assert found["hunyuan_queue_length", ()] == 0
                assert found["hunyuan_running_runners", ()] == 0
                assert found["hunyuan_job_duration_seconds_count", (("status", "completed"),)] == 2
                assert found["hunyuan_denoising_step_seconds_count", ()] == 6
                assert found["hunyuan_denoising_step_seconds_sum", ()] > 0
                assert found["hunyuan_job_phase_seconds_count", (("phase", "denoising"),)] == 2
    finally:
        kill_all_runners(data_dir)


def test_open_streams_never_starve_the_api(data_dir):
    # One web worker with 4 threads, at most 3 of them for streams: the 4th stream is refused, the API answers.
    try:
        with GunicornServer(data_dir, workers=1, MAX_WORKERS=1, WEB_THREADS=4, EVENTS_MAX_STREAMS=3,
                            **SERVER_ENV) as server:
            first = submit(server, dict(FAST, num_inference_steps=8))
            waiting = submit(server, FAST)
            sessions = [requests.get(f"{server.base_url}/api/jobs/{waiting}/events", stream=True, timeout=(5, 60))
                        for _ in range(3)]
            try:
                assert [s.status_code for s in sessions] == [200, 200, 200]
                refused = server.get(f"/api/jobs/{waiting}/events")
                assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
                assert "Too many open event streams" in refused.json()["detail"]
                assert server.get("/health").status_code == 200
                assert server.get(f"/api/status/{first}").status_code == 200
                assert server.get("/metrics").status_code == 200
            finally:
                for session in sessions:
                    session.close()
            # Closed streams give their threads back (the server notices at its next write: an event or a
            # keep-alive).

            def stream_opens():
                with requests.get(f"{server.base_url}/api/jobs/{waiting}/events", stream=True, timeout=5) as again:
                    return again.status_code == 200

            wait_for(stream_opens, 60, interval=0.5, message="a stream slot to free up")
    finally:
        kill_all_runners(data_dir)
