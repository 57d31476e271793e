"""Swagger UI and ReDoc scripts served from an installed package, so /docs works offline.

flask-smorest's doc pages load their scripts from a CDN by default; a self-hosted
service may have no internet access. The files come from drf-spectacular-sidecar,
which packages both; it is only read from disk, never imported (it imports Django).
"""

import importlib.util
from pathlib import Path

from flask import Blueprint, abort, send_from_directory

ASSET_PACKAGE = "drf_spectacular_sidecar"
_FOLDERS = {"swagger-ui": "swagger-ui-dist", "redoc": "redoc/bundles"}


def _static_root():
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "static" / ASSET_PACKAGE


blp = Blueprint("docs_assets", __name__, url_prefix="/docs-assets")


@blp.route("/<kind>/<path:filename>")
def asset(kind, filename):
    """One Swagger UI or ReDoc file (send_from_directory refuses paths outside the folder)."""
    root = _static_root()
    if root is None or kind not in _FOLDERS:
        abort(404)
    return send_from_directory(root / _FOLDERS[kind], filename, max_age=86400)
