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
    if not identity or not identity.get("pid"):
        return False
    try:
        process = psutil.Process(identity["pid"])
        if abs(process.create_time() - identity["started"]) > _START_TIME_TOLERANCE:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
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
