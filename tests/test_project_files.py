"""The set-up files agree with each other and with the README."""

import re

import yaml

from hunyuan_api import config

from .conftest import ROOT


def readme_commands():
    return re.findall(r"```bash\n(python3 -m venv [^\n]+)\n```", (ROOT / "README.md").read_text())


def test_readme_has_exactly_two_set_up_commands_and_ci_runs_the_second():
    serve, test = readme_commands()
    assert "gunicorn -c python:hunyuan_api.gunicorn_conf wsgi:app" in serve
    assert "pytest" in test
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()


def test_every_dependency_is_pinned():
    for name in ("requirements.txt", "requirements-test.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line), f"{name}: {line!r} is not pinned"
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text().splitlines()


def test_procfile_and_render_start_the_same_server_on_a_disk():
    procfile = (ROOT / "Procfile").read_text().strip()
    service = yaml.safe_load((ROOT / "render.yaml").read_text())["services"][0]
    assert procfile == "web: " + service["startCommand"]
    env = {item["key"]: item.get("value") for item in service["envVars"]}
    assert env["DATA_DIR"] == service["disk"]["mountPath"]
    assert service["healthCheckPath"] == "/health"


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    for name in config.from_environ({}):
        assert f"`{name}`" in readme, name
