"""Queue cap, free-disk floor, API keys and idempotency keys, through the Flask test client."""

import shutil

import pytest

from hunyuan_api import auth

from .conftest import SMALL_REQUEST, make_app


def client_with(data_dir, **environ):
    return make_app(data_dir, ENVIRON={k: str(v) for k, v in environ.items()}).test_client()


# -- backpressure ---------------------------------------------------------------


def test_beyond_max_queue_submissions_get_429_with_retry_after(data_dir, store):
    client = client_with(data_dir, MAX_QUEUE=2)
    for _ in range(2):
        assert client.post("/api/generate", json=SMALL_REQUEST).status_code == 200
    response = client.post("/api/generate", json=SMALL_REQUEST)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "MAX_QUEUE" in response.json["detail"] and "2 jobs are waiting" in response.json["detail"]
    assert len(store.list()[0]) == 2  # nothing written for the refused one
    # A job leaving the queue makes room again.
    first = store.list()[0][0]["job_id"]
    assert client.post(f"/api/jobs/{first}/cancel").status_code == 200
    assert client.post("/api/generate", json=SMALL_REQUEST).status_code == 200


def test_info_shows_the_limits(data_dir):
    limits = client_with(data_dir, MAX_QUEUE=7, MIN_FREE_DISK_MB=5, VIDEO_TTL=60).get("/api/info").json["limits"]
    assert limits["queue_size"] == 7 and limits["min_free_disk_mb"] == 5 and limits["video_ttl_seconds"] == 60
    assert limits["api_key_required"] is False


def test_max_queue_zero_means_no_cap(data_dir):
    client = client_with(data_dir, MAX_QUEUE=0)
    assert all(client.post("/api/generate", json=SMALL_REQUEST).status_code == 200 for _ in range(3))


def test_below_the_free_disk_floor_submissions_get_507(data_dir, store):
    free_mb = shutil.disk_usage(data_dir).free // (1024 * 1024)
    client = client_with(data_dir, MIN_FREE_DISK_MB=free_mb + 10_000_000)
    response = client.post("/api/generate", json=SMALL_REQUEST)
    assert response.status_code == 507
    assert "free disk space" in response.json["detail"] and "MIN_FREE_DISK_MB" in response.json["detail"]
    assert store.list()[0] == []
    assert client_with(data_dir, MIN_FREE_DISK_MB=0).post("/api/generate", json=SMALL_REQUEST).status_code == 200


# -- API keys -------------------------------------------------------------------


@pytest.fixture
def keyed(data_dir):
    return client_with(data_dir, API_KEY="first-key, second-key")


PROTECTED = [("get", "/api/jobs"), ("get", "/api/info"), ("post", "/api/generate"),
             ("get", "/api/status/00000000-0000-4000-8000-000000000000"), ("get", "/api/videos/x.mp4"),
             ("post", "/api/jobs/00000000-0000-4000-8000-000000000000/cancel"), ("get", "/metrics")]


@pytest.mark.parametrize("method, path", PROTECTED)
def test_with_api_key_set_protected_routes_need_it(keyed, method, path):
    response = getattr(keyed, method)(path, json=SMALL_REQUEST if method == "post" else None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Missing API key" in response.json["detail"]
    wrong = getattr(keyed, method)(path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json["detail"] == "Invalid API key"
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer first-key"}, {"Authorization": "bearer second-key"},
                                     {"X-API-Key": "second-key"}])
def test_either_header_with_any_configured_key_is_accepted(keyed, headers):
    assert keyed.get("/api/jobs", headers=headers).status_code == 200
    response = keyed.post("/api/generate", json=SMALL_REQUEST, headers=headers)
    assert response.status_code == 200
    assert keyed.get(f"/api/status/{response.json['job_id']}", headers=headers).status_code == 200


@pytest.mark.parametrize("path", ["/", "/health", "/docs", "/redoc", "/openapi.json",
                                  "/docs-assets/swagger-ui/swagger-ui.css", "/ui", "/ui/app.js"])
def test_open_paths_need_no_key(keyed, path):
    assert keyed.get(path).status_code != 401


def test_without_api_key_nothing_changes(client):
    assert client.get("/api/jobs").status_code == 200
    spec = client.get("/openapi.json").json
    assert "securitySchemes" not in spec.get("components", {})
    assert "security" not in spec["paths"]["/api/jobs"]["get"]


def test_openapi_declares_both_schemes_on_protected_operations_only(keyed):
    spec = keyed.get("/openapi.json").json
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == dict(auth.SCHEMES["bearerAuth"])
    assert schemes["apiKeyHeader"]["in"] == "header" and schemes["apiKeyHeader"]["name"] == "X-API-Key"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            if auth.is_protected(path):  # /api/... and /metrics
                assert operation["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}], (path, method)
                assert "401" in operation["responses"]
            else:
                assert "security" not in operation, (path, method)


def test_keys_are_compared_whole():
    assert auth.key_is_valid("abc", ["abc"]) and not auth.key_is_valid("ab", ["abc"])
    assert not auth.key_is_valid("abcd", ["abc"]) and auth.key_is_valid("x", ["abc", "x"])


# -- idempotency ----------------------------------------------------------------


def test_same_key_and_body_gives_the_same_job(client, store):
    headers = {"Idempotency-Key": "order-17"}
    first = client.post("/api/generate", json=SMALL_REQUEST, headers=headers)
    # The same body spelled differently (defaults written out, other key order) is the same request.
    again = client.post("/api/generate", json=dict(reversed(list(SMALL_REQUEST.items())), seed=None),
                        headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json["job_id"] == first.json["job_id"]
    assert again.json["params"] == first.json["params"]  # the first draw of the random seed, not a new one
    assert "Idempotency-Key" in again.json["message"]
    assert len(store.list()[0]) == 1
    entries = list((store.root / "idempotency").glob("*.json"))
    assert len(entries) == 1 and "order-17" not in entries[0].read_text()  # only its hash is stored
    other = client.post("/api/generate", json=SMALL_REQUEST, headers={"Idempotency-Key": "order-18"})
    assert other.json["job_id"] != first.json["job_id"]


def test_same_key_with_another_body_is_409(client, store):
    headers = {"Idempotency-Key": "order-17"}
    job_id = client.post("/api/generate", json=SMALL_REQUEST, headers=headers).json["job_id"]
    response = client.post("/api/generate", json=dict(SMALL_REQUEST, width=512), headers=headers)
    assert response.status_code == 409
    assert "Idempotency-Key" in response.json["detail"] and job_id in response.json["detail"]
    assert len(store.list()[0]) == 1


def test_a_key_expires_with_its_job(client, store):
    headers = {"Idempotency-Key": "order-17"}
    job_id = client.post("/api/generate", json=SMALL_REQUEST, headers=headers).json["job_id"]
    assert client.delete(f"/api/jobs/{job_id}").status_code == 200
    again = client.post("/api/generate", json=dict(SMALL_REQUEST, width=512), headers=headers)
    assert again.status_code == 200 and again.json["job_id"] != job_id


def test_a_replay_is_answered_even_when_the_queue_is_full(data_dir):
    client = client_with(data_dir, MAX_QUEUE=1)
    headers = {"Idempotency-Key": "k"}
    job_id = client.post("/api/generate", json=SMALL_REQUEST, headers=headers).json["job_id"]
    assert client.post("/api/generate", json=SMALL_REQUEST).status_code == 429
    assert client.post("/api/generate", json=SMALL_REQUEST, headers=headers).json["job_id"] == job_id


@pytest.mark.parametrize("key", ["", "   ", "x" * 256])
def test_malformed_keys_are_400_naming_the_header(client, key):
    response = client.post("/api/generate", json=SMALL_REQUEST, headers={"Idempotency-Key": key})
    assert response.status_code == 400 and "Idempotency-Key" in response.json["detail"]


def test_idempotency_header_is_documented(client):
    operation = client.get("/openapi.json").json["paths"]["/api/generate"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in operation["parameters"])
    assert {"409", "429", "507"} <= set(operation["responses"])
