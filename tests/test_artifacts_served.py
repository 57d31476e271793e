"""The API serving videos, posters and logs from the artifact store: S3 (a real server) and a shared folder.

The app is the whole WSGI app (Flask's test client); the artifact store is moto's S3
server, reached by plain boto3 as ARTIFACTS_ENDPOINT_URL. What the job store holds
(the records) is the test's data folder, as on any web host.
"""

import io

import av
import numpy as np
import pytest
import requests

from hunyuan_core.artifacts import LocalArtifacts
from hunyuan_core.artifacts_s3 import S3Artifacts

from .conftest import SMALL_REQUEST, make_app
from .s3_server import REGION, running_s3_server
from .server import free_port

BUCKET = "served-artifacts"
PREFIX = "videos-service"
FRAMES = 8


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """One S3-compatible server and bucket for the module."""
    with running_s3_server(tmp_path_factory.mktemp("s3")) as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    """A real, tiny MP4 (8 frames of 64x64, H.264), as bytes."""
    path = tmp_path_factory.mktemp("mp4") / "tiny.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for n in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), n * 30, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path.read_bytes()


def s3_environ(s3, **more):
    return {"ARTIFACTS_URL": f"s3://{BUCKET}/{PREFIX}", "ARTIFACTS_ENDPOINT_URL": s3.endpoint,
            "ARTIFACTS_REGION": REGION, **more}


def s3_client(data_dir, s3, redis_server, **more):
    # The artifact store belongs to the many-host mode: the records are in Redis (a real server) too.
    app = make_app(data_dir, ENVIRON=s3_environ(s3, REDIS_URL=redis_server.url, **more))
    return app, app.test_client()


def completed_job(app, client, poster=False):
    """A job submitted through the API and marked completed as the runner does (video, poster named)."""
    answer = client.post("/api/generate", json=SMALL_REQUEST)
    assert answer.status_code == 200, answer.get_json()
    job_id = answer.get_json()["job_id"]

    def change(job):
        job.update(status="completed", video={"file": f"{job_id}.mp4"})
        if poster:
            job["poster"] = {"file": f"{job_id}.jpg"}

    app.extensions["hunyuan_api"].store.update(job_id, change)
    return job_id


def frames_of(data):
    with av.open(io.BytesIO(data)) as container:
        return len(list(container.decode(video=0)))


def test_a_video_in_s3_is_streamed_whole_and_in_ranges(data_dir, s3, redis_server, mp4):
    app, client = s3_client(data_dir, s3, redis_server)
    artifacts = app.extensions["hunyuan_api"].artifacts
    assert isinstance(artifacts, S3Artifacts)
    job_id = completed_job(app, client)
    artifacts.put_bytes(job_id, "video", mp4)
    size = len(mp4)

    whole = client.get(f"/api/videos/{job_id}.mp4")
    assert whole.status_code == 200 and whole.mimetype == "video/mp4"
    assert whole.data == mp4 and frames_of(whole.data) == FRAMES
    assert whole.headers["Accept-Ranges"] == "bytes" and int(whole.headers["Content-Length"]) == size
    assert whole.headers["ETag"] and whole.headers["Last-Modified"]

    head = client.head(f"/api/videos/{job_id}.mp4")
    assert head.status_code == 200 and head.data == b"" and int(head.headers["Content-Length"]) == size

    part = client.get(f"/api/videos/{job_id}.mp4", headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.data == mp4[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{size}" and part.headers["Content-Length"] == "90"
    suffix = client.get(f"/api/videos/{job_id}.mp4", headers={"Range": "bytes=-50"})
    assert suffix.status_code == 206 and suffix.data == mp4[-50:]
    assert suffix.headers["Content-Range"] == f"bytes {size - 50}-{size - 1}/{size}"
    rest = client.get(f"/api/videos/{job_id}.mp4", headers={"Range": f"bytes={size - 7}-"})
    assert rest.status_code == 206 and rest.data == mp4[-7:]

    beyond = client.get(f"/api/videos/{job_id}.mp4", headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond.get_json()["detail"]  # the same answer as from the data folder
    garbled = client.get(f"/api/videos/{job_id}.mp4", headers={"Range": "bytes=9-3"})
    assert garbled.status_code == 416

    # The OpenAI-style face serves the same object the same way.
    content = client.get(f"/v1/videos/{job_id}/content")
    assert content.status_code == 200 and content.data == mp4 and content.mimetype == "video/mp4"
    content_part = client.get(f"/v1/videos/{job_id}/content", headers={"Range": "bytes=0-3"})
    assert content_part.status_code == 206 and content_part.data == mp4[:4]

    # The ETag is the object's: a revalidation is a 304, and If-Range naming another version gets it all.
    etag = whole.headers["ETag"]
    assert client.get(f"/api/videos/{job_id}.mp4", headers={"If-None-Match": etag}).status_code == 304
    stale = client.get(f"/api/videos/{job_id}.mp4", headers={"Range": "bytes=0-9", "If-Range": '"older"'})
    assert stale.status_code == 200 and stale.data == mp4
    fresh = client.get(f"/api/videos/{job_id}.mp4", headers={"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206 and fresh.data == mp4[:10]


def test_a_poster_in_s3_and_missing_objects(data_dir, s3, redis_server, mp4):
    app, client = s3_client(data_dir, s3, redis_server)
    store = app.extensions["hunyuan_api"].store
    artifacts = app.extensions["hunyuan_api"].artifacts
    job_id = completed_job(app, client, poster=True)
    artifacts.put_bytes(job_id, "poster", b"\xff\xd8\xff\xe0 a jpeg")
    poster = client.get(f"/api/posters/{job_id}.jpg")
    assert poster.status_code == 200 and poster.mimetype == "image/jpeg" and poster.data == b"\xff\xd8\xff\xe0 a jpeg"
    thumbnail = client.get(f"/v1/videos/{job_id}/content?variant=thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.data == b"\xff\xd8\xff\xe0 a jpeg"
    # The video is in the data folder only, not in the store: the data folder is not what is served.
    store.video_path(job_id).write_bytes(mp4)
    missing = client.get(f"/api/videos/{job_id}.mp4")
    assert missing.status_code == 404 and missing.get_json()["detail"] == "Video not found"
    # An object without a completed job naming it is not served either.
    stray = completed_job(app, client)
    store.update(stray, lambda job: job.update(status="processing"))
    artifacts.put_bytes(stray, "video", mp4)
    assert client.get(f"/api/videos/{stray}.mp4").status_code == 404


def test_with_presigning_videos_redirect_to_a_url_that_serves_them(data_dir, s3, redis_server, mp4):
    app, client = s3_client(data_dir, s3, redis_server, ARTIFACTS_PRESIGN_SECONDS="120")
    artifacts = app.extensions["hunyuan_api"].artifacts
    job_id = completed_job(app, client, poster=True)
    artifacts.put_bytes(job_id, "video", mp4)
    answer = client.get(f"/api/videos/{job_id}.mp4")
    assert answer.status_code == 302 and answer.headers["Cache-Control"] == "no-store"
    location = answer.headers["Location"]
    assert location.startswith(f"{s3.endpoint}/{BUCKET}/{PREFIX}/videos/{job_id}.mp4?")
    assert "X-Amz-Expires=120" in location
    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200 and fetched.content == mp4
    ranged = requests.get(location, headers={"Range": "bytes=0-15"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == mp4[:16]
    # Checked before redirecting: a missing object is this API's 404, not the store's.
    assert client.get(f"/api/posters/{job_id}.jpg").status_code == 404


def test_logs_from_s3_whole_tail_and_the_local_fallback(data_dir, s3, redis_server):
    app, client = s3_client(data_dir, s3, redis_server)
    store = app.extensions["hunyuan_api"].store
    artifacts = app.extensions["hunyuan_api"].artifacts
    job_id = completed_job(app, client)
    assert client.get(f"/api/jobs/{job_id}/log").data == b""  # no log anywhere yet
    store.log_path(job_id).write_text("running here\n")  # a runner on this host writing it
    assert client.get(f"/api/jobs/{job_id}/log").get_data(as_text=True) == "running here\n"
    # A 300 KB log, an "é" split across the store's read chunks, and a stray byte at the end.
    body = "".join(f"line {n}\n" for n in range(1, 26215)).encode()[: 256 * 1024 - 1] + "é\n".encode()
    body += b"".join(f"line {n}\n".encode() for n in range(1, 5001)) + b"cut \xff"
    artifacts.put_bytes(job_id, "log", body)
    whole = client.get(f"/api/jobs/{job_id}/log")
    assert whole.status_code == 200 and whole.mimetype == "text/plain" and whole.headers["Cache-Control"] == "no-cache"
    assert whole.get_data(as_text=True) == body.decode("utf-8", errors="replace")
    assert "é\n" in whole.get_data(as_text=True)
    tail = client.get(f"/api/jobs/{job_id}/log?tail=3")
    assert tail.get_data(as_text=True) == "line 4999\nline 5000\ncut \ufffd"


def test_an_unreachable_store_answers_503_with_retry_after(data_dir, mp4, redis_server):
    app = make_app(data_dir, ENVIRON={"REDIS_URL": redis_server.url, "ARTIFACTS_URL": f"s3://{BUCKET}", "ARTIFACTS_REGION": REGION,
                                      "ARTIFACTS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})
    client = app.test_client()
    job_id = completed_job(app, client)
    answer = client.get(f"/api/videos/{job_id}.mp4")
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert answer.get_json()["detail"].startswith(f"The artifact store (s3://{BUCKET} at http://127.0.0.1:")


def test_a_shared_folder_is_served_like_the_data_folder(data_dir, tmp_path, mp4, redis_server):
    shared = tmp_path / "shared"
    app = make_app(data_dir, ENVIRON={"REDIS_URL": redis_server.url, "ARTIFACTS_URL": f"file://{shared}"})
    client = app.test_client()
    artifacts = app.extensions["hunyuan_api"].artifacts
    assert isinstance(artifacts, LocalArtifacts) and artifacts.root == shared
    job_id = completed_job(app, client)
    artifacts.put_bytes(job_id, "video", mp4)
    assert client.get(f"/api/videos/{job_id}.mp4").data == mp4
    part = client.get(f"/api/videos/{job_id}.mp4", headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and part.data == mp4[4:12]
    # A link in the video's place is not followed, in a shared folder as in the data folder.
    artifacts.local_path(job_id, "video").unlink()
    artifacts.local_path(job_id, "video").symlink_to("/etc/hostname")
    assert client.get(f"/api/videos/{job_id}.mp4").status_code == 404


def test_without_artifacts_url_the_data_folder_is_the_store(client, store):
    artifacts = client.application.extensions["hunyuan_api"].artifacts
    assert isinstance(artifacts, LocalArtifacts) and artifacts.root == store.root
