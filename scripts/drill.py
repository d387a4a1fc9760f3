#!/usr/bin/env python3
"""Failure drill against a live fleet: break one app cluster or the main home, watch, restore.

Run from the repository root, with the stack deployed and the Pulumi CLI logged in:

    .venv/bin/python scripts/drill.py --stack dev --cluster app-aws --fault app-down
    .venv/bin/python scripts/drill.py --stack dev --cluster app-aws --fault cluster-lost
    .venv/bin/python scripts/drill.py --stack dev-standby --fault main-lost [--promote]

Faults:
  app-down      closes the cluster's edge (its Service selects no pod). Only the public load
                balancer reacts; OCM's placement does not, since the cluster stays available.
  cluster-lost  stops the cluster's klusterlet operator and agents (scaled to zero). The lease
                lapses, the hub taints the cluster, and the placement moves the app to a standby.
  main-lost     (fleets with hub.standby) stops what the main home serves. On a cloud: its entry
                (HAProxy scaled to zero), its database (MariaDB scaled to zero) and, with the
                standby OCM hub, its acceptance of the agents (hubAcceptsClient false on every
                ManagedCluster), so that they move. On kind: the main cluster's containers
                (docker stop). It then measures the errors at the public name (or at the second
                entry, without DNS), the seconds until the second entry serves, until writes work
                again after the promotion (which --promote runs, or which it asks for), and
                until every agent is on the standby hub.

While the fault lasts (and after it is restored, until the fleet is back to normal) the drill
sends a bounded stream of GET requests to the public URL, marked with the header
X-Ocm-Fleet-Drill so the load balancer names the cluster that answered (X-Served-By). It then
reports the errors seen, the time until the load balancer stopped using the cluster, the time
until a standby served (cluster-lost), and the time back to normal. Whatever it changed is put
back, also when it is interrupted (Ctrl-C, SIGTERM) or fails. main-lost does not undo the
promotion or move the agents back: those are decisions with their own steps, which it prints.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

DRILL_HEADER = "X-Ocm-Fleet-Drill"
SERVED_BY = "X-Served-By"
APP_NAMESPACE = "bookstore"
EDGE_SERVICE = "bookstore-edge"
CLOSED_SELECTOR = "ocm-fleet.io/drill"
AGENT_NAMESPACES = ("open-cluster-management", "open-cluster-management-agent")
"""The klusterlet operator first (it would restart the agents), then the agents."""
# What the main home serves, by the names the program gives it (tests/test_drill_main_lost.py
# checks them against components/edge/public_load_balancer.py and components/app/database.py).
ENTRY_NAMESPACE, ENTRY_DEPLOYMENT = "ocm-fleet-ingress", "public-lb"
DATABASE_NAMESPACE, DATABASE_STATEFULSET = "bookstore-data", "mariadb"
KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"
"""The label kind puts on a cluster's node containers, valued with the cluster's name."""
AGENT_LEASE = "managed-cluster-lease"
"""The Lease each registration agent renews in its cluster namespace on its hub
(ocm pkg/registration/spoke/lease/lease_controller.go, leaseUpdater.update)."""
WRITE_PROBE_BOOK = {
    "title": "ocm-fleet drill write probe",
    "description": "created and deleted at once by scripts/drill.py --fault main-lost",
}


@dataclass
class Sample:
    at: float
    """Seconds since the drill started."""
    status: int
    """HTTP status, 0 when no answer came."""
    served_by: str | None


@dataclass
class Report:
    fault: str
    cluster: str
    requests: int = 0
    errors: int = 0
    out_after: float | None = None
    """Seconds from the fault until the load balancer stopped sending requests to the cluster."""
    standby_after: float | None = None
    """Seconds from the fault until a cluster that did not serve before served."""
    back_after: float | None = None
    """Seconds from the restore until the same clusters serve as before the fault."""
    baseline: list[str] = field(default_factory=list)
    timeline: list[Sample] = field(default_factory=list)

    def table(self) -> str:
        def seconds(value: float | None) -> str:
            return "never" if value is None else f"{value:.1f} s"

        rows = [
            ("fault", f"{self.fault} on {self.cluster}"),
            ("clusters serving before", ", ".join(self.baseline) or "none"),
            ("requests sent", str(self.requests)),
            ("errors seen", f"{self.errors} ({self.errors / max(self.requests, 1):.1%})"),
            ("load balancer stopped using the cluster", seconds(self.out_after)),
        ]
        if self.fault == "cluster-lost":
            rows.append(("a standby served", seconds(self.standby_after)))
        rows.append(("back to normal after the restore", seconds(self.back_after)))
        width = max(len(k) for k, _ in rows)
        lines = [f"| {'measure'.ljust(width)} | value |", f"| {'-' * width} | --- |"]
        lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
        return "\n".join(lines)


class Fault:
    """A change to the fleet that `inject` makes and `restore` undoes (idempotently)."""

    name = "fault"

    def inject(self) -> None:
        raise NotImplementedError

    def restore(self) -> None:
        raise NotImplementedError

    def check(self) -> list[str]:
        """After the restore: what is not back as it was, one line each (nothing when all is)."""
        return []


class CloseEdge(Fault):
    """app-down: the edge Service selects no pod, so the load balancer's checks fail."""

    name = "app-down"

    def __init__(self, kubectl: Callable[..., str]):
        self.kubectl = kubectl

    def inject(self) -> None:
        patch = {"spec": {"selector": {CLOSED_SELECTOR: "closed"}}}
        self.kubectl("-n", APP_NAMESPACE, "patch", "service", EDGE_SERVICE, "--type=merge",
                     "-p", json.dumps(patch))  # fmt: skip

    def restore(self) -> None:
        selector = json.loads(
            self.kubectl("-n", APP_NAMESPACE, "get", "service", EDGE_SERVICE, "-o",
                         "jsonpath={.spec.selector}") or "{}"
        )  # fmt: skip
        if CLOSED_SELECTOR in selector:
            key = CLOSED_SELECTOR.replace("/", "~1")
            remove = [{"op": "remove", "path": f"/spec/selector/{key}"}]
            self.kubectl("-n", APP_NAMESPACE, "patch", "service", EDGE_SERVICE, "--type=json",
                         "-p", json.dumps(remove))  # fmt: skip


class StopAgents(Fault):
    """cluster-lost: the klusterlet operator and agents scaled to zero; the previous replica
    counts are recorded first and put back on restore."""

    name = "cluster-lost"

    def __init__(self, kubectl: Callable[..., str]):
        self.kubectl = kubectl
        self.replicas: dict[tuple[str, str], int] = {}

    def inject(self) -> None:
        for namespace in AGENT_NAMESPACES:
            listed = json.loads(self.kubectl("-n", namespace, "get", "deployments", "-o", "json"))
            for item in listed.get("items", []):
                name = item["metadata"]["name"]
                self.replicas[(namespace, name)] = item["spec"].get("replicas", 1)
        for namespace, name in self.replicas:
            self.kubectl("-n", namespace, "scale", "deployment", name, "--replicas=0")

    def restore(self) -> None:
        for (namespace, name), count in self.replicas.items():
            self.kubectl("-n", namespace, "scale", "deployment", name, f"--replicas={count}")


class ScaleToZero(Fault):
    """A Deployment or StatefulSet scaled to zero; its replica count is read first and put back."""

    name = "scale"

    def __init__(self, kubectl: Callable[..., str], namespace: str, kind: str, workload: str):
        self.kubectl, self.namespace, self.kind, self.workload = kubectl, namespace, kind, workload
        self.replicas: int | None = None

    def describe(self) -> str:
        return f"{self.kind} {self.namespace}/{self.workload} scaled to 0 (was {self.replicas})"

    def _read(self) -> int:
        out = self.kubectl("-n", self.namespace, "get", self.kind, self.workload, "-o",
                           "jsonpath={.spec.replicas}")  # fmt: skip
        return int(out.strip() or 1)

    def inject(self) -> None:
        self.replicas = self._read()
        self.kubectl("-n", self.namespace, "scale", self.kind, self.workload, "--replicas=0")

    def restore(self) -> None:
        if self.replicas is not None:
            self.kubectl("-n", self.namespace, "scale", self.kind, self.workload,
                         f"--replicas={self.replicas}")  # fmt: skip

    def check(self) -> list[str]:
        if self.replicas is None:
            return []
        now = self._read()
        if now != self.replicas:
            return [f"{self.kind} {self.namespace}/{self.workload} has {now} replicas, "
                    f"not {self.replicas}"]  # fmt: skip
        return []


class RefuseAgents(Fault):
    """The main hub stops accepting the agents: `hubAcceptsClient: false` on each ManagedCluster.

    Why not stop the hub's controllers instead: an agent renews its Lease on the hub's API server
    itself (ocm pkg/registration/spoke/lease/lease_controller.go, leaseUpdater.update) and its
    hub-timeout check reads that Lease (pkg/registration/spoke/registration/
    hub_timeout_controller.go, sync), so with the API server up and the controllers down no agent
    ever times out; and an agent that restarts keeps a hub whose bootstrap kubeconfig still
    passes its access review and accepts it (pkg/registration/spoke/bootstrapkubeconfigs.go,
    selectBootstrapKubeConfigs, checkBootstrapKubeConfigValid). A refusal is the one change,
    short of taking the API server away, that makes every agent re-select (hub_accept_controller
    .go, sync): it moves them at once, so a real loss adds the hub-connection timeout to the
    figure the drill reports (`hubConnectionTimeoutSeconds`: minimum 180, default 600 in the
    1.3.1 Klusterlet CRD; the timeout controller resyncs every minute). Restored to the values
    read."""

    name = "refuse-agents"

    def __init__(self, kubectl: Callable[..., str], clusters: list[str]):
        self.kubectl, self.clusters = kubectl, clusters
        self.accepted: dict[str, bool] = {}

    def describe(self) -> str:
        return f"main hub refuses the agents of {', '.join(self.clusters)} (hubAcceptsClient false)"

    def _read(self, cluster: str) -> bool:
        out = self.kubectl("get", "managedcluster", cluster, "-o",
                           "jsonpath={.spec.hubAcceptsClient}")  # fmt: skip
        return out.strip() == "true"

    def _set(self, cluster: str, accepts: bool) -> None:
        patch = {"spec": {"hubAcceptsClient": accepts}}
        self.kubectl("patch", "managedcluster", cluster, "--type=merge", "-p", json.dumps(patch))

    def inject(self) -> None:
        for cluster in self.clusters:
            self.accepted[cluster] = self._read(cluster)
            self._set(cluster, False)

    def restore(self) -> None:
        failed = []
        for cluster, accepts in self.accepted.items():
            try:
                self._set(cluster, accepts)
            except Exception as err:  # the other clusters must still be restored
                failed.append(f"{cluster}: {err}")
        if failed:
            raise RuntimeError("; ".join(failed))

    def check(self) -> list[str]:
        return [
            f"managedcluster {cluster} on the main hub has hubAcceptsClient {not accepts}"
            for cluster, accepts in self.accepted.items()
            if self._read(cluster) != accepts
        ]


class StopContainers(Fault):
    """A kind cluster lost: every node container of it stopped, and started again on restore."""

    name = "stop-containers"

    def __init__(self, docker: Callable[..., str], kind_name: str):
        self.docker, self.kind_name = docker, kind_name
        self.containers: list[str] = []

    def describe(self) -> str:
        return f"containers {', '.join(self.containers)} stopped"

    def inject(self) -> None:
        listed = self.docker("ps", "--filter", f"label={KIND_CLUSTER_LABEL}={self.kind_name}",
                             "--format", "{{.Names}}")  # fmt: skip
        self.containers = sorted(listed.split())
        if not self.containers:
            raise DrillError(f"no running container of kind cluster {self.kind_name!r}")
        self.docker("stop", *self.containers)

    def restore(self) -> None:
        if self.containers:
            self.docker("start", *self.containers)

    def check(self) -> list[str]:
        if not self.containers:
            return []
        states = self.docker("inspect", "--format", "{{.State.Running}}", *self.containers)
        return [
            f"container {name} is not running"
            for name, running in zip(self.containers, states.split(), strict=False)
            if running != "true"
        ]


class MainLost(Fault):
    """main-lost: its steps injected in order and restored in reverse, each restore tried even
    when another fails (their errors are reported by `check`)."""

    name = "main-lost"

    def __init__(self, steps: list[Fault]):
        self.steps = steps
        self.injected: list[Fault] = []
        self.errors: list[str] = []

    def describe(self) -> list[str]:
        return [step.describe() for step in self.injected]

    def inject(self) -> None:
        for step in self.steps:
            # Recorded first: a step that fails half-way is still restored.
            self.injected.append(step)
            step.inject()

    def restore(self) -> None:
        self.errors = []
        for step in reversed(self.injected):
            try:
                step.restore()
            except Exception as err:  # every other step must still be restored
                self.errors.append(f"restoring {step.name}: {err}")

    def check(self) -> list[str]:
        problems = list(self.errors)
        for step in self.injected:
            try:
                problems += step.check()
            except Exception as err:  # reported, not raised
                problems.append(f"checking {step.name}: {err}")
        return problems


def probe(url: str, timeout: float) -> tuple[int, str | None]:
    request = urllib.request.Request(url, headers={DRILL_HEADER: "1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status, response.headers.get(SERVED_BY)
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get(SERVED_BY)
    except (OSError, urllib.error.URLError):
        return 0, None


def run_drill(
    url: str,
    fault: Fault,
    cluster: str,
    *,
    interval: float = 0.2,
    baseline_seconds: float = 5.0,
    fault_seconds: float = 60.0,
    min_fault_seconds: float = 15.0,
    recovery_seconds: float = 120.0,
    window: int = 20,
    timeout: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    send: Callable[[str, float], tuple[int, str | None]] = probe,
    on_phase: Callable[[str], None] = lambda _: None,
) -> Report:
    """Baseline, fault, restore; at most one request every `interval` seconds, each phase bounded.

    The fault phase ends early (after at least `min_fault_seconds`) once the load balancer has
    stopped using the cluster and, for cluster-lost, a standby has served; recovery ends once a
    window of answers comes from the same clusters as the baseline. "Stopped using" is the last
    answer the cluster gave: the load balancer retries a refused or failed GET on another
    cluster, so users' answers leave a broken cluster before its health checks mark it DOWN.
    """
    report = Report(fault=fault.name, cluster=cluster)
    start = clock()

    def sample() -> Sample:
        status, served_by = send(url, timeout)
        item = Sample(at=clock() - start, status=status, served_by=served_by)
        report.timeline.append(item)
        report.requests += 1
        if not 200 <= status < 400:
            report.errors += 1
        return item

    on_phase("baseline")
    until = clock() + baseline_seconds
    while clock() < until:
        sample()
        sleep(interval)
    baseline = {s.served_by for s in report.timeline if s.served_by}
    report.baseline = sorted(baseline)

    injected_at = clock() - start
    try:
        on_phase("fault")
        fault.inject()
        until = clock() + fault_seconds
        last_from_cluster = injected_at
        while clock() < until:
            item = sample()
            if item.served_by == cluster:
                last_from_cluster = item.at
            elif item.served_by and item.served_by not in baseline and report.standby_after is None:
                report.standby_after = item.at - injected_at
            recent = [s for s in report.timeline if s.at > injected_at][-window:]
            stopped = len(recent) == window and all(s.served_by != cluster for s in recent)
            # Long enough for the load balancer's own DOWN decision (fall 3 checks, 2 s apart).
            held = item.at - injected_at >= min_fault_seconds
            if held and stopped and (fault.name != "cluster-lost" or report.standby_after):
                break
            sleep(interval)
        recent = [s for s in report.timeline if s.at > injected_at][-window:]
        if len(recent) == window and all(s.served_by != cluster for s in recent):
            report.out_after = last_from_cluster - injected_at
    finally:
        on_phase("restore")
        fault.restore()
    restored_at = clock() - start

    on_phase("recovery")
    until = clock() + recovery_seconds
    while clock() < until:
        sample()
        after = [s for s in report.timeline if s.at > restored_at]
        recent = after[-window:]
        if len(recent) == window and {s.served_by for s in recent} == baseline:
            # Back when the cluster answers again and nothing outside the baseline still does.
            returned = min(s.at for s in recent if s.served_by == cluster)
            strays = [s.at for s in after if s.served_by and s.served_by not in baseline]
            report.back_after = max([returned, *strays]) - restored_at
            break
        sleep(interval)
    return report


def request(method: str, url: str, timeout: float, body: dict | None = None) -> tuple[int, str]:
    """One HTTP request marked as the drill's: (status, body), status 0 when no answer came."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {DRILL_HEADER: "1", **({"Content-Type": "application/json"} if data else {})}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, ""
    except (OSError, urllib.error.URLError):
        return 0, ""


class WriteProbe:
    """Whether the app takes writes: creates a book through the app's API (POST /api/books,
    201 with its id, shopapi's BooksController#create) and deletes it at once (DELETE
    /api/books/<id>). A book whose delete failed is deleted again by `cleanup`."""

    def __init__(self, base_url: str, timeout: float = 5.0, send=request):
        self.base_url, self.timeout, self.send = base_url.rstrip("/"), timeout, send
        self.leftover: list[int] = []

    def __call__(self) -> bool:
        url = f"{self.base_url}/api/books"
        status, body = self.send("POST", url, self.timeout, {"book": WRITE_PROBE_BOOK})
        if status != 201:
            return False
        try:
            book = int(json.loads(body)["book"]["id"])
        except (ValueError, KeyError, TypeError):
            return False
        if self.send("DELETE", f"{url}/{book}", self.timeout)[0] not in (200, 204):
            self.leftover.append(book)
            return False
        return True

    def cleanup(self) -> None:
        for book in list(self.leftover):
            status = self.send("DELETE", f"{self.base_url}/api/books/{book}", self.timeout)[0]
            if status in (200, 204, 404):
                self.leftover.remove(book)


def agents_on_hub(kubectl: Callable[..., str], clusters: list[str], since: float) -> bool:
    """Every cluster's ManagedCluster on this hub is Available=True and its agent's Lease was
    renewed after `since` (seconds since the epoch): an agent that registered there and is
    heartbeating, not a ManagedCluster declared in advance or a lease left from before."""
    managed = json.loads(kubectl("get", "managedclusters", "-o", "json"))
    available = {
        item["metadata"]["name"]
        for item in managed.get("items", [])
        for condition in (item.get("status") or {}).get("conditions") or []
        if condition.get("type") == "ManagedClusterConditionAvailable"
        and condition.get("status") == "True"
    }
    leases = json.loads(kubectl("get", "leases", "--all-namespaces", "--field-selector",
                                f"metadata.name={AGENT_LEASE}", "-o", "json"))  # fmt: skip
    renewed = set()
    for item in leases.get("items", []):
        renew = (item.get("spec") or {}).get("renewTime")
        if renew and datetime.datetime.fromisoformat(renew).timestamp() > since:
            renewed.add(item["metadata"]["namespace"])
    return set(clusters) <= available & renewed


def promote_commands(stack: str) -> list[list[str]]:
    return [
        # --path: `primary` is a key of the object `database` (docs/data.md, "Promotion").
        ["pulumi", "config", "set", "--path", "database.primary", "standby", "--stack", stack],
        ["pulumi", "up", "--yes", "--stack", stack],
    ]


PROMOTION_ENV = {"PULUMI_K8S_SKIP_UPDATE_UNREACHABLE": "true"}
"""For the promotion's `up`, as `deploy.sh --main-lost` sets it: the providers then skip the
objects of the clusters the fault made unreachable instead of failing the run on them
(docs/data.md, "Promotion")."""


def promotion_env(command: list[str]) -> dict[str, str]:
    """The variables one promotion command runs with, beyond the drill's own environment."""
    return dict(PROMOTION_ENV) if command[:2] == ["pulumi", "up"] else {}


def _run_command(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env={**os.environ, **env}
    )
    return done.returncode, "".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-1:])


class Promotion:
    """The database promotion: run (`automatic`, in a thread, so the probes go on) or asked for
    (the commands printed; the write probe then shows when it was done)."""

    def __init__(
        self,
        stack: str,
        automatic: bool,
        run: Callable[[list[str], dict[str, str]], tuple[int, str]] = _run_command,
        say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
        clock: Callable[[], float] = time.monotonic,
    ):
        self.commands = promote_commands(stack)
        self.automatic, self.run, self.say, self.clock = automatic, run, say, clock
        self.started: float | None = None
        self.finished: float | None = None
        self.failed: str | None = None
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        self.started = self.clock()
        shown = "\n".join(
            "    " + " ".join([*(f"{k}={v}" for k, v in promotion_env(command).items()), *command])
            for command in self.commands
        )
        if not self.automatic:
            self.say(f"drill: promote the standby database now, from another shell:\n{shown}")
            return
        self.say(f"drill: promoting the standby database:\n{shown}")
        self._thread = threading.Thread(target=self._promote, daemon=True)
        self._thread.start()

    def _promote(self) -> None:
        for command in self.commands:
            code, last = self.run(command, promotion_env(command))
            if code != 0:
                self.failed = f"{' '.join(command[:3])} exited {code}: {last}"
                break
        self.finished = self.clock()

    def wait(self, seconds: float | None) -> None:
        if self._thread is not None:
            self._thread.join(seconds)


@dataclass
class MainLostReport:
    target: str
    """What the drill's GETs went to: the public name, or the second entry without DNS."""
    via_name: bool = False
    """Whether `target` is the public name."""
    stopped: list[str] = field(default_factory=list)
    interval: float = 0.0
    requests: int = 0
    baseline_errors: int = 0
    failed_during: int = 0
    """Failed GETs from the fault until the first answer served by the second entry."""
    failed_after: int = 0
    """Failed GETs after that, until the restore."""
    served_after: float | None = None
    """Seconds from the fault to the first good answer at the target: the takeover."""
    second_entry_after: float | None = None
    """Seconds from the fault until the second entry itself served (probed directly, with DNS)."""
    promotion_at: float | None = None
    promotion_run: bool = False
    """Whether the drill ran the promotion (--promote) or asked for it."""
    promotion_done: float | None = None
    promotion_failed: str | None = None
    writes_after: float | None = None
    """Seconds from the fault until a write went through again."""
    agents_after: float | None = None
    """Seconds from the fault until every agent was on the standby hub (None: no standby hub)."""
    standby_hub: bool = False
    restore_problems: list[str] = field(default_factory=list)
    failed_after_restore: int = 0
    writes_after_restore: bool | None = None
    leftover_books: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def restore_ok(self) -> bool:
        return not self.restore_problems

    def table(self) -> str:
        def seconds(value: float | None) -> str:
            return "never" if value is None else f"{value:.1f} s"

        def since_promotion(value: float | None) -> str:
            if value is None or self.promotion_at is None:
                return ""
            return f" ({value - self.promotion_at:.1f} s after the promotion began)"

        rows = [
            ("fault", "main-lost: " + ("; ".join(self.stopped) or "nothing stopped")),
            (
                "requests to",
                f"{self.target} ("
                + ("the public name)" if self.via_name else "the second entry; no DNS name)"),
            ),
            ("requests sent (one per)", f"{self.requests} ({self.interval:g} s)"),
            ("failed before the fault (baseline)", str(self.baseline_errors)),
            ("failed during the failover", str(self.failed_during)),
            ("failed once the second entry served", str(self.failed_after)),
            ("the second entry served through the target", seconds(self.served_after)),
        ]
        if self.via_name:
            rows.append(("the second entry itself served", seconds(self.second_entry_after)))
        promotion = seconds(self.promotion_at)
        if self.promotion_done is not None:
            promotion += f", done at {self.promotion_done:.1f} s"
        if self.promotion_failed:
            promotion += f" ({self.promotion_failed})"
        rows.append(("promotion began" if self.promotion_run else "promotion asked for", promotion))
        writes = seconds(self.writes_after) + since_promotion(self.writes_after)
        rows.append(("writes work again", writes))
        if self.standby_hub:
            rows.append(("every agent on the standby hub", seconds(self.agents_after)))
        rows += [
            ("restored", "OK" if self.restore_ok else "; ".join(self.restore_problems)),
            ("failed after the restore", str(self.failed_after_restore)),
            ("writes after the restore", WRITES_AFTER_RESTORE[self.writes_after_restore]),
        ]
        if self.leftover_books:
            rows.append(
                ("probe books left (delete them)", ", ".join(map(str, self.leftover_books)))
            )
        width = max(len(k) for k, _ in rows)
        lines = [f"| {'measure'.ljust(width)} | value |", f"| {'-' * width} | --- |"]
        lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
        return "\n".join(lines + self.notes)


WRITES_AFTER_RESTORE = {None: "not probed", True: "OK", False: "FAILED"}

_shield = threading.Event()
"""Set while the fleet is being restored: a signal then waits for the restore to finish."""


def _on_signal(signum: int, _frame) -> None:
    if _shield.is_set():
        print("drill: restoring the fleet first; interrupt again once it is done",
              file=sys.stderr, flush=True)  # fmt: skip
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM become KeyboardInterrupt, so every `finally` restores the fleet; during
    a restore they are held off until it is done."""
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


@contextlib.contextmanager
def _shielded() -> Iterator[None]:
    _shield.set()
    try:
        yield
    finally:
        _shield.clear()


def run_main_lost(
    target: str,
    fault: MainLost,
    promotion: Promotion,
    *,
    write: Callable[[], bool],
    second_entry: str | None = None,
    agents: Callable[[float], bool] | None = None,
    interval: float = 0.2,
    write_interval: float = 2.0,
    agents_interval: float = 10.0,
    promote_after: float = 0.0,
    baseline_seconds: float = 5.0,
    fault_seconds: float = 900.0,
    settle_seconds: float = 10.0,
    after_restore_seconds: float = 15.0,
    timeout: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    send: Callable[[str, float], tuple[int, str | None]] = probe,
    on_phase: Callable[[str], None] = lambda _: None,
) -> MainLostReport:
    """Baseline, fault, restore, a short look after it; at most one GET every `interval` s.

    `target` gets the GETs: the public name, or the second entry where there is no DNS; with a
    name, `second_entry` is probed directly too, which tells the entry's part from the name's.
    The promotion begins `promote_after` seconds into the fault. `write` is tried every
    `write_interval` s until it succeeds; `agents(since)` (with a standby hub) every
    `agents_interval` s until every agent is there. The fault ends `settle_seconds` after all
    of them have happened, or after `fault_seconds`: the GETs of the settle time are what
    "failed once the second entry served" counts.
    """
    report = MainLostReport(target=target, via_name=second_entry is not None, interval=interval)
    report.standby_hub = agents is not None
    report.promotion_run = promotion.automatic

    def get(url: str) -> bool:
        status, _ = send(url, timeout)
        return 200 <= status < 400

    on_phase("baseline")
    until = clock() + baseline_seconds
    while clock() < until:
        report.requests += 1
        report.baseline_errors += not get(target)
        sleep(interval)

    fault_at, fault_wall = clock(), wall()
    try:
        on_phase("fault")
        fault.inject()
        report.stopped = fault.describe()
        next_write = next_agents = 0.0
        complete_at = None
        while (now := clock() - fault_at) < fault_seconds:
            if report.promotion_at is None and now >= promote_after:
                promotion.begin()
                report.promotion_at = now
            report.requests += 1
            if get(target):
                if report.served_after is None:
                    report.served_after = clock() - fault_at
            elif report.served_after is None:
                report.failed_during += 1
            else:
                report.failed_after += 1
            if second_entry and report.second_entry_after is None and get(second_entry):
                report.second_entry_after = clock() - fault_at
            if report.writes_after is None and now >= next_write:
                next_write = now + write_interval
                if write():
                    report.writes_after = clock() - fault_at
            if agents is not None and report.agents_after is None and now >= next_agents:
                next_agents = now + agents_interval
                try:
                    if agents(fault_wall):
                        report.agents_after = clock() - fault_at
                    report.notes = []
                except Exception as err:  # the hub may not answer yet
                    report.notes = [f"drill: the last look at the standby hub failed: {err}"]
            done = report.served_after is not None and report.writes_after is not None
            if done and (agents is None or report.agents_after is not None):
                complete_at = complete_at if complete_at is not None else now
                if now - complete_at >= settle_seconds:
                    break
            sleep(interval)
    finally:
        with _shielded():
            on_phase("restore")
            fault.restore()
            report.restore_problems = fault.check()
        if report.promotion_at is not None and promotion.finished is not None:
            # The promotion's own clock: only its duration is carried over.
            took = promotion.finished - promotion.started
            report.promotion_done = report.promotion_at + took
        report.promotion_failed = promotion.failed

    on_phase("after the restore")
    restored_at = clock()
    while clock() - restored_at < after_restore_seconds:
        report.requests += 1
        report.failed_after_restore += not get(target)
        sleep(interval)
    if report.writes_after is not None:
        report.writes_after_restore = write()
    if isinstance(write, WriteProbe):
        write.cleanup()
        report.leftover_books = list(write.leftover)
    return report


class DrillError(Exception):
    """The drill cannot start; the message is the one line the user sees."""


def _stack_outputs(stack: str) -> dict:
    if shutil.which("pulumi") is None:
        raise DrillError(
            "the Pulumi CLI is not on PATH; put it there (./scripts/deploy.sh installs it into "
            ".tools/pulumi-<version>/pulumi) and run again"
        )
    done = subprocess.run(
        ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise DrillError(
            f"cannot read the outputs of stack {stack!r} ({last}); deploy it first "
            f"(./scripts/deploy.sh {stack}) or select its backend (pulumi login)"
        )
    try:
        return json.loads(done.stdout)
    except ValueError as err:
        raise DrillError(f"stack {stack!r} has no outputs to drill against ({err})") from err


def _kubectl_for(kubeconfig: str, workdir: Path, name: str = "kubeconfig") -> Callable[..., str]:
    path = workdir / name
    path.write_text(kubeconfig)
    path.chmod(0o600)

    def kubectl(*args: str) -> str:
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(path), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:4])} ...: {done.stderr.strip()}")
        return done.stdout

    return kubectl


def _docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:2])} ...: {done.stderr.strip()}")
    return done.stdout


@dataclass
class MainLostPlan:
    """What main-lost needs from the stack's outputs, checked before anything is changed."""

    target: str
    second_entry: str | None
    hub: str
    cloud: str
    clusters: list[str]
    standby_hub: str | None
    """The second home, whose kubeconfig reaches the standby OCM hub, when that hub is on."""


def main_lost_plan(outputs: dict) -> MainLostPlan:
    entries = outputs.get("entryUrls") or []
    if not outputs.get("hubStandby") or len(entries) != 2:
        raise DrillError(
            "main-lost needs a fleet with a second home (ocm-fleet:hub.standby) and its entry "
            f"(stack output entryUrls with two addresses, found {entries!r})"
        )
    hub = outputs.get("hub") or {}
    kubeconfigs = outputs.get("kubeconfigs") or {}
    # The standby hub runs on the second home: its kubeconfig is that home's.
    standby = next(iter(outputs["hubStandby"])) if outputs.get("standbyHub") else None
    for home in filter(None, [hub.get("name"), standby]):
        if home not in kubeconfigs:
            raise DrillError(f"the stack output kubeconfigs has no kubeconfig of {home!r}")
    name = outputs.get("publicNameUrl")
    second = entries[1].rstrip("/")
    return MainLostPlan(
        target=(name or second).rstrip("/"),
        second_entry=second if name else None,
        hub=hub["name"],
        cloud=hub.get("cloud", ""),
        clusters=sorted(outputs.get("clusters") or {}),
        standby_hub=standby,
    )


def main_lost_fault(
    plan: MainLostPlan,
    stack: str,
    kubectl: Callable[..., str],
    docker: Callable[..., str],
) -> MainLost:
    """On kind the main cluster's containers stop; on a cloud, through the main cluster's
    kubectl, its entry and database scale to zero and, with a standby hub, the main hub refuses
    the agents (RefuseAgents says why that and not the hub's controllers)."""
    if plan.cloud == "kind":
        return MainLost([StopContainers(docker, f"{stack}-{plan.hub}")])
    steps: list[Fault] = [
        ScaleToZero(kubectl, ENTRY_NAMESPACE, "deployment", ENTRY_DEPLOYMENT),
        ScaleToZero(kubectl, DATABASE_NAMESPACE, "statefulset", DATABASE_STATEFULSET),
    ]
    if plan.standby_hub:
        steps.append(RefuseAgents(kubectl, plan.clusters))
    return MainLost(steps)


AFTER_MAIN_LOST = """drill: left as the drill found it after the loss, not as before it:
  - the database primary is the standby's if the promotion ran; the former primary came back
    read-only: rejoin it (docs/data.md, "Losing the main cluster: the data") before moving the
    primary back with `pulumi config set --path database.primary main` and
    `./scripts/deploy.sh <stack> -- --refresh`;
  - with the standby hub, the agents stay on it: `./scripts/return_to_main_hub.sh <stack>`
    brings the main hub's replica set up to date, then sends them back
    (docs/standby-hub.md, "Going back to the main hub")."""


def _main_lost(args: argparse.Namespace, outputs: dict) -> int:
    try:
        plan = main_lost_plan(outputs)
    except DrillError as err:
        print(f"drill: {err}", file=sys.stderr)
        return 1
    if plan.cloud == "kind" and shutil.which("docker") is None:
        print("drill: docker is not on PATH; the kind fleet's main cluster is stopped with it",
              file=sys.stderr)  # fmt: skip
        return 1
    kubeconfigs = outputs["kubeconfigs"]
    install_signal_handlers()
    say = lambda phase: print(f"drill: {phase}", file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as workdir:
        main_kubectl = _kubectl_for(kubeconfigs[plan.hub], Path(workdir), "main")
        fault = main_lost_fault(plan, args.stack, main_kubectl, _docker)
        agents = None
        if plan.standby_hub:
            standby = _kubectl_for(kubeconfigs[plan.standby_hub], Path(workdir), "standby")
            agents = lambda since: agents_on_hub(standby, plan.clusters, since)  # noqa: E731
        promotion = Promotion(args.stack, automatic=args.promote)
        try:
            report = run_main_lost(
                plan.target + "/api/books",
                fault,
                promotion,
                write=WriteProbe(plan.target),
                second_entry=plan.second_entry and plan.second_entry + "/api/books",
                agents=agents,
                interval=args.interval,
                promote_after=args.promote_after,
                fault_seconds=args.fault_seconds or 900,
                after_restore_seconds=min(args.recovery_seconds, 15),
                on_phase=say,
            )
        except (DrillError, RuntimeError) as err:
            # Raised by kubectl or docker while breaking the fleet; run_main_lost restored it.
            problems = fault.check()
            print(f"drill: {err}; what the drill had changed was undone"
                  + ("" if not problems else ", except: " + "; ".join(problems)),
                  file=sys.stderr)  # fmt: skip
            return 1
        except KeyboardInterrupt:
            with _shielded():
                fault.restore()
            problems = fault.check()
            print("drill: interrupted; the fault was undone"
                  + ("" if not problems else ", except: " + "; ".join(problems)),
                  file=sys.stderr)  # fmt: skip
            if promotion.started is not None and promotion.finished is None and args.promote:
                print("drill: the promotion (pulumi up) was still running; check it with "
                      f"`pulumi stack history --stack {args.stack}`", file=sys.stderr)  # fmt: skip
            return 130
    if args.promote and promotion.started is not None and promotion.finished is None:
        # Left alone, the promotion would go on unseen after the drill exits.
        say("waiting for the promotion (pulumi up) to finish")
        promotion.wait(None)
    print(report.table())
    print(AFTER_MAIN_LOST, file=sys.stderr)
    return 0 if report.restore_ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument(
        "--cluster", help="the app cluster to break (app-down, cluster-lost; not main-lost)"
    )
    parser.add_argument("--fault", choices=("app-down", "cluster-lost", "main-lost"), required=True)
    parser.add_argument(
        "--fault-seconds",
        type=float,
        default=None,
        help="longest fault phase (default 60 for app-down, 600 for cluster-lost, 900 for "
        "main-lost)",
    )
    parser.add_argument(
        "--recovery-seconds",
        type=float,
        default=600,
        help="longest recovery phase (main-lost: the look after the restore, at most 15)",
    )
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between requests")
    parser.add_argument(
        "--promote",
        action="store_true",
        help="main-lost: run the promotion (pulumi config set --path database.primary "
        "standby, then PULUMI_K8S_SKIP_UPDATE_UNREACHABLE=true pulumi up --yes) instead of "
        "printing it for you to run",
    )
    parser.add_argument(
        "--promote-after",
        type=float,
        default=0.0,
        help="main-lost: seconds into the fault before the promotion begins (default 0)",
    )
    args = parser.parse_args(argv)
    if args.fault == "main-lost" and args.cluster:
        parser.error("main-lost breaks the main home: give no --cluster")
    if args.fault != "main-lost" and not args.cluster:
        parser.error(f"{args.fault} needs --cluster, the app cluster to break")
    if args.fault != "main-lost" and args.promote:
        parser.error("--promote belongs to --fault main-lost")

    try:
        outputs = _stack_outputs(args.stack)
    except DrillError as err:
        print(f"drill: {err}", file=sys.stderr)
        return 1
    if shutil.which("kubectl") is None:
        print("drill: kubectl is not on PATH; install it and run again", file=sys.stderr)
        return 1
    if args.fault == "main-lost":
        return _main_lost(args, outputs)
    kubeconfigs = outputs.get("kubeconfigs") or {}
    if args.cluster not in kubeconfigs or args.cluster not in outputs.get("clusters", {}):
        parser.error(f"{args.cluster!r} is not an app cluster of stack {args.stack!r}")
    url = outputs["url"].rstrip("/") + "/api/books"
    fault_seconds = args.fault_seconds or (60 if args.fault == "app-down" else 600)

    # SIGTERM becomes an exception too, so the finally below restores the fleet.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with tempfile.TemporaryDirectory() as workdir:
        kubectl = _kubectl_for(kubeconfigs[args.cluster], Path(workdir))
        fault = CloseEdge(kubectl) if args.fault == "app-down" else StopAgents(kubectl)
        try:
            report = run_drill(
                url,
                fault,
                args.cluster,
                interval=args.interval,
                fault_seconds=fault_seconds,
                recovery_seconds=args.recovery_seconds,
                on_phase=lambda phase: print(f"drill: {phase}", file=sys.stderr, flush=True),
            )
        except KeyboardInterrupt:
            fault.restore()
            print("drill: interrupted; the fault was undone", file=sys.stderr)
            return 130
    print(report.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
