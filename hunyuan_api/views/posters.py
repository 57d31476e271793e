"""Serving the poster image (first frame, JPEG) of each finished video."""

from flask.views import MethodView
from flask_smorest import Blueprint

from ..services import services
from .job_files import send_job_file

blp = Blueprint("posters", __name__, url_prefix="/api", description="Poster images of generated videos")


@blp.route("/posters/<filename>")
class Poster(MethodView):
    """GET /api/posters/{filename}"""

    @blp.response(200, content_type="image/jpeg", description="The first frame of the video, as a JPEG")
    @blp.alt_response(404, description="Poster not found")
    def get(self, filename):
        """Download a video's poster image

        Only names of the form `<job_id>.jpg` are served, from the videos folder
        alone, and only the poster a completed job's record names, as a regular file
        (never through a symbolic link); anything else (other folders, `..`, hidden
        or partial files) is a 404.
        """
        return send_job_file(filename, "jpg", "poster", services().store.poster_path, "image/jpeg", "Poster not found")
