"""gunicorn settings: `gunicorn -c python:hunyuan_api.gunicorn_conf wsgi:app`.

Each setting can be overridden by the environment variable named beside it, or
on gunicorn's command line.
"""

import os
import subprocess
import sys
import time

from hunyuan_api import web_worker
from hunyuan_core import PROJECT_ROOT, catalog, model_source
from hunyuan_core import config as service_settings  # not "config": gunicorn reads that name as a setting
from hunyuan_core.job_store import JobStore

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '10000')}"
# Web workers only validate, read files and start runners; generation happens in
# runner processes, so a few workers with a few threads each are plenty.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threaded workers: an open event stream (GET /api/jobs/<id>/events) holds one thread,
# not a whole process, and at most EVENTS_MAX_STREAMS of a worker's threads (hunyuan_core/config.py
# keeps that below WEB_THREADS), so streams never starve the rest of the API.
# gthread, except that neither a thread nor the main loop ever waits for a slow client:
# request heads are collected in the worker's selector and must arrive within
# WEB_HEADER_TIMEOUT seconds (see web_worker.py), so slow clients cannot pin the threads.
worker_class = "hunyuan_api.web_worker.SlowClientSafeWorker"
threads = int(os.environ.get("WEB_THREADS", "8"))
# Checked here so a malformed value stops the server at start; each worker reads it again.
web_worker.header_timeout_from_environ()
# Video downloads can take a while on slow links.
timeout = int(os.environ.get("WEB_TIMEOUT", "120"))
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")


def on_starting(server):
    """Before workers start: check the settings, build the demo models, calibrate the host for each model.

    Building them here (once, in a subprocess each) means the port only opens when jobs
    can run, so a client that starts right away never meets the 503. Calibrating
    here (a few seconds, once per model and host) makes even the first job's
    estimate a measured one.
    """
    try:
        settings = service_settings.from_environ()
        models = catalog.from_settings(settings)  # reads each folder's family: an unknown one stops here
    except ValueError as exc:
        # A bad setting (e.g. an API_KEY that holds no key) must stop the server, not weaken it.
        server.log.error("invalid configuration: %s", exc)
        sys.exit(1)
    for served in models.models:
        if served.source.embedded:
            server.log.info("building the demo model %s in %s (first start only)", served.name, served.source.path)
    model_source.Builders(models.sources()).build_now()
    for served in models.models:
        server.log.info("model %s: %s", served.name, served.source.path)
    if settings["REDIS_URL"]:
        # No job files to index, and no calibration: this host's cores render nothing (each worker host
        # measures itself at its first job).
        server.log.info("jobs in Redis (REDIS_URL): this web host keeps no job state and runs no runners; "
                        "worker hosts (hunyuan-worker) render")
        return
    # The job index is built (when missing) here, once, before workers fork and with no worker timeout running.
    started = time.monotonic()
    index = JobStore(settings["DATA_DIR"]).index
    index.open()
    index.close()
    server.log.info("job index ready in %.2f s", time.monotonic() - started)
    for served in models.models:
        _calibrate(server, served, settings)


def _calibrate(server, served, settings):
    """Measure this host for one model (once per model and host; runner/calibrate.py skips a current one)."""
    if not (served.source.path / "model_index.json").is_file():
        return
    command = [sys.executable, "-m", "runner.calibrate", str(served.source.path), "--data-dir",
               settings["DATA_DIR"], "--max-workers", str(settings["MAX_WORKERS"])]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    # A failed calibration only costs estimate accuracy (priors are used): say so, do not stop.
    server.log.info("calibration of %s: %s", served.name,
                    (result.stdout.strip() or result.stderr.strip().splitlines()[-1:]))
