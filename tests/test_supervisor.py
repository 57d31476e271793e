"""The supervisor and the guard, with real subprocesses that really die."""

import os
import signal
import threading
import time

import psutil
import pytest

from hunyuan_core import processes
from hunyuan_core.job_record import new_job, new_job_id
from hunyuan_core.model_source import BUILD_ERROR_FILE, Builders, ModelSource
from hunyuan_core.supervisor import Supervisor

from .conftest import SMALL_REQUEST, fixture_runner, wait_for


def queue_job(store, prompt="sleep 0", model=None):
    job = new_job(new_job_id(), {"prompt": prompt}, dict(SMALL_REQUEST, prompt=prompt, seed=1), [], model or {})
    return store.create(job)["job_id"]


def supervisor_for(store, runner, **options):
    options.setdefault("max_workers", 2)
    return Supervisor(store, work_command=fixture_runner(runner) if isinstance(runner, str) else runner, **options)


def wait_settled(supervisor, job_id, timeout=30):
    """Tick until the job is finished and its runner processes are gone."""

    def settled():
        supervisor.tick()
        job = supervisor.store.get(job_id)
        return job if job["status"] in ("completed", "failed") and (job.get("runner") or {}).get("ended_at") else None

    return wait_for(settled, timeout, interval=0.2, message=f"job {job_id} to settle")


def wait_phase(store, job_id, phase, timeout=30):
    return wait_for(lambda: store.get(job_id).get("phase") == phase, timeout, message=f"phase {phase}")


def work_process_of(store, job_id):
    return wait_for(lambda: (store.get(job_id).get("runner") or {}).get("worker"), 30, message="worker pid")


@pytest.mark.parametrize(
    "runner, expected",
    [
        ("exits_1", "exited with code 1 before finishing the job"),
        ("kills_itself", "killed by SIGKILL (signal 9); it may have run out of memory"),
    ],
)
def test_a_runner_that_dies_leaves_its_job_failed_with_the_reason(store, runner, expected):
    supervisor = supervisor_for(store, runner)
    job_id = queue_job(store)
    assert supervisor.tick() == [job_id]
    job = wait_settled(supervisor, job_id)
    assert job["status"] == "failed" and expected in job["error"]
    assert f"logs/{job_id}.log" in job["error"]
    assert "starting work process" in store.log_path(job_id).read_text()


def test_a_runner_that_raises_reports_the_exception(store, tmp_path):
    # The real runner, given a model folder that is not a model: its own exception handler reports.
    broken = tmp_path / "broken-model"
    (broken / "transformer").mkdir(parents=True)
    (broken / "transformer" / "config.json").write_text("{}")
    (broken / "vae").mkdir()
    (broken / "vae" / "config.json").write_text("{}")
    (broken / "model_index.json").write_text("{not json")
    supervisor = Supervisor(store, max_workers=1)
    job_id = queue_job(store, prompt="a cat", model={"name": "broken", "path": str(broken), "demo": False})
    supervisor.tick()
    job = wait_settled(supervisor, job_id, timeout=120)
    assert job["status"] == "failed"
    assert "Error" in job["error"] and "exited with code" not in job["error"]
    assert "Traceback" in store.log_path(job_id).read_text()
    assert job["runner"]["exit_code"] == 1


def test_a_hanging_runner_is_stopped_by_the_job_timeout(store):
    supervisor = supervisor_for(store, "hangs", job_timeout=2)
    job_id = queue_job(store)
    supervisor.tick()
    job = wait_settled(supervisor, job_id)
    assert job["status"] == "failed" and "exceeded JOB_TIMEOUT (2 s)" in job["error"]
    assert not processes.is_alive(job["runner"]["worker"])


def test_kill_9_of_a_hanging_runner_fails_the_job_and_frees_the_slot(store):
    supervisor = supervisor_for(store, "hangs", max_workers=1)
    first, second = queue_job(store), queue_job(store)
    assert supervisor.tick() == [first]
    wait_phase(store, first, "denoising")
    os.kill(work_process_of(store, first)["pid"], signal.SIGKILL)
    job = wait_settled(supervisor, first, timeout=10)
    assert "killed by SIGKILL" in job["error"]
    wait_for(lambda: store.get(second)["status"] == "processing" or supervisor.tick(), 10, message="next job start")
    processes.kill_group(store.get(second)["runner"]["guard"])
    wait_settled(supervisor, second)


def test_runners_whose_processes_all_vanished_are_failed_by_the_tick(store):
    supervisor = supervisor_for(store, "hangs")
    job_id = queue_job(store)
    supervisor.tick()
    work_process_of(store, job_id)
    # Guard and worker die together (say the machine's OOM killer took the whole group).
    processes.kill_group(store.get(job_id)["runner"]["guard"])
    job = wait_settled(supervisor, job_id, timeout=10)
    assert job["status"] == "failed"
    assert "disappeared" in job["error"] or "killed by SIGKILL" in job["error"]


def test_a_killed_guard_does_not_lose_the_job_or_break_the_cap(store):
    supervisor = supervisor_for(store, "sleeps_then_completes", max_workers=1)
    job_id = queue_job(store, prompt="sleep 3")
    other = queue_job(store)
    supervisor.tick()
    worker = work_process_of(store, job_id)
    os.kill(store.get(job_id)["runner"]["guard"]["pid"], signal.SIGKILL)
    # The worker lives on and still holds the only slot.
    assert processes.is_alive(worker)
    assert supervisor.tick() == [] and store.get(other)["status"] == "queued"
    job = wait_settled(supervisor, job_id, timeout=15)
    assert job["status"] == "completed"
    wait_for(lambda: store.get(other)["status"] != "queued" or supervisor.tick(), 10, message="next job start")
    wait_settled(supervisor, other)


def test_never_more_runners_than_max_workers_and_oldest_first(store):
    supervisor = supervisor_for(store, "sleeps_then_completes", max_workers=2, poll_interval=0.1)
    ids = []
    for _ in range(5):
        ids.append(queue_job(store, prompt="sleep 1"))
        # created_at has millisecond resolution: jobs made in the same millisecond are equally old.
        time.sleep(0.002)
    seen, stop = [], threading.Event()

    def watch():
        # Count live work processes of this store, the way an operator's `ps` would.
        while not stop.is_set():
            alive = 0
            for proc in psutil.process_iter(["cmdline"]):
                cmd = proc.info["cmdline"] or []
                # argv[1] is the script for a work process; guards carry it only inside an argument.
                if len(cmd) > 1 and cmd[1].endswith("sleeps_then_completes.py") and str(store.root) in cmd:
                    alive += 1
            seen.append(alive)

    watcher = threading.Thread(target=watch)
    watcher.start()
    supervisor.start()
    try:
        jobs = [wait_settled(supervisor, job_id, timeout=60) for job_id in ids]
    finally:
        supervisor.stop()
        stop.set()
        watcher.join()
    assert all(job["status"] == "completed" for job in jobs)
    assert max(seen) == 2, f"runner counts observed: {sorted(set(seen))}"
    starts = [job["started_at"] for job in jobs]
    assert starts == sorted(starts)


def test_a_new_supervisor_adopts_running_jobs_instead_of_restarting_them(store):
    # As after a server restart: the old supervisor is gone, its runner is not.
    first = supervisor_for(store, "sleeps_then_completes", max_workers=1)
    job_id = queue_job(store, prompt="sleep 2")
    waiting = queue_job(store)
    first.tick()
    guard = store.get(job_id)["runner"]["guard"]
    second = supervisor_for(store, "sleeps_then_completes", max_workers=1)
    assert second.tick() == []
    assert store.get(job_id)["runner"]["guard"] == guard
    assert wait_settled(second, job_id)["status"] == "completed"
    assert wait_settled(second, waiting)["status"] == "completed"


def test_guard_leaves_a_job_that_is_not_its_own(store, tmp_path):
    job_id = queue_job(store)
    from runner.guard import run

    assert run(job_id, str(store.root), fixture_runner("kills_itself"), 0) == 0
    assert store.get(job_id)["status"] == "queued"


def test_jobs_of_a_model_still_being_built_wait_while_other_models_jobs_start(store, tmp_path):
    demo = ModelSource(tmp_path / "models" / "tiny-random-hunyuanvideo-1.5-v1", embedded=True,
                       demo="demo-hunyuanvideo-1.5")
    demo.path.parent.mkdir(parents=True)
    # Its build failed a moment ago: it is not ready, and not retried (nor built here) for a minute.
    (demo.path.parent / f"{demo.path.name}.{BUILD_ERROR_FILE}").write_text("failed\n")
    waiting = queue_job(store, model={"name": demo.name, "path": str(demo.path)})
    time.sleep(0.002)  # older first: the waiting job is the oldest
    other = queue_job(store)
    supervisor = supervisor_for(store, "sleeps_then_completes", model_builder=Builders([demo]))
    assert supervisor.tick() == [other]
    assert wait_settled(supervisor, other)["status"] == "completed"
    assert store.get(waiting)["status"] == "queued"
