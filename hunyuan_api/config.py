"""Service settings: defaults, overridden by environment variables of the same name.

Every variable is listed in the README's configuration table.
"""

import os

from . import __version__


def _int(name, value, minimum):
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {number}")
    return number


def _float(name, value, minimum):
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {number}")
    return number


def from_environ(environ=None):
    """Read the service settings from `environ` (default: the process environment).

    Raises ValueError naming the variable when a value is malformed, so a typo
    stops the server at start instead of surfacing as a strange job failure.
    """
    env = os.environ if environ is None else environ
    max_workers = _int("MAX_WORKERS", env.get("MAX_WORKERS", "2"), 1)
    device = env.get("DEVICE", "auto").strip().lower()
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"DEVICE must be auto, cpu or cuda, not {device!r}")
    return {
        "DATA_DIR": os.path.abspath(env.get("DATA_DIR", "data")),
        "MODEL_PATH": env.get("MODEL_PATH", "").strip(),
        "MAX_WORKERS": max_workers,
        # 0: each runner takes cores / runners alive, re-checked as jobs come and go.
        "RUNNER_THREADS": _int("RUNNER_THREADS", env.get("RUNNER_THREADS", "0"), 0),
        "DEVICE": device,
        "JOB_TIMEOUT": _float("JOB_TIMEOUT", env.get("JOB_TIMEOUT", "0"), 0),
        "SUPERVISOR_POLL_INTERVAL": _float("SUPERVISOR_POLL_INTERVAL", env.get("SUPERVISOR_POLL_INTERVAL", "1"), 0.05),
    }


# flask-smorest's OpenAPI settings; the docs' scripts are served locally (see views/docs_assets.py).
API_SETTINGS = {
    "API_TITLE": "HunyuanVideo REST API",
    "API_VERSION": __version__,
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "/docs",
    "OPENAPI_SWAGGER_UI_URL": "/docs-assets/swagger-ui/",
    "OPENAPI_REDOC_PATH": "/redoc",
    "OPENAPI_REDOC_URL": "/docs-assets/redoc/redoc.standalone.js",
    "API_SPEC_OPTIONS": {
        "info": {
            "description": (
                "Text-to-video generation with Tencent's HunyuanVideo. Submit a job with POST /api/generate, "
                "poll GET /api/status/{job_id}, then download the MP4 from the video_url it returns. "
                "Every error body carries a human-readable `detail`."
            )
        }
    },
}
