"""What this host has measured about a model, kept per model, to calibrate estimates.

Two layers, both in `<data>/stats/<model>.json`:

- `calibration`: seconds per unit of each kind of work (see cost_model.job_work),
  measured by `runner/calibrate.py` with the model's own shapes on this host:
  fp32 matrix products, attention, 3-D convolutions, start-up.
- `samples`: what each finished job's phases really took, with the work they
  were. Each phase is fitted as `overhead + scale x calibrated prediction` over
  the most recent samples (the overhead counted per denoising step, or per job
  for the other phases), so estimates also learn what calibration misses: the
  per-step cost of small tensors, page faults while weights load, a busy host.
"""

import json
import re
from pathlib import Path

from filelock import FileLock

from .atomic_file import write_json_atomic

FORMAT_VERSION = 2
KEEP_SAMPLES = 20
# Few enough that a change of host or load shows in the estimates within a few jobs.
RATE_WINDOW = 8

# Seconds per unit before anything was measured on this host: fp32 at 20 GFLOP/s
# (cautious for a small AVX2 CPU), 8 s to start a runner and import torch,
# 1 GB/s to map weights in, and x264 at ~0.8 s for 640x480x61.
PRIOR_RATES = {
    "linear": 1 / 20e9,
    "attention": 1 / 20e9,
    "conv": 1 / 20e9,
    "voxels": 40e-9,
    "bytes": 1e-9,
    "fixed": 8.0,
}
# Per-phase meaning of the "fixed" kind: start-up is all fixed cost; loading pays a second or so on top of bytes.
FIXED_SCALE = {"starting": 1.0, "loading_model": 0.125}


def _key(model_name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_name)[:100] or "model"


class Rates:
    """Seconds-per-unit of each kind of work, and a fitted `(overhead, scale)` per phase."""

    def __init__(self, kinds, fits, calibrated):
        self.kinds = kinds
        self.fits = fits
        self.calibrated = calibrated

    def phase_seconds(self, phase, work):
        """Predicted seconds of one phase with `work` = `{kind: amount}`."""
        overhead, scale = self.fits.get(phase, (0.0, 1.0))
        return overhead * work.get("steps", 1.0) + scale * self.raw_seconds(phase, work)

    def raw_seconds(self, phase, work):
        """The prediction from kind rates alone, before the phase's fit."""
        total = 0.0
        for kind, amount in work.items():
            if kind not in self.kinds:
                continue  # counts such as "steps" carry no rate of their own
            rate = self.kinds[kind]
            if kind == "fixed":
                rate = rate * FIXED_SCALE.get(phase, 1.0)
            total += amount * rate
        return total

    def measured(self, phase):
        """True when this phase's prediction rests on measurements (calibration or history)."""
        return phase in self.fits or self.calibrated


def fit_overhead_and_scale(points):
    """Fit `seconds = overhead * units + scale * raw` to `[(units, raw, seconds)]`.

    Least squares on relative errors (a 10 s job and a 1000 s job count alike),
    with both terms kept non-negative. One point, or points too alike to tell the
    two terms apart, keep the calibrated scale and put the difference in the
    overhead (or shrink the scale when the job ran faster than calibrated).
    """
    def single(units, raw, seconds):
        if seconds >= raw:
            return (seconds - raw) / units, 1.0
        return 0.0, seconds / raw if raw else 1.0

    if len(points) == 1:
        return single(*points[0])
    xs = [raw / units for units, raw, _ in points]
    if max(xs) < 1.2 * min(xs):  # no spread in size: overhead and scale cannot be separated
        units = sum(p[0] for p in points) / len(points)
        raw = sum(p[1] for p in points) / len(points)
        return single(units, raw, sum(p[2] for p in points) / len(points))
    # Weighted normal equations for y = o*u + k*x with weights 1/y^2.
    suu = sux = sxx = suy = sxy = 0.0
    for units, raw, seconds in points:
        w = 1.0 / max(seconds, 1e-6) ** 2
        suu += w * units * units
        sux += w * units * raw
        sxx += w * raw * raw
        suy += w * units * seconds
        sxy += w * raw * seconds
    det = suu * sxx - sux * sux
    overhead = (suy * sxx - sux * sxy) / det if det else -1.0
    scale = (suu * sxy - sux * suy) / det if det else -1.0
    if overhead < 0:
        return 0.0, sxy / sxx
    if scale < 0:
        return suy / suu, 0.0
    return overhead, scale


class TimingStats:
    """The calibration and timing samples of one model on this host."""

    def __init__(self, data_dir, model_name):
        folder = Path(data_dir) / "stats"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{_key(model_name)}.json"
        self.model_name = model_name
        self._lock = FileLock(folder / f"{_key(model_name)}.json.lock")

    def _read(self):
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("format_version") == FORMAT_VERSION else {}

    def _write(self, change):
        with self._lock:
            data = self._read() or {"format_version": FORMAT_VERSION, "model": self.model_name, "samples": []}
            change(data)
            write_json_atomic(self.path, data)

    def samples(self):
        """The stored samples, oldest first ([] if none or unreadable)."""
        return list(self._read().get("samples", []))

    def calibration(self):
        """The stored calibration, or None."""
        return self._read().get("calibration")

    def record(self, sample):
        """Append one finished job's `{"job_id", "threads", "phases": {phase: {"seconds", "work"}}}`."""

        def append(data):
            data["samples"] = (data.get("samples", []) + [sample])[-KEEP_SAMPLES:]

        self._write(append)

    def set_calibration(self, calibration):
        """Store a new calibration (measured by runner/calibrate.py)."""

        def store(data):
            data["calibration"] = calibration

        self._write(store)

    def rates(self, threads=None):
        """The Rates to predict with, for a runner that will have `threads` threads.

        The calibration holds rates measured at each thread count a runner can
        get (all cores alone, a share of them beside others); samples are
        compared with the rates for the thread count they ran with.
        """
        data = self._read()
        calibration = data.get("calibration") or {}
        rates = Rates(_kinds_for(calibration, threads), {}, calibrated=bool(calibration))
        points = {}
        for sample in data.get("samples", []):
            ran_with = Rates(_kinds_for(calibration, sample.get("threads")), {}, rates.calibrated)
            for phase, entry in sample.get("phases", {}).items():
                work = entry.get("work") or {}
                raw = ran_with.raw_seconds(phase, work)
                if raw > 0 and entry.get("seconds") is not None:
                    points.setdefault(phase, []).append((work.get("steps", 1.0), raw, entry["seconds"]))
        rates.fits = {phase: fit_overhead_and_scale(p[-RATE_WINDOW:]) for phase, p in points.items()}
        return rates


def _kinds_for(calibration, threads):
    """Seconds per unit of each kind for a runner with `threads` threads.

    Uses the calibration taken at that thread count, else the nearest one,
    stretched in proportion (a rough guess, corrected by samples), else priors.
    """
    kinds = dict(PRIOR_RATES)
    measured = calibration.get("by_threads") or {}
    if not measured:
        return kinds
    counts = sorted(int(t) for t in measured)
    want = threads or counts[-1]
    nearest = min(counts, key=lambda t: (abs(t - want), -t))
    kinds.update({k: v for k, v in measured[str(nearest)].items() if k in kinds})
    if nearest != want:
        for kind in ("linear", "attention", "conv"):
            kinds[kind] *= nearest / want
    return kinds
