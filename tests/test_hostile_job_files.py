"""Whatever a job file holds, it is that one job's problem: the service, the supervisor and `hunyuan-ops` go on.

The data folder may be written by an operator's scripts (or anything that gets
their rights), so a job file may hold invalid UTF-8, JSON of any shape, or be a
directory, a link or a FIFO. Each such file must be one *unreadable* job: listed,
counted, deletable, and skipped by everything that reads jobs.
"""

import contextlib
import io
import json
import logging
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hunyuan_cli.ops.main import main as ops_main
from hunyuan_core.job_record import JobStatus, new_job_id, utc_now
from hunyuan_core.timing_stats import FORMAT_VERSION

from .conftest import ROOT, SMALL_REQUEST, fixture_runner, make_app, wait_for
from .test_ops import add_job

pytestmark = pytest.mark.timeout(600)


def submit(client, body):
    response = client.post("/api/generate", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["job_id"]


def record_with(**fields):
    """A writer of the template record (a real job's) with `fields` replaced."""

    def write(path, template, outside):
        path.write_text(json.dumps(dict(template, job_id=path.stem) | fields))

    return write


def raw(data):
    def write(path, template, outside):
        path.write_bytes(data)

    return write


def symlink_to_a_record(path, template, outside):
    """A link to a well-formed record of the same id kept outside jobs/: read as a job if followed."""
    target = outside / path.name
    target.write_text(json.dumps(dict(template, job_id=path.stem)))
    path.symlink_to(target)


def runner_of_processing(guard):
    return record_with(status="processing", runner={"guard": guard, "worker": None, "ended_at": None})


# The shapes issue 10 names, each of which took the service down.
SHAPES = {
    "invalid_utf8": raw(b'{"job_id":"\xff"}'),
    "created_at_number": record_with(created_at=5),
    "runner_string": record_with(runner="x"),
    "status_list": record_with(status=["queued"]),
    "webhook_string": record_with(webhook="..."),
    "params_string": record_with(params="zz"),
    "empty": raw(b""),
    "directory": lambda path, template, outside: path.mkdir(),
    "symlink": symlink_to_a_record,
}

# More of the same kind.
MORE_SHAPES = {
    "symlink_outside": lambda path, template, outside: path.symlink_to("/etc/hostname"),
    "dangling_symlink": lambda path, template, outside: path.symlink_to(outside / "nothing"),
    "fifo": lambda path, template, outside: os.mkfifo(path),
    "directory_with_files": lambda path, template, outside: (path.mkdir(), (path / "x").write_text("x")),
    "nan_progress": lambda path, template, outside: path.write_text(
        json.dumps(dict(template, job_id=path.stem, progress=float("nan")))),
    "deeply_nested": raw(b'{"job_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "huge_integer": raw(b'{"step": 1' + b"0" * 5000 + b"}"),
    "naive_time": record_with(created_at="2026-01-01T00:00:00"),
    "video_without_file": record_with(status="completed", video={"bytes": 5}),
    "guard_pid_boolean": runner_of_processing({"pid": True, "started": 1.0}),
    "guard_pid_huge": runner_of_processing({"pid": 2**40, "started": 1.0}),
    "another_jobs_record": record_with(job_id="00000000-0000-4000-8000-000000000000"),
    "newer_format": record_with(format_version=2),
    "idempotency_key_path": record_with(idempotency_key_sha256="../jobs/x"),
    "params_width_text": lambda path, template, outside: path.write_text(
        json.dumps(dict(template, job_id=path.stem, params=dict(template["params"], width="wide")))),
    "timings_text": record_with(timings={"denoising": "long"}),
    "utf16": lambda path, template, outside: path.write_bytes(
        json.dumps(dict(template, job_id=path.stem)).encode("utf-16")),
}

# What the property test's real jobs ask for: tiny, two steps (MIN_STEPS is lowered for it).
TINY = dict(SMALL_REQUEST, num_inference_steps=2)


def write_shape(store, writer, template, outside):
    """Write a hostile job file under a fresh id; returns the id."""
    job_id = new_job_id()
    writer(store.job_path(job_id), template, outside)
    return job_id


@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("shape", sorted({**SHAPES, **MORE_SHAPES}))
def test_a_bad_job_file_is_one_unreadable_job_and_everything_else_works(data_dir, outside, shape):
    app = make_app(data_dir, WORK_COMMAND=fixture_runner("sleeps_then_completes"), VIDEO_TTL=3600)
    client, svc = app.test_client(), app.extensions["hunyuan_api"]
    store = svc.store
    good = submit(client, dict(SMALL_REQUEST, prompt="sleep 0"))
    bad = write_shape(store, {**SHAPES, **MORE_SHAPES}[shape], store.get(good), outside)
    path = store.job_path(bad)

    health = client.get("/health")
    assert health.status_code == 200
    assert health.get_json()["unreadable_jobs"] == 1 and health.get_json()["queued_jobs"] == 1
    listing = client.get("/api/jobs")
    assert listing.status_code == 200
    assert [job["job_id"] for job in listing.get_json()["jobs"]] == [good]
    [entry] = listing.get_json()["unreadable"]
    assert entry["job_id"] == bad and entry["file"] == str(path) and entry["error"]
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "hunyuan_unreadable_job_files 1.0" in metrics.get_data(as_text=True)
    status = client.get(f"/api/status/{bad}")
    assert status.status_code == 500
    assert str(path) in status.get_json()["detail"] and f"DELETE /api/jobs/{bad}" in status.get_json()["detail"]
    assert client.get(f"/api/videos/{bad}.mp4").status_code == 404
    assert client.get(f"/api/jobs/{bad}/log").status_code == 200

    # The supervisor dispatches the good job past the bad file, and housekeeping stamps it.
    def finished():
        svc.supervisor.tick()
        job = store.get(good)
        return job["status"] == "completed" and job.get("expires_at") and (job["runner"] or {}).get("ended_at")

    wait_for(finished, 60, interval=0.1, message="the good job to complete")
    another = submit(client, dict(SMALL_REQUEST, prompt="sleep 0"))
    assert client.get(f"/api/status/{another}").get_json()["queue_position"] == 1

    deleted = client.delete(f"/api/jobs/{bad}")
    assert deleted.status_code == 200, deleted.get_json()
    assert not os.path.lexists(path)
    assert client.get("/health").get_json()["unreadable_jobs"] == 0
    if shape == "symlink":
        assert (outside / path.name).exists(), "the link is removed, never what it points to"


def ops(data_dir, *args):
    return subprocess.run([sys.executable, "-m", "hunyuan_cli.ops", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_hunyuan_ops_reports_a_bad_job_file_and_exits_1(data_dir, store, outside, shape):
    good = add_job(store, "completed", finished=utc_now())
    bad = write_shape(store, SHAPES[shape], store.get(good), outside)
    for command in (["jobs"], ["stuck"], ["prune", "--older-than", "7d"]):
        result = ops(data_dir, *command)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert f"UNREADABLE {store.job_path(bad)}:" in result.stdout, result.stdout
    assert os.path.lexists(store.job_path(bad)) and store.job_path(good).exists()


def test_hunyuan_ops_prune_removes_unreadable_files_only_when_asked(data_dir, store, outside):
    template = store.get(add_job(store, "completed", finished=utc_now()))
    bad = {name: write_shape(store, writer, template, outside) for name, writer in {**SHAPES, **MORE_SHAPES}.items()}
    listed = json.loads(ops(data_dir, "--json", "jobs").stdout)
    assert sorted(entry["job_id"] for entry in listed["unreadable"]) == sorted(bad.values())
    result = ops(data_dir, "prune", "--older-than", "0", "--unreadable", "--status", "canceled")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert not [job_id for job_id in bad.values() if os.path.lexists(store.job_path(job_id))]
    assert store.job_path(template["job_id"]).exists()
    assert (outside / f"{bad['symlink']}.json").exists()


# -- random files while a real supervisor runs real jobs ----------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
# Where a mutation may strike a real record: every field, and the nested ones readers use.
NESTED = [("runner", "guard"), ("runner", "guard", "pid"), ("runner", "guard", "started"), ("runner", "worker"),
          ("runner", "ended_at"), ("runner", "threads"), ("webhook", "url"), ("webhook", "attempts"),
          ("webhook", "delivered_at"), ("webhook", "next_attempt_at"), ("params", "width"),
          ("params", "num_inference_steps"), ("params", "prompt"), ("params", "seed"), ("video", "file"),
          ("video", "bytes"), ("poster", "file"), ("model", "path"), ("model", "name"), ("timings", "denoising"),
          ("request", "prompt"), ("memory", "transformer")]


def completed_template(job):
    """A finished job's record with every field the format has, from a real job's record."""
    now = utc_now()
    dead = {"pid": 2**31 - 2, "started": 1.0}
    return dict(
        job, status="completed", phase="done", progress=1.0, step=2, step_seconds=0.5, started_at=now,
        finished_at=now, updated_at=now, phase_started_at=now, expires_at="2999-01-01T00:00:00.000+00:00",
        timings={"starting": 1.0, "denoising": 2.0},
        video={"file": "x.mp4", "bytes": 10, "frames": 13, "width": 256, "height": 256, "fps": 8, "codec": "h264",
               "pix_fmt": "yuv420p", "duration_seconds": 1.6},
        poster={"file": "x.jpg", "bytes": 10, "width": 256, "height": 256},
        runner={"guard": dead, "worker": dead, "runtime": {}, "threads": 2, "exit_code": 0, "ended_at": now},
        memory={"transformer": {"peak_rss_mb": 100.0}},
        webhook={"url": "http://127.0.0.1:9/", "attempts": 1, "delivered_at": now, "last_error": None,
                 "last_status": 200, "next_attempt_at": None, "sending_until": None, "gave_up_at": None},
        idempotency_key_sha256="0" * 64,
    )


def mutated(changes):
    def write(path, template, outside):
        record = json.loads(json.dumps(dict(template, job_id=path.stem)))
        for where, value in changes:
            parent = record
            for key in where[:-1]:
                parent = parent.get(key) if isinstance(parent, dict) else None
            if isinstance(parent, dict):
                parent[where[-1]] = value
        path.write_text(json.dumps(record))

    return write


def header_with(fields, status):
    """A record with the right id and a finished status, and random values for known fields."""

    def write(path, template, outside):
        record = dict(fields, job_id=path.stem, status=status, created_at=utc_now())
        path.write_text(json.dumps(record))

    return write


def special(kind):
    return {"directory": SHAPES["directory"], "symlink": symlink_to_a_record, "empty": SHAPES["empty"],
            "fifo": MORE_SHAPES["fifo"], "dangling": MORE_SHAPES["dangling_symlink"]}[kind]


def hostile_files(field_names):
    paths = [(name,) for name in field_names] + NESTED
    finished = [s.value for s in JobStatus if s.is_terminal]
    return st.one_of(
        st.binary(max_size=300).map(raw),
        JSON.map(lambda value: raw(json.dumps(value).encode())),
        st.lists(st.tuples(st.sampled_from(paths), JSON), min_size=1, max_size=3).map(mutated),
        st.builds(header_with, st.dictionaries(st.sampled_from(field_names), JSON, max_size=5),
                  st.sampled_from(finished)),
        st.sampled_from(["directory", "symlink", "empty", "fifo", "dangling"]).map(special),
    )


@pytest.mark.demo_model  # real jobs run on the demo model
def test_random_job_files_never_stop_real_jobs(data_dir, outside, caplog):
    """Property: while random bytes and random JSON land in jobs/, a real supervisor runs real jobs to the end
    and /health, /api/jobs, /metrics and POST /api/generate never answer 5xx."""
    caplog.set_level(logging.ERROR)
    app = make_app(data_dir, SUPERVISOR_AUTOSTART=True, SUPERVISOR_POLL_INTERVAL=0.2, MAX_WORKERS=2,
                   MIN_STEPS=1, DEFAULT_STEPS=2, VIDEO_TTL=86400)
    client, svc = app.test_client(), app.extensions["hunyuan_api"]
    store = svc.store
    try:
        real = [submit(client, dict(TINY, seed=seed)) for seed in (1, 2)]
        template = completed_template(store.get(real[0]))
        written = []

        @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(hostile_files(sorted(template)))
        def attack(writer):
            job_id = write_shape(store, writer, template, outside)
            written.append(job_id)
            for path in ("/health", "/api/jobs?limit=100", "/metrics"):
                assert client.get(path).status_code == 200, path
            response = client.post("/api/generate", json=TINY)
            assert response.status_code == 200, response.get_json()
            extra = response.get_json()["job_id"]
            client.post(f"/api/jobs/{extra}/cancel")  # keep the queue to the two real jobs
            assert client.delete(f"/api/jobs/{extra}").status_code == 200
            status = client.get(f"/api/status/{job_id}")
            assert status.status_code in (200, 500)
            if status.status_code == 500:
                assert str(store.job_path(job_id)) in status.get_json()["detail"]
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                assert ops_main(["--data-dir", str(data_dir), "jobs"]) in (0, 1)
                assert ops_main(["--data-dir", str(data_dir), "stuck"]) in (0, 1)

        attack()

        def settled():
            jobs = [store.get(job_id) for job_id in real]
            return all(JobStatus(job["status"]).is_terminal for job in jobs) and jobs

        for job in wait_for(settled, 300, interval=0.5, message="the real jobs to finish"):
            assert job["status"] == "completed", job["error"]
            assert client.get(f"/api/videos/{job['job_id']}.mp4").status_code == 200
        body = client.get("/api/jobs?limit=100").get_json()
        known = {job["job_id"] for job in body["jobs"]} | {entry["job_id"] for entry in body["unreadable"]}
        assert set(written) <= known
        for job_id in written:
            assert client.delete(f"/api/jobs/{job_id}").status_code in (200, 400, 404)
        assert client.get("/health").get_json()["unreadable_jobs"] == 0
    finally:
        svc.supervisor.stop()
    errors = [r for r in caplog.records
              if r.name.startswith(("hunyuan_api", "hunyuan_core")) and r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.mark.demo_model  # edits the statistics a calibrated data folder has
@pytest.mark.parametrize(
    "content",
    [[1, 2], {"samples": "x"}, {"samples": [{"phases": []}]}, {"samples": [{"phases": {"denoising": 5}}]},
     {"calibration": {"by_threads": {"two": {"linear": 1}}}}, {"calibration": {"by_threads": {"2": {"linear": "fast"}}}}],
)
def test_a_hand_edited_stats_file_costs_estimates_not_answers(client, data_dir, content):
    """A stats file of any shape is ignored (priors are used): status, listing and info still answer."""
    submitted = client.post("/api/generate", json=SMALL_REQUEST).get_json()
    paths = list((data_dir / "stats").glob("*.json"))
    assert paths
    for path in paths:
        # The current format's version, so the reader walks the content instead of ignoring it.
        path.write_text(json.dumps(content if isinstance(content, list) else {"format_version": FORMAT_VERSION} | content))
    assert client.get(f"/api/status/{submitted['job_id']}").status_code == 200
    assert client.get("/api/jobs").status_code == 200
    assert client.get("/api/info").status_code == 200


@pytest.mark.parametrize("content", [b"[1]", b'"x"', b'{"job_id": 5}', b'{"job_id": ["a"]}', b"\xff"])
def test_a_hand_edited_idempotency_mapping_only_frees_its_key(client, data_dir, content):
    """A mapping file of any shape is treated as absent: the retried submission makes a new job."""
    headers = {"Idempotency-Key": "retry-me"}
    first = client.post("/api/generate", json=SMALL_REQUEST, headers=headers)
    assert first.status_code == 200
    for path in (data_dir / "idempotency").glob("*.json"):
        path.write_bytes(content)
    again = client.post("/api/generate", json=SMALL_REQUEST, headers=headers)
    assert again.status_code == 200
    assert again.get_json()["job_id"] != first.get_json()["job_id"]
