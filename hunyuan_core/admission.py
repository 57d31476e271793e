"""Whether a new job may be accepted: a cap on the queue and a floor of free disk space.

Without them a burst of submissions grows the queue without bound (each job file
is small, but each video is not), and a full disk fails jobs halfway through
instead of refusing them up front. A refusal is one of the service's errors
(hunyuan_core/errors.py), which each face renders in its own way.
"""

import shutil

from .errors import InsufficientStorage, QueueFull
from .job_record import JobStatus

# What a refused client is told to wait before trying again: about one short job.
QUEUE_RETRY_AFTER_SECONDS = 30
_MB = 1024 * 1024


def queued_count(store):
    """How many jobs are waiting to start."""
    return store.index.counts()[0].get(JobStatus.QUEUED.value, 0)


def check(store, max_queue, min_free_disk_mb):
    """Raise QueueFull or InsufficientStorage if a new job may not be queued now.

    `max_queue` 0 means no cap; `min_free_disk_mb` 0 means no floor.
    """
    if min_free_disk_mb:
        free_mb = shutil.disk_usage(store.root).free // _MB
        if free_mb < min_free_disk_mb:
            raise InsufficientStorage(
                f"Not enough free disk space for new jobs: {free_mb} MB free in the data folder, "
                f"MIN_FREE_DISK_MB is {min_free_disk_mb}. Delete finished jobs or free some space.",
            )
    if max_queue:
        waiting = queued_count(store)
        if waiting >= max_queue:
            raise QueueFull(
                f"The queue is full: {waiting} jobs are waiting (MAX_QUEUE is {max_queue}). "
                f"Try again in {QUEUE_RETRY_AFTER_SECONDS} s.",
                {"Retry-After": str(QUEUE_RETRY_AFTER_SECONDS)},
            )
