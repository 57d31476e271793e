"""Operator commands on a data folder: `hunyuan-ops` or `python -m hunyuan_cli.ops`.

They work on the files directly, with the server stopped or running: reads need
no lock (job files are replaced atomically) and every change goes through
JobStore, under the same file lock as the service.
"""
