"""Serving the poster image (first frame, JPEG) of each finished video."""

from flask import send_file
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from ..job_record import is_job_id
from ..services import services

blp = Blueprint("posters", __name__, url_prefix="/api", description="Poster images of generated videos")


@blp.route("/posters/<filename>")
class Poster(MethodView):
    """GET /api/posters/{filename}"""

    @blp.response(200, content_type="image/jpeg", description="The first frame of the video, as a JPEG")
    @blp.alt_response(404, description="Poster not found")
    def get(self, filename):
        """Download a video's poster image

        Only names of the form `<job_id>.jpg` are served, from the videos folder
        alone; anything else (other folders, `..`, hidden or partial files) is a 404.
        """
        stem, _, extension = filename.partition(".")
        if extension != "jpg" or not is_job_id(stem):
            abort(404, message="Poster not found")
        path = services().store.poster_path(stem)
        if not path.is_file():
            abort(404, message="Poster not found")
        return send_file(path, mimetype="image/jpeg", conditional=True, etag=True, max_age=3600)
