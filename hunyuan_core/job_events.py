"""Live progress of one job as a Server-Sent Events stream (text/event-stream).

The stream watches the job file cheaply: one `stat` of the file and of the jobs
folder per poll. Every write to a job file is an atomic rename into the jobs
folder, so the folder's mtime moves whenever any job changes (which is what moves
a queued job's position and ETA); only then is the status object rebuilt, and an
event is sent only if it tells something new (see `is_news`: estimates that merely
count down as predicted are not news).

Wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html):

    retry: 2000                      reconnect delay hint, once at the start
    id: <job updated_at>             the version of the job file the event shows
    event: progress                  while the job is queued or processing
    data: {...GET /api/status body...}

    : keep-alive                     a comment every EVENTS_KEEPALIVE seconds of silence

and finally one event named after the terminal status (`completed`, `failed`, or
any other terminal status JobStatus defines), after which the stream ends. If
the job is deleted while watched, a `deleted` event ends the stream.
"""

import json
import time

from .job_record import JobStatus
from .job_store import JobFileUnreadable, JobNotFound

# Milliseconds a client should wait before reconnecting (sent as `retry:`).
RECONNECT_MILLISECONDS = 2000
# Estimates drift with the clock on every rebuild; a change smaller than this (seconds, or
# this fraction of the estimate) from what the last event's countdown implies is not news.
ETA_TOLERANCE_SECONDS = 1.0
ETA_TOLERANCE_FRACTION = 0.05
_ESTIMATES = ("eta_seconds", "estimated_time")


def format_event(data, event=None, event_id=None):
    """One SSE message: optional `id:` and `event:` lines, then the JSON `data:` line."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    # json.dumps never emits a raw newline, so the data fits on one `data:` line.
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return "\n".join(lines) + "\n\n"


def is_news(body, sent, seconds_since_sent):
    """True if `body` tells a client more than `sent` did, `seconds_since_sent` ago.

    Anything but the estimates counts. An ETA counts when it is off from the last
    one counted down by the time since, by more than the tolerance.
    """
    if sent is None:
        return True
    if any(body[key] != sent[key] for key in body if key not in _ESTIMATES):
        return True
    eta, before = body.get("eta_seconds"), sent.get("eta_seconds")
    if (eta is None) != (before is None):
        return True
    if eta is None:
        return False
    expected = max(before - seconds_since_sent, 0.0)
    return abs(eta - expected) > max(ETA_TOLERANCE_SECONDS, ETA_TOLERANCE_FRACTION * expected)


def event_name(status_body):
    """The SSE event name for a status body: the terminal status, else `progress`."""
    status = JobStatus(status_body["status"])
    return status.value if status.is_terminal else "progress"


class JobEventStream:
    """An iterable of SSE text chunks following one job until it ends (or the stream's lifetime does).

    `describe(job)` turns a job record into the status body; it is called only
    when the job file or the jobs folder changed since the last poll.
    """

    def __init__(self, store, job_id, describe, poll_interval, keepalive, max_seconds, last_event_id=None,
                 clock=time.monotonic, sleep=time.sleep):
        self.store = store
        self.job_id = job_id
        self.describe = describe
        self.poll_interval = poll_interval
        self.keepalive = keepalive
        self.max_seconds = max_seconds
        self.last_event_id = last_event_id
        self.clock = clock
        self.sleep = sleep

    def _signature(self):
        """What changes whenever the job or the queue around it changes: stats of file and folder."""
        return self.store.signature(self.job_id)

    def __iter__(self):
        """Yield the stream's text chunks (see the module docstring for the format)."""
        started = last_output = self.clock()
        yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
        seen_signature, sent, sent_at = object(), None, started
        # A reconnecting client already holds the version it names: do not send it again.
        resume_from = self.last_event_id
        while True:
            signature = self._signature()
            if signature != seen_signature:
                seen_signature = signature
                try:
                    job = self.store.get(self.job_id) if signature is not None else None
                except JobNotFound:
                    job = None
                except JobFileUnreadable as exc:
                    yield format_event({"job_id": self.job_id, "detail": str(exc)}, event="error")
                    return
                if job is None:
                    yield format_event({"job_id": self.job_id, "detail": "Job not found (deleted)"}, event="deleted")
                    return
                body = self.describe(job)
                name = event_name(body)
                event_id = job.get("updated_at")
                if name != "progress":
                    yield format_event(body, event=name, event_id=event_id)
                    return
                if resume_from is not None and resume_from == event_id:
                    sent, sent_at = body, self.clock()  # the client holds this version already
                elif is_news(body, sent, self.clock() - sent_at):
                    yield format_event(body, event=name, event_id=event_id)
                    now = self.clock()
                    sent, sent_at, last_output = body, now, now
                resume_from = None
            now = self.clock()
            if now - started >= self.max_seconds:
                # Frees the web thread; EventSource reconnects by itself with Last-Event-ID.
                yield ": stream lifetime reached (EVENTS_MAX_SECONDS); reconnect to continue\n\n"
                return
            if now - last_output >= self.keepalive:
                yield ": keep-alive\n\n"
                last_output = now
            self.sleep(self.poll_interval)
