"""The core that the web service, the runner and the ops commands share.

It holds the job record and its schema check, the job store and its locks,
process identity and the one alive/ended rule, the model description, the
parameters, the cost model and estimates, the supervisor and its housekeeping,
the service settings, and the operations every face calls: submitting a job
(`submission`), finding, canceling and deleting one for a caller (`jobs`), with
the errors they raise (`errors`), which each face renders its own way.

Import rule: the core is the ground floor. It imports neither Flask (nor
werkzeug, flask-smorest, marshmallow) nor torch, diffusers or transformers,
and nothing from `hunyuan_api`, `runner` or `hunyuan_cli`; those stand on it
(tests/test_layers.py checks this).
"""

from pathlib import Path

__version__ = "1.0.0"

# The folder holding the `runner` package: the working directory of the subprocesses the
# core starts (`python -m runner ...`, `python -m runner.tiny_model`), so they find it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
