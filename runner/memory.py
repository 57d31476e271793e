"""Measuring a runner's memory stage by stage, and giving freed memory back to the system."""

import ctypes
import gc


def _status_kib(field):
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes():
    """Resident memory of this process now."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes():
    """Highest resident memory since the process started or `reset_peak()` was last called."""
    return _status_kib("VmHWM") * 1024


def reset_peak():
    """Start a new peak measurement (Linux: writing 5 to clear_refs resets VmHWM to VmRSS)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass  # not Linux, or not permitted: peaks then cover the whole process


def release():
    """Collect garbage and hand free heap pages back to the system, so RSS really falls."""
    gc.collect()
    try:
        # glibc keeps freed small allocations in its arenas unless asked to trim them.
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def freeze_long_lived():
    """Exempt every object alive now (imported modules, the pipeline's scaffolding) from
    garbage collection, for the rest of a process that does one job.

    torch, transformers and diffusers leave about a million objects behind, so each
    full collection took ~0.2 s; `release()` runs several per stage. Objects made
    later (the stages' weights, activations) are still collected.
    """
    gc.collect()
    gc.freeze()


class StageMemory:
    """Memory of each stage, in MiB, for the job record.

    Loading and computing are measured apart: converting weights at load time
    touches the whole checkpoint file, whose pages count in RSS but are file-backed
    and reclaimable; what a stage needs to keep resident is its compute peak.
    On a GPU (`cuda`: the torch.cuda module), each stage's peak of allocated GPU
    memory is recorded too (`gpu_peak_mb`).
    """

    def __init__(self, cuda=None):
        self.stages = {}
        self.cuda = cuda

    def start(self, stage):
        """Begin measuring `stage`."""
        release()
        reset_peak()
        self.stages[stage] = {"rss_before_mb": _mib(rss_bytes())}
        if self.cuda is not None:
            self.cuda.reset_peak_memory_stats()

    def loaded(self, stage):
        """Mark the end of loading: record its peak and start measuring the compute peak."""
        release()
        self.stages[stage]["load_peak_rss_mb"] = _mib(peak_rss_bytes())
        self.stages[stage]["rss_loaded_mb"] = _mib(rss_bytes())
        reset_peak()

    def end(self, stage):
        """Record the stage's peaks (call before freeing its weights)."""
        entry = self.stages[stage]
        entry["compute_peak_rss_mb"] = _mib(peak_rss_bytes())
        entry["peak_rss_mb"] = max(entry["compute_peak_rss_mb"], entry.get("load_peak_rss_mb", 0.0))
        if self.cuda is not None:
            entry["gpu_peak_mb"] = _mib(self.cuda.max_memory_allocated())

    def freed(self, stage):
        """Record RSS after the stage's weights were freed."""
        release()
        self.stages[stage]["rss_after_free_mb"] = _mib(rss_bytes())


def _mib(count):
    return round(count / 2**20, 1)
