"""What this host has measured about a model, kept per model, to calibrate estimates.

Two layers, both in `<data>/stats/<model>.json`:

- `calibration`: seconds per unit of each kind of work (see cost_model.job_work),
  measured by `runner/calibrate.py` with the model's own shapes on this host:
  fp32 matrix products, attention, 3-D convolutions, start-up.
- `samples`: what each finished job's phases really took, with the work they
  were. Each phase is fitted as `fixed + per_unit x steps + scale x calibrated
  prediction` over the most recent samples, so estimates also learn what
  calibration misses: a phase's set-up, the per-step cost of small tensors, page
  faults while weights load, a busy host.
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
    # One score of the 1.5 VAE's 1024-wide masked attention: ~4,100 FLOPs and its mask.
    "vae_attention": 4200 / 20e9,
    # One channel x voxel of the 1.5 VAE decoder's norms, SiLUs and add (~18 ns measured in bf16).
    "vae_elements": 20e-9,
    "voxels": 40e-9,
    "bytes": 1e-9,
    "fixed": 8.0,
}
# Per-phase meaning of the "fixed" kind: start-up is all fixed cost; loading pays a second or so on top of bytes.
FIXED_SCALE = {"starting": 1.0, "loading_model": 0.125}
# A phase with no samples yet: no overhead, the calibrated prediction as it is.
NO_FIT = (0.0, 0.0, 1.0)


def _key(model_name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_name)[:100] or "model"


class Rates:
    """Seconds-per-unit of each kind of work, and a fitted `(fixed, per_unit, scale)` per phase."""

    def __init__(self, kinds, fits, calibrated):
        self.kinds = kinds
        self.fits = fits
        self.calibrated = calibrated

    def phase_seconds(self, phase, work):
        """Predicted seconds of one phase with `work` = `{kind: amount}`."""
        fixed, per_unit, scale = self.fits.get(phase, NO_FIT)
        return fixed + per_unit * work.get("steps", 1.0) + scale * self.raw_seconds(phase, work)

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

    def fixed_seconds(self, phase):
        """The phase's fitted cost that does not grow with its work (set-up, warm-up)."""
        return self.fits.get(phase, NO_FIT)[0]

    def measured(self, phase):
        """True when this phase's prediction rests on measurements (calibration or history)."""
        return phase in self.fits or self.calibrated


# How strongly a fit prefers the calibrated scale (1.0) when the samples cannot tell:
# weak enough that one sizeable job overrules it, strong enough that small probe jobs,
# whose times are all overhead, do not set the scale of the work they barely contain.
SCALE_PRIOR_WEIGHT = 0.01
SCALE_LIMITS = (0.05, 20.0)


def fit_phase(points):
    """Fit `seconds = fixed + per_unit * units + scale * raw` to `[(units, raw, seconds)]`.

    `units` are denoising steps (1 for the other phases), `raw` the calibrated
    prediction. Least squares on relative errors (a 10 s job and a 1000 s job count
    alike), a weak pull of `scale` towards 1, every term non-negative. Where the
    samples all have about the same units, fixed and per-unit costs cannot be told
    apart and the overhead is counted per unit (so a job with twice the steps pays
    it twice). Returns `(fixed, per_unit, scale)`.
    """
    units = [u for u, _, _ in points]
    separable = max(units) >= 1.2 * min(units)
    best = None
    # Try every set of overhead terms allowed to be non-zero; keep the best that stays non-negative.
    for free in (("fixed", "per_unit"), ("per_unit",), ("fixed",), ()):
        if "fixed" in free and not separable:
            continue
        solution = _weighted_fit(points, free)
        if solution is None or min(solution[:2]) < 0:
            continue
        error = _relative_error(points, solution)
        if best is None or error < best[0]:
            best = (error, solution)
    return best[1] if best else NO_FIT


def _weighted_fit(points, free):
    """Least squares for the `free` overhead terms and the scale, with the scale's prior row."""
    columns = [name for name in ("fixed", "per_unit") if name in free] + ["scale"]
    rows, targets = [], []
    for units, raw, seconds in points:
        w = 1.0 / max(seconds, 1e-6)
        values = {"fixed": 1.0, "per_unit": units, "scale": raw}
        rows.append([w * values[c] for c in columns])
        targets.append(w * seconds)
    prior = SCALE_PRIOR_WEIGHT ** 0.5
    rows.append([0.0] * (len(columns) - 1) + [prior])
    targets.append(prior)
    n = len(columns)
    normal = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    rhs = [sum(r[i] * t for r, t in zip(rows, targets)) for i in range(n)]
    solved = _solve(normal, rhs)
    if solved is None:
        return None
    result = dict(zip(columns, solved))
    scale = min(max(result["scale"], SCALE_LIMITS[0]), SCALE_LIMITS[1])
    return (result.get("fixed", 0.0), result.get("per_unit", 0.0), scale)


def _relative_error(points, solution):
    fixed, per_unit, scale = solution
    data = sum(((fixed + per_unit * u + scale * x - y) / max(y, 1e-6)) ** 2 for u, x, y in points)
    return data + SCALE_PRIOR_WEIGHT * (scale - 1.0) ** 2


def _solve(matrix, rhs):
    """Gaussian elimination with partial pivoting; None if singular."""
    n = len(rhs)
    a = [row[:] + [value] for row, value in zip(matrix, rhs)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-300:
            return None
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, n):
            factor = a[r][col] / a[col][col]
            for c in range(col, n + 1):
                a[r][c] -= factor * a[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (a[r][n] - sum(a[r][c] * x[c] for c in range(r + 1, n))) / a[r][r]
    return x


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
        return data if _well_formed(data) else {}

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
        rates.fits = {phase: fit_phase(p[-RATE_WINDOW:]) for phase, p in points.items()}
        return rates


def _well_formed(data):
    """True if a stats file's content has the shapes the readers walk (a hand edit may not)."""
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        return False
    samples, calibration = data.get("samples", []), data.get("calibration")
    if not isinstance(samples, list) or not isinstance(calibration, (dict, type(None))):
        return False
    for sample in samples:
        if not isinstance(sample, dict) or not isinstance(sample.get("phases", {}), dict):
            return False
        if not all(isinstance(entry, dict) and isinstance(entry.get("work") or {}, dict)
                   for entry in sample.get("phases", {}).values()):
            return False
    if calibration is None:
        return True
    measured = calibration.get("by_threads") or {}
    return isinstance(measured, dict) and all(
        str(count).isdigit() and isinstance(kinds, dict) and all(_is_number(v) for v in kinds.values())
        for count, kinds in measured.items()
    )


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
        for kind in ("linear", "attention", "conv", "vae_attention", "vae_elements"):
            kinds[kind] *= nearest / want
    return kinds
