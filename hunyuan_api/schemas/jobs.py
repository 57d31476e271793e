"""Schemas of jobs once submitted: status, list, delete, and the log's query."""

import marshmallow as ma
from marshmallow import validate

from hunyuan_core.job_record import JobStatus

from .common import RANGE_ERROR

# The most lines GET /api/jobs/{job_id}/log?tail= returns.
MAX_TAIL_LINES = 100_000


class VideoSchema(ma.Schema):
    """What the finished MP4 holds (read back from the file after encoding)."""

    file = ma.fields.String()
    bytes = ma.fields.Integer()
    frames = ma.fields.Integer()
    width = ma.fields.Integer()
    height = ma.fields.Integer()
    fps = ma.fields.Integer()
    codec = ma.fields.String()
    pix_fmt = ma.fields.String()
    duration_seconds = ma.fields.Float()


class JobStatusSchema(ma.Schema):
    """The state of one job, as GET /api/status/{job_id} returns it."""

    job_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": [s.value for s in JobStatus]})
    progress = ma.fields.Float(required=True, metadata={"description": "0.0 to 1.0; never goes backwards"})
    created_at = ma.fields.String(required=True, metadata={"description": "ISO 8601, UTC"})
    updated_at = ma.fields.String(required=True, metadata={"description": "ISO 8601, UTC"})
    video_url = ma.fields.String(allow_none=True, required=True)
    error = ma.fields.String(allow_none=True, required=True)
    estimated_time = ma.fields.Float(
        allow_none=True,
        required=True,
        metadata={"description": "Estimated seconds of the job's run (its real duration once finished)"},
    )
    eta_seconds = ma.fields.Float(allow_none=True, metadata={"description": "Estimated seconds until finished, queue included"})
    queue_position = ma.fields.Integer(allow_none=True, metadata={"description": "1 = next to start; 0 = running"})
    phase = ma.fields.String(
        metadata={
            "description": "queued, starting, loading_model, encoding_text, denoising, decoding, writing_video, done, failed "
            "or canceled"
        }
    )
    step = ma.fields.Integer(metadata={"description": "Denoising steps finished"})
    steps = ma.fields.Integer(metadata={"description": "Denoising steps in all"})
    started_at = ma.fields.String(allow_none=True)
    finished_at = ma.fields.String(allow_none=True)
    seed = ma.fields.Integer(allow_none=True)
    params = ma.fields.Dict(metadata={"description": "The parameters actually used"})
    adjustments = ma.fields.List(ma.fields.String())
    model = ma.fields.String(allow_none=True)
    timings = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Float(),
        metadata={"description": "Seconds each finished phase took"},
    )
    video = ma.fields.Nested(VideoSchema, allow_none=True)
    log_url = ma.fields.String(metadata={"description": "The runner's log of this job (text/plain)"})
    events_url = ma.fields.String(metadata={"description": "Live progress of this job (Server-Sent Events)"})
    expires_at = ma.fields.String(
        allow_none=True,
        metadata={"description": "When the finished job and its video will be removed (VIDEO_TTL); null = kept"},
    )
    webhook = ma.fields.Dict(
        allow_none=True,
        metadata={"description": "The webhook's delivery: url, attempts, delivered_at, last_error, gave_up_at"},
    )
    poster_url = ma.fields.String(
        allow_none=True, metadata={"description": "The first frame as a JPEG, once completed (for <video poster>)"}
    )
    worker_host = ma.fields.String(
        metadata={"description": "Many-host mode (REDIS_URL) only: the worker host that runs or ran the job"}
    )


class JobListQuerySchema(ma.Schema):
    """Query parameters of GET /api/jobs."""

    class Meta:
        unknown = ma.RAISE

    status = ma.fields.String(
        validate=validate.OneOf([s.value for s in JobStatus], error="Must be one of: {choices}; got {input}."),
        metadata={"description": "Only jobs with this status"},
    )
    limit = ma.fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=100, error=RANGE_ERROR),
        metadata={"description": "Maximum number of jobs to return (1-100)"},
    )


class UnreadableJobSchema(ma.Schema):
    """A job file that exists but could not be read."""

    job_id = ma.fields.String()
    file = ma.fields.String()
    error = ma.fields.String()


class JobListSchema(ma.Schema):
    """GET /api/jobs: newest first."""

    jobs = ma.fields.List(ma.fields.Nested(JobStatusSchema))
    count = ma.fields.Integer(metadata={"description": "Jobs in this answer"})
    total = ma.fields.Integer(metadata={"description": "Jobs matching the filter, before the limit"})
    unreadable = ma.fields.List(
        ma.fields.Nested(UnreadableJobSchema),
        metadata={"description": "Job files that could not be read (corrupt or half-written by hand)"},
    )


class DeleteResponseSchema(ma.Schema):
    """The answer to DELETE /api/jobs/{job_id}."""

    job_id = ma.fields.String()
    message = ma.fields.String()


class JobLogQuerySchema(ma.Schema):
    """Query parameters of GET /api/jobs/{job_id}/log."""

    class Meta:
        unknown = ma.RAISE

    tail = ma.fields.Integer(
        validate=validate.Range(min=1, max=MAX_TAIL_LINES, error=RANGE_ERROR),
        metadata={"description": f"Only the last N lines (1-{MAX_TAIL_LINES})"},
    )
