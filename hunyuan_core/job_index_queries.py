"""What the service asks the job index (the questions; hunyuan_core/job_index.py keeps the index itself)."""

import json


class IndexQueries:
    """Reads of the job index, mixed into JobIndex: each runs after its cheap folder check (`_query`)."""

    def generation(self, finished=False):
        """A number that moves on every change (with `finished`: every change touching a finished job)."""
        key = "finished_generation" if finished else "generation"
        row = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0][0] if row else 0

    def counts(self):
        """`({status: count}, unreadable count)` over every job file."""
        by_status = dict(self._query("SELECT key, n FROM counts WHERE n > 0"))
        return by_status, by_status.pop("!unreadable", 0)

    def unreadable(self):
        """`[(job_id, reason)]` of the job files that cannot be read, by name."""
        return self._query("SELECT job_id, unreadable FROM jobs INDEXED BY jobs_unreadable WHERE unreadable IS NOT NULL "
                           "ORDER BY job_id")

    def page(self, status=None, owner=None, limit=None, every_owner=True):
        """`(ids newest first, total)` of readable jobs with `status` (any if None), of `owner` unless `every_owner`."""
        where, args = ["unreadable IS NULL"], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if not every_owner:
            where.append("owner = ?" if owner is not None else "0")
            args += [owner] if owner is not None else []
        clause = " AND ".join(where)
        if every_owner:  # the kept counts answer without walking the rows
            by_status, _ = self.counts()
            total = by_status.get(status, 0) if status is not None else sum(by_status.values())
        else:
            total = self._query(f"SELECT COUNT(*) FROM jobs WHERE {clause}", args)[0][0]
        rows = self._db().execute(f"SELECT job_id FROM jobs WHERE {clause} ORDER BY created_at DESC, job_id DESC "
                                  "LIMIT ?", [*args, -1 if limit is None else limit]).fetchall()
        return [row[0] for row in rows], total

    def page_after(self, after=None, limit=20, order="desc", owner=None, every_owner=True):
        """`(ids, has_more)`: up to `limit` readable jobs after the job `after` (None: from the start), by age.

        `order` "desc" is newest first, "asc" oldest first; with `every_owner` False
        only `owner`'s jobs count, `after` included. Raises LookupError when `after` is
        no such job (or not the owner's). One index look-up, limit + 1 rows.
        """
        where, args = ["unreadable IS NULL"], []
        if not every_owner:
            where.append("owner = ?" if owner is not None else "0")
            args += [owner] if owner is not None else []
        if after is not None:
            found = self._query(f"SELECT created_at, job_id FROM jobs WHERE job_id = ? AND {' AND '.join(where)}",
                                [after, *args])
            if not found:
                raise LookupError(after)
            where.append("(created_at, job_id) " + ("<" if order == "desc" else ">") + " (?, ?)")
            args += list(found[0])
        direction = "DESC" if order == "desc" else "ASC"
        rows = self._query(f"SELECT job_id FROM jobs WHERE {' AND '.join(where)} "
                           f"ORDER BY created_at {direction}, job_id {direction} LIMIT ?", [*args, limit + 1])
        ids = [row[0] for row in rows]
        return ids[:limit], len(ids) > limit

    def unfinished_ids(self):
        """Ids of queued and processing jobs, oldest first."""
        return [row[0] for row in self._query("SELECT job_id FROM jobs INDEXED BY jobs_unfinished WHERE terminal = 0 "
                                              "AND unreadable IS NULL ORDER BY created_at, job_id")]

    def active_ids(self):
        """Ids of jobs that matter to dispatch: unfinished, or finished with a runner not yet seen gone; oldest first."""
        # A UNION of two partial-index look-ups: an OR would walk the whole table on every tick.
        return [row[0] for row in self._query(
            "SELECT job_id, created_at FROM jobs INDEXED BY jobs_unfinished WHERE terminal = 0 AND unreadable IS NULL "
            "UNION SELECT job_id, created_at FROM jobs INDEXED BY jobs_runners WHERE runner IS NOT NULL AND "
            "runner_dead = 0 AND unreadable IS NULL "
            "ORDER BY created_at, job_id")]

    def runners(self):
        """`[{"runner": {"guard", "worker"}}]` of every job whose runner processes may still be alive."""
        rows = self._query("SELECT runner FROM jobs INDEXED BY jobs_runners WHERE runner IS NOT NULL AND "
                           "runner_dead = 0 AND unreadable IS NULL")
        return [{"runner": json.loads(row[0])} for row in rows]

    def due(self, now, video_ttl):
        """`[(job_id, terminal, expires_at, webhook_due)]` with work for housekeeping at `now` (epoch seconds)."""
        columns = "SELECT job_id, terminal, expires_at, webhook_due FROM jobs WHERE unreadable IS NULL AND "
        statement = columns + "webhook_due <= ?"
        if video_ttl:  # each branch an index look-up; an OR would walk the table on every tick
            statement += f" UNION {columns}terminal = 1 AND expires_at IS NULL UNION {columns}terminal = 1 AND " \
                         "expires_at <= ?"
        return self._query(statement, (now, now) if video_ttl else (now,))

    def finished_rows(self):
        """`[(status, duration, queue_wait, steps, step_seconds)]` of every finished job (for the metrics)."""
        return self._query("SELECT status, duration, queue_wait, steps, step_seconds FROM jobs "
                           "WHERE terminal = 1 AND unreadable IS NULL")

    def phase_totals(self):
        """`[(phase, jobs, seconds)]`: time finished jobs spent in each phase (for the metrics)."""
        return self._query(
            "SELECT t.key, COUNT(*), SUM(t.value) FROM jobs, json_each(jobs.timings) AS t WHERE jobs.terminal = 1 "
            "AND jobs.unreadable IS NULL AND t.type IN ('integer', 'real') GROUP BY t.key")

    def unfinished_queue_waits(self):
        """Queue waits of unfinished jobs that have started (for the metrics)."""
        return [row[0] for row in self._query(
            "SELECT queue_wait FROM jobs INDEXED BY jobs_unfinished WHERE terminal = 0 AND unreadable IS NULL "
            "AND queue_wait IS NOT NULL")]

    def sql(self, statement, args=()):
        """Rows of a read-only statement (for the metrics aggregates), after the folder check."""
        return self._query(statement, args)
