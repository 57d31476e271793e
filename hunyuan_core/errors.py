"""The errors the service's operations raise, for every face (web API, later others) to render its own way.

Each carries a `kind` (a word a face can map to its own answer), the HTTP-style
`status_code` it stands for (the REST face answers with it; another face may not), a
`detail` sentence shown to the client as is, and `headers` the answer should carry
(Retry-After). Nothing here knows about Flask or HTTP libraries.
"""


class ServiceError(Exception):
    """An operation the service refuses, with what the client is told."""

    kind = "error"
    status_code = 500

    def __init__(self, detail, headers=None):
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})


class BadRequest(ServiceError):
    """The request cannot be taken as it is (a malformed header, an action the job's state forbids)."""

    kind = "bad_request"
    status_code = 400


class NotFound(ServiceError):
    """No such job, or one the caller may not see (the same answer, so ids cannot be probed)."""

    kind = "not_found"
    status_code = 404

    def __init__(self, detail="Job not found", headers=None):
        super().__init__(detail, headers)


class Conflict(ServiceError):
    """The request clashes with what exists (an Idempotency-Key used for another body, a finished job)."""

    kind = "conflict"
    status_code = 409


class QueueFull(ServiceError):
    """MAX_QUEUE jobs are waiting already; Retry-After says when to try again."""

    kind = "queue_full"
    status_code = 429


class Unreadable(ServiceError):
    """A job file exists but cannot be read: the detail names it and how to get rid of it."""

    kind = "unreadable"
    status_code = 500

    def __init__(self, unreadable):
        super().__init__(
            f"Job {unreadable.job_id} exists but its file cannot be read ({unreadable.reason}). "
            f"An operator must repair or delete {unreadable.path}; DELETE /api/jobs/{unreadable.job_id} removes it."
        )
        self.job_id = unreadable.job_id
        self.path = unreadable.path


class Unavailable(ServiceError):
    """The service cannot take this request now; Retry-After says when to try again."""

    kind = "unavailable"
    status_code = 503


class ModelNotReady(Unavailable):
    """The model is still being prepared, or is missing."""

    kind = "model_not_ready"


class InvalidInput(ServiceError):
    """One field of a request holds something the service cannot use (an image that is not one, say).

    For what a request schema cannot check by itself. The detail has the words the
    API uses for every field error ("Invalid request: field: message"), and `field`
    and `message` stay apart so a face can list the error under the field too.
    """

    kind = "invalid_input"
    status_code = 422

    def __init__(self, field, message, headers=None):
        message = message if message.endswith(".") else message + "."
        super().__init__(f"Invalid request: {field}: {message}", headers)
        self.field = field
        self.message = message


class InsufficientStorage(ServiceError):
    """Free disk space in the data folder is below MIN_FREE_DISK_MB."""

    kind = "insufficient_storage"
    status_code = 507
