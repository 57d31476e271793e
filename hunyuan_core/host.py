"""Facts about the machine the service runs on: cores, CPU features, memory."""

import os
from pathlib import Path

import psutil


def cpu_cores():
    """Cores this process may run on (its affinity, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (empty where /proc/cpuinfo does not exist)."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model(path="/proc/cpuinfo"):
    """The CPU's model name, for labelling measurements."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def memory_limit_bytes():
    """The memory this service may use: the container's cgroup limit if set, else the machine's RAM."""
    total = psutil.virtual_memory().total
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < total:
            return int(text)
    return total


def runner_threads(setting, runners):
    """Threads a runner gets: RUNNER_THREADS if set, else the cores shared by `runners` runners."""
    if setting:
        return int(setting)
    return max(1, cpu_cores() // max(1, runners))
