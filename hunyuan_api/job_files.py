"""Answering with a job's file (video, poster, log): every one opened the same safe way.

`open_job_file` is the one way a view opens a file of a job: a regular file only,
opened without following a symbolic link (hunyuan_core/regular_file.py), and the
file that was checked is the one read or sent (a link swapped in afterwards changes
nothing). Videos and posters are then streamed with the headers send_file gives a
path (ETag, ranges: what lets browsers seek); a log is read whole or its last lines.
"""

import time
from zlib import adler32

from flask import Response, current_app, request
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import wrap_file

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
