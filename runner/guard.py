"""The guard: a small parent process that runs one job's work process and reports its end.

The supervisor starts `python -m runner <job_id>` in a new session; this guard
then starts the work process (which imports torch and does the rendering) and
waits for it. The parent is authoritative about a child's death: whatever way the
work process ends (an exception, `sys.exit`, SIGKILL from the OOM killer, a
timeout), the guard records the exit status and, if the job was left unfinished,
marks it failed with an error that says what happened. The guard itself imports
neither torch nor diffusers, so it costs a few megabytes.
"""

import argparse
import json
import os
import signal
import subprocess
import sys

from filelock import FileLock

from hunyuan_api import processes
from hunyuan_api.job_record import JobStatus, mark_failed, utc_now
from hunyuan_api.job_store import JobFileUnreadable, JobNotFound, JobStore


def _say(message):
    """A line in the job's log (the guard's stdout is that log)."""
    print(f"[guard {utc_now()}] {message}", flush=True)


def _is_my_job(store, job_id):
    """Wait for the supervisor to finish recording this guard, then check it did."""
    # The supervisor holds this lock from starting the guard until the job file names it.
    with FileLock(store.lock_path("supervisor")):
        try:
            job = store.get(job_id)
        except JobNotFound:
            return False
        except JobFileUnreadable as exc:
            _say(str(exc))
            return False
    guard = (job.get("runner") or {}).get("guard") or {}
    return guard.get("pid") == os.getpid() and job["status"] == JobStatus.PROCESSING.value


def _finish(store, job_id, returncode, timed_out, timeout):
    """Record the work process's end, failing the job if it was left unfinished."""
    if timed_out:
        reason = f"the job exceeded JOB_TIMEOUT ({timeout:g} s) and its runner was stopped"
    else:
        reason = processes.describe_exit(returncode)

    def finish(job):
        runner = job.get("runner") or {}
        runner["exit_code"] = returncode
        runner["ended_at"] = utc_now()
        job["runner"] = runner
        if not JobStatus(job["status"]).is_terminal:
            mark_failed(job, reason[0].upper() + reason[1:] + f". See the job log: logs/{job_id}.log")

    try:
        job = store.update(job_id, finish)
    except JobNotFound:
        return None
    except JobFileUnreadable as exc:
        _say(f"cannot record the end: {exc}")
        return None
    if job["status"] == JobStatus.FAILED.value:
        store.partial_video_path(job_id).unlink(missing_ok=True)
    return job


def run(job_id, data_dir, worker_command, timeout):
    """Run the work process for `job_id` and settle the job; returns the guard's exit code."""
    store = JobStore(data_dir)
    if not _is_my_job(store, job_id):
        _say(f"job {job_id} is not assigned to this guard (pid {os.getpid()}); exiting")
        return 0
    command = list(worker_command) + [job_id, "--data-dir", str(data_dir)]
    _say(f"starting work process: {' '.join(command)}")
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    except OSError as exc:
        reason = f"Could not start the work process: {exc}"
        store.update(job_id, lambda job: mark_failed(job, reason))
        return 1
    worker = processes.identify(child.pid)

    def record_worker(job):
        job["runner"]["worker"] = worker

    try:
        store.update(job_id, record_worker)
    except (JobNotFound, JobFileUnreadable) as exc:
        _say(f"cannot record the work process: {exc}")  # it runs on; its end is still waited for
    # A SIGTERM sent to the guard alone (not its group) should still stop the work.
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    timed_out = False
    try:
        returncode = child.wait(timeout=timeout or None)
    except subprocess.TimeoutExpired:
        timed_out = True
        child.kill()
        returncode = child.wait()
    _say(f"work process ended: {processes.describe_exit(returncode) if returncode else 'exit code 0'}")
    job = _finish(store, job_id, returncode, timed_out, timeout)
    if job is not None:
        _say(f"job {job_id} is {job['status']}")
    return 0


def main(argv=None):
    """Command line of the guard: `python -m runner JOB_ID --data-dir DIR`."""
    parser = argparse.ArgumentParser(prog="python -m runner", description="Run one job in a guarded subprocess.")
    parser.add_argument("job_id")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--worker-command",
        default=json.dumps([sys.executable, "-m", "runner.render"]),
        help="JSON list: the work process command; the job id and --data-dir are appended",
    )
    parser.add_argument("--timeout", type=float, default=0, help="seconds before the work is stopped (0: never)")
    args = parser.parse_args(argv)
    return run(args.job_id, args.data_dir, json.loads(args.worker_command), args.timeout)
