"""Webhooks: POST a job's status body to the job's `webhook_url` once it has finished.

The body is the same JSON as GET /api/status/{job_id}; the exact bytes sent are
signed with HMAC-SHA256 under WEBHOOK_SECRET (`X-Hunyuan-Signature: sha256=<hex>`).
Delivery state lives in the job file (`webhook`), and an attempt is claimed under
the store lock before it is made (`sending_until`), so with several web
workers exactly one of them sends each attempt. A failed attempt is retried after
WEBHOOK_RETRY_SECONDS, doubling each time, up to WEBHOOK_MAX_ATTEMPTS attempts.

Sending happens on a fixed pool of WEBHOOK_THREADS delivery threads per process
fed by a bounded queue: neither an API request nor a runner ever waits for a
receiver, and no receiver can make a process start more threads. An attempt is
claimed only when a delivery thread takes it, and it ends within WEBHOOK_TIMEOUT
of its claim (webhook_client's total deadline), well inside its claim's lease, so
a slow receiver never gets a second attempt while the first is still open.
Where a webhook may be sent is webhook_guard's decision (WEBHOOK_ALLOWED_NETWORKS).
"""

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from datetime import datetime, timedelta, timezone

from . import webhook_client
from .job_record import JobStatus, parse_time, utc_now
from .job_store import JobFileUnreadable, JobNotFound

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hunyuan-Signature"
TIMESTAMP_HEADER = "X-Hunyuan-Timestamp"
EVENT_HEADER = "X-Hunyuan-Event"
# A claimed attempt whose sender died (web worker restarted mid-send) is retried after this much longer.
_CLAIM_MARGIN_SECONDS = 30
# Jobs waiting for a delivery thread; more wait in their files and are offered again on later ticks.
_QUEUE_SIZE = 256
# A delivery thread with nothing to send for this long ends; send_due starts one again when needed.
_IDLE_SECONDS = 30
# Backoff doubles per attempt; past this it would only overflow, not help.
_MAX_RETRY_DELAY_SECONDS = 86400

OUTCOME_INTERRUPTED = "failed: the attempt did not finish"
OUTCOME_INTERNAL = "failed: could not send"


def new_delivery(url):
    """The `webhook` field of a new job that asked for one."""
    return {"url": url, "attempts": 0, "delivered_at": None, "last_error": None, "last_status": None,
            "next_attempt_at": None, "sending_until": None, "gave_up_at": None}


def sign(secret, body):
    """The signature header's value for `body` (bytes): `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def due_at(job):
    """When the job's next webhook attempt is due (a datetime), or None if there is nothing to send."""
    hook = job.get("webhook")
    if not hook or hook.get("delivered_at") or hook.get("gave_up_at"):
        return None
    if not JobStatus(job["status"]).is_terminal:
        return None
    times = [parse_time(hook.get("next_attempt_at")), parse_time(hook.get("sending_until"))]
    times = [t for t in times if t is not None]
    return max(times) if times else datetime.fromtimestamp(0, timezone.utc)


class WebhookSender:
    """Claims due webhook attempts and sends them on a fixed pool of delivery threads."""

    def __init__(self, store, describe, secret="", max_attempts=5, retry_seconds=2.0, timeout=10.0,
                 allowed_networks=(), threads=2):
        self.store = store
        self.describe = describe  # job record -> status body (the API's own view)
        self.secret = secret
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds
        self.timeout = timeout
        self.allowed_networks = tuple(allowed_networks)
        self.threads = threads
        self._queue = queue.Queue(maxsize=_QUEUE_SIZE)
        self._queued = set()  # job ids waiting or being sent: a job is offered again every tick until claimed
        self._workers = set()
        self._lock = threading.Lock()

    def send_due(self, job_id):
        """Queue the job's next attempt for a delivery thread (which claims it if still due).

        Returns False when it is already queued or the queue is full: the job
        stays due, so a later tick offers it again.
        """
        with self._lock:
            if job_id in self._queued:
                return False
            try:
                self._queue.put_nowait(job_id)
            except queue.Full:
                return False
            self._queued.add(job_id)
            while len(self._workers) < self.threads:
                thread = threading.Thread(target=self._work, name="webhook-sender", daemon=True)
                self._workers.add(thread)
                thread.start()
        return True

    def delivery_threads(self):
        """The delivery threads this sender has alive now (at most `threads`)."""
        with self._lock:
            return [thread for thread in self._workers if thread.is_alive()]

    def _work(self):
        """A delivery thread: send queued attempts one at a time; end after a while with nothing to do."""
        while True:
            try:
                job_id = self._queue.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:  # under the lock send_due sees this thread gone and starts another
                    if self._queue.empty():
                        self._workers.discard(threading.current_thread())
                        return
                continue
            try:
                self._attempt(job_id)
            except Exception:  # a bug in one attempt must not end the thread
                log.exception("webhook of job %s: attempt failed", job_id)
            finally:
                with self._lock:
                    self._queued.discard(job_id)

    def _claim(self, job_id):
        """Count and lease the job's next attempt if it is still due: (job, attempt) or None."""
        now = datetime.now(timezone.utc)
        claimed = {}

        def claim(job):
            when = due_at(job)
            if when is None or when > now:
                return False
            hook = job["webhook"]
            if hook["attempts"] >= self.max_attempts:
                # The last attempt was claimed but never recorded (its process died): that was the last one.
                hook["sending_until"] = None
                hook["gave_up_at"] = utc_now()
                hook["last_error"] = hook.get("last_error") or OUTCOME_INTERRUPTED
                return None
            hook["attempts"] += 1
            hook["sending_until"] = (now + timedelta(seconds=self.timeout + _CLAIM_MARGIN_SECONDS)).isoformat(
                timespec="milliseconds"
            )
            claimed["attempt"] = hook["attempts"]

        try:
            job = self.store.update(job_id, claim)
        except (JobNotFound, JobFileUnreadable):
            return None
        return (job, claimed["attempt"]) if claimed else None

    def _attempt(self, job_id):
        """Claim, build, sign and POST the job's status body; record the outcome."""
        claimed = self._claim(job_id)
        if claimed is None:
            return
        started = time.monotonic()
        job, attempt = claimed
        status, outcome, reason = None, OUTCOME_INTERNAL, "not sent"
        try:
            body = json.dumps(self.describe(job), sort_keys=True).encode("utf-8")
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "hunyuan-api-webhook",
                EVENT_HEADER: f"job.{job['status']}",
                TIMESTAMP_HEADER: str(int(time.time())),
            }
            if self.secret:
                headers[SIGNATURE_HEADER] = sign(self.secret, body)
            left = self.timeout - (time.monotonic() - started)  # the deadline runs from the claim
            status, outcome, reason = webhook_client.post(
                job["webhook"]["url"], body, headers, left, self.allowed_networks
            )
        except Exception:  # a bug here must not leave the attempt claimed until its lease ends
            log.exception("webhook of job %s, attempt %s could not be sent", job_id, attempt)
        if outcome is not None:
            log.warning("webhook of job %s, attempt %s: %s (%s)", job_id, attempt, outcome, reason)
        self._record(job_id, attempt, status, outcome)

    def _record(self, job_id, attempt, status, error):
        """Write an attempt's outcome: delivered, retry later, or given up.

        `error` is the coarse outcome sentence (None when delivered): it is what
        the job's status shows, so it never carries the receiver's words.
        """

        def record(job):
            hook = job.get("webhook")
            if not hook or hook.get("attempts") != attempt:
                return False
            now = datetime.now(timezone.utc)
            hook["sending_until"] = None
            hook["last_status"] = status
            hook["last_error"] = error
            if error is None:
                hook["delivered_at"] = utc_now()
            elif attempt >= self.max_attempts:
                hook["gave_up_at"] = utc_now()
            else:
                delay = min(self.retry_seconds * 2 ** (min(attempt, 40) - 1), _MAX_RETRY_DELAY_SECONDS)
                hook["next_attempt_at"] = (now + timedelta(seconds=delay)).isoformat(timespec="milliseconds")

        try:
            self.store.update(job_id, record)
        except (JobNotFound, JobFileUnreadable):
            pass  # deleted while sending: nothing left to record
