"""Serving finished videos, with HTTP Range support so browsers can seek."""

from flask.views import MethodView
from flask_smorest import Blueprint

from ..services import services
from .job_files import send_job_file

blp = Blueprint("videos", __name__, url_prefix="/api", description="Generated videos")


@blp.route("/videos/<filename>")
class Video(MethodView):
    """GET /api/videos/{filename}"""

    @blp.response(200, content_type="video/mp4", description="The MP4 (Range requests answered with 206)")
    @blp.alt_response(404, description="Video not found")
    def get(self, filename):
        """Download or stream a generated video

        Only names of the form `<job_id>.mp4` are served, from the videos folder
        alone, and only the video a completed job's record names, as a regular file
        (never through a symbolic link); anything else (other folders, `..`, hidden
        or partial files) is a 404.
        """
        return send_job_file(filename, "mp4", "video", services().store.video_path, "video/mp4", "Video not found")
