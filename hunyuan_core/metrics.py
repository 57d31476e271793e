"""Prometheus metrics computed from the job files at scrape time.

Every gunicorn worker can answer a scrape, and each would count differently if
metrics lived in process memory. Here nothing does: each scrape reads the job
folder (the single source of truth every worker and runner shares), so any
worker gives the same answer and no prometheus_client multiprocess mode is
needed. Durations come from the records of finished jobs (`started_at`,
`finished_at`, `timings`, `step`, `step_seconds`), so histograms and summaries
are rebuilt from scratch on each scrape. Their counts therefore only grow while
finished jobs are kept: deleting jobs makes them drop, which Prometheus treats
as a counter reset (rate() and increase() handle that).

The collector is registered in its own CollectorRegistry, never prometheus_client's
global default registry (which would add this process's own figures, different
in every worker).
"""

import time

from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, HistogramMetricFamily, SummaryMetricFamily

from .job_record import JobStatus, WORK_PHASES, parse_time
from .supervisor import runner_alive

PREFIX = "hunyuan"
# Whole-job durations (seconds): tiny demo jobs take seconds, real-weight jobs hours.
JOB_DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
# Time a job waited in the queue before its runner started (seconds).
QUEUE_WAIT_BUCKETS = (0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 14400, 86400)


def _seconds_between(start, end):
    """Seconds from one recorded timestamp to another, or None if either is missing or unreadable."""
    try:
        first, last = parse_time(start), parse_time(end)
    except (TypeError, ValueError):
        return None
    if first is None or last is None:
        return None
    return max((last - first).total_seconds(), 0.0)


def _histogram(name, documentation, bucket_bounds, values_by_label, label):
    """A histogram family with one series per label value, from lists of observed values."""
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for label_value, values in sorted(values_by_label.items()):
        buckets = [(repr(float(bound)), sum(1 for v in values if v <= bound)) for bound in bucket_bounds]
        buckets.append(("+Inf", len(values)))
        family.add_metric([label_value], buckets, sum(values))
    return family


class JobMetricsCollector:
    """A prometheus_client custom collector over a JobStore."""

    def __init__(self, store, max_workers):
        self.store = store
        self.max_workers = max_workers

    def describe(self):
        """Nothing to describe ahead of time: the families are built at scrape time."""
        return []

    def collect(self):
        """Read every job file once and yield the metric families."""
        scrape_started = time.monotonic()
        jobs, unreadable = self.store.list()
        by_status = {status.value: 0 for status in JobStatus}
        durations, queue_waits = {}, {}
        phase_seconds, phase_counts = {}, {}
        steps, step_seconds = 0, 0.0
        running = 0
        for job in jobs:
            status = JobStatus(job["status"])
            by_status[status.value] += 1
            if runner_alive(job):
                running += 1
            wait = _seconds_between(job.get("created_at"), job.get("started_at"))
            if wait is not None:
                queue_waits.setdefault("all", []).append(wait)
            if not status.is_terminal:
                continue
            duration = _seconds_between(job.get("started_at"), job.get("finished_at"))
            if duration is not None:
                durations.setdefault(status.value, []).append(duration)
            for phase, seconds in (job.get("timings") or {}).items():
                if isinstance(seconds, (int, float)):
                    phase_seconds[phase] = phase_seconds.get(phase, 0.0) + float(seconds)
                    phase_counts[phase] = phase_counts.get(phase, 0) + 1
            done, mean = job.get("step") or 0, job.get("step_seconds")
            if done and isinstance(mean, (int, float)):
                # The record keeps the mean time of the steps after the first (which carries
                # warm-up): the count is exact, the sum is that mean times the steps.
                steps += done
                step_seconds += done * mean

        jobs_family = GaugeMetricFamily(f"{PREFIX}_jobs", "Job files by status", labels=["status"])
        for status, count in by_status.items():
            jobs_family.add_metric([status], count)
        yield jobs_family
        yield GaugeMetricFamily(f"{PREFIX}_queue_length", "Jobs waiting for a runner", value=by_status["queued"])
        yield GaugeMetricFamily(f"{PREFIX}_running_runners", "Jobs whose runner processes are alive", value=running)
        yield GaugeMetricFamily(f"{PREFIX}_max_workers", "The MAX_WORKERS cap on runners", value=self.max_workers)
        yield GaugeMetricFamily(
            f"{PREFIX}_unreadable_job_files", "Job files that cannot be parsed", value=len(unreadable)
        )
        yield _histogram(
            f"{PREFIX}_job_duration_seconds",
            "Run time of finished jobs (runner start to finish), by final status",
            JOB_DURATION_BUCKETS,
            durations,
            "status",
        )
        yield _histogram(
            f"{PREFIX}_job_queue_wait_seconds",
            "Time jobs waited from submission until their runner started",
            QUEUE_WAIT_BUCKETS,
            queue_waits,
            "queue",
        )
        phases = SummaryMetricFamily(
            f"{PREFIX}_job_phase_seconds", "Time finished jobs spent in each phase", labels=["phase"]
        )
        known = [p.value for p in WORK_PHASES]
        for phase in sorted(phase_seconds, key=lambda p: (known.index(p) if p in known else len(known), p)):
            phases.add_metric([phase], phase_counts[phase], phase_seconds[phase])
        yield phases
        yield SummaryMetricFamily(
            f"{PREFIX}_denoising_step_seconds",
            "Denoising steps of finished jobs: count of steps and their total seconds",
            count_value=steps,
            sum_value=step_seconds,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_scrape_duration_seconds",
            "Seconds this scrape spent reading job files",
            value=time.monotonic() - scrape_started,
        )


def registry_for(store, max_workers):
    """A fresh CollectorRegistry holding only the job collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobMetricsCollector(store, max_workers))
    return registry
