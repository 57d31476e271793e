"""`hunyuan-worker`: a worker host of the many-host mode (docs/scale-out.md).

Run on each machine that renders, with REDIS_URL (and ARTIFACTS_URL) pointing where the
web hosts point. It:

1. builds its demo models if it serves them, and finds which of its models are ready;
2. starts MAX_WORKERS slot processes, each an RQ worker on the queues of those models
   (hunyuan_core/dispatch.py) that runs one job at a time (runner/host_job.py), so
   this host never runs more than MAX_WORKERS jobs and the cluster's capacity is the
   sum of its hosts' slots;
3. announces itself every HOST_HEARTBEAT_SECONDS (name, slots, models, device,
   running jobs: hunyuan_core/hosts.py), restarts a slot process that died, and takes
   its turn at the cluster's rounds (lost hosts, missing dispatches:
   hunyuan_core/cluster.py).

SIGTERM (a deploy) stops taking jobs, lets running ones finish, and withdraws the
announcement. A host that dies without that (power cut) stops announcing itself and
its jobs are failed, or requeued, by whichever host notices first.
"""

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time

from hunyuan_core import PROJECT_ROOT, catalog, cluster, config, dispatch, hosts, model_source
from hunyuan_core.job_record import JobStatus
from hunyuan_core.stores import RUNNER_PATIENCE_SECONDS, open_store
from runner.host_job import WORK_COMMAND_ENV

log = logging.getLogger("hunyuan.worker")


def main(argv=None):
    """Command line of a worker host (`hunyuan-worker`), or of one of its slots (`--slot N`)."""
    parser = argparse.ArgumentParser(prog="hunyuan-worker", description="Render jobs from Redis on this host.")
    parser.add_argument("--work-command", help="JSON list: the work process command (tests' fixture runners)")
    parser.add_argument("--slot", type=int, help=argparse.SUPPRESS)  # one slot process, started by the host
    parser.add_argument("--queues", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = config.from_environ()
    except ValueError as exc:
        print(f"hunyuan-worker: {exc}", file=sys.stderr)
        return 2
    if not settings["REDIS_URL"]:
        print("hunyuan-worker: REDIS_URL is not set; a worker host takes its jobs from Redis "
              "(the embedded default runs jobs in the web service itself)", file=sys.stderr)
        return 2
    if args.slot is not None:
        return _slot(settings, args.slot, args.queues.split(","))
    if args.work_command:
        os.environ[WORK_COMMAND_ENV] = args.work_command  # inherited by the slots and their jobs
    return Host(settings).serve()


def _slot(settings, number, queues):
    """One runner slot: an RQ worker that runs one job at a time until told to stop."""
    from rq import SimpleWorker

    store = open_store(settings, host=settings["WORKER_NAME"], patience=RUNNER_PATIENCE_SECONDS)
    worker = SimpleWorker(queues, connection=store.redis, name=f"{settings['WORKER_NAME']}.{number}.{os.getpid()}",
                          default_result_ttl=0)
    # No RQ job timeout: the guard enforces JOB_TIMEOUT and the stall limit.
    worker.work(logging_level="WARNING")
    return 0


class Host:
    """The worker host's main process: slots, announcements and cluster rounds."""

    def __init__(self, settings):
        self.settings = settings
        self.name = settings["WORKER_NAME"]
        self.store = open_store(settings, host=self.name, patience=RUNNER_PATIENCE_SECONDS)
        self.models = catalog.from_settings(settings)
        self.slots = {}  # number -> Popen
        self.stopping = False
        self.tick = cluster.ClusterTick(self.store, settings["HOST_LOST_SECONDS"], settings["RETRY_LOST_JOBS"])
        self.started_at = time.time()

    def serve(self):
        """Run until SIGTERM/SIGINT; returns the exit code."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        model_source.Builders(self.models.sources()).build_now()
        ready = [m for m in self.models.models if model_source.describe(m.source)["ready"]]
        if not ready:
            log.error("none of this host's models is ready; it takes no jobs")
        self.queues = [dispatch.queue_name(m.name) for m in ready]
        self.model_names = [m.name for m in ready]
        log.info("worker host %s: %d slots, models %s", self.name, self.settings["MAX_WORKERS"],
                 ", ".join(self.model_names) or "none")
        last_beat = 0.0
        while not self.stopping:
            if self.queues:
                self._keep_slots()
            if time.monotonic() - last_beat >= self.settings["HOST_HEARTBEAT_SECONDS"]:
                last_beat = time.monotonic()
                self._announce()
                self.tick.run()
            time.sleep(0.2)
        self._drain()
        return 0

    def _stop(self, _signum, _frame):
        self.stopping = True

    def _keep_slots(self):
        """Start the slot processes that are not running (first start, or one that died)."""
        for number in range(self.settings["MAX_WORKERS"]):
            process = self.slots.get(number)
            if process is not None and process.poll() is None:
                continue
            if process is not None:
                log.warning("slot %d exited with %s; starting it again", number, process.returncode)
            command = [sys.executable, "-m", "runner.worker_host", "--slot", str(number),
                       "--queues", ",".join(self.queues)]
            self.slots[number] = subprocess.Popen(command, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL)

    def _announce(self):
        """Tell the cluster this host is up, what it has and what it runs."""
        try:
            running = [job["job_id"] for job in self.store.read_many(self.store.index.with_runner_ids())
                       if (job.get("runner") or {}).get("host") == self.name
                       and job["status"] == JobStatus.PROCESSING.value]
            hosts.announce(self.store, {
                "name": self.name,
                "slots": self.settings["MAX_WORKERS"],
                "models": self.model_names,
                "device": _device(self.settings),
                "running": running,
                "started_at": self.started_at,
                "pid": os.getpid(),
            }, self.settings["HOST_LOST_SECONDS"])
        except Exception as exc:  # noqa: BLE001 - Redis down: announce again next beat
            log.warning("could not announce this host: %s", exc)

    def _drain(self):
        """Stop the slots after their current jobs (RQ's warm shutdown), then withdraw the announcement."""
        for process in self.slots.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.slots.values():
            process.wait()
        try:
            hosts.withdraw(self.store, self.name)
        except Exception:  # noqa: BLE001 - Redis gone: the announcement expires by itself
            pass


def _device(settings):
    """What this host computes on, as it would tell a job (without importing torch)."""
    device = settings["DEVICE"]
    if device != "auto":
        return device
    # torch decides at each job's start; an NVIDIA device node is what it will find.
    return "cuda" if os.path.exists("/dev/nvidia0") and os.environ.get("CUDA_VISIBLE_DEVICES") != "" else "cpu"


if __name__ == "__main__":
    sys.exit(main())
