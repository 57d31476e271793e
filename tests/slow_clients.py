"""A slowloris attacker and a /health prober, for tests and bench/slow_clients.py (loopback only)."""

import selectors
import socket
import statistics
import threading
import time

import requests

# What each kind of slow client sends at once, then byte by byte, then repeats forever.
KINDS = {
    # A request head that never ends: the request line, then one more header line after another.
    "head": (b"", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: 1\r\n"),
    # A whole head, then a JSON body that never ends (it announces 100 kB and sends a byte a time).
    "body": (b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             b"Content-Length: 100000\r\n\r\n", b'{"prompt": "', b"a"),
}


class SlowClients:
    """`count` connections that each send a request one byte every `interval` seconds, never finishing it.

    `kind` "head" trickles the request head (slowloris); "body" sends a whole head at
    once and trickles the body.

    With `reconnect`, a connection the server closes is replaced at once (an attacker
    keeping the pressure on); without it, each connection's lifetime is recorded in
    `lifetimes` (seconds from connect until the server closed it).
    """

    def __init__(self, host, port, count=32, interval=2.0, reconnect=False, kind="head"):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("slow clients only ever connect to loopback")
        self.address = (host, port)
        self.count = count
        self.interval = interval
        self.reconnect = reconnect
        self.prefix, self.start_bytes, self.filler = KINDS[kind]
        self.lifetimes = []
        self.opened = 0
        self._conns = {}  # socket -> [opened at, bytes sent]
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def _open(self):
        sock = socket.create_connection(self.address, timeout=5)
        sock.setblocking(False)
        self._conns[sock] = [time.monotonic(), 0]
        self._selector.register(sock, selectors.EVENT_READ)
        self.opened += 1
        if self.prefix:
            sock.send(self.prefix)
        self._send_byte(sock)

    def _byte(self, index):
        if index < len(self.start_bytes):
            return self.start_bytes[index:index + 1]
        index = (index - len(self.start_bytes)) % len(self.filler)
        return self.filler[index:index + 1]

    def _send_byte(self, sock):
        state = self._conns[sock]
        try:
            sock.send(self._byte(state[1]))
            state[1] += 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._closed_by_server(sock)

    def _closed_by_server(self, sock):
        opened_at, _ = self._conns.pop(sock)
        self.lifetimes.append(time.monotonic() - opened_at)
        self._selector.unregister(sock)
        sock.close()
        if self.reconnect and not self._stop.is_set():
            self._open()

    def start(self):
        """Open every connection (each sends its first byte at once), then trickle from a thread."""
        for _ in range(self.count):
            self._open()
        self._thread.start()
        return self

    def _run(self):
        next_send = time.monotonic() + self.interval
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=max(0.0, min(0.1, next_send - time.monotonic()))):
                try:
                    # An answer (a 408/431) is read and ignored; an empty read is the server's close.
                    data = key.fileobj.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data and key.fileobj in self._conns:
                    self._closed_by_server(key.fileobj)
            if time.monotonic() >= next_send:
                for sock in list(self._conns):
                    if sock in self._conns:
                        self._send_byte(sock)
                next_send += self.interval

    @property
    def open_count(self):
        """Connections the server has not closed (yet)."""
        return len(self._conns)

    def stop(self):
        """Stop trickling and close every connection still open."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for sock in list(self._conns):
            self._selector.unregister(sock)
            sock.close()
        self._conns.clear()
        self._selector.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def probe_health(base_url, count=10, limit=3.0, pause=0.2):
    """GET /health `count` times, one after another; the latency of each answered within `limit` s, else None."""
    results = []
    for _ in range(count):
        started = time.monotonic()
        try:
            answered = requests.get(base_url + "/health", timeout=(limit, limit)).status_code == 200
        except requests.RequestException:
            answered = False
        elapsed = time.monotonic() - started
        results.append(elapsed if answered and elapsed <= limit else None)
        time.sleep(pause)
    return results


def summary(results):
    """(answered, total, median latency in s or None) of probe_health's results."""
    answered = [r for r in results if r is not None]
    return len(answered), len(results), statistics.median(answered) if answered else None
