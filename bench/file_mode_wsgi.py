"""Bench only: the single-host service whose work process is a test fixture, for bench/cluster_scale.py.

    gunicorn -c python:hunyuan_api.gunicorn_conf bench.file_mode_wsgi:app

The same app as wsgi.py (settings from the environment, embedded job files and supervisor),
except that each job's work process is BENCH_WORK_FIXTURE, a script in tests/fixtures/runners
(default: sleeps_then_completes.py, which sleeps for the seconds its prompt names). The service
itself has no setting that changes its work process, on purpose: this file is the bench's own
entry point, never the Procfile's, and only accepts a fixture of the test suite by name.
"""

import os
import sys
from pathlib import Path

from hunyuan_api import create_app

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "runners"
fixture = FIXTURES / (os.path.basename(os.environ.get("BENCH_WORK_FIXTURE", "sleeps_then_completes")) + ".py")
if not fixture.is_file():
    raise SystemExit(f"BENCH_WORK_FIXTURE: no fixture {fixture.name} in {FIXTURES}")

# create_app reads the environment itself only without a config; give it the environment explicitly.
app = create_app({"ENVIRON": dict(os.environ), "WORK_COMMAND": [sys.executable, str(fixture)]})
