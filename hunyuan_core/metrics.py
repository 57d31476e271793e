"""Prometheus metrics computed from the job index at scrape time.

Every web worker (gunicorn process) can answer a scrape, and each would count differently if
metrics lived in process memory. Here nothing does: each scrape reads the job
index beside the job files (hunyuan_core/job_index.py, shared by every web worker and
runner), so any web worker gives the same answer and no prometheus_client
multiprocess mode is needed. The figures of finished jobs are cached per process
until the index says a finished job changed (its finished-jobs generation). Durations come from the records of finished jobs (`started_at`,
`finished_at`, `timings`, `step`, `step_seconds`), so histograms and summaries
are rebuilt from scratch on each scrape. Their counts therefore only grow while
finished jobs are kept: deleting jobs makes them drop, which Prometheus treats
as a counter reset (rate() and increase() handle that).

The collector is registered in its own CollectorRegistry, never prometheus_client's
global default registry (which would add this process's own figures, different
in every web worker).
"""

import bisect
import time

from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, HistogramMetricFamily, SummaryMetricFamily

from .job_record import JobStatus, WORK_PHASES

PREFIX = "hunyuan"
# Whole-job durations (seconds): tiny demo jobs take seconds, real-weight jobs hours.
JOB_DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
# Time a job waited in the queue before its runner started (seconds).
QUEUE_WAIT_BUCKETS = (0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 14400, 86400)


def finished_aggregates(index, cache):
    """Durations, queue waits, phase times and steps of finished jobs, recomputed only when one changed."""
    generation = index.generation(finished=True)
    if cache.get("generation") == generation:
        return cache["value"]
    rows = index.finished_rows()
    durations, queue_waits, steps, step_seconds = {}, [], 0, 0.0
    for status, duration, wait, done, mean in rows:
        if duration is not None:
            durations.setdefault(status, []).append(duration)
        if wait is not None:
            queue_waits.append(wait)
        if done and mean is not None:
            # The record keeps the mean time of the steps after the first (which carries
            # warm-up): the count is exact, the sum is that mean times the steps.
            steps += done
            step_seconds += done * mean
    phase_seconds, phase_counts = {}, {}
    for phase, count, total in index.phase_totals():
        phase_seconds[phase], phase_counts[phase] = float(total), count
    value = {"durations": durations, "queue_waits": queue_waits, "phase_seconds": phase_seconds,
             "phase_counts": phase_counts, "steps": steps, "step_seconds": step_seconds}
    # Kept as bucket counts, so a scrape's cost does not grow with the finished jobs kept.
    value["durations"] = {status: _buckets(values, JOB_DURATION_BUCKETS) for status, values in durations.items()}
    value["queue_waits"] = _buckets(queue_waits, QUEUE_WAIT_BUCKETS)
    cache.update(generation=generation, value=value)
    return value


def _buckets(values, bucket_bounds):
    """`(cumulative counts per bound, count, sum)` of observed values."""
    values = sorted(values)
    return [bisect.bisect_right(values, bound) for bound in bucket_bounds], len(values), sum(values)


def _merged(first, second):
    """Two `_buckets` results as one."""
    return [a + b for a, b in zip(first[0], second[0])], first[1] + second[1], first[2] + second[2]


def _histogram(name, documentation, bucket_bounds, buckets_by_label, label):
    """A histogram family with one series per label value, from `_buckets` results."""
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for label_value, (counts, count, total) in sorted(buckets_by_label.items()):
        buckets = [(repr(float(bound)), n) for bound, n in zip(bucket_bounds, counts)]
        buckets.append(("+Inf", count))
        family.add_metric([label_value], buckets, total)
    return family


class JobMetricsCollector:
    """A prometheus_client custom collector over a JobStore."""

    def __init__(self, store, max_workers):
        self.store = store
        self.max_workers = max_workers
        self._cache = {}

    def describe(self):
        """Nothing to describe ahead of time: the families are built at scrape time."""
        return []

    def collect(self):
        """Yield the metric families, from the job index (job files are not read)."""
        scrape_started = time.monotonic()
        index = self.store.index
        counts, unreadable = index.counts()
        by_status = {status.value: counts.get(status.value, 0) for status in JobStatus}
        running = sum(1 for job in index.runners() if self.store.runner_alive(job))
        finished = finished_aggregates(index, self._cache)
        durations = finished["durations"]
        unfinished_waits = index.unfinished_queue_waits()
        waits = _merged(finished["queue_waits"], _buckets(unfinished_waits, QUEUE_WAIT_BUCKETS))
        queue_waits = {"all": waits} if waits[1] else {}
        phase_seconds, phase_counts = finished["phase_seconds"], finished["phase_counts"]
        steps, step_seconds = finished["steps"], finished["step_seconds"]

        jobs_family = GaugeMetricFamily(f"{PREFIX}_jobs", "Job files by status", labels=["status"])
        for status, count in by_status.items():
            jobs_family.add_metric([status], count)
        yield jobs_family
        yield GaugeMetricFamily(f"{PREFIX}_queue_length", "Jobs waiting for a runner", value=by_status["queued"])
        yield GaugeMetricFamily(f"{PREFIX}_running_runners", "Jobs whose runner processes are alive", value=running)
        slots = self.max_workers
        if self.store.distributed:
            from . import hosts

            slots = hosts.capacity(self.store, 0)  # the cluster's: the sum of the up worker hosts' MAX_WORKERS
        yield GaugeMetricFamily(f"{PREFIX}_max_workers", "The MAX_WORKERS cap on runners (many hosts: the sum of "
                                "the up worker hosts')", value=slots)
        yield GaugeMetricFamily(
            f"{PREFIX}_unreadable_job_files", "Job files that cannot be parsed", value=unreadable
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
        yield from _host_families(self.store)
        yield GaugeMetricFamily(
            f"{PREFIX}_scrape_duration_seconds",
            "Seconds this scrape spent reading job files",
            value=time.monotonic() - scrape_started,
        )


def _host_families(store):
    """The many-host mode's worker hosts: up or lost, their slots and running jobs (nothing on one host)."""
    if not store.distributed:
        return
    from . import hosts

    listed = hosts.hosts(store)
    up = GaugeMetricFamily(f"{PREFIX}_worker_host_up", "1 while a worker host announces itself, 0 once lost",
                           labels=["host"])
    slots = GaugeMetricFamily(f"{PREFIX}_worker_host_slots", "Runner slots (MAX_WORKERS) of a worker host",
                              labels=["host"])
    running = GaugeMetricFamily(f"{PREFIX}_worker_host_running", "Jobs running on a worker host", labels=["host"])
    for host in listed:
        up.add_metric([host["name"]], 1 if host["up"] else 0)
        slots.add_metric([host["name"]], int(host.get("slots") or 0) if host["up"] else 0)
        running.add_metric([host["name"]], len(host.get("running") or []) if host["up"] else 0)
    yield up
    yield slots
    yield running


def registry_for(store, max_workers):
    """A fresh CollectorRegistry holding only the job collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobMetricsCollector(store, max_workers))
    return registry
