"""The core's submission and job services used directly, as a second face would: no Flask, no HTTP, no model build.

The REST answers these errors become are checked through HTTP in test_api.py,
test_protection.py, test_key_scoping.py and the others; here the services' own
contract: which domain error, with which code, detail and headers.
"""

import io
import json

import pytest
from PIL import Image

from hunyuan_core import catalog, config, errors, images, jobs
from hunyuan_core.job_record import JobStatus, new_job_id
from hunyuan_core.job_store import JobStore
from hunyuan_core.model_source import ModelSource
from hunyuan_core.submission import Submitter

REQUEST = {"prompt": "A cat walks on the grass, realistic style.", "width": 264, "height": 256, "video_length": 13,
           "num_inference_steps": 10}


@pytest.fixture
def core_store(tmp_path):
    """A JobStore in an empty data folder."""
    return JobStore(tmp_path / "data")


@pytest.fixture
def ready_model(tmp_path):
    """A model folder the service counts as ready (a diffusers model_index.json); nothing loads it here."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    return ModelSource(folder, embedded=False)


class Wakes:
    """Counts how often the supervisor would have been woken."""

    def __init__(self):
        self.count = 0

    def __call__(self):
        self.count += 1


def test_a_submission_is_created_with_its_owner_resolved_params_and_webhook(core_store, ready_model):
    wake = Wakes()
    submitter = Submitter(core_store, ready_model, wake)
    submitted = submitter.submit(dict(REQUEST, webhook_url="https://example.com/hook"), owner="alice")
    job = core_store.get(submitted.job["job_id"])
    assert not submitted.earlier and wake.count == 1
    assert job["status"] == JobStatus.QUEUED.value and job["owner"] == "alice"
    assert job["params"]["width"] == 272 and any("width 264 rounded to 272" in a for a in job["adjustments"])
    assert job["webhook"]["url"] == "https://example.com/hook"
    assert job["model"]["path"] == str(ready_model.path)


def test_an_idempotency_key_returns_the_earlier_job_and_conflicts_on_another_body(core_store, ready_model):
    wake = Wakes()
    submitter = Submitter(core_store, ready_model, wake)
    first = submitter.submit(REQUEST, owner="alice", idempotency_key="order-17")
    again = submitter.submit(dict(REQUEST), owner="alice", idempotency_key="order-17")
    assert again.earlier and again.job["job_id"] == first.job["job_id"] and wake.count == 1
    with pytest.raises(errors.Conflict) as caught:
        submitter.submit(dict(REQUEST, prompt="A dog"), owner="alice", idempotency_key="order-17")
    assert caught.value.status_code == 409 and caught.value.kind == "conflict"
    assert caught.value.detail == (f"Idempotency-Key header: this key was already used for job "
                                   f"{first.job['job_id']} with a different request body")
    # Keys are scoped by owner: bob's same key is a new job, not alice's.
    assert submitter.submit(REQUEST, owner="bob", idempotency_key="order-17").job["job_id"] != first.job["job_id"]
    assert len(core_store.list()[0]) == 2


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "tab\there"])
def test_a_malformed_idempotency_key_is_a_bad_request(core_store, ready_model, key):
    with pytest.raises(errors.BadRequest) as caught:
        Submitter(core_store, ready_model, None).submit(REQUEST, idempotency_key=key)
    assert caught.value.status_code == 400
    assert caught.value.detail == "Idempotency-Key header: must be 1 to 255 printable characters"
    assert core_store.list()[0] == []


def test_a_full_queue_refuses_with_retry_after_and_creates_nothing(core_store, ready_model):
    wake = Wakes()
    submitter = Submitter(core_store, ready_model, wake, max_queue=2)
    first = submitter.submit(REQUEST, idempotency_key="k")
    submitter.submit(REQUEST)
    with pytest.raises(errors.QueueFull) as caught:
        submitter.submit(REQUEST, idempotency_key="another")
    error = caught.value
    assert error.status_code == 429 and error.headers == {"Retry-After": "30"}
    assert error.detail == "The queue is full: 2 jobs are waiting (MAX_QUEUE is 2). Try again in 30 s."
    assert len(core_store.list()[0]) == 2 and wake.count == 2
    # An earlier job found by its key is no new job: the full queue does not refuse it.
    again = submitter.submit(REQUEST, idempotency_key="k")
    assert again.earlier and again.job["job_id"] == first.job["job_id"]


def test_a_disk_below_the_floor_is_insufficient_storage(core_store, ready_model):
    with pytest.raises(errors.InsufficientStorage) as caught:
        Submitter(core_store, ready_model, None, min_free_disk_mb=10**12).submit(REQUEST)
    assert caught.value.status_code == 507 and caught.value.headers == {}
    assert caught.value.detail.startswith("Not enough free disk space for new jobs: ")
    assert "MIN_FREE_DISK_MB is 1000000000000" in caught.value.detail


def test_a_model_that_is_not_ready_is_refused_before_anything_else(core_store, tmp_path):
    missing = ModelSource(tmp_path / "no-model", embedded=False)
    with pytest.raises(errors.ModelNotReady) as caught:
        # A malformed key and a full queue would be refused too: the model comes first.
        Submitter(core_store, missing, None, max_queue=1).submit(REQUEST, idempotency_key="")
    error = caught.value
    assert isinstance(error, errors.Unavailable) and error.status_code == 503 and error.kind == "model_not_ready"
    assert error.headers == {"Retry-After": "10"}
    assert error.detail == f"Model not available: MODEL_PATH {tmp_path / 'no-model'} does not exist or is not a folder."
    building = ModelSource(tmp_path / "data" / "models" / "tiny", embedded=True)
    with pytest.raises(errors.ModelNotReady, match="Model not initialized yet"):
        Submitter(core_store, building, None).submit(REQUEST)


def test_another_owners_job_is_not_found_exactly_like_an_unknown_one(core_store, ready_model):
    job_id = Submitter(core_store, ready_model, None).submit(REQUEST, owner="alice").job["job_id"]
    alice, bob, admin = jobs.Access("alice", every=False), jobs.Access("bob", every=False), jobs.Access("root")
    assert jobs.find_job(core_store, job_id, alice)["job_id"] == job_id
    assert jobs.find_job(core_store, job_id, admin)["job_id"] == job_id
    answers = []
    for look_up in (lambda: jobs.find_job(core_store, job_id, bob), lambda: jobs.find_job(core_store, new_job_id(), bob),
                    lambda: jobs.cancel(core_store, job_id, bob), lambda: jobs.delete(core_store, job_id, bob),
                    lambda: jobs.check_known(core_store, job_id, bob), lambda: jobs.cancel(core_store, new_job_id(), bob),
                    lambda: jobs.check_known(core_store, new_job_id(), bob),
                    lambda: jobs.delete(core_store, new_job_id(), bob)):
        with pytest.raises(errors.NotFound) as caught:
            look_up()
        error = caught.value
        answers.append((type(error), error.status_code, error.detail, tuple(error.headers.items())))
    assert set(answers) == {(errors.NotFound, 404, "Job not found", ())}
    assert core_store.get(job_id)["status"] == JobStatus.QUEUED.value  # bob changed nothing


def test_an_unreadable_job_file_is_named_to_admins_and_not_found_for_others(core_store):
    job_id = new_job_id()
    core_store.jobs_dir.mkdir(parents=True, exist_ok=True)
    core_store.job_path(job_id).write_text("{not json")
    with pytest.raises(errors.Unreadable) as caught:
        jobs.find_job(core_store, job_id, jobs.EVERYONE)
    assert caught.value.status_code == 500 and str(core_store.job_path(job_id)) in caught.value.detail
    with pytest.raises(errors.NotFound):
        jobs.find_job(core_store, job_id, jobs.Access("alice", every=False))
    jobs.check_known(core_store, job_id, jobs.EVERYONE)  # its log may explain it: no error
    with pytest.raises(errors.Unreadable):
        jobs.cancel(core_store, job_id, jobs.EVERYONE)
    jobs.delete(core_store, job_id, jobs.EVERYONE)  # a broken file can always be removed
    with pytest.raises(errors.NotFound):
        jobs.find_job(core_store, job_id, jobs.EVERYONE)


def test_canceling_twice_is_a_conflict_and_a_processing_job_cannot_be_deleted(core_store, ready_model):
    submitter = Submitter(core_store, ready_model, None)
    job_id = submitter.submit(REQUEST).job["job_id"]
    assert jobs.cancel(core_store, job_id, jobs.EVERYONE)["status"] == JobStatus.CANCELED.value
    with pytest.raises(errors.Conflict) as caught:
        jobs.cancel(core_store, job_id, jobs.EVERYONE)
    assert caught.value.status_code == 409 and caught.value.detail == "Job is already canceled and cannot be canceled"
    running = submitter.submit(REQUEST).job
    with core_store.locked():
        running["status"] = JobStatus.PROCESSING.value
        core_store.save(running)
    with pytest.raises(errors.BadRequest, match="^Cannot delete job that is currently processing$"):
        jobs.delete(core_store, running["job_id"], jobs.EVERYONE)
    jobs.delete(core_store, job_id, jobs.EVERYONE)
    assert [job["job_id"] for job in core_store.list()[0]] == [running["job_id"]]


def test_the_model_is_named_in_the_request_and_an_image_goes_with_image_to_video_models_only(core_store, tmp_path):
    folder = tmp_path / "i2v"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "HunyuanVideo15ImageToVideoPipeline"}))
    settings = config.from_environ({"DATA_DIR": str(core_store.root),
                                    "MODELS": f"t2v={tmp_path / 'model'}, i2v={folder}"})
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_index.json").write_text(json.dumps({"_class_name": "HunyuanVideoPipeline"}))
    submitter = Submitter(core_store, catalog.from_settings(settings), None)
    buffer = io.BytesIO()
    Image.new("RGB", (90, 160)).save(buffer, "PNG")
    image = images.decode_image(buffer.getvalue())
    with pytest.raises(errors.InvalidInput) as caught:
        submitter.submit(dict(REQUEST, model="i2v"))
    assert caught.value.status_code == 422 and caught.value.field == "image"
    with pytest.raises(errors.InvalidInput, match="^Invalid request: image: t2v is a text-to-video model"):
        submitter.submit(REQUEST, image=image)
    with pytest.raises(errors.InvalidInput, match="^Invalid request: model: Unknown model 'x'; known models: t2v, i2v"):
        submitter.submit(dict(REQUEST, model="x"), image=image)
    assert core_store.list()[0] == []
    job = submitter.submit(dict(REQUEST, model="i2v"), image=image).job
    assert job["image"] == image.record(core_store.input_path(job["job_id"]).name)
    assert core_store.input_path(job["job_id"]).read_bytes() == image.png
    assert (job["params"]["width"], job["params"]["height"]) == (480, 848)
    assert job["model"]["served_as"] == "i2v" and job["model"]["family"] == "hunyuanvideo-1.5-i2v"
