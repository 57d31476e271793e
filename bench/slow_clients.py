"""Does /health still answer while slow clients hold connections? Real gunicorn, optionally behind real nginx.

    .venv/bin/python bench/slow_clients.py                 # 32 slow connections per attack
    .venv/bin/python bench/slow_clients.py --clients 64 --no-nginx

For each configuration it starts gunicorn with the service's own settings (2 workers
x 8 threads, on loopback), runs each attack in turn, and while an attack is on makes
10 GET /health requests one after another, 1 s apart, each allowed 3 s. Attacks (all traffic
stays on 127.0.0.1):

- head:   N connections send their request head one byte every 2 s and never finish
          it (slowloris); a connection the server closes is reopened at once.
- body:   N connections send a whole head announcing a 100 kB JSON body, then the
          body one byte every 2 s; reopened the same way.
- close:  N connections send a complete HTTP/1.0 request (so the server closes after
          answering), then never close their side.

Configurations: gunicorn's stock gthread worker (what the service ran before), the
service's worker (hunyuan_api/web_worker.py, default WEB_HEADER_TIMEOUT=10), and each
of them behind nginx running deploy/nginx.conf (if an `nginx` binary is on PATH).
A benchmark, not a test: the figures depend on the machine and its load.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.server import ROOT, GunicornServer, free_port  # noqa: E402
from tests.slow_clients import SlowClients, probe_health, summary  # noqa: E402

NGINX_SITE = ROOT / "deploy" / "nginx.conf"
NGINX_MAIN = """worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/site.conf;
}}
"""


class Nginx:
    """nginx with deploy/nginx.conf (its ports replaced) in front of a gunicorn on loopback."""

    def __init__(self, upstream_port):
        self.dir = Path(tempfile.mkdtemp(prefix="hunyuan-nginx-"))
        self.dir.chmod(0o755)  # nginx's workers (user nobody when started as root) use its temp folders
        self.port = free_port()
        site = NGINX_SITE.read_text()
        for old, new in (("listen 80;", f"listen 127.0.0.1:{self.port};"),
                         ("server 127.0.0.1:10000;", f"server 127.0.0.1:{upstream_port};")):
            assert old in site, f"deploy/nginx.conf no longer has {old!r}"
            site = site.replace(old, new)
        (self.dir / "site.conf").write_text(site)
        (self.dir / "nginx.conf").write_text(NGINX_MAIN.format(dir=self.dir))
        self.process = None

    def start(self):
        """Start nginx in the foreground (our own child) and wait until it answers."""
        self.process = subprocess.Popen(["nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                                         "-g", "daemon off;"], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode()}")
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not answer")

    def stop(self):
        """Stop nginx quickly and remove its folder."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def never_closing(port, count):
    """`count` connections that each send a complete HTTP/1.0 request and then neither read nor close."""
    clients = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        clients.append(sock)
    return clients


def run_attack(kind, port, base_url, clients):
    """Probe /health during one attack; (answered, total, median s, connections the server closed)."""
    if kind == "close":
        sockets = never_closing(port, clients)
        try:
            time.sleep(0.5)
            results = probe_health(base_url)
        finally:
            for sock in sockets:
                sock.close()
        return (*summary(results), "-")
    with SlowClients("127.0.0.1", port, count=clients, reconnect=True, kind=kind) as slow:
        time.sleep(2.5)  # every connection accepted and trickling
        # Probes 1 s apart, so that the attack outlasts a 10 s head deadline and its reconnections.
        results = probe_health(base_url, pause=1.0)
    return (*summary(results), slow.opened - clients)


def wait_healthy(base_url, timeout=60):
    """Wait until /health answers again after an attack (a stock worker frees its threads slowly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(base_url + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{base_url} did not recover within {timeout} s")


def main():
    """Run every configuration against every attack and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="slow connections per attack")
    parser.add_argument("--attacks", default="head,body,close")
    parser.add_argument("--no-nginx", action="store_true", help="skip the configurations behind nginx")
    args = parser.parse_args()
    attacks = args.attacks.split(",")
    with_nginx = not args.no_nginx and shutil.which("nginx")
    configurations = [("gthread (before)", {"GUNICORN_CMD_ARGS": "--worker-class gthread"}, False),
                      ("SlowClientSafeWorker (now)", {}, False)]
    if with_nginx:
        configurations += [("nginx -> gthread", {"GUNICORN_CMD_ARGS": "--worker-class gthread"}, True),
                           ("nginx -> SlowClientSafeWorker", {}, True)]
    data_dir = Path(tempfile.mkdtemp(prefix="hunyuan-bench-")) / "data"
    rows = []
    for name, env, behind_nginx in configurations:
        server = GunicornServer(data_dir, workers=2, WEB_THREADS=8, **env).start(timeout=300)
        proxy = None
        try:
            port, base_url = server.port, server.base_url
            if behind_nginx:
                proxy = Nginx(server.port).start()
                port, base_url = proxy.port, f"http://127.0.0.1:{proxy.port}"
            for kind in attacks:
                answered, total, median, closed = run_attack(kind, port, base_url, args.clients)
                rows.append((name, kind, f"{answered} / {total}",
                             "-" if median is None else f"{median * 1000:.0f} ms", str(closed)))
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
                wait_healthy(base_url)
        finally:
            if proxy:
                proxy.stop()
            server.stop()
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "?")
    print(f"{args.clients} slow connections per attack; 2 gunicorn workers x 8 threads; "
          f"{os.cpu_count()} CPUs ({cpu}); nginx: {'yes' if with_nginx else 'not run'}")
    header = ["configuration", "attack", "/health answered within 3 s", "median latency",
              "attack connections the server closed (attacker reopened)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
