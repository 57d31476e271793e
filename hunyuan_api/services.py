"""The long-lived objects one app instance works with, reachable from any view, and its job viewer."""

from dataclasses import dataclass

from flask import current_app

from hunyuan_core import hosts
from hunyuan_core.catalog import Catalog
from hunyuan_core.job_store import JobStore
from hunyuan_core.job_views import JobViewer
from hunyuan_core.model_source import Builders, ModelSource
from hunyuan_core.submission import Submitter
from hunyuan_core.supervisor import Supervisor


@dataclass
class Services:
    """Store, models, supervisor, submission service and artifact store of one app.

    `model` is the default model's source; `artifacts` holds videos, posters, logs and
    input images (hunyuan_core/artifacts.py: the data folder unless ARTIFACTS_URL says otherwise).
    """

    store: JobStore
    model: ModelSource
    builder: Builders
    supervisor: Supervisor
    submitter: Submitter
    models: Catalog
    cluster: object = None  # the many-host mode's ClusterTick (hunyuan_core/cluster.py), else None
    artifacts: object = None  # LocalArtifacts or S3Artifacts


def services():
    """The Services of the app handling the current request."""
    return current_app.extensions["hunyuan_api"]


def viewer():
    """A JobViewer for this app's store and settings (estimates are relative to now)."""
    config = current_app.config
    store = services().store
    # Queue positions and waits are planned on the slots that run the jobs: the cluster's, on many hosts.
    slots = hosts.capacity(store, config["MAX_WORKERS"]) if store.distributed else config["MAX_WORKERS"]
    return JobViewer(store, slots, config["RUNNER_THREADS"])
