"""The HTTP endpoints, one module (and blueprint) per resource.

`jobs` submit, status, list, delete · `control` cancel · `events` live progress
(Server-Sent Events) · `logs` a job's runner log · `files` videos and posters ·
`service` index, health, info · `metrics` Prometheus · `pages` the /ui playground
and the API docs' scripts. Views call hunyuan_core's services and let its errors
propagate to the one handler in api.py.
"""
