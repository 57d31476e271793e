"""What bench/cluster_scale.py computes from job records: where they are read, and the figures.

Records are read where the service keeps them (Redis in the cluster, job files on one host),
so sampling them costs the web hosts nothing and sees `runner.host`, `created_at`,
`started_at` and `finished_at` exactly as written.
"""

import json
import math
from datetime import datetime
from pathlib import Path


def epoch(stamp):
    """A record's ISO 8601 timestamp as seconds since the epoch."""
    return datetime.fromisoformat(stamp).timestamp()


def percentile(values, fraction):
    """Nearest-rank percentile (None for no values)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else None


def host_of(record):
    """The worker host a record names (`runner.host`), or "this host" in the file mode."""
    return (record.get("runner") or {}).get("host") or "this host"


class RedisRecords:
    """Job records read straight from Redis (`hunyuan:job:<id>`), as the cluster keeps them."""

    def __init__(self, url):
        import redis

        self.client = redis.Redis.from_url(url, decode_responses=True)

    def __call__(self, job_ids):
        texts = self.client.mget([f"hunyuan:job:{job_id}" for job_id in job_ids]) if job_ids else []
        return {job_id: json.loads(text) for job_id, text in zip(job_ids, texts) if text}


class FileRecords:
    """Job records read from a data folder's job files, as the single-host mode keeps them."""

    def __init__(self, data_dir):
        self.jobs = Path(data_dir) / "jobs"

    def __call__(self, job_ids):
        records = {}
        for job_id in job_ids:
            try:
                records[job_id] = json.loads((self.jobs / f"{job_id}.json").read_text())
            except (OSError, ValueError):
                pass  # being replaced right now (atomic rename): read again at the next sample
        return records


def most_at_once(intervals):
    """The most intervals (start, end) open at one instant (an end before a start at equal times)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda event: (event[0], event[1]))
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def delay_once_a_slot_was_free(records, slots):
    """Per job, started_at minus the later of its created_at and the moment a slot was free for it.

    The i-th job to start (in start order) can only have a slot once i - slots jobs have
    finished, so its slot was free at the (i - slots)-th finish (FIFO dispatch of equal jobs).
    """
    done = [r for r in records if r.get("started_at") and r.get("finished_at")]
    finishes = sorted(epoch(r["finished_at"]) for r in done)
    delays = []
    for i, record in enumerate(sorted(done, key=lambda r: epoch(r["started_at"]))):
        ready = epoch(record["created_at"])
        if i >= slots:
            ready = max(ready, finishes[i - slots])
        delays.append(epoch(record["started_at"]) - ready)
    return delays
