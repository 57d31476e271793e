"""Keeping each runner's compute threads at its share of the CPU cores.

A runner alone on the host uses every core; when others run beside it, each
gets cores / runners, so concurrent jobs do not oversubscribe the CPU (torch's
OpenMP threads spin while they wait, and two jobs with all cores each run far
slower than two with half each). The share is re-checked every few seconds as
jobs start and finish. RUNNER_THREADS pins a fixed number instead.
"""

import time

from hunyuan_core.host import runner_threads

RECHECK_SECONDS = 5.0


class ThreadShare:
    """Sets torch's intra-op threads to this runner's share of the cores."""

    def __init__(self, store, torch, fixed=None):
        self.store = store
        self.torch = torch
        self.fixed = int(fixed) if fixed else None
        self._checked = 0.0

    def share(self):
        """Cores divided by the runners alive now (this one included)."""
        if self.fixed:
            return self.fixed
        return runner_threads(None, sum(1 for job in self.store.active_jobs() if self.store.runs_here(job)))

    def apply(self):
        """Set the thread count now; returns it."""
        self._checked = time.monotonic()
        threads = self.share()
        if threads != self.torch.get_num_threads():
            self.torch.set_num_threads(threads)
        return threads

    def maybe_rebalance(self):
        """Apply again if the last check is a few seconds old (cheap to call every step)."""
        if not self.fixed and time.monotonic() - self._checked >= RECHECK_SECONDS:
            self.apply()
