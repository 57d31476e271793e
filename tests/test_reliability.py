"""Reliability with real processes: gunicorn workers and the whole server killed or restarted mid-job,
and 200 concurrent submissions, while a sampler checks the MAX_WORKERS cap every 50 ms.

(kill -9 of a runner on its own is tests/test_e2e_gunicorn.py's
test_kill_9_of_a_runner_fails_its_job_quickly_and_the_next_one_starts.)
"""

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from .conftest import SMALL_REQUEST, artifact_path, wait_for
from .server import GunicornServer, kill_all_runners, runner_processes

# data_dir holds the built demo model and this host's calibration (tests/conftest.py).
pytestmark = [pytest.mark.timeout(900), pytest.mark.demo_model]
SERVER_ENV = {"MIN_STEPS": "2", "DEFAULT_STEPS": "2", "MAX_STEPS": "8", "MAX_WORKERS": "2"}
TERMINAL = {"completed", "failed"}


class RunnerSampler:
    """Samples the runner processes of a data folder every `interval` seconds.

    Per sample it records three counts: live work processes (`python -m
    runner.render`, the ones holding a model in memory); jobs holding a slot as the
    supervisor defines it (a live work process, or a live guard that has not yet
    recorded the end in the job file); and jobs with any runner process at all, which
    also counts a guard in the few milliseconds between recording its job's end and
    exiting (its work process is already gone, so that is not a slot in use).
    """

    def __init__(self, data_dir, interval=0.05):
        self.data_dir = data_dir
        self.interval = interval
        self.work, self.slots, self.any_process = [], [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def processes(self):
        """`{job_id: set of "guard"/"work"}` for the live runner processes now."""
        found = {}
        for proc in psutil.process_iter(["cmdline", "status"]):
            cmd = proc.info["cmdline"] or []
            if cmd[1:3] in (["-m", "runner"], ["-m", "runner.render"]) and str(self.data_dir) in cmd:
                if proc.info["status"] != psutil.STATUS_ZOMBIE:
                    found.setdefault(cmd[3], set()).add("work" if cmd[2] == "runner.render" else "guard")
        return found

    def jobs_with_runners(self):
        """The job ids with any live runner process."""
        return set(self.processes())

    def _ended(self, job_id):
        try:
            record = json.loads((self.data_dir / "jobs" / f"{job_id}.json").read_text())
        except (OSError, ValueError):
            return True  # deleted: a guard for it only checks that and exits
        return bool((record.get("runner") or {}).get("ended_at"))

    def _run(self):
        while not self._stop.is_set():
            found = self.processes()
            self.any_process.append(len(found))
            self.work.append(sum("work" in kinds for kinds in found.values()))
            self.slots.append(sum("work" in kinds or not self._ended(job_id) for job_id, kinds in found.items()))
            time.sleep(self.interval)

    def figures(self):
        """The maxima seen, for the report."""
        return {"max_work_processes": max(self.work, default=0), "max_jobs_holding_a_slot": max(self.slots, default=0),
                "max_jobs_with_any_runner_process": max(self.any_process, default=0), "samples": len(self.work)}

    def assert_cap(self, cap):
        """The cap held in every sample, and was reached."""
        assert max(self.work) == cap, f"work processes seen: {sorted(set(self.work))}"
        assert max(self.slots) == cap, f"slot holders seen: {sorted(set(self.slots))}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def submit(server, body):
    response = server.post("/api/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()["job_id"]


def statuses(server, ids):
    return {job_id: server.get(f"/api/status/{job_id}").json() for job_id in ids}


def report(name, figures):
    """Print the figures (shown with -s) and keep them in test-artifacts/ for the lead's note."""
    print(f"\n{name}: {json.dumps(figures)}")
    artifact_path(f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")


def test_worker_kill_server_restart_and_runner_kill_mid_job_lose_nothing(data_dir):
    # Denoising must last seconds for two jobs to be caught in it together: 8 steps at 640x480x61
    # take about 4 s per job here (the smallest size takes milliseconds a step).
    body = dict(SMALL_REQUEST, width=640, height=480, video_length=61, num_inference_steps=8)
    server = GunicornServer(data_dir, workers=3, **SERVER_ENV)
    try:
        with RunnerSampler(data_dir) as sampler:
            server.start()
            ids = [submit(server, dict(body, prompt=f"restart test job {i}")) for i in range(5)]
            wait_for(lambda: sum(s["phase"] == "denoising" for s in statuses(server, ids).values()) == 2, 180,
                     interval=0.2, message="two jobs denoising")

            # 1. kill -9 one gunicorn worker mid-job: the master replaces it, runners go on.
            victim_worker = server.web_workers()[0].pid
            os.kill(victim_worker, signal.SIGKILL)
            wait_for(lambda: len(server.web_workers()) == 3 and victim_worker not in
                     [p.pid for p in server.web_workers()], 60, message="gunicorn to replace the worker")
            assert server.get("/health").status_code == 200

            # 2. Stop the whole server mid-job (SIGTERM to the master), then start it again.
            wait_for(lambda: any(s["status"] == "processing" for s in statuses(server, ids).values()), 120,
                     interval=0.2, message="a job processing")
            server.stop()
            running_while_down = len(sampler.jobs_with_runners())
            time.sleep(1)
            server = GunicornServer(data_dir, workers=3, **SERVER_ENV).start()

            # 3. kill -9 one runner's work process mid-job: only that job fails, and says why.
            def denoising_runner():
                jobs = {job_id for job_id, s in statuses(server, ids).items() if s["phase"] == "denoising"}
                return [p for p in runner_processes(data_dir) if p.cmdline()[3] in jobs]

            victim = wait_for(denoising_runner, 180, interval=0.1, message="a runner denoising after the restart")[0]
            killed_job = victim.cmdline()[3]
            victim.kill()

            def all_finished():
                now = statuses(server, ids)
                return now if all(s["status"] in TERMINAL for s in now.values()) else None

            finals = wait_for(all_finished, 600, interval=0.5, message="every job to finish")
            wait_for(lambda: not sampler.jobs_with_runners(), 30, message="runners to exit")
        outcome = {job_id: final["status"] for job_id, final in finals.items()}
        assert outcome == {job_id: "failed" if job_id == killed_job else "completed" for job_id in ids}, {
            job_id: final["error"] for job_id, final in finals.items()}
        assert "killed by SIGKILL" in finals[killed_job]["error"]
        sampler.assert_cap(2)
        assert server.get("/health").json()["active_jobs"] == 0
        report("reliability-restart", {
            "jobs": len(ids), "completed": sum(s == "completed" for s in outcome.values()),
            "failed_by_runner_kill": 1, "lost": len(ids) - len(outcome), "runners_alive_while_server_down":
            running_while_down, **sampler.figures()})
    finally:
        server.stop()
        kill_all_runners(data_dir)


def test_200_concurrent_submissions_across_4_workers(data_dir):
    count = 200
    body = dict(SMALL_REQUEST, num_inference_steps=2)
    codes, ids_by_prompt, lock = [], {}, threading.Lock()
    start = threading.Barrier(count)

    def send(i):
        prompt = f"concurrent submission {i:03d}"
        start.wait()  # all threads fire together
        try:
            response = requests.post(f"{server.base_url}/api/generate", json=dict(body, prompt=prompt), timeout=120)
        except requests.RequestException as exc:
            code, job_id = type(exc).__name__, None
        else:
            code = response.status_code
            job_id = response.json().get("job_id") if code == 200 else None
        with lock:
            codes.append(code)
            ids_by_prompt[prompt] = job_id

    # No queue cap (MAX_QUEUE would answer 429 past 100 queued jobs): every submission must become a job.
    server = GunicornServer(data_dir, workers=4, MAX_QUEUE=0, **SERVER_ENV)
    try:
        with RunnerSampler(data_dir) as sampler:
            server.start()
            with ThreadPoolExecutor(count) as pool:
                list(pool.map(send, range(count)))

            # Exactly one well-formed job file per request.
            files = sorted((data_dir / "jobs").glob("*.json"))
            records = [json.loads(path.read_text()) for path in files]
            by_id = {record["job_id"]: record for record in records}
            prompts = [record["request"]["prompt"] for record in records]
            assert len(files) == count and len(by_id) == count
            assert all(path.stem == record["job_id"] for path, record in zip(files, records))
            assert sorted(prompts) == sorted(ids_by_prompt) and len(set(prompts)) == count
            assert all(by_id[job_id]["request"]["prompt"] == prompt for prompt, job_id in ids_by_prompt.items())
            assert server.get("/api/jobs", params={"limit": 1}).json()["total"] == count

            # The cap holds while runners really run: wait for both slots in use and a few jobs done.
            wait_for(lambda: max(sampler.work, default=0) == 2, 180, message="two runners alive at once")
            wait_for(lambda: server.get("/api/jobs", params={"status": "completed"}).json()["total"] >= 4, 300,
                     interval=0.5, message="four jobs completed")

            # Clean up through the API: delete queued jobs (a job started meanwhile answers 400; let it end).
            deleted = set()
            while True:
                queued = [j["job_id"] for j in server.get("/api/jobs", params={"status": "queued", "limit": 100})
                          .json()["jobs"]]
                if not queued:
                    break
                for job_id in queued:
                    if requests.delete(f"{server.base_url}/api/jobs/{job_id}", timeout=30).status_code == 200:
                        deleted.add(job_id)
            wait_for(lambda: server.get("/api/jobs", params={"status": "processing"}).json()["total"] == 0, 300,
                     interval=0.5, message="started jobs to finish")
            wait_for(lambda: not sampler.jobs_with_runners(), 30, message="runners to exit")

        remaining = {record["job_id"]: record["status"] for record in
                     (json.loads(p.read_text()) for p in (data_dir / "jobs").glob("*.json"))}
        lost = set(by_id) - deleted - set(remaining)
        server_errors = sum(1 for code in codes if not isinstance(code, int) or code >= 500)
        figures = {"requests_sent": count, "answered_200": codes.count(200), "5xx_or_connection_errors": server_errors,
                   "job_files": len(files), "distinct_ids": len(by_id), "jobs_lost": len(lost),
                   "jobs_run": len(remaining), "completed": sum(s == "completed" for s in remaining.values()),
                   "deleted_while_queued": len(deleted), **sampler.figures(), "web_workers": 4, "max_workers": 2}
        report("reliability-200-submissions", figures)
        assert codes.count(200) == count and server_errors == 0
        assert not lost and set(remaining) | deleted == set(by_id) and not (set(remaining) & deleted)
        assert set(remaining.values()) == {"completed"}, remaining
        sampler.assert_cap(2)
    finally:
        server.stop()
        kill_all_runners(data_dir)
