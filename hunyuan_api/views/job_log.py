"""The runner's log of one job, as plain text."""

import marshmallow as ma
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import validate

from hunyuan_core.job_store import JobFileUnreadable, JobNotFound
from hunyuan_core.regular_file import open_regular

from ..services import services
from .job_lookup import require_access

blp = Blueprint("job_log", __name__, url_prefix="/api", description="Job logs")

MAX_TAIL_LINES = 100_000
# Reading a log backwards in blocks of this size finds the last lines without reading it all.
_BLOCK = 64 * 1024


class JobLogQuerySchema(ma.Schema):
    """Query parameters of GET /api/jobs/{job_id}/log."""

    class Meta:
        unknown = ma.RAISE

    tail = ma.fields.Integer(
        validate=validate.Range(min=1, max=MAX_TAIL_LINES, error="Must be between {min} and {max}; got {input}."),
        metadata={"description": f"Only the last N lines (1-{MAX_TAIL_LINES})"},
    )


def read_log(path, lines=None):
    """The log at `path` as bytes: all of it, or its last `lines` lines.

    Only a regular file is read, never through a symbolic link (hunyuan_core/regular_file.py);
    anything else in its place reads as no log at all.
    """
    try:
        handle, _ = open_regular(path)
    except OSError:  # absent (the runner has not started), a link, a directory
        return b""
    with handle:
        return handle.read() if lines is None else read_tail(handle, lines)


def read_tail(handle, lines):
    """The last `lines` lines of the open binary file `handle` (the whole file if it has fewer)."""
    handle.seek(0, 2)
    position = handle.tell()
    chunk = b""
    # One more newline than lines wanted, unless the file ends without one.
    while position > 0 and chunk.count(b"\n") <= lines:
        step = min(_BLOCK, position)
        position -= step
        handle.seek(position)
        chunk = handle.read(step) + chunk
    kept = chunk.splitlines(keepends=True)[-lines:]
    return b"".join(kept)


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
        store = services().store
        require_access(job_id)  # another API key's job is "not found"
        try:
            store.get(job_id)
        except JobNotFound:
            abort(404, message="Job not found")
        except JobFileUnreadable:
            pass  # the log may be exactly what explains a broken job
        body = read_log(store.log_path(job_id), query.get("tail"))
        # Runner output is UTF-8 but may hold stray bytes (a killed write): never fail on them.
        text = body.decode("utf-8", errors="replace")
        return Response(text, mimetype="text/plain", headers={"Cache-Control": "no-cache"})
