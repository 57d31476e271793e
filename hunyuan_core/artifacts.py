"""The artifact store: where a job's video, poster, log and input image live, for every host to reach.

`ARTIFACTS_URL` picks it (hunyuan_core/config.py checks the value):

    (empty)              the data folder itself (DATA_DIR), exactly the layout it has always had
    file:///abs/path     a folder every host mounts (NFS, a shared volume), with the same layout
    s3://bucket/prefix   S3-compatible object storage (hunyuan_core/artifacts_s3.py; boto3 is
                         imported only then)

Each job has at most one artifact of each kind, named as in the data folder:

    video   videos/<job_id>.mp4      poster  videos/<job_id>.jpg
    log     logs/<job_id>.log        input   inputs/<job_id>.png

Both stores answer the same methods (put_file, put_bytes, info, size, read, download,
presigned_url, delete, local_path, describe, listing). A missing artifact is None, never an
exception; a store that cannot be reached raises ArtifactStoreUnavailable (a 503 for
the API). A job id is checked before it becomes part of a name or key, so nothing
but `<id>.<ext>` under the store's own folders is ever touched.

The local store reads regular files only, opened without following a symbolic link
(hunyuan_core/regular_file.py), as the job store does.
"""

import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .atomic_file import write_bytes_atomic, write_chunks_atomic
from .errors import Unavailable
from .job_record import is_job_id
from .regular_file import open_regular, remove

# kind -> (folder, extension, content type)
KINDS = {
    "video": ("videos", "mp4", "video/mp4"),
    "poster": ("videos", "jpg", "image/jpeg"),
    "log": ("logs", "log", "text/plain; charset=utf-8"),
    "input": ("inputs", "png", "image/png"),
}
# extension -> kind (one extension per kind), and the folders artifacts live in.
_BY_EXTENSION = {extension: kind for kind, (_, extension, _) in KINDS.items()}
FOLDERS = sorted({folder for folder, _, _ in KINDS.values()})
# Reads are handed out in pieces of this size: a video is never held in memory whole.
CHUNK = 256 * 1024
# Reading a log's tail backwards in blocks of this size.
TAIL_BLOCK = 64 * 1024
# S3 bucket names (the rules AWS, MinIO and R2 share) and the prefix's path segments.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")


class ArtifactStoreUnavailable(Unavailable):
    """The artifact store could not be reached or refused the request (not: the artifact is missing)."""

    kind = "artifact_store_unavailable"

    def __init__(self, where, reason):
        super().__init__(f"The artifact store ({where}) is unreachable: {reason}. Try again later.",
                         headers={"Retry-After": "5"})


@dataclass(frozen=True)
class ArtifactInfo:
    """What a store knows about one stored artifact: its size, and (where cheap) an ETag and mtime."""

    size: int
    etag: str | None = None
    modified: float | None = None  # seconds since the epoch


def artifact_name(job_id, kind):
    """`videos/<job_id>.mp4` etc.: the artifact's name under the store's folder or prefix.

    Raises ValueError for an unknown kind or anything that is not a job id, so no
    other name can ever be formed.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown artifact kind {kind!r} (one of {', '.join(KINDS)})")
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    folder, extension, _ = KINDS[kind]
    return f"{folder}/{job_id}.{extension}"


def parse_url(value):
    """ARTIFACTS_URL as `("local", None)`, `("local", Path)` or `("s3", bucket, prefix)`.

    Raises ValueError naming ARTIFACTS_URL for anything else. The value is repeated in
    the message only when it cannot hold credentials (no `@`).
    """
    value = value.strip()
    if not value:
        return ("local", None)
    shown = repr(value) if "@" not in value else "a URL with '@' (credentials never go in ARTIFACTS_URL)"
    wrong = ValueError(f"ARTIFACTS_URL must be empty, file:///absolute/path or s3://bucket[/prefix], not {shown}")
    parts = urlsplit(value)
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise wrong
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/") or "\x00" in path:
            raise wrong
        return ("local", Path(os.path.normpath(path)))
    if parts.scheme == "s3":
        if not _BUCKET.fullmatch(parts.netloc):
            raise ValueError(f"ARTIFACTS_URL: {parts.netloc!r} is not an S3 bucket name "
                             "(3-63 lower-case letters, digits, '.' or '-')")
        segments = [s for s in parts.path.split("/") if s]
        if any(not _SEGMENT.fullmatch(s) or s in (".", "..") for s in segments):
            raise ValueError("ARTIFACTS_URL: the prefix after the bucket may hold only letters, digits, "
                             "'_', '.' and '-' between slashes (no '.' or '..' segments)")
        return ("s3", parts.netloc, "/".join(segments))
    raise wrong


def open_artifacts(settings):
    """The artifact store the settings name (ARTIFACTS_URL, ARTIFACTS_ENDPOINT_URL, ARTIFACTS_REGION, DATA_DIR)."""
    parsed = parse_url(settings.get("ARTIFACTS_URL", ""))
    if parsed[0] == "local":
        return LocalArtifacts(parsed[1] or settings["DATA_DIR"])
    from .artifacts_s3 import S3Artifacts  # boto3 is loaded only by a service that uses S3

    return S3Artifacts(parsed[1], parsed[2], endpoint_url=settings.get("ARTIFACTS_ENDPOINT_URL") or None,
                       region=settings.get("ARTIFACTS_REGION") or None)


def read_tail(artifacts, job_id, kind, lines):
    """The last `lines` lines of a stored artifact (all of it if it has fewer), or None if absent.

    Reads backwards in TAIL_BLOCK ranges, so a long log's tail costs a few small reads.
    """
    info = artifacts.info(job_id, kind)
    if info is None:
        return None
    position, chunk = info.size, b""
    # One more newline than lines wanted, unless the text ends without one.
    while position > 0 and chunk.count(b"\n") <= lines:
        step = min(TAIL_BLOCK, position)
        part = artifacts.read(job_id, kind, position - step, position)
        if part is None:
            return None  # removed meanwhile
        chunk = b"".join(part) + chunk
        position -= step
    return b"".join(chunk.splitlines(keepends=True)[-lines:])


def classify(name):
    """`(job_id, kind)` for an artifact's name in its folder (`<id>.mp4`), or None (partial files, other files)."""
    stem, _, extension = name.rpartition(".")
    kind = _BY_EXTENSION.get(extension)
    return (stem, kind) if kind and is_job_id(stem) else None


def download(store, job_id, kind, dest):
    """Copy an artifact of `store` to the local file `dest`, streamed and atomically; False if it is absent."""
    chunks = store.read(job_id, kind)
    if chunks is None:
        return False
    try:
        write_chunks_atomic(dest, chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close:
            close()
    return True


def _chunks(handle, start, end):
    """The bytes [start, end) of the open file `handle` in CHUNK pieces; closes it when done or closed."""
    try:
        handle.seek(start)
        left = None if end is None else max(end - start, 0)
        while left is None or left > 0:
            piece = handle.read(CHUNK if left is None else min(CHUNK, left))
            if not piece:
                return
            if left is not None:
                left -= len(piece)
            yield piece
    finally:
        handle.close()


class LocalArtifacts:
    """Artifacts in a folder (the data folder, or one every host mounts), laid out as the data folder is."""

    def __init__(self, folder):
        self.root = Path(folder)

    def describe(self):
        """Where the artifacts live, for people (never a secret)."""
        return f"local folder {self.root}"

    def local_path(self, job_id, kind):
        """The artifact's path in the folder (whether or not it exists)."""
        return self.root / artifact_name(job_id, kind)

    def _target(self, job_id, kind):
        path = self.local_path(job_id, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def put_file(self, job_id, kind, path, keep=False):
        """Store the finished regular file at `path` (a symbolic link is refused, never followed).

        It is moved into place by an atomic rename where both lie on one file system,
        else copied beside the target and renamed; `keep=True` always copies and leaves
        `path` as it was. Putting the store's own file into place is a no-op.
        """
        target = self._target(job_id, kind)
        handle, info = open_regular(path)
        with handle:
            try:
                present = os.lstat(target)
                if (present.st_dev, present.st_ino) == (info.st_dev, info.st_ino):
                    return  # already in place: the data folder is the store
            except FileNotFoundError:
                pass
            if not keep and info.st_dev == os.stat(target.parent).st_dev:
                os.replace(path, target)
                moved = os.lstat(target)
                # What was renamed is the file that was checked, not a link swapped in since.
                if not stat.S_ISREG(moved.st_mode) or moved.st_ino != info.st_ino:
                    remove(target)
                    raise OSError(f"{path} changed while it was being stored")
                return
            write_chunks_atomic(target, _chunks(handle, 0, None))
        if not keep:
            os.unlink(path)

    def put_bytes(self, job_id, kind, data):
        """Store `data` as the artifact, atomically."""
        write_bytes_atomic(self._target(job_id, kind), data)

    def info(self, job_id, kind):
        """ArtifactInfo of the stored regular file, or None (absent, or a link, directory or other non-file)."""
        try:
            found = os.lstat(self.local_path(job_id, kind))
        except OSError:
            return None
        if not stat.S_ISREG(found.st_mode):
            return None
        return ArtifactInfo(found.st_size, None, found.st_mtime)

    def size(self, job_id, kind):
        """The artifact's size in bytes, or None if it is absent."""
        found = self.info(job_id, kind)
        return None if found is None else found.size

    def read(self, job_id, kind, start=0, end=None):
        """An iterator of byte chunks of [start, end) (end None: to the end), or None if absent.

        The file is opened now, so the file checked is the one read.
        """
        try:
            handle, _ = open_regular(self.local_path(job_id, kind))
        except OSError:
            return None
        return _chunks(handle, start, end)

    def download(self, job_id, kind, dest):
        """Copy the artifact to the local file `dest` (atomically); False if it is absent."""
        return download(self, job_id, kind, dest)

    def presigned_url(self, job_id, kind, seconds):
        """None: a folder has no URLs of its own; the API serves its files itself."""
        return None

    def delete(self, job_id):
        """Remove every artifact of `job_id` (a link in an artifact's place is removed, never followed)."""
        for kind in KINDS:
            remove(self.local_path(job_id, kind))

    def listing(self):
        """`(job_id, kind, bytes)` of every stored artifact (regular files named as artifacts), for hunyuan-ops."""
        for folder in FOLDERS:
            try:
                entries = list(os.scandir(self.root / folder))
            except (FileNotFoundError, NotADirectoryError):
                entries = []
            for entry in entries:
                found = classify(entry.name)
                if found and KINDS[found[1]][0] == folder and entry.is_file(follow_symlinks=False):
                    try:
                        yield *found, entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        pass  # removed while we listed
