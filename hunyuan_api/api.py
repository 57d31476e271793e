"""flask-smorest's Api, its settings and Blueprint, with error bodies that carry the API document's `detail` field.

The service's own errors (hunyuan_core/errors.py) are answered through the same handler (`install`).
"""

import json
import sys

import flask_smorest
import marshmallow as ma
from flask import request
from flask_smorest import Api as SmorestApi
from flask_smorest.error_handler import ErrorSchema as SmorestErrorSchema
from webargs.flaskparser import FlaskParser, abort
from werkzeug.exceptions import HTTPException, default_exceptions

from hunyuan_core import __version__
from hunyuan_core.errors import InvalidInput, ServiceError

# flask-smorest's OpenAPI settings; the docs' scripts are served locally (see views/pages.py).
API_SETTINGS = {
    "API_TITLE": "HunyuanVideo REST API",
    "API_VERSION": __version__,
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "/docs",
    "OPENAPI_SWAGGER_UI_URL": "/docs-assets/swagger-ui/",
    "OPENAPI_REDOC_PATH": "/redoc",
    "OPENAPI_REDOC_URL": "/docs-assets/redoc/redoc.standalone.js",
    "API_SPEC_OPTIONS": {
        "info": {
            "description": (
                "Text-to-video and image-to-video generation with Tencent's HunyuanVideo (13B and 1.5 models; "
                "GET /api/info lists the ones this server offers). Submit a job with POST /api/generate, "
                "poll GET /api/status/{job_id}, then download the MP4 from the video_url it returns. "
                "Every error body carries a human-readable `detail`."
            )
        }
    },
}


class ErrorSchema(SmorestErrorSchema):
    """Every error response: a readable `detail`, plus flask-smorest's code, status and field errors."""

    detail = ma.fields.String(metadata={"description": "What went wrong, in words (names the field for bad input)"})


def _flatten(errors, prefix=""):
    """Turn marshmallow's nested error dict into 'field: message' strings."""
    if isinstance(errors, dict):
        lines = []
        for key, value in errors.items():
            # webargs nests body errors under the location ("json", "query"); field names are what users know.
            name = prefix if key in ("json", "query", "form", "view_args") and not prefix else (
                f"{prefix}.{key}" if prefix else str(key)
            )
            lines.extend(_flatten(value, name))
        return lines
    if isinstance(errors, (list, tuple)):
        lines = []
        for item in errors:
            lines.extend(_flatten(item, prefix))
        return lines
    return [f"{prefix}: {errors}" if prefix else str(errors)]


class Api(SmorestApi):
    """The service's Api: one error handler for every HTTP error, with `detail`."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
        """Render any HTTPException as JSON with `detail` beside flask-smorest's fields."""
        payload, code, headers = super().handle_http_exception(error)
        if "errors" in payload:
            payload["detail"] = "Invalid request: " + "; ".join(_flatten(payload["errors"]))
        elif "message" in payload:
            payload["detail"] = payload["message"]
        else:
            payload["detail"] = error.description or error.name
        return payload, code, headers


class RequestParser(FlaskParser):
    """webargs' Flask parser, with every way a JSON body can fail to parse answered 400.

    Python's json module raises RecursionError for deeply nested documents and a
    plain ValueError for integers longer than Python converts (4300 digits), and
    webargs catches neither: both would be 500s.
    """

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise  # webargs' own handling: an empty body is "missing", the rest goes below
        except RecursionError:
            _invalid_json("it is nested too deeply")
        except ValueError as exc:
            if "digits" in str(exc):
                _invalid_json(f"a number has more than {sys.get_int_max_str_digits()} digits")
            _invalid_json(str(exc))

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        _invalid_json(str(error))


def _invalid_json(reason):
    abort(400, message=f"The body is not valid JSON: {reason}.")


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose request bodies go through RequestParser."""

    ARGUMENTS_PARSER = RequestParser()


class InsufficientStorage(HTTPException):
    """HTTP 507, which Werkzeug has no exception for."""

    code = 507
    description = "Insufficient Storage"


def http_error(error):
    """The HTTPException flask-smorest's `abort` would raise for the service error `error` (detail, headers)."""
    exception_class = InsufficientStorage if error.status_code == 507 else default_exceptions[error.status_code]
    exception = exception_class()
    exception.data = {"message": error.detail, "headers": error.headers}
    if isinstance(error, InvalidInput):
        # Listed under its field as a schema's errors are; `detail` comes out the same words.
        location = "form" if request.mimetype == "multipart/form-data" else "json"
        exception.data["errors"] = {location: {error.field: [error.message]}}
    return exception


def install(app, api):
    """Answer every ServiceError the way an HTTP error is answered: its status, `detail` and headers.

    The one error path of the views: they call hunyuan_core's services and let
    errors propagate to here.
    """
    app.register_error_handler(ServiceError, lambda error: api.handle_http_exception(http_error(error)))
