"""Showing a job's progress while waiting: a bar on a terminal, plain lines otherwise."""

import time

from .text import printable

BAR_WIDTH = 30
# Without a terminal, a line is printed when the phase changes or progress moves this much.
LINE_EVERY = 0.10


def format_seconds(seconds):
    """`42 s`, `3 min 05 s`, `1 h 02 min`."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes} min {s % 60:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def describe(job):
    """One line about a job's state: percent, phase (with step), time left; safe to print."""
    phase = job.get("phase") or job["status"]
    if phase == "denoising" and job.get("steps"):
        phase = f"denoising {job.get('step', 0)}/{job['steps']}"
    if job["status"] == "queued" and job.get("queue_position"):
        phase = f"queued, position {job['queue_position']}"
    text = f"{round(job.get('progress', 0) * 100):3d}%  {phase}"
    if job.get("eta_seconds") and job["status"] not in ("completed", "failed", "canceled"):
        text += f"  ~{format_seconds(job['eta_seconds'])} left"
    return printable(text)


class ProgressDisplay:
    """Writes progress to `stream`: a redrawn bar if it is a terminal, else a line per real change."""

    def __init__(self, stream):
        self.stream = stream
        self.tty = stream.isatty()
        self._last_phase = None
        self._last_progress = -1.0
        self._started = time.monotonic()

    def update(self, job):
        """Show the job's latest status."""
        progress = job.get("progress", 0.0)
        if self.tty:
            filled = round(progress * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r\x1b[K[{bar}] {describe(job)}")
            self.stream.flush()
            return
        phase = job.get("phase")
        moved = progress - self._last_progress >= LINE_EVERY or progress >= 1.0 > self._last_progress
        if phase != self._last_phase or moved:
            elapsed = format_seconds(time.monotonic() - self._started)
            self.stream.write(f"[{elapsed:>9}] {describe(job)}\n")
            self.stream.flush()
            self._last_phase, self._last_progress = phase, progress

    def close(self):
        """End the bar's line so later output starts on a fresh one."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
