"""How fast the public load balancer takes a broken app cluster out, and puts it back.

Run: .venv/bin/python bench/failover.py [--trials 5]

Runs the real rendered HAProxy config (components/edge/_haproxy.py) with the real haproxy binary in
front of two stand-in clusters on loopback addresses, breaks one in three ways, and times
HAProxy's own DOWN and UP decisions. Prints a Markdown table; the budget is about 10 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from haproxy_live import haproxy_binary, live_fleet  # noqa: E402

LIMIT = 60.0
PHASE = random.Random(7)


def break_cluster(cluster, fault: str) -> None:
    if fault == "503 answers":
        cluster.healthy = False
    elif fault == "connection refused":
        cluster.stop()
    elif fault == "no answer":
        cluster.silent = True


def heal_cluster(cluster, fault: str) -> None:
    if fault == "503 answers":
        cluster.healthy = True
    elif fault == "connection refused":
        cluster.start()
    elif fault == "no answer":
        cluster.silent = False


def trial(fault: str) -> tuple[float | None, float | None]:
    with (
        tempfile.TemporaryDirectory() as workdir,
        live_fleet(["app-a", "app-b"], Path(workdir)) as (proxy, clusters),
    ):
        # Let the first checks pass, then break at a random point of the 2 s check cycle.
        time.sleep(1 + PHASE.uniform(0, 2))
        broken = time.monotonic()
        break_cluster(clusters["app-b"], fault)
        down = proxy.wait_for_event("app-b", "DOWN", broken, LIMIT)
        healed = time.monotonic()
        heal_cluster(clusters["app-b"], fault)
        up = proxy.wait_for_event("app-b", "UP", healed, LIMIT)
        return down, up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    if haproxy_binary() is None:
        sys.exit("haproxy is not installed (Debian package: haproxy)")

    print(f"| fault | taken out (s), median / max of {args.trials} | put back (s), median / max |")
    print("| --- | ---: | ---: |")
    for fault in ("503 answers", "connection refused", "no answer"):
        results = [trial(fault) for _ in range(args.trials)]
        cells = []
        for values in zip(*results, strict=True):
            known = [v for v in values if v is not None]
            missed = len(values) - len(known)
            cell = f"{statistics.median(known):.1f} / {max(known):.1f}" if known else "-"
            cells.append(cell + (f" ({missed} never)" if missed else ""))
        print(f"| {fault} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
