"""The light fixtures stay light, and stay in step with the demo model they stand for."""

import json
import subprocess
import sys

import pytest

from .conftest import LIGHT_MODEL, ROOT

# A package that takes the place of torch (and diffusers) in a light run: importing it fails
# the test that did, in the test process or in any subprocess it starts (builder, calibration).
_TRAP = "raise ImportError('a light test imported {name}: mark it demo_model (tests/conftest.py)')\n"


def test_store_and_api_tests_run_without_torch_or_the_demo_model(tmp_path):
    for name in ("torch", "diffusers"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(_TRAP.format(name=name))
    environ = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_job_store.py", "tests/test_api.py", "-q", "-x",
         "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "run")],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "error" not in result.stdout.splitlines()[-1]


def test_the_trap_catches_a_test_that_builds_the_demo_model(tmp_path):
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(_TRAP.format(name="torch"))
    # What the tiny_model fixture does: the service's own builder, in its subprocess.
    probe = ("import sys; from pathlib import Path; "
             "from hunyuan_core.model_source import EmbeddedModelBuilder, ModelSource; "
             "EmbeddedModelBuilder(ModelSource(Path(sys.argv[1]), embedded=True)).build_now()")
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "models" / "demo")], cwd=ROOT,
                            capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0 and "a light test imported torch" in result.stderr


@pytest.mark.demo_model
def test_the_light_model_is_the_demo_models_configs(tiny_model):
    files = sorted(p.relative_to(LIGHT_MODEL) for p in LIGHT_MODEL.rglob("*") if p.is_file())
    assert files, "the light model fixture is empty"
    for relative in files:
        assert json.loads((LIGHT_MODEL / relative).read_text()) == json.loads((tiny_model / relative).read_text()), (
            f"tests/fixtures/light-model/{relative} differs from the built demo model's: copy it again"
        )
    built = {p.relative_to(tiny_model) for p in tiny_model.rglob("config.json")}
    assert built <= set(files), f"configs missing from tests/fixtures/light-model: {sorted(built - set(files))}"
