"""Request and response schemas: they validate input and document the API (OpenAPI)."""

import numbers
import re
from urllib.parse import urlsplit

import marshmallow as ma
from flask import current_app
from marshmallow import validate

from hunyuan_core import webhook_guard
from hunyuan_core.job_record import JobStatus
from hunyuan_core.params import CONFIGURABLE, MAX_PROMPT_CHARS, MAX_SEED, PARAMETERS

_RANGE_ERROR = "Must be between {min} and {max}; got {input}."


def _not_blank(text):
    if not text.strip():
        raise ma.ValidationError("Must not be empty or only whitespace.")


# C0 and C1 control characters other than tab and newline (ESC starts terminal escape
# sequences, CR rewrites a line), and unpaired surrogates (a Python str holds a
# surrogate only when it is unpaired: JSON's paired escapes decode to one code point).
_FORBIDDEN_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _plain_text(text):
    """Refuse characters that tokenizers cannot encode or that terminals act on."""
    found = _FORBIDDEN_IN_TEXT.search(text)
    if found:
        char = found.group()
        kind = "an unpaired surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        raise ma.ValidationError(
            f"Must not contain {kind} (U+{ord(char):04X} at position {found.start()}); "
            "only newline and tab are allowed besides printable text."
        )


class StrictFloat(ma.fields.Float):
    """A Float that takes JSON numbers only, as the strict Integer fields do: "2.0" is refused."""

    def _validated(self, value):
        # bool is a number to Python; marshmallow's Number refuses it already.
        if not isinstance(value, numbers.Real):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


def _reachable_webhook(url):
    """Refuse a webhook URL whose host is, or resolves to, an address webhooks may not reach.

    The same check runs again when each attempt connects (webhook_client), so
    this one is for a clear answer now, not the only defence.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return  # not a URL: the Url field says so
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    try:
        webhook_guard.check_url(url, current_app.config.get("WEBHOOK_ALLOWED_NETWORKS", ()))
    except ValueError:
        return  # a malformed port: the Url field says so
    except (webhook_guard.AddressNotAllowed, webhook_guard.HostUnresolvable):
        # One message for both, so answers do not tell which internal names exist.
        raise ma.ValidationError(
            f"The host {parts.hostname!r} is not, or does not resolve to, a public internet address; webhooks "
            "are only sent to public addresses unless the operator allows a network (WEBHOOK_ALLOWED_NETWORKS)."
        ) from None


def _configured(name):
    """The app's own version of a parameter whose range is set by configuration."""
    return {p.name: p for p in current_app.config["PARAMETERS"]}[name]


def _configured_range(name):
    def check(value):
        p = _configured(name)
        validate.Range(min=p.minimum, max=p.maximum, error=_RANGE_ERROR)(value)

    return check


def _parameter_fields():
    """One schema field per generation parameter, from the table in hunyuan_core/params.py.

    Parameters in params.CONFIGURABLE take their default and range from the app's
    settings at request time (create_app writes them into the OpenAPI document).
    """
    fields = {}
    for p in PARAMETERS:
        field_class = ma.fields.Integer if p.kind is int else StrictFloat
        options = {"strict": True} if p.kind is int else {"allow_nan": False}
        if p.name in CONFIGURABLE:
            default, check = (lambda name=p.name: _configured(name).default), _configured_range(p.name)
            description = f"{p.description} Range and default set by the service's configuration."
        else:
            default = p.default
            check = validate.Range(min=p.minimum, max=p.maximum, error=_RANGE_ERROR)
            description = f"{p.description} Range {p.minimum}-{p.maximum}, default {p.default}."
        fields[p.name] = field_class(
            load_default=default, validate=check, metadata={"description": description, "example": p.default}, **options
        )
    return fields


class GenerateRequestSchema(ma.Schema.from_dict(_parameter_fields())):
    """The body of POST /api/generate. Unknown fields are refused, so a typo never goes unnoticed."""

    class Meta:
        unknown = ma.RAISE

    prompt = ma.fields.String(
        required=True,
        validate=[validate.Length(min=1, max=MAX_PROMPT_CHARS), _not_blank, _plain_text],
        metadata={"description": "Text description of the video.", "example": "A cat walks on the grass, realistic style."},
    )
    seed = ma.fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=0, max=MAX_SEED, error=_RANGE_ERROR),
        metadata={"description": "Random seed; null draws one at random, recorded in the job so it can be reused."},
    )
    negative_prompt = ma.fields.String(
        allow_none=True,
        load_default=None,
        validate=[validate.Length(max=MAX_PROMPT_CHARS), _plain_text],
        metadata={
            "description": "What the video should not show. Used only when guidance_scale > 1 "
            "(real classifier-free guidance); then an empty one is used if none is given."
        },
    )
    webhook_url = ma.fields.Url(
        allow_none=True,
        load_default=None,
        require_tld=False,
        schemes={"http", "https"},
        validate=_reachable_webhook,
        metadata={
            "description": "Optional http(s) URL: once the job has finished (completed, failed or canceled) the "
            "service POSTs its status body there, signed with WEBHOOK_SECRET (X-Hunyuan-Signature). Its host "
            "must be a public address unless the operator allows others (WEBHOOK_ALLOWED_NETWORKS); redirects "
            "are not followed."
        },
    )


class GenerateResponseSchema(ma.Schema):
    """The answer to a submission."""

    job_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": [s.value for s in JobStatus]})
    message = ma.fields.String(required=True)
    check_status_url = ma.fields.String(required=True)
    estimated_time = ma.fields.Float(allow_none=True, metadata={"description": "Estimated seconds of the run itself"})
    eta_seconds = ma.fields.Float(allow_none=True, metadata={"description": "Estimated seconds until finished, queue included"})
    queue_position = ma.fields.Integer(allow_none=True)
    params = ma.fields.Dict(metadata={"description": "The parameters that will actually be used"})
    adjustments = ma.fields.List(ma.fields.String(), metadata={"description": "What was changed from the request, and why"})


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
        validate=validate.Range(min=1, max=100, error=_RANGE_ERROR),
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


class ModelStateSchema(ma.Schema):
    """The model the service generates with."""

    name = ma.fields.String()
    path = ma.fields.String()
    embedded = ma.fields.Boolean(metadata={"description": "True for the built-in demo model"})
    demo = ma.fields.Boolean(metadata={"description": "True when videos are noise (random weights)"})
    description = ma.fields.String()
    ready = ma.fields.Boolean()
    problem = ma.fields.String(allow_none=True)


class HealthModelSchema(ModelStateSchema):
    """The model as /health shows it: open without a key, so without its path (on /api/info)."""

    class Meta:
        exclude = ("path",)


class HealthSchema(ma.Schema):
    """GET /health."""

    status = ma.fields.String(metadata={"description": "healthy, starting (model not ready yet) or unhealthy"})
    model_loaded = ma.fields.Boolean(metadata={"description": "True when the model is ready for runners to load"})
    active_jobs = ma.fields.Integer(metadata={"description": "Jobs processing now"})
    queued_jobs = ma.fields.Integer()
    total_jobs = ma.fields.Integer()
    running_runners = ma.fields.Integer(metadata={"description": "Jobs whose runner processes are alive"})
    max_workers = ma.fields.Integer()
    unreadable_jobs = ma.fields.Integer()
    model = ma.fields.Nested(HealthModelSchema)
    problems = ma.fields.List(ma.fields.String())
