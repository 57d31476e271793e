"""A small HTTP client of the service's JSON API (urllib only)."""

import json
import os
import urllib.error
import urllib.parse
import urllib.request

from .upload import multipart_body

DEFAULT_URL = "http://localhost:10000"
# Downloads are copied in pieces this big, so a long video never sits in memory whole.
CHUNK_BYTES = 1 << 20
# Uploads smaller than the smallest MAX_UPLOAD_MB (1 MiB) need no look at the server's limit first.
UNCHECKED_UPLOAD_BYTES = 1 << 20


class ApiError(Exception):
    """The server answered with an HTTP error; `detail` is its explanation."""

    def __init__(self, status, detail):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class Unreachable(Exception):
    """No HTTP answer at all: connection refused, DNS failure, timeout."""


class ApiClient:
    """Requests against one server, with the API key (if any) on every request."""

    def __init__(self, base_url=DEFAULT_URL, api_key=None, timeout=30):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.timeout = timeout

    def _open(self, method, path, body=None, raw=None):
        """Send `body` as JSON, or `raw` = (bytes, Content-Type) as it is; return the open response."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif raw is not None:
            data, headers["Content-Type"] = raw
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, _detail(error)) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise Unreachable(f"cannot reach {self.base_url}: {reason}") from None

    def call(self, method, path, body=None, raw=None):
        """Send a request and return the decoded JSON answer."""
        with self._open(method, path, body, raw) as response:
            return json.loads(response.read() or b"null")

    def generate(self, request, image=None):
        """POST /api/generate: JSON, or with `image` = (file name, bytes, content type) multipart/form-data."""
        if image is None:
            return self.call("POST", "/api/generate", request)
        name, data, content_type = image
        body, body_type = multipart_body(request, "image", name, data, content_type)
        if len(body) > UNCHECKED_UPLOAD_BYTES:
            # A server answers 413 to a body over its limit before reading it, and may close the connection
            # while a large body is still being sent: the client would see a broken pipe, not the answer.
            limit = (self.info().get("limits") or {}).get("max_upload_bytes")
            if isinstance(limit, int) and len(body) > limit:
                raise ApiError(413, f"The request body would be {len(body)} bytes; this server takes at most "
                                    f"{limit} bytes (MAX_UPLOAD_MB). Nothing was sent.")
        return self.call("POST", "/api/generate", raw=(body, body_type))

    def info(self):
        """GET /api/info."""
        return self.call("GET", "/api/info")

    def status(self, job_id):
        """GET /api/status/{job_id}."""
        return self.call("GET", f"/api/status/{_quote(job_id)}")

    def jobs(self, status=None, limit=None):
        """GET /api/jobs with optional filters."""
        query = {key: value for key, value in (("status", status), ("limit", limit)) if value is not None}
        return self.call("GET", "/api/jobs" + (f"?{urllib.parse.urlencode(query)}" if query else ""))

    def cancel(self, job_id):
        """POST /api/jobs/{job_id}/cancel."""
        return self.call("POST", f"/api/jobs/{_quote(job_id)}/cancel")

    def delete(self, job_id):
        """DELETE /api/jobs/{job_id}."""
        return self.call("DELETE", f"/api/jobs/{_quote(job_id)}")

    def download(self, path, destination):
        """Save the file at `path` (e.g. a job's video_url) to `destination`; returns its size in bytes.

        The bytes go to a hidden file beside the destination first and are renamed
        into place when complete, so an interrupted download never looks finished.
        Raises OSError when the destination cannot be written.
        """
        destination = os.path.abspath(destination)
        partial = os.path.join(os.path.dirname(destination), f".{os.path.basename(destination)}.partial")
        with self._open("GET", path) as response:
            try:
                with open(partial, "wb") as handle:
                    while chunk := response.read(CHUNK_BYTES):
                        handle.write(chunk)
                os.replace(partial, destination)
            except BaseException:
                if os.path.exists(partial):
                    os.unlink(partial)
                raise
        return os.path.getsize(destination)


def _quote(text):
    return urllib.parse.quote(text, safe="")


def _detail(error):
    """The `detail` of an error answer, or the best description there is."""
    try:
        body = json.loads(error.read() or b"null")
    except (ValueError, OSError):
        body = None
    if isinstance(body, dict):
        for key in ("detail", "message", "error"):
            if body.get(key):
                return str(body[key])
    return f"{error.reason}" if error.reason else f"HTTP {error.code}"
