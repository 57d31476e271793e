"""The job store: atomic files, locked updates across processes, broken files reported."""

import json
import multiprocessing
import os

import pytest

from hunyuan_core.atomic_file import write_json_atomic
from hunyuan_core.job_record import FORMAT_VERSION, new_job, new_job_id
from hunyuan_core.job_store import JobFileUnreadable, JobNotFound, JobStore


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


# -- the schema gate: every field a reader uses, in the type it expects -----------------------------------


def full_record(store):
    """A finished job's record with every field of the format filled in."""
    job = make_job(store)
    now = job["created_at"]
    process = {"pid": 1234, "started": 1700000000.25}
    job.update(
        status="completed", phase="done", progress=1.0, step=10, step_seconds=0.5, started_at=now, finished_at=now,
        expires_at=now, phase_started_at=now, timings={"denoising": 2.5}, error=None,
        params={"prompt": "p", "negative_prompt": None, "width": 256, "height": 256, "video_length": 13, "fps": 8,
                "num_inference_steps": 10, "guidance_scale": 1.0, "flow_shift": 7.0,
                "embedded_guidance_scale": 6.0, "seed": 1},
        model={"name": "tiny", "path": "/models/tiny", "demo": True},
        video={"file": f"{job['job_id']}.mp4", "bytes": 10, "frames": 13, "width": 256, "height": 256, "fps": 8,
               "codec": "h264", "pix_fmt": "yuv420p", "duration_seconds": 1.625},
        poster={"file": f"{job['job_id']}.jpg", "bytes": 5, "width": 256, "height": 256},
        runner={"guard": process, "worker": process, "runtime": {"nice": 10}, "device": "cpu", "dtype": "float32",
                "weights": {"transformer": "bfloat16"}, "threads": 2, "step_cache": None, "exit_code": 0,
                "ended_at": now, "canceled": False},
        memory={"transformer": {"peak_rss_mb": 512.0, "rss_after_free_mb": None}},
        webhook={"url": "https://example.com/hook", "attempts": 1, "delivered_at": now, "last_error": None,
                 "last_status": 200, "next_attempt_at": None, "sending_until": None, "gave_up_at": None},
        idempotency_key_sha256="ab" * 32,
        a_field_added_later={"anything": [1, "goes"]},
    )
    write_json_atomic(store.job_path(job["job_id"]), job)
    return job


def test_a_record_with_every_field_passes(store):
    job = full_record(store)
    assert store.get(job["job_id"]) == job


@pytest.mark.parametrize(
    "field, value, named",
    [
        ("created_at", 5, "created_at must be an ISO 8601 time"),
        ("created_at", "2026-01-01T00:00:00", "created_at must be an ISO 8601 time with a UTC offset"),
        ("runner", "x", "runner must be an object or null"),
        ("status", ["queued"], "unknown status an array"),
        ("webhook", "...", "webhook must be an object or null"),
        ("webhook", {"url": "u"}, "webhook lacks attempts"),
        ("params", "zz", "params must be an object"),
        ("params", {"width": "wide"}, "params.width must be an integer"),
        ("params", {"num_inference_steps": 0}, "params.num_inference_steps must be an integer from 1"),
        ("progress", "half", "progress must be a finite number"),
        ("step", 1.5, "step must be an integer"),
        ("step", True, "step must be an integer"),
        ("finished_at", 0, "finished_at must be an ISO 8601 time"),
        ("expires_at", "9999-12-31T23:59:59+00:00", "expires_at must be an ISO 8601 time"),
        ("adjustments", [1], "adjustments[0] must be a string"),
        ("model", {"name": 3}, "model.name must be a string"),
        ("timings", {"denoising": "long"}, "timings.denoising must be a finite number"),
        ("video", {"bytes": 1}, "video lacks file"),
        ("video", {"file": "x.mp4", "bytes": "many"}, "video.bytes must be an integer"),
        ("poster", [], "poster must be an object or null"),
        ("runner", {"guard": {"pid": "1", "started": 1.0}}, "runner.guard.pid must be an integer"),
        ("runner", {"guard": {"pid": 2**40, "started": 1.0}}, "runner.guard.pid must be an integer from 1"),
        ("runner", {"worker": {"pid": 5}}, "runner.worker lacks started"),
        ("runner", {"ended_at": 1}, "runner.ended_at must be an ISO 8601 time"),
        ("runner", {"threads": 0}, "runner.threads must be an integer from 1"),
        ("memory", {"vae": {"peak_rss_mb": "x"}}, "memory.vae.peak_rss_mb must be a finite number"),
        ("error", {"text": "x"}, "error must be a string or null"),
        ("phase", 7, "phase must be a string or null"),
        ("request", "p", "request must be an object or null"),
        ("idempotency_key_sha256", "../jobs/x", "idempotency_key_sha256 must be 64 lowercase hex digits"),
        ("owner", ["alice"], "owner must be a string or null"),
        ("format_version", 2, "written in format version 2"),
        ("format_version", "1", "format_version must be a positive integer"),
    ],
)
def test_a_field_of_the_wrong_type_makes_the_record_unreadable_naming_the_field(store, field, value, named):
    job = full_record(store)
    job[field] = value
    write_json_atomic(store.job_path(job["job_id"]), job)
    with pytest.raises(JobFileUnreadable) as info:
        store.get(job["job_id"])
    assert named in info.value.reason
    assert [e.job_id for e in store.list()[1]] == [job["job_id"]]
    assert store.active_jobs() == []


@pytest.mark.parametrize(
    "content, reason",
    [
        (b'{"job_id":"\xff"}', "not valid UTF-8 (byte 0xff at 11)"),
        (b'{"progress": NaN}', "NaN is not a JSON number"),
        (b"[" * 50_000 + b"]" * 50_000, "not valid JSON"),
        (b'{"step": 1' + b"0" * 5000 + b"}", "not valid JSON"),
        (b" " * (4 * 1024 * 1024 + 1), "larger than 4194304 bytes"),
    ],
)
def test_bytes_that_are_not_a_json_record_are_unreadable(store, content, reason):
    bad_id = new_job_id()
    store.job_path(bad_id).write_bytes(content)
    with pytest.raises(JobFileUnreadable) as info:
        store.get(bad_id)
    assert reason in info.value.reason


def test_links_directories_and_fifos_are_unreadable_and_deletable(store, tmp_path):
    real = full_record(store)
    elsewhere = tmp_path / "elsewhere.json"
    linked_id = new_job_id()
    # A well-formed record of the same id, kept outside jobs/: still refused, links are never followed.
    elsewhere.write_text(json.dumps(dict(real, job_id=linked_id, status="queued")))
    store.job_path(linked_id).symlink_to(elsewhere)
    folder_id, fifo_id = new_job_id(), new_job_id()
    store.job_path(folder_id).mkdir()
    (store.job_path(folder_id) / "inside").write_text("x")
    os.mkfifo(store.job_path(fifo_id))
    reasons = {e.job_id: e.reason for e in store.list()[1]}
    assert reasons == {linked_id: "a symbolic link (links are not followed)", folder_id: "a directory",
                       fifo_id: "a FIFO"}
    assert [j["job_id"] for j in store.active_jobs()] == []
    for job_id in (linked_id, folder_id, fifo_id):
        store.delete(job_id)
        assert not os.path.lexists(store.job_path(job_id))
    assert elsewhere.exists()
    with pytest.raises(JobNotFound):
        store.delete("../" + real["job_id"])
