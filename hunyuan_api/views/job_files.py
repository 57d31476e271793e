"""Serving a job's files (video, poster) by name, refusing anything that is not one."""

import time
from zlib import adler32

from flask import current_app, request
from flask_smorest import abort
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import wrap_file

from hunyuan_core.job_record import JobStatus, is_job_id
from hunyuan_core.job_store import JobFileUnreadable, JobNotFound
from hunyuan_core.regular_file import open_regular

from .. import auth
from ..services import services

# Finished files never change under their name; clients may cache them for an hour.
MAX_AGE_SECONDS = 3600


def send_job_file(filename, extension, field, path_for, mimetype, missing):
    """Send `<job_id>.<extension>` from the file `path_for(job_id)` names, else a 404 saying `missing`.

    Only names of that exact form are looked up, so `..`, other folders, hidden or
    partial files never reach the file system. The file is served only if its job
    exists, is readable and completed, and its record's `field` (video or poster)
    names that file: a file dropped into videos/ is not served by its name alone.
    With API keys, another key's job answers the same 404. It must be a regular file, opened without following a symbolic link, and the
    file that was checked is the one sent (a link swapped in afterwards changes
    nothing). Range and If-None-Match requests are answered by Werkzeug, which is
    what lets browsers seek.
    """
    stem, _, given = filename.partition(".")
    if given != extension or not is_job_id(stem):
        abort(404, message=missing)
    try:
        job = services().store.get(stem)
    except (JobNotFound, JobFileUnreadable):
        abort(404, message=missing)
    if not auth.may_see(job):
        abort(404, message=missing)
    entry = job.get(field)
    if job["status"] != JobStatus.COMPLETED.value or not entry or entry.get("file") != filename:
        abort(404, message=missing)
    path = path_for(stem)
    try:
        handle, info = open_regular(path)
    except OSError:  # absent, a link, a directory, unreadable: never served
        abort(404, message=missing)
    return _send_open_file(handle, info, str(path), mimetype)


def _send_open_file(handle, info, path, mimetype):
    """An answer streaming the open `handle`, with the headers send_file gives a path (ETag, ranges)."""
    response = current_app.response_class(
        wrap_file(request.environ, handle), mimetype=mimetype, direct_passthrough=True
    )
    response.content_length = info.st_size
    response.last_modified = info.st_mtime
    response.cache_control.public = True
    response.cache_control.max_age = MAX_AGE_SECONDS
    response.expires = int(time.time() + MAX_AGE_SECONDS)
    response.set_etag(f"{info.st_mtime}-{info.st_size}-{adler32(path.encode()) & 0xFFFFFFFF}")
    try:
        return response.make_conditional(request.environ, accept_ranges=True, complete_length=info.st_size)
    except RequestedRangeNotSatisfiable:
        handle.close()
        raise
