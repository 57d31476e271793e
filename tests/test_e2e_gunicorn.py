"""End to end: real gunicorn, real HTTP, real runners rendering with the tiny model."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import ROOT, SMALL_REQUEST, copy_artifact, wait_for
from .mp4_check import assert_playable_mp4
from .server import GunicornServer, kill_all_runners, runner_processes

SEED_CLIENT = Path(__file__).resolve().parent / "fixtures" / "seed_client.py"
SEED_DOCUMENT = ROOT.parent / "shared" / "seed" / "000_b92eebb77e83ac27.txt"
# Long enough to be caught mid-denoising: about 15-30 s on two cores.
MEDIUM_REQUEST = dict(SMALL_REQUEST, width=640, height=480, video_length=61, num_inference_steps=30)

# data_dir holds the built demo model and this host's calibration (tests/conftest.py).
pytestmark = [pytest.mark.timeout(600), pytest.mark.demo_model]


@pytest.fixture
def cleanup_runners():
    folders = []
    yield folders.append
    for folder in folders:
        kill_all_runners(folder)


def status(server, job_id):
    return server.get(f"/api/status/{job_id}").json()


def wait_status(server, job_id, wanted, timeout):
    return wait_for(
        lambda: (body := status(server, job_id))["status"] in wanted and body,
        timeout,
        interval=0.25,
        message=f"job {job_id} to reach {wanted}",
    )


def submit(server, body):
    response = server.post("/api/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()["job_id"]


def test_the_documents_python_client_runs_against_a_fresh_server(tmp_path, cleanup_runners):
    # A fresh data folder: the server builds the embedded model before it opens its port.
    data_dir = tmp_path / "data"
    cleanup_runners(data_dir)
    with GunicornServer(data_dir, workers=2) as server:
        health = server.get("/health").json()
        assert health["status"] == "healthy" and health["model"]["demo"] is True
        client = SEED_CLIENT.read_text().replace(
            'BASE_URL = "https://your-service-name.onrender.com"', f'BASE_URL = "{server.base_url}"'
        )
        assert server.base_url in client
        result = subprocess.run(
            [sys.executable, "-c", client], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        assert "Video downloaded: generated_video.mp4" in result.stdout, result.stdout
        assert_playable_mp4(tmp_path / "generated_video.mp4", frames=61, width=640, height=480, fps=15)
        copy_artifact(tmp_path / "generated_video.mp4", "seed-client-640x480x61.mp4")
        progress = [float(p) for p in re.findall(r"Progress: ([\d.]+)%", result.stdout)]
        assert progress == sorted(progress) and progress[-1] == 100.0


def test_the_vendored_client_is_the_documents_own(tmp_path):
    if not SEED_DOCUMENT.exists():
        pytest.skip("the API document is not beside this checkout")
    block = re.search(r"### Python\n\n```python\n(.*?)```", SEED_DOCUMENT.read_text(), re.S).group(1)
    vendored = "".join(line for line in SEED_CLIENT.read_text().splitlines(True) if not line.startswith("# The Python")
                       and not line.startswith("# copied") and not line.startswith("# runs it"))
    assert vendored == block


def test_six_jobs_three_web_workers_never_more_than_two_runners(data_dir, cleanup_runners):
    cleanup_runners(data_dir)
    counts, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            counts.append(len(runner_processes(data_dir)))
            time.sleep(0.02)

    with GunicornServer(data_dir, workers=3, MAX_WORKERS=2) as server:
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(6) as pool:
                ids = list(pool.map(lambda seed: submit(server, dict(SMALL_REQUEST, seed=seed)), range(6)))
            # A web worker killed mid-run (as gunicorn's watchdog might) loses nothing.
            os.kill(server.web_workers()[0].pid, signal.SIGKILL)
            finals = [wait_status(server, job_id, {"completed", "failed"}, timeout=300) for job_id in ids]
        finally:
            stop.set()
            watcher.join()
        assert [f["status"] for f in finals] == ["completed"] * 6, [f["error"] for f in finals]
        assert max(counts) == 2, f"runner counts seen: {sorted(set(counts))}"
        for final in finals:
            video = server.get(final["video_url"])
            path = data_dir.parent / f"{final['job_id']}.mp4"
            path.write_bytes(video.content)
            assert_playable_mp4(path, frames=13, width=256, height=256, fps=8)
        assert len(list((data_dir / "jobs").glob("*.json"))) == 6


def test_kill_9_of_a_runner_fails_its_job_quickly_and_the_next_one_starts(data_dir, cleanup_runners):
    cleanup_runners(data_dir)
    with GunicornServer(data_dir, workers=2, MAX_WORKERS=1) as server:
        victim = submit(server, MEDIUM_REQUEST)
        waiting = submit(server, SMALL_REQUEST)
        wait_for(lambda: status(server, victim)["phase"] == "denoising", 120, message="denoising")
        (process,) = runner_processes(data_dir)
        process.kill()
        killed_at = time.monotonic()
        failed = wait_status(server, victim, {"failed"}, timeout=10)
        assert time.monotonic() - killed_at < 10
        assert "killed by SIGKILL" in failed["error"] and "may have run out of memory" in failed["error"]
        wait_status(server, waiting, {"processing", "completed"}, timeout=10)
        assert wait_status(server, waiting, {"completed", "failed"}, timeout=120)["status"] == "completed"


def test_restarting_the_server_loses_no_job(data_dir, cleanup_runners):
    cleanup_runners(data_dir)
    server = GunicornServer(data_dir, workers=2, MAX_WORKERS=2).start()
    try:
        survivor = submit(server, MEDIUM_REQUEST)
        orphan = submit(server, MEDIUM_REQUEST)
        queued = submit(server, SMALL_REQUEST)
        for job_id in (survivor, orphan):
            wait_for(lambda j=job_id: status(server, j)["phase"] == "denoising", 120, message="denoising")
        server.stop()
        # While the server is down, one runner dies with its guard (so nobody records how).
        record = json.loads((data_dir / "jobs" / f"{orphan}.json").read_text())
        assert record["status"] == "processing"
        os.killpg(record["runner"]["guard"]["pid"], signal.SIGKILL)
        server = GunicornServer(data_dir, workers=2, MAX_WORKERS=2).start()
        failed = wait_status(server, orphan, {"failed"}, timeout=10)
        assert "disappeared" in failed["error"]
        assert wait_status(server, survivor, {"completed", "failed"}, timeout=180)["status"] == "completed"
        assert wait_status(server, queued, {"completed", "failed"}, timeout=180)["status"] == "completed"
    finally:
        server.stop()
