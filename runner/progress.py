"""Streaming a running job's phase, step and progress into its job file."""

import threading
import time
from datetime import datetime, timezone

from hunyuan_core import estimates
from hunyuan_core.job_record import JobStatus, Phase, parse_time, utc_now


class ProgressReporter:
    """Writes phase changes and denoising steps into the job file as they happen.

    Only the fields it owns are changed, under the store's lock, so nothing else
    in the record (a status set by the API, say) is ever overwritten. Progress
    never goes backwards, even when a new measurement lengthens the estimate.
    """

    def __init__(self, store, job, geo, rates, beat=None):
        self.store = store
        # The progress heartbeat: phase changes and steps are progress. The refresh thread
        # below is not (it runs even when the main thread is stuck), so it never beats.
        self.beat = beat or (lambda: None)
        self.job_id = job["job_id"]
        self.geo = geo
        self.rates = rates
        self.phase = job.get("phase") or Phase.STARTING.value
        started = parse_time(job.get("phase_started_at")) or datetime.now(timezone.utc)
        # Phase clocks use wall time so they line up with the timestamps in the file.
        self._phase_started = started.timestamp()
        self.timings = dict(job.get("timings") or {})
        self.calibrated = False  # set when this job also calibrated the host (its start-up ran long)
        self._memory = dict(job.get("memory") or {})
        self.step = 0
        self._denoise_started = None
        # The first step's seconds (from the end of loading), then the mean of the steps after it.
        self._step_seconds = None
        self._first_step_end = None
        # The heartbeat thread and the main thread both write; one at a time.
        self._mutex = threading.Lock()

    def enter(self, phase):
        """Close the current phase (recording its duration) and start `phase`."""
        self.beat()
        with self._mutex:
            now = time.time()
            self.timings[self.phase] = round(now - self._phase_started, 3)
            self.phase = phase.value if isinstance(phase, Phase) else phase
            self._phase_started = now
            if self.phase == Phase.DENOISING.value:
                self._denoise_started = now
            self._write()

    def steps_begin(self):
        """Mark the start of the denoising loop (the transformer is loaded), so the first
        step's recorded time is the step's own and not its stage's loading."""
        with self._mutex:
            self._denoise_started = time.time()

    def step_done(self, index):
        """Record that denoising step `index` (0-based) has finished."""
        self.beat()
        with self._mutex:
            now = time.time()
            self.step = index + 1
            if self.step == 1:
                self._first_step_end = now
                self._step_seconds = round(now - self._denoise_started, 4)
            else:
                # The first step pays for warm-up (buffers allocated, kernels chosen): leave it out.
                self._step_seconds = round((now - self._first_step_end) / (self.step - 1), 4)
            self._write()

    def record_memory(self, stages):
        """Write the per-stage memory figures (peak RSS, RSS after freeing) into the job."""
        with self._mutex:
            self._memory = {name: dict(values) for name, values in stages.items()}
            self._write()

    def refresh(self):
        """Rewrite progress from the time spent so far (for phases with no steps to count)."""
        with self._mutex:
            self._write()

    def start_heartbeat(self, interval=1.0):
        """Refresh progress every `interval` seconds in a daemon thread, so it keeps moving
        through long single calls (imports, loading, decoding) that report nothing themselves."""
        stop = threading.Event()

        def beat():
            while not stop.wait(interval):
                try:
                    self.refresh()
                except Exception:  # a missed heartbeat is harmless; the next one retries
                    pass

        threading.Thread(target=beat, name="progress-heartbeat", daemon=True).start()
        return stop

    def _apply(self, job):
        job["phase"] = self.phase
        job["phase_started_at"] = datetime.fromtimestamp(self._phase_started, timezone.utc).isoformat(
            timespec="milliseconds"
        )
        job["timings"] = dict(self.timings)
        job["step"] = self.step
        job["step_seconds"] = self._step_seconds
        if self._memory:
            job["memory"] = self._memory
        new = estimates.progress(job, self.geo, self.rates, datetime.now(timezone.utc))
        job["progress"] = round(max(job.get("progress") or 0.0, new), 4)

    def _write(self):
        def change(job):
            if JobStatus(job["status"]).is_terminal:
                return False  # settled elsewhere (e.g. failed by the supervisor); leave it be
            self._apply(job)

        self.store.update(self.job_id, change)

    def complete(self, video, poster=None):
        """Close the last phase and mark the job completed with its video's (and poster's) description."""
        with self._mutex:
            return self._complete(video, poster)

    def _complete(self, video, poster=None):
        now = time.time()
        self.timings[self.phase] = round(now - self._phase_started, 3)
        self.phase = Phase.DONE.value
        self._phase_started = now

        def change(job):
            if JobStatus(job["status"]).is_terminal:
                return False  # canceled from another host meanwhile (many-host mode): that word stands
            self._apply(job)
            job["status"] = JobStatus.COMPLETED.value
            job["progress"] = 1.0
            job["video"] = video
            job["poster"] = poster
            job["finished_at"] = utc_now()

        return self.store.update(self.job_id, change)
