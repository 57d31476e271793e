"""Files: finished videos (with HTTP Range support, so browsers can seek) and their poster images.

They come from the artifact store (hunyuan_core/artifacts.py): the data folder by default.
"""

from flask.views import MethodView
from flask_smorest import Blueprint

from hunyuan_core import jobs

from .. import auth
from ..job_files import send_artifact
from ..services import services

blp = Blueprint("files", __name__, url_prefix="/api", description="Generated videos and their poster images")


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
        found = services()
        job_id = jobs.find_served_file(found.store, filename, "mp4", "video", auth.access(), "Video not found")
        return send_artifact(found.artifacts, job_id, "video", "video/mp4", "Video not found")


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
        found = services()
        job_id = jobs.find_served_file(found.store, filename, "jpg", "poster", auth.access(), "Poster not found")
        return send_artifact(found.artifacts, job_id, "poster", "image/jpeg", "Poster not found")
