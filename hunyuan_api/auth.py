"""API keys: with API_KEY set, /api/*, /v1/* and /metrics need `Authorization: Bearer <key>` or `X-API-Key: <key>`.

Everything a person opens in a browser before having a key stays open: `/`,
`/health`, the docs and their assets, and the web UI under `/ui` (which asks for
the key itself). Keys are compared with hmac.compare_digest, so the time an
answer takes says nothing about how much of a guess was right. Without API_KEY
nothing changes. The OpenAPI document declares both ways of sending the key,
so the "Authorize" button of Swagger UI works.

Keys have names (`API_KEY=alice:key1,bob:key2`; a plain key is named by a short
digest of it). A job records the name of the key that created it (`owner`), and a
key sees and acts on its own jobs only, unless ADMIN_API_KEYS names it: another
key's job answers exactly as an unknown one, so job ids cannot be probed.
"""

import hmac
import logging

from apispec import BasePlugin
from flask import current_app, g, request
from flask_smorest import abort

from hunyuan_core.jobs import Access

API_KEY_HEADER = "X-API-Key"
SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API_KEY>"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER, "description": "X-API-Key: <API_KEY>"},
}
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
_PROTECTED_PREFIXES = ("/api/", "/v1/", "/metrics")


def is_protected(path):
    """True for the paths that need a key when one is configured (/v1/*: the OpenAI-compatible face)."""
    return path in ("/api", "/v1") or path.startswith(_PROTECTED_PREFIXES)


def presented_key():
    """The key the request carries (Bearer token first, then X-API-Key), or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get(API_KEY_HEADER) or None


def key_is_valid(presented, keys):
    """True if `presented` equals one of `keys`; every key is compared, in constant time each."""
    given = presented.encode("utf-8")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode("utf-8"))
    return matched


def key_name(presented, keys):
    """The name of the key in `keys` ({name: key}) that equals `presented`, or None; every key is compared."""
    given = presented.encode("utf-8")
    found = None
    for name, key in keys.items():
        if hmac.compare_digest(given, key.encode("utf-8")):
            found = name
    return found


def request_key_name():
    """The name of the key this request was let in with (None when no keys are configured)."""
    return g.get("api_key_name")


def sees_every_job():
    """True when this request may see and act on every job: no keys are configured, or its key is an admin's."""
    config = current_app.config
    if not config.get("API_KEY"):
        return True
    return request_key_name() in config.get("ADMIN_API_KEYS", ())


def access():
    """Who this request is, as the core's job services take it (hunyuan_core/jobs.py)."""
    return Access(owner=request_key_name(), every=sees_every_job())


def may_see(job):
    """True when this request may see and act on `job`; None stands for a job whose owner cannot be read."""
    return access().may_see(job)


def _check():
    keys = current_app.config.get("API_KEY")
    # CORS preflights carry no credentials by design; they reach no view anyway.
    if not keys or request.method == "OPTIONS" or not is_protected(request.path):
        return None
    presented = presented_key()
    if presented is None:
        abort(401, message="Missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
              headers={"WWW-Authenticate": "Bearer"})
    name = key_name(presented, keys)
    if name is None:
        abort(401, message="Invalid API key", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    g.api_key_name = name
    return None


class _SecurityPlugin(BasePlugin):
    """Marks every protected operation in the OpenAPI document as needing one of the schemes."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        """Add `security` and a 401 answer to the operations of protected paths."""
        if not path or not is_protected(path) or not operations:
            return
        for method, operation in operations.items():
            if method not in _METHODS:
                continue  # e.g. the path-level "parameters" list
            operation.setdefault("security", [{name: []} for name in SCHEMES])
            operation.setdefault("responses", {}).setdefault(
                "401", {"description": "Missing or invalid API key (API_KEY is set)"}
            )


def install(app, api):
    """Hook the key check into `app` and, when API_KEY is set, declare it in `api`'s OpenAPI document.

    Call before the blueprints are registered, so their operations pass the plugin.
    """
    app.before_request(_check)
    keys, admins = app.config.get("API_KEY"), app.config.get("ADMIN_API_KEYS", ())
    if keys:
        logging.getLogger(__name__).info("API keys: %s; seeing every job: %s", ", ".join(keys),
                                         ", ".join(sorted(admins)) or "none (each key sees its own jobs)")
    else:
        logging.getLogger(__name__).warning("API_KEY is not set: every /api route is open to anyone who can "
                                            "reach this port")
    if keys:
        for name, scheme in SCHEMES.items():
            api.spec.components.security_scheme(name, scheme)
        plugin = _SecurityPlugin()
        plugin.init_spec(api.spec)
        api.spec.plugins.append(plugin)
