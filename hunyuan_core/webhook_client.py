"""One webhook POST: to a vetted address, within a total deadline, redirects never followed.

urllib would resolve the host again when it connects (after the address was
checked), follow redirects anywhere (even to ftp://), honour HTTP_PROXY and
friends, and let a receiver that trickles its answer keep an attempt open
forever (its timeout is per read). This client resolves once through
webhook_guard and connects to an address that passed it, sending the original
Host header (and, for https, SNI and certificate checks for the hostname). The
deadline covers connect, TLS handshake, sending and reading the answer; only
the status line and headers are read, at most MAX_ANSWER_BYTES of them.

The outcome is a coarse sentence (OUTCOME_*): the status of a job is public to
its submitter, so raw network errors and the receiver's answer never appear
there; the exact reason is returned separately for the server log.
"""

import http.client
import re
import socket
import ssl
import time
from urllib.parse import urlsplit

from . import webhook_guard

MAX_ANSWER_BYTES = 64 * 1024

OUTCOME_NOT_ALLOWED = "failed: address not allowed"
OUTCOME_NO_CONNECTION = "failed: could not connect"
OUTCOME_TIMED_OUT = "failed: timed out"
OUTCOME_INVALID_ANSWER = "failed: the receiver's answer was not HTTP"
OUTCOME_REDIRECT = "failed: receiver answered 3xx (redirects are not followed)"

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5]\d\d)(?: [^\r\n]*)?\r?\n")
_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")  # bare LF too: some small servers answer that way


class _Failed(Exception):
    def __init__(self, outcome, reason):
        super().__init__(reason)
        self.outcome = outcome


def answer_outcome(status):
    """The coarse sentence for a final HTTP status: None (delivered) for 2xx."""
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return OUTCOME_REDIRECT
    return f"failed: receiver answered {status // 100}xx"


def _remaining(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Failed(OUTCOME_TIMED_OUT, "the attempt's deadline passed")
    return left


def _connect(entries, deadline):
    """A TCP connection to the first vetted address that accepts one before the deadline."""
    errors = []
    for family, kind, proto, _, address in entries:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(address)
            return sock
        except _Failed:
            sock.close()
            raise
        except socket.timeout as exc:
            sock.close()
            raise _Failed(OUTCOME_TIMED_OUT, f"connecting to {address[0]}: {exc}") from None
        except OSError as exc:
            sock.close()
            errors.append(f"{address[0]}: {exc}")
    raise _Failed(OUTCOME_NO_CONNECTION, "; ".join(errors))


class _VettedConnection(http.client.HTTPConnection):
    """http.client's request writer, on a socket to an address webhook_guard accepted."""

    def __init__(self, host, port, entries, deadline, tls):
        super().__init__(host, port, timeout=max(deadline - time.monotonic(), 0.001))
        self._entries = entries
        self._deadline = deadline
        self._tls = tls

    def connect(self):
        sock = _connect(self._entries, self._deadline)
        if self._tls:
            sock.settimeout(_remaining(self._deadline))  # CPython bounds the whole handshake by it
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        self.sock = sock

    def send(self, data):
        if self.sock is None:
            self.connect()
        self.sock.settimeout(_remaining(self._deadline))
        super().send(data)


def _read_status(sock, deadline):
    """The final status code of the answer, read within the deadline (headers only, bounded)."""
    buffer = b""
    while True:
        end = _END_OF_HEADERS.search(buffer)
        if end is None and len(buffer) >= MAX_ANSWER_BYTES:
            raise _Failed(OUTCOME_INVALID_ANSWER, f"no end of headers in the first {MAX_ANSWER_BYTES} bytes")
        if end is not None:
            match = _STATUS_LINE.match(buffer)
            if not match:
                raise _Failed(OUTCOME_INVALID_ANSWER, f"not an HTTP status line: {buffer[:80]!r}")
            status = int(match.group(1))
            if status >= 200:
                return status
            buffer = buffer[end.end():]  # an interim answer (100 Continue): the final one follows
            continue
        sock.settimeout(_remaining(deadline))
        try:
            chunk = sock.recv(MAX_ANSWER_BYTES - len(buffer))
        except socket.timeout:
            raise _Failed(OUTCOME_TIMED_OUT, "the answer did not arrive in time") from None
        if not chunk:
            raise _Failed(OUTCOME_INVALID_ANSWER, f"connection closed after {len(buffer)} bytes of answer")
        buffer += chunk


def post(url, body, headers, timeout, networks=()):
    """POST `body` to `url` within `timeout` seconds in all.

    Returns (status, outcome, reason): the receiver's final HTTP status or None,
    None when delivered (2xx) or else a coarse OUTCOME sentence, and the exact
    reason for the server log (None when delivered).
    """
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = None
    try:
        try:
            entries = webhook_guard.resolve(parts.hostname, port, networks)
        except webhook_guard.AddressNotAllowed as exc:
            raise _Failed(OUTCOME_NOT_ALLOWED, str(exc)) from None
        except webhook_guard.HostUnresolvable as exc:
            raise _Failed(OUTCOME_NO_CONNECTION, str(exc)) from None
        _remaining(deadline)  # a slow resolver must not stretch the attempt past its lease
        connection = _VettedConnection(parts.hostname, port, entries, deadline, tls)
        connection.request("POST", path, body=body, headers=dict(headers, Connection="close"))
        status = _read_status(connection.sock, deadline)
        outcome = answer_outcome(status)
        return status, outcome, None if outcome is None else f"HTTP {status}"
    except _Failed as exc:
        return None, exc.outcome, str(exc)
    except socket.timeout as exc:
        return None, OUTCOME_TIMED_OUT, str(exc) or "timed out"
    except ssl.SSLError as exc:
        return None, OUTCOME_NO_CONNECTION, f"TLS: {exc}"
    except OSError as exc:
        return None, OUTCOME_NO_CONNECTION, str(exc)
    finally:
        if connection is not None:
            connection.close()
