"""Many hosts for real: two web hosts (gunicorn, as the Procfile starts it) and three worker hosts
(`python -m runner.worker_host`, what `hunyuan-worker` runs), each a process tree with its own data
folder, sharing only a real redis-server and the artifact store; faults as they happen to machines."""

import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from .cluster import Cluster, WebHost, WorkerHost
from .conftest import SMALL_REQUEST, fixture_runner, wait_for
from .mp4_check import assert_playable_mp4
from .s3_server import REGION, running_s3_server
from .sse import events_only, read_stream

# Hosts announce themselves every second and count as lost after 6 s, so a power cut is noticed
# within seconds here (the defaults, 5 s and 30 s, suit real networks; docs/scale-out.md).
FAST = {"HOST_HEARTBEAT_SECONDS": "1", "HOST_LOST_SECONDS": "6"}
TERMINAL = ("completed", "failed", "canceled")


def submit(host, prompt, **extra):
    answer = requests.post(host.base_url + "/api/generate", json={"prompt": prompt, **extra}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["job_id"]


def status(host, job_id):
    answer = requests.get(f"{host.base_url}/api/status/{job_id}", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_all(host, job_ids, timeout):
    def done():
        states = [status(host, job_id) for job_id in job_ids]
        return states if all(state["status"] in TERMINAL for state in states) else None

    return wait_for(done, timeout, interval=0.3, message=f"{len(job_ids)} jobs to finish")


@pytest.fixture
def cluster(tmp_path, redis_server):
    """Two web hosts and three worker hosts (two slots each) running the sleeping fixture work process."""
    hosts = Cluster(tmp_path / "cluster", redis_server, web_hosts=2, worker_hosts=3, max_workers=2,
                    work_command=fixture_runner("sleeps_then_completes"), web_env=FAST, worker_env=FAST)
    with hosts:
        yield hosts
        for worker in hosts.workers:
            worker.kill_tree()  # a graceful stop would let the minute-long fixture jobs finish first


def test_jobs_spread_over_the_worker_hosts_never_above_their_slots(cluster):
    web_a, web_b = cluster.web
    job_ids = [submit((web_a, web_b)[i % 2], "sleep 1") for i in range(12)]
    # Live progress from a web host that neither took the job nor runs it.
    stream = requests.get(f"{web_b.base_url}/api/jobs/{job_ids[0]}/events", stream=True, timeout=60)
    events = [message["event"] for message in events_only(read_stream(stream.iter_content(None)))]
    assert events[-1] == "completed" and "progress" in events, events
    most = {}

    def sample():
        states = [cluster.job(job_id) for job_id in job_ids]
        running = {}
        for job in states:
            if job["status"] == "processing":
                host = job["runner"]["host"]
                running[host] = running.get(host, 0) + 1
        for host, count in running.items():
            most[host] = max(most.get(host, 0), count)
        return all(job["status"] in TERMINAL for job in states)

    wait_for(sample, 90, interval=0.1, message="12 jobs to finish")
    finished = [status(web_b, job_id) for job_id in job_ids]
    assert {job["status"] for job in finished} == {"completed"}, cluster.logs()
    used = {job["worker_host"] for job in finished}
    assert len(used) >= 2 and used <= {"worker-0", "worker-1", "worker-2"}
    assert max(most.values()) <= 2, most
    info = requests.get(web_a.base_url + "/api/info", timeout=30).json()["cluster"]
    assert info["worker_hosts_up"] == 3 and info["slots"] == 6
    assert {host["name"] for host in info["worker_hosts"]} == {"worker-0", "worker-1", "worker-2"}
    metrics = requests.get(web_b.base_url + "/metrics", timeout=30).text
    assert 'hunyuan_worker_host_up{host="worker-1"} 1.0' in metrics
    assert 'hunyuan_jobs{status="completed"} 12.0' in metrics
    # Each job's log came through the artifact store to a web host that never ran it.
    log = requests.get(f"{web_a.base_url}/api/jobs/{job_ids[0]}/log", timeout=30)
    assert log.status_code == 200 and "[guard" in log.text


def test_a_power_cut_fails_the_hosts_jobs_naming_it_within_a_minute(cluster):
    web = cluster.web[0]
    job_ids = [submit(web, "sleep 60") for _ in range(6)]
    wait_for(lambda: all(status(web, job_id)["status"] == "processing" for job_id in job_ids), 60,
             message="all six jobs to run")
    victim = cluster.worker(status(web, job_ids[0])["worker_host"])
    on_victim = [job_id for job_id in job_ids if status(web, job_id)["worker_host"] == victim.name]
    cut_at = time.monotonic()
    assert victim.kill_tree() >= 1 + 2 * len(on_victim)  # its main process, and a guard and work process a job
    failed = wait_for(lambda: all(status(web, job_id)["status"] == "failed" for job_id in on_victim) and
                      [status(web, job_id) for job_id in on_victim], 60, message="the lost host's jobs to fail")
    seconds = time.monotonic() - cut_at
    print(f"lost worker host to failed jobs: {seconds:.1f} s")
    assert seconds <= 60
    for job in failed:
        assert f"worker host {victim.name} was lost" in job["error"]
    others = [job_id for job_id in job_ids if job_id not in on_victim]
    assert all(status(web, job_id)["status"] == "processing" for job_id in others)
    info = requests.get(web.base_url + "/api/info", timeout=30).json()["cluster"]
    assert {host["name"]: host["up"] for host in info["worker_hosts"]}[victim.name] is False


def test_cancel_reaches_the_runner_on_whichever_host_it_is(cluster):
    web_a, web_b = cluster.web
    job_id = submit(web_a, "sleep 60")
    wait_for(lambda: status(web_a, job_id)["phase"] == "denoising", 60, message="the job to run")
    runner = cluster.job(job_id)["runner"]
    pids = [runner["guard"]["pid"], runner["worker"]["pid"]]
    # Its live log, from a web host: the worker host copies it into Redis as it grows.
    live = wait_for(lambda: (text := requests.get(f"{web_b.base_url}/api/jobs/{job_id}/log", timeout=30).text)
                    and "[guard" in text and text, 10, message="the live log")
    tail = requests.get(f"{web_b.base_url}/api/jobs/{job_id}/log?tail=1", timeout=30).text
    assert tail.count("\n") <= 1 and tail.strip() == live.strip().splitlines()[-1].strip()
    asked = time.monotonic()
    answer = requests.post(f"{web_b.base_url}/api/jobs/{job_id}/cancel", timeout=30)
    assert answer.status_code == 200 and answer.json()["status"] == "canceled"

    def gone():
        return not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                       for pid in pids)

    wait_for(gone, 5, message="the runner processes to end")
    print(f"cancel on another host to runner gone: {time.monotonic() - asked:.2f} s")
    record = cluster.job(job_id)
    assert record["status"] == "canceled" and record["runner"]["ended_at"]


def test_redis_restart_mid_run_loses_no_job_and_the_api_heals(cluster, redis_server):
    web_a, web_b = cluster.web
    job_ids = [submit(web_a, "sleep 4") for _ in range(4)]
    wait_for(lambda: any(status(web_a, job_id)["status"] == "processing" for job_id in job_ids), 60,
             message="a job to run")
    redis_server.kill()
    down = requests.get(web_b.base_url + "/api/jobs", timeout=30)
    assert down.status_code == 503 and down.headers["Retry-After"] == "5"
    time.sleep(2)
    redis_server.start()
    finished = wait_all(web_b, job_ids, 90)
    assert [job["status"] for job in finished] == ["completed"] * 4, cluster.logs()
    later = submit(web_b, "sleep 0.2")
    assert wait_all(web_a, [later], 60)[0]["status"] == "completed"


def test_a_web_host_restart_loses_nothing(cluster):
    web_a, web_b = cluster.web
    job_ids = [submit(web_a, "sleep 2") for _ in range(3)]
    web_a.stop()
    web_a.start()
    finished = wait_all(web_a, job_ids, 90)
    assert [job["status"] for job in finished] == ["completed"] * 3
    assert {job["job_id"] for job in requests.get(web_b.base_url + "/api/jobs", timeout=30).json()["jobs"]} >= \
        set(job_ids)


def test_500_concurrent_submissions_over_two_web_hosts(tmp_path, redis_server):
    hosts = Cluster(tmp_path / "cluster", redis_server, web_hosts=2, worker_hosts=0,
                    web_env={"MAX_QUEUE": "1000"})
    with hosts:
        def post(number):
            host = hosts.web[number % 2]
            answer = requests.post(host.base_url + "/api/generate", json={"prompt": f"job {number}"}, timeout=60)
            return answer.status_code, answer.json().get("job_id")

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(post, range(500)))
        codes = [code for code, _ in answers]
        assert codes.count(200) == 500, {code: codes.count(code) for code in set(codes)}
        assert len({job_id for _, job_id in answers}) == 500
        listed = requests.get(hosts.web[1].base_url + "/api/jobs?limit=1", timeout=30).json()
        assert listed["total"] == 500


@pytest.mark.demo_model
def test_a_real_demo_model_job_renders_on_a_worker_host_into_s3_and_is_served_by_a_web_host(
        tmp_path, redis_server, tiny_model, host_calibration):
    (tmp_path / "s3").mkdir()
    with running_s3_server(tmp_path / "s3") as s3:
        s3.create_bucket("videos")
        artifacts = {"ARTIFACTS_ENDPOINT_URL": s3.endpoint, "ARTIFACTS_REGION": REGION}
        web = WebHost(tmp_path / "web", redis_server.url, "s3://videos/cluster", model=tiny_model, **artifacts)
        worker = WorkerHost(tmp_path / "worker", redis_server.url, "s3://videos/cluster", "gpu-less-0",
                            max_workers=1, model=tiny_model, stats=host_calibration, **artifacts)
        with web, worker:
            answer = requests.post(web.base_url + "/api/generate", json=SMALL_REQUEST, timeout=30)
            assert answer.status_code == 200, answer.text
            job_id = answer.json()["job_id"]
            done = wait_all(web, [job_id], 300)[0]
            assert done["status"] == "completed", worker.log_text()
            assert done["worker_host"] == "gpu-less-0"
            video = requests.get(web.base_url + done["video_url"], timeout=60)
            assert video.status_code == 200 and video.headers["Content-Type"] == "video/mp4"
            path = tmp_path / "served.mp4"
            path.write_bytes(video.content)
            assert_playable_mp4(path, SMALL_REQUEST["video_length"], SMALL_REQUEST["width"],
                                SMALL_REQUEST["height"], SMALL_REQUEST["fps"])
            part = requests.get(web.base_url + done["video_url"], headers={"Range": "bytes=0-99"}, timeout=30)
            assert part.status_code == 206 and part.content == video.content[:100]
            assert requests.get(web.base_url + done["poster_url"], timeout=30).status_code == 200
            log = requests.get(f"{web.base_url}/api/jobs/{job_id}/log", timeout=30).text
            assert "job completed" in log
            # Nothing of the job is left on the worker host: it is all in the artifact store.
            assert not list((worker.data_dir / "videos").glob(f"{job_id}*"))


def test_a_job_goes_only_to_a_worker_host_that_has_its_model(tmp_path, redis_server):
    import shutil

    from .cluster import LIGHT_MODEL

    folders = {}
    for name in ("alpha", "beta"):
        folders[name] = tmp_path / "models" / name
        shutil.copytree(LIGHT_MODEL, folders[name])
    both = f"alpha={folders['alpha']},beta={folders['beta']}"
    artifacts = (tmp_path / "artifacts").as_uri()
    (tmp_path / "artifacts").mkdir()
    web = WebHost(tmp_path / "web", redis_server.url, artifacts, MODELS=both, **FAST)
    runner = fixture_runner("sleeps_then_completes")
    has_alpha = WorkerHost(tmp_path / "a", redis_server.url, artifacts, "has-alpha", work_command=runner,
                           MODELS=f"alpha={folders['alpha']}", **FAST)
    has_beta = WorkerHost(tmp_path / "b", redis_server.url, artifacts, "has-beta", work_command=runner,
                          MODELS=f"beta={folders['beta']}", **FAST)
    with web, has_alpha, has_beta:
        assert has_alpha.announcement()["models"] == ["alpha"]
        beta_jobs = [submit(web, "sleep 0.5", model="beta") for _ in range(4)]
        alpha_jobs = [submit(web, "sleep 0.5", model="alpha") for _ in range(2)]
        finished = wait_all(web, beta_jobs + alpha_jobs, 90)
        assert {job["status"] for job in finished} == {"completed"}
        assert {job["worker_host"] for job in finished[:4]} == {"has-beta"}
        assert {job["worker_host"] for job in finished[4:]} == {"has-alpha"}
        for host in (has_alpha, has_beta):
            host.kill_tree()
