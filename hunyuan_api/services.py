"""The long-lived objects one app instance works with, reachable from any view."""

from dataclasses import dataclass

from flask import current_app

from hunyuan_core.job_store import JobStore
from hunyuan_core.model_source import EmbeddedModelBuilder, ModelSource
from hunyuan_core.supervisor import Supervisor


@dataclass
class Services:
    """Store, model and supervisor of one app."""

    store: JobStore
    model: ModelSource
    builder: EmbeddedModelBuilder
    supervisor: Supervisor


def services():
    """The Services of the app handling the current request."""
    return current_app.extensions["hunyuan_api"]
