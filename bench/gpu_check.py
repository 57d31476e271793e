"""Every model family through the real runner on a GPU, end to end, in one go.

    .venv/bin/python bench/gpu_check.py                     # on a machine lent a GPU (DEVICE=cuda)
    .venv/bin/python bench/gpu_check.py --device cpu        # the demo models on the CPU, small sizes

Builds the four embedded demo models (13B text-to-video and image-to-video, 1.5
text-to-video and image-to-video) and, unless `--no-scaled`, a scaled-down
HunyuanVideo 1.5 with the real block structure (bench/scaled_down.py), then runs
one job on each through the service's own path: a job record in a fresh data
folder (with its input image for image-to-video), the supervisor, the guarded
work process (runner/render.py) on the chosen device, to a decoded MP4 whose
frame count and size are checked. Prints a table: model, seconds per denoising
step, peak GPU memory (the largest stage's), peak RSS, what went wrong. Exits 1
if any model failed, 2 if the whole check ran past `--budget` seconds (default
480: it must fit in 8 minutes on a lent GPU).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scaled_down import build_scaled_down_15  # noqa: E402
from hunyuan_core import families, model_source  # noqa: E402
from hunyuan_core.images import decode_image  # noqa: E402
from hunyuan_core.job_record import new_job, new_job_id  # noqa: E402
from hunyuan_core.job_store import JobStore  # noqa: E402
from hunyuan_core.supervisor import Supervisor  # noqa: E402
from runner.pictures import picture_png  # noqa: E402

DEMOS = ("demo-hunyuanvideo", "demo-hunyuanvideo-i2v", "demo-hunyuanvideo-1.5", "demo-hunyuanvideo-1.5-i2v")
# Per device: (requested width, height, frames, steps) for the demo models and for the scaled-down 1.5.
SIZES = {
    "cuda": {"demo": (512, 320, 33, 8), "scaled": (848, 480, 61, 8)},
    "cpu": {"demo": (256, 192, 9, 3), "scaled": (336, 192, 9, 2)},
}
IMAGE_SIZE = (320, 200)
JOB_TIMEOUT = 300


def build_models(folder, demos, scaled):
    """Build the demo models (one child interpreter) and the scaled-down 1.5; returns {label: path}."""
    import subprocess

    code = ("import sys; from runner.demo_models import main; "
            "[main([name, sys.argv[1] + '/' + name]) for name in sys.argv[2:]]")
    subprocess.run([sys.executable, "-c", code, str(folder), *demos], check=True, cwd=ROOT, capture_output=True)
    models = {name: Path(folder) / name for name in demos}
    if scaled:
        models["scaled-down-1.5"] = build_scaled_down_15(folder)
    return models


def queue(store, folder, size):
    """A job record for the model in `folder` at `size` (width, height, frames, steps) with the family's defaults."""
    family = families.family_of(folder)
    width, height, frames, steps = size
    params = dict(family.defaults, prompt='A cat holds a sign that says "HELLO".', negative_prompt=None, seed=1,
                  video_length=frames, num_inference_steps=steps, fps=8)
    for name in family.unused_fields:
        params.pop(name, None)
    image = decode_image(picture_png(*IMAGE_SIZE)) if family.takes_image else None
    if image is not None:
        params["width"], params["height"] = families.size_for_image(family, folder, image.width, image.height,
                                                                    width, height)
    else:
        params["width"], params["height"] = families.size_for_request(family, folder, width, height)
    meta = model_source.read_metadata(folder)
    model = {"name": meta.get("name", Path(folder).name), "path": str(folder), "demo": bool(meta.get("demo")),
             "family": family.name, "task": family.task}
    job_id = new_job_id()
    job = new_job(job_id, {"prompt": params["prompt"]}, params, [], model)
    if image is not None:
        job["image"] = store.save_input(job_id, image)
    return store.create(job)["job_id"], family


def run_one(label, folder, device, size, data_dir):
    """One job through the supervisor and the real work process; returns the table row."""
    store = JobStore(data_dir)
    job_id, family = queue(store, folder, size)
    runtime = {"device": device, "max_workers": 1, "step_cache": {"kind": "none"}}
    supervisor = Supervisor(store, max_workers=1, runtime=runtime, job_timeout=JOB_TIMEOUT)
    started = time.monotonic()
    while True:
        supervisor.tick()
        job = store.get(job_id)
        if job["status"] in ("completed", "failed") and (job["runner"] or {}).get("ended_at"):
            break
        time.sleep(0.2)
    row = {"model": label, "family": family.name, "seconds": time.monotonic() - started, "problem": None,
           "size": f"{job['params']['width']}x{job['params']['height']}x{job['params']['video_length']}",
           "steps": f"{job['step']}/{job['params']['num_inference_steps']}", "step_seconds": job.get("step_seconds"),
           "device": (job["runner"] or {}).get("device")}
    memory = job.get("memory") or {}
    row["gpu_peak_mb"] = max((stage.get("gpu_peak_mb", 0.0) for stage in memory.values()), default=None)
    row["rss_peak_mb"] = max((stage.get("peak_rss_mb", 0.0) for stage in memory.values()), default=None)
    if job["status"] != "completed":
        row["problem"] = job.get("error") or "failed without an error message"
    elif row["device"] != device:
        row["problem"] = f"ran on {row['device']}, not {device}"
    else:
        row["problem"] = _check_video(store, job, family, folder)
    return row


def _decoded(path):
    """(frames, width, height) of the MP4 decoded: by PyAV (another FFmpeg build than the writer's)
    where it is installed, else by the service's own reader."""
    try:
        import av
    except ImportError:
        from runner import video_file

        found = video_file.probe(path)
        return found["frames"], found["width"], found["height"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, stream.codec_context.width, stream.codec_context.height


def _check_video(store, job, family, folder):
    """None if the MP4 decodes to the frames and size the family makes, else what is wrong."""
    params = job["params"]
    expected = (families.output_frame_count(family, folder, params["video_length"]), params["width"],
                params["height"])
    try:
        found = _decoded(store.video_path(job["job_id"]))
    except Exception as exc:  # any decoding failure is the finding
        return f"the MP4 does not decode: {exc}"
    if found != expected:
        return f"the MP4 has {found[0]} frames of {found[1]}x{found[2]}, expected {expected[0]} of " \
               f"{expected[1]}x{expected[2]}"
    if job["step"] != params["num_inference_steps"]:
        return f"{job['step']} of {params['num_inference_steps']} steps reported"
    return None


def _mb(value):
    return "-" if not value else f"{value:,.0f}"


def print_table(rows):
    """The results as a Markdown table."""
    print("\n| model | family | device | size | steps | s/step | peak GPU MiB | peak RSS MiB | job s | problem |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        step = "-" if r.get("step_seconds") is None else f"{r['step_seconds']:.3f}"
        print(f"| {r['model']} | {r.get('family', '-')} | {r.get('device') or '-'} | {r.get('size', '-')} | "
              f"{r.get('steps', '-')} | {step} | {_mb(r.get('gpu_peak_mb'))} | {_mb(r.get('rss_peak_mb'))} | "
              f"{r.get('seconds', 0):.1f} | {r['problem'] or 'ok'} |")


def main(argv=None):
    """Build, run and report; the exit status says whether everything passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--models", nargs="*", choices=DEMOS, default=list(DEMOS), help="demo models to run")
    parser.add_argument("--no-scaled", action="store_true", help="skip the scaled-down 1.5 (default on the CPU)")
    parser.add_argument("--scaled", action="store_true", help="run the scaled-down 1.5 on the CPU too")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds the whole check may take")
    parser.add_argument("--work-dir", help="where to build models and data folders (default: a temporary one)")
    args = parser.parse_args(argv)
    began = time.monotonic()
    scaled = not args.no_scaled and (args.device == "cuda" or args.scaled)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="hunyuan-gpu-check-"))
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: run with --device cpu, or on a machine lent a GPU", file=sys.stderr)
            return 1
        print(f"GPU: {torch.cuda.get_device_name(0)}", flush=True)
    print(f"building models in {work / 'models'} ...", flush=True)
    models = build_models(work / "models", args.models, scaled)
    print(f"built in {time.monotonic() - began:.0f} s", flush=True)
    rows = []
    for label, folder in models.items():
        size = SIZES[args.device]["scaled" if label.startswith("scaled") else "demo"]
        try:
            row = run_one(label, folder, args.device, size, work / "data" / label)
        except Exception as exc:  # a broken setup for one model must not hide the others' results
            row = {"model": label, "problem": f"{type(exc).__name__}: {exc}"}
        rows.append(row)
        print(f"  {label}: {row['problem'] or 'ok'} ({row.get('seconds', 0):.1f} s)", flush=True)
    print_table(rows)
    total = time.monotonic() - began
    print(f"\ntotal {total:.0f} s (budget {args.budget:.0f} s); data and logs in {work}")
    if any(r["problem"] for r in rows):
        return 1
    return 2 if total > args.budget else 0


if __name__ == "__main__":
    sys.exit(main())
