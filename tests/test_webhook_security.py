"""Webhooks as an attacker would use them: internal addresses in every spelling, DNS that changes
its answer, redirects, proxies, error text as a port scanner, and receivers that never finish."""

import json
import selectors
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

from hunyuan_core import config, webhook_client, webhook_guard, webhooks
from hunyuan_core.job_record import new_job, new_job_id

from .conftest import SMALL_REQUEST, fixture_runner, make_app, wait_for
from .server import GunicornServer, kill_all_runners
from .webhook_receiver import WebhookReceiver

SECRET = "test-secret"
LOOPBACK_ALLOWED = "127.0.0.0/8,::1/128"

# Loopback, however it is written (each one is 127.0.0.1 to the resolver).
LOOPBACK_SPELLINGS = ["127.0.0.1", "0x7f000001", "2130706433", "0177.0.0.1", "127.1", "017700000001", "0x7f.1",
                      "localhost", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]"]
OTHER_INTERNAL = [
    "169.254.169.254",  # cloud metadata (link-local)
    "10.0.0.1", "172.16.0.1", "192.168.1.1",  # private
    "100.64.0.1",  # CGNAT
    "224.0.0.1", "[ff02::1]",  # multicast
    "0.0.0.0", "[::]",  # unspecified (Linux connects those to loopback)
    "240.0.0.1", "255.255.255.255",  # reserved, broadcast
    "[::1]", "[fe80::1]", "[fc00::1]",  # IPv6 loopback, link-local, unique local
    "[2002:7f00:1::]", "[2001:0:4136:e378:8000:63bf:80ff:fffe]", "[64:ff9b::7f00:1]",  # 6to4, Teredo, NAT64
    "[::127.0.0.1]",  # IPv4-compatible IPv6
]


class Listener:
    """A listening socket on loopback that no webhook may ever reach: connections wait in its backlog."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def was_connected(self):
        """True if anything has connected (a connection, even one already closed, stays to be accepted)."""
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True


def finished_job(store, url, status="completed"):
    """A finished job with a webhook due now, written straight to the store (as an older version
    of the service, or a submission under other settings, would have left it)."""
    job = new_job(new_job_id(), {"prompt": "x"}, dict(SMALL_REQUEST, seed=1), [], {})
    job.update(status=status, finished_at=job["created_at"], webhook=webhooks.new_delivery(url))
    store.create(job)
    return job["job_id"]


def sending_app(data_dir, running, **environ):
    """An app whose supervisor ticks for real (and so sends webhooks); stopped by the `running` fixture."""
    environ.setdefault("SUPERVISOR_POLL_INTERVAL", "0.1")
    environ.setdefault("WEBHOOK_RETRY_SECONDS", "0.1")
    app = make_app(data_dir, WORK_COMMAND=fixture_runner("sleeps_then_completes"), SUPERVISOR_AUTOSTART=True,
                   ENVIRON={k: str(v) for k, v in environ.items()})
    running.append(app)
    return app


@pytest.fixture
def running():
    apps = []
    yield apps
    for app in apps:
        app.extensions["hunyuan_api"].supervisor.stop()


def given_up(store, job_id, timeout=20):
    return wait_for(lambda: (hook := store.get(job_id)["webhook"])["gave_up_at"] and hook, timeout,
                    message="the webhook to be given up")


# -- submission -------------------------------------------------------------------


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + OTHER_INTERNAL)
def test_internal_webhook_hosts_are_refused_at_submission(client, host):
    response = client.post("/api/generate", json=dict(SMALL_REQUEST, webhook_url=f"http://{host}:8080/latest/x"))
    assert response.status_code == 422, response.json
    assert response.json["detail"].startswith("Invalid request: webhook_url: ")


def test_the_refusal_says_why_and_names_no_internal_detail(client):
    response = client.post("/api/generate", json=dict(SMALL_REQUEST, webhook_url="http://0x7f000001/"))
    detail = response.json["detail"]
    assert response.status_code == 422 and "webhook_url" in detail and "public internet address" in detail
    assert "127.0.0.1" not in detail  # what an internal name resolves to is not told
    unknown = client.post("/api/generate", json=dict(SMALL_REQUEST, webhook_url="http://nonexistent.invalid/"))
    assert unknown.status_code == 422 and unknown.json["detail"] == detail.replace("0x7f000001", "nonexistent.invalid")


@pytest.mark.parametrize("url", ["http://93.184.216.34/hook", "https://93.184.216.34:8443/x?y=1",
                                 "https://[2606:4700::1111]/hook"])
def test_public_webhook_addresses_are_accepted(client, url):
    response = client.post("/api/generate", json=dict(SMALL_REQUEST, webhook_url=url))
    assert response.status_code == 200, response.json


def test_an_operator_allows_internal_networks_explicitly(data_dir):
    client = make_app(data_dir, ENVIRON={"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8, ::1, 10.1.0.0/16"}).test_client()
    for url in ("http://0x7f000001:9/hook", "http://localhost:9/", "http://[::ffff:7f00:1]/", "http://10.1.2.3/"):
        assert client.post("/api/generate", json=dict(SMALL_REQUEST, webhook_url=url)).status_code == 200
    for url in ("http://10.2.0.1/", "http://169.254.169.254/", "http://0.0.0.0/", "http://[::2]/"):
        assert client.post("/api/generate", json=dict(SMALL_REQUEST, webhook_url=url)).status_code == 422, url


def test_a_malformed_allowlist_stops_the_server_naming_the_setting():
    with pytest.raises(ValueError, match="WEBHOOK_ALLOWED_NETWORKS.*'intranet'"):
        config.from_environ({"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,intranet"})
    assert config.from_environ({})["WEBHOOK_ALLOWED_NETWORKS"] == ()


# -- connection time --------------------------------------------------------------


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + OTHER_INTERNAL)
def test_every_spelling_is_refused_again_when_connecting(host):
    with Listener() as listener:
        status, outcome, reason = webhook_client.post(f"http://{host}:{listener.port}/hook", b"{}", {}, 2)
        assert (status, outcome) == (None, "failed: address not allowed"), reason
        assert not listener.was_connected()
    with pytest.raises(webhook_guard.AddressNotAllowed):
        webhook_guard.resolve(host.strip("[]"), 80)


def test_a_url_accepted_earlier_that_now_resolves_to_loopback_is_not_connected_to(data_dir, store, running):
    # Submitted while loopback was allowed (as a name whose DNS answer later turns internal would be);
    # canceled at once, so its webhook is due with no render at all. The sender runs without the allowlist.
    with Listener() as listener:
        submitting = make_app(data_dir, ENVIRON={"WEBHOOK_ALLOWED_NETWORKS": LOOPBACK_ALLOWED}).test_client()
        answer = submitting.post("/api/generate", json=dict(SMALL_REQUEST, webhook_url=f"http://localhost:{listener.port}/"))
        job_id = answer.json["job_id"]
        assert submitting.post(f"/api/jobs/{job_id}/cancel").status_code == 200
        app = sending_app(data_dir, running, WEBHOOK_MAX_ATTEMPTS=2)
        hook = given_up(store, job_id)
        assert hook["attempts"] == 2 and hook["last_error"] == "failed: address not allowed"
        assert not listener.was_connected()
        assert app.test_client().get(f"/api/status/{job_id}").json["webhook"]["last_error"] == hook["last_error"]


@pytest.mark.parametrize("target", ["ftp://127.0.0.1:{port}/x", "http://127.0.0.1:{port}/x", "http://localhost:{port}/"])
def test_redirects_are_never_followed(data_dir, store, running, target):
    with Listener() as listener:
        location = target.format(port=listener.port)
        with WebhookReceiver(SECRET, answer=(302, {"Location": location}, b"")) as receiver:
            # Loopback is allowed here, so only "redirects are not followed" keeps the sender off the listener.
            sending_app(data_dir, running, WEBHOOK_ALLOWED_NETWORKS=LOOPBACK_ALLOWED, WEBHOOK_MAX_ATTEMPTS=1,
                        WEBHOOK_TIMEOUT=2)
            job_id = finished_job(store, receiver.url)
            hook = given_up(store, job_id)
            assert len(receiver.requests) == 1
        assert hook["last_error"] == "failed: receiver answered 3xx (redirects are not followed)"
        time.sleep(0.2)
        assert not listener.was_connected()


def test_on_real_gunicorn_a_webhook_fired_by_cancel_reaches_only_allowed_hosts_and_no_proxy(data_dir):
    # The attack needs no render: submit, cancel at once, and the webhook fires. Proxy variables are set
    # in the server's environment (a sender that honoured them would connect to `proxy`).
    with Listener() as proxy, WebhookReceiver(SECRET) as receiver:
        proxies = {name: f"http://127.0.0.1:{proxy.port}"
                   for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")}
        with GunicornServer(data_dir, workers=2, WEBHOOK_SECRET=SECRET, WEBHOOK_ALLOWED_NETWORKS=LOOPBACK_ALLOWED,
                            SUPERVISOR_POLL_INTERVAL="0.2", MIN_FREE_DISK_MB="1", NO_PROXY="", no_proxy="",
                            **proxies) as server:
            try:
                for internal in ("http://169.254.169.254/latest/meta-data/", "http://0x0a000001/", "http://[fd00::1]/"):
                    refused = server.post("/api/generate", json=dict(SMALL_REQUEST, webhook_url=internal))
                    assert refused.status_code == 422 and "webhook_url" in refused.json()["detail"], internal
                url = receiver.url.replace("127.0.0.1", "localhost")
                job_id = server.post("/api/generate", json=dict(SMALL_REQUEST, webhook_url=url)).json()["job_id"]
                assert server.post(f"/api/jobs/{job_id}/cancel").status_code == 200
                wait_for(receiver.delivered, 30, message="the webhook")
                hook = wait_for(lambda: server.get(f"/api/status/{job_id}").json()["webhook"], 10)
            finally:
                kill_all_runners(data_dir)
        time.sleep(0.5)
        assert len(receiver.requests) == 1 and hook["attempts"] == 1 and hook["last_error"] is None
        headers, body, _ = receiver.requests[0]
        # Sent to the address that was vetted, under the name it was given.
        assert headers["Host"] == f"localhost:{receiver.server.server_port}"
        assert receiver.signature_ok(headers, body) and json.loads(body)["status"] == "canceled"
        assert not proxy.was_connected()


# -- what the status tells ------------------------------------------------------------


@pytest.mark.parametrize("answer, outcome", [
    ((401, {"WWW-Authenticate": "Basic realm=admin"}, b"secret admin console"), "failed: receiver answered 4xx"),
    ((503, {}, b"Traceback: secret internal stack"), "failed: receiver answered 5xx"),
    ((308, {"Location": "http://127.0.0.1:1/"}, b"secret"), "failed: receiver answered 3xx (redirects are not followed)"),
])
def test_the_status_shows_a_coarse_outcome_never_the_receivers_words(data_dir, store, running, answer, outcome):
    with WebhookReceiver(SECRET, answer=answer) as receiver:
        app = sending_app(data_dir, running, WEBHOOK_ALLOWED_NETWORKS=LOOPBACK_ALLOWED, WEBHOOK_MAX_ATTEMPTS=1)
        job_id = finished_job(store, receiver.url)
        given_up(store, job_id)
    status = app.test_client().get(f"/api/status/{job_id}").json
    assert status["webhook"]["last_error"] == outcome and "secret" not in json.dumps(status)


def test_network_errors_are_coarse_too(data_dir, store, running):
    with Listener() as closed:
        port = closed.port
    app = sending_app(data_dir, running, WEBHOOK_ALLOWED_NETWORKS=LOOPBACK_ALLOWED, WEBHOOK_MAX_ATTEMPTS=1)
    job_id = finished_job(store, f"http://127.0.0.1:{port}/hook")  # nothing listens there now
    given_up(store, job_id)
    assert app.test_client().get(f"/api/status/{job_id}").json["webhook"]["last_error"] == "failed: could not connect"


class OneShotServer:
    """A loopback server that treats each connection with `handle(conn)` on its own thread."""

    def __init__(self, handle):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            try:
                self.handle(conn)
            except OSError:
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()


def _reset(conn):
    conn.recv(65536)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def _silent(conn):
    conn.recv(65536)
    time.sleep(2)


def _garbage(conn):
    conn.recv(65536)
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\nsecret banner\r\n\r\n")


def _interim_then_final(conn):
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")


def _bare_newlines(conn):
    conn.recv(65536)
    conn.sendall(b"HTTP/1.0 202 Accepted\nServer: tiny\n\n")


@pytest.mark.parametrize("handle, expected", [
    (_reset, (None, "failed: could not connect")),
    (_silent, (None, "failed: timed out")),
    (_garbage, (None, "failed: the receiver's answer was not HTTP")),
    (_interim_then_final, (204, None)),
    (_bare_newlines, (202, None)),
])
def test_each_failure_maps_to_one_coarse_sentence(handle, expected):
    with OneShotServer(handle) as server:
        status, outcome, reason = webhook_client.post(f"http://127.0.0.1:{server.port}/", b"{}", {}, 0.5,
                                                      webhook_guard.parse_networks("test", "127.0.0.0/8"))
    assert (status, outcome) == expected, reason
    assert outcome is None or "secret" not in outcome


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command to make a certificate")
def test_https_checks_the_certificate_for_the_host_name_sent_as_sni(tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    names = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)

    def handshake(conn):
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(65536)

    with OneShotServer(handshake) as server:
        status, outcome, reason = webhook_client.post(f"https://localhost:{server.port}/", b"{}", {}, 3,
                                                      webhook_guard.parse_networks("test", LOOPBACK_ALLOWED))
    assert (status, outcome) == (None, "failed: could not connect") and "CERTIFICATE_VERIFY_FAILED" in reason
    assert names == ["localhost"]  # connected to the vetted address, but SNI names the host


# -- bounded attempts -------------------------------------------------------------------


class TrickleReceiver:
    """Answers every request with a status line, then one header byte every `interval` seconds, forever.

    One thread serves all connections (selectors), so the test's thread count is the sender's.
    Counts connections in all and the most open at once.
    """

    def __init__(self, interval=0.5):
        self.interval = interval
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.sock.setblocking(False)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.connections = 0
        self.most_open = 0
        self._open = set()
        self._answered = set()  # connections that got their status line: only those are trickled to
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ)
        next_byte = time.monotonic()
        while not self._stop.is_set():
            events = selector.select(timeout=0.05)
            # Closed connections first, so one replaced at once by a new one is never counted twice.
            for key, _ in sorted(events, key=lambda event: event[0].fileobj is self.sock):
                if key.fileobj is self.sock:
                    conn, _ = self.sock.accept()
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ)
                    self.connections += 1
                    self._open.add(conn)
                    self.most_open = max(self.most_open, len(self._open))
                    continue
                conn = key.fileobj
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(conn)
                    self._open.discard(conn)
                    self._answered.discard(conn)
                    conn.close()
                elif conn not in self._answered:  # the request has begun: answer its status line at once
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    self._answered.add(conn)
            if time.monotonic() >= next_byte:
                next_byte = time.monotonic() + self.interval
                for conn in list(self._answered):
                    try:
                        conn.send(b"X")
                    except OSError:
                        pass
        for conn in self._open:
            conn.close()
        self.sock.close()

    def open_now(self):
        return len(self._open)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(5)


def test_a_trickling_receiver_gets_at_most_max_attempts_from_a_fixed_pool_of_threads(data_dir, store, running):
    jobs = 4
    with TrickleReceiver(interval=0.5) as receiver:
        app = sending_app(data_dir, running, WEBHOOK_ALLOWED_NETWORKS=LOOPBACK_ALLOWED, WEBHOOK_MAX_ATTEMPTS=2,
                          WEBHOOK_TIMEOUT=1, WEBHOOK_THREADS=2)
        sender = app.extensions["hunyuan_api"].supervisor.housekeeping.sender
        time.sleep(0.3)  # the supervisor's own threads are up
        baseline = threading.active_count()
        job_ids = [finished_job(store, receiver.url) for _ in range(jobs)]
        most_threads = 0

        def all_given_up():
            nonlocal most_threads
            most_threads = max(most_threads, threading.active_count())
            return all(store.get(job_id)["webhook"]["gave_up_at"] for job_id in job_ids)

        began = time.monotonic()
        wait_for(all_given_up, 30, interval=0.05, message="every webhook given up")
        took = time.monotonic() - began
        hooks = [store.get(job_id)["webhook"] for job_id in job_ids]
        assert [hook["attempts"] for hook in hooks] == [2] * jobs
        assert {hook["last_error"] for hook in hooks} == {"failed: timed out"}
        assert receiver.connections == 2 * jobs  # one connection per attempt, no more
        assert receiver.most_open <= 2  # never more connections than delivery threads
        assert most_threads <= baseline + 2 and len(sender.delivery_threads()) <= 2
        # 8 attempts of 1 s each, two at a time: each attempt ended at its deadline, not at the trickle's end.
        assert took < 4 * 1 * 2 + 5
        for _ in range(10):
            app.extensions["hunyuan_api"].supervisor.tick()
        time.sleep(0.3)
        assert receiver.connections == 2 * jobs and receiver.open_now() == 0


def test_a_claimed_attempt_whose_sender_died_after_the_last_one_is_given_up_not_retried(data_dir, store):
    # The lease of the last attempt ran out with no outcome recorded (its process was killed mid-send).
    job_id = finished_job(store, "http://127.0.0.1:9/hook")

    def last_attempt_claimed_long_ago(job):
        job["webhook"].update(attempts=2, sending_until="2000-01-01T00:00:00.000+00:00")

    store.update(job_id, last_attempt_claimed_long_ago)
    sender = webhooks.WebhookSender(store, lambda job: {}, max_attempts=2)
    assert sender.send_due(job_id)
    wait_for(lambda: store.get(job_id)["webhook"]["gave_up_at"], 5, message="given up")
    hook = store.get(job_id)["webhook"]
    assert hook["attempts"] == 2 and hook["last_error"] == "failed: the attempt did not finish"
