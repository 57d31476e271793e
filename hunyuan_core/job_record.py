"""The job record: what one job file holds, and the words used in it.

The format is documented in docs/job-file.md because operators read
these files with their own scripts. Change it only by adding fields; anything
else bumps FORMAT_VERSION.
"""

import re
import uuid
from datetime import datetime, timezone
from enum import Enum

FORMAT_VERSION = 1
_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class JobStatus(str, Enum):
    """The status values of the API document, in their order of life."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"  # stopped by POST /api/jobs/{job_id}/cancel

    @property
    def is_terminal(self):
        """True once the job can no longer change."""
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)


class Phase(str, Enum):
    """Finer-grained stages of a job, reported beside the status."""

    QUEUED = "queued"
    STARTING = "starting"  # runner process started, importing its libraries
    LOADING = "loading_model"
    TEXT = "encoding_text"
    DENOISING = "denoising"
    DECODING = "decoding"
    WRITING = "writing_video"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"


# The phases a runner works through, in order; progress and estimates walk this list.
WORK_PHASES = (Phase.STARTING, Phase.LOADING, Phase.TEXT, Phase.DENOISING, Phase.DECODING, Phase.WRITING)


def utc_now():
    """The current time as an ISO 8601 string in UTC, with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_time(text):
    """Parse a timestamp written by `utc_now` (None passes through)."""
    return None if text is None else datetime.fromisoformat(text)


def new_job_id():
    """A fresh random job id."""
    return str(uuid.uuid4())


def is_job_id(text):
    """True if `text` has the shape of a job id (so it is safe in a file name).

    The whole text must match: `$` would also accept an id followed by a newline.
    """
    return isinstance(text, str) and _JOB_ID.fullmatch(text) is not None


def video_filename(job_id):
    """The file name of a job's video inside the videos folder."""
    return f"{job_id}.mp4"


def poster_filename(job_id):
    """The file name of a job's poster image (its first frame) inside the videos folder."""
    return f"{job_id}.jpg"


def input_filename(job_id):
    """The file name of a job's input image (image-to-video) inside the inputs folder."""
    return f"{job_id}.png"


def new_job(job_id, request, params, adjustments, model, owner=None):
    """The record of a freshly submitted job; `owner` is the name of the API key that submitted it (or None)."""
    now = utc_now()
    return {
        "format_version": FORMAT_VERSION,
        "job_id": job_id,
        "status": JobStatus.QUEUED.value,
        "phase": Phase.QUEUED.value,
        "phase_started_at": None,
        "progress": 0.0,
        "step": 0,
        "step_seconds": None,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "request": request,
        "params": params,
        "adjustments": adjustments,
        "model": model,
        "timings": {},
        "video": None,
        "poster": None,
        "error": None,
        "runner": None,
        "owner": owner,
    }


def mark_finished(job, status, phase, error=None):
    """Set a job to the terminal `status` and `phase`, keeping whatever progress it made."""
    now = utc_now()
    job["status"] = status.value
    job["phase"] = phase.value
    job["error"] = error
    job["finished_at"] = now
    job["updated_at"] = now
    return job


def mark_failed(job, error):
    """Set a job to failed with `error`, keeping whatever progress it made."""
    return mark_finished(job, JobStatus.FAILED, Phase.FAILED, error)


def status_of(job):
    """The job's status as a JobStatus."""
    return JobStatus(job["status"])
