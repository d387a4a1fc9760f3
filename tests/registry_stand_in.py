"""A stand-in container registry on loopback: Bearer tokens, HEAD and GET on manifests, 404s."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest


class Registry(http.server.BaseHTTPRequestHandler):
    """Answers /v2/<repo>/manifests/<tag> after a Bearer token from /token, like Docker Hub."""

    manifests: ClassVar[dict[str, bytes]] = {}
    announce: ClassVar[dict[str, str]] = {}
    announce_on_head: ClassVar[bool] = True
    requests: ClassVar[list[str]] = []
    accepts: ClassVar[list[str]] = []
    """The Accept header of each manifest request."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, *, body: bool):
        Registry.requests.append(f"{self.command} {self.path}")
        if "/manifests/" in self.path:
            Registry.accepts.append(self.headers.get("Accept", ""))
        host = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        if self.path.startswith("/token"):
            body = json.dumps({"token": "t0ken"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
            return
        if self.headers.get("Authorization") != "Bearer t0ken":
            self.send_response(401)
            challenge = f'Bearer realm="{host}/token",service="stand-in"'
            self.send_header("WWW-Authenticate", challenge)
            self.end_headers()
            return
        manifest = self.manifests.get(self.path)
        if manifest is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        digest = self.announce.get(self.path, "sha256:" + hashlib.sha256(manifest).hexdigest())
        if body or self.announce_on_head:
            self.send_header("Docker-Content-Digest", digest)
        self.send_header("Content-Type", "application/vnd.oci.image.index.v1+json")
        self.send_header("Content-Length", str(len(manifest)))
        self.end_headers()
        if body:
            self.wfile.write(manifest)


@contextlib.contextmanager
def serving(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on a free loopback port for the `with` block; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def registry() -> Iterator[str]:
    try:
        with serving(Registry) as url:
            yield url
    finally:
        Registry.manifests, Registry.announce = {}, {}
        Registry.announce_on_head, Registry.requests, Registry.accepts = True, [], []
