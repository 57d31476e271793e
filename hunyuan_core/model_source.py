"""Which model folder the service generates with, and whether it is ready.

A model folder (from `MODEL_PATH` or a `MODELS` entry, see catalog.py) is used as it
is. An embedded demo model is built by the service itself (offline, in a
subprocess, since the web process never imports torch) into the data folder:
`runner.tiny_model` for the 13B text-to-video demo, `runner.demo_models` for the others.
"""

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from . import PROJECT_ROOT

EMBEDDED_MODEL_NAME = "tiny-random-hunyuanvideo-v2"
DEFAULT_DEMO = "demo-hunyuanvideo"
METADATA_FILE = "hunyuan_api_model.json"  # written by the service beside the diffusers files
BUILD_ERROR_FILE = "build-error.txt"
# After a failed build, wait this long before trying again rather than spinning.
BUILD_RETRY_SECONDS = 60
NOT_READY_DETAIL = "Model not initialized yet. Please try again in a few moments."


@dataclass(frozen=True)
class ModelSource:
    """A model folder and how the service came to use it."""

    path: Path
    embedded: bool
    # The embedded demo's name (runner/demo_models.py); None for the 13B text-to-video demo and for folders.
    demo: str = None
    # The setting that names a folder, for messages ("MODEL_PATH", "MODELS").
    setting: str = "MODEL_PATH"

    @property
    def name(self):
        """A short name for messages and statistics."""
        if self.embedded and self.demo not in (None, DEFAULT_DEMO):
            return self.path.name
        return EMBEDDED_MODEL_NAME if self.embedded else self.path.name


def resolve(model_path, data_dir):
    """The model the service uses: `model_path` if given, else the embedded demo model."""
    if model_path:
        return ModelSource(Path(model_path).expanduser().resolve(), embedded=False)
    return ModelSource(Path(data_dir).resolve() / "models" / EMBEDDED_MODEL_NAME, embedded=True)


def read_metadata(path):
    """The service's metadata file in a model folder, or {} if there is none."""
    try:
        return json.loads((Path(path) / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return {}


def describe(source, reveal_paths=True):
    """The model's state for `/health`, `/api/info` and job records.

    `ready` says whether a runner could load it now; when it cannot, `problem`
    says why in words an operator can act on. With `reveal_paths=False` (for
    `/health`, which is open without a key) there is no `path`, and `problem`
    names the setting rather than the folder, and never quotes a build error
    (which may hold paths): the full sentence is on the key-protected /api/info.
    """
    metadata = read_metadata(source.path)
    info = {
        "name": metadata.get("name", source.name),
        "path": str(source.path),
        "embedded": source.embedded,
        "demo": bool(metadata.get("demo", source.embedded)),
        "description": metadata.get("description")
        or (
            "Embedded demo model (random weights; its videos are noise), built by the service on first start."
            if source.embedded
            else f"HunyuanVideo weights loaded from {source.setting} with diffusers' HunyuanVideoPipeline."
            if source.setting == "MODEL_PATH"
            else f"HunyuanVideo weights loaded from {source.setting} with the diffusers pipeline its "
            "model_index.json names."
        ),
        "ready": False,
        "problem": None,
    }
    folder = f"{source.setting} {source.path}" if reveal_paths else source.setting
    if source.embedded:
        # The metadata file is written last by the builder, so it marks a complete build.
        if METADATA_FILE in _names(source.path):
            info["ready"] = True
        else:
            error = _build_error(source)
            if error and not reveal_paths:
                error = "see GET /api/info"
            info["problem"] = f"embedded model build failed: {error}" if error else "embedded model is being built"
    elif not source.path.is_dir():
        info["problem"] = f"{folder} does not exist or is not a folder"
    elif not (source.path / "model_index.json").is_file():
        info["problem"] = f"{folder} has no model_index.json: it is not a diffusers-format model"
    else:
        info["ready"] = True
    if not reveal_paths:
        del info["path"]
    return info


def unavailable_detail(info):
    """The error text for a submission while the model described by `info` is not ready."""
    if info["embedded"] and not info["problem"].startswith("embedded model build failed"):
        return NOT_READY_DETAIL  # the API document's words: it is being built, retrying will work
    return f"Model not available: {info['problem']}."


def _names(folder):
    try:
        return {p.name for p in Path(folder).iterdir()}
    except OSError:
        return set()


def _build_error(source):
    try:
        return (source.path.parent / f"{source.path.name}.{BUILD_ERROR_FILE}").read_text().strip()
    except OSError:
        return None


class EmbeddedModelBuilder:
    """Builds the embedded model in a subprocess, once, whichever process asks first."""

    def __init__(self, source, python=sys.executable):
        self.source = source
        self.python = python
        self._lock = FileLock(source.path.parent / f"{source.path.name}.build.lock")
        self._process = None

    def ready(self):
        """True when a runner could load the model now."""
        return describe(self.source)["ready"]

    def not_ready_paths(self):
        """This model's folder while it is not built (what the supervisor asks a builder)."""
        return set() if self.ready() else {str(self.source.path)}

    def _command(self):
        if self.source.demo in (None, DEFAULT_DEMO):
            return [self.python, "-m", "runner.tiny_model", str(self.source.path)]
        return [self.python, "-m", "runner.demo_models", self.source.demo, str(self.source.path)]

    def build_now(self):
        """Build synchronously (used before the server starts); raise if it fails."""
        if not self.source.embedded or self.ready():
            return
        self.source.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self.ready():
                return
            result = subprocess.run(self._command(), capture_output=True, text=True, cwd=PROJECT_ROOT)
            self._record_outcome(result.returncode, result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"building the embedded model failed:\n{result.stderr[-4000:]}")

    def build_in_background(self):
        """Start a build if the model is missing and none is running; never blocks."""
        if self._process is not None and self._process.poll() is None:
            return
        self._process = None
        if not self.source.embedded or self.ready() or self._recently_failed():
            return
        self.source.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return  # another process is building it
        self._lock.release()
        # The child takes the lock itself through build_now, so a rival build waits for it.
        self._process = subprocess.Popen(
            [self.python, "-c",
             "import sys; from hunyuan_core.model_source import _build_cli; _build_cli(sys.argv[1], sys.argv[2])",
             str(self.source.path), self.source.demo or DEFAULT_DEMO],
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _recently_failed(self):
        marker = self.source.path.parent / f"{self.source.path.name}.{BUILD_ERROR_FILE}"
        try:
            return time.time() - marker.stat().st_mtime < BUILD_RETRY_SECONDS
        except OSError:
            return False

    def _record_outcome(self, returncode, stderr):
        marker = self.source.path.parent / f"{self.source.path.name}.{BUILD_ERROR_FILE}"
        if returncode == 0:
            marker.unlink(missing_ok=True)
        else:
            lines = [line for line in stderr.strip().splitlines() if line.strip()]
            marker.write_text((lines[-1] if lines else f"builder exited with code {returncode}") + "\n")


class Builders:
    """The embedded demo models' builders, driven together by the supervisor and gunicorn's start hook."""

    def __init__(self, sources):
        self.builders = [EmbeddedModelBuilder(s) for s in sources if s.embedded]

    def build_now(self):
        """Build every missing demo model, one after another; raise if one fails."""
        for builder in self.builders:
            builder.build_now()

    def build_in_background(self):
        """Start a build of each missing demo model (one subprocess each); never blocks."""
        for builder in self.builders:
            builder.build_in_background()

    def ready(self):
        """True when every demo model is built."""
        return all(builder.ready() for builder in self.builders)

    def not_ready_paths(self):
        """The folders of demo models not built yet: jobs for them wait (others start)."""
        return {str(b.source.path) for b in self.builders if not b.ready()}


def _build_cli(path, demo=DEFAULT_DEMO):
    """Entry point of the background build subprocess."""
    try:
        EmbeddedModelBuilder(ModelSource(Path(path), embedded=True, demo=demo)).build_now()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
