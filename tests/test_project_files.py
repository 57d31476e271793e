"""The set-up files agree with each other, with the README and with docs/."""

import configparser
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


def procfile():
    """The Procfile's process types and their commands."""
    lines = (ROOT / "Procfile").read_text().strip().splitlines()
    return dict(line.split(": ", 1) for line in lines)


def test_procfile_and_render_start_the_same_server_on_a_disk():
    service = yaml.safe_load((ROOT / "render.yaml").read_text())["services"][0]
    assert list(procfile()) == ["web", "worker"]
    assert procfile()["web"] == service["startCommand"]
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


def test_the_worker_command_is_installed_under_the_procfile_name():
    scripts = configparser.ConfigParser()
    scripts.read(ROOT / "setup.cfg")
    entry_points = scripts["options.entry_points"]["console_scripts"]
    assert f"{procfile()['worker']} = runner.worker_host:main" in entry_points.splitlines()


def test_the_scale_out_blueprint_wires_every_host_to_the_same_redis_and_artifact_store():
    blueprint = yaml.safe_load((ROOT / "deploy" / "render-scale-out.yaml").read_text())
    services = {service["type"]: [] for service in blueprint["services"]}
    for service in blueprint["services"]:
        services[service["type"]].append(service)
    (store,) = services["keyvalue"]
    # Queue and job records must never be evicted, and the store is reachable only from the private network.
    assert store["maxmemoryPolicy"] == "noeviction" and store["ipAllowList"] == []
    groups = {group["name"]: group["envVars"] for group in blueprint.get("envVarGroups", [])}
    (web,) = services["web"]
    assert web["startCommand"] == procfile()["web"] and "disk" not in web  # stateless, so it can scale out
    assert len(services["worker"]) >= 2
    for service in [web, *services["worker"]]:
        env = {}
        for item in service["envVars"]:
            for grouped in groups.get(item.get("fromGroup"), [item]):
                env[grouped["key"]] = grouped
        assert env["REDIS_URL"]["fromService"] == {"type": "keyvalue", "name": store["name"],
                                                   "property": "connectionString"}, service["name"]
        assert env["ARTIFACTS_URL"] == {"key": "ARTIFACTS_URL", "sync": False}, service["name"]
        for secret in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[secret].get("sync") is False and "value" not in env[secret], (service["name"], secret)
    for worker in services["worker"]:
        assert worker["startCommand"] == procfile()["worker"]
        env = {item["key"]: item.get("value") for item in worker["envVars"] if "key" in item}
        assert env["DATA_DIR"] == worker["disk"]["mountPath"]
