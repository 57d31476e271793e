"""The job runner: one guarded subprocess per job, which loads the model, renders, and exits.

- `python -m runner JOB_ID` (guard.py): the guard, started by the supervisor.
- `python -m runner.render JOB_ID` (render.py): the work process, started by the guard.
- `python -m runner.tiny_model DEST` (tiny_model.py): builds the embedded demo model.
"""
