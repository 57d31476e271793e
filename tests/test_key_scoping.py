"""Named API keys: each key sees and acts on its own jobs only, admins on all; key lists are checked at start."""

import json
import subprocess
import sys
import uuid

import pytest

from hunyuan_core import config

from .conftest import ROOT, SMALL_REQUEST, make_app
from .server import free_port

# Alice's and Bob's keys are plain ones, as every key was before keys had names; Carol's is named.
KEYS = "alice-secret, bob-secret, carol:carol-secret"
ALICE, BOB, CAROL = ({"Authorization": f"Bearer {name}-secret"} for name in ("alice", "bob", "carol"))
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def keyed(data_dir):
    """The app with three keys, carol's an admin's."""
    return make_app(data_dir, ENVIRON={"API_KEY": KEYS, "ADMIN_API_KEYS": "carol"}).test_client()


def submit(client, headers, **overrides):
    response = client.post("/api/generate", json=dict(SMALL_REQUEST, **overrides), headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["job_id"]


@pytest.fixture
def bobs(keyed, store):
    """Bob's jobs: one queued, one completed with its video and poster on disk."""
    queued = submit(keyed, BOB)
    done = submit(keyed, BOB)
    store.update(done, lambda j: j.update(status="completed", video={"file": f"{done}.mp4"},
                                          poster={"file": f"{done}.jpg"}))
    store.video_path(done).write_bytes(b"\x00" * 100)
    store.poster_path(done).write_bytes(b"\xff\xd8\xff")
    return {"queued": queued, "done": done}


# -- one key cannot reach another's jobs ---------------------------------------------------------


def _job_paths(job_id):
    return [("get", f"/api/status/{job_id}"), ("get", f"/api/jobs/{job_id}/log"),
            ("get", f"/api/jobs/{job_id}/events"), ("post", f"/api/jobs/{job_id}/cancel"),
            ("delete", f"/api/jobs/{job_id}")]


@pytest.mark.parametrize("which", ["queued", "done"])
def test_another_keys_job_answers_exactly_like_an_unknown_one(keyed, store, bobs, which):
    job_id = bobs[which]
    for (method, path), (_, unknown_path) in zip(_job_paths(job_id), _job_paths(UNKNOWN)):
        theirs = getattr(keyed, method)(path, headers=ALICE)
        unknown = getattr(keyed, method)(unknown_path, headers=ALICE)
        assert theirs.status_code == unknown.status_code == 404, (method, path)
        assert theirs.get_json() == unknown.get_json() == {**unknown.get_json(), "detail": "Job not found"}
    job = store.get(job_id)  # neither canceled nor deleted
    assert job["status"] == ("queued" if which == "queued" else "completed")
    assert keyed.get(f"/api/status/{job_id}", headers=BOB).status_code == 200


@pytest.mark.parametrize("kind, detail", [("videos", "Video not found"), ("posters", "Poster not found")])
def test_another_keys_video_and_poster_are_not_served(keyed, bobs, kind, detail):
    extension = "mp4" if kind == "videos" else "jpg"
    path = f"/api/{kind}/{bobs['done']}.{extension}"
    theirs = keyed.get(path, headers=ALICE)
    unknown = keyed.get(f"/api/{kind}/{UNKNOWN}.{extension}", headers=ALICE)
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.get_json()["detail"] == unknown.get_json()["detail"] == detail
    assert keyed.get(path, headers=BOB).status_code == 200
    assert keyed.get(path, headers=CAROL).status_code == 200


def test_the_listing_and_its_counts_hold_only_the_keys_own_jobs(keyed, bobs):
    mine = submit(keyed, ALICE)
    alice = keyed.get("/api/jobs", headers=ALICE).get_json()
    assert [job["job_id"] for job in alice["jobs"]] == [mine] and alice["count"] == alice["total"] == 1
    assert keyed.get("/api/jobs?status=completed", headers=ALICE).get_json()["total"] == 0
    bob = keyed.get("/api/jobs", headers=BOB).get_json()
    assert {job["job_id"] for job in bob["jobs"]} == set(bobs.values()) and bob["total"] == 2


def test_an_admin_key_sees_and_acts_on_every_job(keyed, store, bobs):
    mine = submit(keyed, ALICE)
    listing = keyed.get("/api/jobs", headers=CAROL).get_json()
    assert {job["job_id"] for job in listing["jobs"]} == {mine, *bobs.values()} and listing["total"] == 3
    assert keyed.get(f"/api/status/{mine}", headers=CAROL).status_code == 200
    assert keyed.post(f"/api/jobs/{bobs['queued']}/cancel", headers=CAROL).get_json()["status"] == "canceled"
    assert keyed.delete(f"/api/jobs/{bobs['done']}", headers=CAROL).status_code == 200
    assert not store.job_path(bobs["done"]).exists()


def test_jobs_without_an_owner_and_unreadable_files_are_for_admins_only(data_dir, store, keyed):
    legacy = submit(make_app(data_dir).test_client(), {})  # created while no keys were configured
    assert store.get(legacy)["owner"] is None
    broken = str(uuid.uuid4())
    store.job_path(broken).write_bytes(b"{")
    assert keyed.get(f"/api/status/{legacy}", headers=ALICE).status_code == 404
    assert keyed.get(f"/api/status/{broken}", headers=ALICE).get_json()["detail"] == "Job not found"
    assert keyed.delete(f"/api/jobs/{broken}", headers=ALICE).status_code == 404
    alice = keyed.get("/api/jobs", headers=ALICE).get_json()
    assert alice["jobs"] == [] and alice["unreadable"] == []
    carol = keyed.get("/api/jobs", headers=CAROL).get_json()
    assert [job["job_id"] for job in carol["jobs"]] == [legacy]
    assert [entry["job_id"] for entry in carol["unreadable"]] == [broken]
    assert keyed.get(f"/api/status/{legacy}", headers=CAROL).status_code == 200


# -- the job records its owner --------------------------------------------------------------------


def test_the_job_file_records_the_name_of_the_key_that_created_it(data_dir, store, client):
    named = make_app(data_dir, ENVIRON={"API_KEY": "alice:alice-secret,bob:bob-secret"}).test_client()
    record = json.loads(store.job_path(submit(named, ALICE)).read_text())
    assert record["owner"] == "alice" and record["format_version"] == 1
    assert "alice-secret" not in json.dumps(record)
    assert named.get(f"/api/status/{record['job_id']}", headers=BOB).status_code == 404
    assert store.get(submit(client, {}))["owner"] is None  # no keys configured


def test_plain_keys_still_work_and_are_named_by_a_digest(data_dir, store):
    plain = make_app(data_dir, ENVIRON={"API_KEY": "first-key, second-key"}).test_client()
    job_id = submit(plain, {"X-API-Key": "first-key"})
    assert plain.get(f"/api/status/{job_id}", headers={"Authorization": "Bearer first-key"}).status_code == 200
    assert plain.get(f"/api/status/{job_id}", headers={"X-API-Key": "second-key"}).status_code == 404
    owner = store.get(job_id)["owner"]
    assert owner == config.plain_key_name("first-key") and owner.startswith("key-") and "first" not in owner
    # The key acts on its own job as before.
    mine = {"X-API-Key": "first-key"}
    assert plain.get(f"/api/jobs/{job_id}/log", headers=mine).status_code == 200
    assert plain.post(f"/api/jobs/{job_id}/cancel", headers=mine).get_json()["status"] == "canceled"
    assert plain.delete(f"/api/jobs/{job_id}", headers=mine).status_code == 200
    assert not store.job_path(job_id).exists()


# -- idempotency keys are scoped by API key -------------------------------------------------------


def test_the_same_idempotency_key_from_two_api_keys_makes_two_jobs(keyed, store):
    header = {"Idempotency-Key": "order-17"}
    alices = submit(keyed, {**ALICE, **header})
    # Same body, then another body: neither meets alice's job, nor a 409 naming it.
    same = keyed.post("/api/generate", json=SMALL_REQUEST, headers={**BOB, **header})
    other = keyed.post("/api/generate", json=dict(SMALL_REQUEST, width=512), headers={**BOB, **header})
    assert same.status_code == 200 and same.get_json()["job_id"] != alices
    assert other.status_code == 409 and alices not in other.get_data(as_text=True)
    assert same.get_json()["job_id"] in other.get_json()["detail"]  # bob's own job
    assert {store.get(j)["owner"] for j in (alices, same.get_json()["job_id"])} == {
        config.plain_key_name("alice-secret"), config.plain_key_name("bob-secret")}
    # Each replay still finds its own sender's job.
    assert submit(keyed, {**ALICE, **header}) == alices
    assert submit(keyed, {**BOB, **header}) == same.get_json()["job_id"]


def test_a_reused_idempotency_key_never_names_another_clients_job(keyed):
    alices = submit(keyed, {**ALICE, "Idempotency-Key": "k"})
    response = keyed.post("/api/generate", json=dict(SMALL_REQUEST, width=512),
                          headers={**BOB, "Idempotency-Key": "k"})
    assert response.status_code == 200 and alices not in response.get_data(as_text=True)


# -- key lists that would silently lower protection stop the server --------------------------------


@pytest.mark.parametrize("environ, named", [
    ({"API_KEY": " , "}, "API_KEY"),
    ({"API_KEY": "   "}, "API_KEY"),
    ({"API_KEY": "alice:"}, "API_KEY"),
    ({"API_KEY": "alice:k1,alice:k2"}, "API_KEY"),
    ({"API_KEY": "alice:k1,bob:k1"}, "API_KEY"),
    ({"API_KEY": "k1,k1"}, "API_KEY"),
    ({"API_KEY": ":k1"}, "API_KEY"),
    ({"API_KEY": "al ice:k1"}, "API_KEY"),
    ({"API_KEY": "alice:k1", "ADMIN_API_KEYS": "k1"}, "ADMIN_API_KEYS"),
    ({"API_KEY": "alice:k1", "ADMIN_API_KEYS": " , "}, "ADMIN_API_KEYS"),
    ({"ADMIN_API_KEYS": "alice"}, "ADMIN_API_KEYS"),
])
def test_malformed_key_lists_are_refused_naming_the_variable(environ, named):
    with pytest.raises(ValueError, match=named) as raised:
        config.from_environ(environ)
    assert "k1" not in str(raised.value)  # a key never reaches the log


def test_key_lists_that_parse():
    settings = config.from_environ({"API_KEY": "alice:k1, k2 ,bob:k:3", "ADMIN_API_KEYS": "bob"})
    assert settings["API_KEY"] == {"alice": "k1", config.plain_key_name("k2"): "k2", "bob": "k:3"}
    assert settings["ADMIN_API_KEYS"] == {"bob"}
    assert config.from_environ({})["API_KEY"] == {} and config.from_environ({"API_KEY": ""})["API_KEY"] == {}


def test_gunicorn_refuses_to_start_with_an_api_key_that_holds_no_key(data_dir):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(data_dir), "HOST": "127.0.0.1", "PORT": str(free_port()),
           "WEB_CONCURRENCY": "1", "API_KEY": " , "}
    command = [sys.executable, "-m", "gunicorn", "-c", "python:hunyuan_api.gunicorn_conf", "wsgi:app"]
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as server:
        try:
            output, _ = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
            pytest.fail(f"gunicorn kept running with API_KEY=' , ':\n{output[-2000:]}")
    assert server.returncode != 0
    assert "API_KEY" in output and "holds no key" in output
