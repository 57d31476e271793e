"""Pages for people: the web playground at /ui, and the scripts of the API docs at /docs-assets.

Both are static files read from disk, with no build step and no CDN, so they work
on a host without internet access. The playground talks to the same JSON API as
any other client (it reads parameter ranges from GET /api/info), so it shows the
ranges this server is configured with. flask-smorest's doc pages (/docs, /redoc)
load their scripts from a CDN by default; here they come from drf-spectacular-sidecar,
which packages Swagger UI and ReDoc and is only read from disk, never imported (it
imports Django).
"""

import importlib.util
from pathlib import Path

from flask import Blueprint, abort, send_from_directory

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "ui"
# The page is small and changes with each release: revalidate instead of caching for a day.
UI_MAX_AGE_SECONDS = 60
ASSET_PACKAGE = "drf_spectacular_sidecar"
_FOLDERS = {"swagger-ui": "swagger-ui-dist", "redoc": "redoc/bundles"}

blp = Blueprint("pages", __name__)


@blp.route("/ui", strict_slashes=False)
def ui_index():
    """The playground page."""
    return send_from_directory(STATIC_DIR, "index.html", max_age=UI_MAX_AGE_SECONDS)


@blp.route("/ui/<path:filename>")
def ui_asset(filename):
    """One of the page's files (send_from_directory refuses paths outside the folder)."""
    return send_from_directory(STATIC_DIR, filename, max_age=UI_MAX_AGE_SECONDS)


def _static_root():
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "static" / ASSET_PACKAGE


@blp.route("/docs-assets/<kind>/<path:filename>")
def docs_asset(kind, filename):
    """One Swagger UI or ReDoc file (send_from_directory refuses paths outside the folder)."""
    root = _static_root()
    if root is None or kind not in _FOLDERS:
        abort(404)
    return send_from_directory(root / _FOLDERS[kind], filename, max_age=86400)
