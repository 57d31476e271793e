"""Idempotency-Key on POST /api/generate: a retried submission gets the same job.

The mapping lives beside the jobs: on disk, `DATA_DIR/idempotency/<sha256 of the key>.json`
(`{key_sha256, request_sha256, job_id, created_at}`), or in Redis under the same digest
(the store's `read_key_entry`/`write_key_entry`), read and written under the store lock, so it holds across gunicorn workers and restarts. A key whose job no
longer exists (deleted, or removed by VIDEO_TTL) is free again: keys expire with
their job.

Keys are scoped by the API key that sends them: with named API keys the digest is
taken over `<owner>\n<key>`, so two clients using the same Idempotency-Key never
meet each other's jobs (and a 409 only ever names the sender's own job).
"""

import hashlib
import json

from .errors import Conflict
from .job_store import JobFileUnreadable, JobNotFound
from .job_record import utc_now

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class KeyConflict(Conflict):
    """The key was used before with a different request body."""


def validate_key(key):
    """Return an error sentence for a malformed key, or None when it is acceptable."""
    if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        return f"{HEADER} header: must be 1 to {MAX_KEY_LENGTH} printable characters"
    return None


def request_digest(request):
    """A digest of the validated request (defaults filled in), so equal bodies match however they are spelled."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _key_digest(key, owner):
    # A key is printable (no newline) and an owner is a plain name, so "<owner>\n<key>"
    # never equals another owner's, nor an unscoped key (no API keys configured).
    scoped = key if owner is None else f"{owner}\n{key}"
    return hashlib.sha256(scoped.encode("utf-8")).hexdigest()


def find(store, key, digest, owner=None):
    """The job `owner` (an API key's name, or None) earlier submitted with `key`, or None.

    Call with the store lock held. Raises KeyConflict when the key was used with a
    different request.
    """
    key_digest = _key_digest(key, owner)
    entry = store.read_key_entry(key_digest)
    if entry is None:
        return None
    try:
        # A hand-edited mapping of any shape only frees its key (store.get refuses a non-id).
        job = store.get(entry["job_id"]) if isinstance(entry, dict) else None
        if job is None:
            raise KeyError("job_id")
    except (JobNotFound, JobFileUnreadable, KeyError, TypeError):
        store.forget_key_entry(key_digest)  # its job is gone: the key expired with it
        return None
    if job.get("owner") != owner:
        return None  # never another client's job, whatever the file says; a new mapping replaces it
    if entry.get("request_sha256") != digest:
        raise KeyConflict(
            f"{HEADER} header: this key was already used for job {job['job_id']} with a different request body"
        )
    return job


def remember(store, key, digest, job_id, owner=None):
    """Record that `owner`'s `key` created `job_id`; returns the scoped key's sha256. Call with the store lock held."""
    key_digest = _key_digest(key, owner)
    store.write_key_entry(key_digest, {"key_sha256": key_digest, "request_sha256": digest, "job_id": job_id,
                                       "created_at": utc_now()})
    return key_digest


def forget(store, key_digest):
    """Remove a key's mapping by its sha256 (when its job is removed)."""
    if key_digest:
        store.forget_key_entry(key_digest)
