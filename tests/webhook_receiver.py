"""A real HTTP server on loopback that receives webhooks in tests and checks their signatures."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    """Records every POST; answers `fail_first` of them with HTTP 500, the rest with 204.

    With `answer` = (status, headers, body) it answers every POST with that instead
    (a redirect, a 401 with a body that must not reach the job's status).
    """

    def __init__(self, secret, fail_first=0, answer=None):
        self.secret = secret
        self.fail_first = fail_first
        self.answer = answer
        self.requests = []  # (headers, body bytes, answered status)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    status = 500 if len(receiver.requests) < receiver.fail_first else 204
                    status, headers, content = receiver.answer or (status, {}, b"")
                    receiver.requests.append((dict(self.headers), body, status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def signature_ok(self, headers, body):
        """True if the request's signature is HMAC-SHA256 of the exact body under the shared secret."""
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers.get("X-Hunyuan-Signature", ""), expected)

    def delivered(self):
        """The bodies (parsed) of the requests answered with success."""
        with self._lock:
            return [json.loads(body) for _, body, status in self.requests if status < 300]
