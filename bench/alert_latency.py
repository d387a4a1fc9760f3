"""How long from a broken app cluster to the ClusterOutOfPublicEntry alert firing.

Run: .venv/bin/python bench/alert_latency.py [--trials 3] [--for-seconds 3] [--interval 1]

Runs the real rendered public-entry HAProxy config with the real haproxy binary in front of two
stand-in clusters on loopback, and Debian's Prometheus with the program's scrape job and alert
rules (intervals and the alert's `for` shortened as given), breaks one cluster (503 answers) at a
random point of the check cycle, and times HAProxy's DOWN decision and Prometheus's firing
alert. Prints a Markdown table. With the deployed settings (`for` 1 m, scrape 15 s, evaluation
30 s) expect about the HAProxy time + 60 s + up to 45 s.
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

import test_observability_live as live  # noqa: E402
from haproxy_live import haproxy_binary, live_fleet  # noqa: E402

from components.observability import _prometheus  # noqa: E402

LIMIT = 90.0
PHASE = random.Random(11)


def trial() -> tuple[float | None, float | None]:
    with (
        tempfile.TemporaryDirectory() as workdir,
        live_fleet(live.CLUSTERS, Path(workdir)) as (proxy, clusters),
        live.live_prometheus(proxy.metrics_port, Path(workdir)) as prometheus,
    ):
        # Both clusters in, scraped and evaluated, then a break at a random point.
        prometheus.wait_for(
            lambda: len(prometheus.query('haproxy_server_status{state="UP"} == 1')) == 2, 30
        )
        time.sleep(1 + PHASE.uniform(0, 2))
        broken = time.monotonic()
        clusters["app-b"].healthy = False
        fired = prometheus.wait_for(
            lambda: prometheus.firing("ClusterOutOfPublicEntry"), LIMIT, step=0.1
        )
        alert = time.monotonic() - broken if fired else None
        down = proxy.wait_for_event("app-b", "DOWN", broken, 0)
        return down, alert


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--for-seconds", type=int, default=3)
    parser.add_argument("--interval", type=int, default=1, help="scrape and evaluation, seconds")
    args = parser.parse_args()
    if not haproxy_binary() or not live.PROMETHEUS:
        print("haproxy and prometheus are needed (Debian packages haproxy, prometheus)")
        return 1
    live.SCRAPE_S = live.EVALUATION_S = args.interval
    live.TIMINGS = _prometheus.AlertTimings(
        cluster_out=f"{args.for_seconds}s", rate_window="10s", metrics_missing="60s"
    )
    rows = [trial() for _ in range(args.trials)]
    print(
        "| trial | HAProxy DOWN (s) | alert firing (s) | for + scrape + evaluation (s) |\n"
        "| --- | --- | --- | --- |"
    )
    extra = args.for_seconds + 2 * args.interval
    for i, (down, alert) in enumerate(rows, 1):
        fmt = [f"{v:.1f}" if v is not None else "never" for v in (down, alert)]
        print(f"| {i} | {fmt[0]} | {fmt[1]} | {extra} |")
    fired = [a for _, a in rows if a is not None]
    if fired:
        print(f"\nalert firing: median {statistics.median(fired):.1f} s, max {max(fired):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
