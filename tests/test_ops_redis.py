"""`hunyuan-ops` against Redis (REDIS_URL): a real redis-server, the artifact store, the CLI as a subprocess.

Records are written through a RedisJobStore and artifacts through its artifact store (a
shared folder, and moto's S3 server for the object-storage path), exactly what web and
worker hosts write; hunyuan-ops then runs as an operator runs it, with the settings in
its environment. `export` is also checked in the file mode (tests/test_ops.py has the rest).
"""

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from hunyuan_core import config, hosts
from hunyuan_core.atomic_file import write_json_atomic
from hunyuan_core.job_record import new_job, new_job_id
from hunyuan_core.job_schema import check_job
from hunyuan_core.job_store import JobNotFound, JobStore
from hunyuan_core.stores import open_store

from .conftest import ROOT
from .s3_server import REGION, running_s3_server
from .server import free_port

pytestmark = pytest.mark.timeout(120)
BUCKET = "ops-test"


def ops(env, data_dir, *args):
    """Run `python -m hunyuan_cli.ops --data-dir DATA ARGS` with the many-host settings `env` in its environment."""
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "ARTIFACTS_URL")}
    return subprocess.run([sys.executable, "-m", "hunyuan_cli.ops", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, env=dict(environ, **env))


def ops_json(env, data_dir, *args):
    result = ops(env, data_dir, "--json", *args)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def ago(**delta):
    return (datetime.now(timezone.utc) - timedelta(**delta)).isoformat(timespec="milliseconds")


def add_job(store, status, created=None, finished=None, runner=None, artifacts=()):
    """Write a record through the store and the artifacts named (1000 bytes each) through its artifact store."""
    job_id = new_job_id()
    job = new_job(job_id, request={"prompt": f"{status} job"}, params={"prompt": f"{status} job"}, adjustments=[],
                  model={"name": "tiny", "path": "/nowhere", "demo": True})
    job.update(status=status, created_at=created or ago(minutes=1), finished_at=finished, runner=runner)
    store.create(job)
    for kind in artifacts:
        store.artifacts.put_bytes(job_id, kind, b"\x00" * 1000)
    return job_id


def open_cluster(tmp_path, env):
    data = tmp_path / "host-data"
    data.mkdir()
    store = open_store(config.from_environ(dict(os.environ, DATA_DIR=str(data), **env)))
    return SimpleNamespace(store=store, env=env, data=data)


def populate(store):
    """One job of each kind an operator meets, on two worker hosts (one of them lost), and one broken record."""
    hosts.announce(store, {"name": "live-host", "slots": 2, "models": ["tiny"], "device": "cpu", "running": []}, 60)
    hosts.announce(store, {"name": "gone-host", "slots": 1, "models": ["tiny"], "device": "cuda", "running": []}, 60)
    store.call(lambda r: r.delete(store.key("host", "gone-host")))  # its announcement expired: the host is lost
    jobs = {
        "old_completed": add_job(store, "completed", ago(days=10), ago(days=9), artifacts=("video", "poster", "log")),
        "old_failed": add_job(store, "failed", ago(days=8), ago(days=8), artifacts=("log",)),
        "recent_completed": add_job(store, "completed", ago(hours=2), ago(hours=1), artifacts=("video", "poster")),
        "lost": add_job(store, "processing", ago(minutes=5), runner={"host": "gone-host", "guard": None,
                                                                     "worker": None, "ended_at": None}),
        "running": add_job(store, "processing", ago(minutes=5), runner={"host": "live-host", "guard": None,
                                                                        "worker": None, "ended_at": None}),
        "long_queued": add_job(store, "queued", ago(hours=3)),
        "queued": add_job(store, "queued"),
    }
    broken = new_job_id()

    def write(r):
        r.set(store.job_key(broken), b"{not json")
        r.zadd(store.key("jobs"), {broken: 0})

    store.call(write)
    jobs["broken"] = broken
    return jobs


@pytest.fixture
def cluster(redis_server, tmp_path):
    """Redis, a shared artifact folder, this host's data folder, and the populated records."""
    shared = tmp_path / "shared"
    found = open_cluster(tmp_path, {"REDIS_URL": redis_server.url, "ARTIFACTS_URL": f"file://{shared}"})
    found.shared = shared
    found.jobs = populate(found.store)
    return found


def test_jobs_show_and_stuck_read_redis_and_the_artifact_store(cluster):
    env, data, jobs = cluster.env, cluster.data, cluster.jobs
    code, body = ops_json(env, data, "jobs")
    assert code == 1  # the broken record is something to look at
    rows = {row["job_id"]: row for row in body["jobs"]}
    assert set(rows) == set(jobs.values()) - {jobs["broken"]}
    assert rows[jobs["old_completed"]]["video_bytes"] == 1000 and rows[jobs["old_completed"]]["age_seconds"] > 9 * 86400
    assert rows[jobs["queued"]]["video_bytes"] is None
    assert [bad["job_id"] for bad in body["unreadable"]] == [jobs["broken"]]
    assert "not valid JSON" in body["unreadable"][0]["error"]

    code, body = ops_json(env, data, "show", jobs["old_completed"])
    assert code == 0 and body["job"] == cluster.store.get(jobs["old_completed"])
    video = body["files"]["video"]
    assert video == {"path": str(cluster.shared / "videos" / f"{jobs['old_completed']}.mp4"), "bytes": 1000}
    assert body["files"]["image"]["bytes"] is None and body["artifacts"] == f"local folder {cluster.shared}"
    text = ops(env, data, "show", jobs["old_completed"])
    assert "poster: " in text.stdout and "(1.0 kB)" in text.stdout and "log: " in text.stdout
    missing = ops(env, data, "show", new_job_id())
    assert missing.returncode == 3 and "no job" in missing.stderr and "Redis at redis://127.0.0.1" in missing.stderr

    code, body = ops_json(env, data, "stuck")
    assert code == 1
    reasons = {item["job_id"]: item["reason"] for item in body["stuck"]}
    assert set(reasons) == {jobs["lost"], jobs["long_queued"]}  # the job on live-host is not stuck
    assert "host gone-host, which no longer announces itself (last seen 20" in reasons[jobs["lost"]]
    _, body = ops_json(env, data, "stuck", "--queued-older-than", "4h")
    assert [item["job_id"] for item in body["stuck"]] == [jobs["lost"]]


def test_prune_deletes_records_and_their_artifacts(cluster):
    env, data, jobs, store = cluster.env, cluster.data, cluster.jobs, cluster.store
    old = jobs["old_completed"]
    code, body = ops_json(env, data, "prune", "--older-than", "7d", "--dry-run")
    assert code == 1 and sorted(body["jobs"]) == sorted([old, jobs["old_failed"]])
    assert body["bytes"] > 4000  # the artifacts and the records themselves
    assert store.get(old) and store.artifacts.size(old, "video") == 1000

    result = ops(env, data, "prune", "--older-than", "7d")
    assert result.returncode == 1 and "deleted 2 job(s)" in result.stdout
    assert "1 unreadable job file(s) left; --unreadable deletes them" in result.stdout
    for job_id in (old, jobs["old_failed"]):
        with pytest.raises(JobNotFound):
            store.get(job_id)
        assert all(store.artifacts.size(job_id, kind) is None for kind in ("video", "poster", "log"))
    assert job_id not in store.index.all_ids()
    assert store.artifacts.size(jobs["recent_completed"], "video") == 1000
    # A Redis write is whole or absent: an unreadable record is removed whatever its age.
    result = ops(env, data, "prune", "--older-than", "7d", "--unreadable", "--status", "canceled")
    assert result.returncode == 0 and f"deleted {jobs['broken']}" in result.stdout
    assert jobs["broken"] not in store.index.all_ids()
    assert sorted(store.index.all_ids()) == sorted(set(jobs.values()) - {old, jobs["old_failed"], jobs["broken"]})


def test_du_reports_this_hosts_folder_the_artifacts_by_kind_and_redis(cluster):
    code, body = ops_json(cluster.env, cluster.data, "du")
    assert code == 0 and {"videos", "logs", "locks"} <= set(body["folders"]) and body["disk_free_bytes"] > 0
    kinds = body["artifacts"]["kinds"]
    assert kinds["video"] == {"files": 2, "bytes": 2000} and kinds["poster"] == {"files": 2, "bytes": 2000}
    assert kinds["log"] == {"files": 2, "bytes": 2000} and kinds["input"] == {"files": 0, "bytes": 0}
    assert body["artifacts"]["total_bytes"] == 6000
    assert body["redis"]["jobs"] == 8 and body["redis"]["used_memory_bytes"] > 0
    text = ops(cluster.env, cluster.data, "du").stdout
    assert f"artifacts in local folder {cluster.shared}" in text and "jobs in Redis at redis://" in text


def test_export_writes_job_files_that_plain_json_reads_back(cluster, tmp_path):
    env, data, jobs, store = cluster.env, cluster.data, cluster.jobs, cluster.store
    out = tmp_path / "export"
    result = ops(env, data, "export", str(out))
    assert result.returncode == 1  # the broken record is reported, not exported
    assert f"exported 7 job(s) to {out / 'jobs'}" in result.stdout and "UNREADABLE" in result.stdout
    files = sorted((out / "jobs").iterdir())
    assert [path.name for path in files] == sorted(f"{job_id}.json" for job_id in set(jobs.values()) - {jobs["broken"]})
    for path in files:
        record = json.loads(path.read_text(encoding="utf-8"))
        assert record == store.get(path.stem) and check_job(record, path.stem) == record
        # The bytes a job file holds: what JobStore writes for the same record.
        twin = tmp_path / "twin.json"
        write_json_atomic(twin, record)
        assert path.read_bytes() == twin.read_bytes()

    again = ops(env, data, "export", str(out))
    assert again.returncode == 2 and "not empty; --force" in again.stderr
    assert ops(env, data, "export", str(data), "--force").returncode == 2  # never into the data folder itself
    (out / "notes.txt").write_text("mine")
    code, body = ops_json(env, data, "export", str(out), "--force", "--status", "queued", "--since", "1h")
    assert body["jobs"] == [jobs["queued"]] and body["count"] == 1  # long_queued was created 3 h ago
    assert (out / "notes.txt").read_text() == "mine" and len(list((out / "jobs").iterdir())) == 7
    assert ops(env, data, "export", str(tmp_path / "e2"), "--since", "last week").returncode == 2


def test_export_in_file_mode_copies_the_job_files_byte_for_byte(tmp_path):
    store = JobStore(tmp_path / "data")
    ids = [add_job(SimpleNamespace(create=store.create, artifacts=None), status) for status in ("completed", "queued")]
    result = ops({}, store.root, "export", str(tmp_path / "out"))
    assert result.returncode == 0 and "exported 2 job(s)" in result.stdout
    for job_id in ids:
        assert (tmp_path / "out" / "jobs" / f"{job_id}.json").read_bytes() == store.job_path(job_id).read_bytes()
    refused = ops({}, store.root, "export", str(store.root), "--force")
    assert refused.returncode == 2 and "own data folder" in refused.stderr
    hosts_here = ops({}, store.root, "hosts")
    assert hosts_here.returncode == 2 and "needs REDIS_URL" in hosts_here.stderr


def test_hosts_lists_up_and_lost_hosts_and_forgets_only_lost_ones(cluster):
    env, data = cluster.env, cluster.data
    code, body = ops_json(env, data, "hosts")
    assert code == 1  # a lost host is something to look at
    listed = {host["name"]: host for host in body["hosts"]}
    assert listed["live-host"]["up"] is True and listed["live-host"]["slots"] == 2
    assert listed["gone-host"]["up"] is False and listed["gone-host"]["device"] == "cuda"
    assert listed["gone-host"]["seen_seconds_ago"] >= 0
    text = ops(env, data, "hosts").stdout
    assert "LOST" in text and "2 host(s), 1 lost" in text
    refused = ops(env, data, "hosts", "--forget", "live-host")
    assert refused.returncode == 2 and "is up" in refused.stderr
    assert ops(env, data, "hosts", "--forget", "no-such-host").returncode == 3
    assert ops(env, data, "hosts", "--forget", "gone-host").returncode == 0
    code, body = ops_json(env, data, "hosts")
    assert code == 0 and [host["name"] for host in body["hosts"]] == ["live-host"]


def test_an_unreachable_redis_is_a_clear_error(tmp_path):
    (tmp_path / "data").mkdir()
    env = {"REDIS_URL": f"redis://user:s3cret@127.0.0.1:{free_port()}/0",
           "ARTIFACTS_URL": (tmp_path / "artifacts").as_uri()}
    result = ops(env, tmp_path / "data", "jobs")
    assert result.returncode == 4 and "unreachable" in result.stderr and "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr
    missing = ops(env, tmp_path / "nowhere", "jobs")
    assert missing.returncode == 2 and not (tmp_path / "nowhere").exists()


def test_s3_artifacts_are_listed_shown_and_pruned(redis_server, tmp_path):
    with running_s3_server(tmp_path) as s3:
        s3.create_bucket(BUCKET)
        env = {"REDIS_URL": redis_server.url, "ARTIFACTS_URL": f"s3://{BUCKET}/tenant", "ARTIFACTS_ENDPOINT_URL":
               s3.endpoint, "ARTIFACTS_REGION": REGION}
        found = open_cluster(tmp_path, env)
        old = add_job(found.store, "completed", ago(days=9), ago(days=9), artifacts=("video", "poster", "log"))
        fresh = add_job(found.store, "completed", artifacts=("video",))
        s3.client().put_object(Bucket=BUCKET, Key="tenant/videos/notes.txt", Body=b"not an artifact")
        code, body = ops_json(env, found.data, "du")
        assert body["artifacts"]["kinds"]["video"] == {"files": 2, "bytes": 2000}
        assert body["artifacts"]["total_bytes"] == 4000 and body["artifacts"]["store"].startswith(f"s3://{BUCKET}/")
        code, body = ops_json(env, found.data, "show", old)
        assert body["files"]["video"] == {"path": f"s3://{BUCKET}/tenant/videos/{old}.mp4", "bytes": 1000}
        assert ops(env, found.data, "prune", "--older-than", "7d").returncode == 0
        keys = sorted(item["Key"] for item in s3.client().list_objects_v2(Bucket=BUCKET)["Contents"])
        assert keys == sorted(["tenant/videos/notes.txt", f"tenant/videos/{fresh}.mp4"])
