"""The service itself: index, health and capabilities."""

import os

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from hunyuan_core import __version__, families, hosts, model_source, params, run_plan
from hunyuan_core.config import runner_runtime
from hunyuan_core.job_record import JobStatus
from hunyuan_core.timing_stats import TimingStats

from .. import body_limits
from ..schemas.service import HealthSchema
from ..services import services

blp = Blueprint("general", __name__, description="Service information")

ENDPOINTS = {
    "generate": "POST /api/generate",
    "status": "GET /api/status/{job_id}",
    "video": "GET /api/videos/{filename}",
    "jobs": "GET /api/jobs?status=&limit=",
    "delete": "DELETE /api/jobs/{job_id}",
    "events": "GET /api/jobs/{job_id}/events (Server-Sent Events)",
    "log": "GET /api/jobs/{job_id}/log?tail=",
    "cancel": "POST /api/jobs/{job_id}/cancel",
    "poster": "GET /api/posters/{job_id}.jpg",
    "ui": "GET /ui (web playground)",
    "health": "GET /health",
    "metrics": "GET /metrics (Prometheus)",
    "info": "GET /api/info",
    "docs": "GET /docs (Swagger UI), GET /redoc (ReDoc), GET /openapi.json",
}


def _model_summary(state):
    summary = {key: state[key] for key in ("name", "demo", "ready")}
    if state["demo"]:
        summary["note"] = "Demo model with random weights: videos are noise. Set MODEL_PATH for real weights."
    return summary


@blp.route("/")
class Index(MethodView):
    """GET /"""

    @blp.response(200)
    def get(self):
        """API information and where to find the documentation"""
        return {
            "name": current_app.config["API_TITLE"],
            "version": __version__,
            "docs": "/docs",
            "redoc": "/redoc",
            "openapi": "/openapi.json",
            "endpoints": ENDPOINTS,
            "model": _model_summary(model_source.describe(services().model)),
        }


@blp.route("/health")
class Health(MethodView):
    """GET /health"""

    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="The data folder cannot be written")
    def get(self):
        """Health check: model state, job counts and runner slots

        `status` is "healthy" when jobs can be submitted and run, "starting" while
        the model is not ready yet, and "unhealthy" (with HTTP 503) when the data
        folder cannot be written. `model_loaded` means the model is ready for a
        runner to load: each job loads it in its own process. No answer holds a
        path (this route is open without a key); /api/info has them.
        """
        svc = services()
        by_status, unreadable = svc.store.index.counts()  # from the index: no job file is read
        model = model_source.describe(svc.model, reveal_paths=False)
        models = [served.describe(reveal_paths=False) for served in svc.models.models]
        all_ready = all(state["ready"] for state in models)
        counts = {status: by_status.get(status.value, 0) for status in JobStatus}
        problems = []
        writable = os.access(svc.store.jobs_dir, os.W_OK)
        if not writable:
            problems.append("the data folder (DATA_DIR) is not writable")
        for state in models:
            if not state["ready"]:
                # One model: its problem as it always read; several: which model it is.
                problems.append(state["problem"] if len(models) == 1 else f"{state['served_as']}: {state['problem']}")
        if unreadable:
            problems.append(f"{unreadable} job file(s) cannot be read; see GET /api/jobs")
        # Healthy only when every configured model can take jobs: a deploy waits for all of them.
        status = "unhealthy" if not writable else ("healthy" if all_ready else "starting")
        body = {
            "status": status,
            "model_loaded": all_ready,
            "active_jobs": counts[JobStatus.PROCESSING],
            "queued_jobs": counts[JobStatus.QUEUED],
            "total_jobs": sum(counts.values()) + unreadable,
            "running_runners": sum(1 for job in svc.store.index.runners() if svc.store.runner_alive(job)),
            "max_workers": (hosts.capacity(svc.store, 0) if svc.store.distributed
                            else current_app.config["MAX_WORKERS"]),
            "unreadable_jobs": unreadable,
            "model": model,
            "models": models,
            "problems": problems,
        }
        return body, (503 if status == "unhealthy" else 200)


@blp.route("/api/info")
class Info(MethodView):
    """GET /api/info"""

    @blp.response(200)
    def get(self):
        """API capabilities: parameters with defaults and ranges, size rules, limits, model"""
        config = current_app.config
        model = model_source.describe(services().model)
        return {
            "name": config["API_TITLE"],
            "version": __version__,
            "model": model,
            "using_real_weights": "Set MODEL_PATH to a local diffusers-format HunyuanVideo folder "
            "(e.g. a copy of hunyuanvideo-community/HunyuanVideo) and restart.",
            "parameters": params.describe(config["PARAMETERS"]),
            "prompt": {"required": True, "max_length": params.MAX_PROMPT_CHARS},
            "seed": {"minimum": 0, "maximum": params.MAX_SEED, "default": None, "note": "null draws a random seed"},
            "size_rules": {
                "width_height_multiple": params.SIZE_MULTIPLE,
                "video_length": "4k+1 frames",
                "rounding": "to the nearest valid value, halves up; the job's params and adjustments show it",
            },
            "limits": {
                "max_workers": config["MAX_WORKERS"],
                "queue_size": config["MAX_QUEUE"] or "unlimited",
                "job_timeout_seconds": config["JOB_TIMEOUT"] or None,
                "runner_stall_seconds": config["RUNNER_STALL_SECONDS"] or None,
                "min_free_disk_mb": config["MIN_FREE_DISK_MB"] or None,
                "video_ttl_seconds": config["VIDEO_TTL"] or None,
                "api_key_required": bool(config["API_KEY"]),
                # Bodies over these get 413 before they are read (MAX_BODY_KB, MAX_UPLOAD_MB).
                "max_body_bytes": body_limits.limits(config)[0],
                "max_upload_bytes": body_limits.limits(config)[1],
            },
            "runtime": {
                "device": config["DEVICE"],
                "threads_per_runner": config["RUNNER_THREADS"] or "cores / runners alive",
                "nice": config["RUNNER_NICE"],
                "step_cache": config["STEP_CACHE"],
            },
            "precision": _precision_plan(services().models.default, config) if model["ready"] else None,
            "models": [_model_info(served, config) for served in services().models.models],
            "calibration": _calibration_summary(model["name"]),
            "video": {"container": "mp4", "codec": "h264", "pix_fmt": "yuv420p", "faststart": True},
            "endpoints": ENDPOINTS,
            **_cluster_info(services().store),
        }


def _cluster_info(store):
    """The many-host mode's worker hosts (REDIS_URL), as they announce themselves; nothing on one host."""
    if not store.distributed:
        return {}
    listed = hosts.hosts(store)
    up = [host for host in listed if host["up"]]
    return {"cluster": {
        "mode": "redis",
        "worker_hosts": [{key: host.get(key) for key in ("name", "up", "slots", "models", "device", "running",
                                                         "seen_at")} for host in listed],
        "worker_hosts_up": len(up),
        "slots": sum(int(host.get("slots") or 0) for host in up),
        "artifacts": store.artifacts.describe(),
    }}


def _calibration_summary(model_name):
    """When and where this host was measured for the model (None before the first calibration)."""
    calibration = TimingStats(services().store.root, model_name).calibration()
    if not calibration:
        return None
    return {key: calibration.get(key) for key in ("measured_at", "cpu", "cores")} | {
        "threads_measured": sorted(int(t) for t in calibration.get("by_threads", {}))
    }


def _model_info(served, config):
    """One model as GET /api/info lists it: what it is, its ranges, size rules and precision plan."""
    state = served.describe()
    return {
        "name": served.name,
        "family": served.family.name,
        "task": served.family.task,
        "takes_image": served.family.takes_image,
        "demo": state["demo"],
        "ready": state["ready"],
        "problem": state["problem"],
        "default": served.default,
        "description": state["description"],
        "parameters": params.describe(served.parameters),
        "unused_fields": list(served.family.unused_fields),
        "size_rules": _size_rules(served, state["ready"]),
        "precision": _precision_plan(served, config) if state["ready"] else None,
    }


def _size_rules(served, ready):
    """How a model's sizes are chosen: free multiples (13B) or buckets of its resolution class (1.5)."""
    family = served.family
    rules = {
        "width_height_multiple": family.size_multiple,
        "video_length": f"{family.frame_step}k+1 frames",
        "sizes": "buckets" if family.bucketed else "multiples",
    }
    if family.takes_image:
        rules["from_image"] = "the output takes the image's aspect ratio: the nearest size bucket"
    if family.bucketed and ready:
        target = families.target_size(served.source.path)
        rules["target_size"] = target
        rules["buckets"] = {
            ratio: "{}x{}".format(*families.nearest_bucket(w, h, target, family.size_multiple))
            for ratio, (w, h) in (("16:9", (16, 9)), ("9:16", (9, 16)), ("1:1", (1, 1)))
        }
    return rules


def _precision_plan(served, config):
    """The storage plan of a model for its default request (640x480x61 for the API document's model).

    The one place /api/info asks for a plan (hunyuan_core/run_plan.py); None when
    the model's folder cannot be planned for (a family the run plan does not know yet).
    """
    table = served.parameters
    default = {p.name: p.default for p in table} | {"prompt": "A cat walks on the grass, realistic style."}
    try:
        described = run_plan.describe(str(served.source.path), default, runner_runtime(config))
    except (KeyError, TypeError):
        return None  # a family the run plan cannot price yet: no plan rather than a failed /api/info
    described["for_request"] = (f"the default request ({default['width']}x{default['height']}, "
                                f"{default['video_length']} frames)")
    return described
