"""Starts a runner process for each queued job, never more than MAX_WORKERS at once.

Every web worker (gunicorn process) runs one Supervisor thread; they coordinate
through a file lock, so the cap holds across all web workers and processes. Under that lock a tick:

1. finds jobs whose runner processes have all gone without finishing the job and
   marks them failed (the runner's guard normally does this itself, with the exit
   status; this catches a guard that was killed too);
2. stops runners whose progress heartbeat has been quiet for twice the stall limit
   (their guard stops them at the limit itself; this catches a guard that was
   killed or is stuck) and fails their jobs with a sentence saying they stalled;
3. counts the runner slots in use: a job holds its slot while any of its runner
   processes is alive (processes.runner_alive), whatever its status says, so a
   runner that has written "completed" but not yet exited still counts against the cap;
4. starts runners for the oldest queued jobs while slots are free.

Runners start in their own session, so restarting or recycling web workers
never kills them; the job file tells any later supervisor about them.
"""

import json
import logging
import os
import subprocess
import sys

from . import PROJECT_ROOT, heartbeat, processes
from .job_record import JobStatus, Phase, mark_failed, utc_now
from .job_store import JobFileUnreadable, JobNotFound
from .rounds import BackgroundRounds

log = logging.getLogger(__name__)

DEFAULT_WORK_COMMAND = [sys.executable, "-m", "runner.render"]


class Supervisor(BackgroundRounds):
    """Dispatches queued jobs to runner processes (a tick every `poll_interval` seconds in a
    thread from `start()`, or at once after `wake()`)."""

    thread_name = "job-supervisor"

    def __init__(
        self,
        store,
        max_workers,
        runtime=None,
        work_command=None,
        job_timeout=0,
        stall_seconds=heartbeat.DEFAULT_STALL_SECONDS,
        poll_interval=1.0,
        model_builder=None,
        housekeeping=None,
    ):
        super().__init__(poll_interval)
        self.store = store
        self.max_workers = max_workers
        self.runtime = runtime or {}
        self.work_command = list(work_command or DEFAULT_WORK_COMMAND)
        self.job_timeout = job_timeout
        self.stall_seconds = stall_seconds  # RUNNER_STALL_SECONDS; 0 = off
        self._quiet = heartbeat.QuietClock()
        self._stall_limits = {}  # job id -> its stall limit (computed once per job)
        self.model_builder = model_builder
        self.housekeeping = housekeeping  # retention and webhooks (housekeeping.py), or None
        self._lock = store.supervisor_lock()
        self._children = []

    def round(self):
        """The background thread's round (BackgroundRounds); runners keep running when it stops."""
        try:
            self.tick()
        except Exception:  # a bad tick must not skip the index check
            log.exception("supervisor tick failed")
        # The index's background check (hand edits, crashes between a file and its row);
        # whichever web worker's thread comes first does it for all of them.
        self.store.index.reconcile_if_due()

    # -- one tick ----------------------------------------------------------

    def tick(self):
        """Fail vanished runners and start queued jobs into free slots; returns the ids started."""
        self._reap_children()
        waiting_models = set()  # folders of models still being built: their jobs wait, others start
        if self.model_builder is not None:
            self.model_builder.build_in_background()
            waiting_models = self.model_builder.not_ready_paths()
        started = []
        with self._lock:
            jobs = self.store.active_jobs()
            self._stop_stalled(jobs)
            busy = 0
            for job in jobs:
                if self._holds_slot(job):
                    busy += 1
            if self.housekeeping is not None:
                try:
                    self.housekeeping.run()
                except Exception:  # retention and webhooks must never stop dispatching
                    log.exception("housekeeping failed")
            queued = [job for job in jobs if job["status"] == JobStatus.QUEUED.value
                      and (job.get("model") or {}).get("path") not in waiting_models]
            for job in queued[: max(self.max_workers - busy, 0)]:
                if self._start_runner(job["job_id"]):
                    started.append(job["job_id"])
        return started

    def _holds_slot(self, job):
        """True while any runner process of `job` is alive; records the end of runners that are gone.

        A recorded end (`ended_at`) does not free the slot by itself: a guard that has
        recorded it is still exiting, and a canceled job's processes may outlive the
        cancel. The slot is free only once no process of the job is alive, so there
        are never more runner processes alive than MAX_WORKERS.
        """
        runner = job.get("runner")
        if not runner:
            return False
        if processes.runner_alive(job):
            return True
        if not runner.get("ended_at"):
            self._settle_vanished(job["job_id"])
        return False

    def _stop_stalled(self, jobs):
        """Stop the runners of processing jobs whose heartbeat has been quiet for twice their stall limit.

        The guard stops its work process at the limit; past twice the limit the guard
        is dead or stuck, and its whole runner is stopped here instead.
        """
        watched = {}  # job id -> heartbeat path
        for job in jobs:
            if job["status"] != JobStatus.PROCESSING.value or not self.stall_seconds:
                continue
            if not processes.runner_alive(job):
                continue
            job_id = job["job_id"]
            path = watched[job_id] = self.store.heartbeat_path(job_id)
            quiet = self._quiet.quiet_seconds(path)  # None: no heartbeat file (a runner from before heartbeats)
            if quiet is None:
                continue
            if job_id not in self._stall_limits:
                self._stall_limits[job_id] = heartbeat.stall_limit(self.stall_seconds, job, self.store.root)
            limit = self._stall_limits[job_id]
            if quiet >= 2 * limit:
                self._fail_stalled(job_id, limit)
        self._quiet.keep_only(watched.values())
        self._stall_limits = {job_id: limit for job_id, limit in self._stall_limits.items() if job_id in watched}

    def _fail_stalled(self, job_id, limit):
        """Kill a stalled runner whose guard did not, and fail its job saying so."""
        reason = heartbeat.stall_reason(limit, self.stall_seconds)
        log.warning("job %s: %s (its guard did not stop it)", job_id, reason)

        def stop(job):
            if JobStatus(job["status"]).is_terminal:
                return False
            # Under the store lock, so the runner cannot write "completed" between the kill and this.
            processes.kill_runner(job.get("runner"))
            mark_failed(job, reason[0].upper() + reason[1:] + f". See the job log: logs/{job_id}.log")
            return True

        try:
            self.store.update(job_id, stop)
        except JobNotFound:
            return
        self.store.partial_video_path(job_id).unlink(missing_ok=True)
        self.store.partial_poster_path(job_id).unlink(missing_ok=True)

    def _settle_vanished(self, job_id):
        """Record that a job's runner processes are gone, failing the job if it was unfinished."""

        def settle(job):
            runner = job.get("runner") or {}
            if runner.get("ended_at") or processes.runner_alive(job):
                return False
            runner["ended_at"] = utc_now()
            job["runner"] = runner
            if not JobStatus(job["status"]).is_terminal:
                mark_failed(
                    job,
                    "The runner process disappeared without reporting an exit status (it was killed together "
                    "with its guard process, or the machine restarted); it may have run out of memory.",
                )
            return True

        try:
            self.store.update(job_id, settle)
        except (JobNotFound, JobFileUnreadable):
            pass  # gone, or broken since it was read: GET /api/jobs reports it

    def _start_runner(self, job_id):
        """Start the guard process of one queued job and record it; returns True on success."""
        command = guard_command(job_id, self.store.root, self.work_command, self.job_timeout, self.stall_seconds)
        try:
            log_file = open_log(self.store.log_path(job_id))
        except OSError as exc:
            # A directory or a link where the log goes is that one job's problem, not every tick's.
            return self._fail_start(job_id, f"could not open its log file logs/{job_id}.log ({exc.strerror or exc})")
        try:
            process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return self._fail_start(job_id, f"could not start the runner: {exc}")
        finally:
            log_file.close()
        self._children.append(process)
        guard = processes.identify(process.pid)

        def claim(job):
            if job["status"] != JobStatus.QUEUED.value:
                return False
            now = utc_now()
            job["status"] = JobStatus.PROCESSING.value
            job["phase"] = Phase.STARTING.value
            job["phase_started_at"] = now
            job["started_at"] = now
            job["runner"] = {"guard": guard, "worker": None, "runtime": dict(self.runtime), "ended_at": None}
            return True

        try:
            job = self.store.update(job_id, claim)
        except (JobNotFound, JobFileUnreadable):
            job = None
        if job is None or (job.get("runner") or {}).get("guard") != guard:
            # The job vanished or changed under us; the guard will see it is not its job and exit.
            return False
        return True

    def _fail_start(self, job_id, reason):
        """Fail a queued job whose runner could not be started; returns False (nothing started)."""
        try:
            self.store.update(job_id, lambda job: mark_failed(job, reason[0].upper() + reason[1:] + "."))
        except (JobNotFound, JobFileUnreadable):
            pass
        return False

    def _reap_children(self):
        """Collect exited runner guards so they do not linger as zombies."""
        self._children = [child for child in self._children if child.poll() is None]


def guard_command(job_id, data_dir, work_command, timeout, stall_seconds):
    """The command line that starts one job's guard (runner/guard.py), here or on a worker host."""
    return [sys.executable, "-m", "runner", job_id, "--data-dir", str(data_dir), "--work-command",
            json.dumps(list(work_command or DEFAULT_WORK_COMMAND)), "--timeout", str(timeout),
            "--stall-seconds", str(stall_seconds)]


def open_log(path):
    """Open a job's log for appending, refusing a symbolic link put in its place (it is never written through)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    return os.fdopen(fd, "ab")
