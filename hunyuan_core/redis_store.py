"""Jobs in Redis (REDIS_URL): the same records and the same store interface as job files, for many hosts.

Each job is one key, `hunyuan:job:<id>`, holding exactly the JSON document a job file
holds (format version 1: docs/job-file.md), so operators' scripts read `hunyuan-ops
export`'s files as they read a data folder. Listing, counting, the queue's order and
housekeeping's due dates come from secondary indexes kept beside the records
(hunyuan_core/redis_index.py), written in the same MULTI as the record, so no request
walks all jobs.

Every read-modify-write is optimistic: WATCH the record, apply the change, write it
and its index entries in one transaction, retry if anyone wrote in between. Two hosts
can therefore never overwrite each other's change, without a cluster-wide lock on
every progress update. `locked()` is a real Redis lock, for the few sequences that span
several records (idempotency look-up, admission and creation of a submission).

Videos, posters, logs and input images live in the artifact store
(hunyuan_core/artifacts.py); this host's data folder holds what a runner writes
before it is published (partial videos, the running log, heartbeats) and the models.

Redis being unreachable is StoreUnavailable, a 503 with Retry-After to API clients.
A store opened with `patience` (runners and worker hosts) waits that long for Redis
to come back instead, so a Redis restart does not fail the jobs running through it.

Somewhat over 300 lines, on purpose, as job_store.py: it answers every method JobStore
answers, and every key a job owns is named, written and removed by this one class.
"""

import json
import time
from contextlib import contextmanager
from pathlib import Path

import redis
from filelock import FileLock

from . import processes
from .errors import Unavailable
from .job_record import JobStatus, is_job_id, utc_now
from .job_store import MAX_JOB_FILE_BYTES, SUPERVISOR_LOCK, JobFileUnreadable, JobNotFound, _parse_job
from .redis_index import RedisIndex

PREFIX = "hunyuan:"
# What a client is told to wait before retrying while Redis is unreachable.
RETRY_AFTER_SECONDS = 5
# A lock whose holder died is free again after this long (a submission holds it for milliseconds).
LOCK_TIMEOUT_SECONDS = 10
# How long an answer to "does this host still announce itself" is reused (a host is lost after HOST_LOST_SECONDS).
HOST_ANSWER_SECONDS = 1.0
# Redis errors that mean "not reachable right now", as opposed to a bug in a command.
DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError)


class StoreUnavailable(Unavailable):
    """The job store (Redis) cannot be reached: a 503 that tells the client when to retry."""

    def __init__(self, reason):
        super().__init__(f"The job store (Redis) is unreachable ({reason}); try again shortly.",
                         {"Retry-After": str(RETRY_AFTER_SECONDS)})


def connect(url, timeout=5.0):
    """A Redis client for `url` with short socket timeouts, so an outage is seen in seconds, not minutes."""
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                health_check_interval=15, retry_on_timeout=False)


class RedisJobStore:
    """Job records in Redis, with this host's data folder for local working files."""

    distributed = True

    def __init__(self, data_dir, url, artifacts=None, host=None, patience=0.0):
        self.root = Path(data_dir)
        self.url = url
        self.redis = connect(url)
        self.artifacts = artifacts
        self.host = host  # this host's WORKER_NAME on a worker host; None on a web host
        self.patience = patience  # seconds to wait out a Redis outage before failing (0: fail at once)
        self.jobs_dir = self.root  # no job files here: the folder this host must be able to write (GET /health)
        self.videos_dir = self.root / "videos"
        self.logs_dir = self.root / "logs"
        self.locks_dir = self.root / "locks"
        self.heartbeats_dir = self.root / "heartbeats"
        self.inputs_dir = self.root / "inputs"
        for folder in (self.videos_dir, self.logs_dir, self.locks_dir, self.heartbeats_dir, self.inputs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.index = RedisIndex(self)
        self._hosts_seen = {}  # host name -> (monotonic time asked, up): see _host_up

    # -- connection --------------------------------------------------------

    def call(self, action):
        """Run `action(redis_client)`; Redis unreachable is StoreUnavailable (after `patience` seconds of retries)."""
        deadline = time.monotonic() + self.patience
        delay = 0.2
        while True:
            try:
                return action(self.redis)
            except DOWN as exc:
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(type(exc).__name__) from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def key(self, *parts):
        """A key of this store: `hunyuan:` and the parts joined by ':'."""
        return PREFIX + ":".join(parts)

    def job_key(self, job_id):
        """The key holding the record of `job_id`."""
        return self.key("job", job_id)

    # -- local paths (this host's working files) ---------------------------

    def job_path(self, job_id):
        """Not a file in this mode: a description of where the record lives, for messages."""
        return f"redis key {self.job_key(job_id)}"

    def video_path(self, job_id):
        """Where a runner on this host moves the finished video before it is published."""
        return self.videos_dir / f"{job_id}.mp4"

    def partial_video_path(self, job_id):
        """Where a runner on this host writes the video before it is complete."""
        return self.videos_dir / f".{job_id}.mp4.partial"

    def poster_path(self, job_id):
        """Where a runner on this host writes the poster before it is published."""
        return self.videos_dir / f"{job_id}.jpg"

    def partial_poster_path(self, job_id):
        """Where a runner on this host writes the poster before renaming it into place."""
        return self.videos_dir / f".{job_id}.jpg.partial"

    def log_path(self, job_id):
        """The running job's log on the host that runs it (published to the artifact store at its end)."""
        return self.logs_dir / f"{job_id}.log"

    def input_path(self, job_id):
        """Where the host that runs an image-to-video job keeps its input image (fetched from the artifacts)."""
        return self.inputs_dir / f"{job_id}.png"

    def heartbeat_path(self, job_id):
        """The file a running job's work process touches on its host."""
        return self.heartbeats_dir / job_id

    def lock_path(self, name):
        """A lock file in this host's locks folder."""
        return self.locks_dir / f"{name}.lock"

    def supervisor_lock(self):
        """This host's lock between starting a guard and recording it (the guard waits on it)."""
        return FileLock(self.lock_path(SUPERVISOR_LOCK))

    # -- reading -----------------------------------------------------------

    def get(self, job_id):
        """Read one job record; JobNotFound for an unknown id, JobFileUnreadable for a broken one."""
        if not is_job_id(job_id):
            raise JobNotFound(job_id)
        data = self.call(lambda r: r.get(self.job_key(job_id)))
        if data is None:
            raise JobNotFound(job_id)
        return _parse_job(job_id, self.job_path(job_id), data[: MAX_JOB_FILE_BYTES + 1])

    def read_many(self, job_ids, shared=False):
        """The records of `job_ids` in that order (one MGET), skipping any deleted or broken since listed."""
        job_ids = [job_id for job_id in job_ids if is_job_id(job_id)]
        if not job_ids:
            return []
        values = self.call(lambda r: r.mget([self.job_key(job_id) for job_id in job_ids]))
        jobs = []
        for job_id, data in zip(job_ids, values):
            if data is None:
                continue
            try:
                jobs.append(_parse_job(job_id, self.job_path(job_id), data))
            except JobFileUnreadable:
                continue
        return jobs

    def list(self):
        """Every job record, oldest first, and the unreadable ones (for hunyuan-ops)."""
        ids = self.index.all_ids()
        jobs, unreadable = [], []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            values = self.call(lambda r: r.mget([self.job_key(job_id) for job_id in chunk]))
            for job_id, data in zip(chunk, values):
                if data is None:
                    continue
                try:
                    jobs.append(_parse_job(job_id, self.job_path(job_id), data))
                except JobFileUnreadable as exc:
                    unreadable.append(exc)
        return jobs, unreadable

    def unfinished_jobs(self, shared=False):
        """The queued and processing jobs, oldest first."""
        return self.read_many(self.index.unfinished_ids())

    def active_jobs(self):
        """Unfinished jobs, and finished ones whose runner has not recorded its end; oldest first."""
        jobs = []
        for job in self.read_many(self.index.active_ids()):
            runner = job.get("runner") or {}
            if JobStatus(job["status"]).is_terminal and (not runner or runner.get("ended_at")):
                self.call(lambda r, job_id=job["job_id"]: r.zrem(self.key("active"), job_id))
            else:
                jobs.append(job)
        return jobs

    def runner_alive(self, job):
        """True while `job`'s runner may still run: its end is not recorded and its host still announces itself.

        On the host that runs it, its processes are checked as in file mode.
        """
        runner = job.get("runner")
        if not isinstance(runner, dict) or runner.get("ended_at"):
            return False
        host = runner.get("host")
        if host is not None and host == self.host:
            return processes.runner_alive(job) or runner.get("guard") is None
        if host is None:
            return processes.runner_alive(job)
        return self._host_up(host)

    def _host_up(self, host):
        """Whether `host` announces itself, asked of Redis at most once a second per host.

        /health and /metrics ask this for every running job: jobs on one host share the answer.
        """
        now = time.monotonic()
        known = self._hosts_seen.get(host)
        if known is None or now - known[0] > HOST_ANSWER_SECONDS:
            known = self._hosts_seen[host] = (now, bool(self.call(lambda r: r.exists(self.key("host", host)))))
        return known[1]

    def signature(self, job_id):
        """What changes whenever `job_id` or the queue around it changes (None: no such job): the store's generation."""

        def read(r):
            pipe = r.pipeline(transaction=False)
            pipe.exists(self.job_key(job_id))
            pipe.get(self.key("generation"))
            return pipe.execute()

        exists, generation = self.call(read)
        return generation if exists else None

    def runs_here(self, job):
        """True while a process of `job`'s runner is alive on this host (for sharing its cores)."""
        runner = job.get("runner")
        return isinstance(runner, dict) and runner.get("host") == self.host and processes.runner_alive(job)

    # -- writing -----------------------------------------------------------

    @contextmanager
    def locked(self):
        """Hold the store-wide Redis lock, for sequences spanning several records (a submission)."""
        lock = self.redis.lock(self.key("lock", "store"), timeout=LOCK_TIMEOUT_SECONDS, sleep=0.002,
                               blocking_timeout=LOCK_TIMEOUT_SECONDS)
        if not self.call(lambda r: lock.acquire()):
            raise StoreUnavailable("its store lock was not free within 10 s")
        try:
            yield
        finally:
            try:
                lock.release()
            except (redis.exceptions.LockError, *DOWN):
                pass  # expired (held too long) or Redis gone: either way it is free

    def create(self, job):
        """Write a new job record and its index entries."""
        return self.save(job)

    def save(self, job):
        """Write a record whole, with its index entries (last writer wins: prefer `update`)."""
        encoded = json.dumps(job)

        def write(r):
            pipe = r.pipeline(transaction=True)
            pipe.set(self.job_key(job["job_id"]), encoded)
            self.index.record(pipe, job)
            pipe.execute()

        self.call(write)
        return job

    def update(self, job_id, change):
        """Apply `change(job)` to the record atomically (WATCH, retry on a concurrent write); returns it.

        `change` may return False to skip the write. JobNotFound if the job is gone.
        """
        if not is_job_id(job_id):
            raise JobNotFound(job_id)
        key = self.job_key(job_id)

        def attempt(r):
            with r.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(key)
                        data = pipe.get(key)
                        if data is None:
                            raise JobNotFound(job_id)
                        job = _parse_job(job_id, self.job_path(job_id), data)
                        if change(job) is False:
                            pipe.unwatch()
                            return job
                        job["updated_at"] = utc_now()
                        pipe.multi()
                        pipe.set(key, json.dumps(job))
                        self.index.record(pipe, job)
                        pipe.execute()
                        return job
                    except redis.exceptions.WatchError:
                        continue  # written in between: read it again and re-apply

        return self.call(attempt)

    def publish(self, job_id, kinds):
        """Put this host's finished files of `job_id` (`kinds`: "video", "poster", "log") into the artifact store."""
        paths = {"video": self.video_path(job_id), "poster": self.poster_path(job_id), "log": self.log_path(job_id)}
        for kind in kinds:
            if self.artifacts.local_path(job_id, kind) != paths[kind]:  # the same folder: already in place
                self.artifacts.put_file(job_id, kind, paths[kind])

    def save_input(self, job_id, image):
        """Store the input image of `job_id` in the artifact store; returns the record's `image` field."""
        from .job_record import input_filename

        self.artifacts.put_bytes(job_id, "input", image.png)
        return image.record(input_filename(job_id))

    def read_input(self, job_id):
        """The input image of `job_id` from the artifact store (PNG bytes), or None when it is gone."""
        chunks = self.artifacts.read(job_id, "input")
        if chunks is None:
            return None
        try:
            return b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()

    def discard_input(self, job_id):
        """Remove the input image of a job that was never created."""
        self.artifacts.delete(job_id)

    def delete(self, job_id):
        """Remove a job's record, index entries, artifacts and this host's working files."""
        if not is_job_id(job_id):
            raise JobNotFound(job_id)

        try:
            owner = self.get(job_id).get("owner")
        except (JobNotFound, JobFileUnreadable):
            owner = None

        def remove(r):
            pipe = r.pipeline(transaction=True)
            pipe.delete(self.job_key(job_id), self.key("log", job_id))
            self.index.forget(pipe, job_id, owner)
            pipe.execute()

        if self.artifacts is not None:
            self.artifacts.delete(job_id)
        self.call(remove)
        for path in (self.video_path(job_id), self.partial_video_path(job_id), self.poster_path(job_id),
                     self.partial_poster_path(job_id), self.log_path(job_id), self.heartbeat_path(job_id),
                     self.input_path(job_id)):
            path.unlink(missing_ok=True)

    # -- idempotency keys (hunyuan_core/idempotency.py) ----------------------

    def read_key_entry(self, digest):
        """The Idempotency-Key entry stored under `digest`, or None."""
        data = self.call(lambda r: r.get(self.key("idem", digest)))
        try:
            return None if data is None else json.loads(data)
        except ValueError:
            return None

    def write_key_entry(self, digest, entry):
        """Store an Idempotency-Key entry under `digest`."""
        self.call(lambda r: r.set(self.key("idem", digest), json.dumps(entry)))

    # -- live logs -----------------------------------------------------------

    def live_log(self, job_id):
        """The log of a job still running on some host (appended by that host), or None once published."""
        return self.call(lambda r: r.get(self.key("log", job_id)))

    def forget_key_entry(self, digest):
        """Remove the Idempotency-Key entry under `digest`."""
        self.call(lambda r: r.delete(self.key("idem", digest)))
