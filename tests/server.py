"""A real gunicorn server for end-to-end tests, started exactly as the Procfile starts it."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process, timeout, kill=None):
    """SIGTERM to `process` and wait up to `timeout` s for it to exit; past that `kill()` (by
    default SIGKILL to the process, then reap it). Nothing to do for a process that has exited."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        if kill is not None:
            kill()
        else:
            process.kill()
            process.wait()


class GunicornServer:
    """gunicorn with the service's own config, on loopback, for one test."""

    def __init__(self, data_dir, workers=2, log_path=None, app="wsgi:app", **env):
        self.data_dir = Path(data_dir)
        self.app = app  # the Procfile's, unless a bench serves its own app module
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.log_path = Path(log_path or self.data_dir.parent / "gunicorn.log")
        self.env = dict(os.environ, DATA_DIR=str(self.data_dir), HOST="127.0.0.1", PORT=str(self.port),
                        WEB_CONCURRENCY=str(workers), **{k: str(v) for k, v in env.items()})
        self.process = None

    def start(self, timeout=120):
        """Start gunicorn and wait until /health answers (the model is built before that)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:hunyuan_api.gunicorn_conf", self.app]
        self.process = subprocess.Popen(gunicorn, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                if requests.get(self.base_url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout} s:\n{self.log_path.read_text()}")

    def stop(self):
        """Stop gunicorn gracefully (runners, in their own sessions, keep running)."""
        stop_process(self.process, 30)

    def web_workers(self):
        """The gunicorn worker processes (children of the master)."""
        return psutil.Process(self.process.pid).children()

    def get(self, path, **kwargs):
        """GET a path of this server."""
        return requests.get(self.base_url + path, timeout=30, **kwargs)

    def post(self, path, **kwargs):
        """POST to a path of this server."""
        return requests.post(self.base_url + path, timeout=30, **kwargs)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _is_work_process(proc, data_dir):
    cmd = proc.info["cmdline"] or []
    return cmd[1:3] == ["-m", "runner.render"] and str(data_dir) in cmd


def runner_processes(data_dir):
    """The live work processes (`python -m runner.render ...`) of a data folder.

    A work process starting ffmpeg forks first: until the child execs, it shows the
    parent's command line. Such a child is not another runner and is not counted.
    """
    found = []
    for proc in psutil.process_iter(["cmdline", "ppid"]):
        if not _is_work_process(proc, data_dir):
            continue
        try:
            parent = psutil.Process(proc.info["ppid"])
            if parent.cmdline()[1:3] == ["-m", "runner.render"]:
                continue
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.NoSuchProcess:
            pass
    return found


def kill_all_runners(data_dir):
    """Clean up after a test: end every runner process group of `data_dir`."""
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd[1:3] in (["-m", "runner"], ["-m", "runner.render"]) and str(data_dir) in cmd:
            try:
                os.killpg(proc.pid, signal.SIGKILL) if cmd[2] == "runner" else proc.kill()
            except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
                pass
