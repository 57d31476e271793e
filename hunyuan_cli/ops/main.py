"""The `hunyuan-ops` command line: jobs, show, stuck, prune, du."""

import argparse
import json
import os
import sys
from pathlib import Path

from hunyuan_cli.text import printable, tolerate_any_terminal
from hunyuan_core.job_store import JobFileUnreadable, JobNotFound, JobStore

from . import inventory

EXIT_OK = 0
EXIT_FOUND = 1  # `stuck` found stuck jobs; `jobs`, `stuck` or `prune` found unreadable job files
EXIT_USAGE = 2
EXIT_NO_JOB = 3  # `show`: no such job, or its file cannot be read
FINISHED = ("completed", "failed", "canceled")

EPILOG = """exit codes: 0 fine · 1 something to look at (stuck jobs, unreadable job files left)
  2 bad command line or no data folder · 3 no such job, or its file is unreadable"""


def build_parser():
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="hunyuan-ops", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Inspect and clean a HunyuanVideo service's data folder (server running or stopped).",
    )
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "./data"),
                        help="the service's DATA_DIR (default $DATA_DIR or ./data)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("jobs", help="every job: status, age, video size")
    commands.add_parser("show", help="one job file, pretty-printed").add_argument("job_id")
    stuck = commands.add_parser("stuck", help="processing jobs whose runner is gone, queued jobs waiting too long")
    stuck.add_argument("--queued-older-than", default="1h", type=_duration, help="e.g. 30m, 2h (default 1h)")
    prune = commands.add_parser("prune", help="delete finished jobs and their files")
    prune.add_argument("--older-than", required=True, type=_duration, help="finished longer ago than this: 7d, 12h")
    prune.add_argument("--status", action="append", choices=FINISHED,
                       help="only jobs with this status (repeatable; default all finished)")
    prune.add_argument("--unreadable", action="store_true",
                       help="also delete job files that cannot be read (with the job's video, poster and log), "
                       "if the file itself was last changed longer ago than --older-than")
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    commands.add_parser("du", help="disk use by folder, and free space")
    return parser


def _duration(text):
    try:
        return inventory.parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def human_bytes(count):
    """`812 B`, `3.4 MB`, `1.2 GB`."""
    if count is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000


def human_age(seconds):
    """`45s`, `12m`, `5h`, `3d`."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def emit(args, value, text_lines):
    """Print `value` as JSON with --json, else the text lines.

    Text that came from job files or file names must already have gone through
    `printable`; JSON escapes every non-ASCII character by itself (ensure_ascii).
    """
    if args.json:
        print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=True))
    else:
        for line in text_lines:
            print(line)


def unreadable_lines(unreadable):
    """One line per job file that cannot be read, saying why."""
    return [f"UNREADABLE {printable(bad['file'])}: {printable(bad['error'])}" for bad in unreadable]


def cmd_jobs(store, args):
    """List every job, oldest first, and report unreadable files."""
    rows, unreadable = inventory.job_rows(store)
    lines = [f"{'JOB':36}  {'STATUS':10}  {'PHASE':14}  {'AGE':>5}  {'VIDEO':>9}  PROMPT"]
    for row in rows:
        prompt = printable((row["prompt"] or "")[:40])
        lines.append(f"{printable(row['job_id']):36}  {printable(row['status']):10}  {printable(row['phase']):14}  "
                     f"{human_age(row['age_seconds']):>5}  {human_bytes(row['video_bytes']):>9}  {prompt}")
    lines += unreadable_lines(unreadable)
    lines.append(f"{len(rows)} job(s), {len(unreadable)} unreadable file(s)")
    emit(args, {"jobs": rows, "unreadable": unreadable}, lines)
    return EXIT_FOUND if unreadable else EXIT_OK


def cmd_show(store, args):
    """Pretty-print one job file and the files beside it."""
    try:
        job = store.get(args.job_id)
    except JobNotFound:
        print(f"no job {printable(args.job_id)} in {printable(store.jobs_dir)}", file=sys.stderr)
        return EXIT_NO_JOB
    except JobFileUnreadable as error:
        print(f"{printable(error.path)} cannot be read: {printable(error.reason)}", file=sys.stderr)
        return EXIT_NO_JOB
    files = {
        name: {"path": str(path), "bytes": inventory.file_size(path)}
        for name, path in (("video", store.video_path(args.job_id)), ("poster", store.poster_path(args.job_id)),
                           ("log", store.log_path(args.job_id)), ("image", store.input_path(args.job_id)))
    }
    lines = [json.dumps(job, indent=2, sort_keys=False, ensure_ascii=True)]
    lines += [f"{name}: {printable(info['path'])} "
              f"({human_bytes(info['bytes']) if info['bytes'] is not None else 'absent'})"
              for name, info in files.items()]
    emit(args, {"job": job, "files": files}, lines)
    return EXIT_OK


def cmd_stuck(store, args):
    """Report jobs that will not move on by themselves, and unreadable job files (exit 1 if there are any)."""
    found, unreadable = inventory.stuck_jobs(store, args.queued_older_than)
    lines = [f"{printable(item['job_id'])}  {printable(item['reason'])}" for item in found] or ["no stuck jobs"]
    lines += unreadable_lines(unreadable)
    emit(args, {"stuck": found, "unreadable": unreadable}, lines)
    return EXIT_FOUND if found or unreadable else EXIT_OK


def cmd_prune(store, args):
    """Delete finished jobs older than --older-than (or list them with --dry-run)."""
    statuses = set(args.status or FINISHED)
    chosen, unreadable = inventory.prune_candidates(store, args.older_than, statuses)
    broken = []
    if args.unreadable:
        ages = {bad["job_id"]: inventory.modified_seconds_ago(store.job_path(bad["job_id"])) for bad in unreadable}
        broken = [bad for bad in unreadable if ages[bad["job_id"]] is not None and ages[bad["job_id"]] > args.older_than]
    ids = [job["job_id"] for job in chosen] + [bad["job_id"] for bad in broken]
    sizes = {job_id: inventory.job_bytes(store, job_id) for job_id in ids}
    if args.dry_run:
        listed = ids
    else:
        listed = inventory.prune(store, chosen) + inventory.prune_unreadable(store, broken)
    left = [bad for bad in unreadable if args.dry_run or bad["job_id"] not in listed]
    verb = "would delete" if args.dry_run else "deleted"
    lines = [f"{verb} {printable(job_id)}  ({human_bytes(sizes[job_id])})" for job_id in listed]
    lines.append(f"{verb} {len(listed)} job(s), {human_bytes(sum(sizes[j] for j in listed))}")
    lines += unreadable_lines(left)
    if left:
        hint = "" if args.unreadable else "; --unreadable deletes them"
        lines.append(f"{len(left)} unreadable job file(s) left{hint}")
    emit(args, {"dry_run": args.dry_run, "jobs": listed, "bytes": sum(sizes[j] for j in listed),
                "unreadable": left}, lines)
    return EXIT_FOUND if left else EXIT_OK


def cmd_du(store, args):
    """Disk use of each folder of the data folder, and free space on its disk."""
    usage = inventory.disk_usage(store.root)
    lines = [f"{printable(name):>10}  {human_bytes(size):>9}" for name, size in usage["folders"].items()]
    lines.append(f"{'total':>10}  {human_bytes(usage['total_bytes']):>9}")
    free, total = human_bytes(usage["disk_free_bytes"]), human_bytes(usage["disk_total_bytes"])
    lines.append(f"{'free':>10}  {free:>9} of {total}")
    emit(args, usage, lines)
    return EXIT_OK


COMMANDS = {"jobs": cmd_jobs, "show": cmd_show, "stuck": cmd_stuck, "prune": cmd_prune, "du": cmd_du}


def main(argv=None):
    """Run the command line; returns the exit code."""
    tolerate_any_terminal()
    args = build_parser().parse_args(argv)
    root = Path(args.data_dir)
    # JobStore creates missing folders; a mistyped --data-dir must not grow an empty data folder.
    if not (root / "jobs").is_dir():
        print(f"error: {printable(root)} has no jobs/ folder; is --data-dir (or DATA_DIR) the service's data folder?",
              file=sys.stderr)
        return EXIT_USAGE
    return COMMANDS[args.command](JobStore(root), args)
