"""How right the service's time estimates are, through a real server.

    .venv/bin/python bench/eta_accuracy.py                 # every demo model and a scaled-down full architecture
    .venv/bin/python bench/eta_accuracy.py --only demo-hunyuanvideo-1.5
    .venv/bin/python bench/eta_accuracy.py --only scaled-down-1.5   # 1.5's real block structure, 480p buckets

For each model, starts gunicorn on a fresh data folder (which calibrates the host
for the model before opening its port), then runs a series of jobs of different
sizes one after another. For each job it records:

- the estimate at submission (`estimated_time` of POST /api/generate) against
  the job's actual run time (started_at to finished_at); target within +/-30%;
- the remaining-time estimate (`eta_seconds`) as soon as the first denoising
  step is reported, against the time that really remained; target within +/-15%.

The first job of each model is estimated from the calibration alone; later ones
also learn from the jobs before them (hunyuan_core/timing_stats.py). The four
families' demo models are served by name (MODELS); image-to-video jobs are sent
as multipart with a picture whose shape changes from job to job (so does the
video's size). The 1.5 demos' sizes are all buckets of about 256x256 pixels:
their series vary the frames, steps and guidance instead.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scaled_down import build_scaled_down, build_scaled_down_15  # noqa: E402
from tests.server import GunicornServer  # noqa: E402
from runner.pictures import picture_png  # noqa: E402
from hunyuan_core import cost_model, estimates  # noqa: E402
from hunyuan_core.timing_stats import TimingStats  # noqa: E402

REQUESTS = {
    "demo-hunyuanvideo": [
        dict(width=256, height=256, video_length=13, num_inference_steps=20),
        dict(width=640, height=480, video_length=61, num_inference_steps=30),
        dict(width=480, height=368, video_length=29, num_inference_steps=25),
        dict(width=640, height=480, video_length=61, num_inference_steps=30),
        dict(width=320, height=256, video_length=45, num_inference_steps=40),
    ],
    # width/height set the video's area; the image (image=(w, h)) its shape.
    "demo-hunyuanvideo-i2v": [
        dict(width=256, height=256, video_length=13, num_inference_steps=20, image=(320, 200)),
        dict(width=640, height=480, video_length=61, num_inference_steps=30, image=(400, 300)),
        dict(width=480, height=368, video_length=29, num_inference_steps=25, image=(300, 400)),
        dict(width=640, height=480, video_length=61, num_inference_steps=30, image=(400, 300)),
        dict(width=320, height=256, video_length=45, num_inference_steps=40, image=(256, 256)),
    ],
    "demo-hunyuanvideo-1.5": [
        dict(width=336, height=192, video_length=13, num_inference_steps=8),
        dict(width=336, height=192, video_length=61, num_inference_steps=20),
        dict(width=256, height=256, video_length=29, num_inference_steps=12, guidance_scale=1.0),
        dict(width=336, height=192, video_length=61, num_inference_steps=20),
        dict(width=288, height=224, video_length=121, num_inference_steps=8),
    ],
    "demo-hunyuanvideo-1.5-i2v": [
        dict(video_length=13, num_inference_steps=8, image=(320, 180)),
        dict(video_length=61, num_inference_steps=20, image=(320, 180)),
        dict(video_length=29, num_inference_steps=12, guidance_scale=1.0, image=(180, 320)),
        dict(video_length=61, num_inference_steps=20, image=(320, 180)),
        dict(video_length=121, num_inference_steps=8, image=(256, 256)),
    ],
    # 480p buckets at 1.5's fewest frames (13): attention over 6,360 tokens of 128-wide heads.
    "scaled-down-1.5": [
        dict(width=848, height=480, video_length=13, num_inference_steps=4, guidance_scale=1.0),
        dict(width=848, height=480, video_length=13, num_inference_steps=6, guidance_scale=1.0),
        dict(width=480, height=848, video_length=13, num_inference_steps=4),
        dict(width=848, height=480, video_length=13, num_inference_steps=6, guidance_scale=1.0),
    ],
    "scaled-down": [
        dict(width=256, height=256, video_length=13, num_inference_steps=10),
        dict(width=320, height=256, video_length=29, num_inference_steps=10),
        dict(width=256, height=256, video_length=21, num_inference_steps=15),
        dict(width=320, height=256, video_length=29, num_inference_steps=10),
    ],
}
DEMOS = ("demo-hunyuanvideo", "demo-hunyuanvideo-i2v", "demo-hunyuanvideo-1.5", "demo-hunyuanvideo-1.5-i2v")


def _parse(text):
    return datetime.fromisoformat(text)


def snapshot_stats(data_dir, into):
    """Copy the server's timing statistics as they are before a job, to price that job later as
    the server priced it."""
    shutil.rmtree(into, ignore_errors=True)
    if (Path(data_dir) / "stats").is_dir():
        shutil.copytree(Path(data_dir) / "stats", into / "stats", ignore=shutil.ignore_patterns("*.lock"))
    else:
        (into / "stats").mkdir(parents=True)


def phase_table(data_dir, snapshot, job_id, timings):
    """`{phase: (predicted, measured)}` seconds of a finished job, predicted from the statistics the
    server had when the job was submitted (where an estimate's error comes from)."""
    job = json.loads((Path(data_dir) / "jobs" / f"{job_id}.json").read_text())
    model, threads = job["model"], (job.get("runner") or {}).get("threads")
    rates = TimingStats(snapshot, model["name"]).rates(threads)
    predicted = estimates.predict(job["params"], cost_model.geometry(model["path"]), rates)
    return {phase: (predicted[phase], timings.get(phase)) for phase in predicted}


def run_job(base_url, body):
    """Submit one job (multipart when it brings an image) and follow it; returns its estimates and
    what really happened."""
    if "image" in body:
        fields = {key: str(value) for key, value in body.items() if key != "image"}
        image = {"image": ("picture.png", picture_png(*body["image"]), "image/png")}
        answer = requests.post(f"{base_url}/api/generate", data=fields, files=image, timeout=30).json()
    else:
        answer = requests.post(f"{base_url}/api/generate", json=body, timeout=30).json()
    if "job_id" not in answer:
        raise RuntimeError(f"the job was refused: {answer}")
    job_id, submit_estimate = answer["job_id"], answer["estimated_time"]
    after_first_step = None
    while True:
        status = requests.get(f"{base_url}/api/status/{job_id}", timeout=30).json()
        if after_first_step is None and status["phase"] == "denoising" and status["step"] >= 1:
            after_first_step = (datetime.now(timezone.utc), status["eta_seconds"])
        if status["status"] in ("completed", "failed"):
            break
        time.sleep(0.1)
    if status["status"] != "completed":
        raise RuntimeError(f"job failed: {status['error']}")
    started, finished = _parse(status["started_at"]), _parse(status["finished_at"])
    actual = (finished - started).total_seconds()
    seen_at, eta = after_first_step
    remaining = (finished - seen_at).total_seconds()
    used = status["params"]
    return {"actual": actual, "submit": submit_estimate, "eta": eta, "remaining": remaining,
            "size": f"{used['width']}x{used['height']}x{used['video_length']}", "job_id": job_id,
            "timings": status.get("timings") or {}}


def bench_model(label, data_dir, requests_list, model_path=None, models=None, phases=False):
    """Run one model's series (a folder, or MODELS entries); returns table rows. With `phases`,
    prints each job's predicted and measured seconds per phase too."""
    env = {"MAX_WORKERS": 1}
    if model_path:
        env["MODEL_PATH"] = str(model_path)
    if models:
        env["MODELS"] = models
    rows = []
    server = GunicornServer(data_dir, workers=2, **env).start(timeout=600)
    try:
        for number, body in enumerate(requests_list, start=1):
            prompt = "A cat walks on the grass, realistic style."
            snapshot = Path(data_dir).parent / "stats-before"
            if phases:
                snapshot_stats(data_dir, snapshot)
            result = run_job(server.base_url, dict(body, prompt=prompt, seed=number))
            size = f"{result['size']}, {body['num_inference_steps']} steps"
            if body.get("guidance_scale") == 1.0:
                size += ", no CFG"
            rows.append((label, number, size, result))
            print(f"  {label} job {number} ({size}): actual {result['actual']:.1f} s", flush=True)
            if phases:
                table = phase_table(data_dir, snapshot, result["job_id"], result["timings"])
                print("    " + ", ".join(f"{phase} {want:.2f}/{got if got is None else round(got, 2)}"
                                       for phase, (want, got) in table.items()) + "  (predicted/measured s)")
    finally:
        server.stop()
    return rows


def main():
    """Run the series and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[*DEMOS, "scaled-down", "scaled-down-1.5"])
    parser.add_argument("--phases", action="store_true",
                        help="print each job's predicted and measured seconds per phase")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hunyuan-eta-"))
    rows = []
    for demo in DEMOS:
        if args.only in (None, demo):
            rows += bench_model(demo, work / demo / "data", REQUESTS[demo], models=demo, phases=args.phases)
    if args.only in (None, "scaled-down"):
        model = build_scaled_down(work / "models")
        rows += bench_model("scaled-down", work / "scaled" / "data", REQUESTS["scaled-down"], model, phases=args.phases)
    if args.only in (None, "scaled-down-1.5"):
        model = build_scaled_down_15(work / "models")
        rows += bench_model("scaled-down-1.5", work / "scaled-15" / "data", REQUESTS["scaled-down-1.5"], model,
                            phases=args.phases)
    print("\n| model | job | request | actual run s | estimate at submit s | error | remaining after step 1 s "
          "| estimated then s | error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, number, size, r in rows:
        submit_error = (r["submit"] - r["actual"]) / r["actual"] * 100
        eta_error = (r["eta"] - r["remaining"]) / r["remaining"] * 100
        print(f"| {label} | {number} | {size} | {r['actual']:.1f} | {r['submit']:.1f} | {submit_error:+.1f}% | "
              f"{r['remaining']:.1f} | {r['eta']:.1f} | {eta_error:+.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
