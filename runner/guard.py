"""The guard: a small parent process that runs one job's work process and reports its end.

The supervisor starts `python -m runner <job_id>` in a new session; this guard
then starts the work process (which imports torch and does the rendering) and
waits for it. The parent is authoritative about a child's death: whatever way the
work process ends (an exception, `sys.exit`, SIGKILL from the OOM killer, a
timeout, a stall), the guard records the exit status and, if the job was left
unfinished, marks it failed with an error that says what happened.

It also watches the work process's progress heartbeat (hunyuan_core/heartbeat.py):
a work process that makes no progress for the stall limit (a deadlock, a stuck
read) is killed with everything it started, and its job failed saying it stalled.
The guard itself imports neither torch nor diffusers, so it costs a few megabytes.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time


from hunyuan_core import heartbeat, processes
from hunyuan_core.job_record import JobStatus, mark_failed, utc_now
from hunyuan_core.job_store import JobFileUnreadable, JobNotFound
from hunyuan_core.stores import open_runner_store


def _say(message):
    """A line in the job's log (the guard's stdout is that log)."""
    print(f"[guard {utc_now()}] {message}", flush=True)


def _is_my_job(store, job_id):
    """Wait for the supervisor to finish recording this guard, then check it did."""
    # The supervisor holds this lock from starting the guard until the job file names it.
    with store.supervisor_lock():
        try:
            job = store.get(job_id)
        except JobNotFound:
            return False
        except JobFileUnreadable as exc:
            _say(str(exc))
            return False
    guard = (job.get("runner") or {}).get("guard") or {}
    return guard.get("pid") == os.getpid() and job["status"] == JobStatus.PROCESSING.value


def _finish(store, job_id, returncode, stopped_because=None):
    """Record the work process's end, failing the job if it was left unfinished.

    `stopped_because` is the guard's reason when it stopped the work itself.
    """
    reason = stopped_because or processes.describe_exit(returncode)

    def finish(job):
        runner = job.get("runner") or {}
        runner["exit_code"] = returncode
        runner["ended_at"] = utc_now()
        job["runner"] = runner
        if not JobStatus(job["status"]).is_terminal:
            mark_failed(job, reason[0].upper() + reason[1:] + f". See the job log: logs/{job_id}.log")

    # The work process has ended: a completed job's video was already moved into place, so a
    # partial file left now is a broken one. Removed before the end is recorded, so whoever sees
    # the job failed finds nothing half-written.
    store.partial_video_path(job_id).unlink(missing_ok=True)
    try:
        return store.update(job_id, finish)
    except JobNotFound:
        return None
    except JobFileUnreadable as exc:
        _say(f"cannot record the end: {exc}")
        return None


def run(job_id, data_dir, work_command, timeout, stall_seconds=heartbeat.DEFAULT_STALL_SECONDS):
    """Run the work process for `job_id` and settle the job; returns the guard's exit code.

    `timeout` (JOB_TIMEOUT) bounds the whole run and `stall_seconds`
    (RUNNER_STALL_SECONDS) the time without progress; 0 turns either off.
    """
    store = open_runner_store(data_dir)
    if not _is_my_job(store, job_id):
        _say(f"job {job_id} is not assigned to this guard (pid {os.getpid()}); exiting")
        return 0
    limit = heartbeat.stall_limit(stall_seconds, store.get(job_id), store.root)
    beat_path = store.heartbeat_path(job_id)
    # The stall clock starts now: the work process must show progress within `limit` of its start.
    heartbeat.Heartbeat(beat_path).force()
    command = list(work_command) + [job_id, "--data-dir", str(data_dir)]
    _say(f"starting work process: {' '.join(command)}" + (f" (stall limit {limit:g} s)" if limit else ""))
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    except OSError as exc:
        reason = f"Could not start the work process: {exc}"
        store.update(job_id, lambda job: mark_failed(job, reason))
        beat_path.unlink(missing_ok=True)
        return 1
    work_process = processes.identify(child.pid)

    def record_work_process(job):
        job["runner"]["worker"] = work_process  # the job file's key for the work process

    try:
        store.update(job_id, record_work_process)
    except (JobNotFound, JobFileUnreadable) as exc:
        _say(f"cannot record the work process: {exc}")  # it runs on; its end is still waited for
    # A SIGTERM sent to the guard alone (not its group) should still stop the work.
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    stopped_because = _watch(child, timeout, limit, stall_seconds, beat_path)
    if stopped_because:
        _say(f"stopping the work process: {stopped_because}")
        processes.kill_work_of_guard(child.pid)
    returncode = child.wait()
    _say(f"work process ended: {processes.describe_exit(returncode) if returncode else 'exit code 0'}")
    job = _finish(store, job_id, returncode, stopped_because)
    beat_path.unlink(missing_ok=True)
    if job is not None:
        _say(f"job {job_id} is {job['status']}")
    return 0


def _watch(child, timeout, limit, stall_seconds, beat_path):
    """Wait for the work process to end; returns why it must be stopped (timeout, stall), or None."""
    deadline = time.monotonic() + timeout if timeout else None
    quiet = heartbeat.QuietClock()
    # Check often enough that a stall or a timeout is acted on within a quarter of its limit.
    poll = min([1.0] + [value / 4 for value in (limit, timeout) if value])
    while True:
        wait = poll if deadline is None else max(min(poll, deadline - time.monotonic()), 0.001)
        try:
            child.wait(timeout=wait)
            return None
        except subprocess.TimeoutExpired:
            pass
        if deadline is not None and time.monotonic() >= deadline:
            return f"the job exceeded JOB_TIMEOUT ({timeout:g} s) and its runner was stopped"
        if limit and (quiet.quiet_seconds(beat_path) or 0.0) >= limit:
            return heartbeat.stall_reason(limit, stall_seconds)


def main(argv=None):
    """Command line of the guard: `python -m runner JOB_ID --data-dir DIR`."""
    parser = argparse.ArgumentParser(prog="python -m runner", description="Run one job in a guarded subprocess.")
    parser.add_argument("job_id")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--work-command",
        default=json.dumps([sys.executable, "-m", "runner.render"]),
        help="JSON list: the work process command; the job id and --data-dir are appended",
    )
    parser.add_argument("--timeout", type=float, default=0, help="seconds before the work is stopped (0: never)")
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=heartbeat.DEFAULT_STALL_SECONDS,
        help="seconds without progress before the work is stopped (0: never)",
    )
    args = parser.parse_args(argv)
    return run(args.job_id, args.data_dir, json.loads(args.work_command), args.timeout, args.stall_seconds)
