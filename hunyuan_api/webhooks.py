"""Webhooks: POST a job's status body to the job's `webhook_url` once it has finished.

The body is the same JSON as GET /api/status/{job_id}; the exact bytes sent are
signed with HMAC-SHA256 under WEBHOOK_SECRET (`X-Hunyuan-Signature: sha256=<hex>`).
Delivery state lives in the job file (`webhook`), and an attempt is claimed under
the store lock before it is made (`sending_until`), so with several gunicorn
workers exactly one of them sends each attempt. A failed attempt is retried after
WEBHOOK_RETRY_SECONDS, doubling each time, up to WEBHOOK_MAX_ATTEMPTS attempts.
Sending happens on a background thread: neither an API request nor a runner ever
waits for a receiver.
"""

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

from .job_record import JobStatus, parse_time, utc_now
from .job_store import JobFileUnreadable, JobNotFound

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hunyuan-Signature"
TIMESTAMP_HEADER = "X-Hunyuan-Timestamp"
EVENT_HEADER = "X-Hunyuan-Event"
# A claimed attempt whose sender died (worker restarted mid-send) is retried after this much longer.
_CLAIM_MARGIN_SECONDS = 30


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
    """Claims due webhook attempts and sends them on background threads."""

    def __init__(self, store, describe, secret="", max_attempts=5, retry_seconds=2.0, timeout=10.0):
        self.store = store
        self.describe = describe  # job record -> status body (the API's own view)
        self.secret = secret
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds
        self.timeout = timeout

    def send_due(self, job_id):
        """Claim the job's next attempt if it is still due, and send it in the background."""
        now = datetime.now(timezone.utc)
        claimed = {}

        def claim(job):
            when = due_at(job)
            if when is None or when > now:
                return False
            hook = job["webhook"]
            hook["attempts"] += 1
            hook["sending_until"] = (now + timedelta(seconds=self.timeout + _CLAIM_MARGIN_SECONDS)).isoformat(
                timespec="milliseconds"
            )
            claimed["attempt"] = hook["attempts"]

        try:
            job = self.store.update(job_id, claim)
        except (JobNotFound, JobFileUnreadable):
            return False
        if not claimed:
            return False
        thread = threading.Thread(target=self._deliver, args=(job, claimed["attempt"]),
                                  name=f"webhook-{job_id}", daemon=True)
        thread.start()
        return True

    def _deliver(self, job, attempt):
        try:
            self._post(job, attempt)
        except Exception as exc:  # a bug here must not leave the attempt claimed until its lease ends
            log.exception("webhook of job %s failed", job["job_id"])
            self._record(job["job_id"], attempt, None, f"could not send: {type(exc).__name__}: {exc}")

    def _post(self, job, attempt):
        """Build, sign and POST the job's status body; record the outcome."""
        body = json.dumps(self.describe(job), sort_keys=True).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "hunyuan-api-webhook",
            EVENT_HEADER: f"job.{job['status']}",
            TIMESTAMP_HEADER: str(int(time.time())),
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        status, error = None, None
        try:
            request = urllib.request.Request(job["webhook"]["url"], data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"the receiver answered HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            error = f"could not reach the receiver: {getattr(exc, 'reason', exc)}"
        if error is None and not 200 <= status < 300:
            error = f"the receiver answered HTTP {status}"
        self._record(job["job_id"], attempt, status, error)

    def _record(self, job_id, attempt, status, error):
        """Write an attempt's outcome: delivered, retry later, or given up."""

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
                delay = self.retry_seconds * 2 ** (attempt - 1)
                hook["next_attempt_at"] = (now + timedelta(seconds=delay)).isoformat(timespec="milliseconds")

        if error:
            log.warning("webhook of job %s, attempt %s: %s", job_id, attempt, error)
        try:
            self.store.update(job_id, record)
        except (JobNotFound, JobFileUnreadable):
            pass  # deleted while sending: nothing left to record
