"""The public load balancer's real config, run by a real HAProxy against stand-in app clusters.

Everything listens on loopback addresses of this machine only; every wait is bounded.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from components.edge import _haproxy

HEALTH_PATH = "/api/books"


def haproxy_binary() -> str | None:
    return shutil.which("haproxy")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class _QuietServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """HAProxy closes health-check connections as soon as it has the status line."""


class StandInCluster:
    """An app cluster's edge: answers GET /api/books with 200 while healthy, 503 when its app or
    database is broken, and nothing at all once stopped."""

    def __init__(self, name: str, address: str, port: int):
        self.name, self.address, self.port = name, address, port
        self.healthy = True
        self.silent = False  # accepts connections, never answers (a wedged app)
        self.failing_requests = False  # users get 500s while its health check still passes
        # The database is out of reach: /api answers 503 (the router's checks take shopapi
        # out), while the website and the shop's pages, which need no database, answer 200.
        self.database_down = False
        self.served = 0  # proxied requests (health checks carry no X-Forwarded-For)
        self.posts = 0
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if cluster.silent:
                    time.sleep(30)
                    return
                proxied = bool(self.headers.get("X-Forwarded-For"))
                if proxied:
                    cluster.served += 1
                status = 200 if cluster.healthy else 503
                if cluster.database_down and self.path.startswith("/api"):
                    status = 503
                if proxied and cluster.failing_requests:
                    status = 500
                body = f'{{"cluster": "{cluster.name}"}}'.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                cluster.posts += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET()

            def log_message(self, *_: object) -> None:
                pass

        self._server: ThreadingHTTPServer | None = None
        self._handler = Handler

    def start(self) -> None:
        self._server = _QuietServer((self.address, self.port), self._handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class LiveProxy:
    """HAProxy running the rendered public config, its state changes collected as they happen."""

    def __init__(self, process: subprocess.Popen, port: int, metrics_port: int = 0):
        self.process, self.port, self.metrics_port = process, port, metrics_port
        self.events: list[tuple[float, str, str]] = []  # (time, server, "UP" | "DOWN")
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        pattern = re.compile(r"Server \S+/(\S+) is (UP|DOWN)")
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip())
            match = pattern.search(line)
            if match:
                self.events.append((time.monotonic(), match.group(1), match.group(2)))

    def get(
        self, path: str = HEALTH_PATH, timeout: float = 5.0, method: str = "GET"
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            body = "{}" if method == "POST" else None
            conn.request(method, path, body=body)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def wait_for_event(self, server: str, state: str, since: float, limit: float) -> float | None:
        """Seconds from `since` until HAProxy marked `server` as `state`, or None after `limit`."""
        deadline = since + limit
        while True:
            for at, name, seen in list(self.events):
                if at >= since and name == server and seen == state:
                    return at - since
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)


def render_for_loopback(
    clusters: Mapping[str, StandInCluster], listen_port: int, metrics_port: int | None = None
) -> str:
    """The production config, with the edges' port 80, the listen port and the exporter's port
    moved to free ports on loopback (the only changes; the test checks that every other line is
    untouched)."""
    metrics_port = metrics_port or free_port()
    config = _haproxy.render_public_lb_config({c.name: c.address for c in clusters.values()})
    lines = []
    for line in config.splitlines():
        server = re.match(r"^(\s*server (\S+) )(\S+):80( .*)$", line)
        if server:
            cluster = clusters[server.group(2)]
            line = f"{server.group(1)}{cluster.address}:{cluster.port}{server.group(4)}"
        elif line.strip() == f"bind :{_haproxy.LISTEN_PORT}":
            line = line.replace(f":{_haproxy.LISTEN_PORT}", f"127.0.0.1:{listen_port}")
        elif line.strip() == f"bind :{_haproxy.METRICS_PORT}":
            line = line.replace(f":{_haproxy.METRICS_PORT}", f"127.0.0.1:{metrics_port}")
        lines.append(line)
    return "\n".join(lines) + "\n"


@contextmanager
def live_fleet(
    names: list[str], workdir: Path
) -> Iterator[tuple[LiveProxy, dict[str, StandInCluster]]]:
    """Stand-in clusters on 127.0.0.2, 127.0.0.3, ... and HAProxy in front of them."""
    binary = haproxy_binary()
    assert binary, "haproxy is not installed"
    port, metrics_port = free_port(), free_port()
    clusters = {
        name: StandInCluster(name, f"127.0.0.{i + 2}", free_port(f"127.0.0.{i + 2}"))
        for i, name in enumerate(names)
    }
    for cluster in clusters.values():
        cluster.start()
    config = workdir / "haproxy.cfg"
    config.write_text(render_for_loopback(clusters, port, metrics_port))
    process = subprocess.Popen(
        [binary, "-db", "-f", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proxy = LiveProxy(process, port, metrics_port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if proxy.get("/healthz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("haproxy did not start:\n" + "\n".join(proxy.output))
            time.sleep(0.05)
        yield proxy, clusters
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
        for cluster in clusters.values():
            cluster.stop()
