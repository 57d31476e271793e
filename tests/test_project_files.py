"""The set-up files agree with each other, with the README and with docs/."""

import re

import yaml

from hunyuan_core import config

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


def test_the_configuration_page_documents_every_setting():
    page = (ROOT / "docs" / "configuration.md").read_text()
    for name in config.from_environ({}):
        assert f"`{name}`" in page, name


def test_readme_stays_short_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), target
