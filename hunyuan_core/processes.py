"""Telling whether a recorded process is still the same live process.

A pid alone is not an identity: after a process dies the kernel may hand its
number to another one. So the job file records each runner's pid together with
its start time, and a process counts as alive only if both still match.
"""

import os
import signal

import psutil

# Start times are floats rounded by the kernel's clock tick; allow for that.
_START_TIME_TOLERANCE = 0.05


def identify(pid):
    """The identity of a live process: `{"pid": ..., "started": ...}`."""
    return {"pid": pid, "started": psutil.Process(pid).create_time()}


def is_alive(identity):
    """True if the process recorded as `identity` is still running.

    A zombie (exited, not yet reaped by its parent) counts as dead: it holds no
    memory and will do no more work.
    """
    if not isinstance(identity, dict):
        return False
    pid = identity.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        # Most recorded runners are long gone: a null signal says so in a microsecond.
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        pass  # alive, under another user
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - identity["started"]) > _START_TIME_TOLERANCE:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def runner_alive(job):
    """True while any process of `job`'s runner (its guard or its work process) is alive.

    The one rule for "is this job still running somewhere": a job holds its worker
    slot, may not be deleted or removed by retention, and has its runner's end
    recorded only once this is False, whatever its status and `ended_at` say.
    """
    runner = job.get("runner")
    if not isinstance(runner, dict):
        return False
    return is_alive(runner.get("guard")) or is_alive(runner.get("worker"))  # "worker": the work process (its key since format 1)


def kill_runner(runner, sig=signal.SIGKILL):
    """Send `sig` to every process of a job's runner: its guard's process group, its guard, its work process.

    The guard leads its own process group and the work process (with anything it
    started) is in it, so the group signal reaches them all, even when the guard
    itself is already dead (a group lives on while any member does). The guard and
    the work process are also signalled by pid, in case either is not where the
    group signal reaches (a guard started by hand does not lead a group).
    """
    runner = runner if isinstance(runner, dict) else {}
    guard, work = runner.get("guard"), runner.get("worker")
    group = guard.get("pid") if isinstance(guard, dict) else None
    # Only a group a live process of this runner is in: with the guard gone, its pid is still in
    # use as that group's id, so it cannot belong to an unrelated group.
    if group and any(is_alive(identity) and _group_of(identity["pid"]) == group for identity in (guard, work)):
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for identity in (guard, work):
        if is_alive(identity):
            try:
                os.kill(identity["pid"], sig)
            except (ProcessLookupError, PermissionError):
                pass


def kill_work_of_guard(child_pid, sig=signal.SIGKILL):
    """From a guard: send `sig` to its work process `child_pid` and all it started, sparing the guard.

    A guard started by the supervisor leads its process group, and everything the
    work process starts stays in it: every other member of the group is signalled.
    Run by hand (not a group leader), only the work process and its descendants are.
    """
    me = os.getpid()
    for _ in range(3):  # again, for anything forked while the first signals were sent
        if os.getpgid(0) == me:
            targets = [proc for proc in psutil.process_iter() if proc.pid != me and _group_of(proc.pid) == me]
        else:
            try:
                child = psutil.Process(child_pid)
                targets = [child] + child.children(recursive=True)
            except psutil.NoSuchProcess:
                targets = []
        targets = [proc for proc in targets if _running(proc)]
        if not targets:
            return
        for proc in targets:
            try:
                proc.send_signal(sig)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass


def _group_of(pid):
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _running(proc):
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def kill_group(identity, sig=signal.SIGKILL):
    """Send `sig` to the process group led by the recorded process, if it is still alive.

    Runners lead their own process group, so this reaches the work process too.
    Returns True if a signal was sent.
    """
    if not is_alive(identity):
        return False
    try:
        os.killpg(identity["pid"], sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def describe_exit(returncode):
    """Explain a subprocess's return code in words a user can act on."""
    if returncode is None:
        return "the runner process vanished without an exit status"
    if returncode < 0:
        signum = -returncode
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        text = f"the runner process was killed by {name} (signal {signum})"
        if signum == signal.SIGKILL:
            text += "; it may have run out of memory"
        return text
    text = f"the runner process exited with code {returncode} before finishing the job"
    if returncode == 137:
        text += "; it may have run out of memory"
    return text
