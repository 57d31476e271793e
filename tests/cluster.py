"""Several hosts on one machine: web hosts and worker hosts as separate process trees for scale-out tests.

Each host has its own data folder and log and shares only Redis and the artifact store with the
others, as separate machines would. A web host is gunicorn started exactly as the Procfile's
`web:` line (tests/server.py) with REDIS_URL and ARTIFACTS_URL set; a worker host is
`python -m runner.worker_host` (what the `hunyuan-worker` command runs) in a session of its own.
`WorkerHost.kill_tree()` is a power cut: every process that host started dies by SIGKILL at
once, runners included, although runners start sessions of their own.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from hunyuan_core.model_source import EMBEDDED_MODEL_NAME

from .power_cut import HOST_MARKER, host_processes, power_cut, unreaped_pid
from .server import ROOT, GunicornServer, stop_process

# The demo model's configs and metadata without weights: all a web face or a fixture runner reads.
LIGHT_MODEL = Path(__file__).resolve().parent / "fixtures" / "light-model"


def prepare_data_dir(data_dir, model=None, stats=None):
    """A host's data folder whose models are "ready", as after its first start.

    `model`: None copies the light demo model (configs and metadata only: enough for a web face
    and for fixture work processes); a path is linked in as the embedded demo model; a dict
    {name: path or None} links each under `models/<name>` (e.g. the session's demo_folders).
    `stats` (a calibrated `stats` folder, e.g. the session's host_calibration) is copied in so
    the host does not spend seconds measuring itself at start.
    """
    data_dir = Path(data_dir)
    models = model if isinstance(model, dict) else {EMBEDDED_MODEL_NAME: model}
    for name, path in models.items():
        target = data_dir / "models" / name
        if target.exists() or target.is_symlink():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if path is None:
            shutil.copytree(LIGHT_MODEL, target)
        else:
            target.symlink_to(path, target_is_directory=True)
    if stats is not None and not (data_dir / "stats").exists():
        shutil.copytree(stats, data_dir / "stats")
    return data_dir


class WebHost(GunicornServer):
    """A web host: gunicorn as the Procfile starts it, in Redis mode, with a data folder of its own."""

    def __init__(self, folder, redis_url, artifacts_url, workers=2, model=None, stats=None, **env):
        self.folder = Path(folder)
        self.model, self.stats = model, stats
        self.marker = uuid.uuid4().hex
        super().__init__(self.folder / "data", workers=workers, log_path=self.folder / "gunicorn.log",
                         REDIS_URL=redis_url, ARTIFACTS_URL=artifacts_url, **{HOST_MARKER: self.marker}, **env)

    def start(self, timeout=120):
        """Prepare the data folder (first start only) and start gunicorn; waits until /health answers."""
        prepare_data_dir(self.data_dir, self.model, self.stats)
        return super().start(timeout)

    def kill_tree(self):
        """A power cut of this web host: SIGKILL to gunicorn's master, its workers and anything they started."""
        if self.process is not None:
            power_cut(unreaped_pid(self.process), self.marker)
            self.process.wait()

    def log_text(self):
        """What gunicorn logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class WorkerHost:
    """A worker host: `python -m runner.worker_host` with its own data folder, slots and name."""

    def __init__(self, folder, redis_url, artifacts_url, name, max_workers=2, work_command=None,
                 model=None, stats=None, **env):
        self.folder = Path(folder)
        self.data_dir = self.folder / "data"
        self.name = name
        self.redis_url = redis_url
        self.work_command = work_command
        self.model, self.stats = model, stats
        self.log_path = self.folder / "worker.log"
        self.marker = uuid.uuid4().hex
        self.env = dict(os.environ, DATA_DIR=str(self.data_dir), REDIS_URL=redis_url, ARTIFACTS_URL=artifacts_url,
                        MAX_WORKERS=str(max_workers), WORKER_NAME=name, **{HOST_MARKER: self.marker},
                        **{key: str(value) for key, value in env.items()})
        self.process = None

    def command(self):
        """The host's command line (`--work-command` only when a fixture work process is given)."""
        command = [sys.executable, "-m", "runner.worker_host"]
        if self.work_command:
            command += ["--work-command", json.dumps([str(part) for part in self.work_command])]
        return command

    def start(self, timeout=120, wait=True):
        """Start the host in a session of its own; with `wait`, until it has announced itself in Redis."""
        prepare_data_dir(self.data_dir, self.model, self.stats)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_announced(timeout)
        return self

    def announcement(self):
        """The host's record in Redis (`hunyuan:host:<name>`, DESIGN-13), or None while it has none."""
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            text = client.get(f"hunyuan:host:{self.name}")
        finally:
            client.close()
        return None if text is None else json.loads(text)

    def wait_announced(self, timeout=120):
        """Wait until the host's heartbeat record is in Redis; fail with its log if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker host {self.name} exited with {self.process.returncode}:\n"
                                   f"{self.log_text()}")
            if self.announcement() is not None:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"worker host {self.name} did not announce itself within {timeout} s:\n{self.log_text()}")

    def is_running(self):
        """True while the host's main process is alive."""
        return self.process is not None and self.process.poll() is None

    def processes(self):
        """Every live process of this host (its main process, RQ workers, guards, work processes)."""
        return host_processes(unreaped_pid(self.process), self.marker) if self.process else []

    def kill_tree(self):
        """A power cut: SIGKILL to every process of the host at once; returns how many there were."""
        if self.process is None:
            return 0
        count = power_cut(unreaped_pid(self.process), self.marker)
        self.process.wait()
        return count

    def stop(self, timeout=30):
        """SIGTERM to the host's main process, as a service manager stops it, and wait for it to exit.

        What the host leaves running on purpose (runners finishing their jobs) is left alone;
        a host that does not exit within `timeout` gets a power cut.
        """
        stop_process(self.process, timeout, kill=self.kill_tree)

    def log_text(self):
        """What the host wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.kill_tree()


class Cluster:
    """N web hosts and M worker hosts over one Redis and one shared artifact folder (`file:///...`)."""

    def __init__(self, root, redis, web_hosts=2, worker_hosts=3, max_workers=2, work_command=None,
                 artifacts_url=None, model=None, stats=None, web_workers=2, web_env=None, worker_env=None):
        self.root = Path(root)
        self.redis_url = getattr(redis, "url", redis)  # a tests.redis_server.RedisServer, or a URL
        self.artifacts_dir = self.root / "artifacts"
        self.artifacts_url = artifacts_url or self.artifacts_dir.as_uri()
        self.web = [WebHost(self.root / f"web-{i}", self.redis_url, self.artifacts_url, workers=web_workers,
                            model=model, stats=stats, **(web_env or {})) for i in range(web_hosts)]
        self.workers = [WorkerHost(self.root / f"worker-{i}", self.redis_url, self.artifacts_url, f"worker-{i}",
                                   max_workers=max_workers, work_command=work_command, model=model, stats=stats,
                                   **(worker_env or {})) for i in range(worker_hosts)]

    def start(self, timeout=180):
        """Start every host at once (their start-ups overlap); stop them all if one fails to start."""
        if not self.artifacts_url.startswith("s3://"):
            self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        errors = []

        def start(host):
            try:
                host.start(timeout=timeout)
            except Exception as exc:  # collected: one host's failure must not leave the others running
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(host,)) for host in self.web + self.workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self.stop()
            raise errors[0]
        return self

    def stop(self):
        """Stop the web hosts, then the worker hosts; nothing of any host is left running."""
        for host in self.web:
            host.stop()
            host.kill_tree()
        for host in self.workers:
            host.stop()
            host.kill_tree()  # runners a graceful stop left running must not outlive the test

    def worker(self, name):
        """The worker host called `name`."""
        return next(host for host in self.workers if host.name == name)

    def redis(self):
        """A Redis client on the cluster's Redis (the test closes it, or lets it be collected)."""
        import redis

        return redis.Redis.from_url(self.redis_url, decode_responses=True)

    def job(self, job_id):
        """A job's record as Redis holds it (`hunyuan:job:<id>`), or None."""
        client = self.redis()
        try:
            text = client.get(f"hunyuan:job:{job_id}")
        finally:
            client.close()
        return None if text is None else json.loads(text)

    def logs(self):
        """Every host's log, one after another, for assertion messages."""
        return "\n".join(f"===== {getattr(host, 'name', host.folder.name)} =====\n{host.log_text()}"
                         for host in self.web + self.workers)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
