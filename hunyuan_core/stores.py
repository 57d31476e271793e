"""Opening the job store a process works with: job files (the embedded default) or Redis (REDIS_URL).

Web workers, worker hosts, runners and hunyuan-ops all open their store here, from the
same settings (hunyuan_core/config.py), so they always agree on where jobs live.
"""

import os

from . import config
from .job_store import JobStore

# How long a runner or worker host waits out a Redis outage before giving up on a write:
# long enough for a restart (append-only file replayed), short of the stall limit.
RUNNER_PATIENCE_SECONDS = 120.0


def open_store(settings, host=None, patience=0.0):
    """The store for `settings` (a config.from_environ() dict): a JobStore, or a RedisJobStore with REDIS_URL.

    `host`: this worker host's name (worker hosts and their runners); `patience`: seconds
    a Redis store retries while Redis is unreachable (0: StoreUnavailable at once, for
    API requests).
    """
    if not settings.get("REDIS_URL"):
        return JobStore(settings["DATA_DIR"])
    # Imported only in the many-host mode: the embedded default never needs redis or boto3.
    from .artifacts import open_artifacts
    from .redis_store import RedisJobStore

    return RedisJobStore(settings["DATA_DIR"], settings["REDIS_URL"], artifacts=open_artifacts(settings),
                         host=host, patience=patience)


def open_runner_store(data_dir):
    """The store a runner process (guard, work process, fixture runner) uses for `data_dir`.

    The worker host passes REDIS_URL, ARTIFACTS_URL and WORKER_NAME down in the
    environment; without REDIS_URL this is the job files in `data_dir`, as always.
    """
    if not os.environ.get("REDIS_URL", "").strip():
        return JobStore(data_dir)
    settings = config.from_environ(dict(os.environ, DATA_DIR=str(data_dir)))
    return open_store(settings, host=settings["WORKER_NAME"], patience=RUNNER_PATIENCE_SECONDS)
