"""gunicorn's threaded worker, made safe against clients that send their request head slowly.

gunicorn's gthread worker hands a connection to a thread as soon as its first byte
arrives, and that thread then reads the request line and headers with blocking reads
and no deadline. A client sending one header byte every 2 s holds a thread for as long
as it likes: 16 such connections pin every thread of two 8-thread workers (a
"slowloris" attack), and the API stops answering.

`SlowClientSafeWorker` keeps gunicorn's model (a selector loop that accepts and parks
connections, a thread pool that serves requests) and changes two things. First, a thread
only takes bytes that have already arrived (non-blocking reads), and until a request's whole
head (request line and headers) is in, the connection waits in the worker's selector,
not in a thread. Each request gets a total deadline, `WEB_HEADER_TIMEOUT` seconds from
its first moment of waiting, to deliver its head; after that the connection is closed.
Threads therefore only ever serve requests whose heads are complete, however many slow
clients are connected (up to gunicorn's `worker_connections` per worker).

Second, it moves gthread's "graceful" close off the main loop. After a response that
closes the connection, gthread half-closes it and then waits, on the worker's single
main loop, up to 2 s for the client to close its side. A client that sends a complete
HTTP/1.0 request and never closes stalled the whole worker (accepting, dispatching)
for 2 s each: 32 of them kept /health from answering for half a minute. Here the
connection lingers in the selector instead, for the same 2 s at most.

Bodies are read by the application as before (blocking reads in the request's thread).
"""

import os
import selectors
import socket
import time
from functools import partial

from gunicorn.workers.gthread import ThreadWorker

DEFAULT_HEADER_TIMEOUT = 10.0
# One non-blocking read; a head larger than this arrives over several reads.
_RECV_SIZE = 65536
# handle()'s answer for "head not complete yet: wait in the selector, not in a thread".
_PARK = object()
# gunicorn's own lingering close: how long, and how much to read, waiting for the client's FIN.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 65536
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
              b"Content-Length: 0\r\n\r\n")


def header_timeout_from_environ(environ=None):
    """Seconds a request may take to deliver its head (`WEB_HEADER_TIMEOUT`, default 10; 0 = no limit).

    Raises ValueError naming the variable for a value that is not a number >= 0.
    """
    env = os.environ if environ is None else environ
    value = env.get("WEB_HEADER_TIMEOUT", str(DEFAULT_HEADER_TIMEOUT))
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"WEB_HEADER_TIMEOUT must be a number of seconds, not {value!r}") from None
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"WEB_HEADER_TIMEOUT must be at least 0, not {value!r}")
    return seconds


def head_is_complete(data):
    """Whether `data` holds a whole HTTP/1 request head, or enough of one for gunicorn's parser to refuse it.

    The head ends at the first empty line (CRLF CRLF). gunicorn refuses a bare LF
    at once (RFC 9112 section 2.2) without reading more, so such a head need not wait.
    """
    return b"\r\n\r\n" in data or data.count(b"\n") != data.count(b"\r\n")


def max_head_bytes(cfg):
    """The largest request head gunicorn's parser accepts with these settings (its own limits, summed)."""
    fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= 32768 else 32768
    field_size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else 8190
    line = cfg.limit_request_line if 0 < cfg.limit_request_line <= 8190 else 8190
    return line + 2 + fields * (field_size + 2) + 4


class SlowClientSafeWorker(ThreadWorker):
    """A gthread worker whose threads and main loop never wait for a slow client: see the module docstring."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout_from_environ()
        self.max_head = max_head_bytes(self.cfg)
        # Connections whose head is incomplete, waiting in the selector: conn -> deadline.
        self.parked = {}
        # Half-closed connections waiting (in the selector) for the client's FIN: conn -> [deadline, bytes read].
        self.lingering = {}
        self.guarded = self.header_timeout > 0 and self._plain_http1(self.cfg)

    @staticmethod
    def _plain_http1(cfg):
        # TLS, HTTP/2, uwsgi and PROXY-protocol connections start with bytes this
        # worker does not interpret; they are served exactly as gthread serves them.
        return (not cfg.is_ssl and cfg.protocol == "http" and cfg.proxy_protocol == "off"
                and cfg.http2_cleartext == "off")

    def init_process(self):
        """Say at start whether heads are guarded, then run gthread's worker."""
        if self.guarded:
            self.log.info("request heads must arrive within %g s (WEB_HEADER_TIMEOUT)", self.header_timeout)
        else:
            self.log.warning("request heads have no deadline (WEB_HEADER_TIMEOUT=0, or TLS/HTTP2/PROXY "
                             "protocol served by gunicorn itself): put a buffering proxy in front")
        super().init_process()

    def handle(self, conn):
        """Serve one request once its head has arrived; until then, read only what is there and park.

        Runs in a pool thread. Returns _PARK to have the main loop wait for more
        bytes, or what gthread's handle() returns (keep-alive or not).
        """
        if not self.guarded:
            return super().handle(conn)
        now = time.monotonic()
        deadline = getattr(conn, "head_deadline", None)
        if deadline is None:
            deadline = conn.head_deadline = now + self.header_timeout
        # Plain HTTP/1: this only creates the parser (gthread would do it below).
        conn.init()
        unreader = conn.parser.unreader
        held = unreader.take_buffered()
        closed = False
        while not head_is_complete(held) and len(held) <= self.max_head:
            try:
                data = conn.sock.recv(_RECV_SIZE, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                closed = True
                break
            if not data:
                closed = True
                break
            held += data
        unreader.unread(held)
        if closed and not head_is_complete(held):
            return self._drop(conn)
        if len(held) > self.max_head and not head_is_complete(held):
            self._send_quietly(conn, _TOO_LARGE)
            return self._drop(conn)
        if not head_is_complete(held):
            if time.monotonic() >= deadline:
                self.log.info("closed the connection from %s: no complete request head within %g s",
                              _peer(conn), self.header_timeout)
                return self._drop(conn)
            return _PARK
        # The head is in: the next request on this connection gets a deadline of its own.
        conn.head_deadline = None
        return super().handle(conn)

    @staticmethod
    def _drop(conn):
        # Closed here, at once: gthread's finish_request() would otherwise close it
        # "gracefully" on the main loop, lingering up to 2 s for a client that may
        # never close its side.
        conn.close()
        return False

    @staticmethod
    def _send_quietly(conn, data):
        try:
            conn.sock.send(data, socket.MSG_DONTWAIT)
        except OSError:
            pass

    def finish_request(self, conn, fs):
        """On the main loop: park a connection whose head is incomplete, linger on one that closes
        without waiting, else finish as gthread does."""
        result = fs.result() if self.guarded and not fs.cancelled() and fs.exception() is None else None
        if result is _PARK:
            if not self.alive:
                # A stopping worker takes no new requests.
                self.nr_conns -= 1
                conn.close()
                return
            self.parked[conn] = conn.head_deadline
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_parked_readable, conn))
        elif result is False:
            self._linger(conn)
        else:
            super().finish_request(conn, fs)

    def _linger(self, conn):
        # As gunicorn's close_graceful(): send our FIN, then read until the client's FIN
        # (so unread request bytes do not turn the close into a reset that truncates
        # the response), for LINGER_SECONDS at most, without blocking the main loop.
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_lingering_readable, conn))
        except (OSError, ValueError):
            self.nr_conns -= 1
            conn.close()
            return
        self.lingering[conn] = [time.monotonic() + LINGER_SECONDS, 0]

    def _on_lingering_readable(self, conn, _fileobj):
        try:
            data = conn.sock.recv(4096, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        state = self.lingering[conn]
        state[1] += len(data)
        if data and state[1] < LINGER_MAX_BYTES:
            return
        self._end_linger(conn)

    def _end_linger(self, conn):
        del self.lingering[conn]
        try:
            self.poller.unregister(conn.sock)
        except (OSError, KeyError, ValueError):
            pass
        self.nr_conns -= 1
        conn.close()

    def _on_parked_readable(self, conn, _fileobj):
        # More bytes (or the client's close): a thread reads them without waiting.
        self.poller.unregister(conn.sock)
        del self.parked[conn]
        self.enqueue_req(conn)

    def murder_pending(self):
        """On the main loop, about once a second: gthread's sweep, then close parked and lingering
        connections past their deadline."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [conn for conn, (deadline, _) in self.lingering.items() if deadline <= now]:
            self._end_linger(conn)
        expired = [conn for conn, deadline in self.parked.items() if deadline <= now or not self.alive]
        for conn in expired:
            del self.parked[conn]
            try:
                self.poller.unregister(conn.sock)
            except (OSError, KeyError, ValueError):
                pass
            self.nr_conns -= 1
            if self.alive:
                self.log.info("closed the connection from %s: no complete request head within %g s",
                              _peer(conn), self.header_timeout)
            conn.close()


def _peer(conn):
    client = conn.client
    return f"{client[0]}:{client[1]}" if isinstance(client, tuple) and len(client) >= 2 else str(client)
