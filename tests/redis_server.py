"""A real redis-server for tests and benches: a free loopback port, its own folder, append-only persistence.

Started as production should run it (`appendonly yes`, every write fsynced, no RDB snapshots,
loopback only, protected mode), so a test can kill it with SIGKILL, start it again on the same
port and folder, and see that Redis itself lost nothing. Readiness is checked with a PING over
a plain socket, so this module needs no Redis client library.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .server import free_port, stop_process

DEBIAN_REDIS_SERVER = "/usr/bin/redis-server"


def redis_server_binary():
    """The redis-server to run: Debian's package (what `.ci/run` installs), else one on PATH, else None."""
    if os.access(DEBIAN_REDIS_SERVER, os.X_OK):
        return DEBIAN_REDIS_SERVER
    return shutil.which("redis-server")


def ping(port, host="127.0.0.1", timeout=0.5):
    """True when a Redis server on `host:port` answers PING with PONG."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on 127.0.0.1, with its data (the append-only file) under `folder`."""

    def __init__(self, folder, port=None, binary=None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.binary = binary or redis_server_binary()
        self.log_path = self.folder / "redis.log"
        self.process = None

    @property
    def url(self):
        """The REDIS_URL of this server (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self):
        """The redis-server command line: loopback only, AOF fsynced on every write, no snapshots."""
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes",
                "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--daemonize", "no", "--logfile", str(self.log_path)]

    def start(self, timeout=15):
        """Start redis-server and wait until it answers PING (it has then reloaded its append-only file)."""
        if self.binary is None:
            raise RuntimeError(f"redis-server is not installed (expected {DEBIAN_REDIS_SERVER})")
        self.folder.mkdir(parents=True, exist_ok=True)
        # Its own session: kill() can then take any child it forked (an AOF rewrite) with it.
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{self.log_text()}")
            if ping(self.port):
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not answer PING within {timeout} s:\n{self.log_text()}")

    def is_running(self):
        """True while the process started last is alive."""
        return self.process is not None and self.process.poll() is None

    def kill(self):
        """SIGKILL: no shutdown, no final save; only what the append-only file already holds survives."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def stop(self, timeout=15):
        """Shut down gracefully (SIGTERM flushes the append-only file), SIGKILL if it takes too long."""
        stop_process(self.process, timeout, kill=self.kill)

    def restart(self, timeout=15):
        """Start again on the same port and folder (the append-only file is reloaded)."""
        if self.is_running():
            self.stop()
        return self.start(timeout)

    def log_text(self):
        """What redis-server logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
