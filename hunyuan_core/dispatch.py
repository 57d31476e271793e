"""Dispatch in the many-host mode: one RQ queue per model, worker hosts take jobs from their models' queues.

A job record is the truth; the RQ job only carries its id to a worker host. Each
model has its own queue (`hunyuan-<model name>`), and a worker host listens only on
the queues of the models it has, so a job is dispatched only to a host that can run
it (RQ hands each queued entry to exactly one worker). Within a model, jobs start in
the order they were queued.

The RQ job runs `runner.host_job.run` (named by its path: the core does not import
the runner). It never times out in RQ: the job's own guard enforces JOB_TIMEOUT and
the stall limit, as on one host. RQ results are not kept: the record has everything.
"""

from rq import Queue

QUEUE_PREFIX = "hunyuan-"
JOB_FUNCTION = "runner.host_job.run"
# RQ entries of failed RQ jobs (a host-side crash) are kept this long for `rq info`.
FAILURE_TTL_SECONDS = 7 * 24 * 3600


def queue_name(model_name):
    """The RQ queue of a model's jobs."""
    return QUEUE_PREFIX + model_name


def rq_job_id(job_id, attempt):
    """The RQ job id of one dispatch of `job_id` (a job requeued after a lost host is dispatched again)."""
    return f"hunyuan-{job_id}-{attempt}"


def _queue(store, job):
    model = job["model"]
    return Queue(queue_name(model.get("served_as") or model["name"]), connection=store.redis)


def enqueue(store, job):
    """Put `job` (a queued record) on its model's RQ queue; returns the RQ job id it was given."""
    attempt = int((job.get("dispatch") or {}).get("attempt", 0))
    rq_id = rq_job_id(job["job_id"], attempt)
    queue = _queue(store, job)
    store.call(lambda _r: queue.enqueue_call(JOB_FUNCTION, args=(job["job_id"],), job_id=rq_id, timeout=-1,
                                             result_ttl=0, failure_ttl=FAILURE_TTL_SECONDS,
                                             description=f"hunyuan job {job['job_id']}"))
    return rq_id


def is_waiting(store, job, rq_id, seen=None):
    """True while the entry `rq_id` of queued `job` still waits in its model's RQ queue.

    An entry a worker took but never claimed the job for (its host died in between, or
    lost Redis at that moment) is gone from the queue while the record still says queued.
    `seen` (a dict) keeps each queue's entries for the caller's round: one read a queue.
    """
    queue = _queue(store, job)
    seen = {} if seen is None else seen
    if queue.key not in seen:
        seen[queue.key] = {entry.decode() for entry in store.call(lambda r: r.lrange(queue.key, 0, -1))}
    return rq_id in seen[queue.key]
