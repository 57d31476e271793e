"""Turning job records into the API's job status objects, with live estimates."""

from datetime import datetime, timezone

from . import cost_model, estimates
from .host import runner_threads
from .job_record import JobStatus
from .timing_stats import TimingStats


class JobViewer:
    """Builds status objects for jobs, estimating times from each job's model and the queue."""

    def __init__(self, store, max_workers, threads_setting=0):
        self.store = store
        self.max_workers = max_workers
        self.threads_setting = threads_setting
        self.now = datetime.now(timezone.utc)
        self._geometry = {}
        self._rates = {}
        # Runners expected side by side; decides the threads a queued job will get.
        self._concurrency = 1

    def _estimate(self, job):
        """`(estimated_time, seconds_left)` of a job's run, or (None, None) if its model is gone."""
        model = job.get("model") or {}
        path, name = model.get("path"), model.get("name", "model")
        if path not in self._geometry:
            try:
                self._geometry[path] = cost_model.geometry(path)
            except (OSError, ValueError, TypeError, KeyError):
                self._geometry[path] = None
        geo = self._geometry[path]
        if geo is None:
            return None, None
        threads = (job.get("runner") or {}).get("threads") or runner_threads(self.threads_setting, self._concurrency)
        if (name, threads) not in self._rates:
            self._rates[name, threads] = TimingStats(self.store.root, name).rates(threads)
        try:
            return estimates.run_estimate(job, geo, self._rates[name, threads], self.now)
        except (KeyError, ZeroDivisionError, OverflowError):
            # A record without the sizes the cost model needs (an operator's hand-made job,
            # say) gets no estimate rather than failing every listing it appears in.
            return None, None

    def _plan(self, jobs):
        unfinished = sum(1 for job in jobs if not JobStatus(job["status"]).is_terminal)
        self._concurrency = max(1, min(self.max_workers, unfinished))

        def estimate_of(job):
            total, left = self._estimate(job)
            return (total or 0.0, left or 0.0)

        return estimates.schedule(jobs, estimate_of, self.max_workers)

    def describe(self, job, all_jobs=None):
        """The status object of one job; `all_jobs` (for the queue: the unfinished jobs will do) is read if needed."""
        plan = {}
        if not JobStatus(job["status"]).is_terminal:
            if all_jobs is None:
                all_jobs = self.store.unfinished_jobs(shared=True)  # the plan only looks at unfinished jobs
            plan = self._plan(all_jobs)
        return self._view(job, plan.get(job["job_id"]))

    def describe_many(self, selected, all_jobs):
        """Status objects for `selected`, planned against the queue in `all_jobs` (its unfinished jobs are enough)."""
        plan = self._plan(all_jobs)
        return [self._view(job, plan.get(job["job_id"])) for job in selected]

    def _view(self, job, planned):
        status = JobStatus(job["status"])
        if planned:
            estimated, eta, position = planned["estimated_time"], planned["eta_seconds"], planned["queue_position"]
        else:
            estimated, _left = self._estimate(job)
            eta, position = (0.0 if status.is_terminal else None), None
        video = job.get("video")
        poster = job.get("poster")
        params = job.get("params") or {}
        host = (job.get("runner") or {}).get("host")
        view = {
            "job_id": job["job_id"],
            "status": status.value,
            "progress": job.get("progress", 0.0),
            "created_at": job["created_at"],
            "updated_at": job.get("updated_at", job["created_at"]),
            "video_url": f"/api/videos/{video['file']}" if status is JobStatus.COMPLETED and video else None,
            "error": job.get("error"),
            "estimated_time": None if estimated is None else round(estimated, 1),
            "eta_seconds": None if eta is None else round(eta, 1),
            "queue_position": position,
            "phase": job.get("phase"),
            "step": job.get("step", 0),
            "steps": params.get("num_inference_steps"),
            "started_at": job.get("started_at"),
            "finished_at": job.get("finished_at"),
            "seed": params.get("seed"),
            "params": params,
            "adjustments": job.get("adjustments", []),
            "model": (job.get("model") or {}).get("name"),
            "timings": job.get("timings", {}),
            "video": video,
            "log_url": f"/api/jobs/{job['job_id']}/log",
            "events_url": f"/api/jobs/{job['job_id']}/events",
            "expires_at": job.get("expires_at"),
            "webhook": _webhook_view(job.get("webhook")),
            "poster_url": f"/api/posters/{poster['file']}" if status is JobStatus.COMPLETED and poster else None,
        }
        if host is not None:  # the many-host mode: which worker host runs (or ran) it; one host's answers stay as they were
            view["worker_host"] = host
        return view


def _webhook_view(hook):
    """What a client is told about its webhook's delivery (not the internal claim)."""
    if not hook:
        return None
    return {key: hook.get(key) for key in ("url", "attempts", "delivered_at", "last_error", "gave_up_at")}
