"""Live progress of a job as Server-Sent Events."""

import threading

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint

from hunyuan_core import jobs
from hunyuan_core.errors import Unavailable
from hunyuan_core.job_events import JobEventStream
from hunyuan_core.job_record import JobStatus
from hunyuan_core.job_views import JobViewer

from .. import auth
from ..services import services

blp = Blueprint("events", __name__, url_prefix="/api", description="Live job progress (Server-Sent Events)")

# How long a client refused for too many open streams should wait.
STREAMS_RETRY_AFTER_SECONDS = 5
_SLOTS_KEY = "hunyuan_api.event_stream_slots"
_LAST_EVENT_ID = {
    "in": "header",
    "name": "Last-Event-ID",
    "required": False,
    "schema": {"type": "string"},
    "description": "Sent by EventSource when it reconnects: the id of the last event it received. "
    "The job's current state is not sent again if it is still that version; a finished job answers 204.",
}


def _stream_slots(app):
    """The per-process semaphore bounding open streams (EVENTS_MAX_STREAMS per web worker)."""
    slots = app.extensions.get(_SLOTS_KEY)
    if slots is None:
        slots = app.extensions.setdefault(_SLOTS_KEY, threading.BoundedSemaphore(app.config["EVENTS_MAX_STREAMS"]))
    return slots


@blp.route("/jobs/<job_id>/events")
class JobEvents(MethodView):
    """GET /api/jobs/{job_id}/events"""

    @blp.doc(parameters=[_LAST_EVENT_ID])
    @blp.response(
        200,
        content_type="text/event-stream",
        description="An event stream: `progress` events with the status body (as GET /api/status), "
        "keep-alive comments, and a final event named after the terminal status, after which it closes.",
    )
    @blp.alt_response(204, description="The job is finished and the client already holds its last event")
    @blp.alt_response(404, description="Job not found")
    @blp.alt_response(500, description="The job file exists but cannot be read")
    @blp.alt_response(503, description="Too many open streams in this web worker (Retry-After says when to retry)")
    def get(self, job_id):
        """Follow a job's progress live (Server-Sent Events)

        Sends an event whenever the job's status, phase, progress or estimates change, a
        comment every EVENTS_KEEPALIVE seconds, and ends after the terminal event (or after
        EVENTS_MAX_SECONDS; EventSource then reconnects by itself with Last-Event-ID).
        """
        svc, config = services(), current_app.config
        job = jobs.find_job(svc.store, job_id, auth.access())
        last_event_id = request.headers.get("Last-Event-ID")
        if JobStatus(job["status"]).is_terminal and last_event_id == job.get("updated_at"):
            # Tells EventSource to stop reconnecting: there is nothing more to say.
            return Response(status=204)
        slots = _stream_slots(current_app)
        if not slots.acquire(blocking=False):
            raise Unavailable(
                f"Too many open event streams ({config['EVENTS_MAX_STREAMS']} per web worker); "
                "retry later or poll GET /api/status/{job_id}.",
                {"Retry-After": str(STREAMS_RETRY_AFTER_SECONDS)},
            )
        store, max_workers, threads = svc.store, config["MAX_WORKERS"], config["RUNNER_THREADS"]
        stream = JobEventStream(
            store,
            job_id,
            # A fresh viewer per event: its estimates are relative to the moment it is built.
            describe=lambda record: JobViewer(store, max_workers, threads).describe(record),
            poll_interval=config["EVENTS_POLL_INTERVAL"],
            keepalive=config["EVENTS_KEEPALIVE"],
            max_seconds=config["EVENTS_MAX_SECONDS"],
            last_event_id=last_event_id,
        )
        response = Response(iter(stream), mimetype="text/event-stream")
        # The WSGI server closes the response when the stream ends or the client goes away.
        released = threading.Event()

        def release():
            if not released.is_set():
                released.set()
                slots.release()

        response.call_on_close(release)
        # No caching, and no buffering by a reverse proxy (nginx honours X-Accel-Buffering).
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"
        return response
