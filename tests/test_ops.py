"""`hunyuan-ops` on a real data folder (with job files written by JobStore), run as a subprocess."""

import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from hunyuan_cli.ops import inventory
from hunyuan_core.job_record import new_job, new_job_id
from hunyuan_core.processes import identify

from .conftest import ROOT, wait_for
from .server import GunicornServer, kill_all_runners

# data_dir holds the built demo model and this host's calibration (tests/conftest.py).
pytestmark = [pytest.mark.timeout(300), pytest.mark.demo_model]


def ops(data_dir, *args, timeout=60):
    """Run `python -m hunyuan_cli.ops --data-dir DATA ARGS` (what the hunyuan-ops script runs)."""
    return subprocess.run([sys.executable, "-m", "hunyuan_cli.ops", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def ops_json(data_dir, *args):
    result = ops(data_dir, "--json", *args)
    return result.returncode, json.loads(result.stdout)


def ago(**delta):
    return (datetime.now(timezone.utc) - timedelta(**delta)).isoformat(timespec="milliseconds")


def add_job(store, status, created=None, finished=None, runner=None, files=()):
    """Write a job file through JobStore, and the files named in `files` beside it."""
    job_id = new_job_id()
    job = new_job(job_id, request={"prompt": f"{status} job"}, params={"prompt": f"{status} job"}, adjustments=[],
                  model={"name": "tiny", "path": "/nowhere", "demo": True})
    job.update(status=status, created_at=created or ago(minutes=1), finished_at=finished, runner=runner)
    store.create(job)
    for name in files:
        path = {"video": store.video_path, "poster": store.poster_path, "log": store.log_path}[name](job_id)
        path.write_bytes(b"\x00" * 1000)
    return job_id


@pytest.fixture
def dead_runner():
    """The recorded identity of a runner process that has since exited."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    identity = identify(process.pid)
    process.kill()
    process.wait()
    return {"guard": identity, "worker": identity}


@pytest.fixture
def live_runner():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    identity = identify(process.pid)
    yield {"guard": identity, "worker": identity}
    process.kill()
    process.wait()


@pytest.fixture
def populated(store, dead_runner, live_runner):
    """A data folder with one job of each kind an operator meets, and one broken file."""
    jobs = {
        "old_completed": add_job(store, "completed", ago(days=10), ago(days=9), files=("video", "poster", "log")),
        "old_failed": add_job(store, "failed", ago(days=8), ago(days=8), files=("log",)),
        "recent_completed": add_job(store, "completed", ago(hours=2), ago(hours=1), files=("video", "poster")),
        "orphaned": add_job(store, "processing", ago(minutes=5), runner=dead_runner),
        "running": add_job(store, "processing", ago(minutes=5), runner=live_runner),
        "long_queued": add_job(store, "queued", ago(hours=3)),
        "queued": add_job(store, "queued"),
    }
    broken = new_job_id()
    store.job_path(broken).write_text("{not json")
    jobs["broken"] = broken
    return jobs


def test_jobs_lists_every_job_with_age_and_video_size_and_reports_broken_files(data_dir, populated):
    code, body = ops_json(data_dir, "jobs")
    assert code == 1  # something to look at: the unreadable file
    rows = {row["job_id"]: row for row in body["jobs"]}
    assert set(rows) == set(populated.values()) - {populated["broken"]}
    old = rows[populated["old_completed"]]
    assert old["status"] == "completed" and old["video_bytes"] == 1000 and old["age_seconds"] > 9 * 86400
    assert rows[populated["queued"]]["video_bytes"] is None
    assert [bad["job_id"] for bad in body["unreadable"]] == [populated["broken"]]
    assert "not valid JSON" in body["unreadable"][0]["error"]
    text = ops(data_dir, "jobs")
    assert "UNREADABLE" in text.stdout and "7 job(s), 1 unreadable file(s)" in text.stdout
    assert "1.0 kB" in text.stdout and "10d" in text.stdout


def test_show_prints_the_job_file_and_its_files(data_dir, populated):
    job_id = populated["old_completed"]
    result = ops(data_dir, "show", job_id)
    assert result.returncode == 0
    assert json.loads(result.stdout.split("\nvideo:")[0])["job_id"] == job_id
    assert "poster: " in result.stdout and "(1.0 kB)" in result.stdout
    code, body = ops_json(data_dir, "show", populated["queued"])
    assert code == 0 and body["files"]["video"]["bytes"] is None
    broken = ops(data_dir, "show", populated["broken"])
    assert broken.returncode == 3 and "cannot be read: not valid JSON" in broken.stderr
    missing = ops(data_dir, "show", new_job_id())
    assert missing.returncode == 3 and "no job" in missing.stderr


def test_stuck_finds_orphaned_runners_and_long_queued_jobs(data_dir, populated, dead_runner):
    code, body = ops_json(data_dir, "stuck")
    assert code == 1
    reasons = {item["job_id"]: item["reason"] for item in body["stuck"]}
    assert set(reasons) == {populated["orphaned"], populated["long_queued"]}
    assert f"guard pid {dead_runner['guard']['pid']}" in reasons[populated["orphaned"]]
    assert reasons[populated["long_queued"]].startswith("queued for ")
    code, body = ops_json(data_dir, "stuck", "--queued-older-than", "4h")
    assert [item["job_id"] for item in body["stuck"]] == [populated["orphaned"]]


def test_prune_dry_run_deletes_nothing_then_prune_removes_old_finished_jobs(data_dir, populated, store):
    code, body = ops_json(data_dir, "prune", "--older-than", "7d", "--dry-run")
    # 1: the unreadable file is left (and reported) unless --unreadable is given.
    assert code == 1 and body["dry_run"] is True
    assert [bad["job_id"] for bad in body["unreadable"]] == [populated["broken"]]
    assert sorted(body["jobs"]) == sorted([populated["old_completed"], populated["old_failed"]])
    assert body["bytes"] > 3000
    assert store.video_path(populated["old_completed"]).exists()

    code, body = ops_json(data_dir, "prune", "--older-than", "7d", "--status", "failed")
    assert body["jobs"] == [populated["old_failed"]]
    assert not store.job_path(populated["old_failed"]).exists() and not store.log_path(populated["old_failed"]).exists()

    result = ops(data_dir, "prune", "--older-than", "7d")
    assert result.returncode == 1 and "deleted 1 job(s)" in result.stdout
    assert "1 unreadable job file(s) left; --unreadable deletes them" in result.stdout
    old = populated["old_completed"]
    for path in (store.job_path(old), store.video_path(old), store.poster_path(old), store.log_path(old)):
        assert not path.exists(), path
    remaining = set(p.stem for p in (data_dir / "jobs").glob("*.json"))
    assert remaining == set(populated.values()) - {old, populated["old_failed"]}  # broken file left alone too
    result = ops(data_dir, "prune", "--older-than", "0", "--unreadable", "--status", "canceled")
    assert result.returncode == 0 and f"deleted {populated['broken']}" in result.stdout
    assert not store.job_path(populated["broken"]).exists()
    assert ops(data_dir, "prune", "--older-than", "soon").returncode == 2


def test_prune_waits_for_the_services_lock(data_dir, populated, store):
    # While the service holds the job-store lock (e.g. mid-write), prune must wait, not write around it.
    holding, release = threading.Event(), threading.Event()

    def hold():
        with store.locked():
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    process = subprocess.Popen([sys.executable, "-m", "hunyuan_cli.ops", "--data-dir", str(data_dir), "prune",
                                "--older-than", "7d"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        assert process.poll() is None, "prune finished while the lock was held"
        assert store.job_path(populated["old_completed"]).exists()
    finally:
        release.set()
        holder.join()
    assert process.wait(60) == 1  # 1: the unreadable file is left
    assert not store.job_path(populated["old_completed"]).exists()


def test_du_reports_each_folder_and_free_space(data_dir, populated):
    code, body = ops_json(data_dir, "du")
    assert code == 0
    assert {"jobs", "videos", "logs", "locks"} <= set(body["folders"])
    assert body["folders"]["videos"] == 4000 and body["disk_free_bytes"] > 0
    assert body["total_bytes"] == sum(body["folders"].values())
    assert "free" in ops(data_dir, "du").stdout


def test_a_wrong_data_dir_is_refused_and_not_created(tmp_path):
    result = ops(tmp_path / "nothing-here", "jobs")
    assert result.returncode == 2 and "has no jobs/ folder" in result.stderr
    assert not (tmp_path / "nothing-here").exists()


def test_prune_while_the_service_runs_on_the_same_folder(data_dir, populated):
    with GunicornServer(data_dir, workers=1) as server:
        before = {job["job_id"] for job in server.get("/api/jobs?limit=100").json()["jobs"]}
        assert populated["old_completed"] in before
        assert ops(data_dir, "prune", "--older-than", "7d").returncode == 1  # the broken file is left
        after = {job["job_id"] for job in server.get("/api/jobs?limit=100").json()["jobs"]}
        assert after == before - {populated["old_completed"], populated["old_failed"]}
        assert server.get(f"/api/status/{populated['old_completed']}").status_code == 404
        assert server.get(f"/api/status/{populated['recent_completed']}").json()["status"] == "completed"
        # The service fails the orphaned job on its own within a tick; then `stuck` no longer lists it.
        wait_for(lambda: server.get(f"/api/status/{populated['orphaned']}").json()["status"] == "failed", 10,
                 message="the orphaned job to be failed by the service")
        _, body = ops_json(data_dir, "stuck", "--queued-older-than", "1d")
        assert body["stuck"] == []
    kill_all_runners(data_dir)  # the queued jobs were dispatched (and fail: their model path does not exist)


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800),
                                           ("2w", 1209600), ("1.5h", 5400)])
def test_durations_read_as_operators_write_them(text, seconds):
    assert inventory.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7 days", "-1d", "d"])
def test_other_durations_are_refused(text):
    with pytest.raises(ValueError):
        inventory.parse_duration(text)
