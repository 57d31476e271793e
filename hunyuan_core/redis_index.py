"""The Redis store's secondary indexes: what the SQLite job index answers in file mode, as sorted sets.

Every set is ordered by the job's creation time (score: epoch seconds; Redis orders
equal scores by member, the job id, which is the file index's order too):

    hunyuan:jobs                   every job
    hunyuan:status:<status>        jobs by status (counts are ZCARDs: nothing is walked)
    hunyuan:owner:<name>           an API key's jobs; hunyuan:owner:<name>:<status> by status too
    hunyuan:unfinished             queued and processing jobs (the queue's order)
    hunyuan:active                 unfinished jobs and finished ones whose runner has not recorded its end
    hunyuan:due:webhook            score: when the job's webhook is due
    hunyuan:due:expiry             finished jobs; score: expires_at (0: not stamped yet)

`record` and `forget` add their commands to the caller's MULTI, so a record and its
entries change together.
"""

import json

from .job_index_rows import epoch, seconds_between
from .job_record import JobStatus

STATUSES = tuple(status.value for status in JobStatus)


def _metrics_row(job):
    """What the metrics need of a finished job: status, duration, queue wait, steps, mean step, phase times."""
    mean = job.get("step_seconds")
    return [job["status"], seconds_between(job.get("started_at"), job.get("finished_at")),
            seconds_between(job.get("created_at"), job.get("started_at")), job.get("step") or 0,
            mean if isinstance(mean, (int, float)) and not isinstance(mean, bool) else None,
            job.get("timings") or {}]


class RedisIndex:
    """Index writes (inside the store's transactions) and the queries the service asks."""

    reconcile_seconds = 0  # nothing to reconcile: records and entries change in one transaction

    def __init__(self, store):
        self.store = store

    def _key(self, *parts):
        return self.store.key(*parts)

    # -- writes (added to the caller's pipeline) -----------------------------

    def record(self, pipe, job):
        """Queue the index entries of `job` as it now stands on `pipe`."""
        from .webhooks import due_at

        job_id, status = job["job_id"], job["status"]
        created = epoch(job.get("created_at")) or 0.0
        terminal = JobStatus(status).is_terminal
        owner = job.get("owner")
        pipe.zadd(self._key("jobs"), {job_id: created})
        for other in STATUSES:
            if other != status:
                pipe.zrem(self._key("status", other), job_id)
                if owner is not None:
                    pipe.zrem(self._key("owner", owner, other), job_id)
        pipe.zadd(self._key("status", status), {job_id: created})
        if owner is not None:
            pipe.zadd(self._key("owner", owner), {job_id: created})
            pipe.zadd(self._key("owner", owner, status), {job_id: created})
        runner = job.get("runner") if isinstance(job.get("runner"), dict) else None
        if terminal:
            pipe.zrem(self._key("unfinished"), job_id)
        else:
            pipe.zadd(self._key("unfinished"), {job_id: created})
        if not terminal or (runner and not runner.get("ended_at")):
            pipe.zadd(self._key("active"), {job_id: created})
        else:
            pipe.zrem(self._key("active"), job_id)
        due = epoch(due_at(job))
        if due is None:
            pipe.zrem(self._key("due", "webhook"), job_id)
        else:
            pipe.zadd(self._key("due", "webhook"), {job_id: due})
        if terminal:
            pipe.zadd(self._key("due", "expiry"), {job_id: epoch(job.get("expires_at")) or 0.0})
        else:
            pipe.zrem(self._key("due", "expiry"), job_id)
        if terminal:
            pipe.hset(self._key("finished"), job_id, json.dumps(_metrics_row(job)))
        else:
            pipe.hdel(self._key("finished"), job_id)
        pipe.incr(self._key("generation"))
        if terminal:
            pipe.incr(self._key("generation", "finished"))

    def forget(self, pipe, job_id, owner=None):
        """Queue the removal of every entry of `job_id` (owned by `owner`) on `pipe`."""
        if owner is not None:
            pipe.zrem(self._key("owner", owner), job_id)
            for status in STATUSES:
                pipe.zrem(self._key("owner", owner, status), job_id)
        for name in ("jobs", "unfinished", "active"):
            pipe.zrem(self._key(name), job_id)
        for status in STATUSES:
            pipe.zrem(self._key("status", status), job_id)
        pipe.zrem(self._key("due", "webhook"), job_id)
        pipe.zrem(self._key("due", "expiry"), job_id)
        pipe.hdel(self._key("finished"), job_id)
        pipe.incr(self._key("generation"))
        pipe.incr(self._key("generation", "finished"))

    # -- what file mode's index does that needs nothing here -------------------

    def open(self):
        """Nothing to build: the indexes are written with the records."""

    def reconcile_if_due(self):
        """Nothing to reconcile: records and index entries change in one transaction."""

    def mark_runner_dead(self, job_id, identity=None):
        """Drop a settled job from the active set."""
        self.store.call(lambda r: r.zrem(self._key("active"), job_id))

    # -- queries -------------------------------------------------------------

    def generation(self, finished=False):
        """A number that moves on every change (with `finished`: every change touching a finished job)."""
        key = self._key("generation", "finished") if finished else self._key("generation")
        return int(self.store.call(lambda r: r.get(key)) or 0)

    def counts(self):
        """`({status: count}, 0)`: records in Redis are written whole by the service, never unreadable files."""

        def count(r):
            pipe = r.pipeline(transaction=False)
            for status in STATUSES:
                pipe.zcard(self._key("status", status))
            return pipe.execute()

        numbers = self.store.call(count)
        return {status: n for status, n in zip(STATUSES, numbers) if n}, 0

    def unreadable(self):
        """No unreadable records to list (see `counts`)."""
        return []

    def _listing_key(self, status, owner, every_owner):
        if every_owner:
            return self._key("status", status) if status is not None else self._key("jobs")
        if owner is None:
            return None  # jobs without an owner belong to nobody a key can name
        return self._key("owner", owner, status) if status is not None else self._key("owner", owner)

    def page(self, status=None, owner=None, limit=None, every_owner=True):
        """`(ids newest first, total)` of jobs with `status` (any if None), of `owner` unless `every_owner`."""
        key = self._listing_key(status, owner, every_owner)
        if key is None:
            return [], 0

        def read(r):
            pipe = r.pipeline(transaction=False)
            pipe.zcard(key)
            pipe.zrevrange(key, 0, -1 if limit is None else limit - 1)
            return pipe.execute()

        total, ids = self.store.call(read)
        return [i.decode() for i in ids], total

    def page_after(self, after=None, limit=20, order="desc", owner=None, every_owner=True):
        """`(ids, has_more)`: up to `limit` jobs after the job `after` (None: from the start), by age.

        LookupError when `after` is no such job (or not the owner's).
        """
        key = self._listing_key(None, owner, every_owner)
        if key is None:
            if after is not None:
                raise LookupError(after)
            return [], False
        descending = order == "desc"

        def read(r):
            start = 0
            if after is not None:
                rank = r.zrevrank(key, after) if descending else r.zrank(key, after)
                if rank is None:
                    raise LookupError(after)
                start = rank + 1
            fetch = r.zrevrange if descending else r.zrange
            return fetch(key, start, start + limit)

        ids = [i.decode() for i in self.store.call(read)]
        return ids[:limit], len(ids) > limit

    def all_ids(self):
        """Every job id, oldest first (for hunyuan-ops)."""
        return [i.decode() for i in self.store.call(lambda r: r.zrange(self._key("jobs"), 0, -1))]

    def ids_with_status(self, status, created_before=None):
        """Ids of jobs with `status`, oldest first; only those created before `created_before` (epoch) if given."""
        top = "+inf" if created_before is None else f"({created_before}"
        key = self._key("status", status)
        return [i.decode() for i in self.store.call(lambda r: r.zrangebyscore(key, "-inf", top))]

    def with_runner_ids(self):
        """Ids of jobs whose runner may be running: active and not queued (processing, or finished with its end unrecorded)."""
        keys = [self._key("active"), self._key("status", JobStatus.QUEUED.value)]
        return sorted(i.decode() for i in self.store.call(lambda r: r.zdiff(keys)))

    def unfinished_ids(self):
        """Ids of queued and processing jobs, oldest first."""
        return [i.decode() for i in self.store.call(lambda r: r.zrange(self._key("unfinished"), 0, -1))]

    def active_ids(self):
        """Ids of jobs that matter to dispatch, oldest first."""
        return [i.decode() for i in self.store.call(lambda r: r.zrange(self._key("active"), 0, -1))]

    def runners(self):
        """`[job]` of every job whose runner may still be running (check each with store.runner_alive)."""
        return [job for job in self.store.read_many(self.active_ids()) if job.get("runner")]

    def _finished(self):
        return [json.loads(row) for row in self.store.call(lambda r: r.hvals(self._key("finished")))]

    def finished_rows(self):
        """`[(status, duration, queue_wait, steps, step_seconds)]` of every finished job (for the metrics)."""
        return [tuple(row[:5]) for row in self._finished()]

    def phase_totals(self):
        """`[(phase, jobs, seconds)]`: time finished jobs spent in each phase (for the metrics)."""
        totals = {}
        for row in self._finished():
            for phase, seconds in (row[5] or {}).items():
                if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
                    count, total = totals.get(phase, (0, 0.0))
                    totals[phase] = (count + 1, total + seconds)
        return [(phase, count, total) for phase, (count, total) in totals.items()]

    def unfinished_queue_waits(self):
        """Queue waits of unfinished jobs that have started (for the metrics)."""
        waits = []
        for job in self.store.read_many(self.unfinished_ids()):
            wait = seconds_between(job.get("created_at"), job.get("started_at"))
            if wait is not None:
                waits.append(wait)
        return waits

    def due(self, now, video_ttl):
        """`[(job_id, terminal, expires_at, webhook_due)]` with housekeeping work due at `now` (epoch seconds)."""
        from .webhooks import due_at

        def read(r):
            ids = set(r.zrangebyscore(self._key("due", "webhook"), "-inf", now))
            if video_ttl:
                ids |= set(r.zrangebyscore(self._key("due", "expiry"), "-inf", now))
            return sorted(i.decode() for i in ids)

        rows = []
        for job in self.store.read_many(self.store.call(read)):
            terminal = JobStatus(job["status"]).is_terminal
            rows.append((job["job_id"], int(terminal), epoch(job.get("expires_at")), epoch(due_at(job))))
        return rows
