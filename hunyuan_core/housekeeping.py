"""Work on finished jobs, run from every supervisor tick: retention (VIDEO_TTL) and webhooks.

Finished jobs rarely change, so each job file's summary is kept by identity
(inode, size, mtime): a tick costs one stat per job file, and a file is parsed
again only after it was rewritten.
"""

import logging
import os
from datetime import datetime, timedelta, timezone

from . import idempotency, webhooks
from .job_record import JobStatus, is_job_id, parse_time
from .job_store import JobFileUnreadable, JobNotFound
from .supervisor import runner_alive

log = logging.getLogger(__name__)


class Housekeeping:
    """Stamps `expires_at` on finished jobs, removes expired ones, and sends due webhooks."""

    def __init__(self, store, video_ttl=0, sender=None):
        self.store = store
        self.video_ttl = video_ttl
        self.sender = sender
        self._seen = {}  # file name -> (signature, (terminal, expires_at, webhook due))

    def run(self, now=None):
        """One pass over the job files; returns the ids of the jobs it removed.

        Unreadable job files are skipped (GET /api/jobs reports them), and a job
        whose work fails is logged and left for the next pass: one job never
        holds up the others.
        """
        now = now or datetime.now(timezone.utc)
        removed = []
        seen = {}
        for path in self.store.jobs_dir.glob("*.json"):
            if not is_job_id(path.stem):
                continue
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            signature = (info.st_ino, info.st_size, info.st_mtime_ns)
            cached = self._seen.get(path.name)
            try:
                summary = cached[1] if cached and cached[0] == signature else self._summarize(path.stem)
                if summary is None:
                    continue
                seen[path.name] = (signature, summary)
                if self._tend(path.stem, summary, now):
                    removed.append(path.stem)
            except Exception:
                log.exception("housekeeping of job %s failed", path.stem)
        self._seen = seen
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

    def _summarize(self, job_id):
        try:
            job = self.store.get(job_id)
        except (JobNotFound, JobFileUnreadable):
            return None
        return (JobStatus(job["status"]).is_terminal, parse_time(job.get("expires_at")), webhooks.due_at(job))

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
            if runner_alive(job):
                return False  # its runner is still exiting; next tick
            self.store.delete(job_id)
            idempotency.forget(self.store, job.get("idempotency_key_sha256"))
        return True
