"""The drill's main-lost fault against stand-ins: two real HAProxy entries on loopback (the
program's rendered config) in front of stand-in app clusters, a health-checked name standing in
for DNS, and recorders standing in for kubectl, docker and pulumi. Also its restore guarantees,
after an interrupt and a SIGTERM too."""

from __future__ import annotations

import datetime
import importlib.util
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest
from haproxy_live import HealthCheckedName, haproxy_binary, live_entries

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("drill", ROOT / "scripts" / "drill.py")
drill = importlib.util.module_from_spec(_spec)
sys.modules["drill"] = drill  # dataclasses look their module up there
_spec.loader.exec_module(drill)

needs_haproxy = pytest.mark.skipif(
    haproxy_binary() is None, reason="haproxy is not installed (Debian package: haproxy)"
)

CLUSTERS = ["app-a", "app-b"]
STOPPED = {("ocm-fleet-ingress", "public-lb"), ("bookstore-data", "mariadb")}
PLAN = drill.MainLostPlan(
    target="http://name", second_entry="http://second", hub="main", cloud="azure",
    clusters=CLUSTERS, standby_hub="second",
)  # fmt: skip


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat().replace("+00:00", "Z")


class MainHome:
    """The main home and the standby hub as kubectl and pulumi see them, wired to stand-ins.

    Main home: the entry Deployment (scaling it to 0 stops the first loopback HAProxy, back up
    starts it), the MariaDB StatefulSet (at 0 the app clusters lose their database: reads 503,
    writes fail, until the promotion points them at the standby's) and the ManagedClusters'
    hubAcceptsClient. A refused agent shows on the standby hub `move` seconds later: Available
    and a freshly renewed lease; before that the standby's ManagedCluster is Available with a
    lease from before the fault, as one left over from an earlier move would be. `pulumi up`
    takes `promotion` seconds, then the app reads again, and `write_lag` seconds later writes.
    Anything else asked of kubectl or pulumi fails the test."""

    def __init__(self, entry=None, clusters=None, *, move=3.0, promotion=6.0, write_lag=1.0):
        self.entry, self.clusters = entry, clusters or {}
        self.move, self.promotion, self.write_lag = move, promotion, write_lag
        self.replicas = {"deployment/public-lb": 2, "statefulset/mariadb": 1}
        self.accepts = dict.fromkeys(CLUSTERS, True)
        self.refused_at: dict[str, float] = {}
        self.promoted = False
        self.calls: list[tuple[str, ...]] = []
        self.commands: list[list[str]] = []
        self.started = time.time()

    def _app(self, reads: bool, writes: bool) -> None:
        for cluster in self.clusters.values():
            cluster.healthy, cluster.writable = reads, writes

    def kubectl(self, *args: str) -> str:
        self.calls.append(args)
        match args:
            case ("-n", ns, "get", kind, name, "-o", "jsonpath={.spec.replicas}"):
                assert (ns, name) in STOPPED, args
                return str(self.replicas[f"{kind}/{name}"])
            case ("-n", _, "scale", kind, name, replicas):
                count = int(replicas.removeprefix("--replicas="))
                self.replicas[f"{kind}/{name}"] = count
                if name == "public-lb" and self.entry is not None and not count:
                    self.entry.stop()
                elif name == "public-lb" and self.entry is not None and not self.entry.running:
                    self.entry.start()
                elif name == "mariadb" and not self.promoted:
                    self._app(bool(count), bool(count))
                return ""
            case ("get", "managedcluster", name, "-o", "jsonpath={.spec.hubAcceptsClient}"):
                return "true" if self.accepts[name] else "false"
            case ("patch", "managedcluster", name, "--type=merge", "-p", patch):
                self.accepts[name] = json.loads(patch)["spec"]["hubAcceptsClient"]
                if not self.accepts[name]:
                    self.refused_at.setdefault(name, time.time())
                return ""
        raise AssertionError(f"the drill ran an unexpected kubectl {args} on the main home")

    def moved(self, now: float) -> set[str]:
        return {name for name, at in self.refused_at.items() if now >= at + self.move}

    def standby_kubectl(self, *args: str, now: float | None = None) -> str:
        now = time.time() if now is None else now
        moved = self.moved(now)
        if args == ("get", "managedclusters", "-o", "json"):
            available = {"type": "ManagedClusterConditionAvailable", "status": "True"}
            items = [{"metadata": {"name": n}, "status": {"conditions": [available]}}
                     for n in CLUSTERS]  # fmt: skip
            return json.dumps({"items": items})
        if args[:3] == ("get", "leases", "--all-namespaces"):
            assert "metadata.name=managed-cluster-lease" in args, args
            items = [
                {"metadata": {"namespace": n, "name": "managed-cluster-lease"},
                 "spec": {"renewTime": _iso(now if n in moved else self.started - 600)}}
                for n in CLUSTERS
            ]  # fmt: skip
            return json.dumps({"items": items})
        raise AssertionError(f"the drill ran an unexpected kubectl {args} on the standby hub")

    def pulumi(self, command: list[str]) -> tuple[int, str]:
        self.commands.append(command)
        if command[:2] == ["pulumi", "up"]:
            time.sleep(self.promotion)
            self.promoted = True
            self._app(True, False)
            time.sleep(self.write_lag)
            self._app(True, True)
        return 0, ""


def _assert_restored(home: MainHome) -> None:
    assert home.replicas == {"deployment/public-lb": 2, "statefulset/mariadb": 1}, home.replicas
    assert home.accepts == dict.fromkeys(CLUSTERS, True), f"hubAcceptsClient: {home.accepts}"


@needs_haproxy
def test_main_lost_on_two_real_entries_behind_a_health_checked_name(tmp_path):
    with (
        live_entries(CLUSTERS, tmp_path, entries=2) as (entries, clusters),
        HealthCheckedName(entries, interval=0.3, failures=2) as name,
    ):
        home = MainHome(entries[0], clusters, move=3.0, promotion=6.0, write_lag=1.0)
        fault = drill.main_lost_fault(PLAN, "test", home.kubectl, docker=None)
        promotion = drill.Promotion("test", automatic=True, run=home.pulumi, say=lambda _: None)
        write = drill.WriteProbe(name.url, timeout=2)
        report = drill.run_main_lost(
            name.url + "/api/books", fault, promotion, write=write,
            second_entry=f"http://127.0.0.1:{entries[1].port}/api/books",
            agents=lambda since: drill.agents_on_hub(home.standby_kubectl, CLUSTERS, since),
            interval=0.1, write_interval=0.25, agents_interval=0.5, promote_after=1.0,
            baseline_seconds=1, fault_seconds=40, settle_seconds=3, after_restore_seconds=3,
            timeout=2,
        )  # fmt: skip
        entry_running = entries[0].running
        switches = [index for _, index in name.switches]
        books = dict(clusters["app-a"].books)
    table = report.table()
    assert report.baseline_errors == 0, table
    # Nothing can serve before the promotion: the database went with the main home.
    assert report.served_after is not None, table
    assert report.served_after >= report.promotion_at + 6.0, table
    assert report.failed_during >= 50, f"the GETs during the failover must fail and count\n{table}"
    assert report.failed_after == 0, f"a GET failed once the second entry served\n{table}"
    assert report.second_entry_after is not None, table
    assert report.second_entry_after <= report.served_after, "the name follows the entry\n" + table
    assert report.writes_after is not None and report.promotion_done is not None, table
    assert report.writes_after >= report.promotion_at + 6.0 + 1.0, f"writes, not reads\n{table}"
    assert 3.0 <= report.agents_after <= 3.0 + 2.0, table
    assert home.commands == drill.promote_commands("test"), home.commands
    # The restore: the entry runs again and serves (the name moved back to it), nothing failed.
    assert report.restore_ok, table
    _assert_restored(home)
    assert entry_running, "the main home's entry must run again after the restore"
    # Real DNS flaps the same way: to the second entry while its checks still pass, back to the
    # primary once no entry is healthy (both services then answer with it), to the second entry
    # once it serves, and back to the primary after the restore.
    assert switches[-2:] == [1, 0], f"the name must move to the second entry and back: {switches}"
    assert report.failed_after_restore == 0 and report.writes_after_restore is True, table
    assert books == {} and report.leftover_books == [], f"probe books left behind: {books}"


def test_every_step_stopped_is_started_again_when_the_drill_is_interrupted():
    home = MainHome()
    fault = drill.main_lost_fault(PLAN, "test", home.kubectl, docker=None)
    promotion = drill.Promotion("test", automatic=False, say=lambda _: None)
    now, calls = [0.0], [0]

    def send(url, timeout):
        calls[0] += 1
        if calls[0] == 30:
            assert home.replicas["deployment/public-lb"] == 0, "interrupted during the fault"
            raise KeyboardInterrupt
        return 0, None

    def sleep(seconds):
        now[0] += seconds

    with pytest.raises(KeyboardInterrupt):
        drill.run_main_lost(
            "http://name/api/books", fault, promotion, write=lambda: False, interval=0.1,
            baseline_seconds=1, clock=lambda: now[0], sleep=sleep, send=send,
        )  # fmt: skip
    _assert_restored(home)
    scales = [c for c in home.calls if "scale" in c or "patch" in c]
    assert [c[-1] for c in scales] == [
        "--replicas=0", "--replicas=0",
        '{"spec": {"hubAcceptsClient": false}}', '{"spec": {"hubAcceptsClient": false}}',
        '{"spec": {"hubAcceptsClient": true}}', '{"spec": {"hubAcceptsClient": true}}',
        "--replicas=1", "--replicas=2",
    ], scales  # fmt: skip
    assert fault.check() == []


def test_a_restore_that_fails_is_reported_and_the_other_steps_are_still_restored():
    home = MainHome()
    broken = {"patched": False}

    def kubectl(*args):
        if args[:2] == ("patch", "managedcluster") and "true" in args[-1]:
            broken["patched"] = True
            raise RuntimeError("the main hub does not answer")
        return home.kubectl(*args)

    fault = drill.main_lost_fault(PLAN, "test", kubectl, docker=None)
    fault.inject()
    fault.restore()
    assert broken["patched"]
    assert home.replicas == {"deployment/public-lb": 2, "statefulset/mariadb": 1}
    problems = fault.check()
    assert problems[0] == (
        "restoring refuse-agents: app-a: the main hub does not answer; "
        "app-b: the main hub does not answer"
    ), problems
    assert problems[1:] == [
        "managedcluster app-a on the main hub has hubAcceptsClient False",
        "managedcluster app-b on the main hub has hubAcceptsClient False",
    ], problems


def test_the_agents_are_counted_on_the_standby_hub_only_once_all_are_there_and_heartbeating():
    home = MainHome(move=30.0)
    fault = drill.main_lost_fault(PLAN, "test", home.kubectl, docker=None)
    promotion = drill.Promotion("test", automatic=False, say=lambda _: None)
    now = [0.0]
    base = time.time()
    home.started = base
    # app-b moves 12 s after app-a: the report waits for the last one.
    real_patch = home.kubectl

    def kubectl(*args):
        out = real_patch(*args)
        if args[:2] == ("patch", "managedcluster") and "false" in args[-1]:
            home.refused_at[args[2]] = base + now[0] + (12.0 if args[2] == "app-b" else 0.0)
        return out

    fault = drill.main_lost_fault(PLAN, "test", kubectl, docker=None)

    def agents(since):
        return drill.agents_on_hub(
            lambda *a: home.standby_kubectl(*a, now=base + now[0]), CLUSTERS, since
        )

    report = drill.run_main_lost(
        "http://name/api/books", fault, promotion, write=lambda: True, agents=agents,
        interval=0.5, agents_interval=5.0, baseline_seconds=1, fault_seconds=120,
        settle_seconds=1, after_restore_seconds=1, clock=lambda: now[0], wall=lambda: base + now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s), send=lambda u, t: (200, None),
    )  # fmt: skip
    # Moved at 30 s (app-a) and 42 s (app-b) after the fault; checked every 5 s.
    assert report.agents_after is not None and 42.0 <= report.agents_after <= 47.0, report.table()
    assert "every agent on the standby hub" in report.table()


def test_agents_on_hub_needs_available_and_a_lease_renewed_after_the_fault():
    since = 1_700_000_000.0

    def kubectl_for(conditions, renewals):
        def kubectl(*args):
            if args[1] == "managedclusters":
                items = [{"metadata": {"name": n},
                          "status": {"conditions": [{"type": "ManagedClusterConditionAvailable",
                                                     "status": s}]}}
                         for n, s in conditions.items()]  # fmt: skip
            else:
                items = [{"metadata": {"namespace": n}, "spec": {"renewTime": _iso(t)}}
                         for n, t in renewals.items()]  # fmt: skip
            return json.dumps({"items": items})

        return kubectl

    fresh, stale = since + 5, since - 5
    on = drill.agents_on_hub
    both = {"app-a": "True", "app-b": "True"}
    assert on(kubectl_for(both, {"app-a": fresh, "app-b": fresh}), CLUSTERS, since)
    assert not on(kubectl_for(both, {"app-a": fresh, "app-b": stale}), CLUSTERS, since), "stale"
    assert not on(kubectl_for(both, {"app-a": fresh}), CLUSTERS, since), "app-b has no lease"
    assert not on(
        kubectl_for({"app-a": "True", "app-b": "Unknown"}, {"app-a": fresh, "app-b": fresh}),
        CLUSTERS,
        since,
    ), "app-b is not Available"
    assert not on(kubectl_for({"app-a": "True"}, {"app-a": fresh}), CLUSTERS, since), "missing"


def test_on_kind_the_main_clusters_containers_are_stopped_and_started_again():
    from components.clusters.kind import kind_cluster_name

    calls, running = [], {}

    def docker(*args):
        calls.append(args)
        if args[0] == "ps":
            assert args[1:3] == ("--filter", "label=io.x-k8s.kind.cluster=local-hub"), args
            return "local-hub-worker\nlocal-hub-control-plane\n"
        if args[0] in ("stop", "start"):
            running.update(dict.fromkeys(args[1:], args[0] == "start"))
            return "\n".join(args[1:])
        if args[0] == "inspect":
            return "\n".join("true" if running[n] else "false" for n in args[3:])
        raise AssertionError(f"unexpected docker {args}")

    plan = drill.MainLostPlan(target="http://second", second_entry=None, hub="hub", cloud="kind",
                              clusters=CLUSTERS, standby_hub=None)  # fmt: skip
    fault = drill.main_lost_fault(plan, "local", kubectl=None, docker=docker)
    spec = types.SimpleNamespace(name="hub")
    assert fault.steps[0].kind_name == kind_cluster_name(spec, "local"), "the program's naming"
    fault.inject()
    assert running == {"local-hub-control-plane": False, "local-hub-worker": False}
    assert fault.check() == ["container local-hub-control-plane is not running",
                             "container local-hub-worker is not running"]  # fmt: skip
    fault.restore()
    assert running == {"local-hub-control-plane": True, "local-hub-worker": True}
    assert fault.check() == []
    assert fault.describe() == ["containers local-hub-control-plane, local-hub-worker stopped"]


def test_the_plan_needs_the_second_home_and_its_entry_and_prefers_the_public_name():
    outputs = {
        "hub": {"name": "main", "cloud": "azure"},
        "hubStandby": {"second": {}},
        "entryUrls": ["http://1.1.1.1", "http://second.example/"],
        "kubeconfigs": {"main": "k", "second": "k"},
        "clusters": {"app-b": {}, "app-a": {}},
    }
    plan = drill.main_lost_plan(outputs)
    assert (plan.target, plan.second_entry) == ("http://second.example", None)
    assert plan.clusters == CLUSTERS and plan.standby_hub is None
    plan = drill.main_lost_plan(
        {**outputs, "publicNameUrl": "http://shop.example", "standbyHub": {"name": "hub-2"}}
    )
    assert (plan.target, plan.second_entry) == ("http://shop.example", "http://second.example")
    assert plan.standby_hub == "second", "the standby hub is read through the second home"
    steps = drill.main_lost_fault(plan, "dev", lambda *a: "", None).steps
    assert [type(s).__name__ for s in steps] == ["ScaleToZero", "ScaleToZero", "RefuseAgents"]
    with pytest.raises(drill.DrillError, match=r"ocm-fleet:hub.standby.*entryUrls"):
        drill.main_lost_plan({**outputs, "entryUrls": ["http://1.1.1.1"]})
    with pytest.raises(drill.DrillError, match="no kubeconfig of 'second'"):
        drill.main_lost_plan({**outputs, "standbyHub": {"name": "second"}, "kubeconfigs": {
            "main": "k"}})  # fmt: skip


def test_what_main_lost_stops_is_what_the_program_names():
    from components.app import database
    from components.edge import public_load_balancer

    assert drill.ENTRY_NAMESPACE == public_load_balancer.NAMESPACE
    assert drill.DATABASE_NAMESPACE == database.NAMESPACE
    source = (ROOT / "components" / "edge" / "public_load_balancer.py").read_text()
    deployment = source[source.index("k8s.apps.v1.Deployment(") :][:200]
    assert f'"name": "{drill.ENTRY_DEPLOYMENT}"' in deployment, deployment
    source = (ROOT / "components" / "app" / "database.py").read_text()
    statefulset = source[source.index("k8s.apps.v1.StatefulSet(") :][:200]
    assert f'"name": "{drill.DATABASE_STATEFULSET}"' in statefulset, statefulset


def test_the_write_probe_creates_and_deletes_one_book_and_cleans_up_after_a_failed_delete():
    sent, answers = [], iter([(201, '{"book": {"id": 7}}'), (500, ""), (201, '{"book": '
                              '{"id": 8}}'), (204, ""), (204, "")])  # fmt: skip

    def send(method, url, timeout, body=None):
        sent.append((method, url, body))
        return next(answers)

    probe = drill.WriteProbe("http://name/", send=send)
    assert probe() is False and probe.leftover == [7], "a delete that failed is remembered"
    assert probe() is True
    probe.cleanup()
    assert probe.leftover == []
    assert sent == [
        ("POST", "http://name/api/books", {"book": drill.WRITE_PROBE_BOOK}),
        ("DELETE", "http://name/api/books/7", None),
        ("POST", "http://name/api/books", {"book": drill.WRITE_PROBE_BOOK}),
        ("DELETE", "http://name/api/books/8", None),
        ("DELETE", "http://name/api/books/7", None),
    ]


CHILD = """
import importlib.util, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("drill", {script!r})
drill = importlib.util.module_from_spec(spec); sys.modules["drill"] = drill
spec.loader.exec_module(drill)
marks = Path({marks!r})

class Step(drill.Fault):
    name = "step"
    def describe(self): return "a step"
    def inject(self): marks.joinpath("injected").touch()
    def restore(self):
        marks.joinpath("restoring").touch()
        time.sleep({restore_seconds})
        marks.joinpath("restored").touch()

drill.install_signal_handlers()
promotion = drill.Promotion("test", automatic=False, say=lambda _: None)
try:
    report = drill.run_main_lost(
        "http://x", drill.MainLost([Step()]), promotion, write=lambda: True, interval=0.05,
        baseline_seconds=0, fault_seconds={fault_seconds}, settle_seconds=60,
        after_restore_seconds=0, send=lambda u, t: (200, None),
    )
except KeyboardInterrupt:
    sys.exit(130)
print(report.restore_ok)
"""


def _child(tmp_path, fault_seconds, restore_seconds):
    script = CHILD.format(script=str(ROOT / "scripts" / "drill.py"), marks=str(tmp_path),
                          fault_seconds=fault_seconds, restore_seconds=restore_seconds)  # fmt: skip
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for(path: Path, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_the_fault_restores_the_fleet(tmp_path, signum):
    child = _child(tmp_path, fault_seconds=60, restore_seconds=0)
    _wait_for(tmp_path / "injected")
    child.send_signal(signum)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 130, (out, err)
    assert (tmp_path / "restored").exists(), f"the fault was not restored after {signum!r}"


def test_a_signal_during_the_restore_waits_for_it_to_finish(tmp_path):
    child = _child(tmp_path, fault_seconds=0.5, restore_seconds=1.0)
    _wait_for(tmp_path / "restoring")
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=30)
    assert (tmp_path / "restored").exists(), "the restore was cut short"
    assert "restoring the fleet first" in err, err
    assert child.returncode == 0 and out.strip() == "True", (out, err)


def test_the_promotion_runs_in_the_background_and_reports_a_failure():
    done = threading.Event()

    def run(command):
        if command[:2] == ["pulumi", "up"]:
            done.set()
            return 255, "error: the main cluster does not answer"
        return 0, ""

    promotion = drill.Promotion("dev", automatic=True, run=run, say=lambda _: None)
    promotion.begin()
    promotion.wait(10)
    assert done.is_set() and promotion.finished is not None
    assert promotion.failed == "pulumi up --yes exited 255: error: the main cluster does not answer"
    said = []
    drill.Promotion("dev", automatic=False, say=said.append).begin()
    assert "pulumi config set --path database.primary standby --stack dev" in said[0], said
    assert "pulumi up --yes --stack dev" in said[0], said


def _fake_tools(tmp_path: Path, outputs: dict) -> dict[str, str]:
    """`pulumi stack output` printing `outputs`, and a kubectl that fails if it is ever run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    (bin_dir / "pulumi").write_text(f"#!/bin/sh\ncat {tmp_path / 'outputs.json'}\n")
    (bin_dir / "kubectl").write_text(f"#!/bin/sh\ntouch {tmp_path / 'kubectl-ran'}\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_main_lost_on_a_fleet_without_a_second_home_is_one_line_and_changes_nothing(tmp_path):
    env = _fake_tools(tmp_path, {"hub": {"name": "main"}, "entryUrls": ["http://1.1.1.1"]})
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "drill.py"), "--stack", "dev", "--fault",
         "main-lost"], capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "drill: main-lost needs a fleet with a second home (ocm-fleet:hub.standby) and its entry "
        "(stack output entryUrls with two addresses, found ['http://1.1.1.1'])"
    ]
    assert not (tmp_path / "kubectl-ran").exists(), "nothing may be touched when it refuses"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "main-lost", "--cluster", "app-a"], "give no --cluster"),
        (["--fault", "app-down"], "app-down needs --cluster"),
        (["--fault", "app-down", "--cluster", "app-a", "--promote"], "--promote belongs to"),
    ],
)
def test_main_lost_usage_errors_exit_2_before_reading_the_stack(tmp_path, args, message):
    env = _fake_tools(tmp_path, {})
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "drill.py"), "--stack", "dev", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 2 and message in done.stderr, done.stderr
