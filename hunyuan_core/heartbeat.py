"""A runner's progress heartbeat, and telling when it has stopped.

The work process touches a small per-job file (DATA_DIR/heartbeats/<job_id>) as it
makes real progress: every module import, component load, transformer block, VAE
block, text-encoder layer, denoising step and video frame. Nothing beats on a timer,
so a deadlocked or stuck work process goes quiet. Its guard watches the file and
stops a runner that has been quiet for longer than the stall limit
(RUNNER_STALL_SECONDS, raised for a job whose single transformer block is predicted
to take longer than that); the supervisor stops it too when the guard has not done
so by twice the limit (the guard was killed or is stuck itself).

Touching a file's mtime costs one system call and never rewrites the job file; beats
are throttled to one a second. Quiet time is measured on the watcher's own monotonic
clock from the moment it saw the mtime change, so wall-clock jumps cannot fake a stall.
"""

import math
import os
import time

# On by default: long enough for loading the 13B model's weights from a slow disk (no hooks run
# inside a load), far above the gap between two blocks of any step that fits the default.
DEFAULT_STALL_SECONDS = 1800.0
# At most one touch of the file per this many seconds, however often `beat` is called.
BEAT_INTERVAL = 1.0
# A job's limit is at least this many times its predicted longest single block call
# (a share of the cores on a busy host can be several times slower than calibrated).
BLOCK_MARGIN = 4.0


class Heartbeat:
    """Touches one job's heartbeat file, at most once per `interval` seconds."""

    def __init__(self, path, interval=BEAT_INTERVAL):
        self.path = str(path)
        self.interval = interval
        self._last = -math.inf

    def beat(self, *_ignored):
        """Record progress now. Accepts and ignores any arguments, so it can be a forward hook."""
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        try:
            os.utime(self.path)
        except FileNotFoundError:
            try:
                open(self.path, "ab").close()
            except OSError:
                pass  # the data folder is going away; the guard decides what that means
        except OSError:
            pass

    def force(self):
        """Record progress now, whatever the throttle says (the start of the run)."""
        self._last = -math.inf
        self.beat()


class QuietClock:
    """How long heartbeat files have gone unchanged, timed on this process's monotonic clock."""

    def __init__(self):
        self._seen = {}  # path -> (mtime_ns or None, monotonic time it was first seen so)

    def quiet_seconds(self, path):
        """Seconds since `path`'s mtime last changed as seen by this clock (0 on first sight).

        Returns None while the file does not exist: nothing beats there, so nothing can stall.
        """
        path = str(path)
        now = time.monotonic()
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            self._seen.pop(path, None)
            return None
        seen = self._seen.get(path)
        if seen is None or seen[0] != stamp:
            self._seen[path] = (stamp, now)
            return 0.0
        return now - seen[1]

    def keep_only(self, paths):
        """Forget every file not in `paths` (jobs that are no longer watched)."""
        wanted = {str(path) for path in paths}
        self._seen = {path: seen for path, seen in self._seen.items() if path in wanted}


def stall_limit(setting, job, data_dir):
    """Seconds of quiet after which `job`'s runner counts as stalled; 0 when stall detection is off.

    `setting` is RUNNER_STALL_SECONDS. A transformer block is the longest call with
    no beat inside it, and at the largest sizes on a few CPU cores one block can
    take longer than the setting: the limit is then raised to BLOCK_MARGIN times
    the block's predicted time (from the cost model and this host's calibration).
    """
    if not setting:
        return 0.0
    block = _predicted_block_seconds(job, data_dir)
    return max(float(setting), BLOCK_MARGIN * block) if block else float(setting)


def _predicted_block_seconds(job, data_dir):
    """Predicted seconds of one transformer block call of `job` with the smallest share of cores, or None."""
    # Imported here: the guard calls this once, and these modules read the model's files.
    from . import cost_model
    from .host import runner_threads
    from .timing_stats import TimingStats

    try:
        params, model = job["params"], job["model"]
        runtime = (job.get("runner") or {}).get("runtime") or {}
        geo = cost_model.geometry(model["path"])
        threads = runner_threads(runtime.get("threads"), int(runtime.get("max_workers") or 1))
        rates = TimingStats(data_dir, model["name"]).rates(threads)
        passes = 2 if cost_model.uses_true_cfg(params) else 1
        step = rates.raw_seconds("denoising", cost_model.step_work(params, geo))
        return step / (max(geo.blocks, 1) * passes)
    except Exception:  # no model folder or statistics (a fixture runner): the setting alone
        return None


def stall_reason(limit, setting):
    """The failure sentence of a runner stopped for a stall (without the final period)."""
    if limit > setting:
        amount, why = f"{limit:.0f}", f"RUNNER_STALL_SECONDS={setting:g}, raised for this job's size"
    else:
        amount, why = f"{limit:g}", "RUNNER_STALL_SECONDS"
    return f"the runner stalled: no progress for {amount} s ({why}); it was stopped"
