"""A real run: Debian's Prometheus scrapes the public entry's real HAProxy exporter on loopback,
with the program's scrape job and alert rules, in front of stand-in app clusters.

Everything listens on free loopback ports and stops at the end; every wait is bounded. The
intervals are shortened (scrape and evaluation 1 s, alert `for` durations a few seconds): the
only changes made to what the program renders, besides the scrape target's address.
"""

from __future__ import annotations

import json
import shutil
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

from components.observability import _dashboard, _prometheus, _queries

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
