"""Finding a request's job and describing it, shared by every view that takes a job id."""

from flask import current_app
from flask_smorest import abort

from ..job_store import JobFileUnreadable, JobNotFound
from ..job_views import JobViewer
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


def get_job(job_id):
    """The job record, or a 404 (unknown) or 500 (unreadable file) answer."""
    try:
        return services().store.get(job_id)
    except JobNotFound:
        abort(404, message="Job not found")
    except JobFileUnreadable as exc:
        abort_unreadable(exc)
