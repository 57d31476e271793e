"""Crash-safe file writes: readers see the old content or the new one, never a mix."""

import json
import os
import tempfile
from pathlib import Path


def write_json_atomic(path, data):
    """Write `data` as JSON to `path` atomically.

    The text goes to a temporary file in the same folder, is flushed and fsynced,
    and then renamed over the target: a rename within one filesystem is atomic, so
    a reader (or an operator's script) never sees a half-written file, and a crash
    leaves either the old file or the new one.
    """
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def write_bytes_atomic(path, data):
    """Write the bytes `data` to `path` atomically, as write_json_atomic does (readable by all, fsynced)."""
    write_chunks_atomic(path, (data,))


def write_chunks_atomic(path, chunks):
    """Write the byte `chunks` to `path` atomically: a temporary file beside it, fsynced, renamed over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates it private; operators' scripts must read it
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(folder):
    """Persist the rename itself, so a power cut cannot undo a completed write."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def _remove_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
