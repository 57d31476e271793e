"""WSGI entry point: `gunicorn -c python:hunyuan_api.gunicorn_conf wsgi:app`."""

from hunyuan_api import create_app

app = create_app()
