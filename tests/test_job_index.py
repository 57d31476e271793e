"""The job index (hunyuan_core/job_index.py): it agrees with the job files, is rebuilt when lost, is
reconciled by the background check when a file changes behind its back, and spares requests from
reading every job file."""

import json
import multiprocessing
import os
import sqlite3
import time

import pytest

from hunyuan_api import create_app
from hunyuan_core.atomic_file import write_json_atomic
from hunyuan_core.job_index import INDEX_FILE, JobIndex
from hunyuan_core.job_record import mark_finished, new_job, new_job_id, JobStatus, Phase, utc_now
from hunyuan_core.job_store import JobStore
from hunyuan_core.supervisor import Supervisor

from .conftest import wait_for


def make_job(store, status="queued", owner=None, when=None):
    """Write a job through the store, in `status`."""
    job = new_job(new_job_id(), request={"prompt": "p"}, params={"num_inference_steps": 10}, adjustments=[],
                  model={"name": "m", "path": "/nowhere", "demo": True}, owner=owner)
    if when:
        job.update(created_at=when, updated_at=when)
    if status != "queued":
        job.update(status=status, started_at=job["created_at"], phase="denoising")
        if JobStatus(status).is_terminal:
            mark_finished(job, JobStatus(status), Phase.DONE if status == "completed" else Phase.FAILED)
    return store.create(job)


def rows(store):
    """The index's rows, straight from the database file (no check, no reconcile)."""
    with sqlite3.connect(store.root / INDEX_FILE) as conn:
        return sorted(conn.execute("SELECT job_id, status, owner, ino, size, mtime_ns, unreadable FROM jobs"))


def rows_from_files(store, tmp_path):
    """What a fresh index built from the same job files holds."""
    scratch = JobStore(store.root)
    scratch.index = JobIndex(scratch)
    scratch.index.path = tmp_path / "fresh.sqlite3"
    scratch.index.open()
    with sqlite3.connect(scratch.index.path) as conn:
        return sorted(conn.execute("SELECT job_id, status, owner, ino, size, mtime_ns, unreadable FROM jobs"))


def answers(store):
    """Everything the service asks the index, as plain data."""
    index = store.index
    return (index.counts(), index.unreadable(), index.page(), index.page("queued", limit=2),
            index.page(owner="alice", every_owner=False), index.unfinished_ids(), index.active_ids(),
            [job["job_id"] for job in store.active_jobs()])


@pytest.fixture
def store(tmp_path):
    return JobStore(tmp_path / "data")


@pytest.fixture
def reads(monkeypatch):
    """Counts job-file reads (every one goes through JobStore.get)."""
    count = {"n": 0}
    real = JobStore.get

    def counted(self, job_id):
        count["n"] += 1
        return real(self, job_id)

    monkeypatch.setattr(JobStore, "get", counted)
    return count


def _churn(root, worker):
    """In another process: create, update and delete jobs through a store of its own."""
    store = JobStore(root)
    for n in range(12):
        job = make_job(store, owner=f"key{worker}")
        if n % 3 == 1:
            store.update(job["job_id"], lambda j: mark_finished(j, JobStatus.COMPLETED, Phase.DONE))
        elif n % 3 == 2:
            store.delete(job["job_id"])


def test_the_index_agrees_with_the_files_after_writes_from_several_processes(store, tmp_path):
    make_job(store)
    store.index.open()  # this process holds a connection across the forks: children must not use it
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_churn, args=(store.root, worker)) for worker in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    make_job(store, status="completed")
    assert rows(store) == rows_from_files(store, tmp_path)
    assert len(rows(store)) == 1 + 4 * 8 + 1
    by_status, broken = store.index.counts()
    assert by_status == {"queued": 1 + 4 * 4, "completed": 1 + 4 * 4} and broken == 0
    assert store.index.page(owner="key2", every_owner=False)[1] == 8


def test_a_deleted_or_corrupted_index_is_rebuilt_and_answers_the_same(store, tmp_path):
    for status in ("queued", "processing", "completed", "failed"):
        make_job(store, status=status, owner="alice")
    make_job(store, status="completed")
    store.job_path(new_job_id()).write_text("{broken")
    before = answers(store)
    assert before[0][1] == 1 and len(before[2][0]) == 5

    for suffix in ("", "-wal", "-shm"):
        (store.root / f"{INDEX_FILE}{suffix}").unlink(missing_ok=True)
    assert answers(store) == before  # the same store notices the file is gone and rebuilds
    assert answers(JobStore(store.root)) == before

    # Overwritten in place while this store has it open, then opened afresh.
    with open(store.root / INDEX_FILE, "r+b") as handle:
        handle.write(b"this is not an SQLite database" * 1000)
    assert answers(store) == before
    (store.root / INDEX_FILE).write_bytes(b"this is not an SQLite database" * 100)
    for suffix in ("-wal", "-shm"):
        (store.root / f"{INDEX_FILE}{suffix}").unlink(missing_ok=True)
    assert answers(JobStore(store.root)) == before
    assert rows(store) == rows_from_files(store, tmp_path)


def test_reads_come_from_the_index_and_read_no_job_file(store, reads):
    finished = [make_job(store, status="completed", owner="alice") for _ in range(30)]
    queued = [make_job(store, owner="alice") for _ in range(3)]
    store.index.open()
    reads["n"] = 0
    store.index.counts(), store.index.unreadable(), store.index.page(limit=5)
    store.index.page("completed", owner="alice", every_owner=False)
    assert reads["n"] == 0
    assert [job["job_id"] for job in store.unfinished_jobs()] == [job["job_id"] for job in queued]
    assert [job["job_id"] for job in store.active_jobs()] == [job["job_id"] for job in queued]
    assert reads["n"] == 6, "only the unfinished jobs' files are read"
    assert finished


def test_api_requests_read_only_the_files_they_show(tmp_path, reads):
    data = tmp_path / "data"
    store = JobStore(data)
    for _ in range(40):
        make_job(store, status="completed")
    queued = []
    for _ in range(3):
        queued.append(make_job(store))
        time.sleep(0.002)  # distinct milliseconds of created_at, so the queue's order is the creation order
    app = create_app({"DATA_DIR": str(data), "SUPERVISOR_AUTOSTART": False, "TESTING": True})
    client = app.test_client()
    reads["n"] = 0
    assert client.get("/health").get_json()["total_jobs"] == 43
    assert client.get("/metrics").status_code == 200
    assert reads["n"] == 0
    listed = client.get("/api/jobs?limit=5").get_json()
    assert listed["total"] == 43 and listed["count"] == 5
    # The page (the 3 queued jobs and 2 finished ones); the queue plan's unfinished jobs
    # are the page's own records, not read twice.
    assert reads["n"] == 5, "the page's files, nothing else"
    reads["n"] = 0
    status = client.get(f"/api/status/{queued[-1]['job_id']}").get_json()
    assert status["queue_position"] == 3 and reads["n"] == 1, "the job's own file; the queue from the index"
    # Three finished jobs: the two already read for the first page are not read again.
    assert client.get("/api/jobs?status=completed&limit=3").get_json()["total"] == 40 and reads["n"] == 1 + 1


def _edit_in_place(path, change):
    """An operator's editor writing over the file itself: the jobs folder's mtime does not move."""
    record = json.loads(path.read_text())
    change(record)
    with open(path, "r+") as handle:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(record))


def test_files_changed_behind_its_back_are_reconciled_by_the_background_check(store, reads):
    job = make_job(store)
    done = make_job(store, status="completed")
    gone = make_job(store, status="completed")
    store.index.reconcile_seconds = 0.5
    supervisor = Supervisor(store, max_workers=0, poll_interval=0.05)
    store.index.open()
    # An in-place edit (the folder's mtime does not move): requests do not notice, nor read any file.
    _edit_in_place(store.job_path(job["job_id"]), lambda r: r.update(owner="bob"))
    time.sleep(0.1)
    reads["n"] = 0
    assert store.index.page(owner="bob", every_owner=False)[1] == 0 and reads["n"] == 0
    started = time.monotonic()
    supervisor.start()
    try:
        # A file dropped in, a file removed, a crash between the file write and its row:
        # with no request at all, the supervisor's background check puts the rows right.
        dropped = new_job(new_job_id(), request={"prompt": "p"}, params={}, adjustments=[], model={})
        write_json_atomic(store.job_path(dropped["job_id"]), dropped)
        os.unlink(store.job_path(gone["job_id"]))
        crashed = store.get(done["job_id"]) | {"status": "failed", "updated_at": utc_now()}
        write_json_atomic(store.job_path(done["job_id"]), crashed)
        wanted = {(job["job_id"], "queued", "bob"), (dropped["job_id"], "queued", None), (done["job_id"], "failed", None)}
        wait_for(lambda: {row[:3] for row in rows(store)} == wanted, timeout=5, message="the rows to be reconciled")
        assert time.monotonic() - started < 3
    finally:
        supervisor.stop()
    assert store.index.page(owner="bob", every_owner=False)[1] == 1


def test_a_reader_reconciles_at_once_when_the_folder_changed(store):
    make_job(store)
    store.index.reconcile_seconds = 3600
    store.job_path(new_job_id()).write_text("{broken")  # a new name moves the folder's mtime
    assert store.index.counts() == ({"queued": 1}, 1)


def test_a_broken_record_never_becomes_a_row_of_a_job(store):
    job = make_job(store)
    _edit_in_place(store.job_path(job["job_id"]), lambda r: r.update(status="sleeping"))
    store.index.reconcile()
    assert store.index.counts() == ({}, 1)
    assert "unknown status" in store.index.unreadable()[0][1]
