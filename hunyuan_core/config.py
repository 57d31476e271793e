"""Service settings: defaults, overridden by environment variables of the same name.

Every variable is listed in docs/configuration.md. flask-smorest's own settings
(the API document's title, paths and URLs) live with the web service, in hunyuan_api/api.py.
"""

import hashlib
import os
import re
import socket
from urllib.parse import urlsplit

from . import artifacts, models_setting
from .heartbeat import DEFAULT_STALL_SECONDS
from .webhook_guard import parse_networks

# Region names: AWS's (us-east-1), R2's `auto`, whatever a self-hosted server calls its own.
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# The longest a SigV4 presigned URL may be valid.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
# A key's name ends up in job files and logs: plain words only.
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


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
    device = _choice("DEVICE", env.get("DEVICE", "auto"), ("auto", "cpu", "cuda"))
    compute = _choice("COMPUTE_DTYPE", env.get("COMPUTE_DTYPE", "auto"), ("auto", "float32", "bfloat16"))
    weights = _choice("WEIGHT_DTYPE", env.get("WEIGHT_DTYPE", "auto"), ("auto", "float32", "bfloat16", "float8"))
    cache = _choice("STEP_CACHE", env.get("STEP_CACHE", "none"), ("none", "first_block", "taylorseer"))
    steps = {
        name: _int(name, env.get(name, default), 1)
        for name, default in (("MIN_STEPS", "10"), ("DEFAULT_STEPS", "30"), ("MAX_STEPS", "50"))
    }
    if not steps["MIN_STEPS"] <= steps["DEFAULT_STEPS"] <= steps["MAX_STEPS"]:
        raise ValueError(f"need MIN_STEPS <= DEFAULT_STEPS <= MAX_STEPS, not {steps}")
    max_shift = _float("MAX_FLOW_SHIFT", env.get("MAX_FLOW_SHIFT", "10"), 0.01)
    default_shift = _float("DEFAULT_FLOW_SHIFT", env.get("DEFAULT_FLOW_SHIFT", "7"), 0.0)
    if default_shift > max_shift:
        raise ValueError(f"DEFAULT_FLOW_SHIFT ({default_shift}) is above MAX_FLOW_SHIFT ({max_shift})")
    settings = {
        "DATA_DIR": os.path.abspath(env.get("DATA_DIR", "data")),
        "MODEL_PATH": env.get("MODEL_PATH", "").strip(),
        # The models offered (hunyuan_core/models_setting.py, catalog.py); empty: MODEL_PATH, else the 13B demo model.
        "MODELS": models_setting.parse(env["MODELS"]) if env.get("MODELS", "").strip() else (),
        "MAX_WORKERS": max_workers,
        # 0: each runner takes cores / runners alive, re-checked as jobs come and go.
        "RUNNER_THREADS": _int("RUNNER_THREADS", env.get("RUNNER_THREADS", "0"), 0),
        "DEVICE": device,
        "JOB_TIMEOUT": _float("JOB_TIMEOUT", env.get("JOB_TIMEOUT", "0"), 0),
        # A runner whose progress heartbeat is quiet this long is stopped; 0 = never (hunyuan_core/heartbeat.py).
        "RUNNER_STALL_SECONDS": _float(
            "RUNNER_STALL_SECONDS", env.get("RUNNER_STALL_SECONDS", f"{DEFAULT_STALL_SECONDS:g}"), 0
        ),
        "SUPERVISOR_POLL_INTERVAL": _float("SUPERVISOR_POLL_INTERVAL", env.get("SUPERVISOR_POLL_INTERVAL", "1"), 0.05),
        # Seconds between checks of the job index against the job files (hunyuan_core/job_index.py).
        "INDEX_RECONCILE_SECONDS": _float("INDEX_RECONCILE_SECONDS", env.get("INDEX_RECONCILE_SECONDS", "30"), 0.1),
        "COMPUTE_DTYPE": compute,
        "WEIGHT_DTYPE": "float8_e4m3fn" if weights == "float8" else weights,
        "RUNNER_NICE": _int("RUNNER_NICE", env.get("RUNNER_NICE", "10"), 0),
        "STEP_CACHE": cache,
        "STEP_CACHE_THRESHOLD": _float("STEP_CACHE_THRESHOLD", env.get("STEP_CACHE_THRESHOLD", "0.05"), 0.0),
        "STEP_CACHE_INTERVAL": _int("STEP_CACHE_INTERVAL", env.get("STEP_CACHE_INTERVAL", "4"), 2),
        **steps,
        "DEFAULT_FLOW_SHIFT": default_shift,
        "MAX_FLOW_SHIFT": max_shift,
        # Live progress streams (GET /api/jobs/<id>/events); see docs/api.md, "Live progress".
        "EVENTS_POLL_INTERVAL": _float("EVENTS_POLL_INTERVAL", env.get("EVENTS_POLL_INTERVAL", "0.25"), 0.05),
        "EVENTS_KEEPALIVE": _float("EVENTS_KEEPALIVE", env.get("EVENTS_KEEPALIVE", "15"), 1),
        "EVENTS_MAX_SECONDS": _float("EVENTS_MAX_SECONDS", env.get("EVENTS_MAX_SECONDS", "300"), 1),
        "EVENTS_MAX_STREAMS": _events_max_streams(env),
        # Request bodies: JSON (and any other non-multipart body) vs multipart uploads; see hunyuan_api/body_limits.py.
        "MAX_BODY_KB": _int("MAX_BODY_KB", env.get("MAX_BODY_KB", "64"), 1),
        "MAX_UPLOAD_MB": _int("MAX_UPLOAD_MB", env.get("MAX_UPLOAD_MB", "32"), 1),
        **_protection_settings(env),
        **_cluster_settings(env),
        **_artifact_settings(env),
    }
    if settings["ARTIFACTS_URL"] and not settings["REDIS_URL"]:
        # One host keeps its files in DATA_DIR: its runners write there and nothing would publish them elsewhere.
        raise ValueError("ARTIFACTS_URL needs REDIS_URL: the artifact store is for many hosts (docs/scale-out.md); "
                         "one host keeps its videos in DATA_DIR")
    if settings["REDIS_URL"] and not settings["ARTIFACTS_URL"]:
        # Each host's own DATA_DIR would hold the videos it rendered, where no other host could serve them.
        raise ValueError("REDIS_URL needs ARTIFACTS_URL: where every host finds videos, posters, logs and input "
                         "images (file:///shared/folder or s3://bucket/prefix; docs/scale-out.md)")
    return settings


def _cluster_settings(env):
    """Settings of the many-host mode (docs/scale-out.md): Redis, the worker host's name, lost hosts."""
    url = env.get("REDIS_URL", "").strip()
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"REDIS_URL must start with redis://, rediss:// or unix://, not {url.split(':')[0]!r}")
    heartbeat_seconds = _float("HOST_HEARTBEAT_SECONDS", env.get("HOST_HEARTBEAT_SECONDS", "5"), 0.1)
    lost_seconds = _float("HOST_LOST_SECONDS", env.get("HOST_LOST_SECONDS", "30"), 1)
    if lost_seconds < 2 * heartbeat_seconds:
        raise ValueError(f"HOST_LOST_SECONDS ({lost_seconds:g}) must be at least twice HOST_HEARTBEAT_SECONDS "
                         f"({heartbeat_seconds:g}), or a slow heartbeat would look like a lost host")
    retries = _int("RETRY_LOST_JOBS", env.get("RETRY_LOST_JOBS", "0"), 0)
    if retries > 3:  # a job that brings its host down would otherwise take host after host with it
        raise ValueError(f"RETRY_LOST_JOBS must be at most 3, not {retries}")
    name = env.get("WORKER_NAME", "").strip() or socket.gethostname()
    if not _KEY_NAME.fullmatch(name):
        raise ValueError("WORKER_NAME must be 1 to 64 letters, digits, '_', '.', '@' or '-', starting with a "
                         f"letter or digit, not {name!r}")
    return {
        "REDIS_URL": url,
        "WORKER_NAME": name,
        "RETRY_LOST_JOBS": retries,
        "HOST_HEARTBEAT_SECONDS": heartbeat_seconds,
        "HOST_LOST_SECONDS": lost_seconds,
    }


def _protection_settings(env):
    """Settings of job control and protection: queue cap, disk floor, API keys, retention, webhooks."""
    keys = api_keys(env.get("API_KEY", ""))
    return {
        "MAX_QUEUE": _int("MAX_QUEUE", env.get("MAX_QUEUE", "100"), 0),
        "MIN_FREE_DISK_MB": _int("MIN_FREE_DISK_MB", env.get("MIN_FREE_DISK_MB", "1024"), 0),
        "API_KEY": keys,
        "ADMIN_API_KEYS": admin_key_names(env.get("ADMIN_API_KEYS", ""), keys),
        "VIDEO_TTL": _float("VIDEO_TTL", env.get("VIDEO_TTL", "0"), 0),
        "WEBHOOK_SECRET": env.get("WEBHOOK_SECRET", ""),
        "WEBHOOK_MAX_ATTEMPTS": _int("WEBHOOK_MAX_ATTEMPTS", env.get("WEBHOOK_MAX_ATTEMPTS", "5"), 1),
        "WEBHOOK_RETRY_SECONDS": _float("WEBHOOK_RETRY_SECONDS", env.get("WEBHOOK_RETRY_SECONDS", "2"), 0.01),
        "WEBHOOK_TIMEOUT": _float("WEBHOOK_TIMEOUT", env.get("WEBHOOK_TIMEOUT", "10"), 0.1),
        # Empty: webhooks reach public addresses only (see webhook_guard).
        "WEBHOOK_ALLOWED_NETWORKS": parse_networks(
            "WEBHOOK_ALLOWED_NETWORKS", env.get("WEBHOOK_ALLOWED_NETWORKS", "")
        ),
        "WEBHOOK_THREADS": _int("WEBHOOK_THREADS", env.get("WEBHOOK_THREADS", "2"), 1),
    }


def _artifact_settings(env):
    """Where videos, posters, logs and input images are kept (hunyuan_core/artifacts.py; docs/artifacts.md)."""
    url = env.get("ARTIFACTS_URL", "").strip()
    artifacts.parse_url(url)  # a malformed value stops the server now, naming the variable
    endpoint = env.get("ARTIFACTS_ENDPOINT_URL", "").strip()
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc or parts.query:
            # Not echoed when it may hold credentials.
            shown = repr(endpoint) if "@" not in endpoint else "a URL with '@'"
            raise ValueError(f"ARTIFACTS_ENDPOINT_URL must be an http:// or https:// URL, not {shown}")
    region = env.get("ARTIFACTS_REGION", "").strip()
    if region and not _REGION.fullmatch(region):
        raise ValueError(f"ARTIFACTS_REGION must be a region name such as us-east-1 or auto, not {region!r}")
    presign = _int("ARTIFACTS_PRESIGN_SECONDS", env.get("ARTIFACTS_PRESIGN_SECONDS", "0"), 0)
    if presign > MAX_PRESIGN_SECONDS:
        raise ValueError(f"ARTIFACTS_PRESIGN_SECONDS must be at most {MAX_PRESIGN_SECONDS} (7 days, "
                         f"the longest a SigV4 signature lasts), not {presign}")
    return {
        "ARTIFACTS_URL": url,
        "ARTIFACTS_ENDPOINT_URL": endpoint,
        "ARTIFACTS_REGION": region,
        "ARTIFACTS_PRESIGN_SECONDS": presign,
    }


def plain_key_name(key):
    """The name of a key given without one: a short digest, so the name never reveals the key."""
    return "key-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def api_keys(value):
    """Parse API_KEY (`name:key` or plain `key` entries, comma-separated) into {name: key}.

    The empty string means no keys (authentication off). Anything else that holds no
    key, an entry with an empty or malformed name or key, a name or a key given twice
    all raise ValueError naming API_KEY; messages never repeat a key.
    """
    if value == "":
        return {}
    keys = {}
    for number, entry in enumerate(value.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        name, colon, key = (part.strip() for part in entry.partition(":"))
        if not colon:
            name, key = plain_key_name(name), name
        elif not key:
            raise ValueError(f"API_KEY: entry {number} has a name but an empty key (write name:key)")
        elif not _KEY_NAME.fullmatch(name):
            raise ValueError(f"API_KEY: entry {number}: the name before ':' must be 1 to 64 letters, digits, "
                             "'_', '.', '@' or '-', starting with a letter or digit")
        if key in keys.values():
            raise ValueError(f"API_KEY: entry {number} repeats a key given earlier (each key needs one name)")
        if name in keys:
            raise ValueError(f"API_KEY: the name {name!r} is given twice")
        keys[name] = key
    if not keys:
        raise ValueError(f"API_KEY is set but holds no key ({value!r}); unset it to run without keys")
    return keys


def admin_key_names(value, keys):
    """Parse ADMIN_API_KEYS: comma-separated names of keys in API_KEY that see every job."""
    if value == "":
        return frozenset()
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise ValueError(f"ADMIN_API_KEYS is set but names no key ({value!r})")
    if not keys:
        raise ValueError("ADMIN_API_KEYS names keys, but API_KEY is not set")
    for number, name in enumerate(names, start=1):
        if name not in keys:
            # Not echoed: a key pasted here by mistake must not reach the log.
            raise ValueError(f"ADMIN_API_KEYS: entry {number} is not the name of a key in API_KEY "
                             f"(names: {', '.join(keys)})")
    return frozenset(names)


def _events_max_streams(env):
    """Open event streams allowed per web worker: fewer than its threads, so the API always has one."""
    web_threads = _int("WEB_THREADS", env.get("WEB_THREADS", "8"), 1)
    streams = _int("EVENTS_MAX_STREAMS", env.get("EVENTS_MAX_STREAMS", str(max(web_threads // 2, 1))), 1)
    if web_threads > 1 and streams >= web_threads:
        raise ValueError(f"EVENTS_MAX_STREAMS ({streams}) must be below WEB_THREADS ({web_threads})")
    return streams


def runner_runtime(settings):
    """What every runner is told about how to run (recorded in each job's `runner.runtime`)."""
    return {
        "device": settings["DEVICE"],
        "threads": settings["RUNNER_THREADS"],
        "compute_dtype": settings["COMPUTE_DTYPE"],
        "weight_dtype": settings["WEIGHT_DTYPE"],
        "nice": settings["RUNNER_NICE"],
        "max_workers": settings["MAX_WORKERS"],
        "step_cache": {
            "kind": settings["STEP_CACHE"],
            "threshold": settings["STEP_CACHE_THRESHOLD"],
            "interval": settings["STEP_CACHE_INTERVAL"],
        },
    }


def _choice(name, value, allowed):
    value = value.strip().lower()
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value

