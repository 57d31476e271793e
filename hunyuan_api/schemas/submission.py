"""Schemas of submitting a job (POST /api/generate): the request body with its checks, and the answer."""

import numbers
import re
from urllib.parse import urlsplit

import marshmallow as ma
from flask import current_app, g
from marshmallow import validate

from hunyuan_core import webhook_guard
from hunyuan_core.job_record import JobStatus
from hunyuan_core.errors import InvalidInput
from hunyuan_core.params import CONFIGURABLE, MAX_PROMPT_CHARS, MAX_SEED, PARAMETERS, PARAMETERS_BY_NAME

from .common import RANGE_ERROR


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


def _models():
    """The app's catalog of models (hunyuan_core/catalog.py); None in an app without the service's objects."""
    services = current_app.extensions.get("hunyuan_api")
    return services.models if services is not None else None


def _chosen():
    """The model the request being loaded names (set by the schema's pre_load), else the default; or None."""
    models = _models()
    if models is None:
        return None
    return g.get("hunyuan_model") or models.default


def _chosen_parameter(name):
    """The chosen model's version of a parameter; the API document's for a field the model does not use."""
    served = _chosen()
    table = served.parameters if served is not None else current_app.config["PARAMETERS"]
    for p in table:
        if p.name == name:
            return p
    return PARAMETERS_BY_NAME[name]


def _chosen_default(name):
    def default():
        served = _chosen()
        if served is not None and name in served.family.unused_fields:
            return ma.missing  # not filled in: only a field the client sent is named in `adjustments`
        return _chosen_parameter(name).default

    return default


def _chosen_range(name):
    def check(value):
        p = _chosen_parameter(name)
        validate.Range(min=p.minimum, max=p.maximum, error=RANGE_ERROR)(value)

    return check


def _known_model(name):
    models = _models()
    try:
        if models is not None:
            models.get(name)
    except InvalidInput as exc:
        raise ma.ValidationError(exc.message) from None


def _parameter_fields():
    """One schema field per generation parameter, from the table in hunyuan_core/params.py.

    Each request's defaults and ranges are its model's (hunyuan_core/catalog.py):
    the declared ones, and the OpenAPI document (create_app writes the configured
    ranges in), are the default model's.
    """
    fields = {}
    for p in PARAMETERS:
        field_class = ma.fields.Integer if p.kind is int else StrictFloat
        options = {"strict": True} if p.kind is int else {"allow_nan": False}
        if p.name in CONFIGURABLE:
            description = f"{p.description} Range and default set by the service's configuration."
        else:
            description = f"{p.description} Range {p.minimum}-{p.maximum}, default {p.default}."
        fields[p.name] = field_class(
            load_default=_chosen_default(p.name), validate=_chosen_range(p.name),
            metadata={"description": description, "example": p.default}, **options
        )
    return fields


class GenerateRequestSchema(ma.Schema.from_dict(_parameter_fields())):
    """The body of POST /api/generate. Unknown fields are refused, so a typo never goes unnoticed."""

    class Meta:
        unknown = ma.RAISE

    @ma.pre_load
    def choose_model(self, data, **kwargs):
        """Note the model the body names, so every field's default and range are that model's."""
        models = _models()
        if models is not None:
            g.hunyuan_model = models.lookup(data.get("model") if isinstance(data, dict) else None)
        return data

    model = ma.fields.String(
        allow_none=True,
        validate=_known_model,
        metadata={"description": "The model to generate with: a name from GET /api/info `models`. Absent or "
                  "null: the first configured model. Each model has its own ranges and defaults.",
                  "example": "demo-hunyuanvideo"},
    )
    image = ma.fields.String(
        allow_none=True,
        metadata={"description": "Image-to-video models only (and required by them): the first frame as a "
                  "`data:` URL (data:image/png;base64,...; PNG, JPEG or WebP). In a multipart/form-data body, "
                  "send it as a file part named `image` instead. Nothing is fetched from a URL.",
                  "format": "data-url"},
    )

    prompt = ma.fields.String(
        required=True,
        validate=[validate.Length(min=1, max=MAX_PROMPT_CHARS), _not_blank, _plain_text],
        metadata={"description": "Text description of the video.", "example": "A cat walks on the grass, realistic style."},
    )
    seed = ma.fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=0, max=MAX_SEED, error=RANGE_ERROR),
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


class GenerateFormRequestSchema(GenerateRequestSchema):
    """The multipart/form-data body of POST /api/generate (documentation only: uploads.py reads it).

    The same fields as form fields, and the image as a file part.
    """

    image = ma.fields.Raw(
        metadata={"type": "string", "format": "binary",
                  "description": "Image-to-video models only (and required by them): the first frame, a PNG, "
                  "JPEG or WebP file (EXIF orientation applied, alpha flattened onto white)."},
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
