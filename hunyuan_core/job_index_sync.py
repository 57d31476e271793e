"""Keeping the job index in step with the job files: the row written with each file, and reconciling.

Mixed into JobIndex (hunyuan_core/job_index.py, which opens and builds the index
and explains how it stays true); this half writes rows and puts right what
changed behind the index's back.
"""

import logging
import os
import sqlite3
import time

from .job_index_rows import UPSERT, file_identity
from .job_record import is_job_id

log = logging.getLogger("hunyuan_core.job_index")


class IndexSync:
    """Writes and reconciling of the job index, mixed into JobIndex (uses its `_db`, `_transaction`, `_row`)."""

    # -- writing (callers hold the store lock) -------------------------------

    def record(self, job_id, job=None):
        """Write the row of `job_id` as its file now stands (`job`: the record just written), and the folder's mtime."""
        identity = file_identity(self.store.job_path(job_id))
        try:
            row = None if identity is None else self._row(job_id, identity, job)
            with self._transaction() as conn:
                old = conn.execute("SELECT terminal FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
                if row is None:
                    conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
                else:
                    conn.execute(UPSERT, row)
                self._stamp(conn, bool(old and old[0]) or bool(row and row[2]))
        except sqlite3.Error as exc:
            # The file is written and is the truth; the stale folder mtime makes the next reader reconcile.
            log.warning("job index: could not record job %s (%s)", job_id, exc)

    def forget(self, job_id):
        """Drop the row of a deleted job."""
        self.record(job_id)

    def _stamp(self, conn, finished):
        """Remember the folder's mtime after our own write, and count the change (for cached aggregates)."""
        folder = os.stat(self.store.jobs_dir).st_mtime_ns
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('folder_mtime_ns', ?)", (folder,))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('generation', "
                     "COALESCE((SELECT value FROM meta WHERE key = 'generation'), 0) + 1)")
        if finished:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('finished_generation', "
                         "COALESCE((SELECT value FROM meta WHERE key = 'finished_generation'), 0) + 1)")

    def mark_runner_dead(self, job_id, identity):
        """Remember that a finished job's runner has ended and all its processes are gone (they never come back)."""
        try:
            self._db().execute("UPDATE jobs SET runner_dead = 1 WHERE job_id = ? AND ino = ? AND size = ? AND mtime_ns = ?",
                               (job_id, *identity))
        except sqlite3.OperationalError as exc:  # only a saving for later reads: never worth failing a caller
            log.warning("job index: could not mark job %s settled (%s)", job_id, exc)

    # -- keeping it true ---------------------------------------------------

    def check_folder(self):
        """Reconcile now if the jobs folder changed since the last write the index knows of (one stat)."""
        if self._folder_known():
            return
        # A writer may be between its file and its row (it holds the store lock for both): wait for it,
        # then look again. Only a change from outside the store is left to reconcile.
        with self.store.locked():
            if not self._folder_known():
                self.reconcile()

    def _folder_known(self):
        """True if the jobs folder's mtime is the one recorded with the index's last write."""
        folder = os.stat(self.store.jobs_dir).st_mtime_ns
        known = self._db().execute("SELECT value FROM meta WHERE key = 'folder_mtime_ns'").fetchone()
        return known is not None and known[0] == folder

    def reconcile_if_due(self):
        """Run `reconcile()` if no process of the service has run it for `reconcile_seconds`."""
        if not self._reconcile_due():
            return 0
        with self.store.locked():
            # Every web worker's supervisor asks at about the same moment: the first one does it for all.
            return self.reconcile() if self._reconcile_due() else 0

    def _reconcile_due(self):
        """True once `reconcile_seconds` have passed since the last check, and 100 times what it cost.

        The second rule keeps the check under 1% of a core however many files are kept
        (at 100,000 a check takes most of a second, so it runs every minute or two).
        """
        meta = dict(self._db().execute("SELECT key, value FROM meta WHERE key IN ('reconciled_at', 'reconcile_cost')"))
        interval = max(self.reconcile_seconds, 100 * meta.get("reconcile_cost", 0.0))
        return "reconciled_at" not in meta or time.time() - meta["reconciled_at"] >= interval

    def reconcile(self):
        """Bring rows in line with the files: re-read only files whose identity differs; returns rows changed.

        The folder is listed without the store lock (at 100,000 files that takes most of a
        second, and writers must not wait for it); the lock is taken only to put right what
        differs, each file looked at again under it.
        """
        started = time.thread_time()
        folder = os.stat(self.store.jobs_dir).st_mtime_ns
        known = {row[0]: row[1:] for row in self._db().execute("SELECT job_id, ino, size, mtime_ns FROM jobs")}
        differ = set()
        with os.scandir(self.store.jobs_dir) as entries:
            for entry in entries:
                job_id = entry.name[:-5]
                row = known.pop(job_id, None)
                if row is None and not (entry.name.endswith(".json") and is_job_id(job_id)):
                    continue  # not a job file: an operator's note, a temporary file being written
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    info = None
                if info is None or row != (info.st_ino, info.st_size, info.st_mtime_ns):
                    differ.add(job_id)
        differ.update(known)  # rows whose file was not listed: removed
        with self.store.locked():
            rows = {job_id: self._row(job_id, identity) if identity else None
                    for job_id, identity in ((job_id, file_identity(self.store.job_path(job_id))) for job_id in differ)}
            with self._transaction() as conn:
                conn.executemany("DELETE FROM jobs WHERE job_id = ?", [(i,) for i, row in rows.items() if row is None])
                conn.executemany(UPSERT, [row for row in rows.values() if row is not None])
                if rows:
                    self._stamp(conn, True)
                elif os.stat(self.store.jobs_dir).st_mtime_ns == folder:
                    # Nothing changed since the listing began: the folder as it stands is known.
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('folder_mtime_ns', ?)", (folder,))
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('reconciled_at', ?)", (time.time(),))
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('reconcile_cost', ?)",
                             (time.thread_time() - started,))
        if rows:
            log.info("job index reconciled: %d job file(s) re-read or dropped", len(rows))
        return len(rows)
