"""Submitting, inspecting, listing and deleting jobs."""

import time

from filelock import FileLock
from flask import current_app
from flask import request as flask_request
from flask.views import MethodView
from flask_smorest import abort

from hunyuan_core import admission, idempotency, model_source, params, processes, webhooks
from hunyuan_core.job_record import JobStatus, new_job, new_job_id
from hunyuan_core.job_store import JobFileUnreadable, JobNotFound

from .. import auth
from ..api import Blueprint, refuse
from ..schemas import (
    DeleteResponseSchema,
    GenerateRequestSchema,
    GenerateResponseSchema,
    JobListQuerySchema,
    JobListSchema,
    JobStatusSchema,
)
from ..services import services
from .job_lookup import get_job, viewer

blp = Blueprint("jobs", __name__, url_prefix="/api", description="Video generation jobs")

IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": idempotency.HEADER,
    "required": False,
    "schema": {"type": "string", "maxLength": idempotency.MAX_KEY_LENGTH},
    "description": "Any unique string (a UUID, say). Repeating a request with the same key and body returns "
    "the job it created instead of a new one; the same key with another body is a 409.",
}

# How long a client should wait before retrying while the model is being prepared.
MODEL_RETRY_AFTER_SECONDS = 10
# A finished job's runner processes normally exit within a second of writing the job's end:
# DELETE waits this long for them before answering 409.
RUNNER_EXIT_WAIT_SECONDS = 5.0


@blp.route("/generate")
class Generate(MethodView):
    """POST /api/generate"""

    @blp.arguments(GenerateRequestSchema)
    @blp.response(200, GenerateResponseSchema)
    @blp.alt_response(400, description="The body is not valid JSON")
    @blp.doc(parameters=[IDEMPOTENCY_HEADER])
    @blp.alt_response(409, description="The Idempotency-Key was used before with a different request body")
    @blp.alt_response(413, description="The body is larger than MAX_BODY_KB (refused before it is read)")
    @blp.alt_response(422, description="Invalid parameters: `detail` names the field and its allowed range")
    @blp.alt_response(429, description="The queue is full (MAX_QUEUE); Retry-After says when to try again")
    @blp.alt_response(503, description="Model not ready yet (Retry-After says when to try again)")
    @blp.alt_response(507, description="Free disk space in the data folder is below MIN_FREE_DISK_MB")
    def post(self, request):
        """Submit a video generation job

        Sizes the model cannot take are rounded to the nearest valid value (width and
        height to multiples of 16, video_length to 4k+1); `params` in the answer shows
        the values that will be used and `adjustments` says what changed and why.
        A repeated request with the same `Idempotency-Key` header gets the same job.
        """
        svc = services()
        model = model_source.describe(svc.model)
        if not model["ready"]:
            abort(
                503,
                message=model_source.unavailable_detail(model),
                headers={"Retry-After": str(MODEL_RETRY_AFTER_SECONDS)},
            )
        key = flask_request.headers.get(idempotency.HEADER)
        key_problem = None if key is None else idempotency.validate_key(key)
        if key_problem:
            abort(400, message=key_problem)
        config = current_app.config
        used, adjustments = params.resolve(request, config["PARAMETERS"])
        owner = auth.request_key_name()
        # One lock around look-up, admission and creation: two workers given the same
        # key at once make one job, and the queue cap is not overshot by a race.
        with svc.store.locked():
            if key is not None:
                digest = idempotency.request_digest(request)
                try:
                    earlier = idempotency.find(svc.store, key, digest, owner)
                except idempotency.KeyConflict as exc:
                    abort(409, message=str(exc))
                if earlier is not None:
                    return _submission_answer(earlier, "Job already submitted with this Idempotency-Key")
            try:
                admission.check(svc.store, config["MAX_QUEUE"], config["MIN_FREE_DISK_MB"])
            except admission.Refused as exc:
                refuse(exc)
            job_id = new_job_id()
            job = new_job(
                job_id,
                request=request,
                params=used,
                adjustments=adjustments,
                model={"name": model["name"], "path": model["path"], "demo": model["demo"]},
                owner=owner,
            )
            if request.get("webhook_url"):
                job["webhook"] = webhooks.new_delivery(request["webhook_url"])
            if key is not None:
                job["idempotency_key_sha256"] = idempotency.remember(svc.store, key, digest, job_id, owner)
            svc.store.create(job)
        svc.supervisor.wake()
        return _submission_answer(job, "Video generation job submitted successfully")


def _submission_answer(job, message):
    """The answer to POST /api/generate for `job`."""
    view = viewer().describe(job)
    return {
        "job_id": job["job_id"],
        "status": job["status"],
        "message": message,
        "check_status_url": f"/api/status/{job['job_id']}",
        "estimated_time": view["estimated_time"],
        "eta_seconds": view["eta_seconds"],
        "queue_position": view["queue_position"],
        "params": job["params"],
        "adjustments": job["adjustments"],
    }


@blp.route("/status/<job_id>")
class Status(MethodView):
    """GET /api/status/{job_id}"""

    @blp.response(200, JobStatusSchema)
    @blp.alt_response(404, description="Job not found")
    def get(self, job_id):
        """Check the status of a video generation job"""
        return viewer().describe(get_job(job_id))


@blp.route("/jobs")
class JobList(MethodView):
    """GET /api/jobs"""

    @blp.arguments(JobListQuerySchema, location="query")
    @blp.response(200, JobListSchema)
    def get(self, query):
        """List jobs, newest first, optionally filtered by status

        Job files that exist but cannot be read are reported under `unreadable`
        rather than skipped. With API keys, a key lists only its own jobs (an admin
        key every job, and alone the unreadable files, whose owner cannot be read).
        """
        store = services().store
        every = auth.sees_every_job()
        # The index picks the page and counts the total (owner filtered in SQL); only the page's files are read.
        ids, total = store.index.page(query.get("status"), auth.request_key_name(), query["limit"], every_owner=every)
        page = store.read_many(ids, shared=True)  # described, never edited
        unreadable = store.index.unreadable() if every else []
        return {
            "jobs": viewer().describe_many(page, store.unfinished_jobs(shared=True)),
            "count": len(page),
            "total": total,
            "unreadable": [{"job_id": job_id, "file": str(store.job_path(job_id)), "error": reason}
                           for job_id, reason in unreadable],
        }


@blp.route("/jobs/<job_id>")
class Job(MethodView):
    """DELETE /api/jobs/{job_id}"""

    @blp.response(200, DeleteResponseSchema)
    @blp.alt_response(400, description="The job is processing and cannot be deleted")
    @blp.alt_response(404, description="Job not found")
    @blp.alt_response(409, description="The job has finished but its runner is still exiting (Retry-After)")
    def delete(self, job_id):
        """Delete a job and its video

        A job that is processing cannot be deleted; a queued job is removed from
        the queue and never starts. A finished job whose runner processes are still
        exiting is deleted once they are gone (after a short wait, else 409).
        """
        store = services().store
        # The supervisor's lock keeps a queued job from being started while it is deleted.
        with FileLock(store.lock_path("supervisor")):
            try:
                job = store.get(job_id)
            except JobNotFound:
                abort(404, message="Job not found")
            except JobFileUnreadable:
                job = None  # a broken file can always be removed (by whoever may see every job)
            if not auth.may_see(job):
                abort(404, message="Job not found")
            if job is not None and job["status"] == JobStatus.PROCESSING.value:
                abort(400, message="Cannot delete job that is currently processing")
            if job is not None and not _runner_gone(job):
                # Its record is what holds its worker slot: deleting it now would let one more
                # runner start than MAX_WORKERS while these processes still run.
                abort(
                    409,
                    message="The job has finished but its runner processes are still exiting; try again in a moment",
                    headers={"Retry-After": "1"},
                )
            store.delete(job_id)
        return {"job_id": job_id, "message": "Job deleted successfully"}


def _runner_gone(job, wait=RUNNER_EXIT_WAIT_SECONDS):
    """Wait up to `wait` seconds for every process of `job` to end; True once none is alive."""
    deadline = time.monotonic() + wait
    while processes.runner_alive(job):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
