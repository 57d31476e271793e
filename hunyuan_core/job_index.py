"""An SQLite index beside the job files, so listing and counting never read every file.

The job files stay the source of truth (docs/job-file.md); `DATA_DIR/index.sqlite3`
holds one row per job file with what listing, counting, dispatch, housekeeping and
metrics need, and the file identity (inode, size, mtime) the row was built from.
JobStore writes the row in the same locked write as the file. Rows are built only
from records that pass job_schema's check; a broken file gets a row with its reason.

Keeping it true without a per-request scan:
- missing or unreadable (deleted, corrupted, another schema): rebuilt from the files,
  under the store lock, by whoever opens it first;
- the jobs folder's mtime is stored with every write: a reader that finds the folder
  changed since (a file dropped in, removed or renamed by hand, a crash between a
  file write and its row) waits for any writer in progress, then reconciles if the
  folder is still not the one recorded. That costs one stat per read;
- `reconcile()` compares the folder listing (scandir + lstat) with the stored
  identities and re-reads only the files that differ; the supervisor runs it every
  INDEX_RECONCILE_SECONDS (one process for all), which catches edits made in place.

What readers ask of it is in job_index_queries.py; how writes and reconciling keep it in step
with the files in job_index_sync.py; the table and its rows in job_index_rows.py.

Concurrency: WAL, a busy timeout and short transactions; one connection per thread
and process (a connection is never used across fork: the pid is checked).
"""

import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager

from .job_index_queries import IndexQueries
from .job_index_sync import IndexSync
from .job_index_rows import SCHEMA, SCHEMA_VERSION, UPSERT, job_row, unreadable_row
from .job_record import is_job_id
from .job_schema import JobSchemaError, check_job

log = logging.getLogger(__name__)

INDEX_FILE = "index.sqlite3"
BUSY_TIMEOUT_SECONDS = 30


class JobIndex(IndexSync, IndexQueries):
    """The index of one JobStore's jobs folder: opening and building it (writes and reconciling: IndexSync)."""

    def __init__(self, store, reconcile_seconds=30.0):
        self.store = store
        self.path = store.root / INDEX_FILE
        self.reconcile_seconds = reconcile_seconds
        self._local = threading.local()

    # -- connections -------------------------------------------------------

    def _connect(self):
        """Open the index file (creating or rebuilding it as needed) for this thread and process."""
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            built = version == SCHEMA_VERSION and conn.execute(
                "SELECT value FROM meta WHERE key = 'built'").fetchone() is not None
        except sqlite3.DatabaseError:
            conn.close()
            built, conn = False, None
        if not built:
            if conn is not None:
                conn.close()
            self._rebuild()
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA synchronous=NORMAL")
        self._local.conn, self._local.pid, self._local.ino = conn, os.getpid(), os.stat(self.path).st_ino
        return conn

    def _db(self):
        """This thread's connection; a fresh one after a fork or when the index file was replaced or deleted."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            try:
                if os.stat(self.path).st_ino == self._local.ino:
                    return conn
            except FileNotFoundError:
                pass
            conn.close()
        return self._connect()

    def open(self):
        """Open the index for this thread, building it from the job files first if it is missing or unreadable."""
        self._db()

    def close(self):
        """Close this thread's connection (before a fork, say: a child must never use it)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _query(self, sql, args=()):
        """Rows of one read, after the cheap check that nothing changed the jobs folder behind the index."""
        try:
            self._catch_up()
            return self._db().execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            raise  # busy or locked past the timeout, not a broken index
        except sqlite3.DatabaseError:
            # Corrupted in place while open: build it again from the files, once, and answer from that.
            log.warning("job index %s is damaged; rebuilding it from the job files", self.path)
            broken = getattr(self._local, "ino", None)
            self.close()
            self._rebuild(broken_ino=broken)
            self._catch_up()
            return self._db().execute(sql, args).fetchall()

    def _catch_up(self):
        """`check_folder()`, except that an index that cannot be written now answers as it stands.

        A full disk or a file size limit (a runner under RLIMIT_FSIZE) makes SQLite's writes
        fail while its reads still work: a reader then gets the index as it was, which the
        next reader brings up to date, rather than an error that would fail a job.
        """
        try:
            self.check_folder()
        except sqlite3.OperationalError as exc:
            log.warning("job index: could not bring it up to date before reading (%s); answering as it stands", exc)

    @contextmanager
    def _transaction(self):
        """A short write transaction on this thread's connection, rolled back (and the connection dropped) on error."""
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            self.close()  # closing rolls back
            raise

    # -- building ----------------------------------------------------------

    def _rebuild(self, broken_ino=None):
        """Build the index from every job file, replacing whatever is at its path (under the store lock).

        `broken_ino`: the index file found damaged; rebuilt even if it looks built, unless
        another process has replaced it meanwhile.
        """
        with self.store.locked():
            try:
                if broken_ino is not None and os.stat(self.path).st_ino == broken_ino:
                    raise sqlite3.DatabaseError("damaged")
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
                ok = conn.execute("SELECT value FROM meta WHERE key = 'built'").fetchone() is not None and \
                    conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
                conn.close()
                if ok:
                    return  # another process rebuilt it while this one waited for the lock
            except (sqlite3.DatabaseError, FileNotFoundError):
                pass
            started = time.monotonic()
            for suffix in ("", "-wal", "-shm", ".tmp"):
                try:
                    os.unlink(f"{self.path}{suffix}")
                except FileNotFoundError:
                    pass
            # Built under another name and renamed in: a reader never opens a half-built index.
            conn = sqlite3.connect(f"{self.path}.tmp", isolation_level=None)
            conn.execute("PRAGMA journal_mode=OFF")
            conn.executescript(SCHEMA)
            folder = os.stat(self.store.jobs_dir).st_mtime_ns
            conn.execute("BEGIN")
            for job_id, identity in self._listing().items():
                conn.execute(UPSERT, self._row(job_id, identity))
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [("built", time.time()), ("folder_mtime_ns", folder),
                                                                ("generation", 0), ("reconciled_at", time.time())])
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.close()
            os.replace(f"{self.path}.tmp", self.path)
            log.info("job index rebuilt from the job files in %.2f s", time.monotonic() - started)

    def _listing(self):
        """{job_id: identity} of every job-file name in the jobs folder (links, folders and FIFOs included)."""
        found = {}
        with os.scandir(self.store.jobs_dir) as entries:
            for entry in entries:
                if entry.name.endswith(".json") and is_job_id(entry.name[:-5]):
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    found[entry.name[:-5]] = (info.st_ino, info.st_size, info.st_mtime_ns)
        return found

    def _row(self, job_id, identity, job=None):
        """The row of one job file (unreadable or not): from `job` just written, else read through the store's gate.

        Either way the record passes job_schema's check before a row is made of it.
        """
        from .job_store import JobFileUnreadable, JobNotFound
        try:
            return job_row(check_job(job, job_id) if job is not None else self.store.get(job_id), identity)
        except JobNotFound:
            return None
        except JobSchemaError as exc:
            return unreadable_row(job_id, identity, str(exc))
        except JobFileUnreadable as exc:
            return unreadable_row(job_id, identity, exc.reason)
