"""The one check a job record passes before anything reads it.

Job files live in a folder an operator's scripts may also write to, so a record
can hold anything: JSON of any shape, a status that is a list, a `runner` that is
a string. Every reader (the API, the supervisor, housekeeping, webhooks, metrics,
`hunyuan-ops`, the runner) gets its records from JobStore, and JobStore passes
each one through `check_job`: a record that passes has every field those readers
use in the type they expect, and one that fails is reported as unreadable, so one
bad file is that one job's problem and never everyone's.

Known fields are checked when present (old records lack some); unknown fields pass
untouched, since the format only ever gains fields. A reader of a new field adds
its check here, so the rule stays in one place.
"""

import math
import re
from datetime import datetime

from .job_record import FORMAT_VERSION, JobStatus

# Integers a JSON client can hold exactly; anything larger in a job file is not ours.
MAX_INT = 2**53
# Sizes, frame counts, steps, fps: generous bounds that keep every estimate finite.
MAX_DIMENSION = 1_000_000
# Linux pids stay below 2**22; psutil refuses numbers that do not fit a C int.
MAX_PID = 2**31 - 1
# Timestamps outside these years are not ones this service wrote, and adding a
# retention period to one near year 9999 would overflow.
MIN_YEAR, MAX_YEAR = 1970, 9000
_MAX_TIME_CHARS = 64
_SHA256 = re.compile(r"[0-9a-f]{64}")
_STATUSES = frozenset(status.value for status in JobStatus)


class JobSchemaError(ValueError):
    """A job record with a field of the wrong type or shape; the message names the field."""


def check_job(job, job_id):
    """Return `job` if it is a job record for `job_id` every reader can use; raise JobSchemaError if not."""
    if not isinstance(job, dict):
        raise JobSchemaError(f"not a JSON object (it holds {_kind(job)})")
    missing = [key for key in ("job_id", "status", "created_at") if key not in job]
    if missing:
        raise JobSchemaError(f"missing {', '.join(missing)}")
    if job["job_id"] != job_id:
        raise JobSchemaError(f"holds job {_show(job['job_id'])}, not {job_id!r}")
    if not isinstance(job["status"], str) or job["status"] not in _STATUSES:
        raise JobSchemaError(f"unknown status {_show(job['status'])} (expected one of {', '.join(sorted(_STATUSES))})")
    version = job.get("format_version", FORMAT_VERSION)
    if not _is_int(version, 1, MAX_INT):
        raise JobSchemaError(f"format_version must be a positive integer, not {_show(version)}")
    if version > FORMAT_VERSION:
        raise JobSchemaError(f"written in format version {version}; this service reads up to {FORMAT_VERSION}")
    _fields(job, _TOP, "")
    return job


# -- checks: each is `check(value, where)` and raises JobSchemaError naming `where` ---------------------------


def _is_int(value, low=-MAX_INT, high=MAX_INT):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer too large for a float
        return False


def _is_timestamp(value):
    if not isinstance(value, str) or len(value) > _MAX_TIME_CHARS:
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    # Naive times cannot be compared with the aware ones every reader uses.
    return parsed.utcoffset() is not None and MIN_YEAR <= parsed.year <= MAX_YEAR


def _refuse(where, words, value):
    raise JobSchemaError(f"{where} must be {words}, not {_show(value)}")


def simple(accepts, words):
    """A check of one value: `accepts(value)` says whether it passes, `words` what it must be."""

    def check(value, where):
        if not accepts(value):
            _refuse(where, words, value)

    check.words = words
    return check


def integer(low=-MAX_INT, high=MAX_INT):
    """An integer within [low, high] (never a boolean)."""
    return simple(lambda value: _is_int(value, low, high), f"an integer from {low} to {high}")


number = simple(_is_number, "a finite number")
string = simple(lambda value: isinstance(value, str), "a string")
boolean = simple(lambda value: isinstance(value, bool), "true or false")
timestamp = simple(_is_timestamp, f"an ISO 8601 time with a UTC offset (years {MIN_YEAR} to {MAX_YEAR})")
# It becomes part of a file name (idempotency/<sha256>.json): nothing else may pass.
sha256_hex = simple(lambda value: isinstance(value, str) and bool(_SHA256.fullmatch(value)), "64 lowercase hex digits")


def nullable(check):
    """A `simple` check, or null (objects take `null=True` instead)."""

    def check_nullable(value, where):
        if value is not None:
            try:
                check(value, where)
            except JobSchemaError:
                _refuse(where, f"{check.words} or null", value)

    return check_nullable


def obj(fields=None, values=None, required=(), null=False):
    """A JSON object (or null, with `null`): `fields` checks named keys when present, `values` every
    value; `required` keys must exist."""

    def check(value, where):
        if value is None and null:
            return
        if not isinstance(value, dict):
            _refuse(where, "an object or null" if null else "an object", value)
        missing = [key for key in required if key not in value]
        if missing:
            raise JobSchemaError(f"{where} lacks {', '.join(missing)}")
        if values is not None:
            for key, item in value.items():
                values(item, f"{where}.{key}")
        _fields(value, fields or {}, where)

    return check


def array(items):
    """A JSON array whose every item passes `items`."""

    def check(value, where):
        if not isinstance(value, list):
            _refuse(where, "an array", value)
        for index, item in enumerate(value):
            items(item, f"{where}[{index}]")

    return check


def _fields(record, spec, where):
    for key, check in spec.items():
        if key in record:
            check(record[key], f"{where}.{key}" if where else key)


def _kind(value):
    """The JSON type of `value`, in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _show(value):
    """A short, terminal-safe rendering of a bad value for an error message."""
    if isinstance(value, (list, dict)):
        return _kind(value)
    text = ascii(value) if isinstance(value, str) else repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and len(text) > 40:
        return "a very large integer"
    return text if len(text) <= 40 else text[:37] + "..."


# -- the record --------------------------------------------------------------------------------------------

_TIME = nullable(timestamp)
_TEXT = nullable(string)
_DIMENSION = integer(1, MAX_DIMENSION)
# Process identities: the pid with its start time (hunyuan_core/processes.py).
_PROCESS = obj({"pid": integer(1, MAX_PID), "started": number}, required=("pid", "started"), null=True)

_PARAMS = {
    "prompt": string,
    "negative_prompt": _TEXT,
    "width": _DIMENSION,
    "height": _DIMENSION,
    "video_length": _DIMENSION,
    "fps": _DIMENSION,
    "num_inference_steps": _DIMENSION,
    "guidance_scale": number,
    "flow_shift": number,
    "embedded_guidance_scale": number,
    "seed": nullable(integer(0, MAX_INT)),
}

_VIDEO = {
    "file": string, "bytes": integer(0), "frames": integer(0), "width": integer(0), "height": integer(0),
    "fps": number, "codec": _TEXT, "pix_fmt": _TEXT, "duration_seconds": nullable(number),
}

_RUNNER = {
    "guard": _PROCESS,
    "worker": _PROCESS,
    "runtime": obj(null=True),
    "device": _TEXT,
    "dtype": _TEXT,
    "weights": obj(null=True),
    "threads": nullable(integer(1, MAX_DIMENSION)),
    "exit_code": nullable(integer()),
    "ended_at": _TIME,
    "canceled": nullable(boolean),
}

_WEBHOOK = {
    "url": string,
    "attempts": integer(0, MAX_INT),
    "delivered_at": _TIME,
    "last_error": _TEXT,
    "last_status": nullable(integer()),
    "next_attempt_at": _TIME,
    "sending_until": _TIME,
    "gave_up_at": _TIME,
}

_TOP = {
    "phase": _TEXT,
    "phase_started_at": _TIME,
    "progress": number,
    "step": nullable(integer(0, MAX_INT)),
    "step_seconds": nullable(number),
    "created_at": timestamp,
    "updated_at": _TIME,
    "started_at": _TIME,
    "finished_at": _TIME,
    "expires_at": _TIME,
    "request": obj({"prompt": _TEXT, "negative_prompt": _TEXT}, null=True),
    "params": obj(_PARAMS),
    "adjustments": array(string),
    "model": obj({"name": string, "path": _TEXT, "demo": nullable(boolean), "family": _TEXT, "task": _TEXT,
                  "served_as": _TEXT}, null=True),
    "timings": obj(values=number, null=True),
    "video": obj(_VIDEO, required=("file",), null=True),
    "poster": obj({"file": string, "bytes": integer(0), "width": integer(0), "height": integer(0)},
                  required=("file",), null=True),
    # The input image of an image-to-video job (inputs/<job_id>.png); absent or null for text-to-video.
    "image": obj({"file": string, "width": _DIMENSION, "height": _DIMENSION, "sha256": sha256_hex,
                  "bytes": integer(0)}, required=("file", "width", "height", "sha256"), null=True),
    "error": _TEXT,
    "runner": obj(_RUNNER, null=True),
    "memory": obj(values=obj(values=nullable(number), null=True), null=True),
    "webhook": obj(_WEBHOOK, required=("url", "attempts"), null=True),
    "idempotency_key_sha256": nullable(sha256_hex),
    # The name of the API key that created the job (auth.may_see compares it).
    "owner": _TEXT,
}
