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
from hunyuan_core.job_record import new_job, new_job_id, utc_now
from hunyuan_core.model_source import EMBEDDED_MODEL_NAME

# Enough to reach every operation and its error paths, small enough for ~2 minutes on 2 cores.
EXAMPLES_PER_OPERATION = 100
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
# The API document's own 503 while the model is being prepared: the only 5xx allowed, and only then.
MODEL_NOT_READY = "Model not initialized yet. Please try again in a few moments."
# The operations that submit a job, and so may meet it.
SUBMITTING = ("POST /api/generate", "POST /v1/videos", "POST /v1/videos/{video_id}/remix")


def _app(data_dir, tiny_model=None, **environ):
    if tiny_model is not None:
        (data_dir / "models").mkdir(parents=True)
        (data_dir / "models" / EMBEDDED_MODEL_NAME).symlink_to(tiny_model, target_is_directory=True)
    return create_app({"DATA_DIR": str(data_dir), "SUPERVISOR_AUTOSTART": False, "TESTING": True,
                       "ENVIRON": environ})


def _existing_jobs(app):
    """Write a finished job (with a log) and a queued one into the app's store; return their ids."""
    store = app.extensions["hunyuan_api"].store
    ids = []
    for status in ("completed", "queued"):
        job = new_job(new_job_id(), request={"prompt": "fuzz"}, params={"num_inference_steps": 10}, adjustments=[],
                      model={"name": "m", "path": "/nowhere", "demo": True})
        if status == "completed":
            job.update(status="completed", phase="done", progress=1.0, started_at=utc_now(), finished_at=utc_now())
            store.log_path(job["job_id"]).write_text("[guard] line one\n[guard] line two\n")
        store.create(job)
        ids.append(job["job_id"])
    return ids


def _operations(app):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(operation, mode, model_ready, seen, **fixed):
    """Run the bounded fuzz of one operation in one generation mode; hypothesis reports the failing case.

    `fixed` pins parts of the request (e.g. `path_parameters` naming a job that exists).
    """
    checks = CONFORMANCE + ([not_a_server_error] if model_ready else [])

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)
    def run(case):
        response = case.call_and_validate(checks=checks)
        key = (operation.label, response.status_code)
        seen[key] = seen.get(key, 0) + 1
        if response.status_code >= 500:
            body = response.json()
            # /v1 (the OpenAI-compatible face) says the same in OpenAI's error shape.
            detail = body["error"]["message"] if operation.path.startswith("/v1/") else body["detail"]
            assert response.status_code == 503 and detail == MODEL_NOT_READY, (case.method, case.path, body)
            assert operation.label in SUBMITTING and "retry-after" in {k.lower() for k in response.headers}

    run()


@pytest.mark.parametrize("model_ready, environ", [(True, {}), (False, {}), (True, {"API_KEY": "fuzz-key"})],
                         ids=["model-ready", "no-model", "api-key-not-sent"])
def test_no_server_errors_and_every_response_matches_the_document(tmp_path, tiny_model, model_ready, environ):
    # With the model ready, valid submissions become (queued, never started) jobs; without, they answer 503.
    # With API_KEY set and no key sent, protected operations must answer the 401 the document declares.
    app = _app(tmp_path / "data", tiny_model if model_ready else None, **environ)
    operations = _operations(app)
    labels = sorted(op.label for op in operations)
    assert {"GET /metrics", "GET /api/jobs/{job_id}/events", "POST /v1/videos"} <= set(labels), labels
    seen = {}
    for operation in operations:
        _fuzz(operation, GenerationMode.POSITIVE, model_ready, seen)
        try:
            _fuzz(operation, GenerationMode.NEGATIVE, model_ready, seen)
        except Unsatisfiable:
            # An operation without parameters or body (GET /health) has no invalid request to make.
            pass
    # Random ids only meet 404s: fuzz the rest of each request against jobs that exist too.
    finished, queued = _existing_jobs(app)
    for operation in sorted(operations, key=lambda op: op.method == "delete"):  # deletes last
        # /v1/videos (the OpenAI-compatible face) names a job id `video_id`.
        name = next((n for n in ("job_id", "video_id") if "{" + n + "}" in operation.path), None)
        if name is None:
            continue
        # A queued job's event stream stays open until EVENTS_MAX_SECONDS: follow only the finished one.
        for job_id in (finished,) if operation.path.endswith("/events") else (finished, queued):
            _fuzz(operation, GenerationMode.POSITIVE, model_ready, seen, path_parameters={name: job_id})
    by_status = {}
    for (_label, code), count in seen.items():
        by_status[code] = by_status.get(code, 0) + count
    server_errors = sum(count for code, count in by_status.items() if code >= 500)
    print(f"\nfuzz ({'model ready' if model_ready else 'no model'}{', API_KEY set' if environ else ''}): {sum(seen.values())} requests over "
          f"{len(operations)} operations, responses by status {dict(sorted(by_status.items()))}, "
          f"5xx: {server_errors} (only the documented 503 'model not ready' is allowed, and only without a model)")
    if model_ready:
        assert server_errors == 0
    # Every status code met is declared for its operation, not only covered by the `default` response.
    spec = app.test_client().get("/openapi.json").json
    undeclared = sorted({(label, code) for label, code in seen
                         if str(code) not in spec["paths"][label.split(" ", 1)[1]][label.split(" ")[0].lower()]
                         ["responses"]})
    assert not undeclared, undeclared
