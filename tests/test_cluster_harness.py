"""The scale-out harness itself (tests/cluster.py, tests/power_cut.py): hosts apart, power cuts complete."""

import json
import os
import subprocess
import sys

import psutil

from hunyuan_core.model_source import EMBEDDED_MODEL_NAME

from .cluster import Cluster, prepare_data_dir
from .conftest import LIGHT_MODEL, wait_for
from .power_cut import HOST_MARKER, host_processes, power_cut

# A "host" whose processes scatter the way a worker host's do: a child in the same group, a child
# in a session of its own (as runners start), and a grandchild in yet another session whose
# parent exits at once, so it is re-parented and no longer under the host's main process.
SCATTER = """
import subprocess, sys, time
sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
subprocess.Popen(sleeper)
subprocess.Popen(sleeper, start_new_session=True)
orphan_maker = "import subprocess, sys; subprocess.Popen(%r, start_new_session=True)" % (sleeper,)
subprocess.Popen([sys.executable, "-c", orphan_maker], start_new_session=True).wait()
print("ready", flush=True)
time.sleep(120)
"""


def test_a_power_cut_kills_every_process_of_the_host_even_in_other_sessions_and_re_parented(tmp_path):
    marker = "test-" + str(os.getpid())
    host = subprocess.Popen([sys.executable, "-c", SCATTER], env={**os.environ, HOST_MARKER: marker},
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        assert host.stdout.readline().strip() == "ready"
        under_main = {child.pid for child in psutil.Process(host.pid).children(recursive=True)}
        found = {proc.pid for proc in host_processes(host.pid, marker)}
        assert len(found) == 4, found  # the main process, two children, the re-parented grandchild
        assert len(found - under_main - {host.pid}) == 1, "the re-parented grandchild was not found"
        assert bystander.pid not in found
        assert power_cut(host.pid, marker) == 4
        host.wait(5)
        assert host.returncode == -9
        wait_for(lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                                 for pid in found), 5, message="every process of the host to be gone")
        assert bystander.poll() is None, "a process of another host was killed"
    finally:
        bystander.kill()
        bystander.wait()
        host.kill()
        host.wait()
        for proc in psutil.process_iter():  # whatever a failed power cut left, found independently of it
            try:
                if proc.environ().get(HOST_MARKER) == marker:
                    proc.kill()
            except psutil.Error:
                pass


def test_hosts_share_only_redis_and_the_artifact_store(tmp_path):
    runner = [sys.executable, "tests/fixtures/runners/sleeps_then_completes.py"]
    cluster = Cluster(tmp_path, "redis://127.0.0.1:6399/0", web_hosts=2, worker_hosts=3, max_workers=2,
                      work_command=runner, web_env={"MAX_QUEUE": 0})
    hosts = cluster.web + cluster.workers
    assert len({host.env["DATA_DIR"] for host in hosts}) == 5
    assert len({host.env[HOST_MARKER] for host in hosts}) == 5
    assert {host.env["REDIS_URL"] for host in hosts} == {"redis://127.0.0.1:6399/0"}
    assert {host.env["ARTIFACTS_URL"] for host in hosts} == {(tmp_path / "artifacts").as_uri()}
    assert cluster.artifacts_url.startswith("file:///")
    assert [host.env["WORKER_NAME"] for host in cluster.workers] == ["worker-0", "worker-1", "worker-2"]
    assert {host.env["MAX_WORKERS"] for host in cluster.workers} == {"2"}
    assert {host.env["MAX_QUEUE"] for host in cluster.web} == {"0"}
    assert len({host.port for host in cluster.web}) == 2
    command = cluster.workers[0].command()
    assert command[:3] == [sys.executable, "-m", "runner.worker_host"]
    assert command[3] == "--work-command" and json.loads(command[4]) == runner


def test_a_host_data_folder_starts_with_its_models_ready(tmp_path):
    light = prepare_data_dir(tmp_path / "light")
    assert (light / "models" / EMBEDDED_MODEL_NAME / "hunyuan_api_model.json").is_file()
    linked = prepare_data_dir(tmp_path / "linked", model={"a": LIGHT_MODEL, "b": None})
    assert (linked / "models" / "a").resolve() == LIGHT_MODEL.resolve()
    assert (linked / "models" / "b" / "model_index.json").is_file()
    (linked / "models" / "b" / "kept").write_text("a second start rebuilds nothing")
    prepare_data_dir(tmp_path / "linked", model={"a": LIGHT_MODEL, "b": None})
    assert (linked / "models" / "b" / "kept").is_file()
