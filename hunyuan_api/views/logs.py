"""Logs: the runner's log of one job, as plain text."""

from flask.views import MethodView
from flask_smorest import Blueprint

from hunyuan_core import jobs

from .. import auth
from ..job_files import send_artifact_log
from ..schemas.jobs import JobLogQuerySchema
from ..services import services

blp = Blueprint("job_log", __name__, url_prefix="/api", description="Job logs")


@blp.route("/jobs/<job_id>/log")
class JobLog(MethodView):
    """GET /api/jobs/{job_id}/log"""

    @blp.arguments(JobLogQuerySchema, location="query")
    @blp.response(200, content_type="text/plain", description="The log as text; empty if the runner has not started")
    @blp.alt_response(404, description="Job not found")
    @blp.alt_response(422, description="Invalid `tail`")
    def get(self, query, job_id):
        """The runner's log of a job (guard and work process output)

        The log grows while the job runs; `tail` returns only its last lines.
        """
        found = services()
        jobs.check_known(found.store, job_id, auth.access())  # another API key's job is "not found"
        # Not in the artifact store yet: the log a runner on this host is writing.
        return send_artifact_log(found.artifacts, job_id, query.get("tail"), fallback=found.store.log_path(job_id))
