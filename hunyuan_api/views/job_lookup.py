"""Finding a request's job and describing it, shared by every view that takes a job id."""

from flask import current_app
from flask_smorest import abort

from hunyuan_core.job_store import JobFileUnreadable, JobNotFound
from hunyuan_core.job_views import JobViewer

from .. import auth
from ..services import services


def viewer():
    """A JobViewer for this app's store and settings (estimates are relative to now)."""
    return JobViewer(services().store, current_app.config["MAX_WORKERS"], current_app.config["RUNNER_THREADS"])


def abort_unreadable(exc):
    """Answer 500 naming the broken job file and how to get rid of it."""
    abort(
        500,
        message=(
            f"Job {exc.job_id} exists but its file cannot be read ({exc.reason}). "
            f"An operator must repair or delete {exc.path}; DELETE /api/jobs/{exc.job_id} removes it."
        ),
    )


def not_found(message="Job not found"):
    """Answer 404: the same for an unknown job and for another API key's job."""
    abort(404, message=message)


def get_job(job_id):
    """The job record, or a 404 (unknown, or not this API key's) or 500 (unreadable file) answer."""
    try:
        job = services().store.get(job_id)
    except JobNotFound:
        not_found()
    except JobFileUnreadable as exc:
        if not auth.may_see(None):
            not_found()
        abort_unreadable(exc)
    if not auth.may_see(job):
        not_found()
    return job


def require_access(job_id, message="Job not found"):
    """Answer 404 with `message` unless this request may see job `job_id` (for views that read the job themselves).

    With every job visible (no API keys, or an admin key) nothing is read here; the
    view answers for unknown and unreadable jobs as it always has.
    """
    if auth.sees_every_job():
        return
    try:
        job = services().store.get(job_id)
    except (JobNotFound, JobFileUnreadable):
        not_found(message)
    if not auth.may_see(job):
        not_found(message)
