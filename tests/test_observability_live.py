"""Real runs on loopback: Debian's Prometheus scrapes the public entry's real HAProxy exporter,
with the program's scrape job and alert rules, in front of stand-in app clusters; and an agent
with the program's config ships through the real receiver config (TLS, basic auth) to it.

Everything listens on free loopback ports and stops at the end; every wait is bounded. The
intervals are shortened (scrape and evaluation 1 s, alert `for` durations a few seconds), and
addresses, ports and the pods' file paths move to loopback and temporary files: the only
changes made to what the program renders.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from haproxy_live import free_port, haproxy_binary, live_fleet

from components.observability import _dashboard, _prometheus, _queries, _receiver

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.skipif(haproxy_binary() is None, reason="haproxy is not installed"),
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="prometheus not found: install the Debian package `prometheus` (test.sh does)",
    ),
]
CLUSTERS = ["app-a", "app-b"]
SCRAPE_S = 1
EVALUATION_S = 1
TIMINGS = _prometheus.AlertTimings(
    cluster_out="3s", five_xx="3s", rate_window="10s", metrics_missing="5s", manifest_work="10s"
)
LOOPBACK_SOURCES = (_queries.HAPROXY, _queries.PROMETHEUS)


def loopback_scrape_job(metrics_port: int) -> dict:
    """The program's scrape job of the public entry, pointed at the loopback exporter."""
    job = _prometheus.public_entry_scrape_job()
    assert "dns_sd_configs" in job, "the production job discovers the pods by DNS"
    del job["dns_sd_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    job["scrape_interval"] = f"{SCRAPE_S}s"
    return job


class LivePrometheus:
    def __init__(self, port: int, process: subprocess.Popen, log: Path):
        self.port, self.process, self.log = port, process, log

    def get(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def firing(self, alert: str) -> list[dict]:
        return [
            a
            for a in self.get("/api/v1/alerts")["alerts"]
            if a["labels"]["alertname"] == alert and a["state"] == "firing"
        ]

    def wait_for(self, what, limit: float, step: float = 0.25):
        """Poll `what()` until it returns something truthy; None after `limit` seconds."""
        deadline = time.monotonic() + limit
        while True:
            found = what()
            if found or time.monotonic() > deadline:
                return found
            time.sleep(step)


@contextmanager
def live_prometheus(metrics_port: int, workdir: Path) -> Iterator[LivePrometheus]:
    rules = _prometheus.alert_rules(CLUSTERS, TIMINGS)
    (workdir / "alerting_rules.yml").write_text(_prometheus.dump(rules))
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_S}s",
            "evaluation_interval": f"{EVALUATION_S}s",
        },
        "rule_files": [str(workdir / "alerting_rules.yml")],
        "scrape_configs": [loopback_scrape_job(metrics_port)],
    }
    (workdir / "prometheus.yml").write_text(_prometheus.dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    live = LivePrometheus(port, process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("prometheus did not start:\n" + log.read_text())
            time.sleep(0.1)
        yield live
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_every_loopback_query_returns_series_and_the_alerts_fire(tmp_path):
    with (
        live_fleet(CLUSTERS, tmp_path) as (proxy, clusters),
        live_prometheus(proxy.metrics_port, tmp_path) as prometheus,
    ):
        for _ in range(20):
            assert proxy.get()[0] == 200

        # Every dashboard query and every alert expression over HAProxy or Prometheus itself,
        # as Grafana sends it (variables filled in), returns series.
        model = _dashboard.build_dashboard()
        on_loopback = [q for q in _queries.all_queries() if q.source in LOOPBACK_SOURCES]
        assert {q.expr for q in on_loopback} <= set(_dashboard.panel_queries(model))
        assert len(on_loopback) >= 9, "summary and per-cluster HAProxy panels"
        for query in on_loopback:
            expr = _queries.concrete(query.expr, cluster="app-a", rate_window="5s")
            series = prometheus.wait_for(lambda e=expr: prometheus.query(e), limit=20)
            assert series, f"{query.title!r} returned no series: {expr}"
        # The dashboard's variable lists every cluster behind the public entry.
        values = prometheus.get("/api/v1/label/cluster/values")
        assert set(CLUSTERS) <= set(values), values
        states = prometheus.query(
            _queries.concrete(_queries.SUMMARY[0].expr, cluster="", rate_window="5s")
        )
        assert {s["metric"]["cluster"]: s["value"][1] for s in states} == {
            "app-a": "1",
            "app-b": "1",
        }

        # No cluster is out yet; then one breaks (503 on /api/books, as when its database
        # is unreachable) and the alert fires within HAProxy's failover budget plus the
        # alert's `for`, a scrape and an evaluation.
        assert prometheus.firing("ClusterOutOfPublicEntry") == []
        broken_at = time.monotonic()
        clusters["app-b"].healthy = False
        budget = (
            _prometheus_seconds(TIMINGS.cluster_out)
            + 10  # the public entry's failover budget (components/edge/_haproxy.py)
            + SCRAPE_S
            + EVALUATION_S
            + 3  # Prometheus's own start-up of the rule group and rounding
        )
        fired = prometheus.wait_for(lambda: prometheus.firing("ClusterOutOfPublicEntry"), budget)
        elapsed = time.monotonic() - broken_at
        assert fired, f"ClusterOutOfPublicEntry did not fire within {budget}s"
        assert [a["labels"]["cluster"] for a in fired] == ["app-b"], fired
        assert elapsed >= _prometheus_seconds(TIMINGS.cluster_out), "fired before its `for`"

        # Users of app-a get 500s while its health check still passes: the 5xx alert fires
        # for app-a, and app-a stays in the entry.
        clusters["app-a"].failing_requests = True
        for _ in range(30):
            proxy.get()
        errors = prometheus.wait_for(lambda: prometheus.firing("ClusterHigh5xxRate"), 20)
        assert [a["labels"]["cluster"] for a in errors] == ["app-a"], errors
        (five_xx,) = [q for q in _queries.SUMMARY if q.title == "5xx per second"]
        rates = prometheus.query(_queries.concrete(five_xx.expr, cluster="", rate_window="10s"))
        assert any(float(s["value"][1]) > 0 for s in rates if s["metric"]["cluster"] == "app-a")

        # Nothing ships cluster metrics here: every cluster's metrics-missing alert fires, the
        # alert a cluster whose agent stopped would raise.
        missing = prometheus.wait_for(lambda: prometheus.firing("ClusterMetricsMissing"), 20)
        assert sorted(a["labels"]["cluster"] for a in missing) == CLUSTERS, missing


def _prometheus_seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def test_loopback_scrape_job_differs_from_production_only_in_target_and_interval():
    production = _prometheus.public_entry_scrape_job()
    loopback = loopback_scrape_job(19405)
    changed = {k for k in {*production, *loopback} if production.get(k) != loopback.get(k)}
    assert changed == {"dns_sd_configs", "static_configs", "scrape_interval"}
    assert (
        yaml.safe_load(yaml.safe_dump(loopback))["metric_relabel_configs"]
        == (production["metric_relabel_configs"])
    )


# --- the agents' path: agent mode -> receiver (TLS, basic auth) -> Prometheus -----------------


def _certificates(workdir: Path) -> tuple[Path, Path]:
    """A CA and a receiver certificate for the name the agents check, as the program's
    pulumi-tls resources make them (ECDSA P-256); returns (CA file, receiver PEM)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=workdir, check=True, capture_output=True, timeout=60)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    name = _prometheus.RECEIVER_SERVER_NAME
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=ocm-fleet metrics CA")  # fmt: skip
    openssl("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={name}")
    (workdir / "san.ext").write_text(f"subjectAltName=DNS:{name}\n")
    sign = ["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1"]
    openssl("x509", "-req", "-in", "server.csr", *sign, "-out", "server.crt", "-extfile", "san.ext")
    pem = workdir / _receiver.CERT_FILE
    pem.write_text((workdir / "server.crt").read_text() + (workdir / "server.key").read_text())
    return workdir / "ca.crt", pem


@contextmanager
def _process(args: list[str], log: Path, ready_url: str | None = None) -> Iterator[None]:
    with log.open("w") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while ready_url:
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _post(port: int, ca: Path, path: str, user: str, password: str) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    # The agents dial an address and check the certificate's name: so does this client.
    conn.sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=5),
        server_hostname=_prometheus.RECEIVER_SERVER_NAME,
    )
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        conn.request("POST", path, body=b"", headers={"Authorization": f"Basic {token}"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_an_agent_ships_through_the_receiver_over_tls_with_its_own_password(tmp_path):
    password = "agent-password-for-app-a"
    ca, _ = _certificates(tmp_path)
    server_port, receiver_port, agent_port = free_port(), free_port(), free_port()

    # The main cluster's Prometheus, receiving remote writes as the chart's flags make it.
    (tmp_path / "server.yml").write_text(_prometheus.dump({"global": {}}))
    server = [
        PROMETHEUS,
        f"--config.file={tmp_path / 'server.yml'}",
        f"--storage.tsdb.path={tmp_path / 'server-data'}",
        f"--web.listen-address=127.0.0.1:{server_port}",
        "--web.enable-remote-write-receiver",
    ]
    # The receiver: the rendered config and userlist, with its Secret's files here and its
    # listening port moved to a free loopback port.
    config = _receiver.render_receiver_config(upstream=f"127.0.0.1:{server_port}")
    bind = f"bind :{_receiver.LISTEN_PORT} "
    assert bind in config
    config = config.replace(bind, f"bind 127.0.0.1:{receiver_port} ").replace(
        _receiver.SECRET_DIR, str(tmp_path)
    )
    (tmp_path / "receiver.cfg").write_text(config)
    (tmp_path / _receiver.USERS_FILE).write_text(_receiver.render_userlist({"app-a": password}))
    receiver = [
        haproxy_binary(), "-db", "-f", str(tmp_path / "receiver.cfg"),
        "-f", str(tmp_path / _receiver.USERS_FILE),
    ]  # fmt: skip
    # The agent: the rendered config with its pod's files here and its own port on loopback;
    # the flags for Debian's Prometheus 2.42 come from the same function as the image's.
    (tmp_path / "password").write_text(password)
    (tmp_path / "token").write_text("stand-in")
    text = _prometheus.dump(
        _prometheus.agent_config(
            "app-a",
            receiver=f"127.0.0.1:{receiver_port}",
            namespace="monitoring",
            host_namespace="monitoring-host",
            scrape_interval="1s",
        )
    )
    for pod_path, here in (
        (f"{_prometheus.AGENT_CREDENTIALS_DIR}/password", tmp_path / "password"),
        (f"{_prometheus.AGENT_CREDENTIALS_DIR}/ca.crt", ca),
        ("/var/run/secrets/kubernetes.io/serviceaccount/token", tmp_path / "token"),
        ("localhost:9090", f"127.0.0.1:{agent_port}"),
    ):
        assert pod_path in text, pod_path
        text = text.replace(pod_path, str(here))
    (tmp_path / "agent.yml").write_text(text)
    flags = _prometheus.agent_flags("2.42.0")
    assert "--enable-feature=agent" in flags
    agent = [
        PROMETHEUS,
        *[f for f in flags if not f.startswith(("--config.file", "--storage", "--web.listen"))],
        f"--config.file={tmp_path / 'agent.yml'}",
        f"--storage.agent.path={tmp_path / 'agent-data'}",
        f"--web.listen-address=127.0.0.1:{agent_port}",
    ]

    with (
        _process(server, tmp_path / "server.log", f"http://127.0.0.1:{server_port}/-/ready"),
        _process(receiver, tmp_path / "receiver.log"),
        _process(agent, tmp_path / "agent.log", f"http://127.0.0.1:{agent_port}/-/ready"),
    ):
        hub = LivePrometheus(server_port, None, tmp_path / "server.log")
        arrived = hub.wait_for(
            lambda: hub.query(f'up{{job="{_queries.AGENT_JOB}",cluster="app-a"}}'), limit=30
        )
        assert arrived, (
            "the agent's metrics never reached the hub:\n" + (tmp_path / "agent.log").read_text()
        )
        # Only what the dashboard reads travels: no other metric of the agent's own.
        names = hub.get("/api/v1/label/__name__/values")
        assert "prometheus_tsdb_head_series" not in names, "write_relabel_configs must filter"
        # The receiver refuses a wrong password and anything but the write path.
        write = _prometheus.WRITE_PATH
        assert _post(receiver_port, ca, write, "app-a", "wrong") == 401
        assert _post(receiver_port, ca, write, "app-b", password) == 401
        assert _post(receiver_port, ca, "/api/v1/query", "app-a", password) == 404
