"""The artifact store (hunyuan_core/artifacts.py): a folder, or S3-compatible storage on a real server.

Every behaviour is checked on both stores: a folder, and moto's S3 server started here
(tests/s3_server.py), which boto3 reaches over HTTP like any MinIO. The API serving from
the store is in tests/test_artifacts_served.py.
"""

import os
import subprocess
import sys

import pytest
import requests

from hunyuan_core import config
from hunyuan_core.artifacts import CHUNK, ArtifactStoreUnavailable, LocalArtifacts, open_artifacts, read_tail
from hunyuan_core.artifacts_s3 import S3Artifacts
from hunyuan_core.job_record import new_job_id
from hunyuan_core.job_store import JobStore
from hunyuan_core.regular_file import NotARegularFile

from .conftest import ROOT
from .s3_server import REGION, running_s3_server
from .server import free_port

BUCKET = "artifacts-test"
PREFIX = "tenant-a/hunyuan"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """One S3-compatible server and bucket for the whole module (starting it takes a second or two)."""
    with running_s3_server(tmp_path_factory.mktemp("s3")) as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(params=["local", "s3"])
def artifacts(request, tmp_path):
    """Each test runs on a fresh folder store and on the S3 store (fresh job ids keep tests apart)."""
    if request.param == "local":
        return LocalArtifacts(tmp_path / "shared")
    server = request.getfixturevalue("s3")
    return S3Artifacts(BUCKET, PREFIX, endpoint_url=server.endpoint, region=REGION)


def collect(chunks):
    return None if chunks is None else b"".join(chunks)


def test_bytes_put_are_read_back_whole_and_in_ranges(artifacts):
    job_id = new_job_id()
    data = bytes(range(256)) * 40
    artifacts.put_bytes(job_id, "video", data)
    assert artifacts.size(job_id, "video") == len(data)
    assert collect(artifacts.read(job_id, "video")) == data
    for start, end in ((0, 10), (10, None), (len(data) - 5, len(data)), (1000, 5000), (7, 8)):
        assert collect(artifacts.read(job_id, "video", start, end)) == data[start:end], (start, end)
    assert collect(artifacts.read(job_id, "video", 5, 5)) == b""
    assert collect(artifacts.read(job_id, "video", len(data), None)) == b""
    # Other kinds of the same job are separate artifacts, absent until put.
    assert artifacts.size(job_id, "poster") is None and artifacts.read(job_id, "log") is None


def test_a_large_artifact_is_read_in_bounded_chunks(artifacts):
    job_id = new_job_id()
    data = os.urandom(CHUNK * 2 + 1234)
    artifacts.put_bytes(job_id, "video", data)
    pieces = list(artifacts.read(job_id, "video"))
    assert len(pieces) >= 3 and max(len(p) for p in pieces) <= CHUNK
    assert b"".join(pieces) == data


def test_absent_artifacts_are_none_not_errors(artifacts):
    job_id = new_job_id()
    assert artifacts.size(job_id, "video") is None
    assert artifacts.info(job_id, "video") is None
    assert artifacts.read(job_id, "video") is None
    assert artifacts.read(job_id, "video", 3, 3) is None
    assert read_tail(artifacts, job_id, "log", 5) is None
    artifacts.delete(job_id)  # nothing there: not an error


def test_put_file_moves_or_keeps_and_download_copies(artifacts, tmp_path):
    job_id = new_job_id()
    source = tmp_path / "render.mp4"
    source.write_bytes(b"moov" * 5000)
    artifacts.put_file(job_id, "video", source)
    assert not source.exists()  # handed over
    poster = tmp_path / "poster.jpg"
    poster.write_bytes(b"\xff\xd8jpeg")
    artifacts.put_file(job_id, "poster", poster, keep=True)
    assert poster.read_bytes() == b"\xff\xd8jpeg"
    dest = tmp_path / "copy.mp4"
    assert artifacts.download(job_id, "video", dest) is True
    assert dest.read_bytes() == b"moov" * 5000
    assert collect(artifacts.read(job_id, "poster")) == b"\xff\xd8jpeg"
    assert artifacts.download(job_id, "log", tmp_path / "absent.log") is False
    assert not (tmp_path / "absent.log").exists()


def test_put_file_never_follows_a_symbolic_link(artifacts, tmp_path):
    job_id = new_job_id()
    secret = tmp_path / "secret"
    secret.write_bytes(b"not a video")
    link = tmp_path / "link.mp4"
    link.symlink_to(secret)
    with pytest.raises(NotARegularFile):
        artifacts.put_file(job_id, "video", link)
    assert artifacts.size(job_id, "video") is None and link.is_symlink()


def test_delete_removes_every_kind_of_that_job_only(artifacts):
    job_id, other = new_job_id(), new_job_id()
    for kind in ("video", "poster", "log", "input"):
        artifacts.put_bytes(job_id, kind, kind.encode())
    artifacts.put_bytes(other, "video", b"keep me")
    artifacts.delete(job_id)
    assert [artifacts.size(job_id, kind) for kind in ("video", "poster", "log", "input")] == [None] * 4
    assert collect(artifacts.read(other, "video")) == b"keep me"


def test_the_tail_of_a_long_log_takes_ranged_reads(artifacts):
    job_id = new_job_id()
    text = "".join(f"line {n}\n" for n in range(30000))  # ~300 KB: several 64 KiB blocks from the end
    artifacts.put_bytes(job_id, "log", text.encode())
    assert read_tail(artifacts, job_id, "log", 3) == b"line 29997\nline 29998\nline 29999\n"
    assert read_tail(artifacts, job_id, "log", 40000) == text.encode()
    artifacts.put_bytes(job_id, "log", b"no newline at the end")
    assert read_tail(artifacts, job_id, "log", 1) == b"no newline at the end"


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", "x" * 40, new_job_id() + "\n", None])
def test_only_job_ids_become_names_or_keys(artifacts, bad):
    with pytest.raises(ValueError):
        artifacts.put_bytes(bad, "video", b"x")
    with pytest.raises(ValueError):
        artifacts.size(bad, "video")


def test_an_unknown_kind_is_refused(artifacts):
    with pytest.raises(ValueError):
        artifacts.put_bytes(new_job_id(), "job", b"{}")


def test_the_folder_store_on_the_data_folder_is_the_data_folders_layout(tmp_path):
    store = JobStore(tmp_path / "data")
    artifacts = open_artifacts(config.from_environ({"DATA_DIR": str(store.root)}))
    job_id = new_job_id()
    assert artifacts.local_path(job_id, "video") == store.video_path(job_id)
    assert artifacts.local_path(job_id, "poster") == store.poster_path(job_id)
    assert artifacts.local_path(job_id, "log") == store.log_path(job_id)
    assert artifacts.local_path(job_id, "input") == store.input_path(job_id)
    assert artifacts.describe() == f"local folder {store.root}"
    assert artifacts.presigned_url(job_id, "video", 60) is None
    # A file the job store put in place is already stored: putting it again changes nothing.
    store.video_path(job_id).write_bytes(b"video")
    artifacts.put_file(job_id, "video", store.video_path(job_id))
    assert store.video_path(job_id).read_bytes() == b"video"


def test_the_folder_store_serves_regular_files_only(tmp_path):
    artifacts = LocalArtifacts(tmp_path / "shared")
    job_id = new_job_id()
    outside = tmp_path / "outside"
    outside.write_bytes(b"secret")
    artifacts.put_bytes(job_id, "poster", b"jpg")  # creates the folder
    artifacts.local_path(job_id, "video").symlink_to(outside)
    assert artifacts.size(job_id, "video") is None and artifacts.read(job_id, "video") is None
    artifacts.delete(job_id)
    assert outside.read_bytes() == b"secret" and not artifacts.local_path(job_id, "video").is_symlink()


def test_objects_are_keyed_under_the_prefix_with_their_content_type(s3):
    artifacts = open_artifacts({"ARTIFACTS_URL": f"s3://{BUCKET}/{PREFIX}/", "ARTIFACTS_ENDPOINT_URL": s3.endpoint,
                                "ARTIFACTS_REGION": REGION, "DATA_DIR": "/nonexistent"})
    assert isinstance(artifacts, S3Artifacts) and artifacts.local_path(new_job_id(), "video") is None
    job_id = new_job_id()
    for kind in ("video", "poster", "log", "input"):
        artifacts.put_bytes(job_id, kind, b"x")
    listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")["Contents"]
    keys = {item["Key"] for item in listed if job_id in item["Key"]}
    assert keys == {f"{PREFIX}/videos/{job_id}.mp4", f"{PREFIX}/videos/{job_id}.jpg",
                    f"{PREFIX}/logs/{job_id}.log", f"{PREFIX}/inputs/{job_id}.png"}
    head = s3.client().head_object(Bucket=BUCKET, Key=f"{PREFIX}/videos/{job_id}.mp4")
    assert head["ContentType"] == "video/mp4"
    assert artifacts.describe() == f"s3://{BUCKET}/{PREFIX} at {s3.endpoint}"
    assert "test" not in artifacts.describe().replace(BUCKET, "")  # no credentials


def test_a_presigned_url_gives_the_bytes_to_a_plain_http_client(s3):
    artifacts = S3Artifacts(BUCKET, PREFIX, endpoint_url=s3.endpoint, region=REGION)
    job_id = new_job_id()
    data = os.urandom(5000)
    artifacts.put_bytes(job_id, "video", data)
    url = artifacts.presigned_url(job_id, "video", 60)
    assert url.startswith(s3.endpoint) and "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    got = requests.get(url, timeout=10)
    assert got.status_code == 200 and got.content == data
    part = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == data[100:200]


def test_an_unreachable_store_is_a_clear_503(s3):
    down = S3Artifacts(BUCKET, PREFIX, endpoint_url=f"http://127.0.0.1:{free_port()}", region=REGION)
    job_id = new_job_id()
    for call in (lambda: down.size(job_id, "video"), lambda: down.read(job_id, "video"),
                 lambda: down.put_bytes(job_id, "video", b"x")):
        with pytest.raises(ArtifactStoreUnavailable) as caught:
            call()
        assert caught.value.status_code == 503 and caught.value.headers["Retry-After"]
        assert caught.value.detail.startswith(f"The artifact store (s3://{BUCKET}/{PREFIX} at http://127.0.0.1:")
        assert "unreachable" in caught.value.detail
    missing_bucket = S3Artifacts("no-such-bucket", "", endpoint_url=s3.endpoint, region=REGION)
    with pytest.raises(ArtifactStoreUnavailable, match="NoSuchBucket"):
        missing_bucket.put_bytes(job_id, "video", b"x")


@pytest.mark.parametrize("value", [
    "/var/data/artifacts", "data", "http://minio:9000/bucket", "file://server/share", "file:relative",
    "s3://", "s3://Upper-Case", "s3://b", "s3://bucket/../other", "s3://bucket/a b", "s3://bucket?x=1",
    "gs://bucket", "s3://key:secret@bucket/prefix",
])
def test_a_bad_artifacts_url_stops_the_server_naming_it(value):
    with pytest.raises(ValueError, match="ARTIFACTS_URL") as caught:
        config.from_environ({"REDIS_URL": "redis://127.0.0.1:6379/0", "ARTIFACTS_URL": value})
    assert "needs REDIS_URL" not in str(caught.value)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("name, value", [
    ("ARTIFACTS_ENDPOINT_URL", "minio:9000"), ("ARTIFACTS_ENDPOINT_URL", "ftp://minio"),
    ("ARTIFACTS_REGION", "us east"), ("ARTIFACTS_PRESIGN_SECONDS", "-1"), ("ARTIFACTS_PRESIGN_SECONDS", "soon"),
    ("ARTIFACTS_PRESIGN_SECONDS", "604801"),
])
def test_bad_s3_settings_stop_the_server_naming_them(name, value):
    with pytest.raises(ValueError, match=name):
        config.from_environ({name: value})


def test_good_artifact_settings_are_read():
    default = config.from_environ({})
    assert (default["ARTIFACTS_URL"], default["ARTIFACTS_PRESIGN_SECONDS"]) == ("", 0)
    redis = {"REDIS_URL": "redis://127.0.0.1:6379/0"}  # the artifact store is the many-host mode's
    settings = config.from_environ({**redis, "ARTIFACTS_URL": " s3://my.bucket-1/a/b/ ", "ARTIFACTS_REGION": "auto",
                                    "ARTIFACTS_ENDPOINT_URL": "https://acct.r2.cloudflarestorage.com",
                                    "ARTIFACTS_PRESIGN_SECONDS": "900"})
    assert settings["ARTIFACTS_URL"] == "s3://my.bucket-1/a/b/" and settings["ARTIFACTS_PRESIGN_SECONDS"] == 900
    shared = open_artifacts(config.from_environ({**redis, "ARTIFACTS_URL": "file:///srv/shared%20artifacts"}))
    with pytest.raises(ValueError, match="ARTIFACTS_URL needs REDIS_URL"):
        config.from_environ({"ARTIFACTS_URL": "file:///srv/shared"})
    with pytest.raises(ValueError, match="REDIS_URL needs ARTIFACTS_URL"):
        config.from_environ(redis)
    assert isinstance(shared, LocalArtifacts) and str(shared.root) == "/srv/shared artifacts"


def test_boto3_is_loaded_only_for_an_s3_store(tmp_path):
    code = ("import sys; import hunyuan_api; from hunyuan_core.artifacts import open_artifacts; "
            f"open_artifacts({{'DATA_DIR': {str(tmp_path)!r}}}); "
            f"open_artifacts({{'ARTIFACTS_URL': 'file://{tmp_path}', 'DATA_DIR': '/x'}}); "
            "print('boto3' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
