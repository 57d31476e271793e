"""Error bodies of the OpenAI-compatible face (/v1/*): `{"error": {"message", "type", "param", "code"}}`.

The Api's one error handler (api.py) builds every error answer; for a /v1 path it
hands its payload here to be reshaped. The status code stays the one /api/* would
answer, since the official SDKs map statuses to their exception classes (400
BadRequestError, 401 AuthenticationError, 404 NotFoundError, 409 ConflictError,
422 UnprocessableEntityError, 429 RateLimitError, 5xx InternalServerError).
`message` is the `detail` /api/* would show; `param` names the field a validation
error is about; `code` is the service error's kind or the HTTP error's name.
"""

from http import HTTPStatus

import marshmallow as ma
from apispec import BasePlugin

PREFIX = "/v1"
# Where webargs files the errors of each part of a request; field names are what clients know.
_LOCATIONS = ("json", "form", "query", "view_args", "files", "headers")
# marshmallow's key for errors about the body as a whole, not one field.
_WHOLE_BODY = "_schema"
_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def speaks_openai(path):
    """True for the paths whose errors take OpenAI's shape."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def error_type(status):
    """OpenAI's `type` word for an HTTP status."""
    if status >= 500:
        return "server_error"
    return _TYPES.get(status, "invalid_request_error")


def first_field(errors, prefix=""):
    """The dotted name of the first field in marshmallow's nested error dict (locations left out), or None."""
    if not isinstance(errors, dict) or not errors:
        return prefix or None
    key, value = next(iter(errors.items()))
    if key in _LOCATIONS and not prefix:
        return first_field(value)
    name = f"{prefix}.{key}" if prefix else str(key)
    return first_field(value, name) if isinstance(value, dict) else name


def _first_message(errors):
    while isinstance(errors, dict) and errors:
        errors = next(iter(errors.values()))
    while isinstance(errors, (list, tuple)) and errors:
        errors = errors[0]
    return errors if isinstance(errors, str) else ""


def _validation_code(message):
    if message == ma.fields.Field.default_error_messages["required"]:
        return "missing_required_parameter"
    if message == "Unknown field.":
        return "unknown_parameter"
    return "invalid_value"


def body(payload, error):
    """The /v1 body for the /api payload `payload` (code, status, detail, errors) of HTTP error `error`."""
    errors = payload.get("errors")
    kind = (getattr(error, "data", None) or {}).get("kind")
    if errors:
        param = first_field(errors)
        param = None if param == _WHOLE_BODY else param
        code = kind if kind and kind != "invalid_input" else _validation_code(_first_message(errors))
    else:
        param = None
        code = kind or (error.name or "error").lower().replace(" ", "_")
    return {"error": {"message": payload["detail"], "type": error_type(payload["code"]), "param": param,
                      "code": code}}



class OpenAIErrorDetailSchema(ma.Schema):
    """What went wrong (the `error` object of an OpenAI error body)."""

    message = ma.fields.String(required=True, metadata={"description": "What went wrong, in words"})
    type = ma.fields.String(required=True, metadata={
        "description": "invalid_request_error, authentication_error, rate_limit_error or server_error"})
    param = ma.fields.String(required=True, allow_none=True,
                             metadata={"description": "The request field the error is about, if one is"})
    code = ma.fields.String(required=True, allow_none=True, metadata={
        "description": "A word for the error: invalid_value, missing_required_parameter, unknown_parameter, "
                       "not_found, queue_full, model_not_ready, ..."})


class OpenAIErrorSchema(ma.Schema):
    """Every error answer under /v1, in OpenAI's shape."""

    error = ma.fields.Nested(OpenAIErrorDetailSchema, required=True)


class ErrorDocsPlugin(BasePlugin):
    """Documents every error answer of a /v1 operation with OpenAIErrorSchema (flask-smorest's are /api's shape).

    Registered before the marshmallow plugin, so the schema becomes a $ref like any other.
    """

    def operation_helper(self, path=None, operations=None, **kwargs):
        """Point the `default` and 4xx/5xx responses of /v1 operations at OpenAIErrorSchema."""
        if not path or not speaks_openai(path) or not operations:
            return
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.get("responses", {})
            for status, response in list(responses.items()):
                if str(status) != "default" and int(status) < 400:
                    continue
                description = response.get("description") if isinstance(response, dict) else None
                if description is None:
                    description = "Error" if str(status) == "default" else HTTPStatus(int(status)).phrase
                responses[status] = {"description": description,
                                     "content": {"application/json": {"schema": OpenAIErrorSchema}}}


def install_docs(api):
    """Add ErrorDocsPlugin to `api`'s spec, ahead of the plugins that resolve schemas."""
    plugin = ErrorDocsPlugin()
    plugin.init_spec(api.spec)
    api.spec.plugins.insert(0, plugin)
