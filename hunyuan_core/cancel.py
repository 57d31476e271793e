"""Canceling a job: a queued job never starts, a processing job's runners are ended.

The supervisor's lock is held throughout, so a queued job cannot be started while it
is being canceled. For a processing job the store lock is held while its runner
process group is killed: the work process cannot write "completed" in between
(every write of a runner takes that lock), and once the job is written as
`canceled` its guard, were it still alive, leaves a terminal job alone.

The runner's end (`runner.ended_at`) is recorded here only if no process of the job
is left alive after the wait; otherwise the supervisor's tick records it once they
are gone, and until then the job keeps its runner slot.
"""

import time


from . import processes
from .errors import Conflict
from .job_record import JobStatus, Phase, mark_finished

# The promise: a processing job's runners are gone within this many seconds.
KILL_WAIT_SECONDS = 5.0


class CannotCancel(Conflict):
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
    if store.distributed:
        return _cancel_elsewhere(store, job_id)
    with store.supervisor_lock(), store.locked():
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
            runner.setdefault("exit_code", None)
            if not processes.runner_alive(job):
                # The runner is gone and nobody is left to record it: do it here. A process
                # still alive leaves this to the supervisor's tick, once it has gone too.
                runner["ended_at"] = runner.get("ended_at") or now
            runner["canceled"] = True
            job["runner"] = runner
        store.save(job)
        store.partial_video_path(job_id).unlink(missing_ok=True)
        store.partial_poster_path(job_id).unlink(missing_ok=True)
        return job


def _cancel_elsewhere(store, job_id):
    """Cancel in the many-host mode: write the word, and wait for the host that runs the job to end its runner.

    The record changes atomically, so a runner's "completed" either came first (then
    this is CannotCancel) or is refused after (runner/progress.py leaves a terminal job
    alone). The job's host reads its record several times a second (runner/host_job.py)
    and kills the runner when it sees the cancel, then records the runner's end.
    """

    def cancel(job):
        status = JobStatus(job["status"])
        if status.is_terminal:
            raise CannotCancel(status.value)
        mark_finished(job, JobStatus.CANCELED, Phase.CANCELED)
        runner = job.get("runner")
        if runner:
            runner.setdefault("exit_code", None)
            runner["canceled"] = True

    job = store.update(job_id, cancel)
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while store.runner_alive(job) and time.monotonic() < deadline:
        time.sleep(0.1)
        job = store.get(job_id)
    return job


def _end_runner(runner):
    """SIGKILL the job's runner processes and wait (up to KILL_WAIT_SECONDS) until they are gone."""
    processes.kill_runner(runner)
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while time.monotonic() < deadline and processes.runner_alive({"runner": runner}):
        time.sleep(0.02)
