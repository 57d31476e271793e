"""The `hunyuan-ops` command line: jobs, show, stuck, prune, du, export, hosts.

It opens the store the service's settings name (hunyuan_core/stores.py): the job files in
--data-dir, or with REDIS_URL the records in Redis and the artifact store (ARTIFACTS_URL).
"""

import argparse
import json
import os
import sys
from pathlib import Path

from hunyuan_cli.text import printable, tolerate_any_terminal
from hunyuan_core import config
from hunyuan_core.errors import Unavailable
from hunyuan_core.job_record import JobStatus
from hunyuan_core.job_store import JobFileUnreadable, JobNotFound
from hunyuan_core.stores import open_store

from . import cluster, export, inventory
from .output import emit, human_age, human_bytes, unreadable_lines

EXIT_OK = 0
EXIT_FOUND = 1  # `stuck` found stuck jobs, `hosts` lost hosts; `jobs`, `stuck`, `prune`, `export` unreadable records
EXIT_USAGE = 2
EXIT_NO_JOB = 3  # `show`: no such job, or its file cannot be read; `hosts --forget`: no such host
EXIT_UNREACHABLE = 4  # Redis or the artifact store cannot be reached
FINISHED = ("completed", "failed", "canceled")

EPILOG = """exit codes: 0 fine · 1 something to look at (stuck jobs, lost hosts, unreadable job files left)
  2 bad command line, no data folder or a refused export/forget · 3 no such job (or host), or its file is
  unreadable · 4 Redis or the artifact store cannot be reached

With REDIS_URL set (the many-host mode) every command works on the jobs in Redis and the
artifact store (ARTIFACTS_URL); --data-dir is then this host's own data folder."""


def build_parser():
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="hunyuan-ops", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Inspect and clean a HunyuanVideo service's jobs (server running or stopped): the job files in "
        "its data folder, or with REDIS_URL the jobs in Redis and their artifacts.",
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
                       "if the file itself was last changed longer ago than --older-than (Redis records: any age, "
                       "a Redis write is never seen half done)")
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    commands.add_parser("du", help="disk use by folder, and free space (with REDIS_URL also the artifact store by kind)")
    exporting = commands.add_parser(
        "export", help="write job records as DIR/jobs/<job_id>.json job files (docs/job-file.md)",
        description="Write every job record (or those chosen) as DIR/jobs/<job_id>.json, the bytes a job file holds, "
        "for scripts that read a data folder's jobs/. DIR must be new or empty unless --force; the service's own "
        "data folder is always refused.")
    exporting.add_argument("directory", metavar="DIR", help="the folder to write jobs/ into")
    exporting.add_argument("--status", action="append", choices=[status.value for status in JobStatus],
                           help="only jobs with this status (repeatable; default all)")
    exporting.add_argument("--since", type=_since, help="only jobs created since: a duration back (7d, 12h) or an "
                           "ISO 8601 date or time (2026-11-01, 2026-11-01T12:00:00Z; UTC if no offset)")
    exporting.add_argument("--force", action="store_true",
                           help="write into a non-empty DIR (replacing job files of the same id, deleting nothing)")
    hosts = commands.add_parser("hosts", help="worker hosts (REDIS_URL only): up or lost, slots, models, running jobs")
    hosts.add_argument("--forget", metavar="NAME", help="drop a lost host from the list (a host that is up is refused)")
    return parser


def _duration(text):
    try:
        return inventory.parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _since(text):
    try:
        return export.parse_since(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
        where = store.jobs_dir if not store.distributed else cluster.describe_store(store)
        print(f"no job {printable(args.job_id)} in {printable(where)}", file=sys.stderr)
        return EXIT_NO_JOB
    except JobFileUnreadable as error:
        print(f"{printable(error.path)} cannot be read: {printable(error.reason)}", file=sys.stderr)
        return EXIT_NO_JOB
    if store.distributed:
        files = cluster.artifact_files(store, args.job_id)
    else:
        files = {
            name: {"path": str(path), "bytes": inventory.file_size(path)}
            for name, path in (("video", store.video_path(args.job_id)), ("poster", store.poster_path(args.job_id)),
                               ("log", store.log_path(args.job_id)), ("image", store.input_path(args.job_id)))
        }
    lines = [json.dumps(job, indent=2, sort_keys=False, ensure_ascii=True)]
    lines += [f"{name}: {printable(info['path'])} "
              f"({human_bytes(info['bytes']) if info['bytes'] is not None else 'absent'})"
              for name, info in files.items()]
    value = {"job": job, "files": files}
    if store.distributed:
        value["artifacts"] = store.artifacts.describe()
        lines.append(f"artifacts: {printable(value['artifacts'])}")
    emit(args, value, lines)
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
    broken = inventory.unreadable_to_prune(store, unreadable, args.older_than) if args.unreadable else []
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
    """Disk use of each folder of the data folder, and free space on its disk; with Redis, the artifact store too."""
    usage = inventory.disk_usage(store.root)
    lines = [f"{printable(name):>10}  {human_bytes(size):>9}" for name, size in usage["folders"].items()]
    lines.append(f"{'total':>10}  {human_bytes(usage['total_bytes']):>9}")
    free, total = human_bytes(usage["disk_free_bytes"]), human_bytes(usage["disk_total_bytes"])
    lines.append(f"{'free':>10}  {free:>9} of {total}")
    if store.distributed:
        lines.insert(0, f"this host's data folder {printable(store.root)}:")
        usage["artifacts"] = cluster.artifact_usage(store)
        usage["redis"] = cluster.redis_usage(store)
        lines.append(f"artifacts in {printable(usage['artifacts']['store'])}:")
        lines += [f"{kind:>10}  {human_bytes(entry['bytes']):>9}  {entry['files']} file(s)"
                  for kind, entry in usage["artifacts"]["kinds"].items()]
        lines.append(f"{'total':>10}  {human_bytes(usage['artifacts']['total_bytes']):>9}")
        redis = usage["redis"]
        lines.append(f"jobs in Redis at {printable(redis['url'])}: {redis['jobs']} record(s), Redis uses "
                     f"{human_bytes(redis['used_memory_bytes'])}")
    emit(args, usage, lines)
    return EXIT_OK


def cmd_export(store, args):
    """Write the chosen job records as job files under DIR/jobs; prints how many."""
    try:
        target = export.jobs_folder(args.directory, store, args.force)
    except export.ExportRefused as refused:
        print(f"error: {printable(refused)}", file=sys.stderr)
        return EXIT_USAGE
    jobs, unreadable = store.list()
    written = export.export(export.choose(jobs, args.status, args.since), target)
    unreadable = inventory.describe_unreadable(unreadable)
    lines = [f"exported {len(written)} job(s) to {printable(target)}"] + unreadable_lines(unreadable)
    if unreadable:
        lines.append(f"{len(unreadable)} unreadable record(s) not exported")
    emit(args, {"directory": str(target), "count": len(written), "jobs": written, "unreadable": unreadable}, lines)
    return EXIT_FOUND if unreadable else EXIT_OK


def cmd_hosts(store, args):
    """The worker hosts (up or lost, slots, models, device, running jobs), or forget a lost one."""
    if args.forget is not None:
        outcome = cluster.forget(store, args.forget)
        messages = {"forgotten": f"forgot lost host {printable(args.forget)}",
                    "unknown": f"no host {printable(args.forget)} in the list",
                    "up": f"host {printable(args.forget)} is up (it announces itself); stop its hunyuan-worker "
                          "instead (a clean stop takes it off the list)"}
        if outcome != "forgotten":
            print(f"error: {messages[outcome]}", file=sys.stderr)
            return EXIT_NO_JOB if outcome == "unknown" else EXIT_USAGE
        emit(args, {"forgotten": args.forget}, [messages[outcome]])
        return EXIT_OK
    rows = cluster.host_rows(store)
    lines = [f"{'HOST':24}  {'STATE':5}  {'SLOTS':>5}  {'RUNNING':>7}  {'DEVICE':8}  {'SEEN':>5}  MODELS"]
    for row in rows:
        seen = "-" if row["seen_seconds_ago"] is None else human_age(row["seen_seconds_ago"])
        lines.append(f"{printable(row['name']):24}  {'up' if row['up'] else 'LOST':5}  {row.get('slots', '-')!s:>5}  "
                     f"{len(row.get('running') or ()):>7}  {printable(row.get('device') or '-'):8}  {seen:>5}  "
                     f"{printable(', '.join(row.get('models') or ()))}")
    lost = [row["name"] for row in rows if not row["up"]]
    lines.append(f"{len(rows)} host(s), {len(lost)} lost" + ("; `hosts --forget NAME` drops one" if lost else ""))
    emit(args, {"hosts": rows}, lines)
    return EXIT_FOUND if lost else EXIT_OK


COMMANDS = {"jobs": cmd_jobs, "show": cmd_show, "stuck": cmd_stuck, "prune": cmd_prune, "du": cmd_du,
            "export": cmd_export, "hosts": cmd_hosts}


def main(argv=None):
    """Run the command line; returns the exit code."""
    tolerate_any_terminal()
    args = build_parser().parse_args(argv)
    root = Path(args.data_dir)
    try:
        settings = config.from_environ(dict(os.environ, DATA_DIR=str(root)))
    except ValueError as error:
        print(f"error: {printable(error)}", file=sys.stderr)
        return EXIT_USAGE
    distributed = bool(settings["REDIS_URL"])
    if args.command == "hosts" and not distributed:
        print("error: `hosts` needs REDIS_URL (the many-host mode); without it the service on this data folder "
              "runs every job itself, on this host", file=sys.stderr)
        return EXIT_USAGE
    # The stores create missing folders; a mistyped --data-dir must not grow an empty data folder.
    if not distributed and not (root / "jobs").is_dir():
        print(f"error: {printable(root)} has no jobs/ folder; is --data-dir (or DATA_DIR) the service's data folder?",
              file=sys.stderr)
        return EXIT_USAGE
    if distributed and not root.is_dir():
        print(f"error: {printable(root)} is not a folder; with REDIS_URL, --data-dir (or DATA_DIR) is this host's "
              "data folder (on a host without one, create an empty folder)", file=sys.stderr)
        return EXIT_USAGE
    try:
        # The folder as given (not made absolute): messages name it as the operator wrote it.
        store = open_store(dict(settings, DATA_DIR=str(root)))
        return COMMANDS[args.command](store, args)
    except Unavailable as error:  # Redis or the artifact store is down: say so, no traceback
        print(f"error: {printable(error.detail)}", file=sys.stderr)
        return EXIT_UNREACHABLE
