"""Job control: canceling a queued or running job (hunyuan_core/jobs.py does it)."""

from flask.views import MethodView
from flask_smorest import Blueprint

from hunyuan_core import jobs

from .. import auth
from ..schemas.jobs import JobStatusSchema
from ..services import services, viewer

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
        job = jobs.cancel(svc.store, job_id, auth.access())
        svc.supervisor.wake()  # its slot is free: the next queued job can start now
        return viewer().describe(job)
