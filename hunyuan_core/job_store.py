"""Jobs as JSON files in a data folder, shared by every web worker and runner.

Layout of the data folder (see docs/job-file.md for the job file itself):

    jobs/<job_id>.json    one job record each
    videos/<job_id>.mp4   finished videos (written elsewhere, renamed in when whole)
    videos/<job_id>.jpg   their poster images (the first frame)
    logs/<job_id>.log     the runner's output for that job
    inputs/<job_id>.png   the input image of an image-to-video job (hunyuan_core/images.py), normalized
    heartbeats/<job_id>   touched by a running job's work process as it progresses (hunyuan_core/heartbeat.py)
    locks/                lock files; never the files they protect
    index.sqlite3         the job index (hunyuan_core/job_index.py), rebuilt from jobs/ when missing

Every read-modify-write happens under one store-wide file lock, so a progress
update from a runner and a status change from a web worker can never overwrite
each other. Readers take no lock: writes are atomic renames, so a file is always
either the old or the new version.

Somewhat over 300 lines, on purpose: every file a job owns is named, written and
removed by this one class, so nothing else in the project spells a job's paths.
"""

import json
import os
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from . import processes
from .atomic_file import write_bytes_atomic, write_json_atomic
from .job_index import JobIndex
from .job_index_rows import file_identity
from .job_record import JobStatus, input_filename, is_job_id, poster_filename, utc_now, video_filename
from .job_schema import JobSchemaError, check_job
from .regular_file import NotARegularFile, open_regular, remove

# A job record is a few kilobytes (a prompt is at most 2000 characters); a file far
# larger than any record is refused before it is read into memory.
MAX_JOB_FILE_BYTES = 4 * 1024 * 1024
# The lock whoever starts, stops or removes a runner holds (supervisor, guard, cancel, delete): held, no
# runner slot changes hands. Its name is spelled here only.
SUPERVISOR_LOCK = "supervisor"
# Records kept for read_many(shared=True): a few listing pages' worth.
SHARED_RECORDS = 1000


class JobNotFound(LookupError):
    """No job file exists for that id."""


class JobFileUnreadable(Exception):
    """A job file exists but cannot be parsed as a job record."""

    def __init__(self, job_id, path, reason):
        super().__init__(f"job file {path} is unreadable: {reason}")
        self.job_id = job_id
        self.path = str(path)
        self.reason = reason


class JobStore:
    """The folder of job files and everything stored beside them."""

    distributed = False  # the embedded default: one host (RedisJobStore is the many-host one)

    def __init__(self, data_dir):
        self.root = Path(data_dir)
        self.jobs_dir = self.root / "jobs"
        self.videos_dir = self.root / "videos"
        self.logs_dir = self.root / "logs"
        self.locks_dir = self.root / "locks"
        self.heartbeats_dir = self.root / "heartbeats"
        self.inputs_dir = self.root / "inputs"
        for folder in (self.jobs_dir, self.videos_dir, self.logs_dir, self.locks_dir, self.heartbeats_dir,
                       self.inputs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(self.locks_dir / "jobs.lock")
        # Listing and counting come from the index; a single job's record from its file.
        self.index = JobIndex(self)
        self._shared = {}  # job id -> (file identity, record), for read_many(shared=True)

    # -- paths -------------------------------------------------------------

    def job_path(self, job_id):
        """Where the record of `job_id` lives."""
        return self.jobs_dir / f"{job_id}.json"

    def video_path(self, job_id):
        """Where the finished video of `job_id` lives."""
        return self.videos_dir / video_filename(job_id)

    def partial_video_path(self, job_id):
        """Where a runner writes the video before it is complete (never served)."""
        return self.videos_dir / f".{job_id}.mp4.partial"

    def poster_path(self, job_id):
        """Where the poster image (first frame, JPEG) of `job_id` lives."""
        return self.videos_dir / poster_filename(job_id)

    def partial_poster_path(self, job_id):
        """Where a runner writes the poster before renaming it into place."""
        return self.videos_dir / f".{job_id}.jpg.partial"

    def log_path(self, job_id):
        """Where the runner's output for `job_id` goes."""
        return self.logs_dir / f"{job_id}.log"

    def input_path(self, job_id):
        """Where the input image of an image-to-video job lives (a normalized PNG)."""
        return self.inputs_dir / input_filename(job_id)

    def heartbeat_path(self, job_id):
        """The file a running job's work process touches as it makes progress."""
        return self.heartbeats_dir / job_id

    def supervisor_lock(self):
        """The supervisor lock (SUPERVISOR_LOCK): held while runner slots are counted, filled or freed."""
        return FileLock(self.lock_path(SUPERVISOR_LOCK))

    def lock_path(self, name):
        """A lock file in the store's locks folder."""
        return self.locks_dir / f"{name}.lock"

    # -- reading -----------------------------------------------------------

    def get(self, job_id):
        """Read one job record.

        Raises JobNotFound for an unknown id (or one that is not a job id at all)
        and JobFileUnreadable when the name exists but does not hold a job record
        every reader can use (job_schema.py): bad bytes, JSON of another shape, a
        directory, a symbolic link (never followed), an empty file.
        """
        if not is_job_id(job_id):
            raise JobNotFound(job_id)
        path = self.job_path(job_id)
        try:
            handle, _ = open_regular(path)
            with handle:
                data = handle.read(MAX_JOB_FILE_BYTES + 1)
        except FileNotFoundError:
            raise JobNotFound(job_id) from None
        except NotARegularFile as exc:
            raise JobFileUnreadable(job_id, path, exc.kind) from None
        except OSError as exc:
            raise JobFileUnreadable(job_id, path, exc.strerror or str(exc)) from None
        return _parse_job(job_id, path, data)

    def list(self):
        """Read every job record.

        Returns `(jobs, unreadable)`: the good records, oldest first, and a
        JobFileUnreadable for each file that could not be read, so callers can
        report broken files instead of silently dropping them.
        """
        jobs, unreadable = [], []
        # glob lists links, directories and FIFOs too: get() reports each as unreadable.
        for path in sorted(self.jobs_dir.glob("*.json")):
            job_id = path.stem
            if not is_job_id(job_id):
                continue  # not ours: an operator's backup or note
            try:
                jobs.append(self.get(job_id))
            except JobNotFound:
                continue  # deleted between the listing and the read
            except JobFileUnreadable as exc:
                unreadable.append(exc)
        jobs.sort(key=lambda job: (job["created_at"], job["job_id"]))
        return jobs, unreadable

    def read_many(self, job_ids, shared=False):
        """The records of `job_ids`, in that order, skipping any deleted or broken since they were listed.

        With `shared`, a record read before from a file of the same identity (inode, size,
        mtime) is handed out again instead of being parsed and checked once more: for
        readers that only look (listing pages and queue plans), never edit.
        """
        jobs = []
        for job_id in job_ids:
            try:
                jobs.append(self._read_shared(job_id) if shared else self.get(job_id))
            except (JobNotFound, JobFileUnreadable):
                continue
        return jobs

    def _read_shared(self, job_id):
        identity = file_identity(self.job_path(job_id))
        cached = self._shared.get(job_id)
        if identity is not None and cached is not None and cached[0] == identity:
            return cached[1]
        job = self.get(job_id)
        if len(self._shared) >= SHARED_RECORDS:
            self._shared.pop(next(iter(self._shared)))  # the oldest entry: a small, bounded cache
        self._shared[job_id] = (identity, job)
        return job

    def unfinished_jobs(self, shared=False):
        """The queued and processing jobs, oldest first (from the index: finished files are not read)."""
        return self.read_many(self.index.unfinished_ids(), shared)

    def active_jobs(self):
        """The jobs that still matter to dispatch: unfinished, or with a runner not yet ended.

        The index lists them; only their files are read. A finished job whose runner
        has recorded its end and whose processes are all gone is settled: the index
        remembers it (for that file identity) and it is not read again.
        Unreadable files are left out (list() reports them). Oldest first.
        """
        jobs = []
        for job in self.read_many(self.index.active_ids()):
            runner = job.get("runner") or {}
            # A guard that has recorded its end may take a moment more to exit: until no process
            # of the job is alive, the job still matters to dispatch (its slot is not free yet).
            ended = not runner or (runner.get("ended_at") and not processes.runner_alive(job))
            if JobStatus(job["status"]).is_terminal and ended:
                identity = file_identity(self.job_path(job["job_id"]))
                if identity is not None:
                    self.index.mark_runner_dead(job["job_id"], identity)
            else:
                jobs.append(job)
        return jobs

    # -- writing -----------------------------------------------------------

    @contextmanager
    def locked(self):
        """Hold the store-wide lock, for read-modify-write sequences spanning several jobs."""
        with self._lock:
            yield

    def create(self, job):
        """Write a new job record."""
        with self._lock:
            write_json_atomic(self.job_path(job["job_id"]), job)
            self.index.record(job["job_id"], job)
        return job

    def save(self, job):
        """Write an edited record whole, with its index row (for a caller that read it under `locked()`)."""
        with self._lock:
            write_json_atomic(self.job_path(job["job_id"]), job)
            self.index.record(job["job_id"], job)
        return job

    def update(self, job_id, change):
        """Apply `change(job)` to a job under the lock and write the result.

        `change` edits the dict in place; it may return False to skip the write
        (when it finds nothing to do). Returns the record as it now stands.
        """
        with self._lock:
            job = self.get(job_id)
            if change(job) is False:
                return job
            job["updated_at"] = utc_now()
            write_json_atomic(self.job_path(job_id), job)
            self.index.record(job_id, job)
            return job

    def save_input(self, job_id, image):
        """Store `image` (an images.InputImage) as the input of `job_id`; returns the job file's `image` field.

        Written before the job's record, so a runner never finds a record without its
        image; a submission that then fails removes it again with discard_input.
        """
        write_bytes_atomic(self.input_path(job_id), image.png)
        return image.record(input_filename(job_id))

    def read_input(self, job_id):
        """The stored input image of `job_id` (PNG bytes), or None when it is gone (never through a link)."""
        try:
            handle, _info = open_regular(self.input_path(job_id))
        except OSError:
            return None
        with handle:
            return handle.read()

    def discard_input(self, job_id):
        """Remove the input image of a job that was never created (its submission failed)."""
        remove(self.input_path(job_id))

    # -- idempotency keys (hunyuan_core/idempotency.py) ----------------------

    def _key_entry_path(self, digest):
        return self.root / "idempotency" / f"{digest}.json"

    def read_key_entry(self, digest):
        """The Idempotency-Key entry stored under `digest` (idempotency/<digest>.json), or None."""
        try:
            return json.loads(self._key_entry_path(digest).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None

    def write_key_entry(self, digest, entry):
        """Store an Idempotency-Key entry under `digest`."""
        path = self._key_entry_path(digest)
        path.parent.mkdir(exist_ok=True)
        write_json_atomic(path, entry)

    def forget_key_entry(self, digest):
        """Remove the Idempotency-Key entry under `digest`."""
        self._key_entry_path(digest).unlink(missing_ok=True)

    def runner_alive(self, job):
        """True while any process of `job`'s runner is alive on this host (processes.runner_alive)."""
        return processes.runner_alive(job)

    def signature(self, job_id):
        """What changes whenever `job_id` or the queue around it changes (None: no such job): file and folder stats."""
        try:
            # lstat: a link in the job's place is a change like any other (and never followed).
            info = os.lstat(self.job_path(job_id))
            folder = self.jobs_dir.stat()
        except FileNotFoundError:
            return None
        return info.st_ino, info.st_size, info.st_mtime_ns, folder.st_mtime_ns

    def runs_here(self, job):
        """True while a process of `job`'s runner is alive on this host (all runners are, in file mode)."""
        return processes.runner_alive(job)

    def publish(self, job_id, kinds):
        """Nothing to do: finished files are served from this data folder where the runner put them."""

    def live_log(self, job_id):
        """None: a running job's log is its file in logs/, read directly."""
        return None

    def delete(self, job_id):
        """Remove a job's record, video, poster, their partial files, log and input image.

        Whatever holds those names goes: a broken record that is a directory too,
        and a link is removed itself, never what it points to.
        """
        if not is_job_id(job_id):
            raise JobNotFound(job_id)
        with self._lock:
            for path in (
                self.job_path(job_id),
                self.video_path(job_id),
                self.partial_video_path(job_id),
                self.poster_path(job_id),
                self.partial_poster_path(job_id),
                self.log_path(job_id),
                self.heartbeat_path(job_id),
                self.input_path(job_id),
            ):
                remove(path)
            self.index.forget(job_id)


def _parse_job(job_id, path, data):
    """Decode, parse and check a job file's bytes; the one way a record gets to any reader."""
    if len(data) > MAX_JOB_FILE_BYTES:
        raise JobFileUnreadable(job_id, path, f"larger than {MAX_JOB_FILE_BYTES} bytes; not a job record")
    if not data:
        raise JobFileUnreadable(job_id, path, "not valid JSON (the file is empty)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JobFileUnreadable(job_id, path, f"not valid UTF-8 (byte {data[exc.start]:#04x} at {exc.start})") from None
    try:
        job = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise JobFileUnreadable(job_id, path, "not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, an integer of thousands of digits
        raise JobFileUnreadable(job_id, path, f"not valid JSON ({exc})") from None
    try:
        return check_job(job, job_id)
    except JobSchemaError as exc:
        raise JobFileUnreadable(job_id, path, str(exc)) from None


def _refuse_constant(name):
    """json's hook for NaN and Infinity, which are not JSON and no field of a record may hold."""
    raise ValueError(f"{name} is not a JSON number")
