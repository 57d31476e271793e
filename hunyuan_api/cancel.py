"""Canceling a job: a queued job never starts, a processing job's runners are ended.

The supervisor's lock is held throughout, so a queued job cannot be started while it
is being canceled. For a processing job the store lock is held while its runner
process group is killed: the work process cannot write "completed" in between
(every write of a runner takes that lock), and once the job is written as
`canceled` its guard, were it still alive, leaves a terminal job alone.
"""

import os
import signal
import time

from filelock import FileLock

from . import processes
from .atomic_file import write_json_atomic
from .job_record import JobStatus, Phase, mark_finished

# The promise: a processing job's runners are gone within this many seconds.
KILL_WAIT_SECONDS = 5.0


class CannotCancel(Exception):
    """The job has already finished (completed, failed or canceled)."""

    def __init__(self, status):
        super().__init__(f"Job is already {status} and cannot be canceled")
        self.status = status


def cancel_job(store, job_id):
    """Cancel `job_id` and return its record as it now stands.

    Raises JobNotFound for an unknown job, JobFileUnreadable for a broken file and
    CannotCancel for a finished one. Partial files (the video being written) are
    removed; the job file and its log are kept.
    """
    with FileLock(store.lock_path("supervisor")), store.locked():
        job = store.get(job_id)
        status = JobStatus(job["status"])
        if status.is_terminal:
            raise CannotCancel(status.value)
        runner = job.get("runner") or {}
        if status is JobStatus.PROCESSING:
            _end_runner(runner)
        mark_finished(job, JobStatus.CANCELED, Phase.CANCELED)
        now = job["finished_at"]
        if runner:
            # The runner is gone and nobody is left to record it: do it here, so no
            # supervisor mistakes the job for one whose runner vanished.
            runner.setdefault("exit_code", None)
            runner["ended_at"] = runner.get("ended_at") or now
            runner["canceled"] = True
            job["runner"] = runner
        write_json_atomic(store.job_path(job_id), job)
        store.partial_video_path(job_id).unlink(missing_ok=True)
        store.partial_poster_path(job_id).unlink(missing_ok=True)
        return job


def _end_runner(runner):
    """SIGKILL the job's runner process group and wait (up to KILL_WAIT_SECONDS) until it is gone."""
    guard, worker = runner.get("guard"), runner.get("worker")
    # The work process is in its guard's process group (the guard leads its own session);
    # killing the group reaches it even if the guard itself is already dead.
    if guard and guard.get("pid") and (processes.is_alive(guard) or processes.is_alive(worker)):
        try:
            os.killpg(guard["pid"], signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if processes.is_alive(worker):
        try:
            os.kill(worker["pid"], signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while time.monotonic() < deadline and (processes.is_alive(guard) or processes.is_alive(worker)):
        time.sleep(0.02)
