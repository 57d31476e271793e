"""The job index's table, and how a job file becomes one row of it (hunyuan_core/job_index.py uses them)."""

import json
import os

from .job_record import JobStatus, parse_time

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY, status TEXT, terminal INTEGER NOT NULL DEFAULT 0, created_at TEXT,
    phase TEXT, owner TEXT, runner TEXT, ended_at TEXT, runner_dead INTEGER NOT NULL DEFAULT 0,
    webhook_due REAL, expires_at REAL, started_at TEXT, finished_at TEXT,
    duration REAL, queue_wait REAL, timings TEXT, steps INTEGER, step_seconds REAL,
    ino INTEGER, size INTEGER, mtime_ns INTEGER, unreadable TEXT
);
CREATE INDEX jobs_by_status ON jobs(status, created_at, job_id) WHERE unreadable IS NULL;
CREATE INDEX jobs_by_owner ON jobs(owner, status, created_at, job_id) WHERE unreadable IS NULL;
CREATE INDEX jobs_by_age ON jobs(created_at, job_id) WHERE unreadable IS NULL;
CREATE INDEX jobs_unfinished ON jobs(created_at, job_id) WHERE terminal = 0 AND unreadable IS NULL;
CREATE INDEX jobs_runners ON jobs(job_id) WHERE runner IS NOT NULL AND runner_dead = 0 AND unreadable IS NULL;
CREATE INDEX jobs_webhooks ON jobs(webhook_due) WHERE webhook_due IS NOT NULL;
CREATE INDEX jobs_unreadable ON jobs(job_id) WHERE unreadable IS NOT NULL;
CREATE INDEX jobs_expiry ON jobs(terminal, expires_at) WHERE unreadable IS NULL;
CREATE TABLE meta (key TEXT PRIMARY KEY, value);
-- Rows per status (and '!unreadable'), kept by triggers so counting never walks the table.
CREATE TABLE counts (key TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TRIGGER count_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO counts VALUES (COALESCE(CASE WHEN new.unreadable IS NULL THEN new.status END, '!unreadable'), 1)
    ON CONFLICT(key) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER count_delete AFTER DELETE ON jobs BEGIN
    UPDATE counts SET n = n - 1
    WHERE key = COALESCE(CASE WHEN old.unreadable IS NULL THEN old.status END, '!unreadable');
END;
CREATE TRIGGER count_update AFTER UPDATE OF status, unreadable ON jobs BEGIN
    UPDATE counts SET n = n - 1
    WHERE key = COALESCE(CASE WHEN old.unreadable IS NULL THEN old.status END, '!unreadable');
    INSERT INTO counts VALUES (COALESCE(CASE WHEN new.unreadable IS NULL THEN new.status END, '!unreadable'), 1)
    ON CONFLICT(key) DO UPDATE SET n = n + 1;
END;
"""
COLUMNS = ("job_id", "status", "terminal", "created_at", "phase", "owner", "runner", "ended_at", "runner_dead",
            "webhook_due", "expires_at", "started_at", "finished_at", "duration", "queue_wait", "timings",
            "steps", "step_seconds", "ino", "size", "mtime_ns", "unreadable")
# An upsert, not INSERT OR REPLACE: a replace deletes without firing the counting triggers.
UPSERT = (f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
           f"ON CONFLICT(job_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in COLUMNS[1:])}")


def seconds_between(start, end):
    """Seconds from one recorded timestamp to another (never negative), or None if either is missing or bad."""
    try:
        first, last = parse_time(start), parse_time(end)
    except (TypeError, ValueError):
        return None
    if first is None or last is None:
        return None
    return max((last - first).total_seconds(), 0.0)


def epoch(when):
    """A datetime (or ISO text) as seconds since the epoch, for ordering in SQL; None passes through."""
    if isinstance(when, str):
        try:
            when = parse_time(when)
        except ValueError:
            return None
    return None if when is None else when.timestamp()


def job_row(job, identity):
    """The index row of a record that passed job_schema's check, read from a file of `identity`."""
    # Imported here: both import the store, which imports this module.
    from .processes import runner_alive
    from .webhooks import due_at

    terminal = JobStatus(job["status"]).is_terminal
    runner = job.get("runner") if isinstance(job.get("runner"), dict) else None
    # A finished job whose runner recorded its end and is gone is settled for good (processes never come back).
    runner_dead = bool(terminal and runner and runner.get("ended_at") and not runner_alive(job))
    processes = None if not runner else json.dumps({"guard": runner.get("guard"), "worker": runner.get("worker")})
    mean = job.get("step_seconds")
    return (job["job_id"], job["status"], int(terminal), job["created_at"], job.get("phase"), job.get("owner"),
            processes, (runner or {}).get("ended_at"), int(runner_dead), epoch(due_at(job)),
            epoch(job.get("expires_at")), job.get("started_at"), job.get("finished_at"),
            seconds_between(job.get("started_at"), job.get("finished_at")),
            seconds_between(job.get("created_at"), job.get("started_at")),
            json.dumps(job.get("timings") or {}), job.get("step") or 0,
            mean if isinstance(mean, (int, float)) and not isinstance(mean, bool) else None, *identity, None)


def unreadable_row(job_id, identity, reason):
    """The index row of a job file that cannot be read: counted and listed, never dispatched."""
    return (job_id, None, 0, None, None, None, None, None, 0, None, None, None, None, None, None, None, None, None,
            *identity, reason)


def file_identity(path):
    """(inode, size, mtime_ns) of a path itself (a link is not followed), or None when it is gone."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns
