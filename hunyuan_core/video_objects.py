"""Jobs as OpenAI's Videos API sees them: the Video object, and its request fields as POST /api/generate's.

The OpenAI-compatible face (hunyuan_api/views/openai_videos.py) speaks in `size`
("WxH") and `seconds` (a string) where this service speaks in width, height,
video_length and fps; this module translates both ways, with no web framework:

- `generation_fields` turns a /v1/videos body into the fields of POST
  /api/generate (then validated by the same schema, so every range is the same);
- `video_object` turns a job record into a Video object;
- `remix_request` is the request of a remix: the source job's settings, its seed,
  a new prompt;
- `poll_after_ms` is how long a polling client should wait, from the job's estimate.

The Video object's `status` has four values (queued, in_progress, completed,
failed) and the SDK's `poll()` stops on anything but the first two: a canceled job
is reported `failed` with `error.code` "canceled", so polling ends and the reason
is plain.
"""

import re

from .errors import BadRequest, InvalidInput
from .images import decode_image
from .job_record import JobStatus, parse_time

OBJECT = "video"
DELETED_OBJECT = "video.deleted"
STATUSES = {
    JobStatus.QUEUED: "queued",
    JobStatus.PROCESSING: "in_progress",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "failed",
}
ERROR_CODES = {JobStatus.FAILED: "generation_failed", JobStatus.CANCELED: "canceled"}
# A polling client waits a fifth of the job's estimated time left, within these bounds.
MIN_POLL_MS = 500
MAX_POLL_MS = 10_000
DEFAULT_POLL_MS = 1000
# The /v1 fields that stand for /api/generate fields, and those they stand for.
STANDS_FOR = {"size": ("width", "height"), "seconds": ("video_length",)}
_SIZE = re.compile(r"\s*([0-9]{1,6})\s*[xX]\s*([0-9]{1,6})\s*")
_SECONDS = re.compile(r"\s*([0-9]{1,6}(\.[0-9]{0,6})?|\.[0-9]{1,6})\s*")


def generation_fields(fields, served):
    """The POST /api/generate fields for the /v1/videos body `fields`, for the model `served` (catalog.ServedModel).

    `size` becomes width and height, `seconds` video_length (seconds x the fps asked
    for, else the model's default fps); the rest (prompt, model, and this service's
    own fields sent as extra fields) pass as they are, for the request schema to
    check. Raises InvalidInput naming `size` or `seconds` for one that is malformed,
    outside the model's range, or given beside the fields it stands for.
    """
    fields = dict(fields)
    table = {p.name: p for p in served.parameters}
    for name, replaced in STANDS_FOR.items():
        both = [other for other in replaced if other in fields]
        if name in fields and both:
            raise InvalidInput(name, f"Given together with {' and '.join(both)}; send one or the other")
    if "size" in fields:
        fields["width"], fields["height"] = _size(fields.pop("size"), table)
    if "seconds" in fields:
        fps = fields.get("fps")
        if not _is_number(fps) or not table["fps"].minimum <= fps <= table["fps"].maximum:
            fps = table["fps"].default  # a bad fps is the schema's to name; the length needs one now
        fields["video_length"] = _frames(fields.pop("seconds"), fps, table["video_length"])
    return fields


def _is_number(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _size(text, table):
    """(width, height) of a "WxH" size within the model's ranges, or InvalidInput("size")."""
    found = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise InvalidInput("size", f"Must be WIDTHxHEIGHT in pixels, like \"{table['width'].default}x"
                                   f"{table['height'].default}\"; got {_show(text)}")
    sizes = int(found.group(1)), int(found.group(2))
    for value, name in zip(sizes, ("width", "height")):
        p = table[name]
        if not p.minimum <= value <= p.maximum:
            raise InvalidInput("size", f"The {name} must be between {p.minimum} and {p.maximum} pixels for this "
                                       f"model; got {text.strip()}")
    return sizes


def _frames(text, fps, length):
    """The frame count `text` seconds make at `fps`, within the model's frame range, or InvalidInput("seconds")."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)
    found = _SECONDS.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise InvalidInput("seconds", f"Must be a number of seconds as a string, like \"4\"; got {_show(text)}")
    frames = round(float(found.group(1)) * fps)
    if not length.minimum <= frames <= length.maximum:
        raise InvalidInput("seconds", f"Must be between {seconds_text(length.minimum, fps)} and "
                                      f"{seconds_text(length.maximum, fps)} seconds at {fps} fps (this model makes "
                                      f"{length.minimum} to {length.maximum} frames); got {text.strip()}")
    return frames


def _show(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def seconds_text(frames, fps):
    """How long `frames` frames last at `fps`, as the Video object's string of seconds ("2.125", "4")."""
    return f"{frames / fps:.3f}".rstrip("0").rstrip(".")


def _epoch(text):
    try:
        when = parse_time(text)
    except (TypeError, ValueError):
        return None
    return None if when is None else int(when.timestamp())


def video_object(job, video_ttl=0):
    """The Video object of the job record `job`.

    `expires_at` is the job's own once housekeeping has stamped it, else, with
    `video_ttl` (VIDEO_TTL seconds) set, when it will be: that long after it finished.
    """
    status = JobStatus(job["status"])
    params = job.get("params") or {}
    model = job.get("model") or {}
    finished = _epoch(job.get("finished_at")) if status.is_terminal else None
    expires = _epoch(job.get("expires_at"))
    if expires is None and video_ttl and finished is not None:
        expires = finished + int(video_ttl)
    progress = job.get("progress") or 0.0
    error = None
    if status in ERROR_CODES:
        default = "The job was canceled." if status is JobStatus.CANCELED else "The job failed."
        error = {"code": ERROR_CODES[status], "message": job.get("error") or default}
    width, height, frames, fps = (params.get(name) for name in ("width", "height", "video_length", "fps"))
    video = job.get("video") or {}
    # The finished file's own size wins: an image-to-video job's size is the image's bucket.
    width, height = video.get("width") or width, video.get("height") or height
    return {
        "id": job["job_id"],
        "object": OBJECT,
        "created_at": _epoch(job["created_at"]),
        "completed_at": finished,
        "expires_at": expires,
        "model": model.get("served_as") or model.get("name"),
        "progress": 100 if status is JobStatus.COMPLETED else max(0, min(99, int(progress * 100))),
        "prompt": params.get("prompt") or (job.get("request") or {}).get("prompt"),
        "seconds": seconds_text(frames, fps) if frames and fps else None,
        "size": f"{width}x{height}" if width and height else None,
        "status": STATUSES[status],
        "error": error,
        "remixed_from_video_id": job.get("remixed_from_video_id"),
    }


def deleted_object(job_id):
    """The answer to deleting a video."""
    return {"id": job_id, "object": DELETED_OBJECT, "deleted": True}


def poll_after_ms(eta_seconds):
    """Milliseconds a polling client should wait: a fifth of the estimated time left, 0.5 to 10 s (1 s unknown)."""
    if eta_seconds is None:
        return DEFAULT_POLL_MS
    return int(min(MAX_POLL_MS, max(MIN_POLL_MS, eta_seconds * 1000 / 5)))


def remix_request(job, prompt):
    """The request of a remix of `job`: its settings and the seed it used, with `prompt`.

    Its webhook is not carried over: the remix is a new request, whose caller has
    not asked to be called back.
    """
    request = dict(job.get("request") or {})
    request["prompt"] = prompt
    seed = (job.get("params") or {}).get("seed")
    if seed is not None:
        request["seed"] = seed
    request.pop("webhook_url", None)
    request.pop("image", None)
    served_as = (job.get("model") or {}).get("served_as")
    if served_as:
        request["model"] = served_as
    return request


def remix_image(store, job):
    """The input image of `job` (decoded again) for its remix, or None for a text-to-video job."""
    if not job.get("image"):
        return None
    data = store.read_input(job["job_id"])
    if data is None:
        raise BadRequest(f"Video {job['job_id']} cannot be remixed: its input image is gone")
    return decode_image(data)
