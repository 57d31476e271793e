"""Files served from the data folder: only a completed job's own regular files, never through a link."""

import os

import pytest

from hunyuan_core.job_record import is_job_id, new_job, new_job_id
from hunyuan_core.supervisor import Supervisor

from .conftest import SMALL_REQUEST
from .server import GunicornServer

SECRET = "/etc/hostname"  # any file outside the data folder the service can read


def submit(client):
    response = client.post("/api/generate", json=SMALL_REQUEST)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["job_id"]


def complete(store, job_id, poster=False):
    """Mark a job completed with a record naming its video (and poster), as the runner does."""

    def change(job):
        job.update(status="completed", video={"file": f"{job_id}.mp4"})
        if poster:
            job["poster"] = {"file": f"{job_id}.jpg"}

    store.update(job_id, change)


def test_ids_are_matched_in_full():
    job_id = new_job_id()
    assert is_job_id(job_id)
    for text in (job_id + "\n", job_id + "\r", "\n" + job_id, job_id + " ", job_id.upper(), job_id[:-1], 5, None):
        assert not is_job_id(text), repr(text)


def test_a_symlink_named_like_a_video_without_a_job_is_not_served(client, store):
    job_id = new_job_id()
    store.video_path(job_id).symlink_to(SECRET)
    assert client.get(f"/api/videos/{job_id}.mp4").status_code == 404


def test_a_symlink_in_place_of_a_completed_jobs_video_is_not_served(client, store):
    job_id = submit(client)
    complete(store, job_id)
    store.video_path(job_id).symlink_to(SECRET)
    response = client.get(f"/api/videos/{job_id}.mp4")
    assert response.status_code == 404 and response.get_json()["detail"] == "Video not found"


def test_a_symlink_in_place_of_a_poster_is_not_served(client, store):
    job_id = submit(client)
    complete(store, job_id, poster=True)
    store.poster_path(job_id).symlink_to(SECRET)
    assert client.get(f"/api/posters/{job_id}.jpg").status_code == 404


def test_a_file_no_job_names_is_not_served(client, store):
    # A queued job's id, a job that never recorded a video, and no job at all: none are served.
    queued = submit(client)
    store.video_path(queued).write_bytes(b"\x00" * 100)
    stray = new_job_id()
    store.video_path(stray).write_bytes(b"\x00" * 100)
    assert client.get(f"/api/videos/{queued}.mp4").status_code == 404
    assert client.get(f"/api/videos/{stray}.mp4").status_code == 404
    complete(store, queued)
    assert client.get(f"/api/videos/{queued}.mp4").status_code == 200


def test_an_id_with_a_trailing_newline_is_not_a_job_id(client, store):
    job_id = submit(client)
    complete(store, job_id)
    store.video_path(job_id).write_bytes(b"\x00" * 100)
    # A file whose name carries the newline too: the old `$` match would have served it.
    (store.videos_dir / f"{job_id}\n.mp4").write_bytes(b"not this one")
    assert client.get(f"/api/videos/{job_id}%0A.mp4").status_code == 404
    assert client.get(f"/api/status/{job_id}%0A").status_code == 404
    assert client.get(f"/api/jobs/{job_id}%0A/log").status_code == 404
    assert client.delete(f"/api/jobs/{job_id}%0A").status_code == 404


def test_a_directory_in_place_of_a_video_is_a_404(client, store):
    job_id = submit(client)
    complete(store, job_id)
    store.video_path(job_id).mkdir()
    assert client.get(f"/api/videos/{job_id}.mp4").status_code == 404


def test_a_real_video_is_still_served_with_ranges_and_etags(client, store):
    job_id = submit(client)
    complete(store, job_id)
    payload = bytes(range(256)) * 40
    store.video_path(job_id).write_bytes(payload)
    whole = client.get(f"/api/videos/{job_id}.mp4")
    assert whole.status_code == 200 and whole.data == payload and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Length"] == str(len(payload)) and whole.headers["ETag"]
    assert "max-age=3600" in whole.headers["Cache-Control"]
    part = client.get(f"/api/videos/{job_id}.mp4", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.data == payload[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(payload)}"
    again = client.get(f"/api/videos/{job_id}.mp4", headers={"If-None-Match": whole.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    unchanged = client.get(f"/api/videos/{job_id}.mp4", headers={"If-Modified-Since": whole.headers["Last-Modified"]})
    assert unchanged.status_code == 304


@pytest.mark.parametrize("target", ["file", "directory"])
def test_a_log_that_is_a_link_or_a_directory_is_not_read(client, store, target):
    job_id = submit(client)
    if target == "file":
        store.log_path(job_id).symlink_to(SECRET)
    else:
        store.log_path(job_id).mkdir()
    for path in (f"/api/jobs/{job_id}/log", f"/api/jobs/{job_id}/log?tail=5"):
        response = client.get(path)
        assert response.status_code == 200 and response.data == b"", path


def test_a_link_in_place_of_a_log_is_never_written_through(store, data_dir, tmp_path):
    """The supervisor opens a job's log without following a link: the job fails, the target is untouched."""
    target = tmp_path / "elsewhere.txt"
    target.write_text("untouched")
    job = new_job(new_job_id(), {"prompt": "p"}, dict(SMALL_REQUEST, seed=1), [], {})
    job_id = store.create(job)["job_id"]
    store.log_path(job_id).symlink_to(target)
    assert Supervisor(store, max_workers=1).tick() == []
    failed = store.get(job_id)
    assert failed["status"] == "failed" and f"logs/{job_id}.log" in failed["error"]
    assert target.read_text() == "untouched"


def test_over_real_gunicorn_a_linked_video_is_refused_and_a_real_one_seeks(data_dir, store):
    # The attack on the wire: a link dropped into videos/, with and without a job file behind it.
    job_id = store.create(new_job(new_job_id(), {"prompt": "p"}, dict(SMALL_REQUEST, seed=1), [], {}))["job_id"]
    complete(store, job_id)
    with GunicornServer(data_dir, workers=1) as server:
        store.video_path(job_id).symlink_to(SECRET)
        orphan = new_job_id()
        store.video_path(orphan).symlink_to(SECRET)
        assert server.get(f"/api/videos/{job_id}.mp4").status_code == 404
        assert server.get(f"/api/videos/{orphan}.mp4").status_code == 404
        os.unlink(store.video_path(job_id))
        payload = os.urandom(5000)
        store.video_path(job_id).write_bytes(payload)
        part = server.get(f"/api/videos/{job_id}.mp4", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == payload[100:200]
