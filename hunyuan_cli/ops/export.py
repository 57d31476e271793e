"""`hunyuan-ops export DIR`: job records as job files, for operators' scripts that read a data folder.

Each record becomes `DIR/jobs/<job_id>.json` holding exactly the bytes the file store
would write for it (docs/job-file.md: format version 1, JSON with sorted keys), written
atomically (hunyuan_core/atomic_file.py), so a script reading `DIR/jobs/*.json` cannot
tell the export from a data folder. It works in both modes: from Redis, or copying a
data folder's own job files.

What it refuses, so an export never overwrites what it should not:
- a DIR that is a file, or whose `jobs` is a symbolic link or not a folder;
- the service's own data folder (its job files would be rewritten behind its back),
  even with --force;
- an existing DIR that is not empty, unless --force: then records are written into
  DIR/jobs, replacing files of the same job id, and nothing else there is touched
  (no file is ever deleted: an export into an old one may leave jobs deleted since).
"""

from datetime import datetime, timezone
from pathlib import Path

from hunyuan_core.atomic_file import write_json_atomic
from hunyuan_core.job_record import parse_time

from .inventory import parse_duration


class ExportRefused(Exception):
    """The export's folder is one it must not write into; the message says why and what to do."""


def parse_since(text, now=None):
    """The time `--since` names: a duration back from now (`7d`, `12h`) or an ISO 8601 date or time.

    A date or time without an offset is taken as UTC. ValueError for anything else.
    """
    now = now or datetime.now(timezone.utc)
    try:
        return now.timestamp() - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a duration or ISO 8601 time: {text!r} (use e.g. 7d, 12h, 2026-11-01, "
                         "2026-11-01T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def choose(jobs, statuses=None, since=None):
    """The jobs to export: those with a status in `statuses` (None: any) created at or after `since` (epoch s)."""
    return [job for job in jobs
            if (not statuses or job["status"] in statuses)
            and (since is None or parse_time(job["created_at"]).timestamp() >= since)]


def jobs_folder(directory, store, force):
    """`DIR/jobs`, created if need be, once DIR is checked to be a safe place; ExportRefused if not."""
    directory = Path(directory)
    if directory.resolve() == Path(store.root).resolve():
        raise ExportRefused(f"{directory} is the service's own data folder; export to another folder")
    if directory.exists() or directory.is_symlink():
        if not directory.is_dir():
            raise ExportRefused(f"{directory} exists and is not a folder")
        if any(directory.iterdir()) and not force:
            raise ExportRefused(f"{directory} is not empty; --force writes into it (replacing job files of the "
                                "same id, deleting nothing), or name a new folder")
    target = directory / "jobs"
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ExportRefused(f"{target} is a symbolic link or not a folder; export to another folder")
    if not store.distributed and target.resolve() == Path(store.jobs_dir).resolve():
        raise ExportRefused(f"{target} is the service's own jobs folder; export to another folder")
    target.mkdir(parents=True, exist_ok=True)
    return target


def export(jobs, target):
    """Write each record as `target/<job_id>.json`, atomically; returns the ids written, in order."""
    written = []
    for job in jobs:
        # Ids come from records that passed check_job: always a plain file name.
        write_json_atomic(Path(target) / f"{job['job_id']}.json", job)
        written.append(job["job_id"])
    return written
