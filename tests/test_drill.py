"""The failure drill's logic against the real HAProxy, running the rendered public config in front
of stand-in app clusters on loopback (tests/haproxy_live.py), and its restore guarantees."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from pathlib import Path

import pytest
from haproxy_live import haproxy_binary, live_fleet

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("drill", ROOT / "scripts" / "drill.py")
drill = importlib.util.module_from_spec(_spec)
sys.modules["drill"] = drill  # dataclasses look their module up there
_spec.loader.exec_module(drill)

needs_haproxy = pytest.mark.skipif(
    haproxy_binary() is None, reason="haproxy is not installed (Debian package: haproxy)"
)


class StandInAppDown(drill.Fault):
    """app-down on a stand-in: its edge answers the health check with 503."""

    name = "app-down"

    def __init__(self, cluster):
        self.cluster = cluster
        self.restored = 0

    def inject(self) -> None:
        self.cluster.healthy = False

    def restore(self) -> None:
        self.restored += 1
        self.cluster.healthy = True


class StandInClusterLost(drill.Fault):
    """cluster-lost on stand-ins: the cluster stops answering; after `takeover` seconds (lease,
    taint, placement, apply, pods) the standby runs the app; once the cluster is back, the
    standby gives the app up after `give_back` seconds."""

    name = "cluster-lost"

    def __init__(self, lost, standby, takeover: float, give_back: float):
        self.lost, self.standby = lost, standby
        self.takeover, self.give_back = takeover, give_back
        self.timers: list[threading.Timer] = []
        self.restored = 0

    def _later(self, seconds: float, action) -> None:
        timer = threading.Timer(seconds, action)
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def inject(self) -> None:
        self.lost.stop()
        self._later(self.takeover, lambda: setattr(self.standby, "healthy", True))

    def restore(self) -> None:
        self.restored += 1
        for timer in self.timers:
            timer.cancel()
        if self.lost._server is None:
            self.lost.start()
        self._later(self.give_back, lambda: setattr(self.standby, "healthy", False))


def _url(proxy) -> str:
    return f"http://127.0.0.1:{proxy.port}/api/books"


@needs_haproxy
def test_app_down_is_routed_around_and_comes_back(tmp_path):
    with live_fleet(["app-a", "app-b"], tmp_path) as (proxy, clusters):
        fault = StandInAppDown(clusters["app-b"])
        report = drill.run_drill(
            _url(proxy), fault, "app-b", interval=0.1, baseline_seconds=3, window=10,
            fault_seconds=30, min_fault_seconds=8, recovery_seconds=30,
        )  # fmt: skip
    assert report.baseline == ["app-a", "app-b"], "both clusters serve before the fault"
    assert fault.restored == 1
    assert report.out_after is not None and report.out_after <= 10, report.table()
    assert report.back_after is not None and report.back_after <= 15, report.table()
    # 503s from the broken cluster are retried on the other one: users see (almost) nothing.
    assert report.errors <= 2, report.table()
    assert report.standby_after is None


@needs_haproxy
def test_cluster_lost_is_taken_over_by_the_standby_and_given_back(tmp_path):
    with live_fleet(["app-a", "app-b", "zz-standby"], tmp_path) as (proxy, clusters):
        standby = clusters["zz-standby"]
        standby.healthy = False  # no app until the placement picks it
        assert proxy.wait_for_event("zz-standby", "DOWN", time.monotonic() - 30, 45) is not None
        fault = StandInClusterLost(clusters["app-b"], standby, takeover=6, give_back=3)
        report = drill.run_drill(
            _url(proxy), fault, "app-b", interval=0.1, baseline_seconds=3, window=10,
            fault_seconds=40, min_fault_seconds=8, recovery_seconds=40,
        )  # fmt: skip
    assert report.baseline == ["app-a", "app-b"], "the standby serves nothing before"
    assert report.out_after is not None and report.out_after <= 10, report.table()
    assert report.standby_after is not None and 6 <= report.standby_after <= 15, report.table()
    assert report.back_after is not None, report.table()
    assert fault.restored == 1
    assert report.errors <= 3, report.table()


class Exploding(drill.Fault):
    name = "app-down"

    def __init__(self):
        self.injected = self.restored = 0

    def inject(self) -> None:
        self.injected += 1

    def restore(self) -> None:
        self.restored += 1


def test_the_fault_is_undone_when_the_drill_is_interrupted():
    fault = Exploding()
    now = [0.0]
    calls = [0]

    def send(url, timeout):
        calls[0] += 1
        if calls[0] == 5:
            raise KeyboardInterrupt
        return 200, "app-a"

    def sleep(seconds):
        now[0] += seconds

    with pytest.raises(KeyboardInterrupt):
        drill.run_drill(
            "http://x", fault, "app-b", baseline_seconds=0.3, interval=0.1,
            clock=lambda: now[0], sleep=sleep, send=send,
        )  # fmt: skip
    assert (fault.injected, fault.restored) == (1, 1), "interrupted after the fault: restored"


def test_the_stream_of_requests_is_bounded():
    fault = Exploding()
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    report = drill.run_drill(
        "http://x", fault, "app-b", baseline_seconds=1, fault_seconds=2, recovery_seconds=3,
        interval=0.1, clock=lambda: now[0], sleep=sleep, send=lambda u, t: (200, "app-b"),
    )  # fmt: skip
    assert report.requests <= (1 + 2 + 3) / 0.1 + 3, "one request per interval, phases bounded"
    assert report.out_after is None, "the cluster kept serving: never taken out"
    assert report.back_after is not None
    assert fault.restored == 1


def test_real_faults_run_the_kubectl_they_say_and_restore_what_they_saw():
    calls = []
    selector = {"app.kubernetes.io/name": "router"}

    def kubectl(*args):
        calls.append(args)
        if "jsonpath={.spec.selector}" in args:
            return json.dumps({**selector, drill.CLOSED_SELECTOR: "closed"})
        if args[2:4] == ("get", "deployments"):
            name = "klusterlet" if args[1] == "open-cluster-management" else "klusterlet-agent"
            return json.dumps({"items": [{"metadata": {"name": name}, "spec": {"replicas": 2}}]})
        return ""

    edge = drill.CloseEdge(kubectl)
    edge.inject()
    edge.restore()
    assert json.loads(calls[0][-1]) == {"spec": {"selector": {drill.CLOSED_SELECTOR: "closed"}}}
    assert json.loads(calls[-1][-1]) == [
        {"op": "remove", "path": "/spec/selector/ocm-fleet.io~1drill"}
    ]
    calls.clear()
    agents = drill.StopAgents(kubectl)
    agents.inject()
    agents.restore()
    scales = [c for c in calls if "scale" in c]
    assert scales == [
        ("-n", "open-cluster-management", "scale", "deployment", "klusterlet", "--replicas=0"),
        ("-n", "open-cluster-management-agent", "scale", "deployment", "klusterlet-agent",
         "--replicas=0"),
        ("-n", "open-cluster-management", "scale", "deployment", "klusterlet", "--replicas=2"),
        ("-n", "open-cluster-management-agent", "scale", "deployment", "klusterlet-agent",
         "--replicas=2"),
    ]  # fmt: skip
