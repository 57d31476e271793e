"""GET /api/jobs/{job_id}/events through the Flask test client (streamed responses)."""

import threading
import time

from hunyuan_core.job_events import format_event, is_news
from hunyuan_core.job_record import utc_now

from .conftest import SMALL_REQUEST, make_app
from .sse import events_only, read_stream

FAST = {"EVENTS_POLL_INTERVAL": "0.05"}


def submit(client):
    response = client.post("/api/generate", json=SMALL_REQUEST)
    assert response.status_code == 200, response.text
    return response.json["job_id"]


def play_a_job(store, job_id, steps=5, pause=0.15):
    """Walk a job through the states a runner writes, as a runner would (through the store)."""

    def change(**fields):
        store.update(job_id, lambda job: job.update(fields))
        time.sleep(pause)

    time.sleep(pause)
    change(status="processing", phase="starting", started_at=utc_now())
    change(phase="loading_model", progress=0.05)
    for step in range(1, steps + 1):
        change(phase="denoising", step=step, progress=0.1 + 0.8 * step / steps)
    change(status="completed", phase="done", progress=1.0, finished_at=utc_now())


def test_unknown_job_is_a_404_with_detail(client):
    response = client.get("/api/jobs/5bd1e9e2-0000-4000-8000-000000000000/events")
    assert response.status_code == 404
    assert response.json["detail"] == "Job not found"
    assert client.get("/api/jobs/not-a-job/events").status_code == 404


def test_events_follow_the_job_in_order_and_end_with_the_terminal_event(data_dir, store):
    client = make_app(data_dir, ENVIRON=FAST).test_client()
    job_id = submit(client)
    runner = threading.Thread(target=play_a_job, args=(store, job_id))
    runner.start()
    response = client.get(f"/api/jobs/{job_id}/events", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    messages = read_stream(response.iter_encoded())  # returns only when the server ends the stream
    response.close()
    runner.join()
    assert messages[0] == {"retry": "2000"}
    events = events_only(messages)
    names = [e["event"] for e in events]
    assert names[-1] == "completed" and set(names[:-1]) == {"progress"}, names
    progress = [e["data"]["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 1.0
    # Every write of the runner is seen (polling at 50 ms, writes 150 ms apart), in order.
    states = [(e["data"]["status"], e["data"]["phase"], e["data"]["step"]) for e in events]
    assert list(dict.fromkeys(states)) == [("queued", "queued", 0), ("processing", "starting", 0),
                                           ("processing", "loading_model", 0)] + [
        ("processing", "denoising", step) for step in range(1, 6)] + [("completed", "done", 5)], states
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    # Each event is the status body, and its id is the version of the job file it shows.
    final = events[-1]
    assert final["data"] == client.get(f"/api/status/{job_id}").json
    assert final["id"] == final["data"]["updated_at"]


def test_a_finished_job_sends_its_terminal_event_at_once_and_204_once_the_client_has_it(data_dir, store):
    client = make_app(data_dir, ENVIRON=FAST).test_client()
    job_id = submit(client)
    play_a_job(store, job_id, steps=1, pause=0)
    response = client.get(f"/api/jobs/{job_id}/events")
    (event,) = events_only(read_stream([response.data]))
    assert event["event"] == "completed"
    # EventSource reconnects after the stream ends, naming the last id: 204 tells it to stop.
    again = client.get(f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": event["id"]})
    assert again.status_code == 204 and again.data == b""
    # An older id gets the final state again.
    stale = client.get(f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": "2020-01-01T00:00:00.000+00:00"})
    assert [e["event"] for e in events_only(read_stream([stale.data]))] == ["completed"]


def test_keep_alives_and_a_capped_lifetime_free_the_worker(data_dir):
    client = make_app(data_dir, ENVIRON=dict(FAST, EVENTS_KEEPALIVE="1", EVENTS_MAX_SECONDS="2.5")).test_client()
    job_id = submit(client)  # stays queued: nothing dispatches in this app
    messages = read_stream(client.get(f"/api/jobs/{job_id}/events", buffered=False).iter_encoded())
    events = events_only(messages)
    assert [e["event"] for e in events] == ["progress"] and events[0]["data"]["status"] == "queued"
    comments = [m["comment"] for m in messages if "comment" in m]
    assert comments.count("keep-alive") >= 1
    assert comments[-1].startswith("stream lifetime reached")
    # Reconnecting with the id it holds, the client is not sent the same state again.
    again = client.get(f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": events[0]["id"]}, buffered=False)
    assert events_only(read_stream(again.iter_encoded())) == []


def test_a_deleted_job_ends_its_stream(data_dir, store):
    client = make_app(data_dir, ENVIRON=FAST).test_client()
    job_id = submit(client)
    deleter = threading.Timer(0.3, lambda: store.delete(job_id))
    deleter.start()
    events = events_only(read_stream(client.get(f"/api/jobs/{job_id}/events", buffered=False).iter_encoded()))
    deleter.join()
    assert [e["event"] for e in events] == ["progress", "deleted"]


def test_open_streams_are_capped_per_worker_and_released_on_close(data_dir):
    client = make_app(data_dir, ENVIRON=dict(FAST, EVENTS_MAX_STREAMS="1")).test_client()
    job_id = submit(client)
    first = client.get(f"/api/jobs/{job_id}/events", buffered=False)
    assert first.status_code == 200
    refused = client.get(f"/api/jobs/{job_id}/events")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert "Too many open event streams" in refused.json["detail"]
    assert client.get(f"/api/status/{job_id}").status_code == 200  # the API itself is not limited
    first.close()  # what the WSGI server does when the client goes away
    second = client.get(f"/api/jobs/{job_id}/events", buffered=False)
    assert second.status_code == 200
    second.close()


def test_event_format_and_what_counts_as_news():
    assert format_event({"a": 1}, event="progress", event_id="v1") == 'id: v1\nevent: progress\ndata: {"a":1}\n\n'
    assert format_event({"text": "two\nlines"}) == 'data: {"text":"two\\nlines"}\n\n'  # one data line always
    sent = {"status": "processing", "progress": 0.5, "eta_seconds": 100.0, "estimated_time": 200.0}
    assert is_news(sent, None, 0)
    assert not is_news(dict(sent, eta_seconds=90.5), sent, 10)  # counting down as predicted
    assert not is_news(dict(sent, estimated_time=210.0), sent, 0)  # the run estimate alone drifts
    assert is_news(dict(sent, eta_seconds=80.0), sent, 10)  # 10 s ahead of the countdown
    assert is_news(dict(sent, eta_seconds=None), sent, 0)
    assert is_news(dict(sent, progress=0.6), sent, 0)
