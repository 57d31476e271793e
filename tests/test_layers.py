"""The layers import one way: hunyuan_core on the ground; runner, web, ops and CLI above it.

The import tests run in fresh interpreters, so what they see in sys.modules is what
importing those packages really pulls in, not what other tests loaded before.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEB = ("flask", "werkzeug", "flask_smorest", "marshmallow", "webargs", "apispec")
MODEL = ("torch", "diffusers", "transformers")


def _files(package):
    """Every Python file of a package folder, sub-packages included."""
    return sorted((ROOT / package).rglob("*.py"))


def _module_name(path):
    """`runner/guard.py` -> `runner.guard`; `hunyuan_cli/ops/__init__.py` -> `hunyuan_cli.ops`."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _importable(package):
    """The modules of a package that can be imported without running anything (not `__main__`)."""
    return [_module_name(path) for path in _files(package) if path.name != "__main__.py"]


def _imports(path):
    """The absolute names of every module a file imports, at the top or inside functions."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names.add(base)
            # `from . import x` may name a module: count `package.x` as imported too.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _top(name):
    return name.split(".")[0]


def _modules_loaded_by(modules):
    """Import `modules` in a fresh interpreter and return the top-level names in its sys.modules."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_runner_and_ops_load_no_web_stack():
    modules = _importable("runner") + _importable("hunyuan_cli/ops")
    assert "runner.guard" in modules and "hunyuan_cli.ops.main" in modules
    loaded = _modules_loaded_by(modules)
    assert not loaded & set(WEB), sorted(loaded & set(WEB))
    assert "hunyuan_api" not in loaded


def test_the_core_loads_neither_web_stack_nor_model_code():
    modules = _importable("hunyuan_core")
    assert "hunyuan_core.job_store" in modules and "hunyuan_core.supervisor" in modules
    loaded = _modules_loaded_by(modules)
    assert not loaded & set(WEB + MODEL), sorted(loaded & set(WEB + MODEL))
    assert not loaded & {"hunyuan_api", "runner", "hunyuan_cli"}


@pytest.mark.parametrize("path", _files("hunyuan_core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_core_module_imports_upward_or_heavy(path):
    # Static, so imports inside functions (done late, never at import time) are caught too.
    upward = {name for name in _imports(path)
              if _top(name) in ("hunyuan_api", "runner", "hunyuan_cli") + WEB + MODEL}
    assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}"


@pytest.mark.parametrize("path", _files("runner") + _files("hunyuan_cli"), ids=lambda p: str(p.relative_to(ROOT)))
def test_runner_and_cli_never_import_the_web_package(path):
    web = {name for name in _imports(path) if _top(name) == "hunyuan_api" or _top(name) in WEB}
    assert not web, f"{path.relative_to(ROOT)} imports {sorted(web)}"


def test_the_client_command_stands_on_the_standard_library_alone():
    # hunyuan-video (hunyuan_cli/main.py) and every hunyuan_cli module it reaches, ops excluded.
    seen, todo = set(), ["hunyuan_cli.main"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = ROOT / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT / name.replace(".", "/") / "__init__.py"
        if not path.exists():
            continue  # `from . import NAME` where NAME is a constant, not a module
        for imported in _imports(path):
            if _top(imported) == "hunyuan_cli":
                todo.append(imported)
            else:
                assert _top(imported) in sys.stdlib_module_names, f"{name} imports {imported}"
    assert "hunyuan_cli.client" in seen and not any(name.startswith("hunyuan_cli.ops") for name in seen)
    code = ("import sys; before = set(sys.modules); import hunyuan_cli.main; "
            "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert set(loaded.stdout.split()) - set(sys.stdlib_module_names) == {"hunyuan_cli"}


@pytest.mark.parametrize("path", _files("hunyuan_api"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_web_face_never_imports_model_code_or_the_runner(path):
    heavy = {name for name in _imports(path) if _top(name) in MODEL + ("runner",)}
    assert not heavy, f"{path.relative_to(ROOT)} imports {sorted(heavy)}"


def test_the_core_services_run_without_the_web_stack(tmp_path):
    # What a second face (an OpenAI-style endpoint, a queue consumer) does: submit, find, cancel, all without Flask.
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text("{}")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from hunyuan_core import errors, jobs\n"
        "from hunyuan_core.job_store import JobStore\n"
        "from hunyuan_core.model_source import ModelSource\n"
        "from hunyuan_core.submission import Submitter\n"
        f"store = JobStore({str(tmp_path / 'data')!r})\n"
        f"submitter = Submitter(store, ModelSource(Path({str(model)!r}), embedded=False), None, max_queue=1)\n"
        "job = submitter.submit({'prompt': 'a cat'}, owner='alice', idempotency_key='k').job\n"
        "assert jobs.find_job(store, job['job_id'], jobs.Access('alice', every=False)) == job\n"
        "try:\n"
        "    submitter.submit({'prompt': 'a dog'})\n"
        "except errors.QueueFull as exc:\n"
        "    assert exc.status_code == 429\n"
        "else:\n"
        "    raise AssertionError('a full queue was not refused')\n"
        "jobs.cancel(store, job['job_id'], jobs.EVERYONE)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "hunyuan_core" in loaded and not loaded & set(WEB + MODEL + ("hunyuan_api", "runner"))
