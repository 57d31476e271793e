"""Measured phase timings of finished jobs, kept per model, to calibrate estimates.

Each successful job appends how long each phase took and how much work (see
cost_model) it was; the rate of a phase is the median seconds-per-unit of the
most recent samples, so estimates follow the host as it really performs.
"""

import json
import re
import statistics
from pathlib import Path

from filelock import FileLock

from .atomic_file import write_json_atomic

FORMAT_VERSION = 1
KEEP_SAMPLES = 20
# Few enough that a change of host or device shows in the estimates within a few jobs.
RATE_WINDOW = 5

# What a phase costs before anything was measured on this host. The FLOP rate is a
# cautious figure for fp32 on a 2-core AVX2 machine (NOTES section 5 measured
# 30-41 GFLOP/s for large GEMMs); model start-up and loading are seconds per job.
PRIOR_FLOPS_PER_SECOND = 20e9
PRIOR_SECONDS = {"starting": 8.0, "loading_model": 2.0}
PRIOR_SECONDS_PER_VOXEL = 40e-9  # x264 on this machine: ~0.8 s for 640x480x61


def _key(model_name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_name)[:100] or "model"


class TimingStats:
    """The timing samples of one model, stored in `<data>/stats/<model>.json`."""

    def __init__(self, data_dir, model_name):
        folder = Path(data_dir) / "stats"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{_key(model_name)}.json"
        self.model_name = model_name
        self._lock = FileLock(folder / f"{_key(model_name)}.json.lock")

    def samples(self):
        """The stored samples, oldest first ([] if none or unreadable)."""
        try:
            data = json.loads(self.path.read_text())
            return list(data.get("samples", []))
        except (OSError, ValueError, AttributeError):
            return []

    def record(self, sample):
        """Append one finished job's `{"job_id", "phases": {phase: {"seconds", "work"}}}`."""
        with self._lock:
            samples = (self.samples() + [sample])[-KEEP_SAMPLES:]
            write_json_atomic(
                self.path, {"format_version": FORMAT_VERSION, "model": self.model_name, "samples": samples}
            )

    def rates(self):
        """Seconds per unit of work for each phase, from recent samples, with priors for the rest.

        Returns `{phase: (rate, measured)}` where `measured` tells a calibrated rate
        from a prior guess.
        """
        rates = {
            "starting": (PRIOR_SECONDS["starting"], False),
            "loading_model": (PRIOR_SECONDS["loading_model"], False),
            "encoding_text": (1 / PRIOR_FLOPS_PER_SECOND, False),
            "denoising": (1 / PRIOR_FLOPS_PER_SECOND, False),
            "decoding": (1 / PRIOR_FLOPS_PER_SECOND, False),
            "writing_video": (PRIOR_SECONDS_PER_VOXEL, False),
        }
        per_phase = {}
        for sample in self.samples():
            for phase, entry in sample.get("phases", {}).items():
                if entry.get("work", 0) > 0 and entry.get("seconds") is not None:
                    per_phase.setdefault(phase, []).append(entry["seconds"] / entry["work"])
        for phase, values in per_phase.items():
            if phase in rates:
                rates[phase] = (statistics.median(values[-RATE_WINDOW:]), True)
        return rates
