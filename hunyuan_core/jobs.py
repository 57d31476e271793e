"""Acting on one job for a caller: who may see it, finding it and its files, canceling and deleting it.

Every face asks here, with the caller's `Access`, so the rules are the same
everywhere: another API key's job answers exactly as an unknown one (NotFound),
and a job file that cannot be read is named (Unreadable) only to a caller who may
see every job, since its owner cannot be read. Errors are hunyuan_core/errors.py's.
"""

import time
from dataclasses import dataclass


from . import processes
from .cancel import cancel_job
from .errors import BadRequest, Conflict, NotFound, Unreadable
from .job_record import JobStatus, is_job_id
from .job_store import JobFileUnreadable, JobNotFound

# A finished job's runner processes normally exit within a second of writing the job's end:
# deleting waits this long for them before refusing.
RUNNER_EXIT_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Access:
    """Who is asking: `owner` is the caller's API key name (None without keys); `every` sees every job."""

    owner: str | None = None
    every: bool = True

    def may_see(self, job):
        """True when the caller may see and act on `job`; None stands for a job whose owner cannot be read."""
        if self.every:
            return True
        # Jobs without an owner (created before keys were configured) belong to admins only.
        owner = None if job is None else job.get("owner")
        return owner is not None and owner == self.owner


# No API keys configured: everyone sees everything.
EVERYONE = Access()


def find_job(store, job_id, access):
    """The job record `access` may see; NotFound (unknown, or another key's) or Unreadable (a broken file)."""
    try:
        job = store.get(job_id)
    except JobNotFound:
        raise NotFound() from None
    except JobFileUnreadable as exc:
        if not access.may_see(None):
            raise NotFound() from None
        raise Unreadable(exc) from None
    if not access.may_see(job):
        raise NotFound()
    return job


def check_access(store, job_id, access, detail="Job not found"):
    """Raise NotFound with `detail` unless `access` may see job `job_id` (for callers that read the job themselves).

    With every job visible nothing is read here; the caller answers for unknown and
    unreadable jobs as it always has.
    """
    if access.every:
        return
    try:
        job = store.get(job_id)
    except (JobNotFound, JobFileUnreadable):
        raise NotFound(detail) from None
    if not access.may_see(job):
        raise NotFound(detail)


def check_known(store, job_id, access):
    """NotFound unless job `job_id` exists and `access` may see it; a broken job file counts as existing.

    For reading a job's log: the log may be exactly what explains a broken job.
    """
    check_access(store, job_id, access)
    try:
        store.get(job_id)
    except JobNotFound:
        raise NotFound() from None
    except JobFileUnreadable:
        pass


def find_served_file(store, filename, extension, field, access, missing):
    """The id of the completed job whose record's `field` (video, poster) names `filename`, else NotFound(`missing`).

    Only names `<job_id>.<extension>` are looked up, so `..`, other folders, hidden
    or partial files never reach the file system, and a file dropped into videos/
    is not served by its name alone. Another key's job is the same NotFound.
    """
    stem, _, given = filename.partition(".")
    if given != extension or not is_job_id(stem):
        raise NotFound(missing)
    try:
        job = store.get(stem)
    except (JobNotFound, JobFileUnreadable):
        raise NotFound(missing) from None
    if not access.may_see(job):
        raise NotFound(missing)
    entry = job.get(field)
    if job["status"] != JobStatus.COMPLETED.value or not entry or entry.get("file") != filename:
        raise NotFound(missing)
    return stem


def cancel(store, job_id, access):
    """Cancel `job_id` (hunyuan_core/cancel.py) and return its record; Conflict (CannotCancel) once finished."""
    check_access(store, job_id, access)
    try:
        return cancel_job(store, job_id)
    except JobNotFound:
        raise NotFound() from None
    except JobFileUnreadable as exc:
        raise Unreadable(exc) from None


def delete(store, job_id, access, wait=RUNNER_EXIT_WAIT_SECONDS):
    """Remove `job_id`, its video and files; a broken job file can be removed too (by whoever sees every job).

    BadRequest while it is processing; Conflict (Retry-After) when it has finished
    but its runner processes are still exiting after `wait` seconds.
    """
    # The supervisor's lock keeps a queued job from being started while it is deleted.
    with store.supervisor_lock():
        try:
            job = store.get(job_id)
        except JobNotFound:
            raise NotFound() from None
        except JobFileUnreadable:
            job = None
        if not access.may_see(job):
            raise NotFound()
        if job is not None and job["status"] == JobStatus.PROCESSING.value:
            raise BadRequest("Cannot delete job that is currently processing")
        if job is not None and not _runner_gone(store, job, wait):
            # Its record is what holds its runner slot: deleting it now would let one more
            # runner start than MAX_WORKERS while these processes still run.
            raise Conflict(
                "The job has finished but its runner processes are still exiting; try again in a moment",
                {"Retry-After": "1"},
            )
        store.delete(job_id)


def _runner_gone(store, job, wait):
    """Wait up to `wait` seconds for every process of `job` to end; True once none is alive."""
    deadline = time.monotonic() + wait
    while store.runner_alive(job):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
