"""Work on finished jobs, run from every supervisor tick: retention (VIDEO_TTL) and webhooks.

The job index keeps when each job's webhook is due and when it expires, so a
tick asks it for the jobs with work due now and reads only their files.
"""

import logging
from datetime import datetime, timedelta, timezone

from . import idempotency
from .job_record import JobStatus, parse_time
from .job_store import JobFileUnreadable, JobNotFound

log = logging.getLogger(__name__)


class Housekeeping:
    """Stamps `expires_at` on finished jobs, removes expired ones, and sends due webhooks."""

    def __init__(self, store, video_ttl=0, sender=None):
        self.store = store
        self.video_ttl = video_ttl
        self.sender = sender

    def run(self, now=None):
        """One pass over the jobs the index says have work due; returns the ids of the jobs it removed.

        Unreadable job files are skipped (GET /api/jobs reports them), and a job
        whose work fails is logged and left for the next pass: one job never
        holds up the others.
        """
        now = now or datetime.now(timezone.utc)
        removed = []
        for job_id, terminal, expires_at, webhook_due in self.store.index.due(now.timestamp(), self.video_ttl):
            summary = (bool(terminal), _datetime(expires_at), _datetime(webhook_due))
            try:
                if self._tend(job_id, summary, now):
                    removed.append(job_id)
            except Exception:
                log.exception("housekeeping of job %s failed", job_id)
        return removed

    def _tend(self, job_id, summary, now):
        """Send a due webhook, stamp or remove an expired job; returns True if the job was removed."""
        terminal, expires_at, webhook_due = summary
        if webhook_due is not None and webhook_due <= now and self.sender is not None:
            self.sender.send_due(job_id)
        if terminal and self.video_ttl:
            if expires_at is None:
                self._stamp(job_id)
            elif expires_at <= now and webhook_due is None:
                return self._remove_expired(job_id, now)
        return False

    def _stamp(self, job_id):
        """Give a finished job its `expires_at`: VIDEO_TTL seconds after it finished."""

        def stamp(job):
            if not JobStatus(job["status"]).is_terminal or job.get("expires_at"):
                return False
            finished = parse_time(job.get("finished_at") or job.get("updated_at") or job["created_at"])
            job["expires_at"] = (finished + timedelta(seconds=self.video_ttl)).isoformat(timespec="milliseconds")

        try:
            self.store.update(job_id, stamp)
        except (JobNotFound, JobFileUnreadable):
            pass

    def _remove_expired(self, job_id, now):
        """Delete an expired job with its files, re-checking under the store lock."""
        with self.store.locked():
            try:
                job = self.store.get(job_id)
            except (JobNotFound, JobFileUnreadable):
                return False
            expires_at = parse_time(job.get("expires_at"))
            if not JobStatus(job["status"]).is_terminal or expires_at is None or expires_at > now:
                return False
            if self.store.runner_alive(job):
                return False  # its runner is still exiting; next tick
            self.store.delete(job_id)
            idempotency.forget(self.store, job.get("idempotency_key_sha256"))
        return True


def _datetime(epoch):
    """Seconds since the epoch (as the index keeps times) as an aware UTC datetime; None passes through."""
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)
