"""HunyuanVideo REST API: the web service (Flask + flask-smorest), the web face of `hunyuan_core`.

This package holds only what speaks HTTP: the app factory, the Api and its error
answers, authentication, body limits, schemas, views and the gunicorn worker. The
job store, supervisor, settings and estimates it uses live in `hunyuan_core`.
It never imports torch or diffusers: generation happens in runner processes (see
the `runner` package), so web workers stay small and fast.
"""

import logging

from flask import Flask

from hunyuan_core import __version__, artifacts, catalog, cluster, config, model_source, stores  # noqa: F401  (__version__)
from hunyuan_core.submission import Submitter
from hunyuan_core.supervisor import Supervisor

from . import api as api_errors
from . import auth, body_limits, openai_errors
from .api import API_SETTINGS, Api
from .schemas.openai_videos import VideoCreateFormSchema, VideoCreateSchema
from .schemas.submission import GenerateFormRequestSchema, GenerateRequestSchema
from .services import Services


def create_app(test_config=None):
    """Create the app: settings from the environment (or `test_config`), store, supervisor, routes.

    With SUPERVISOR_AUTOSTART (the default) the app starts its dispatch thread; tests
    that drive the supervisor themselves turn it off.
    """
    app = Flask(__name__)
    app.config.from_mapping(API_SETTINGS)
    app.config["SUPERVISOR_AUTOSTART"] = True
    app.config["WORK_COMMAND"] = None
    if test_config is None:
        app.config.update(config.from_environ())
    else:
        app.config.update(config.from_environ(test_config.get("ENVIRON", {})))
        app.config.update(test_config)

    models = catalog.from_settings(app.config)
    # The default model's table: the declared request schema and OpenAPI document show its ranges.
    app.config["PARAMETERS"] = models.default.parameters
    # A JSON body may then carry an image as a data: URL, so its size limit is raised (body_limits.py).
    app.config["ACCEPTS_IMAGES"] = any(m.family.takes_image for m in models.models)
    store = stores.open_store(app.config)
    store.index.reconcile_seconds = app.config["INDEX_RECONCILE_SECONDS"]
    store.index.open()  # built from the job files now if missing, not on the first request
    model = models.default.source
    builder = model_source.Builders(models.sources())
    housekeeping = _housekeeping(store, app.config)
    supervisor = Supervisor(
        store,
        max_workers=app.config["MAX_WORKERS"],
        runtime=config.runner_runtime(app.config),
        work_command=app.config["WORK_COMMAND"],
        job_timeout=app.config["JOB_TIMEOUT"],
        stall_seconds=app.config["RUNNER_STALL_SECONDS"],
        poll_interval=app.config["SUPERVISOR_POLL_INTERVAL"],
        model_builder=builder,
        housekeeping=housekeeping,
    )
    # Many hosts (REDIS_URL): a job goes to the worker hosts through RQ, and this host only takes its turn
    # at the cluster's rounds (lost hosts, missing dispatches, housekeeping); one host: its supervisor runs it.
    ticker = None
    if store.distributed:
        ticker = cluster.ClusterTick(store, app.config["HOST_LOST_SECONDS"], app.config["RETRY_LOST_JOBS"],
                                     housekeeping=housekeeping)
    submitter = Submitter(store, models, None if store.distributed else supervisor.wake,
                          max_queue=app.config["MAX_QUEUE"], min_free_disk_mb=app.config["MIN_FREE_DISK_MB"],
                          dispatch=(lambda job: cluster.dispatch_new(store, job)) if store.distributed else None)
    app.extensions["hunyuan_api"] = Services(store=store, model=model, builder=builder, supervisor=supervisor,
                                             submitter=submitter, models=models, cluster=ticker,
                                             artifacts=store.artifacts if store.distributed
                                             else artifacts.open_artifacts(app.config))

    from .views import control, events, files, jobs, logs, metrics, openai_videos, pages, service

    api = Api(app)
    api_errors.install(app, api)
    auth.install(app, api)
    body_limits.install(app, api)
    openai_errors.install_docs(api)
    api.register_blueprint(service.blp)
    api.register_blueprint(jobs.blp)
    api.register_blueprint(files.blp)
    api.register_blueprint(events.blp)
    api.register_blueprint(logs.blp)
    api.register_blueprint(metrics.blp)
    api.register_blueprint(control.blp)
    api.register_blueprint(openai_videos.blp)
    app.register_blueprint(pages.blp)
    api.spec.components.schema("GenerateRequest", schema=GenerateRequestSchema)
    api.spec.components.schema("GenerateFormRequest", schema=GenerateFormRequestSchema)
    api.spec.components.schema("VideoCreate", schema=VideoCreateSchema)
    api.spec.components.schema("VideoCreateForm", schema=VideoCreateFormSchema)
    _document_configured_ranges(api, app.config["PARAMETERS"])

    if app.config["SUPERVISOR_AUTOSTART"]:
        (ticker or supervisor).start()
    logging.getLogger(__name__).info(
        "serving with data folder %s, models %s, MAX_WORKERS=%s", store.root,
        ", ".join(f"{m.name} ({m.source.path})" for m in models.models), app.config["MAX_WORKERS"]
    )
    return app


def _housekeeping(store, settings):
    """Retention and webhook delivery for finished jobs, run by the supervisor's ticks."""
    from hunyuan_core.housekeeping import Housekeeping
    from hunyuan_core.job_views import JobViewer
    from hunyuan_core.webhooks import WebhookSender

    def describe(job):
        return JobViewer(store, settings["MAX_WORKERS"], settings["RUNNER_THREADS"]).describe(job)

    sender = WebhookSender(
        store,
        describe,
        secret=settings["WEBHOOK_SECRET"],
        max_attempts=settings["WEBHOOK_MAX_ATTEMPTS"],
        retry_seconds=settings["WEBHOOK_RETRY_SECONDS"],
        timeout=settings["WEBHOOK_TIMEOUT"],
        allowed_networks=settings["WEBHOOK_ALLOWED_NETWORKS"],
        threads=settings["WEBHOOK_THREADS"],
    )
    return Housekeeping(store, video_ttl=settings["VIDEO_TTL"], sender=sender)


def _document_configured_ranges(api, table):
    """Write the default model's ranges and defaults into the OpenAPI document's request schemas.

    The schema's checks pick each request's model's table when the request comes,
    so apispec cannot read them off the fields: the document shows the default
    model's, and GET /api/info every model's.
    """
    for name in ("GenerateRequest", "GenerateFormRequest"):
        properties = api.spec.components.schemas[name]["properties"]
        for p in table:
            properties[p.name].update(minimum=p.minimum, maximum=p.maximum, default=p.default)
