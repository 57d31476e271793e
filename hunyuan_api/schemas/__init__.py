"""Request and response schemas, one module per resource: they validate input and document the API (OpenAPI).

`submission` the body and answer of POST /api/generate; `jobs` a job's status, the
list, delete and the log's query; `service` /health. `common` holds what they share.
"""
