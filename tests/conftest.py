"""Shared fixtures: a data folder per test, the tiny model built once per session, the app.

Light by default: `data_dir` (and `store`, `app`, `client` on it) holds the demo
model's configs and metadata only (tests/fixtures/light-model), which is all the
web face and the store ever read, so store, record and API tests never build the
model, calibrate the host or import torch (tests/test_light_fixtures.py checks it).
Tests whose jobs really run on the demo model opt in with the `demo_model` marker
(`pytestmark = pytest.mark.demo_model` for a whole file): their `data_dir` then
holds the session's built model and its calibration of this host.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hunyuan_api import create_app
from hunyuan_core.job_store import JobStore
from hunyuan_core.model_source import EMBEDDED_MODEL_NAME, EmbeddedModelBuilder, ModelSource
from hunyuan_core.precision import choose_compute

from .redis_server import DEBIAN_REDIS_SERVER, RedisServer, redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_RUNNERS = Path(__file__).resolve().parent / "fixtures" / "runners"
# The demo model's config and metadata files without its weights (test_light_fixtures keeps it in step).
LIGHT_MODEL = Path(__file__).resolve().parent / "fixtures" / "light-model"
ARTIFACTS = ROOT / "test-artifacts"

# What runners compute in on this host with the default COMPUTE_DTYPE=auto: bf16 where the CPU
# has native bf16 (AVX512_BF16/AMX), fp32 elsewhere (see hunyuan_core/precision.py).
COMPUTE_HERE = choose_compute("cpu", "auto")[0]

# A request small enough to render in seconds on two cores with the tiny model.
SMALL_REQUEST = {
    "prompt": "A cat walks on the grass, realistic style.",
    "width": 256,
    "height": 256,
    "video_length": 13,
    "fps": 8,
    "num_inference_steps": 10,
}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """The embedded demo model, built once for the whole session by the service's own builder."""
    path = tmp_path_factory.mktemp("models") / EMBEDDED_MODEL_NAME
    EmbeddedModelBuilder(ModelSource(path, embedded=True)).build_now()
    return path


# The four families' demo models by name (runner/demo_models.py).
DEMO_MODELS = ("demo-hunyuanvideo", "demo-hunyuanvideo-i2v", "demo-hunyuanvideo-1.5", "demo-hunyuanvideo-1.5-i2v")


@pytest.fixture(scope="session")
def demo_folders(tmp_path_factory):
    """All four demo models, built once in one interpreter through the builder's command line."""
    root = tmp_path_factory.mktemp("demo-models")
    code = ("import sys; from runner.demo_models import main; "
            "[main([name, sys.argv[1] + '/' + name]) for name in sys.argv[2:]]")
    subprocess.run([sys.executable, "-c", code, str(root), *DEMO_MODELS], check=True, cwd=ROOT, capture_output=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return {name: root / name for name in DEMO_MODELS}


@pytest.fixture(scope="session")
def host_calibration(tiny_model, tmp_path_factory):
    """This host measured for the tiny model once per session (runner/calibrate.py, for real)."""
    data = tmp_path_factory.mktemp("calibration")
    subprocess.run([sys.executable, "-m", "runner.calibrate", str(tiny_model), "--data-dir", str(data),
                    "--max-workers", "2"], check=True, cwd=ROOT, capture_output=True)
    return data / "stats"


def pytest_configure(config):
    """Register the opt-in marker for tests that run runners on the built demo model."""
    config.addinivalue_line("markers", "demo_model: data_dir holds the built demo model and this host's "
                            "calibration (builds the model and imports torch in subprocesses)")


@pytest.fixture
def data_dir(request, tmp_path):
    """A fresh data folder whose embedded model is "ready" (its metadata file is there).

    Light unless the test is marked `demo_model`: then the model is the session's
    build (a symlink, not a copy) and the folder starts with the session's
    calibration of this host, as a data folder does after its first start, so
    tests do not each spend seconds measuring the host.
    """
    folder = tmp_path / "data"
    (folder / "models").mkdir(parents=True)
    model = folder / "models" / EMBEDDED_MODEL_NAME
    if request.node.get_closest_marker("demo_model") is None:
        shutil.copytree(LIGHT_MODEL, model)
        return folder
    model.symlink_to(request.getfixturevalue("tiny_model"), target_is_directory=True)
    shutil.copytree(request.getfixturevalue("host_calibration"), folder / "stats")
    return folder


@pytest.fixture
def store(data_dir):
    """The job store of the test's data folder."""
    return JobStore(data_dir)


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server for one test (tests/redis_server.py): free port, own folder, append-only file.

    Without redis-server the test is skipped, except in CI (CI=true), where that is a failure:
    `.ci/run` installs it, so its absence there means the scale-out tests silently did not run.
    """
    if redis_server_binary() is None:
        message = f"redis-server is not installed ({DEBIAN_REDIS_SERVER}; `apt-get install redis-server`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + ", and CI=true: the scale-out tests must run in CI")
        pytest.skip(message)
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


def make_app(data_dir, **settings):
    """An app on `data_dir` whose supervisor only ticks when a test tells it to."""
    config = {"DATA_DIR": str(data_dir), "SUPERVISOR_AUTOSTART": False, "TESTING": True}
    config.update(settings)
    return create_app(config)


@pytest.fixture
def app(data_dir):
    """The app, with its supervisor idle (tests tick it by hand)."""
    return make_app(data_dir)


@pytest.fixture
def client(app):
    """Flask's test client: real requests through the whole WSGI app."""
    return app.test_client()


def fixture_runner(name):
    """The work-process command of a fixture runner in tests/fixtures/runners."""
    return [sys.executable, str(FIXTURE_RUNNERS / f"{name}.py")]


def wait_for(predicate, timeout, interval=0.1, message="condition"):
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def artifact_path(name):
    """A path under test-artifacts/ for files worth keeping after a run (videos, logs)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


def copy_artifact(source, name):
    """Keep a copy of `source` as a test artifact."""
    shutil.copy(source, artifact_path(name))


os.environ.setdefault("PYTHONUNBUFFERED", "1")
