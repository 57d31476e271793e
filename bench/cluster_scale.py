"""Dispatch across worker hosts: makespan, slots per host, submission-to-start, lost-host detection.

    .venv/bin/python bench/cluster_scale.py                      # 3 hosts x 2 slots, 120 jobs of 2 s
    .venv/bin/python bench/cluster_scale.py --jobs 60 --seconds 1 --hosts 2 --slots 3
    .venv/bin/python bench/cluster_scale.py --retry-lost-jobs     # the lost host's jobs are requeued once

Starts a real redis-server (append-only file, tests/redis_server.py), one web host (gunicorn,
REDIS_URL set) and --hosts worker hosts (`python -m runner.worker_host`, MAX_WORKERS=--slots)
as separate process trees with their own data folders, sharing Redis and a `file://` artifact
folder (tests/cluster.py). The work process is the fixture tests/fixtures/runners/
lives_then_completes.py: each job's work process lives --seconds from its own start (its
interpreter start and imports included) instead of rendering, so two cores show
dispatch, not compute. Then, in the same run, the same jobs on the single-host file mode (one
gunicorn, MAX_WORKERS = hosts x slots, the same fixture through bench/file_mode_wsgi.py).

Rows (targets from issue 13):
- makespan: first submission to last job finished, against the ideal jobs x seconds / slots (<= 1.25x);
- most jobs running at once on one host: sampled every 0.2 s from the job records (status
  `processing`, `runner.host`) and, exactly, from their started_at/finished_at intervals (<= slots);
- submission to start (created_at -> started_at), p50/p95: on an idle cluster (--probe-jobs jobs
  submitted one at a time; p95 <= 1 s), and in the full batch counted from when a slot was free;
- lost host: one worker host's whole process tree killed by SIGKILL mid-job; seconds until each of
  its jobs is failed (or requeued, with --retry-lost-jobs), <= 60.
A benchmark, not a test: the figures depend on the machine and its load.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hunyuan_core.model_source import EMBEDDED_MODEL_NAME, EmbeddedModelBuilder, ModelSource  # noqa: E402
from tests.cluster import Cluster, prepare_data_dir  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tests.server import GunicornServer  # noqa: E402

from cluster_figures import (FileRecords, RedisRecords, delay_once_a_slot_was_free, epoch, host_of,  # noqa: E402
                             most_at_once, percentile)

FIXTURES = ROOT / "tests" / "fixtures" / "runners"
TERMINAL = ("completed", "failed", "canceled")
SAMPLE_SECONDS = 0.2


def submit(base_url, prompt, count, threads=16):
    """POST `count` jobs concurrently; returns (job ids, answers that were not 2xx as 'status: detail')."""

    def one(_):
        try:
            answer = requests.post(f"{base_url}/api/generate", json={"prompt": prompt}, timeout=60)
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if not answer.ok:
            return None, f"{answer.status_code}: {answer.text[:200]}"
        return answer.json()["job_id"], None

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, range(count)))
    return [job_id for job_id, _ in results if job_id], [error for _, error in results if error]


def wait_all(read, job_ids, timeout, on_sample=None):
    """Poll the records every SAMPLE_SECONDS until every job is finished; returns the last records."""
    deadline = time.monotonic() + timeout
    while True:
        records = read(job_ids)
        if on_sample:
            on_sample(records)
        if len(records) == len(job_ids) and all(r["status"] in TERMINAL for r in records.values()):
            return records
        if time.monotonic() > deadline:
            left = sum(r["status"] not in TERMINAL for r in records.values()) + len(job_ids) - len(records)
            raise RuntimeError(f"{left} of {len(job_ids)} jobs still unfinished after {timeout} s")
        time.sleep(SAMPLE_SECONDS)


def batch(base_url, read, args, slots):
    """Submit args.jobs jobs at once, wait for them all; returns the batch's figures."""
    peaks = {}

    def sample(records):
        running = {}
        for record in records.values():
            if record["status"] == "processing":
                running[host_of(record)] = running.get(host_of(record), 0) + 1
        for host, count in running.items():
            peaks[host] = max(peaks.get(host, 0), count)

    started = time.time()
    job_ids, errors = submit(base_url, f"sleep {args.seconds}", args.jobs)
    records = list(wait_all(read, job_ids, timeout=args.jobs * args.seconds * 4 + 120, on_sample=sample).values())
    by_host = {}
    for record in records:
        if record.get("started_at") and record.get("finished_at"):
            by_host.setdefault(host_of(record), []).append((epoch(record["started_at"]), epoch(record["finished_at"])))
    makespan = max(epoch(r["finished_at"]) for r in records) - started
    ideal = args.jobs * args.seconds / slots
    slot_delays = delay_once_a_slot_was_free(records, slots)
    return {"submitted": len(job_ids), "submit errors": len(errors), "first error": (errors or [""])[0],
            "failed": sum(r["status"] != "completed" for r in records), "makespan": makespan, "ideal": ideal,
            "ratio": makespan / ideal, "hosts used": len(by_host), "peak sampled": max(peaks.values(), default=0),
            "peak exact": max((most_at_once(spans) for spans in by_host.values()), default=0),
            "slot p50": percentile(slot_delays, 0.5), "slot p95": percentile(slot_delays, 0.95)}


def probe(base_url, read, count, timeout=60):
    """Submit `count` short jobs one at a time on an idle service; created_at -> started_at of each."""
    delays = []
    for _ in range(count):
        job_ids, errors = submit(base_url, "sleep 0.3", 1, threads=1)
        if errors:
            raise RuntimeError(f"probe submission refused: {errors[0]}")
        job_id = job_ids[0]
        deadline = time.monotonic() + timeout
        while not (record := read([job_id]).get(job_id)) or not record.get("started_at"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"probe job {job_id} did not start within {timeout} s")
            time.sleep(0.02)
        delays.append(epoch(record["started_at"]) - epoch(record["created_at"]))
        time.sleep(0.5)  # let it finish: the next probe meets an idle slot, not a busy one
    return {"idle p50": percentile(delays, 0.5), "idle p95": percentile(delays, 0.95)}


def lost_host(cluster, read, args, slots, timeout=240):
    """Fill every slot with long jobs, power-cut the busiest host; seconds until its jobs are failed or requeued."""
    job_ids, errors = submit(cluster.web[0].base_url, "sleep 900", slots, threads=slots)
    if errors:
        raise RuntimeError(f"long jobs refused: {errors[0]}")
    deadline = time.monotonic() + 120
    while True:
        records = read(job_ids)
        if sum(record["status"] == "processing" for record in records.values()) == slots:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the long jobs did not all start within 120 s")
        time.sleep(SAMPLE_SECONDS)
    counts = {}
    for record in records.values():
        counts[host_of(record)] = counts.get(host_of(record), 0) + 1
    victim = cluster.worker(max(counts, key=counts.get))
    victims = [job_id for job_id, record in records.items() if host_of(record) == victim.name]
    killed_at = time.monotonic()
    processes = victim.kill_tree()
    seen = {}
    while len(seen) < len(victims):
        for job_id, record in read(victims).items():
            moved = record["status"] == "queued" or (record["status"] == "processing" and host_of(record) != victim.name)
            if job_id not in seen and (record["status"] == "failed" or (args.retry_lost_jobs and moved)):
                seen[job_id] = (time.monotonic() - killed_at, record["status"], record.get("error"))
        if time.monotonic() - killed_at > timeout:
            raise RuntimeError(f"{len(victims) - len(seen)} jobs of {victim.name} untouched {timeout} s after the kill")
        time.sleep(SAMPLE_SECONDS)
    worst = max(seen.values(), key=lambda outcome: outcome[0])
    return {"host": victim.name, "processes killed": processes, "jobs": len(victims), "seconds": worst[0],
            "outcome": worst[1], "error": worst[2]}


def demo_model(work, slots):
    """The embedded demo model built once and this host calibrated for it once, linked into every host.

    Hosts then neither build nor calibrate at start (the fixture work process never loads the model).
    """
    model = work / "model" / EMBEDDED_MODEL_NAME
    EmbeddedModelBuilder(ModelSource(model, embedded=True)).build_now()
    subprocess.run([sys.executable, "-m", "runner.calibrate", str(model), "--data-dir", str(work / "calibration"),
                    "--max-workers", str(slots)], cwd=ROOT, check=True, capture_output=True)
    return model, work / "calibration" / "stats"


def run_cluster(work, model, stats, args):
    """The cluster rows: batch, idle probe and (unless skipped) the lost host."""
    slots = args.hosts * args.slots
    settings = {"HOST_LOST_SECONDS": args.host_lost_seconds, "RETRY_LOST_JOBS": int(args.retry_lost_jobs)}
    with RedisServer(work / "redis") as redis_server:
        cluster = Cluster(work / "cluster", redis_server, web_hosts=1, worker_hosts=args.hosts, max_workers=args.slots,
                          work_command=[sys.executable, str(FIXTURES / f"{args.fixture}.py")], model=model,
                          stats=stats,
                          web_env={"MAX_QUEUE": 0, "MIN_FREE_DISK_MB": 0, **settings},
                          worker_env={"MIN_FREE_DISK_MB": 0, **settings})
        with cluster:
            read = RedisRecords(redis_server.url)
            try:
                figures = batch(cluster.web[0].base_url, read, args, slots)
                figures |= probe(cluster.web[0].base_url, read, args.probe_jobs)
                lost = None if args.skip_lost_host else lost_host(cluster, read, args, slots)
            except Exception:
                print(cluster.logs()[-20000:], file=sys.stderr)
                raise
    return figures, lost


def run_file_mode(work, model, stats, args):
    """The single-host row: one gunicorn, MAX_WORKERS = all the cluster's slots, the same fixture."""
    data_dir = prepare_data_dir(work / "file-mode" / "data", model=model, stats=stats)
    server = GunicornServer(data_dir, workers=2, app="bench.file_mode_wsgi:app", MAX_WORKERS=args.hosts * args.slots,
                            MAX_QUEUE=0, MIN_FREE_DISK_MB=0, BENCH_WORK_FIXTURE=args.fixture)
    with server:
        read = FileRecords(data_dir)
        return batch(server.base_url, read, args, args.hosts * args.slots) | probe(server.base_url, read,
                                                                                   args.probe_jobs)


def seconds(value):
    """A figure in seconds for the table."""
    return "-" if value is None else f"{value:.2f}"


def print_table(args, cluster, file_mode, lost):
    """The results as a Markdown table."""
    slots = args.hosts * args.slots
    print(f"\n{args.jobs} jobs of {args.seconds} s; cluster: {args.hosts} worker hosts x {args.slots} slots "
          f"(ideal {args.jobs * args.seconds / slots:.1f} s); single host: MAX_WORKERS={slots}\n")
    print("| mode | makespan (s) | ratio to ideal (<= 1.25) | most running on one host (<= "
          f"{args.slots} per worker host) | start p50 / p95, idle (s; p95 <= 1) | start p50 / p95 once a slot "
          "was free (s) | not completed | submit errors |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in (("cluster", cluster), ("single host (files)", file_mode)):
        if row is None:
            continue
        print(f"| {name} | {row['makespan']:.1f} | {row['ratio']:.2f} | {row['peak sampled']} sampled, "
              f"{row['peak exact']} from records ({row['hosts used']} hosts used) | {seconds(row['idle p50'])} / "
              f"{seconds(row['idle p95'])} | {seconds(row['slot p50'])} / {seconds(row['slot p95'])} | "
              f"{row['failed']} | {row['submit errors']} {row['first error']} |")
    if lost:
        print(f"\nLost host: {lost['host']} ({lost['processes killed']} processes) killed by SIGKILL with "
              f"{lost['jobs']} jobs running; all {lost['outcome']} after {lost['seconds']:.1f} s "
              f"(HOST_LOST_SECONDS={args.host_lost_seconds}; target <= 60). Error: {lost['error']!r}")


def main():
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=2.0, help="each job's length")
    parser.add_argument("--fixture", default="lives_then_completes", choices=("lives_then_completes",
                        "sleeps_then_completes"), help="the work process: lives --seconds from its process start "
                        "(its interpreter start counts, the default), or sleeps --seconds after it")
    parser.add_argument("--hosts", type=int, default=3, help="worker hosts")
    parser.add_argument("--slots", type=int, default=2, help="MAX_WORKERS of each worker host")
    parser.add_argument("--probe-jobs", type=int, default=20, help="jobs submitted one at a time on an idle service")
    parser.add_argument("--host-lost-seconds", type=float, default=30, help="HOST_LOST_SECONDS of every host")
    parser.add_argument("--retry-lost-jobs", action="store_true", help="RETRY_LOST_JOBS=1: requeued, not failed")
    parser.add_argument("--skip-cluster", action="store_true", help="only the single-host file mode")
    parser.add_argument("--skip-file-mode", action="store_true")
    parser.add_argument("--skip-lost-host", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, data folders)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hunyuan-cluster-bench-"))
    try:
        model, stats = demo_model(work, args.slots)
        cluster, lost = (None, None) if args.skip_cluster else run_cluster(work, model, stats, args)
        file_mode = None if args.skip_file_mode else run_file_mode(work, model, stats, args)
        print_table(args, cluster, file_mode, lost)
    finally:
        if args.keep:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
