"""A schema-driven fuzz of every endpoint, from the service's own OpenAPI document (schemathesis).

schemathesis builds hypothesis strategies from /openapi.json for every operation,
both valid (positive) and invalid (negative) requests, and sends them through the
WSGI app. Every response must be a non-5xx answer whose status code, content type
and body the document describes.

schemathesis' pytest integration (`from_fixture`/`parametrize`) does not run under
pytest 9, so this drives its per-operation strategies with hypothesis directly.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from hunyuan_api import create_app
from hunyuan_api.model_source import EMBEDDED_MODEL_NAME

# Enough to reach every operation and its error paths, small enough for ~2 minutes on 2 cores.
EXAMPLES_PER_OPERATION = 100
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
# The API document's own 503 while the model is being prepared: the only 5xx allowed, and only then.
MODEL_NOT_READY = "Model not initialized yet. Please try again in a few moments."


def _app(data_dir, tiny_model=None):
    if tiny_model is not None:
        (data_dir / "models").mkdir(parents=True)
        (data_dir / "models" / EMBEDDED_MODEL_NAME).symlink_to(tiny_model, target_is_directory=True)
    return create_app({"DATA_DIR": str(data_dir), "SUPERVISOR_AUTOSTART": False, "TESTING": True})


def _operations(app):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(operation, mode, model_ready, seen):
    """Run the bounded fuzz of one operation in one generation mode; hypothesis reports the failing case."""
    checks = CONFORMANCE + ([not_a_server_error] if model_ready else [])

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)
    def run(case):
        response = case.call_and_validate(checks=checks)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            body = response.json()
            assert response.status_code == 503 and body["detail"] == MODEL_NOT_READY, (case.method, case.path, body)
            assert operation.label == "POST /api/generate" and "retry-after" in {k.lower() for k in response.headers}

    run()


@pytest.mark.parametrize("model_ready", [True, False], ids=["model-ready", "no-model"])
def test_no_server_errors_and_every_response_matches_the_document(tmp_path, tiny_model, model_ready):
    # With the model ready, valid submissions become (queued, never started) jobs; without, they answer 503.
    app = _app(tmp_path / "data", tiny_model if model_ready else None)
    operations = _operations(app)
    labels = sorted(op.label for op in operations)
    assert "GET /metrics" in labels and "GET /api/jobs/{job_id}/events" in labels, labels
    seen = {}
    for operation in operations:
        _fuzz(operation, GenerationMode.POSITIVE, model_ready, seen)
        try:
            _fuzz(operation, GenerationMode.NEGATIVE, model_ready, seen)
        except Unsatisfiable:
            # An operation without parameters or body (GET /health) has no invalid request to make.
            pass
    server_errors = sum(count for code, count in seen.items() if code >= 500)
    print(f"\nfuzz ({'model ready' if model_ready else 'no model'}): {sum(seen.values())} requests over "
          f"{len(operations)} operations, responses by status {dict(sorted(seen.items()))}, "
          f"5xx: {server_errors} (only the documented 503 'model not ready' is allowed, and only without a model)")
    if model_ready:
        assert server_errors == 0
