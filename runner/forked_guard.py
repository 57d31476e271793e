"""A job's guard forked from the worker host's slot process, instead of started as a new interpreter.

On one host the supervisor starts `python -m runner` for each job: a fresh interpreter
that imports the core before it can start the work process, about a quarter of a CPU
second. A worker host's slot process has all of that imported already, so here the
guard is a fork of it: the same code (runner/guard.py `run`) in a process of its own,
in a session of its own with the job's log as its output, started in milliseconds.
The work process that loads the model is still a fresh interpreter (the guard starts
it), so every job's memory is still given back when it ends.

The slot process runs no threads when it forks (RQ's SimpleWorker works in its main
thread), so the child inherits no lock held by another thread.
"""

import os
import select
import signal
import subprocess
import sys
import traceback

from hunyuan_core import PROJECT_ROOT


class ForkedGuard:
    """The parent's handle on a forked guard: `pid`, `returncode`, `poll()` and `wait(timeout)` as Popen has."""

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None
        self._fd = os.pidfd_open(pid)  # readable once the process has exited: waits without polling

    def poll(self):
        """The exit code once the guard has ended (negative: killed by that signal), else None; reaps it."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                os.close(self._fd)
        return self.returncode

    def wait(self, timeout=None):
        """Wait up to `timeout` seconds for the guard to end; subprocess.TimeoutExpired if it has not."""
        if self.returncode is None:
            select.select([self._fd], [], [], timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired("forked guard", timeout)
        return self.returncode


def fork_guard(job_id, data_dir, work_command, timeout, stall_seconds, log_path):
    """Fork a guard for `job_id` writing to `log_path` (never through a link); returns its ForkedGuard."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:
        os.close(log_fd)
        raise
    if pid == 0:
        _be_the_guard(log_fd, job_id, data_dir, work_command, timeout, stall_seconds)  # never returns
    os.close(log_fd)
    return ForkedGuard(pid)


def _be_the_guard(log_fd, job_id, data_dir, work_command, timeout, stall_seconds):
    """The child: a session of its own, the log as its output, then the guard's run; exits with its code."""
    code = 1
    try:
        os.setsid()  # killed as a group with its work process, never with the slot that forked it
        for name in (signal.SIGINT, signal.SIGTERM):
            signal.signal(name, signal.SIG_DFL)  # the slot's RQ handlers are not the guard's
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.chdir(PROJECT_ROOT)
        from runner import guard

        code = guard.run(job_id, str(data_dir), work_command, timeout, stall_seconds)
    except BaseException:  # noqa: BLE001 - whatever happens, the child must never return into the slot
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
