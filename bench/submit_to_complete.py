"""Seconds from POST /api/generate to status "completed", through a real gunicorn server.

    .venv/bin/python bench/submit_to_complete.py            # the API document's default request, 3 runs
    .venv/bin/python bench/submit_to_complete.py --runs 5 --width 480 --height 360 --steps 25
    .venv/bin/python bench/submit_to_complete.py --base-url http://localhost:10000   # an already running server

Without --base-url it starts gunicorn on a free loopback port with a fresh data
folder (building the embedded model first, outside the timing), runs the jobs one
after another, and prints a table: the wall time each job took from submission to
"completed" as seen by a polling client, and the phase timings its runner recorded.
A benchmark, not a test: the figures depend on the machine and its load.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.server import GunicornServer  # noqa: E402

PHASES = ["starting", "loading_model", "encoding_text", "denoising", "decoding", "writing_video"]
POLL_SECONDS = 0.1


def run_job(base_url, body):
    """Submit one job and poll until it is finished; returns (seconds, final status, submit estimate)."""
    started = time.monotonic()
    answer = requests.post(f"{base_url}/api/generate", json=body, timeout=30)
    answer.raise_for_status()
    submitted = answer.json()
    while True:
        status = requests.get(f"{base_url}/api/status/{submitted['job_id']}", timeout=30).json()
        if status["status"] in ("completed", "failed"):
            return time.monotonic() - started, status, submitted["estimated_time"]
        time.sleep(POLL_SECONDS)


def main():
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="use a running server instead of starting one")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=61)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--max-workers", type=int, default=2, help="MAX_WORKERS of the started server")
    args = parser.parse_args()
    body = {
        "prompt": "A cat walks on the grass, realistic style.",
        "width": args.width,
        "height": args.height,
        "video_length": args.frames,
        "fps": 15,
        "num_inference_steps": args.steps,
    }
    server = None
    if args.base_url:
        base_url = args.base_url.rstrip("/")
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="hunyuan-bench-")) / "data"
        server = GunicornServer(data_dir, workers=2, MAX_WORKERS=args.max_workers).start(timeout=300)
        base_url = server.base_url
    try:
        info = requests.get(f"{base_url}/api/info", timeout=30).json()
        rows = []
        for run in range(1, args.runs + 1):
            seconds, status, estimate = run_job(base_url, body)
            if status["status"] != "completed":
                print(f"run {run} failed: {status['error']}", file=sys.stderr)
                return 1
            rows.append((run, seconds, estimate, status["timings"]))
    finally:
        if server:
            server.stop()

    print(f"model: {info['model']['name']} (demo={info['model']['demo']}); request: "
          f"{args.width}x{args.height}, {args.frames} frames, {args.steps} steps")
    header = ["run", "submit->completed s", "estimate at submit s"] + [f"{p} s" for p in PHASES]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for run, seconds, estimate, phase in rows:
        cells = [str(run), f"{seconds:.1f}", f"{estimate:.1f}"] + [f"{phase.get(p, 0):.1f}" for p in PHASES]
        print("| " + " | ".join(cells) + " |")
    totals = [seconds for _, seconds, _, _ in rows]
    print(f"\nsubmit->completed: min {min(totals):.1f} s, median {statistics.median(totals):.1f} s, "
          f"max {max(totals):.1f} s over {len(totals)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
