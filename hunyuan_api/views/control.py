"""Job control: canceling a queued or running job."""

from flask.views import MethodView
from flask_smorest import Blueprint, abort

from hunyuan_core.cancel import CannotCancel, cancel_job
from hunyuan_core.job_store import JobFileUnreadable, JobNotFound

from ..schemas import JobStatusSchema
from ..services import services
from .job_lookup import abort_unreadable, require_access, viewer

blp = Blueprint("control", __name__, url_prefix="/api", description="Job control")


@blp.route("/jobs/<job_id>/cancel")
class Cancel(MethodView):
    """POST /api/jobs/{job_id}/cancel"""

    @blp.response(200, JobStatusSchema)
    @blp.alt_response(404, description="Job not found")
    @blp.alt_response(409, description="The job has already finished (completed, failed or canceled)")
    def post(self, job_id):
        """Cancel a job

        A queued job never starts. A processing job's runner processes are ended
        (within 5 s) and its partial video removed; the job file and its log are
        kept. The job's status becomes `canceled`; the answer is its status body.
        """
        svc = services()
        require_access(job_id)  # another API key's job is "not found"
        try:
            job = cancel_job(svc.store, job_id)
        except JobNotFound:
            abort(404, message="Job not found")
        except JobFileUnreadable as exc:
            abort_unreadable(exc)
        except CannotCancel as exc:
            abort(409, message=str(exc))
        svc.supervisor.wake()  # its slot is free: the next queued job can start now
        return viewer().describe(job)
