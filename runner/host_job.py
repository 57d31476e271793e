"""One job on a worker host: what an RQ worker runs for each job it takes (`runner.host_job.run`).

It does on this host what the single-host supervisor does for a queued job: claims
it (queued -> processing, naming this host), fetches its input image from the
artifact store, starts the job's guard (runner/guard.py, forked from this process:
runner/forked_guard.py) in its own session with the log in this host's data folder,
and then watches it until it ends:

- the log is copied into Redis as it grows (`hunyuan:log:<id>`), so every web host can
  show it live; at the end the whole log goes to the artifact store;
- the record is read every WATCH_SECONDS: a job canceled (or deleted) from any host has
  its runner killed here at once, so it is gone within the 5 s the API promises;
- a runner that ended without recording its end (its guard was killed) has it recorded,
  and the job failed, as the supervisor's tick does on one host.

The RQ worker calls this in its own process (RQ's SimpleWorker), one job at a time:
the host's MAX_WORKERS RQ workers are its runner slots.
"""

import json
import os
import subprocess
import sys

from hunyuan_core import config, processes
from hunyuan_core.job_record import JobStatus, Phase, mark_failed, utc_now
from hunyuan_core.job_store import JobFileUnreadable, JobNotFound
from hunyuan_core.stores import RUNNER_PATIENCE_SECONDS, open_store
from hunyuan_core.supervisor import DEFAULT_WORK_COMMAND
from runner.forked_guard import fork_guard

# How often the record is read for a cancel, and the log copied.
WATCH_SECONDS = 0.25
# The live copy of a log in Redis stops growing here; the artifact store gets the whole log at the end.
LIVE_LOG_LIMIT = 1024 * 1024
# The worker host passes its --work-command (tests' fixture work processes) down to its RQ workers here.
WORK_COMMAND_ENV = "HUNYUAN_WORK_COMMAND"


def run(job_id):
    """Run job `job_id` on this host to its end; returns a word for RQ's log (the record has the rest)."""
    settings = config.from_environ()
    host = settings["WORKER_NAME"]
    store = open_store(settings, host=host, patience=RUNNER_PATIENCE_SECONDS)
    job = _claim(store, job_id, host, config.runner_runtime(settings))
    if job is None:
        return "not queued"  # canceled, deleted, or taken by another host before this one came to it
    try:
        _fetch_input(store, job)
        process, guard = _start_guard(store, job_id, settings)
    except Exception as exc:  # noqa: BLE001 - whatever stops the start is this job's failure, said in it
        _record_end(store, job_id, host, f"The runner could not be started on worker host {host}: {exc}.")
        _publish_log(store, job_id)
        return "failed to start"
    _watch(store, job_id, process, guard)
    _publish_log(store, job_id)
    _tidy(store, job_id)
    return "ended"


def _claim(store, job_id, host, runtime):
    """Take the queued job for this host; the record as claimed, or None if it was not queued."""
    claimed = {}

    def claim(job):
        if job["status"] != JobStatus.QUEUED.value:
            return False
        now = utc_now()
        job.update(status=JobStatus.PROCESSING.value, phase=Phase.STARTING.value, phase_started_at=now,
                   started_at=now)
        job["runner"] = {"host": host, "guard": None, "worker": None, "runtime": dict(runtime), "ended_at": None}
        claimed["yes"] = True
        return True

    try:
        job = store.update(job_id, claim)
    except (JobNotFound, JobFileUnreadable):
        return None
    return job if claimed else None


def _fetch_input(store, job):
    """Bring an image-to-video job's input image from the artifact store to where the runner reads it."""
    if not job.get("image"):
        return
    target = store.input_path(job["job_id"])
    if store.artifacts.local_path(job["job_id"], "input") == target:
        return  # the artifact store is this data folder: already there
    store.artifacts.download(job["job_id"], "input", target)


def _start_guard(store, job_id, settings):
    """Start the guard (forked: runner/forked_guard.py) and record it in the job; returns (handle, identity)."""
    work_command = json.loads(os.environ[WORK_COMMAND_ENV]) if os.environ.get(WORK_COMMAND_ENV) else None
    # The guard waits on this host's supervisor lock until its record names it (runner/guard.py).
    with store.supervisor_lock():
        process = fork_guard(job_id, store.root, work_command or DEFAULT_WORK_COMMAND, settings["JOB_TIMEOUT"],
                             settings["RUNNER_STALL_SECONDS"], store.log_path(job_id))
        guard = processes.identify(process.pid)

        def record(job):
            runner = job.get("runner") or {}
            if runner.get("host") != store.host or runner.get("ended_at"):
                return False
            runner["guard"] = guard
            return True

        try:
            store.update(job_id, record)
        except (JobNotFound, JobFileUnreadable):
            processes.kill_runner({"guard": guard})
            raise RuntimeError("its job record disappeared as it started") from None
    return process, guard


def _watch(store, job_id, process, guard):
    """Wait for the guard to exit, ending the runner when the job is canceled or deleted meanwhile."""
    copied = 0
    stopped = False
    while True:
        try:
            process.wait(timeout=WATCH_SECONDS)  # returns the moment the guard exits
        except subprocess.TimeoutExpired:
            pass
        ended = process.poll() is not None
        copied = _copy_log(store, job_id, copied)
        if ended:
            break
        try:
            job = store.get(job_id)
        except JobNotFound:
            job = None
        except Exception:  # Redis down for longer than the store waits: keep running, look again later
            job = {"status": JobStatus.PROCESSING.value}
        if not stopped and (job is None or job["status"] == JobStatus.CANCELED.value):
            # Canceled or deleted from another host: this host is the one that can end the processes.
            processes.kill_runner((job or {}).get("runner") or {"guard": guard})
            stopped = True
    _copy_log(store, job_id, copied)
    if stopped or process.returncode != 0:
        _record_end(store, job_id, store.host,
                    "The runner's guard process was killed before it could record how the work ended "
                    f"(exit status {process.returncode}).", exit_code=process.returncode)


def _record_end(store, job_id, host, reason, exit_code=None):
    """Record the runner's end if its guard did not, failing the job if it was left unfinished."""

    def finish(job):
        runner = job.get("runner") or {}
        if runner.get("host") != host or runner.get("ended_at"):
            return False
        runner.setdefault("exit_code", exit_code)
        runner["ended_at"] = utc_now()
        job["runner"] = runner
        if not JobStatus(job["status"]).is_terminal:
            mark_failed(job, reason)
        return True

    try:
        store.update(job_id, finish)
    except (JobNotFound, JobFileUnreadable):
        pass


def _copy_log(store, job_id, copied):
    """Append what the log gained since `copied` bytes to its live copy in Redis; returns the new count."""
    if copied >= LIVE_LOG_LIMIT:
        return copied
    try:
        with open(store.log_path(job_id), "rb") as handle:
            handle.seek(copied)
            more = handle.read(LIVE_LOG_LIMIT - copied)
    except OSError:
        return copied
    if more:
        try:
            store.call(lambda r: r.append(store.key("log", job_id), more))
        except Exception:  # Redis down: the artifact store still gets the whole log at the end
            return copied
        copied += len(more)
    return copied


def _publish_log(store, job_id):
    """Put the whole log into the artifact store and drop its live copy."""
    try:
        if store.log_path(job_id).exists():
            store.publish(job_id, ("log",))
        store.call(lambda r: r.delete(store.key("log", job_id)))
    except Exception as exc:  # noqa: BLE001 - a log that cannot be published is reported, not fatal
        print(f"job {job_id}: could not publish its log: {exc}", file=sys.stderr, flush=True)


def _tidy(store, job_id):
    """Remove this host's working copies once they are in a separate artifact store."""
    for kind, path in (("video", store.video_path(job_id)), ("poster", store.poster_path(job_id)),
                       ("log", store.log_path(job_id)), ("input", store.input_path(job_id))):
        if store.artifacts.local_path(job_id, kind) != path:
            path.unlink(missing_ok=True)
    store.heartbeat_path(job_id).unlink(missing_ok=True)
