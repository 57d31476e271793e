"""What is in a job store: jobs with their ages and files, stuck jobs, prunable jobs, disk use.

The same questions in both modes: job files in a data folder, or records in Redis with
their videos, posters, logs and images in the artifact store (`store.distributed`).
"""

import os
import re
import shutil
from datetime import datetime, timezone

from hunyuan_core.job_record import JobStatus, parse_time
from hunyuan_core.job_store import JobFileUnreadable, JobNotFound

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text):
    """Seconds in `90`, `90s`, `30m`, `12h`, `7d` or `2w`; ValueError for anything else."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 12h, 7d, 2w)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def is_finished(status):
    """True for a status that can no longer change (including statuses newer than this code)."""
    try:
        return JobStatus(status).is_terminal
    except ValueError:
        return status == "canceled"


def age_seconds(job, now=None):
    """Seconds since the job was created."""
    now = now or datetime.now(timezone.utc)
    return (now - parse_time(job["created_at"])).total_seconds()


def file_size(path):
    """Size of `path` in bytes, or None if there is no such file (a link counts as itself, never followed)."""
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return None


def describe_unreadable(unreadable):
    """JobFileUnreadable errors as `{job_id, file, error}` dicts (what GET /api/jobs lists too)."""
    return [{"job_id": e.job_id, "file": e.path, "error": e.reason} for e in unreadable]


def artifact_sizes(store):
    """`size(job_id, kind)`: bytes of a job's stored video, poster, log or image, or None if absent.

    Job files: the files beside them, as they always were read. Redis: the artifact
    store, listed once (one ListObjectsV2 per thousand objects on S3, not a request per job).
    """
    if not store.distributed:
        paths = {"video": store.video_path, "poster": store.poster_path, "log": store.log_path,
                 "input": store.input_path}
        return lambda job_id, kind: file_size(paths[kind](job_id))
    sizes = {(job_id, kind): size for job_id, kind, size in store.artifacts.listing()}
    return lambda job_id, kind: sizes.get((job_id, kind))


def job_rows(store, now=None):
    """`(rows, unreadable)`: one summary dict per job, oldest first, and the files that cannot be read."""
    jobs, unreadable = store.list()
    size = artifact_sizes(store) if jobs else None
    rows = []
    for job in jobs:
        rows.append({
            "job_id": job["job_id"],
            "status": job["status"],
            "phase": job.get("phase"),
            "progress": job.get("progress", 0.0),
            "created_at": job["created_at"],
            "finished_at": job.get("finished_at"),
            "age_seconds": round(age_seconds(job, now), 1),
            "video_bytes": size(job["job_id"], "video"),
            "poster_bytes": size(job["job_id"], "poster"),
            "prompt": (job.get("params") or {}).get("prompt") or (job.get("request") or {}).get("prompt"),
        })
    return rows, describe_unreadable(unreadable)


def stuck_jobs(store, queued_older_than, now=None):
    """`(stuck, unreadable)`: jobs that will not move on by themselves, each as `{job_id, status, reason}`,
    and the job files that cannot be read.

    Processing jobs whose runner is gone (job files: none of its processes is alive,
    checked by pid and start time as the supervisor does; Redis: its end is recorded,
    or its worker host no longer announces itself), and queued jobs waiting longer
    than `queued_older_than` seconds. A running service fails the former by itself
    (within a second, or HOST_LOST_SECONDS for a lost host).
    """
    now = now or datetime.now(timezone.utc)
    jobs, unreadable = store.list()
    found = []
    for job in jobs:
        if job["status"] == JobStatus.PROCESSING.value and not store.runner_alive(job):
            found.append({"job_id": job["job_id"], "status": job["status"], "reason": gone_reason(store, job)})
        elif job["status"] == JobStatus.QUEUED.value and age_seconds(job, now) > queued_older_than:
            found.append({"job_id": job["job_id"], "status": job["status"],
                          "reason": f"queued for {round(age_seconds(job, now))} s"})
    return found, describe_unreadable(unreadable)


def gone_reason(store, job):
    """Why a processing job's runner counts as gone, in a sentence naming its processes or its host."""
    runner = job.get("runner") if isinstance(job.get("runner"), dict) else {}
    host = runner.get("host")
    if store.distributed and runner.get("ended_at"):
        return f"processing, but its runner on host {host} ended at {runner['ended_at']}"
    if store.distributed and host is not None:
        from hunyuan_core.hosts import last_seen  # Redis only

        seen = (last_seen(store, host) or {}).get("seen_at")
        return (f"processing on host {host}, which no longer announces itself "
                f"({'last seen ' + seen if seen else 'never seen'})")
    pids = ", ".join(f"{name} pid {runner[name]['pid']}" for name in ("guard", "worker")
                     if isinstance(runner.get(name), dict) and "pid" in runner[name])
    return f"processing, but its runner ({pids or 'never recorded'}) is gone"


def prune_candidates(store, older_than, statuses, now=None):
    """`(chosen, unreadable)`: finished jobs with a status in `statuses` that finished more than
    `older_than` seconds ago, and the job files that cannot be read."""
    now = now or datetime.now(timezone.utc)
    jobs, unreadable = store.list()
    chosen = []
    for job in jobs:
        if not is_finished(job["status"]) or job["status"] not in statuses:
            continue
        finished = parse_time(job.get("finished_at") or job.get("updated_at") or job["created_at"])
        if (now - finished).total_seconds() > older_than:
            chosen.append(job)
    return chosen, describe_unreadable(unreadable)


def modified_seconds_ago(path, now=None):
    """Seconds since `path` itself (a link, not its target) was last changed; None if it is gone."""
    now = now or datetime.now(timezone.utc)
    try:
        return now.timestamp() - os.lstat(path).st_mtime
    except FileNotFoundError:
        return None


def unreadable_to_prune(store, unreadable, older_than):
    """The unreadable records `prune --unreadable` may delete.

    Job files: those last changed longer ago than `older_than` (a file an editor or a
    copy is writing right now is left alone). Redis: all of them, since a Redis write
    is atomic, an unreadable record is never one half-written, and it has no mtime.
    """
    if store.distributed:
        return list(unreadable)
    ages = {bad["job_id"]: modified_seconds_ago(store.job_path(bad["job_id"])) for bad in unreadable}
    return [bad for bad in unreadable if ages[bad["job_id"]] is not None and ages[bad["job_id"]] > older_than]


def job_bytes(store, job_id):
    """Bytes held by a job's files (record, video, poster, log, input image), or its record and artifacts."""
    if store.distributed:
        record = store.call(lambda r: r.strlen(store.job_key(job_id)))
        return record + sum(store.artifacts.size(job_id, kind) or 0 for kind in ("video", "poster", "log", "input"))
    paths = (store.job_path(job_id), store.video_path(job_id), store.poster_path(job_id), store.log_path(job_id),
             store.input_path(job_id))
    return sum(file_size(path) or 0 for path in paths)


def prune(store, jobs):
    """Delete `jobs` through the store, re-checking each under the store's lock; returns the ids removed.

    A job is removed only if it is still finished when the lock is held, so a
    file the service rewrote meanwhile is never lost by mistake, and only once no
    process of it is alive (until then its record holds its runner slot).
    """
    removed = []
    for job in jobs:
        with store.locked():
            try:
                current = store.get(job["job_id"])
            except (JobNotFound, JobFileUnreadable):
                continue  # gone already, or broken: `jobs` reports it, an operator decides
            if current["status"] != job["status"] or not is_finished(current["status"]):
                continue
            if store.runner_alive(current):
                continue  # its runner is still exiting, and its record is what holds its slot
            store.delete(job["job_id"])  # JobStore's lock is re-entrant; RedisJobStore.delete takes none
        removed.append(job["job_id"])
    return removed


def prune_unreadable(store, entries):
    """Delete the jobs of unreadable files (`describe_unreadable` entries); returns the ids removed.

    Each is re-read under the store's lock and removed only if it still cannot be
    read: a file the service or an operator repaired meanwhile is kept.
    """
    removed = []
    for entry in entries:
        with store.locked():
            try:
                store.get(entry["job_id"])
            except JobNotFound:
                continue
            except JobFileUnreadable:
                store.delete(entry["job_id"])
                removed.append(entry["job_id"])
    return removed


def folder_bytes(path):
    """Bytes in the files under `path`, not following symbolic links (a linked model is not ours)."""
    total = 0
    for folder, dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass  # removed while we walked
    return total


def disk_usage(root):
    """Bytes per top-level folder of the data folder, and the file system's total and free space."""
    folders = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            folders[entry.name] = folder_bytes(entry.path)
        elif entry.is_file(follow_symlinks=False):
            folders.setdefault("(files)", 0)
            folders["(files)"] += entry.stat(follow_symlinks=False).st_size
    space = shutil.disk_usage(root)
    return {"root": str(root), "folders": folders, "total_bytes": sum(folders.values()),
            "disk_total_bytes": space.total, "disk_free_bytes": space.free}
