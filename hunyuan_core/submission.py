"""Submitting a job: what every face (the REST API, later an OpenAI-style /v1/videos) does to queue one.

A face validates its own request body into the request dict (the fields of
POST /api/generate: prompt, sizes, seed, webhook_url, ...) and calls
`Submitter.submit`; it gets the job back, or one of the errors of
hunyuan_core/errors.py, which it renders in its own way. The steps, in the order
they are checked: the model is ready, the Idempotency-Key is well formed, the
parameters are resolved, then under the store lock the key is looked up, the job is
admitted (queue cap, free disk), created with its owner and webhook, and the key
remembered; last the supervisor is woken so the job can start at once.
"""

from dataclasses import dataclass

from . import admission, idempotency, model_source, params, webhooks
from .errors import BadRequest, ModelNotReady
from .job_record import new_job, new_job_id

# How long a client should wait before retrying while the model is being prepared.
MODEL_RETRY_AFTER_SECONDS = 10


@dataclass(frozen=True)
class Submission:
    """A submitted job; `earlier` is True when an Idempotency-Key matched a job made before."""

    job: dict
    earlier: bool = False


class Submitter:
    """Queues jobs on one store, for one model and one set of limits."""

    def __init__(self, store, model, wake, parameters=params.PARAMETERS, max_queue=0, min_free_disk_mb=0):
        """`model` is a ModelSource, `wake` what tells the supervisor a job is waiting (or None).

        `parameters` is the parameter table with the configured ranges and defaults
        (params.parameter_table); `max_queue` and `min_free_disk_mb` 0 mean no limit.
        """
        self.store = store
        self.model = model
        self.wake = wake
        self.parameters = parameters
        self.max_queue = max_queue
        self.min_free_disk_mb = min_free_disk_mb

    def submit(self, request, owner=None, idempotency_key=None):
        """Queue a job for the validated `request` dict, for `owner` (an API key's name, or None).

        Returns a Submission. Raises ModelNotReady (Retry-After), BadRequest for a
        malformed key, Conflict for a key used before with another request,
        QueueFull (Retry-After) or InsufficientStorage.
        """
        model = model_source.describe(self.model)
        if not model["ready"]:
            raise ModelNotReady(model_source.unavailable_detail(model),
                                {"Retry-After": str(MODEL_RETRY_AFTER_SECONDS)})
        key = idempotency_key
        key_problem = None if key is None else idempotency.validate_key(key)
        if key_problem:
            raise BadRequest(key_problem)
        used, adjustments = params.resolve(request, self.parameters)
        store = self.store
        # One lock around look-up, admission and creation: two web workers given the same
        # key at once make one job, and the queue cap is not overshot by a race.
        with store.locked():
            if key is not None:
                digest = idempotency.request_digest(request)
                earlier = idempotency.find(store, key, digest, owner)  # KeyConflict is a Conflict
                if earlier is not None:
                    return Submission(earlier, earlier=True)
            admission.check(store, self.max_queue, self.min_free_disk_mb)
            job_id = new_job_id()
            job = new_job(
                job_id,
                request=request,
                params=used,
                adjustments=adjustments,
                model={"name": model["name"], "path": model["path"], "demo": model["demo"]},
                owner=owner,
            )
            if request.get("webhook_url"):
                job["webhook"] = webhooks.new_delivery(request["webhook_url"])
            if key is not None:
                job["idempotency_key_sha256"] = idempotency.remember(store, key, digest, job_id, owner)
            store.create(job)
        if self.wake is not None:
            self.wake()
        return Submission(job)
