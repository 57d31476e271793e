"""The web playground at /ui: static HTML, CSS and JavaScript shipped inside the package.

No build step and no CDN: the page talks to the same JSON API as any other client
(it reads parameter ranges from GET /api/info), so it works on a host without
internet access and shows the ranges this server is configured with.
"""

from pathlib import Path

from flask import Blueprint, send_from_directory

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "ui"
# The page is small and changes with each release: revalidate instead of caching for a day.
MAX_AGE_SECONDS = 60

blp = Blueprint("ui", __name__, url_prefix="/ui")


@blp.route("", strict_slashes=False)
def index():
    """The playground page."""
    return send_from_directory(STATIC_DIR, "index.html", max_age=MAX_AGE_SECONDS)


@blp.route("/<path:filename>")
def asset(filename):
    """One of the page's files (send_from_directory refuses paths outside the folder)."""
    return send_from_directory(STATIC_DIR, filename, max_age=MAX_AGE_SECONDS)
