"""The job store: atomic files, locked updates across processes, broken files reported."""

import json
import multiprocessing
import os

import pytest

from hunyuan_api.atomic_file import write_json_atomic
from hunyuan_api.job_record import FORMAT_VERSION, new_job, new_job_id
from hunyuan_api.job_store import JobFileUnreadable, JobNotFound, JobStore


def make_job(store, prompt="p"):
    job = new_job(new_job_id(), request={"prompt": prompt}, params={"prompt": prompt}, adjustments=[], model={})
    return store.create(job)


def test_create_get_update_delete(store):
    job = make_job(store)
    assert store.get(job["job_id"]) == job
    assert job["format_version"] == FORMAT_VERSION
    updated = store.update(job["job_id"], lambda j: j.update(progress=0.5))
    assert updated["progress"] == 0.5 and store.get(job["job_id"])["progress"] == 0.5
    assert updated["updated_at"] >= job["updated_at"]
    store.video_path(job["job_id"]).write_bytes(b"video")
    store.log_path(job["job_id"]).write_text("log")
    store.delete(job["job_id"])
    with pytest.raises(JobNotFound):
        store.get(job["job_id"])
    assert not store.video_path(job["job_id"]).exists() and not store.log_path(job["job_id"]).exists()


def test_update_can_decline_to_write(store):
    job = make_job(store)
    before = store.job_path(job["job_id"]).stat().st_mtime_ns
    store.update(job["job_id"], lambda j: False)
    assert store.job_path(job["job_id"]).stat().st_mtime_ns == before


@pytest.mark.parametrize("job_id", ["../../etc/passwd", "abc", "", "00000000-0000-0000-0000-00000000000g"])
def test_ids_that_are_not_job_ids_are_not_found(store, job_id):
    with pytest.raises(JobNotFound):
        store.get(job_id)


def test_job_files_are_plain_readable_json(store):
    job = make_job(store)
    path = store.job_path(job["job_id"])
    assert json.loads(path.read_text()) == job
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert not [p for p in store.jobs_dir.iterdir() if p.name.startswith(".")], "no temporary files left"


def test_failed_write_leaves_the_old_file_whole(store, monkeypatch):
    job = make_job(store)
    path = store.job_path(job["job_id"])
    original = path.read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_json_atomic(path, {"half": "written"})
    monkeypatch.undo()
    assert path.read_text() == original
    assert [p.name for p in store.jobs_dir.iterdir()] == [path.name]


@pytest.mark.parametrize(
    "content, reason",
    [
        ('{"job_id": "x", "status": "queu', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"status": "queued"}', "missing job_id"),
        ("", "not valid JSON"),
    ],
)
def test_unreadable_files_are_reported_not_skipped(store, content, reason):
    good = make_job(store)
    bad_id = new_job_id()
    store.job_path(bad_id).write_text(content)
    with pytest.raises(JobFileUnreadable) as info:
        store.get(bad_id)
    assert reason in str(info.value)
    jobs, unreadable = store.list()
    assert [j["job_id"] for j in jobs] == [good["job_id"]]
    assert [(e.job_id, reason in e.reason) for e in unreadable] == [(bad_id, True)]


def test_list_is_oldest_first_and_ignores_foreign_files(store):
    ids = [make_job(store)["job_id"] for _ in range(3)]
    (store.jobs_dir / "notes.json").write_text("operator's notes")
    jobs, unreadable = store.list()
    assert [j["job_id"] for j in jobs] == ids and unreadable == []


def _increment_many(data_dir, job_id, times):
    store = JobStore(data_dir)
    for _ in range(times):
        store.update(job_id, lambda j: j.update(step=j["step"] + 1))


def test_concurrent_updates_from_processes_lose_nothing(store):
    job = make_job(store)
    processes = [
        multiprocessing.get_context("spawn").Process(target=_increment_many, args=(str(store.root), job["job_id"], 50))
        for _ in range(4)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
        assert p.exitcode == 0
    assert store.get(job["job_id"])["step"] == 200


def test_active_jobs_skips_settled_files_until_they_change(store):
    queued = make_job(store)
    done = make_job(store)
    store.update(done["job_id"], lambda j: j.update(status="completed"))
    assert [j["job_id"] for j in store.active_jobs()] == [queued["job_id"]]
    # A settled file is not read again while its identity is unchanged: edited in place to a
    # same-size "queued" record with its mtime put back, it would show up if it were re-read.
    path = store.job_path(done["job_id"])
    before = path.stat()
    text = path.read_text()
    edited = text.replace('"status": "completed",', '"status": "queued",   ')
    assert len(edited) == len(text) and edited != text
    with open(path, "r+") as handle:
        handle.write(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert [j["job_id"] for j in store.active_jobs()] == [queued["job_id"]]
    # A rewritten file is read again (an operator re-queued it by hand, say).
    store.update(done["job_id"], lambda j: j.update(status="queued"))
    assert {j["job_id"] for j in store.active_jobs()} == {queued["job_id"], done["job_id"]}
