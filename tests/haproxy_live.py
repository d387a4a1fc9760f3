"""The public load balancer's real config, run by a real HAProxy against stand-in app clusters.

Everything listens on loopback addresses of this machine only; every wait is bounded.
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from components.edge import _haproxy

HEALTH_PATH = "/api/books"
_BOOK_IDS = itertools.count(1)  # one sequence for every stand-in, as if one database


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
    database is broken, and nothing at all once stopped. POST /api/books creates a book (201 with
    its id, as shopapi's `BooksController#create` does) and DELETE /api/books/<id> removes it
    (204), both only while `writable` (a read-only database fails them with 500) and while the
    database is in reach. Clusters given the same `books` share one database."""

    def __init__(self, name: str, address: str, port: int, books: dict[int, str] | None = None):
        self.name, self.address, self.port = name, address, port
        self.healthy = True
        self.writable = True
        self.silent = False  # accepts connections, never answers (a wedged app)
        self.failing_requests = False  # users get 500s while its health check still passes
        # The database is out of reach: /api answers 503 (the router's checks take shopapi
        # out), while the website and the shop's pages, which need no database, answer 200.
        self.database_down = False
        self.served = 0  # proxied requests (health checks carry no X-Forwarded-For)
        self.posts = 0
        self.books = {} if books is None else books
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

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
                self._answer(status, f'{{"cluster": "{cluster.name}"}}'.encode())

            def do_POST(self) -> None:
                cluster.posts += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not cluster.healthy or cluster.database_down:
                    self._answer(503)
                    return
                if not cluster.writable:
                    self._answer(500)
                    return
                book = next(_BOOK_IDS)
                cluster.books[book] = cluster.name
                self._answer(201, json.dumps({"book": {"id": book}}).encode())

            def do_DELETE(self) -> None:
                match = re.fullmatch(r"/api/books/(\d+)", self.path)
                if not cluster.healthy or cluster.database_down:
                    self._answer(503)
                elif not cluster.writable:
                    self._answer(500)
                elif match is None or cluster.books.pop(int(match.group(1)), None) is None:
                    self._answer(404)
                else:
                    self._answer(204)

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
    """HAProxy running the rendered public config, its state changes collected as they happen.
    It can be stopped and started again on the same ports (an entry scaled to 0 and back)."""

    def __init__(self, config: Path, port: int, metrics_port: int = 0):
        self.config, self.port, self.metrics_port = config, port, metrics_port
        self.process: subprocess.Popen | None = None
        self.events: list[tuple[float, str, str]] = []  # (time, server, "UP" | "DOWN")
        self.output: list[str] = []

    def start(self) -> None:
        binary = haproxy_binary()
        assert binary, "haproxy is not installed"
        self.process = subprocess.Popen(
            [binary, "-db", "-f", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.get("/healthz", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("haproxy did not start:\n" + "\n".join(self.output))
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _read(self, process: subprocess.Popen) -> None:
        pattern = re.compile(r"Server \S+/(\S+) is (UP|DOWN)")
        assert process.stdout is not None
        for line in process.stdout:
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
def live_entries(
    names: list[str], workdir: Path, entries: int = 1
) -> Iterator[tuple[list[LiveProxy], dict[str, StandInCluster]]]:
    """Stand-in clusters on 127.0.0.2, 127.0.0.3, ... sharing one stand-in database, and
    `entries` HAProxy processes, each running the same rendered config in front of all of them
    (the main home's entry and the second home's)."""
    books: dict[int, str] = {}
    clusters = {
        name: StandInCluster(name, f"127.0.0.{i + 2}", free_port(f"127.0.0.{i + 2}"), books)
        for i, name in enumerate(names)
    }
    proxies: list[LiveProxy] = []
    try:
        for cluster in clusters.values():
            cluster.start()
        for index in range(entries):
            port, metrics_port = free_port(), free_port()
            config = workdir / f"haproxy-{index}.cfg"
            config.write_text(render_for_loopback(clusters, port, metrics_port))
            proxies.append(LiveProxy(config, port, metrics_port))
            proxies[-1].start()
        yield proxies, clusters
    finally:
        for proxy in proxies:
            proxy.stop()
        for cluster in clusters.values():
            cluster.stop()


@contextmanager
def live_fleet(
    names: list[str], workdir: Path
) -> Iterator[tuple[LiveProxy, dict[str, StandInCluster]]]:
    """Stand-in clusters on 127.0.0.2, 127.0.0.3, ... and HAProxy in front of them."""
    with live_entries(names, workdir) as (proxies, clusters):
        yield proxies[0], clusters


class HealthCheckedName:
    """Stands in for the health-checked DNS name in front of the entries (Route 53 failover
    records, Traffic Manager priority routing): a TCP forwarder on loopback that sends each new
    connection to the first healthy entry in priority order.

    Each entry has its own checker: `GET /entry-healthz` every `interval` seconds, and a status
    that changes after `failures` consecutive results the other way (Route 53's
    `FailureThreshold` counts both ways). With no entry healthy, the first is used, as both
    services then answer with the primary. `ttl` seconds pass between a status change and the
    forwarder acting on it (resolvers keeping the old answer)."""

    def __init__(self, entries: list[LiveProxy], interval: float, failures: int, ttl: float = 0.0):
        self.entries, self.interval, self.failures, self.ttl = entries, interval, failures, ttl
        self.healthy = [True] * len(entries)
        self.switches: list[tuple[float, int]] = []  # (time, entry index) the name moved to
        self.target = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HealthCheckedName:
        for index in range(len(self.entries)):
            threading.Thread(target=self._check, args=(index,), daemon=True).start()
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._listener.close()

    def _check(self, index: int) -> None:
        streak = 0
        while not self._stop.wait(self.interval):
            try:
                ok = self.entries[index].get(_haproxy.ENTRY_HEALTH_PATH, timeout=1)[0] == 200
            except OSError:
                ok = False
            streak = streak + 1 if ok != self.healthy[index] else 0
            if streak >= self.failures:
                self.healthy[index], streak = ok, 0
                chosen = next((i for i, up in enumerate(self.healthy) if up), 0)
                timer = threading.Timer(self.ttl, self._move, args=(chosen,))
                timer.daemon = True
                timer.start()

    def _move(self, chosen: int) -> None:
        if chosen != self.target:
            self.target = chosen
            self.switches.append((time.monotonic(), chosen))

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            port = self.entries[self.target].port
            threading.Thread(target=self._forward, args=(client, port), daemon=True).start()

    @staticmethod
    def _forward(client: socket.socket, port: int) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            client.close()  # the chosen entry refuses: so does the name
            return

        def pipe(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for end in (source, sink):
                    with suppress(OSError):
                        end.shutdown(socket.SHUT_RDWR)

        back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        back.start()
        pipe(client, upstream)
        back.join(timeout=30)
        client.close()
        upstream.close()
