"""The failure drill's numbers: the real HAProxy with the rendered public config in front of
stand-in clusters on loopback, each fault run a few times.

Run: .venv/bin/python bench/drill.py [--trials 3] [--takeover 6]

`--takeover` stands in for OCM's part of a cluster loss (lease, taint, toleration, placement,
apply, pods ready), which no loopback stand-in can reproduce: on a live fleet it is about four
minutes (docs/rollout-and-failover.md, "Losing a cluster"); scripts/drill.py measures it there.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from haproxy_live import haproxy_binary, live_fleet  # noqa: E402
from test_drill import StandInAppDown, StandInClusterLost  # noqa: E402

_spec = importlib.util.spec_from_file_location("drill", ROOT / "scripts" / "drill.py")
drill = importlib.util.module_from_spec(_spec)
sys.modules["drill"] = drill  # dataclasses look their module up there
_spec.loader.exec_module(drill)


def trial(fault_name: str, takeover: float):
    with tempfile.TemporaryDirectory() as workdir:
        names = ["app-a", "app-b", "zz-standby"]
        with live_fleet(names, Path(workdir)) as (proxy, clusters):
            standby = clusters["zz-standby"]
            standby.healthy = False
            proxy.wait_for_event("zz-standby", "DOWN", time.monotonic() - 30, 45)
            if fault_name == "app-down":
                fault = StandInAppDown(clusters["app-b"])
            else:
                fault = StandInClusterLost(clusters["app-b"], standby, takeover, give_back=3)
            return drill.run_drill(
                f"http://127.0.0.1:{proxy.port}/api/books", fault, "app-b", interval=0.1,
                baseline_seconds=3, window=10, fault_seconds=60, min_fault_seconds=10,
                recovery_seconds=60,
            )  # fmt: skip


def cell(values) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    missed = len(values) - len(known)
    text = f"{statistics.median(known):.1f} / {max(known):.1f}"
    return text + (f" ({missed} never)" if missed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--takeover", type=float, default=6.0)
    args = parser.parse_args()
    if haproxy_binary() is None:
        sys.exit("haproxy is not installed (Debian package: haproxy)")
    print(
        f"| fault | requests | errors | LB stopped using it (s) | standby served (s) "
        f"| back to normal (s) |  (median / max of {args.trials})"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for fault in ("app-down", "cluster-lost"):
        reports = [trial(fault, args.takeover) for _ in range(args.trials)]
        print(
            f"| {fault} | {statistics.median(r.requests for r in reports):.0f} "
            f"| {statistics.median(r.errors for r in reports):.0f} "
            f"| {cell([r.out_after for r in reports])} "
            f"| {cell([r.standby_after for r in reports]) if fault == 'cluster-lost' else 'n/a'} "
            f"| {cell([r.back_after for r in reports])} |"
        )


if __name__ == "__main__":
    main()
