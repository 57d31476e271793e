"""GET /api/jobs/{job_id}/log through the Flask test client (a real run is in test_observability_e2e.py)."""

from .conftest import SMALL_REQUEST


def submit(client):
    response = client.post("/api/generate", json=SMALL_REQUEST)
    assert response.status_code == 200, response.text
    return response.json["job_id"]


def test_unknown_job_is_a_404_with_detail(client):
    for job_id in ("5bd1e9e2-0000-4000-8000-000000000000", "..", "not-a-job"):
        response = client.get(f"/api/jobs/{job_id}/log")
        assert response.status_code == 404
        assert response.json["detail"] == "Job not found"


def test_no_log_yet_is_an_empty_body_and_the_status_links_to_the_log(client):
    job_id = submit(client)
    response = client.get(f"/api/jobs/{job_id}/log")
    assert response.status_code == 200 and response.mimetype == "text/plain" and response.data == b""
    status = client.get(f"/api/status/{job_id}").json
    assert status["log_url"] == f"/api/jobs/{job_id}/log"
    assert status["events_url"] == f"/api/jobs/{job_id}/events"


def test_whole_log_and_its_tail(client, store):
    job_id = submit(client)
    lines = [f"line {i}\n" for i in range(1, 2001)]
    # A stray byte (a write cut by a kill) must not break the answer.
    store.log_path(job_id).write_bytes("".join(lines).encode() + b"cut \xff")
    whole = client.get(f"/api/jobs/{job_id}/log")
    assert whole.get_data(as_text=True) == "".join(lines) + "cut \ufffd"
    assert client.get(f"/api/jobs/{job_id}/log?tail=3").get_data(as_text=True) == "line 1999\nline 2000\ncut \ufffd"
    assert client.get(f"/api/jobs/{job_id}/log?tail=5000").get_data(as_text=True) == whole.get_data(as_text=True)
    store.log_path(job_id).write_text("".join(lines))
    assert client.get(f"/api/jobs/{job_id}/log?tail=2").get_data(as_text=True) == "line 1999\nline 2000\n"


def test_bad_tail_names_the_field(client):
    job_id = submit(client)
    for value in ("0", "-1", "x", "100001"):
        response = client.get(f"/api/jobs/{job_id}/log?tail={value}")
        assert response.status_code == 422, value
        assert response.json["detail"].startswith("Invalid request: tail:"), response.json
