"""Request latency and idle CPU with many kept jobs: the job index's benchmark (issue 11).

    .venv/bin/python bench/store_scale.py                              # N = 100 and N = 100,000
    .venv/bin/python bench/store_scale.py --sizes 100,5000 --requests 20

For each N it fills a fresh data folder with N finished jobs (copies of a realistic
finished record with new ids and times, written plainly: no fsync), plus a few
queued jobs and two processing ones whose "runners" are sleeping processes (so the
slots stay full and queued jobs stay queued), times the index rebuild from those
files, starts real gunicorn (2 web workers) and measures:

- p50/p95 over --requests requests of /health, GET /api/jobs (all and queued),
  GET /api/status of a queued and of a finished job, POST /api/generate (each
  created job is deleted again, untimed) and /metrics;
- the index rebuild from the files, and one background check (reconcile) with nothing changed;
- the CPU share of gunicorn (master and workers: the supervisor threads) idle;
- the same with 4 event streams open on a queued job while one job file is
  written per second (a runner's progress).

Prints a markdown table. A benchmark, not a test: figures depend on the machine.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hunyuan_core.job_store import JobStore  # noqa: E402
from hunyuan_core.model_source import EMBEDDED_MODEL_NAME, EmbeddedModelBuilder, ModelSource  # noqa: E402
from tests.server import GunicornServer  # noqa: E402

REQUEST = {"prompt": "A cat walks on the grass, realistic style.", "width": 256, "height": 256, "video_length": 13,
           "fps": 8, "num_inference_steps": 10}
QUEUED, PROCESSING = 5, 2


def _iso(moment):
    return moment.isoformat(timespec="milliseconds")


def finished_record(job_id, created, model_path):
    """A finished job's record as a runner leaves it (the fields of docs/job-file.md)."""
    started, finished = created + timedelta(seconds=3), created + timedelta(seconds=40)
    dead = {"pid": 999_999_999, "started": 1700000000.25}
    return {
        "format_version": 1, "job_id": job_id, "status": "completed", "phase": "done", "phase_started_at": _iso(finished),
        "progress": 1.0, "step": 10, "step_seconds": 1.9, "created_at": _iso(created), "updated_at": _iso(finished),
        "started_at": _iso(started), "finished_at": _iso(finished), "request": dict(REQUEST),
        "params": dict(REQUEST, seed=1234, guidance_scale=6.0, flow_shift=7.0, negative_prompt=None),
        "adjustments": [], "model": {"name": EMBEDDED_MODEL_NAME, "path": str(model_path), "demo": True},
        "timings": {"starting": 1.2, "loading_model": 2.5, "encoding_text": 0.8, "denoising": 19.0,
                    "decoding": 3.1, "writing_video": 0.4},
        "video": {"file": f"{job_id}.mp4", "bytes": 48211, "width": 256, "height": 256, "frames": 13, "fps": 8,
                  "codec": "h264", "pix_fmt": "yuv420p", "duration_seconds": 1.6},
        "poster": {"file": f"{job_id}.jpg", "bytes": 5120, "width": 256, "height": 256},
        "error": None,
        "runner": {"guard": dead, "worker": dead, "runtime": {"device": "cpu"}, "threads": 2, "exit_code": 0,
                   "ended_at": _iso(finished)},
        "memory": {"transformer": {"peak_rss_mb": 812.0}}, "owner": None,
    }


def fill(data_dir, count, model_path, sleepers):
    """Write `count` finished jobs, QUEUED queued and PROCESSING processing ones; returns (queued id, finished id)."""
    jobs_dir = data_dir / "jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    start = datetime.now(timezone.utc) - timedelta(seconds=60 * (count + 10))
    finished_id = None
    for n in range(count):
        job_id = str(uuid.uuid4())
        record = finished_record(job_id, start + timedelta(seconds=60 * n), model_path)
        (jobs_dir / f"{job_id}.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        finished_id = job_id
    now = datetime.now(timezone.utc)
    store = JobStore(data_dir)
    queued_ids = []
    for n, sleeper in enumerate(sleepers + [None] * QUEUED):
        job_id = str(uuid.uuid4())
        record = finished_record(job_id, now - timedelta(seconds=30 - n), model_path)
        record.update(status="queued", phase="queued", progress=0.0, step=0, step_seconds=None, started_at=None,
                      finished_at=None, timings={}, video=None, poster=None, runner=None, memory=None)
        if sleeper is not None:
            identity = {"pid": sleeper.pid, "started": psutil.Process(sleeper.pid).create_time()}
            record.update(status="processing", phase="denoising", started_at=_iso(now), step=3, progress=0.3,
                          runner={"guard": identity, "worker": identity, "runtime": {}, "threads": 2,
                                  "ended_at": None})
        else:
            queued_ids.append(job_id)
        (jobs_dir / f"{job_id}.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    del store
    return queued_ids[0], finished_id


def timed(call, count):
    """(p50, p95) in milliseconds of `count` calls."""
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return statistics.median(seconds) * 1000, seconds[min(int(0.95 * len(seconds)), len(seconds) - 1)] * 1000


def cpu_share(server, seconds):
    """Cores used by gunicorn's master and workers over `seconds` of wall time."""
    processes = [psutil.Process(server.process.pid)] + server.web_workers()

    def total():
        return sum(sum(p.cpu_times()[:2]) for p in processes)

    before, started = total(), time.monotonic()
    time.sleep(seconds)
    return (total() - before) / (time.monotonic() - started)


def measure(server, data_dir, queued_id, finished_id, processing_id, args):
    """The figures of one server: {name: value}."""
    base = server.base_url
    session = requests.Session()

    def get(path):
        response = session.get(base + path, timeout=60)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])

    def submit():
        response = session.post(base + "/api/generate", json=REQUEST, timeout=60)
        assert response.status_code == 200, response.text[:300]
        created.append(response.json()["job_id"])

    created = []
    figures = {}
    for path in ("/health", "/api/jobs?limit=50", "/metrics"):
        get(path)  # warm both workers' caches and connections
        get(path)
    for name, call in (
        ("GET /health", lambda: get("/health")),
        ("GET /api/jobs?limit=50", lambda: get("/api/jobs?limit=50")),
        ("GET /api/jobs?status=queued&limit=50", lambda: get("/api/jobs?status=queued&limit=50")),
        ("GET /api/status (queued)", lambda: get(f"/api/status/{queued_id}")),
        ("GET /api/status (finished)", lambda: get(f"/api/status/{finished_id}")),
        ("POST /api/generate", submit),
        ("GET /metrics", lambda: get("/metrics")),
    ):
        figures[name] = timed(call, args.requests)
        for job_id in created:
            session.delete(f"{base}/api/jobs/{job_id}", timeout=60)
        created.clear()
    time.sleep(2)
    figures["idle CPU (cores)"] = cpu_share(server, args.idle_seconds)

    stop = threading.Event()

    def stream():
        with requests.get(f"{base}/api/jobs/{queued_id}/events", stream=True, timeout=120) as response:
            for _ in response.iter_lines():
                if stop.is_set():
                    return

    def heartbeat():
        store = JobStore(data_dir)
        beat = 0
        while not stop.wait(1.0):
            beat += 1
            store.update(processing_id, lambda job: job.update(step=3 + beat % 5))

    threads = [threading.Thread(target=stream, daemon=True) for _ in range(4)]
    threads.append(threading.Thread(target=heartbeat, daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(2)
    figures["4 streams + 1 write/s CPU (cores)"] = cpu_share(server, args.idle_seconds)
    stop.set()
    return figures


def run_size(count, work, model_path, args):
    """Fill, rebuild, serve and measure one N."""
    data_dir = work / f"n{count}" / "data"
    (data_dir / "models").mkdir(parents=True)
    (data_dir / "models" / EMBEDDED_MODEL_NAME).symlink_to(model_path, target_is_directory=True)
    sleepers = [subprocess.Popen(["sleep", "100000"]) for _ in range(PROCESSING)]
    try:
        started = time.monotonic()
        queued_id, finished_id = fill(data_dir, count, model_path, sleepers)
        fill_seconds = time.monotonic() - started
        processing_id = next(job.name[:-5] for job in (data_dir / "jobs").iterdir()
                             if '"processing"' in job.read_text())
        rebuild = subprocess.run(
            [sys.executable, "-c", "import sys, time; from hunyuan_core.job_store import JobStore; "
             "t = time.monotonic(); JobStore(sys.argv[1]).index.open(); print(time.monotonic() - t)", str(data_dir)],
            cwd=ROOT, check=True, capture_output=True, text=True)
        check = subprocess.run(
            [sys.executable, "-c", "import sys, time; from hunyuan_core.job_store import JobStore; "
             "index = JobStore(sys.argv[1]).index; index.open(); t = time.monotonic(); index.reconcile(); "
             "print(time.monotonic() - t)", str(data_dir)],
            cwd=ROOT, check=True, capture_output=True, text=True)
        figures = {"fill (s)": fill_seconds, "index rebuild on start (s)": float(rebuild.stdout.strip()),
                   "background check, nothing changed (s)": float(check.stdout.strip())}
        server = GunicornServer(data_dir, workers=2, MAX_WORKERS=PROCESSING, MAX_QUEUE=0,
                                RUNNER_STALL_SECONDS=0).start(timeout=900)
        try:
            figures |= measure(server, data_dir, queued_id, finished_id, processing_id, args)
        finally:
            server.stop()
        return figures
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
        if not args.keep:
            shutil.rmtree(work / f"n{count}", ignore_errors=True)


def cpu_model():
    """The CPU model as lscpu names it."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    for line in text.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,100000", help="comma-separated job counts")
    parser.add_argument("--requests", type=int, default=50)
    # One INDEX_RECONCILE_SECONDS interval by default, so a window holds one background check, no more, no less.
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="keep the data folders")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="hunyuan-store-scale-"))
    model_path = work / "models" / EMBEDDED_MODEL_NAME
    EmbeddedModelBuilder(ModelSource(model_path, embedded=True)).build_now()
    results = {}
    for count in sizes:
        print(f"N = {count} ...", file=sys.stderr, flush=True)
        results[count] = run_size(count, work, model_path, args)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); gunicorn 2 workers; {args.requests} requests each\n")
    print("| measure | " + " | ".join(f"N = {count:,}" for count in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name in results[sizes[0]]:
        cells = []
        for count in sizes:
            value = results[count][name]
            cells.append(f"p50 {value[0]:.1f} ms, p95 {value[1]:.1f} ms" if isinstance(value, tuple)
                         else f"{value:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
