#!/usr/bin/env python3
"""Failure drill against a live fleet: break one app cluster, watch the public URL, restore.

Run from the repository root, with the stack deployed and the Pulumi CLI logged in:

    .venv/bin/python scripts/drill.py --stack dev --cluster app-aws --fault app-down
    .venv/bin/python scripts/drill.py --stack dev --cluster app-aws --fault cluster-lost

Faults:
  app-down      closes the cluster's edge (its Service selects no pod). Only the public load
                balancer reacts; OCM's placement does not, since the cluster stays available.
  cluster-lost  stops the cluster's klusterlet operator and agents (scaled to zero). The lease
                lapses, the hub taints the cluster, and the placement moves the app to a standby.

While the fault lasts (and after it is restored, until the fleet is back to normal) the drill
sends a bounded stream of GET requests to the public URL, marked with the header
X-Ocm-Fleet-Drill so the load balancer names the cluster that answered (X-Served-By). It then
reports the errors seen, the time until the load balancer stopped using the cluster, the time
until a standby served (cluster-lost), and the time back to normal. Whatever it changed is put
back, also when it is interrupted (Ctrl-C, SIGTERM) or fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DRILL_HEADER = "X-Ocm-Fleet-Drill"
SERVED_BY = "X-Served-By"
APP_NAMESPACE = "bookstore"
EDGE_SERVICE = "bookstore-edge"
CLOSED_SELECTOR = "ocm-fleet.io/drill"
AGENT_NAMESPACES = ("open-cluster-management", "open-cluster-management-agent")
"""The klusterlet operator first (it would restart the agents), then the agents."""


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


def _kubectl_for(kubeconfig: str, workdir: Path) -> Callable[..., str]:
    path = workdir / "kubeconfig"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--cluster", required=True, help="the app cluster to break")
    parser.add_argument("--fault", choices=("app-down", "cluster-lost"), required=True)
    parser.add_argument(
        "--fault-seconds",
        type=float,
        default=None,
        help="longest fault phase (default 60 for app-down, 600 for cluster-lost)",
    )
    parser.add_argument("--recovery-seconds", type=float, default=600)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between requests")
    args = parser.parse_args(argv)

    try:
        outputs = _stack_outputs(args.stack)
    except DrillError as err:
        print(f"drill: {err}", file=sys.stderr)
        return 1
    if shutil.which("kubectl") is None:
        print("drill: kubectl is not on PATH; install it and run again", file=sys.stderr)
        return 1
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
