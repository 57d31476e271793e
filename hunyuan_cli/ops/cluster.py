"""What hunyuan-ops reads only in the many-host mode (REDIS_URL): artifacts, Redis itself, worker hosts."""

import time
from urllib.parse import urlsplit, urlunsplit

from hunyuan_core import hosts as cluster_hosts
from hunyuan_core.artifacts import KINDS

# show's names for the artifact kinds (`image`, as the file mode has always called the input image).
SHOWN = {"video": "video", "poster": "poster", "log": "log", "input": "image"}


def describe_redis(url):
    """REDIS_URL without what may be secret (user, password, query), for messages and output."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def describe_store(store):
    """Where jobs live, in words (never a password)."""
    if not store.distributed:
        return f"job files in {store.jobs_dir}"
    return f"Redis at {describe_redis(store.url)}"


def artifact_where(artifacts, job_id, kind):
    """Where an artifact is (or would be): its path in a folder store, `s3://bucket/key` in object storage."""
    path = artifacts.local_path(job_id, kind)
    return str(path) if path is not None else f"s3://{artifacts.bucket}/{artifacts.key(job_id, kind)}"


def artifact_files(store, job_id):
    """`{video|poster|log|image: {path, bytes}}` of a job's artifacts in the artifact store (bytes None: absent)."""
    return {SHOWN[kind]: {"path": artifact_where(store.artifacts, job_id, kind),
                          "bytes": store.artifacts.size(job_id, kind)}
            for kind in KINDS}


def artifact_usage(store):
    """The artifact store's contents: `{store, kinds: {kind: {files, bytes}}, total_bytes}` (one listing)."""
    kinds = {kind: {"files": 0, "bytes": 0} for kind in KINDS}
    for _, kind, size in store.artifacts.listing():
        kinds[kind]["files"] += 1
        kinds[kind]["bytes"] += size
    return {"store": store.artifacts.describe(), "kinds": kinds,
            "total_bytes": sum(entry["bytes"] for entry in kinds.values())}


def redis_usage(store):
    """`{url, jobs, used_memory_bytes}`: the number of job records indexed, and Redis's own memory use."""

    def read(r):
        return r.zcard(store.key("jobs")), r.info("memory").get("used_memory")

    count, memory = store.call(read)
    return {"url": describe_redis(store.url), "jobs": count, "used_memory_bytes": memory}


def host_rows(store, now=None):
    """Every worker host announced and not withdrawn, by name, each with `up` and `seen_seconds_ago`."""
    now = now or time.time()
    rows = []
    for host in cluster_hosts.hosts(store):
        seen = host.get("seen_epoch")
        rows.append(dict(host, seen_seconds_ago=None if seen is None else round(max(now - seen, 0.0), 1)))
    return rows


def forget(store, name):
    """Forget the lost host `name`: "forgotten", or "unknown" (never announced) or "up" (refused: it is alive)."""
    if cluster_hosts.last_seen(store, name) is None:
        return "unknown"
    if cluster_hosts.is_up(store, name):
        return "up"
    cluster_hosts.forget_lost(store, name)
    return "forgotten"
