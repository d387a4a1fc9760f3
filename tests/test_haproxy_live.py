"""The public load balancer, run for real: a broken cluster is taken out, traffic carries on, and
the cluster comes back when it recovers. (How fast: bench/failover.py measures it.)

HAProxy and the stand-in clusters listen on loopback addresses only; every wait is bounded.
"""

from __future__ import annotations

import time

import pytest
from haproxy_live import haproxy_binary, live_fleet, render_for_loopback

from components.edge import _haproxy

pytestmark = pytest.mark.skipif(
    haproxy_binary() is None, reason="haproxy is not installed (Debian package: haproxy)"
)

# Far above the ~8 s the checks are tuned for: this bounds the test, it does not time it.
STATE_CHANGE_LIMIT = 30.0


def spread(proxy, requests: int = 20) -> dict[str, int]:
    """Which clusters answered `requests` requests, by the cluster name in the body."""
    seen: dict[str, int] = {}
    for _ in range(requests):
        status, body = proxy.get()
        assert status == 200, f"request failed with {status}: {body}"
        name = body.split('"cluster": "')[1].split('"')[0]
        seen[name] = seen.get(name, 0) + 1
    return seen


def test_loopback_config_differs_from_production_only_in_ports():
    class Edge:
        def __init__(self, name, address, port):
            self.name, self.address, self.port = name, address, port

    clusters = {"a": Edge("a", "127.0.0.2", 18080), "b": Edge("b", "127.0.0.3", 18081)}
    production = _haproxy.render_public_lb_config({"a": "127.0.0.2", "b": "127.0.0.3"})
    loopback = render_for_loopback(clusters, 19000, 19405)
    changed = [
        (p, lo)
        for p, lo in zip(production.splitlines(), loopback.splitlines(), strict=True)
        if p != lo
    ]
    assert changed == [
        ("    bind :8405", "    bind 127.0.0.1:19405"),
        ("    bind :8080", "    bind 127.0.0.1:19000"),
        ("    server a 127.0.0.2:80 check", "    server a 127.0.0.2:18080 check"),
        ("    server b 127.0.0.3:80 check", "    server b 127.0.0.3:18081 check"),
    ]


def test_a_broken_cluster_is_taken_out_and_comes_back(tmp_path):
    with live_fleet(["app-a", "app-b"], tmp_path) as (proxy, clusters):
        assert set(spread(proxy)) == {"app-a", "app-b"}, "both clusters serve while healthy"

        broken_at = time.monotonic()
        clusters["app-b"].healthy = False  # its app or database fails: /api/books answers 503
        failures, attempts = [], 0
        while proxy.wait_for_event("app-b", "DOWN", broken_at, 0) is None:
            if time.monotonic() - broken_at > STATE_CHANGE_LIMIT:
                pytest.fail(
                    "HAProxy never took the broken cluster out:\n" + "\n".join(proxy.output)
                )
            status, body = proxy.get()
            attempts += 1
            if status != 200:
                failures.append((status, body))
        assert attempts >= 10, f"only {attempts} requests were sent while the cluster was broken"
        assert not failures, f"GETs failed before the broken cluster was taken out: {failures}"
        assert spread(proxy) == {"app-a": 20}, "only the healthy cluster serves after the check"

        healed_at = time.monotonic()
        clusters["app-b"].healthy = True
        took = proxy.wait_for_event("app-b", "UP", healed_at, STATE_CHANGE_LIMIT)
        assert took is not None, "the recovered cluster was never put back"
        assert set(spread(proxy)) == {"app-a", "app-b"}


def test_requests_keep_succeeding_while_a_cluster_dies(tmp_path):
    """A cluster that stops answering costs no failed request: a refused connection is retried
    on another cluster (retries 1, option redispatch) until the checks mark it down."""
    with live_fleet(["app-a", "app-b"], tmp_path) as (proxy, clusters):
        died_at = time.monotonic()
        clusters["app-a"].stop()
        failures, attempts = [], 0
        while proxy.wait_for_event("app-a", "DOWN", died_at, 0) is None:
            if time.monotonic() - died_at > STATE_CHANGE_LIMIT:
                pytest.fail("the dead cluster was never marked down")
            status, body = proxy.get()
            attempts += 1
            if status != 200:
                failures.append((status, body))
        assert attempts >= 10, f"only {attempts} requests were sent while the cluster was dying"
        assert not failures, f"requests failed while a cluster died: {failures}"
        assert spread(proxy) == {"app-b": 20}


def test_a_post_is_never_sent_twice(tmp_path):
    """Retrying after a cluster answered is for GET and HEAD only: a POST that reached a broken
    cluster gets its error, and no cluster sees it twice."""
    with live_fleet(["app-a", "app-b"], tmp_path) as (proxy, clusters):
        clusters["app-b"].healthy = False
        statuses = [proxy.get(method="POST")[0] for _ in range(6)]
        received = sum(c.posts for c in clusters.values())
        assert received == len(statuses), f"{received} POSTs reached clusters for 6 sent"
        assert 503 in statuses, f"no POST reached the broken cluster: {statuses}"


def test_entry_health_fails_once_no_cluster_is_up_and_recovers(tmp_path):
    """The DNS health checks in front of the entry probe its health URI: 200 while a cluster is
    up, 503 once none is (while the pods' own /healthz stays 200), 200 again after a recovery."""
    with live_fleet(["app-a", "app-b"], tmp_path) as (proxy, clusters):
        assert proxy.get(_haproxy.ENTRY_HEALTH_PATH)[0] == 200, "healthy entry must answer 200"

        broken_at = time.monotonic()
        clusters["app-a"].healthy = False
        assert proxy.wait_for_event("app-a", "DOWN", broken_at, STATE_CHANGE_LIMIT) is not None
        status, body = proxy.get(_haproxy.ENTRY_HEALTH_PATH)
        assert status == 200, f"one cluster is still up, yet the entry health said {status}"

        clusters["app-b"].stop()
        assert proxy.wait_for_event("app-b", "DOWN", broken_at, STATE_CHANGE_LIMIT) is not None
        status, body = proxy.get(_haproxy.ENTRY_HEALTH_PATH)
        assert status == 503, f"no cluster is up, yet the entry health said {status}: {body}"
        assert proxy.get(_haproxy.HEALTHZ_PATH)[0] == 200, "the pods' probe must stay 200"

        healed_at = time.monotonic()
        clusters["app-a"].healthy = True
        assert proxy.wait_for_event("app-a", "UP", healed_at, STATE_CHANGE_LIMIT) is not None
        assert proxy.get(_haproxy.ENTRY_HEALTH_PATH)[0] == 200, "a recovered entry must be 200"
