"""Worker hosts announcing themselves in Redis, and what the cluster knows of them.

Each worker host writes `hunyuan:host:<name>` (its slots, models, device, running jobs)
every HOST_HEARTBEAT_SECONDS with a time to live of HOST_LOST_SECONDS: a host that
stops writing (power cut, network gone) disappears on its own, and its jobs are
then found by hunyuan_core/cluster.py. `hunyuan:hosts` remembers every name seen, so
/api/info can say which hosts were lost and when they were last heard from.
"""

import json
import time

from .job_record import utc_now


def announce(store, info, lost_seconds):
    """Write this host's announcement (`info` with at least `name`), valid for `lost_seconds`."""
    record = dict(info, seen_at=utc_now(), seen_epoch=time.time())
    encoded = json.dumps(record)

    def write(r):
        pipe = r.pipeline(transaction=True)
        pipe.set(store.key("host", info["name"]), encoded, px=int(lost_seconds * 1000))
        pipe.hset(store.key("hosts"), info["name"], encoded)
        pipe.execute()

    store.call(write)
    return record


def withdraw(store, name):
    """Remove this host's announcement (a clean shutdown: it is not lost, it left)."""

    def remove(r):
        pipe = r.pipeline(transaction=True)
        pipe.delete(store.key("host", name))
        pipe.hdel(store.key("hosts"), name)
        pipe.execute()

    store.call(remove)


def is_up(store, name):
    """True while host `name` announces itself."""
    return bool(store.call(lambda r: r.exists(store.key("host", name))))


def last_seen(store, name):
    """The last announcement of host `name` (up or lost), or None if it never announced itself."""
    data = store.call(lambda r: r.hget(store.key("hosts"), name))
    return None if data is None else json.loads(data)


def hosts(store):
    """Every host ever announced and not withdrawn: `[{..., "up": bool}]`, by name."""

    def read(r):
        known = r.hgetall(store.key("hosts"))
        names = sorted(name.decode() for name in known)
        alive = r.mget([store.key("host", name) for name in names]) if names else []
        return known, names, alive

    known, names, alive = store.call(read)
    listed = []
    for name, current in zip(names, alive):
        record = json.loads(current if current is not None else known[name.encode()])
        record["up"] = current is not None
        listed.append(record)
    return listed


def capacity(store, fallback):
    """The cluster's runner slots: the sum of the up hosts' MAX_WORKERS (`fallback` while none is up)."""
    return sum(int(host.get("slots") or 0) for host in hosts(store) if host["up"]) or fallback


def forget_lost(store, name):
    """Drop a lost host from the list (hunyuan-ops, once an operator knows it is gone for good)."""
    store.call(lambda r: r.hdel(store.key("hosts"), name))
