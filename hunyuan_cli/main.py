"""The `hunyuan-video` command line: argument parsing and one function per subcommand.

A little over 300 lines: the parser and the seven short subcommands read best side
by side; what grew beside them lives in its own module (upload.py, model_list.py).
"""

import argparse
import json
import os
import sys
import time

from . import (
    EXIT_HTTP_ERROR,
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_LOCAL_FILE,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from . import model_list
from .client import DEFAULT_URL, ApiClient, ApiError, Unreachable
from .progress import ProgressDisplay, describe, format_seconds
from .text import printable, tolerate_any_terminal
from .upload import ImageFileError, read_image

TERMINAL = ("completed", "failed", "canceled")
# Flag name -> request field of POST /api/generate, with its type.
GENERATION_FLAGS = (
    ("--model", "model", str, "which of the server's models (see `hunyuan-video models`); default: its first"),
    ("--negative-prompt", "negative_prompt", str, "what the video should not show (used when --guidance-scale > 1)"),
    ("--width", "width", int, "pixels; rounded to a multiple of 16"),
    ("--height", "height", int, "pixels; rounded to a multiple of 16"),
    ("--frames", "video_length", int, "number of frames; rounded to 4k+1"),
    ("--fps", "fps", int, "frame rate of the MP4"),
    ("--steps", "num_inference_steps", int, "denoising steps"),
    ("--guidance-scale", "guidance_scale", float, "real classifier-free guidance (above 1 runs twice per step)"),
    ("--embedded-guidance-scale", "embedded_guidance_scale", float, "distilled guidance strength"),
    ("--flow-shift", "flow_shift", float, "flow shift of the scheduler"),
    ("--seed", "seed", int, "seed; omitted = random (the job records it)"),
)
# Request field -> flag, for the fields a model gives ranges for.
RANGE_FLAGS = {field: flag for flag, field, _kind, _text in GENERATION_FLAGS if field not in ("model", "seed")}

EPILOG = """exit codes:
  0 success · 1 the job failed, was canceled or has no video · 2 bad command line
  3 the server refused the request (its detail is printed) · 4 server unreachable
  5 --timeout passed while waiting · 6 output file cannot be written · 130 interrupted

environment: HUNYUAN_API_URL (default http://localhost:10000), HUNYUAN_API_KEY"""


class Failure(Exception):
    """A command ends with a message on stderr and an exit code."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def build_parser():
    """The argument parser of every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the subcommand is not reset by the subcommand's default.
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"server URL (default $HUNYUAN_API_URL or {DEFAULT_URL})")
    common.add_argument("--api-key", default=argparse.SUPPRESS, help="API key (default $HUNYUAN_API_KEY)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts")

    parser = argparse.ArgumentParser(
        prog="hunyuan-video", parents=[common], epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate videos with a HunyuanVideo REST API server and manage its jobs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser("generate", parents=[common], help="submit a prompt (and wait, download)")
    generate.add_argument("prompt")
    for flag, field, kind, text in GENERATION_FLAGS:
        generate.add_argument(flag, dest=field, type=kind, help=text)
    generate.add_argument("--image", metavar="FILE",
                          help="first frame for an image-to-video model (PNG, JPEG or WebP; sent as multipart)")
    generate.add_argument("--wait", action="store_true", help="wait until the job finishes, showing progress")
    generate.add_argument("-o", "--output", help="save the video here when done (implies --wait)")
    generate.add_argument("--timeout", type=float, help="give up waiting after this many seconds (exit 5)")
    generate.add_argument("--poll-interval", type=float, default=1.0, help="seconds between status checks")

    status = commands.add_parser("status", parents=[common], help="show one job")
    status.add_argument("job_id")

    listing = commands.add_parser("list", parents=[common], help="list jobs, newest first")
    listing.add_argument("--status", choices=["queued", "processing", "completed", "failed", "canceled"])
    listing.add_argument("--limit", type=int)

    for name, text in (("cancel", "cancel a queued or running job"), ("delete", "delete a finished or queued job")):
        commands.add_parser(name, parents=[common], help=text).add_argument("job_id")

    download = commands.add_parser("download", parents=[common], help="save a finished job's video")
    download.add_argument("job_id")
    download.add_argument("-o", "--output", help="file to write (default <job_id>.mp4)")

    commands.add_parser("models", parents=[common], help="list the server's models, their tasks and ranges")
    return parser


def emit_json(value):
    """Print a JSON document on stdout (ASCII only: every other character is a \\u escape)."""
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=True))


def wait_for_job(client, job_id, timeout=None, interval=1.0, stream=sys.stderr):
    """Poll the job's status, showing progress on `stream`, until it finishes; returns its last status."""
    display = ProgressDisplay(stream)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            job = client.status(job_id)
            display.update(job)
            if job["status"] in TERMINAL:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise Failure(f"gave up waiting after {timeout:g} s; job {job_id} is still {job['status']}. "
                              f"Check later: hunyuan-video status {job_id}", EXIT_TIMEOUT)
            time.sleep(interval)
    finally:
        display.close()


def save_video(client, job, output):
    """Download a completed job's video to `output`; returns the size in bytes."""
    if job["status"] != "completed" or not job.get("video_url"):
        raise Failure(f"job {job['job_id']} has no video: it is {job['status']}"
                      + (f" ({job['error']})" if job.get("error") else ""), EXIT_JOB_FAILED)
    try:
        return client.download(job["video_url"], output)
    except OSError as error:
        raise Failure(f"cannot write {output}: {error}", EXIT_LOCAL_FILE) from None


def cmd_generate(client, args):
    """Submit; with --wait or -o, follow the job to its end and download the video."""
    request = {"prompt": args.prompt}
    for _flag, field, _kind, _text in GENERATION_FLAGS:
        if getattr(args, field) is not None:
            request[field] = getattr(args, field)
    if args.output and not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
        # Found out now rather than after the whole render.
        raise Failure(f"cannot write {args.output}: its folder does not exist", EXIT_LOCAL_FILE)
    try:  # read before submitting: a typo in the path is a bad command line, not a job
        image = read_image(args.image) if args.image is not None else None
    except ImageFileError as error:
        raise Failure(str(error), EXIT_USAGE) from None
    submitted = client.generate(request, image)
    job_id = submitted["job_id"]
    if not (args.wait or args.output):
        if args.json:
            emit_json(submitted)
        else:
            print(printable(job_id))
            _note_submission(submitted)
        return EXIT_OK
    _note_submission(submitted)
    try:
        job = wait_for_job(client, job_id, args.timeout, args.poll_interval)
    except KeyboardInterrupt:
        raise Failure(f"stopped waiting; job {job_id} goes on. Check: hunyuan-video status {job_id}",
                      EXIT_INTERRUPTED) from None
    if job["status"] != "completed":
        if args.json:
            emit_json(job)
        raise Failure(f"job {job_id} {job['status']}: {job.get('error') or 'no reason given'}", EXIT_JOB_FAILED)
    output = args.output
    if output:
        size = save_video(client, job, output)
        print(f"saved {output} ({size} bytes)", file=sys.stderr)
    if args.json:
        emit_json(job)
    else:
        print(printable(os.path.abspath(output) if output else client.base_url + job["video_url"]))
    return EXIT_OK


def _note_submission(submitted):
    """Tell the user on stderr what the server made of the request."""
    eta = submitted.get("eta_seconds")
    print(printable(f"job {submitted['job_id']} {submitted['status']}"
                    + (f", position {submitted['queue_position']}" if submitted.get("queue_position") else ""))
          + (f", about {format_seconds(eta)}" if eta else ""), file=sys.stderr)
    for adjustment in submitted.get("adjustments") or []:
        print(f"note: {printable(adjustment)}", file=sys.stderr)


def cmd_status(client, args):
    """Print one job's status."""
    job = client.status(args.job_id)
    if args.json:
        emit_json(job)
        return EXIT_OK
    params = job.get("params") or {}
    lines = [
        ("job", job["job_id"]),
        ("status", describe(job)),
        ("model", job.get("model")),
        ("prompt", params.get("prompt")),
        ("size", f"{params.get('width')}x{params.get('height')}, {params.get('video_length')} frames "
                 f"@ {params.get('fps')} fps, {params.get('num_inference_steps')} steps, seed {params.get('seed')}"),
        ("created", job["created_at"]),
        ("finished", job.get("finished_at")),
        ("video", job.get("video_url")),
        ("poster", job.get("poster_url")),
        ("error", job.get("error")),
    ]
    for name, value in lines:
        if value is not None:
            print(f"{name:>8}: {printable(value)}")
    return EXIT_OK


def cmd_list(client, args):
    """Print jobs as a table, newest first."""
    answer = client.jobs(args.status, args.limit)
    if args.json:
        emit_json(answer)
        return EXIT_OK
    print(f"{'JOB':36}  {'STATUS':10}  {'PROGRESS':>8}  {'PHASE':14}  {'CREATED':23}  PROMPT")
    for job in answer["jobs"]:
        prompt = (job.get("params") or {}).get("prompt") or ""
        prompt = printable(prompt if len(prompt) <= 40 else prompt[:39] + "…")
        print(f"{printable(job['job_id']):36}  {printable(job['status']):10}  {round(job['progress'] * 100):7d}%  "
              f"{printable(job.get('phase')):14}  {printable(job['created_at'][:23]):23}  {prompt}")
    print(f"{answer['count']} of {answer['total']} job(s)", file=sys.stderr)
    for broken in answer.get("unreadable") or []:
        print(f"unreadable: {printable(broken['file'])}: {printable(broken['error'])}", file=sys.stderr)
    return EXIT_OK


def cmd_cancel(client, args):
    """Cancel a job."""
    job = client.cancel(args.job_id)
    if args.json:
        emit_json(job)
    else:
        print(printable(f"job {args.job_id} {job.get('status', 'canceled')}"))
    return EXIT_OK


def cmd_delete(client, args):
    """Delete a job and its files."""
    answer = client.delete(args.job_id)
    if args.json:
        emit_json(answer)
    else:
        print(printable(answer.get("message") or f"job {args.job_id} deleted"))
    return EXIT_OK


def cmd_download(client, args):
    """Save a finished job's video."""
    job = client.status(args.job_id)
    output = args.output or f"{args.job_id}.mp4"
    size = save_video(client, job, output)
    if args.json:
        emit_json({"job_id": args.job_id, "file": os.path.abspath(output), "bytes": size})
    else:
        print(f"saved {printable(output)} ({size} bytes)")
    return EXIT_OK


def cmd_models(client, args):
    """Print the server's models: task, family, state, and each one's ranges by flag."""
    models = model_list.models_of(client.info())
    if args.json:
        emit_json(models)
    else:
        print("\n".join(model_list.describe(models, RANGE_FLAGS)))
    return EXIT_OK


COMMANDS = {"generate": cmd_generate, "status": cmd_status, "list": cmd_list, "cancel": cmd_cancel,
            "delete": cmd_delete, "download": cmd_download, "models": cmd_models}


def main(argv=None):
    """Run the command line; returns the exit code.

    Everything printed that came from the server (prompts, errors, ids) goes
    through `printable`, so no answer can drive the terminal.
    """
    tolerate_any_terminal()
    args = build_parser().parse_args(argv)
    url = getattr(args, "url", None) or os.environ.get("HUNYUAN_API_URL") or DEFAULT_URL
    key = getattr(args, "api_key", None) or os.environ.get("HUNYUAN_API_KEY")
    args.json = getattr(args, "json", False)
    client = ApiClient(url, key)
    try:
        return COMMANDS[args.command](client, args)
    except ApiError as error:
        print(f"error: {printable(error.detail)} (HTTP {error.status})", file=sys.stderr)
        if error.status == 401:
            print("hint: pass --api-key or set HUNYUAN_API_KEY", file=sys.stderr)
        names_model = "model:" in error.detail or "image:" in error.detail
        if error.status == 422 and args.command == "generate" and names_model:
            print("hint: `hunyuan-video models` lists the server's models and which take --image", file=sys.stderr)
        return EXIT_HTTP_ERROR
    except Unreachable as error:
        print(f"error: {printable(error)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except Failure as failure:
        print(f"error: {printable(failure)}", file=sys.stderr)
        return failure.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
