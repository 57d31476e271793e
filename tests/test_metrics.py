"""GET /metrics: Prometheus text computed from the job files, read back with prometheus_client's parser."""

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from hunyuan_core.job_record import new_job, new_job_id


def add_job(store, created_at, **fields):
    """Write a job record with the given fields, as the service and runners would have left it."""
    job = new_job(new_job_id(), request={"prompt": "p"}, params={"num_inference_steps": 10}, adjustments=[],
                  model={"name": "m", "path": "/nowhere", "demo": True})
    job.update(created_at=created_at, updated_at=created_at, **fields)
    store.create(job)
    return job


def scrape(client, **headers):
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    return response


def samples(text):
    """{(sample name, sorted label items): value} of every sample in the exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_are_computed_from_the_job_files(client, store):
    t = "2026-11-24T10:00:{:02d}.000+00:00"
    add_job(store, t.format(0))  # queued
    add_job(store, t.format(1))  # queued
    add_job(store, t.format(2), status="processing", phase="denoising", started_at=t.format(3),
            runner={"guard": {"pid": 999999999, "started": 0.0}, "worker": None, "ended_at": None})
    add_job(store, t.format(4), status="completed", phase="done", progress=1.0, started_at=t.format(6),
            finished_at=t.format(26), step=10, step_seconds=1.5,
            timings={"starting": 5.0, "denoising": 15.0}, runner={"ended_at": t.format(27)})
    add_job(store, t.format(5), status="failed", phase="failed", error="boom", started_at=t.format(7),
            finished_at=t.format(9), timings={"starting": 2.0}, runner={"ended_at": t.format(9)})
    (store.jobs_dir / "0a0a0a0a-0000-4000-8000-000000000000.json").write_text("{broken")

    response = scrape(client)
    assert response.mimetype == "text/plain"
    by_key = samples(response.get_data(as_text=True))
    found = {(name, tuple(k for k in labels if k[0] != "le"), dict(labels).get("le")): v
             for (name, labels), v in by_key.items()}
    found.update({(name, labels): v for (name, labels), v in by_key.items()})
    assert {status: found["hunyuan_jobs", (("status", status),)] for status in
            ("queued", "processing", "completed", "failed")} == {
        "queued": 2, "processing": 1, "completed": 1, "failed": 1}
    assert found["hunyuan_queue_length", ()] == 2
    assert found["hunyuan_running_runners", ()] == 0  # the recorded pid is not alive
    assert found["hunyuan_max_workers", ()] == 2
    assert found["hunyuan_unreadable_job_files", ()] == 1
    # Run time of finished jobs, by final status: 20 s completed, 2 s failed.
    completed = (("status", "completed"),)
    assert found["hunyuan_job_duration_seconds_count", completed] == 1
    assert found["hunyuan_job_duration_seconds_sum", completed] == 20.0
    assert found["hunyuan_job_duration_seconds_bucket", completed, "10.0"] == 0
    assert found["hunyuan_job_duration_seconds_bucket", completed, "30.0"] == 1
    assert found["hunyuan_job_duration_seconds_bucket", completed, "+Inf"] == 1
    assert found["hunyuan_job_duration_seconds_count", (("status", "failed"),)] == 1
    assert found["hunyuan_job_duration_seconds_sum", (("status", "failed"),)] == 2.0
    # Queue waits of every started job: 1 s, 2 s and 2 s.
    assert found["hunyuan_job_queue_wait_seconds_count", (("queue", "all"),)] == 3
    assert found["hunyuan_job_queue_wait_seconds_sum", (("queue", "all"),)] == 5.0
    assert found["hunyuan_job_phase_seconds_count", (("phase", "starting"),)] == 2
    assert found["hunyuan_job_phase_seconds_sum", (("phase", "starting"),)] == 7.0
    assert found["hunyuan_job_phase_seconds_sum", (("phase", "denoising"),)] == 15.0
    assert found["hunyuan_denoising_step_seconds_count", ()] == 10
    assert found["hunyuan_denoising_step_seconds_sum", ()] == 15.0


def test_only_the_services_own_metrics_are_exposed(client):
    names = {family.name for family in text_string_to_metric_families(scrape(client).get_data(as_text=True))}
    # A fresh registry: none of the default registry's per-process collectors (different in every worker).
    assert not any(name.startswith(("process_", "python_", "gc_")) for name in names), names
    assert all(name.startswith("hunyuan_") for name in names)
    assert {"hunyuan_jobs", "hunyuan_queue_length", "hunyuan_running_runners", "hunyuan_job_duration_seconds",
            "hunyuan_denoising_step_seconds"} <= names


def test_openmetrics_on_request(client):
    response = scrape(client, Accept="application/openmetrics-text; version=1.0.0")
    assert response.mimetype == "application/openmetrics-text"
    families = {f.name for f in parse_openmetrics(response.get_data(as_text=True))}
    assert "hunyuan_jobs" in families
