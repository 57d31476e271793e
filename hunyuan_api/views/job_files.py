"""Serving a job's files (video, poster) by name, refusing anything that is not one."""

from flask import send_file
from flask_smorest import abort

from ..job_record import is_job_id
from .job_lookup import require_access


def send_job_file(filename, extension, path_for, mimetype, missing):
    """Send `<job_id>.<extension>` from the file `path_for(job_id)` names, else a 404 saying `missing`.

    Only names of that exact form are looked up, so `..`, other folders, hidden or
    partial files never reach the file system. Another API key's job's files answer
    the same 404. Range and If-None-Match requests are answered by Werkzeug
    (`conditional=True`), which is what lets browsers seek.
    """
    stem, _, given = filename.partition(".")
    if given != extension or not is_job_id(stem):
        abort(404, message=missing)
    require_access(stem, missing)
    path = path_for(stem)
    if not path.is_file():
        abort(404, message=missing)
    return send_file(path, mimetype=mimetype, conditional=True, etag=True, max_age=3600)
