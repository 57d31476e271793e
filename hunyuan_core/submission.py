"""Submitting a job: what every face (the REST API, later an OpenAI-style /v1/videos) does to queue one.

A face validates its own request body into the request dict (the fields of
POST /api/generate: prompt, sizes, seed, webhook_url, ...) and calls
`Submitter.submit`; it gets the job back, or one of the errors of
hunyuan_core/errors.py, which it renders in its own way. The steps, in the order
they are checked: the model is ready, the Idempotency-Key is well formed, the
parameters are resolved, then under the store lock the key is looked up, the job is
admitted (queue cap, free disk), created with its owner and webhook, and the key
remembered; last the supervisor is woken so the job can start at once. Before all
of them, the named model is looked up and the image checked against its task.
"""

from dataclasses import dataclass

from . import admission, catalog, idempotency, model_source, params, webhooks
from .errors import BadRequest, InvalidInput, ModelNotReady
from .job_record import new_job, new_job_id

# How long a client should wait before retrying while the model is being prepared.
MODEL_RETRY_AFTER_SECONDS = 10


@dataclass(frozen=True)
class Submission:
    """A submitted job; `earlier` is True when an Idempotency-Key matched a job made before."""

    job: dict
    earlier: bool = False


class Submitter:
    """Queues jobs on one store, for the models of one catalog and one set of limits."""

    def __init__(self, store, models, wake, max_queue=0, min_free_disk_mb=0, dispatch=None):
        """`models` is a catalog.Catalog (or one ModelSource), `wake` what tells the supervisor a job waits (or None).

        `dispatch(job)` sends a new job to the worker hosts (the many-host mode), or None.

        Each model brings its parameter table (ranges and defaults as configured);
        `max_queue` and `min_free_disk_mb` 0 mean no limit.
        """
        self.store = store
        self.models = catalog.of(models)
        self.wake = wake
        self.max_queue = max_queue
        self.min_free_disk_mb = min_free_disk_mb
        self.dispatch = dispatch

    def submit(self, request, owner=None, idempotency_key=None, image=None, remixed_from=None):
        """Queue a job for the validated `request` dict, for `owner` (an API key's name, or None).

        `request["model"]` names the model (absent: the default one); `image` is the
        decoded input image (hunyuan_core.images.InputImage) of an image-to-video
        request, or None; `remixed_from` the id of the job this one remixes (recorded
        as `remixed_from_video_id`), or None. Returns a Submission. Raises InvalidInput for an unknown
        model or an image the model cannot take (or lacks), ModelNotReady
        (Retry-After), BadRequest for a malformed key, Conflict for a key used
        before with another request, QueueFull (Retry-After) or InsufficientStorage.
        """
        served = self.models.get(request.get("model"))
        family = served.family
        if family.takes_image and image is None:
            raise InvalidInput("image", f"Required: {served.name} is an image-to-video model; send the first "
                                        "frame as a multipart file part or a data: URL.")
        if image is not None and not family.takes_image:
            raise InvalidInput("image", f"{served.name} is a text-to-video model and takes no image; name an "
                                        "image-to-video model in `model`.")
        model = model_source.describe(served.source)
        if not model["ready"]:
            raise ModelNotReady(model_source.unavailable_detail(model),
                                {"Retry-After": str(MODEL_RETRY_AFTER_SECONDS)})
        key = idempotency_key
        key_problem = None if key is None else idempotency.validate_key(key)
        if key_problem:
            raise BadRequest(key_problem)
        used, adjustments = params.resolve(request, served.parameters, family, served.source.path, image)
        store = self.store
        # One lock around look-up, admission and creation: two web workers given the same
        # key at once make one job, and the queue cap is not overshot by a race.
        with store.locked():
            if key is not None:
                # The digest covers the body as sent (a `model` it names included) and the image's
                # content; a text-only body digests as it did before images existed, so keys
                # given before an upgrade still find their jobs.
                digest = idempotency.request_digest(
                    request if image is None else dict(request, image=image.sha256))
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
                model=served.job_model(),
                owner=owner,
            )
            if remixed_from is not None:
                job["remixed_from_video_id"] = remixed_from
            if request.get("webhook_url"):
                job["webhook"] = webhooks.new_delivery(request["webhook_url"])
            if key is not None:
                job["idempotency_key_sha256"] = idempotency.remember(store, key, digest, job_id, owner)
            if image is not None:
                # Saved before the job exists, so a runner never meets a job without its image.
                job["image"] = store.save_input(job_id, image)
            try:
                store.create(job)
            except BaseException:
                if image is not None:
                    store.discard_input(job_id)  # no job, no input: nothing is left behind for nobody
                raise
        if self.wake is not None:
            self.wake()
        if self.dispatch is not None:
            # After the record is written: a crash in between leaves a queued job that the cluster's
            # dispatch round (hunyuan_core/cluster.py) enqueues, never an RQ entry without its job.
            self.dispatch(job)
        return Submission(job)
