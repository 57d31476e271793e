"""Jobs: submitting, inspecting, listing and deleting them (the work is hunyuan_core's; this is the HTTP)."""

import marshmallow as ma
from flask import request as flask_request
from flask.views import MethodView
from flask_smorest import abort

from hunyuan_core import idempotency, images, jobs

from .. import auth, uploads
from ..api import Blueprint
from ..body_limits import UPLOAD_MIMETYPE
from ..schemas.jobs import DeleteResponseSchema, JobListQuerySchema, JobListSchema, JobStatusSchema
from ..schemas.submission import GenerateRequestSchema, GenerateResponseSchema
from ..services import services, viewer

blp = Blueprint("jobs", __name__, url_prefix="/api", description="Video generation jobs")

IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": idempotency.HEADER,
    "required": False,
    "schema": {"type": "string", "maxLength": idempotency.MAX_KEY_LENGTH},
    "description": "Any unique string (a UUID, say). Repeating a request with the same key and body returns "
    "the job it created instead of a new one; the same key with another body is a 409.",
}


def _request_body(component):
    return {"schema": {"$ref": f"#/components/schemas/{component}"}}


# Both bodies, written by hand: flask-smorest's @arguments documents one content type per operation.
GENERATE_BODY = {
    "required": True,
    "description": "The generation request: JSON (an image as a `data:` URL in `image`), or multipart/form-data "
    "with the same fields as form fields and the image as a file part named `image`. Image-to-video models "
    "need an image; text-to-video models refuse one.",
    "content": {
        "application/json": _request_body("GenerateRequest"),
        UPLOAD_MIMETYPE: _request_body("GenerateFormRequest"),
    },
}


@blp.route("/generate")
class Generate(MethodView):
    """POST /api/generate"""

    @blp.response(200, GenerateResponseSchema)
    @blp.alt_response(400, description="The body is not valid JSON")
    @blp.doc(parameters=[IDEMPOTENCY_HEADER], requestBody=GENERATE_BODY)
    @blp.alt_response(409, description="The Idempotency-Key was used before with a different request body")
    @blp.alt_response(413, description="The body is larger than MAX_BODY_KB (MAX_UPLOAD_MB for an image), "
                      "refused before it is read")
    @blp.alt_response(422, description="Invalid parameters: `detail` names the field and its allowed range; an "
                      "unknown model; an image a text-to-video model was sent, or an image-to-video model lacks")
    @blp.alt_response(429, description="The queue is full (MAX_QUEUE); Retry-After says when to try again")
    @blp.alt_response(503, description="Model not ready yet (Retry-After says when to try again)")
    @blp.alt_response(507, description="Free disk space in the data folder is below MIN_FREE_DISK_MB")
    def post(self):
        """Submit a video generation job

        Sizes the model cannot take are rounded to the nearest valid value (width and
        height to multiples of 16, video_length to 4k+1; a HunyuanVideo 1.5 model's
        nearest size bucket; an image-to-video model's bucket nearest the image's
        aspect ratio); `params` in the answer shows the values that will be used and
        `adjustments` says what changed and why (and which sent fields the model does
        not use). `model` picks one of GET /api/info's `models` (absent: the first).
        A repeated request with the same `Idempotency-Key` header gets the same job.
        """
        fields, data, _ = uploads.generate_body(flask_request, GenerateRequestSchema)
        try:
            request = GenerateRequestSchema().load(fields)
        except ma.ValidationError as error:
            location = "form" if flask_request.mimetype == UPLOAD_MIMETYPE else "json"
            abort(422, messages={location: error.messages}, exc=error)
        image = images.decode_image(data) if data is not None else None
        submitted = services().submitter.submit(
            request, owner=auth.request_key_name(), idempotency_key=flask_request.headers.get(idempotency.HEADER),
            image=image,
        )
        if submitted.earlier:
            return _submission_answer(submitted.job, "Job already submitted with this Idempotency-Key")
        return _submission_answer(submitted.job, "Video generation job submitted successfully")


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
        return viewer().describe(jobs.find_job(services().store, job_id, auth.access()))


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
        jobs.delete(services().store, job_id, auth.access())
        return {"job_id": job_id, "message": "Job deleted successfully"}
