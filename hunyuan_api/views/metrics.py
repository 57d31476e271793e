"""Prometheus metrics of the service."""

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from prometheus_client.exposition import choose_encoder

from hunyuan_core.metrics import registry_for

from ..services import services

blp = Blueprint("metrics", __name__, description="Monitoring")
_REGISTRY_KEY = "hunyuan_api.metrics_registry"


@blp.route("/metrics")
class Metrics(MethodView):
    """GET /metrics"""

    @blp.response(200, content_type="text/plain", description="Prometheus text format "
                  "(OpenMetrics when the Accept header asks for application/openmetrics-text)")
    def get(self):
        """Prometheus metrics: jobs by status, queue, runners, durations

        Computed from the job files at scrape time, so every web worker gives the same answer.
        """
        registry = current_app.extensions.get(_REGISTRY_KEY)
        if registry is None:
            registry = current_app.extensions.setdefault(
                _REGISTRY_KEY, registry_for(services().store, current_app.config["MAX_WORKERS"])
            )
        encoder, content_type = choose_encoder(request.headers.get("Accept"))
        return Response(encoder(registry), headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
