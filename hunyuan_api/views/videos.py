"""Serving finished videos, with HTTP Range support so browsers can seek."""

from flask import send_file
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from ..job_record import is_job_id
from ..services import services

blp = Blueprint("videos", __name__, url_prefix="/api", description="Generated videos")


@blp.route("/videos/<filename>")
class Video(MethodView):
    """GET /api/videos/{filename}"""

    @blp.response(200, content_type="video/mp4", description="The MP4 (Range requests answered with 206)")
    @blp.alt_response(404, description="Video not found")
    def get(self, filename):
        """Download or stream a generated video

        Only names of the form `<job_id>.mp4` are served, from the videos folder
        alone; anything else (other folders, `..`, hidden or partial files) is a 404.
        """
        stem, _, extension = filename.partition(".")
        if extension != "mp4" or not is_job_id(stem):
            abort(404, message="Video not found")
        path = services().store.video_path(stem)
        if not path.is_file():
            abort(404, message="Video not found")
        # conditional=True makes Werkzeug answer Range and If-None-Match requests.
        return send_file(path, mimetype="video/mp4", conditional=True, etag=True, max_age=3600)
