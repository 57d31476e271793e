"""Answering with a job's file (video, poster, log): every one opened the same safe way.

`open_job_file` is the one way a view opens a file of a job: a regular file only,
opened without following a symbolic link (hunyuan_core/regular_file.py), and the
file that was checked is the one read or sent (a link swapped in afterwards changes
nothing). Videos and posters are then streamed with the headers send_file gives a
path (ETag, ranges: what lets browsers seek); a log is read whole or its last lines.

Where the artifact store is not a folder (S3, hunyuan_core/artifacts.py), the same
answers come from the store: streamed with the object's ETag and Last-Modified and
single-range requests answered with 206 (each a ranged read of the object, never the
whole of it), or, with ARTIFACTS_PRESIGN_SECONDS, a 302 to a presigned URL.
"""

import codecs
import time
from datetime import datetime, timezone
from zlib import adler32

from flask import Response, current_app, redirect, request
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import is_resource_modified, parse_range_header
from werkzeug.wsgi import wrap_file

from hunyuan_core.artifacts import read_tail as read_stored_tail
from hunyuan_core.errors import NotFound
from hunyuan_core.regular_file import open_regular

# Finished files never change under their name; clients may cache them for an hour.
MAX_AGE_SECONDS = 3600
# Reading a log backwards in blocks of this size finds the last lines without reading it all.
_BLOCK = 64 * 1024


def open_job_file(path):
    """`(handle, stat)` of the regular file at `path`, or None: absent, a link, a directory, unreadable."""
    try:
        return open_regular(path)
    except OSError:
        return None


def send_job_file(path, mimetype, missing):
    """Stream the finished file at `path` (a video or poster), else NotFound with `missing`.

    Range and If-None-Match requests are answered by Werkzeug.
    """
    opened = open_job_file(path)
    if opened is None:
        raise NotFound(missing)
    handle, info = opened
    response = current_app.response_class(
        wrap_file(request.environ, handle), mimetype=mimetype, direct_passthrough=True
    )
    response.content_length = info.st_size
    response.last_modified = info.st_mtime
    response.cache_control.public = True
    response.cache_control.max_age = MAX_AGE_SECONDS
    response.expires = int(time.time() + MAX_AGE_SECONDS)
    response.set_etag(f"{info.st_mtime}-{info.st_size}-{adler32(str(path).encode()) & 0xFFFFFFFF}")
    try:
        return response.make_conditional(request.environ, accept_ranges=True, complete_length=info.st_size)
    except RequestedRangeNotSatisfiable:
        handle.close()
        raise


def send_log(path, lines=None):
    """The log at `path` as text/plain, never cached: all of it, or its last `lines` lines.

    It grows while the job runs, so each request reads it as it stands. No log yet
    (the runner has not started), or anything but a regular file in its place, is
    an empty log.
    """
    opened = open_job_file(path)
    body = b""
    if opened is not None:
        with opened[0] as handle:
            body = handle.read() if lines is None else read_tail(handle, lines)
    # Runner output is UTF-8 but may hold stray bytes (a killed write): never fail on them.
    text = body.decode("utf-8", errors="replace")
    return Response(text, mimetype="text/plain", headers={"Cache-Control": "no-cache"})


def read_tail(handle, lines):
    """The last `lines` lines of the open binary file `handle` (the whole file if it has fewer)."""
    handle.seek(0, 2)
    position = handle.tell()
    chunk = b""
    # One more newline than lines wanted, unless the file ends without one.
    while position > 0 and chunk.count(b"\n") <= lines:
        step = min(_BLOCK, position)
        position -= step
        handle.seek(position)
        chunk = handle.read(step) + chunk
    kept = chunk.splitlines(keepends=True)[-lines:]
    return b"".join(kept)


def send_artifact(artifacts, job_id, kind, mimetype, missing):
    """A job's video or poster from the artifact store, else NotFound with `missing`.

    A folder store answers exactly as send_job_file does on the file's path. Otherwise
    ARTIFACTS_PRESIGN_SECONDS > 0 answers 302 to a presigned URL (after checking the
    object is there, so a missing one is still this API's 404), and 0 streams it.
    """
    path = artifacts.local_path(job_id, kind)
    if path is not None:
        return send_job_file(path, mimetype, missing)
    info = artifacts.info(job_id, kind)
    if info is None:
        raise NotFound(missing)
    seconds = current_app.config.get("ARTIFACTS_PRESIGN_SECONDS", 0)
    if seconds > 0:
        response = redirect(artifacts.presigned_url(job_id, kind, seconds), 302)
        # The URL expires: a cached redirect would outlive it.
        response.headers["Cache-Control"] = "no-store"
        return response
    return _send_stored(artifacts, job_id, kind, info, mimetype, missing)


def _send_stored(artifacts, job_id, kind, info, mimetype, missing):
    """Stream a stored object: 304, 206 for one satisfiable range, 416 for others, else 200 with all of it."""
    environ = request.environ
    etag = info.etag or f"{info.modified}-{info.size}"
    modified = None if info.modified is None else datetime.fromtimestamp(info.modified, timezone.utc)
    if not is_resource_modified(environ, etag=etag, last_modified=modified):
        response = current_app.response_class(status=304)
        _cache_headers(response, etag, info.modified)
        return response
    start, end, status = 0, info.size, 200
    wanted = environ.get("HTTP_RANGE")
    # If-Range naming another version of the file: the whole file, as RFC 9110 says.
    current = "HTTP_IF_RANGE" not in environ or not is_resource_modified(
        environ, etag=etag, last_modified=modified, ignore_if_range=False)
    if wanted and info.size and current:
        parsed = parse_range_header(wanted)
        bounds = parsed.range_for_length(info.size) if parsed else None
        if bounds is None:
            raise RequestedRangeNotSatisfiable(length=info.size)
        (start, end), status = bounds, 206
    chunks = artifacts.read(job_id, kind, start, end)
    if chunks is None:
        raise NotFound(missing)  # removed between the HEAD and the GET
    response = current_app.response_class(chunks, status=status, mimetype=mimetype, direct_passthrough=True)
    response.content_length = end - start
    response.accept_ranges = "bytes"
    if status == 206:
        response.content_range = f"bytes {start}-{end - 1}/{info.size}"
    _cache_headers(response, etag, info.modified)
    return response


def _cache_headers(response, etag, modified):
    response.set_etag(etag)
    if modified is not None:
        response.last_modified = modified
    response.cache_control.public = True
    response.cache_control.max_age = MAX_AGE_SECONDS
    response.expires = int(time.time() + MAX_AGE_SECONDS)


def send_artifact_log(artifacts, job_id, lines=None, fallback=None):
    """A job's log from the artifact store, as send_log answers it: all of it or its last `lines` lines.

    A folder store is read exactly as send_log reads a path. From object storage the
    whole log is streamed (decoded piece by piece) and a tail takes a few ranged reads
    from its end. A log not (yet) in the store is read from `fallback`, the path where
    a runner on this host writes it while it runs, or is empty.
    """
    path = artifacts.local_path(job_id, "log")
    if path is not None:
        return send_log(path, lines)
    if lines is not None:
        body = read_stored_tail(artifacts, job_id, "log", lines)
        if body is not None:
            return _text(body.decode("utf-8", errors="replace"))
    else:
        chunks = artifacts.read(job_id, "log")
        if chunks is not None:
            return _text(_decoded(chunks))
    return send_log(fallback, lines) if fallback is not None else _text("")


def _decoded(chunks):
    """The UTF-8 text of byte `chunks`, a character split across two chunks decoded whole."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        for chunk in chunks:
            text = decoder.decode(chunk)
            if text:
                yield text
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail
    finally:
        close = getattr(chunks, "close", None)
        if close:
            close()


def _text(body):
    return Response(body, mimetype="text/plain", headers={"Cache-Control": "no-cache"})
