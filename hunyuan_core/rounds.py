"""A daemon thread that runs an object's rounds on a timer: the supervisor's ticks on one host,
the cluster's rounds on many."""

import logging
import threading

log = logging.getLogger(__name__)


class BackgroundRounds:
    """Calls `self.round()` every `interval` seconds (sooner after `wake()`) in a daemon thread,
    from `start()` until `stop()`; an exception in a round is logged and the next round runs."""

    thread_name = "rounds"

    def __init__(self, interval):
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    def round(self):
        """One round of the work (subclasses)."""
        raise NotImplementedError

    def start(self):
        """Start the thread; safe to call twice."""
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self):
        """Stop the thread, waiting up to 10 s for a round under way."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def wake(self):
        """Ask for a round now rather than at the end of the interval."""
        self._wake.set()

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.round()
            except Exception:  # a bad round must not end the rounds for good
                log.exception("%s round failed", self.thread_name)
            self._wake.wait(self.interval)
            self._wake.clear()
