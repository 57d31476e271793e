"""Request body limits: a body over its limit is answered 413 before it is read into memory.

Two limits, because two kinds of body exist: JSON requests (a few KiB at most;
MAX_BODY_KB applies to every body that is not multipart) and multipart/form-data
uploads (images; MAX_UPLOAD_MB), whose file parts werkzeug spools to disk rather
than memory. A declared Content-Length over the limit is refused in a
before_request hook, without touching the body. A body without Content-Length
(chunked transfer encoding) is read through a stream capped at the same limit,
so reading stops with the same 413 one byte past it. (werkzeug's own cap,
MAX_CONTENT_LENGTH, cuts such a body off silently at the limit and parses the
truncated rest: a 400 for the wrong reason, or worse, a truncated upload.)

A third limit exists only where an image-to-video model is configured
(app.config["ACCEPTS_IMAGES"], False by default): a JSON POST /api/generate may
then carry its image as a base64 data: URL (and a JSON POST /v1/videos its
`input_reference`), so its limit is what an image of
MAX_UPLOAD_MB takes in base64 (4 characters per 3 bytes) plus MAX_BODY_KB for the
rest of the body. A text-only service keeps the small JSON limit.
"""

from flask import request
from flask_smorest import abort
from werkzeug.exceptions import RequestEntityTooLarge

KIB = 1024
MIB = 1024 * 1024
UPLOAD_MIMETYPE = "multipart/form-data"
# The routes whose JSON body may carry an image (as a data: URL).
IMAGE_JSON_ROUTES = (("POST", "/api/generate"), ("POST", "/v1/videos"))


def limits(settings):
    """`(max_body_bytes, max_upload_bytes)` from the service's settings."""
    return settings["MAX_BODY_KB"] * KIB, settings["MAX_UPLOAD_MB"] * MIB


def image_json_limit(settings):
    """The byte limit of a JSON POST /api/generate (or /v1/videos) carrying an image as a data: URL."""
    body, upload = limits(settings)
    return -(-upload // 3) * 4 + body  # base64 of `upload` bytes, rounded up to whole 4-character groups


def _applicable(settings):
    """The byte limit for this request's body, and the setting that sets it."""
    body, upload = limits(settings)
    if request.mimetype == UPLOAD_MIMETYPE:
        return upload, "MAX_UPLOAD_MB"
    if settings.get("ACCEPTS_IMAGES") and (request.method, request.path) in IMAGE_JSON_ROUTES:
        return image_json_limit(settings), "MAX_UPLOAD_MB in base64, plus MAX_BODY_KB"
    return body, "MAX_BODY_KB"


class _CappedInput:
    """A WSGI input stream that raises 413 as soon as more than `limit` bytes have come through it."""

    def __init__(self, stream, limit):
        self._stream = stream
        self._limit = limit
        self._count = 0

    def _take(self, data):
        self._count += len(data)
        if self._count > self._limit:
            raise RequestEntityTooLarge()
        return data

    def _allowance(self, size):
        # Never ask for more than one byte past the limit: that byte is proof enough.
        left = self._limit + 1 - self._count
        return left if size is None or size < 0 else min(size, left)

    def read(self, size=-1):
        """Read like the wrapped stream, up to one byte past the limit."""
        return self._take(self._stream.read(self._allowance(size)))

    def readline(self, size=-1):
        """Read a line like the wrapped stream, up to one byte past the limit."""
        return self._take(self._stream.readline(self._allowance(size)))

    def __iter__(self):
        while line := self.readline():
            yield line


def _too_large(limit, setting, length=None):
    if length is None:
        return f"The request body is over {limit} bytes, the limit for this kind of body ({setting})."
    return f"The request body is {length} bytes; the limit for this kind of body is {limit} bytes ({setting})."


def install(app, api):
    """Refuse oversized bodies in `app` with 413 and a `detail` rendered by `api`'s error handler."""
    settings = app.config
    # A backstop for anything that reads a body outside a request hook's reach.
    app.config["MAX_CONTENT_LENGTH"] = max(limits(settings))

    @app.before_request
    def check_body_size():
        limit, setting = _applicable(settings)
        length = request.content_length
        if length is not None and length > limit:
            abort(413, message=_too_large(limit, setting, length))
        if length is not None:
            # The backstop must not cut off a body this hook allowed (a JSON image over MAX_UPLOAD_MB's bytes).
            request.max_content_length = limit
        else:
            # Nothing has read the body yet (request.stream is made on first use), so the cap goes
            # under it; werkzeug's own cap, one byte further, must not cut the body off first.
            request.environ["wsgi.input"] = _CappedInput(request.environ["wsgi.input"], limit)
            request.max_content_length = limit + 1

    def too_large(error):
        # Raised by werkzeug mid-read (chunked body) or for the backstop: give it the service's detail.
        if not getattr(error, "data", None):
            limit, setting = _applicable(settings)
            error.data = {"message": _too_large(limit, setting, request.content_length)}
        return api.handle_http_exception(error)

    app.register_error_handler(RequestEntityTooLarge, too_large)
