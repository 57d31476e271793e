"""What the many-host mode does on a timer, on every host, with one host at a time doing each part.

Web hosts run a ClusterTick in a thread, worker hosts in their main loop. Each part
takes its own short Redis lock and skips the round when another host holds it, so the
work is done once, by whichever host gets there first, and goes on while any host lives:

- lost hosts: a job whose runner's host no longer announces itself (hunyuan_core/hosts.py)
  is failed with a sentence naming that host, or requeued if RETRY_LOST_JOBS allows;
- dispatch: a queued job whose RQ entry no longer waits in its queue (a crash between
  writing the record and enqueueing it; a worker that took the entry and lost Redis or
  died before claiming the job) is enqueued again, so no job waits forever;
- housekeeping: retention and webhooks (hunyuan_core/housekeeping.py), exactly as the
  single-host supervisor runs them.
"""

import logging
import time

from . import dispatch, hosts
from .job_record import JobStatus, Phase, mark_failed, parse_time, utc_now
from .job_store import JobFileUnreadable, JobNotFound
from .rounds import BackgroundRounds

log = logging.getLogger(__name__)

# A queued job younger than this is left to its submitter, which enqueues it right after writing it.
DISPATCH_GRACE_SECONDS = 10.0
# Upper bound on RETRY_LOST_JOBS: a job that takes its host down would otherwise do so forever.
MAX_LOST_RETRIES = 3


class ClusterTick(BackgroundRounds):
    """Lost hosts, missing dispatches and housekeeping, for one store, one round per `run()`
    (web hosts: every `interval` seconds in a thread, `start()`)."""

    thread_name = "cluster-tick"

    def __init__(self, store, lost_seconds, retry_lost=0, housekeeping=None, interval=2.0):
        super().__init__(interval)
        self.store = store
        self.lost_seconds = lost_seconds
        self.retry_lost = min(retry_lost, MAX_LOST_RETRIES)
        self.housekeeping = housekeeping

    def run(self):
        """One round of every part whose lock is free; errors are logged, never raised."""
        for name, part in (("lost-hosts", self.settle_lost_hosts), ("dispatch", self.redispatch),
                           ("housekeeping", self._housekeep)):
            try:
                self._once(name, part)
            except Exception:  # one failed part (Redis down, a bad record) must not stop the others
                log.exception("cluster %s round failed", name)

    def _once(self, name, part):
        lock = self.store.redis.lock(self.store.key("lock", name), timeout=60, blocking=False)
        if not self.store.call(lambda _r: lock.acquire(blocking=False)):
            return
        try:
            part()
        finally:
            try:
                lock.release()
            except Exception:  # expired or Redis gone: free either way
                pass

    def _housekeep(self):
        if self.housekeeping is not None:
            self.housekeeping.run()

    # -- lost hosts --------------------------------------------------------

    def settle_lost_hosts(self):
        """Fail (or requeue) the jobs of hosts that stopped announcing themselves; returns their ids."""
        settled = []
        up = {}
        for job in self.store.read_many(self.store.index.with_runner_ids()):
            runner = job.get("runner") or {}
            host = runner.get("host")
            if not host or runner.get("ended_at"):
                continue
            if host not in up:
                up[host] = hosts.is_up(self.store, host)
            if not up[host]:
                requeued = self._settle(job["job_id"], host)
                if requeued is not None:
                    settled.append(job["job_id"])
        return settled

    def _settle(self, job_id, host):
        """Settle one job of lost `host`: requeue it (returns True) or fail it (False); None if it moved on."""
        seen = hosts.last_seen(self.store, host) or {}
        quiet = time.time() - seen["seen_epoch"] if "seen_epoch" in seen else None
        outcome = {}

        def change(job):
            runner = job.get("runner") or {}
            if runner.get("host") != host or runner.get("ended_at"):
                return False  # settled by its host after all, or by another round
            lost = job.setdefault("lost_hosts", [])
            lost.append({"host": host, "at": utc_now()})
            if not JobStatus(job["status"]).is_terminal and len(lost) <= self.retry_lost:
                _requeue(job)
                outcome["requeued"] = True
                return True
            runner["ended_at"] = utc_now()
            runner["lost"] = True
            if not JobStatus(job["status"]).is_terminal:
                heard = f"last heard from {quiet:.0f} s ago" if quiet is not None else "no longer heard from"
                mark_failed(job, f"The worker host {host} was lost ({heard}) while it ran this job: the host "
                                 "stopped, lost its network or was killed, and its runner with it."
                                 + (f" It was not requeued: RETRY_LOST_JOBS is {self.retry_lost}."
                                    if self.retry_lost == 0 else
                                    f" It was already requeued {len(lost) - 1} time(s) (RETRY_LOST_JOBS).")
                                 + " Submit it again.")
            outcome["requeued"] = False
            return True

        try:
            job = self.store.update(job_id, change)
        except (JobNotFound, JobFileUnreadable):
            return None
        if "requeued" not in outcome:
            return None
        log.warning("job %s: worker host %s lost; %s", job_id, host,
                    "requeued" if outcome["requeued"] else "failed")
        if outcome["requeued"]:
            send(self.store, job)
        return outcome["requeued"]

    # -- dispatch ----------------------------------------------------------

    def redispatch(self):
        """Enqueue again every queued job older than the grace period whose RQ entry is gone; returns their ids."""
        sent = []
        queues = {}  # each model queue's waiting entries, read once this round
        now = time.time()
        # Only queued jobs older than the grace period are read: the index orders them by creation.
        old = self.store.index.ids_with_status(JobStatus.QUEUED.value, created_before=now - DISPATCH_GRACE_SECONDS)
        for job in self.store.read_many(old):
            if job["status"] != JobStatus.QUEUED.value:
                continue
            since = parse_time((job.get("dispatch") or {}).get("at") or job["created_at"])
            if since is None or now - since.timestamp() < DISPATCH_GRACE_SECONDS:
                continue
            entry = (job.get("dispatch") or {}).get("rq_job")
            if entry and dispatch.is_waiting(self.store, job, entry, queues):
                continue
            send_again(self.store, job["job_id"])
            sent.append(job["job_id"])
        return sent

    def round(self):
        """The background thread's round (BackgroundRounds): `run()`."""
        self.run()


def _requeue(job):
    """Put a job whose host was lost back in the queue, as it was when submitted (its lost host is remembered)."""
    job.update(status=JobStatus.QUEUED.value, phase=Phase.QUEUED.value, phase_started_at=None, progress=0.0,
               step=0, step_seconds=None, started_at=None, finished_at=None, timings={}, error=None, runner=None)
    _next_dispatch(job)


def _next_dispatch(job):
    """Start a new dispatch of `job` (a requeue, or an entry lost): the next attempt, its RQ entry still to come."""
    entry = job.get("dispatch") or {}
    job["dispatch"] = {"attempt": int(entry.get("attempt", 0)) + 1, "rq_job": None, "at": utc_now()}


def send(store, job):
    """Enqueue `job` and record its RQ entry in the record (what `redispatch` checks)."""
    rq_id = dispatch.enqueue(store, job)

    def note(record):
        if record["status"] != JobStatus.QUEUED.value:
            return False
        entry = record.get("dispatch") or {}
        record["dispatch"] = dict(entry, attempt=int(entry.get("attempt", 0)), rq_job=rq_id, at=utc_now())
        return True

    try:
        store.update(job["job_id"], note)
    except (JobNotFound, JobFileUnreadable):
        pass
    return rq_id


def dispatch_new(store, job):
    """Send a just-created job; if Redis fails right now, the dispatch round sends it later (never lost)."""
    try:
        send(store, job)
    except Exception as exc:  # noqa: BLE001 - the job is recorded; only its RQ entry waits
        log.warning("job %s recorded but not yet enqueued (%s); the dispatch round will send it", job["job_id"], exc)


def send_again(store, job_id):
    """Send a queued job again under a new RQ entry (the old one is gone)."""

    def bump(record):
        if record["status"] != JobStatus.QUEUED.value:
            return False
        _next_dispatch(record)
        return True

    job = store.update(job_id, bump)
    if job["status"] == JobStatus.QUEUED.value:
        send(store, job)
