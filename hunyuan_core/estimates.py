"""Time estimates and progress for jobs: predicted from the cost model and measured rates,
then corrected by what the running job itself measures.

- `estimated_time`: seconds the job's run takes from runner start to video, as
  best known now (the real duration once it is finished).
- `eta_seconds`: seconds until the job should be finished, counting the queue
  ahead of it when it is still waiting.
- `progress`: the share of the run's estimated time that has passed, so it moves
  through loading, text encoding, each denoising step, decoding and writing.
"""

import heapq

from .cost_model import job_work
from .job_record import WORK_PHASES, JobStatus, parse_time


def predict(params, geo, rates):
    """Predicted seconds of each phase of a job with `params` (rates: timing_stats.Rates)."""
    return {phase: rates.phase_seconds(phase, work) for phase, work in job_work(params, geo).items()}


def _elapsed(start, now):
    start = parse_time(start)
    return max(0.0, (now - start).total_seconds()) if start else 0.0


# How many steps' worth of evidence a calibrated prediction counts for, against the
# steps this job has measured itself. Timed from the end of loading, a first step
# comes within a few percent of the later ones, while a prediction for a size no job
# has run yet can be off by half (calibration at other shapes on a busy host): so the
# job's first step counts for two thirds and the next ones soon overrule the rest.
PREDICTION_WEIGHT_STEPS = 0.5


def _predicted_step(job, predicted, rates):
    """Predicted seconds of one denoising step.

    The denoising phase's fitted fixed cost (loading the transformer, freeing it)
    is paid once, not per step.
    """
    warmup = min(rates.fixed_seconds("denoising"), predicted["denoising"])
    return (predicted["denoising"] - warmup) / job["params"]["num_inference_steps"]


def step_estimate(job, predicted, rates):
    """Expected seconds of each remaining denoising step.

    Blends this job's measured step time with the prediction, the prediction
    counting for PREDICTION_WEIGHT_STEPS steps when it rests on measurements.
    `step_seconds` is the first step's time (counted from the end of loading the
    transformer) until a second step is done, then the mean of the steps after
    the first, which leaves the first call's set-up out.
    """
    per_step = _predicted_step(job, predicted, rates)
    done, measured = job.get("step") or 0, job.get("step_seconds")
    if not done or not measured:
        return per_step
    if not rates.measured("denoising"):
        return measured
    evidence = 1 if done == 1 else done - 1
    weight = PREDICTION_WEIGHT_STEPS
    return (evidence * measured + weight * per_step) / (evidence + weight)


def _speed_factor(job, predicted, rates):
    """How much slower (>1) or faster (<1) this job runs than predicted, from its own steps."""
    per_step = _predicted_step(job, predicted, rates)
    if not job.get("step") or not job.get("step_seconds") or per_step <= 0:
        return 1.0
    return step_estimate(job, predicted, rates) / per_step


def remaining(job, predicted, rates, now):
    """Seconds left in a processing job's run.

    Finished phases cost nothing more; the current one costs its prediction minus
    what has passed (or, while denoising, the measured step time times the steps
    left); later phases cost their prediction, scaled by this job's own measured
    speed where the rate behind the prediction is only a prior.
    """
    phase = job.get("phase")
    names = [p.value for p in WORK_PHASES]
    if phase not in names:
        return 0.0
    index = names.index(phase)
    factor = _speed_factor(job, predicted, rates)
    in_phase = _elapsed(job.get("phase_started_at"), now)
    if phase == "denoising" and job.get("step"):
        left = (job["params"]["num_inference_steps"] - job["step"]) * step_estimate(job, predicted, rates)
    else:
        scale = 1.0 if rates.measured(phase) else factor
        left = max(predicted[phase] * scale - in_phase, 0.0)
    for later in names[index + 1 :]:
        left += predicted[later] * (1.0 if rates.measured(later) else factor)
    return left


def run_estimate(job, geo, rates, now):
    """`(estimated_time, seconds_left)` of one job's run, ignoring any queue."""
    predicted = predict(job["params"], geo, rates)
    status = JobStatus(job["status"])
    if status.is_terminal:
        started, finished = job.get("started_at"), job.get("finished_at")
        if started and finished:
            return (parse_time(finished) - parse_time(started)).total_seconds(), 0.0
        return sum(predicted.values()), 0.0
    if status is JobStatus.QUEUED:
        total = sum(predicted.values())
        return total, total
    left = remaining(job, predicted, rates, now)
    return _elapsed(job.get("started_at"), now) + left, left


def progress(job, geo, rates, now):
    """The share of the run's estimated time already spent (0 to 1, 1 only when done)."""
    if job["status"] == JobStatus.COMPLETED.value:
        return 1.0
    total, left = run_estimate(job, geo, rates, now)
    if total <= 0:
        return 0.0
    return min(max(1.0 - left / total, 0.0), 0.99)


def schedule(jobs, estimate_of, max_workers):
    """Expected start and finish of every unfinished job, given `max_workers` slots.

    `estimate_of(job)` returns `(estimated_time, seconds_left)`. Running jobs hold
    their slots for their remaining time; queued jobs take the first slot to free
    up, oldest first, as the supervisor starts them. Returns
    `{job_id: {"queue_position", "eta_seconds", "estimated_time"}}`.
    """
    result = {}
    slots = []
    queued = []
    for job in jobs:
        status = JobStatus(job["status"])
        if status is JobStatus.PROCESSING:
            total, left = estimate_of(job)
            slots.append(left)
            result[job["job_id"]] = {"queue_position": 0, "eta_seconds": left, "estimated_time": total}
        elif status is JobStatus.QUEUED:
            queued.append(job)
    slots = sorted(slots)[: max(max_workers, 1)]
    slots += [0.0] * (max(max_workers, 1) - len(slots))
    heapq.heapify(slots)
    queued.sort(key=lambda job: (job["created_at"], job["job_id"]))
    for position, job in enumerate(queued, start=1):
        total, _ = estimate_of(job)
        start = heapq.heappop(slots)
        heapq.heappush(slots, start + total)
        result[job["job_id"]] = {"queue_position": position, "eta_seconds": start + total, "estimated_time": total}
    return result
