"""Poster images: written by the runner's JPEG writer, served by GET /api/posters, removed with their job."""

import numpy as np
import pytest

from hunyuan_core.supervisor import Supervisor
from runner.video_file import write_jpeg

from .conftest import SMALL_REQUEST
from .mp4_check import decode_image, inspect_image, inspect_mp4
from .test_api import submit
from .test_runner import queue, run_to_end

# data_dir holds the built demo model and this host's calibration (tests/conftest.py).
pytestmark = pytest.mark.demo_model


@pytest.fixture
def finished(client, store):
    """A completed job whose poster is a real JPEG written by the runner's writer."""
    job_id = submit(client)["job_id"]
    frame = np.zeros((256, 320, 3), np.uint8)
    frame[:, :, 1] = 180
    size = write_jpeg(frame, store.poster_path(job_id))
    poster = {"file": f"{job_id}.jpg", "bytes": store.poster_path(job_id).stat().st_size, **size}
    store.update(job_id, lambda j: j.update(status="completed", video={"file": f"{job_id}.mp4"}, poster=poster))
    store.video_path(job_id).write_bytes(b"\x00" * 100)
    return job_id


def test_status_has_a_poster_url_and_the_jpeg_is_served(client, finished):
    body = client.get(f"/api/status/{finished}").get_json()
    assert body["poster_url"] == f"/api/posters/{finished}.jpg"
    response = client.get(body["poster_url"])
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    image = inspect_image(response.data)
    assert (image["width"], image["height"]) == (320, 256)
    assert abs(int(image["pixel"][1]) - 180) < 8  # the frame's colour survives the JPEG


def test_unfinished_jobs_have_no_poster_url_and_new_jobs_record_none(client, store):
    job_id = submit(client)["job_id"]
    assert client.get(f"/api/status/{job_id}").get_json()["poster_url"] is None
    assert store.get(job_id)["poster"] is None


@pytest.mark.parametrize("name", ["{id}.png", "{id}.mp4", ".{id}.jpg.partial", "{id}.jpg.partial", "..%2F{id}.jpg",
                                  "not-a-job.jpg", "{id}"])
def test_only_job_posters_are_served(client, finished, store, name):
    store.partial_poster_path(finished).write_bytes(b"partial")
    response = client.get("/api/posters/" + name.format(id=finished))
    assert response.status_code == 404 and response.get_json()["detail"]


def test_unknown_poster_is_404_with_detail(client):
    response = client.get("/api/posters/00000000-0000-4000-8000-000000000000.jpg")
    assert response.status_code == 404 and response.get_json()["detail"] == "Poster not found"


def test_deleting_a_job_removes_its_poster_and_partial_poster(client, finished, store):
    store.partial_poster_path(finished).write_bytes(b"partial")
    assert client.delete(f"/api/jobs/{finished}").status_code == 200
    assert not store.poster_path(finished).exists() and not store.partial_poster_path(finished).exists()
    assert client.get(f"/api/posters/{finished}.jpg").status_code == 404


def test_the_openapi_document_describes_posters(client):
    spec = client.get("/openapi.json").get_json()
    assert "JPEG" in spec["paths"]["/api/posters/{filename}"]["get"]["responses"]["200"]["description"]
    assert "poster_url" in spec["components"]["schemas"]["JobStatus"]["properties"]


def test_the_runner_saves_the_videos_first_frame_as_the_poster(store, tiny_model):
    # A real render (tiny model, 2 steps): the poster is the MP4's first frame, recorded in the job.
    job_id = queue(store, tiny_model, dict(SMALL_REQUEST, num_inference_steps=2, seed=3))
    (job,) = run_to_end(Supervisor(store, max_workers=1), [job_id], timeout=180)
    assert job["status"] == "completed", job["error"]
    poster_path = store.poster_path(job_id)
    assert job["poster"] == {"file": f"{job_id}.jpg", "bytes": poster_path.stat().st_size, "width": 256, "height": 256}
    image = inspect_image(poster_path.read_bytes())
    assert image["codec"] == "mjpeg" and (image["width"], image["height"]) == (256, 256)
    frames = inspect_mp4(store.video_path(job_id))["pixels"]
    poster_pixels = decode_image(poster_path.read_bytes()).astype(int)
    # Two lossy encodings of the same frame of noise: nearer to each other than to any other frame.
    distances = [np.abs(poster_pixels - frame.astype(int)).mean() for frame in frames]
    assert int(np.argmin(distances)) == 0, distances
    assert not list(store.videos_dir.glob(".*")), "no partial poster left behind"
