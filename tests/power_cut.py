"""A power cut of one simulated host: SIGKILL to every process it started, wherever they went.

A host's processes are found three ways: the process tree under its main process, that
process's session and group, and a marker variable in the environment that every process of
the host inherits (runners start sessions of their own, and a runner whose parent died is
re-parented, so neither the tree nor the session alone finds them all).
"""

import os
import signal
import time

import psutil

HOST_MARKER = "HUNYUAN_TEST_HOST"


def _alive(proc):
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def host_processes(root_pid, marker):
    """Every live process of a host: all that carry its marker, plus (while `root_pid` is not yet reaped,
    else None) the tree under its main process and that process's session and group."""
    found = {}
    if root_pid is not None:
        try:
            root = psutil.Process(root_pid)
            found[root.pid] = root
            found.update((child.pid, child) for child in root.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    for proc in psutil.process_iter():
        if proc.pid in found or proc.pid == os.getpid():
            continue
        try:
            if root_pid is not None and root_pid in (os.getsid(proc.pid), os.getpgid(proc.pid)):
                found[proc.pid] = proc
            elif proc.environ().get(HOST_MARKER) == marker:
                found[proc.pid] = proc
        except (psutil.Error, OSError):
            pass  # gone meanwhile, or another user's process whose environment cannot be read
    return [proc for proc in found.values() if _alive(proc)]


def power_cut(root_pid, marker, timeout=10):
    """SIGKILL every process of a host at once; returns how many died. Raises if any survives `timeout`."""
    killed = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = host_processes(root_pid, marker)
        if not procs:
            return len(killed)
        # Freeze first, so none of them can fork or restart a sibling between our two passes.
        for signal_number in (signal.SIGSTOP, signal.SIGKILL):
            for proc in procs:
                try:
                    proc.send_signal(signal_number)
                except psutil.NoSuchProcess:
                    pass
        killed.update(proc.pid for proc in procs)
        time.sleep(0.05)
    raise RuntimeError(f"processes of the host survived SIGKILL: {host_processes(root_pid, marker)}")


def unreaped_pid(process):
    """The pid of a Popen'ed process while it is not reaped (before that its pid cannot be reused), else None."""
    return process.pid if process.poll() is None else None
