"""Artifacts in S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, Ceph): plain boto3.

Imported only when ARTIFACTS_URL is `s3://bucket/prefix` (hunyuan_core/artifacts.py has
the shared names, kinds and the local store). Keys are `<prefix>/videos/<job_id>.mp4` and so
on, the data folder's layout under the prefix. Credentials come from boto3's usual chain
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role) and never appear
in a message. Reads are streamed in chunks; a missing object is None; any other failure
(endpoint down, bucket missing, access denied) is ArtifactStoreUnavailable, a 503 for the API.
"""

import os

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .artifacts import (CHUNK, FOLDERS, KINDS, ArtifactInfo, ArtifactStoreUnavailable, artifact_name, classify,
                        download)
from .regular_file import open_regular

# What S3 and its look-alikes answer for "no such object".
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def client_config(endpoint_url):
    """The botocore Config: SigV4, path-style with an endpoint, bounded waits, checksums only where required.

    Path-style addressing (`endpoint/bucket/key`) is what MinIO and most self-hosted
    servers need; AWS itself gets its default. Checksums beyond what an operation
    requires are off because several S3-compatible servers reject the newer ones.
    Short timeouts and few retries: an API request waits seconds, not minutes, for a
    store that is down, and answers 503.
    """
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


class S3Artifacts:
    """Artifacts as objects under `prefix` in `bucket`."""

    def __init__(self, bucket, prefix="", endpoint_url=None, region=None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        # A client is thread-safe (a session is not): one per store, shared by every request thread.
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=client_config(endpoint_url)
        )

    def describe(self):
        """Where the artifacts live, for people (never a secret)."""
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    def key(self, job_id, kind):
        """The object key of an artifact (its job id checked first)."""
        name = artifact_name(job_id, kind)
        return f"{self.prefix}/{name}" if self.prefix else name

    def local_path(self, job_id, kind):
        """None: objects have no path on this host."""
        artifact_name(job_id, kind)
        return None

    def _unavailable(self, exc):
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            reason = f"{error.get('Code', 'error')} (HTTP {status})"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return ArtifactStoreUnavailable(self.describe(), reason)

    def _call(self, operation, **params):
        """`operation(**params)` on the client; None for a missing object, ArtifactStoreUnavailable for failures."""
        try:
            return getattr(self._client, operation)(Bucket=self.bucket, **params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return None
            raise self._unavailable(exc) from None
        except BotoCoreError as exc:
            raise self._unavailable(exc) from None

    def put_file(self, job_id, kind, path, keep=False):
        """Upload the finished regular file at `path` (a symbolic link is refused); then remove it unless `keep`.

        The file that was checked is the one uploaded (it is opened first); large files
        go up in parts (boto3's multipart upload).
        """
        key = self.key(job_id, kind)
        handle, _ = open_regular(path)
        with handle:
            try:
                self._client.upload_fileobj(handle, self.bucket, key, ExtraArgs={"ContentType": KINDS[kind][2]})
            except (BotoCoreError, ClientError) as exc:
                raise self._unavailable(exc) from None
        if not keep:
            os.unlink(path)

    def put_bytes(self, job_id, kind, data):
        """Store `data` as the artifact."""
        self._call("put_object", Key=self.key(job_id, kind), Body=data, ContentType=KINDS[kind][2])

    def info(self, job_id, kind):
        """ArtifactInfo (size, ETag, Last-Modified) from one HEAD request, or None if absent."""
        head = self._call("head_object", Key=self.key(job_id, kind))
        if head is None:
            return None
        return ArtifactInfo(head["ContentLength"], head.get("ETag", "").strip('"') or None,
                            head["LastModified"].timestamp() if head.get("LastModified") else None)

    def size(self, job_id, kind):
        """The object's size in bytes, or None if it is absent."""
        found = self.info(job_id, kind)
        return None if found is None else found.size

    def read(self, job_id, kind, start=0, end=None):
        """An iterator of byte chunks of [start, end) (end None: to the end), or None if absent.

        One GetObject with a Range header; its body is read CHUNK bytes at a time and
        closed when the iterator ends or is closed.
        """
        key = self.key(job_id, kind)
        params = {"Key": key}
        if end is not None and end <= start:
            return None if self.info(job_id, kind) is None else iter(())
        if start or end is not None:
            params["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            answer = self._client.get_object(Bucket=self.bucket, **params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in _NOT_FOUND:
                return None
            if code == "InvalidRange":  # start at or past the end: nothing to read
                return iter(())
            raise self._unavailable(exc) from None
        except BotoCoreError as exc:
            raise self._unavailable(exc) from None
        return self._stream(answer["Body"])

    def _stream(self, body):
        return _Body(body, self._unavailable)

    def download(self, job_id, kind, dest):
        """Copy the object to the local file `dest` (atomically, streamed); False if it is absent."""
        return download(self, job_id, kind, dest)

    def presigned_url(self, job_id, kind, seconds):
        """A GET URL for the object valid `seconds` (signed locally: no request is made)."""
        try:
            return self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self.key(job_id, kind)}, ExpiresIn=int(seconds)
            )
        except BotoCoreError as exc:  # no credentials to sign with
            raise self._unavailable(exc) from None

    def delete(self, job_id):
        """Remove every artifact of `job_id` (one DeleteObject each: every S3 look-alike has it; absent is fine)."""
        for kind in KINDS:
            self._call("delete_object", Key=self.key(job_id, kind))

    def listing(self):
        """`(job_id, kind, bytes)` of every stored artifact under the prefix (ListObjectsV2, a page at a time)."""
        base = f"{self.prefix}/" if self.prefix else ""
        pages = self._client.get_paginator("list_objects_v2")
        try:
            for folder in FOLDERS:
                for page in pages.paginate(Bucket=self.bucket, Prefix=f"{base}{folder}/"):
                    for item in page.get("Contents", ()):
                        found = classify(item["Key"][len(base) + len(folder) + 1:])
                        if found and KINDS[found[1]][0] == folder:
                            yield *found, item["Size"]
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(exc) from None

class _Body:
    """An object's body as an iterator of CHUNK-sized pieces, closed by close() even if never iterated.

    (A generator's `finally` runs only once it has started: a HEAD request, or a client
    gone before the first byte, would leave the connection to the store open.)
    """

    def __init__(self, body, unavailable):
        self._body = body
        self._unavailable = unavailable

    def __iter__(self):
        return self

    def __next__(self):
        try:
            piece = self._body.read(CHUNK)
        except (BotoCoreError, ClientError) as exc:
            self.close()
            raise self._unavailable(exc) from None
        if not piece:
            self.close()
            raise StopIteration
        return piece

    def close(self):
        """Release the connection to the store."""
        self._body.close()
