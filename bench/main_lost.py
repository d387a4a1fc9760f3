"""The drill's main-lost numbers: two real HAProxy entries on loopback (the rendered public
config) in front of stand-in app clusters, a stand-in for the health-checked DNS name, the main
entry and database stopped, the promotion stood in for, each run a few times.

Run: .venv/bin/python bench/main_lost.py [--trials 3] [--dns-interval 1] [--dns-failures 3]

The name stand-in (tests/haproxy_live.py, HealthCheckedName) probes each entry's /entry-healthz
every `--dns-interval` seconds and moves after `--dns-failures` results in a row, as Route 53 and
Traffic Manager do every 10 or 30 s (docs/public-entry.md); a live takeover scales with those
values. `--promotion` stands in for `pulumi up` promoting the standby database, which takes
minutes on a live fleet; scripts/drill.py --fault main-lost measures it there. Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from haproxy_live import HealthCheckedName, haproxy_binary, live_entries  # noqa: E402
from test_drill_main_lost import CLUSTERS, MainHome, drill  # noqa: E402


def trial(args, via_name: bool):
    with tempfile.TemporaryDirectory() as workdir, contextlib.ExitStack() as stack:
        entries, clusters = stack.enter_context(live_entries(CLUSTERS, Path(workdir), entries=2))
        second = f"http://127.0.0.1:{entries[1].port}"
        target = second
        if via_name:
            name = HealthCheckedName(entries, args.dns_interval, args.dns_failures)
            target = stack.enter_context(name).url
        home = MainHome(entries[0], clusters, promotion=args.promotion, write_lag=0.0)
        plan = drill.MainLostPlan(
            target=target, second_entry=second if via_name else None, hub="main",
            cloud="azure", clusters=CLUSTERS, standby_hub=None,
        )  # fmt: skip
        fault = drill.main_lost_fault(plan, "bench", home.kubectl, docker=None)
        promotion = drill.Promotion("bench", automatic=True, run=home.pulumi, say=print_nothing)
        return drill.run_main_lost(
            target + "/api/books", fault, promotion, write=drill.WriteProbe(target, timeout=2),
            second_entry=second + "/api/books" if via_name else None, interval=0.1,
            write_interval=0.25, promote_after=1.0, baseline_seconds=2, fault_seconds=90,
            settle_seconds=5, after_restore_seconds=5, timeout=2,
        )  # fmt: skip


def print_nothing(_: str) -> None:
    pass


def cell(values, digits: int = 1) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "never"
    missed = len(values) - len(known)
    text = f"{statistics.median(known):.{digits}f} / {max(known):.{digits}f}"
    return text + (f" ({missed} never)" if missed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--dns-interval", type=float, default=1.0, help="seconds between probes")
    parser.add_argument("--dns-failures", type=int, default=3, help="results in a row to move")
    parser.add_argument("--promotion", type=float, default=6.0, help="seconds the promotion takes")
    args = parser.parse_args()
    if haproxy_binary() is None:
        sys.exit("haproxy is not installed (Debian package: haproxy)")
    print(
        f"GETs every 0.1 s; name stand-in: probe every {args.dns_interval:g} s, moves after "
        f"{args.dns_failures} in a row, TTL 0; promotion stand-in {args.promotion:g} s, begun "
        f"1 s into the fault; median / max of {args.trials}"
    )
    print()
    print(
        "| requests to | requests | failed during failover | failed after | second entry "
        "served (s) | takeover (s) | writes again after the promotion began (s) | restore OK "
        "| failed after the restore |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for via_name in (True, False):
        reports = [trial(args, via_name) for _ in range(args.trials)]
        writes = [
            r.writes_after - r.promotion_at if r.writes_after is not None else None for r in reports
        ]
        second = [r.second_entry_after if via_name else r.served_after for r in reports]
        print(
            f"| {'the public name' if via_name else 'the second entry'} "
            f"| {statistics.median(r.requests for r in reports):.0f} "
            f"| {cell([r.failed_during for r in reports], 0)} "
            f"| {cell([r.failed_after for r in reports], 0)} "
            f"| {cell(second)} | {cell([r.served_after for r in reports])} | {cell(writes)} "
            f"| {sum(r.restore_ok for r in reports)}/{len(reports)} "
            f"| {cell([r.failed_after_restore for r in reports], 0)} |"
        )


if __name__ == "__main__":
    main()
