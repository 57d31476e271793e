"""The work process: `python -m runner.render JOB_ID --data-dir DIR`.

Reads everything about the job from its file, loads the model, generates, writes
the MP4, marks the job completed and exits, so all of its memory goes back to the
system. On an exception it marks the job failed with the error and exits 1; if it
dies any other way, its guard records how.
"""

import argparse
import os
import sys
import time
import traceback

# Never reach out to a model hub, whatever the environment says: the model is a local folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hunyuan_core import cost_model, families, precision, run_plan  # noqa: E402  (after the environment is set)
from hunyuan_core.heartbeat import Heartbeat  # noqa: E402
from hunyuan_core.job_record import Phase, mark_failed, utc_now, video_filename  # noqa: E402
from hunyuan_core.job_store import JobFileUnreadable, JobNotFound  # noqa: E402
from hunyuan_core.stores import open_runner_store  # noqa: E402
from hunyuan_core.regular_file import open_regular  # noqa: E402
from hunyuan_core.timing_stats import TimingStats  # noqa: E402
from runner.beats import watch_imports  # noqa: E402
from runner.progress import ProgressReporter  # noqa: E402

# Runners yield the CPU to the web workers, so the API answers while jobs compute.
DEFAULT_NICE = 10


def _log(message):
    print(f"[runner {utc_now()}] {message}", flush=True)


def render(store, job, beat):
    """Generate the job's video; returns the completed job record.

    `beat()` is the progress heartbeat (hunyuan_core/heartbeat.py): it is called
    wherever real work advances, never on a timer.
    """
    params = job["params"]
    model_dir = job["model"]["path"]
    # The family is the model folder's (its model_index.json), whatever the record says.
    family = families.family_of(model_dir)
    image = _input_image(store, job) if family.takes_image else None
    runtime = (job.get("runner") or {}).get("runtime") or {}
    os.nice(int(runtime.get("nice", DEFAULT_NICE)))
    geo = cost_model.geometry(model_dir)
    stats = TimingStats(store.root, job["model"]["name"])
    alive = sum(1 for other in store.active_jobs() if store.runs_here(other)) or 1
    threads = run_plan.threads(runtime, alive)
    reporter = ProgressReporter(store, job, geo, stats.rates(threads), beat=beat)
    heartbeat = reporter.start_heartbeat()

    # Imported here so the "starting" phase measures what a job really pays for them.
    import torch

    from runner import calibrate, pipeline
    from runner.memory import freeze_long_lived
    from runner.threads import ThreadShare

    share = ThreadShare(store, torch, fixed=runtime.get("threads"))
    threads = share.apply()
    compute, _ = precision.choose_compute("cpu", runtime.get("compute_dtype", "auto"))
    beat()
    if calibrate.ensure(model_dir, store.root, runtime.get("max_workers", 1), compute=compute,
                        name=job["model"]["name"]):
        _log("calibrated this host for the model")
        reporter.calibrated = True
    beat()
    reporter.rates = stats.rates(threads)
    # Only torch can tell whether a GPU is there; everything else is the core's run plan.
    device = pipeline.select_device(runtime.get("device", "auto"))
    plan = run_plan.make_plan(model_dir, params, runtime, device, geo=geo)
    _log(f"device {device}, {threads} threads, step cache {plan['step_cache_label']}, model {model_dir}; "
         + "; ".join(plan["reasons"]))
    _record_runtime(store, job["job_id"], device, plan, threads, plan["step_cache_label"])

    reporter.enter(Phase.LOADING)
    staged = pipeline.StagedPipeline(model_dir, device, plan, step_cache=plan["step_cache"], beat=beat)
    freeze_long_lived()

    reporter.enter(Phase.TEXT)
    prompt_kwargs = staged.encode(params, image)
    reporter.record_memory(staged.memory.stages)
    # Image-to-video: the image encoders run in the text phase, right after the text encoders.
    condition = staged.encode_image(params, image) if image is not None else None
    reporter.record_memory(staged.memory.stages)

    def on_step(index):
        reporter.step_done(index)
        share.maybe_rebalance()

    reporter.enter(Phase.DENOISING)
    latents = staged.denoise(params, prompt_kwargs, on_step, on_loaded=reporter.steps_begin, condition=condition)
    reporter.record_memory(staged.memory.stages)

    reporter.enter(Phase.DECODING)
    share.apply()
    frames, decode_mode = staged.decode(latents, params)
    reporter.record_memory(staged.memory.stages)
    _log(f"decoded {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]} ({decode_mode})")
    del staged, latents, prompt_kwargs, condition

    reporter.enter(Phase.WRITING)
    frame_count = families.output_frame_count(family, model_dir, params["video_length"])
    video = _write_video(store, job["job_id"], frames, params, beat, frame_count)
    poster = _write_poster(store, job["job_id"], frames[0])
    heartbeat.set()
    # Many-host mode: into the artifact store before the job says completed, so it is servable then.
    store.publish(job["job_id"], ("video", "poster") if poster else ("video",))
    done = reporter.complete(video, poster)
    _record_sample(stats, done, geo, threads, skip=("starting",) if reporter.calibrated else ())
    return done


def _input_image(store, job):
    """The job's input image (image-to-video), as an RGB PIL image; a clear error if it cannot be read.

    It is the normalized PNG the service stored beside the job (never a link it would follow).
    """
    from PIL import Image

    path = store.input_path(job["job_id"])
    try:
        handle, _info = open_regular(path)
    except FileNotFoundError:
        raise RuntimeError(f"The input image of this image-to-video job is missing ({path.name} is not in the "
                           "inputs folder); submit the job again with its image") from None
    except OSError as exc:
        raise RuntimeError(f"The input image of this image-to-video job cannot be read: {exc}") from None
    with handle:
        try:
            picture = Image.open(handle)
            picture.load()
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"The input image of this image-to-video job ({path.name}) is not a readable "
                               f"image: {exc}") from None
    return picture.convert("RGB")


def _write_video(store, job_id, frames, params, beat=None, frame_count=None):
    """Encode the MP4 beside its final name, check what was written, and move it into place.

    `frame_count`: the frames the model makes for the job (families.output_frame_count;
    default: the job's video_length)."""
    from runner import video_file

    partial = store.partial_video_path(job_id)
    try:
        video_file.write_mp4(frames, partial, params["fps"], on_frame=beat)
        if beat is not None:
            beat()
        written = video_file.probe(partial)
    except Exception as exc:
        # ffmpeg reports a failed write only on its stderr (the job log) and the probe then
        # finds a truncated file; name the real cause when it is the disk or a file size limit.
        reason = video_file.write_failure_reason(partial)
        if reason:
            raise OSError(f"The video could not be written: {reason}") from exc
        raise
    expected = (frame_count or params["video_length"], params["width"], params["height"])
    if (written["frames"], written["width"], written["height"]) != expected:
        raise RuntimeError(
            f"the encoded video has {written['frames']} frames of {written['width']}x{written['height']}, "
            f"expected {expected[0]} frames of {expected[1]}x{expected[2]}"
        )
    final = store.video_path(job_id)
    os.replace(partial, final)
    return {
        "file": video_filename(job_id),
        "bytes": final.stat().st_size,
        "frames": written["frames"],
        "width": written["width"],
        "height": written["height"],
        "fps": params["fps"],
        "codec": written["codec"],
        "pix_fmt": written["pix_fmt"],
        "duration_seconds": round(written["frames"] / params["fps"], 3),
    }


def _write_poster(store, job_id, frame):
    """Save the first frame as the video's poster JPEG; returns its description, or None.

    A poster is a convenience: if it cannot be written the video is still good, so
    the job completes without one and the log says why.
    """
    from runner import video_file

    partial = store.partial_poster_path(job_id)
    try:
        size = video_file.write_jpeg(frame, partial)
        final = store.poster_path(job_id)
        os.replace(partial, final)
    except (OSError, RuntimeError) as exc:
        partial.unlink(missing_ok=True)
        _log(f"no poster image: {exc}")
        return None
    return {"file": final.name, "bytes": final.stat().st_size, **size}


def _record_runtime(store, job_id, device, plan, threads, step_cache):
    def change(job):
        runner = job["runner"]
        runner["device"] = device
        runner["dtype"] = plan["compute_dtype"]
        runner["weights"] = {name: entry["dtype"] for name, entry in plan["storage"].items()}
        runner["threads"] = threads
        runner["step_cache"] = step_cache

    store.update(job_id, change)


def _record_sample(stats, job, geo, threads, skip=()):
    """Feed this job's phase timings into the model's statistics, for later estimates.

    Phases in `skip` are left out (start-up of a job that also calibrated the host
    took longer for that reason alone).
    """
    work = cost_model.job_work(job["params"], geo)
    phases = {
        phase: {"seconds": seconds, "work": work[phase]}
        for phase, seconds in job["timings"].items()
        if phase in work and phase not in skip
    }
    stats.record({"job_id": job["job_id"], "finished_at": job["finished_at"], "threads": threads, "phases": phases})


def main(argv=None):
    """Command line of the work process."""
    parser = argparse.ArgumentParser(description="Generate one job's video.")
    parser.add_argument("job_id")
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args(argv)
    store = open_runner_store(args.data_dir)
    heartbeat = Heartbeat(store.heartbeat_path(args.job_id))
    heartbeat.force()
    watch_imports(heartbeat.beat)
    try:
        job = store.get(args.job_id)
    except JobNotFound:
        _log(f"job {args.job_id} cannot be run: its job file is gone")
        return 1
    except JobFileUnreadable as exc:
        _log(f"job {args.job_id} cannot be run: {exc}")
        return 1
    started = time.monotonic()
    _log(f"job {args.job_id}: {job['params']}")
    try:
        render(store, job, heartbeat.beat)
    except Exception as exc:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        # Removed before the failure is recorded: whoever sees the job failed finds nothing half-written.
        store.partial_video_path(args.job_id).unlink(missing_ok=True)
        try:
            store.update(args.job_id, lambda record: mark_failed(record, message))
        except (JobNotFound, JobFileUnreadable) as lost:
            _log(f"cannot record the failure: {lost}")
        _log(f"job failed after {time.monotonic() - started:.1f} s: {message}")
        return 1
    _log(f"job completed in {time.monotonic() - started:.1f} s")
    return 0


def _exit_now(code):
    """Exit without Python's teardown: the job is settled, and unloading torch takes
    over a second during which this process would still hold a runner slot."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
