"""How long the whole program takes to evaluate under mocks, and how much memory, by fleet size.

Run: .venv/bin/python bench/program_eval.py [--sizes 1,5,10,20] [--repeat 3]

Each measurement runs in a fresh interpreter, so import time and peak memory are those a
`pulumi preview` of that fleet would see in the program itself (the engine and providers not
counted). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
sys.path[:0] = [{tests!r}, {root!r}]
started = time.perf_counter()
from harness import run_program
imported = time.perf_counter()
graph = run_program(json.loads(sys.argv[1]), preview=sys.argv[2] == "preview")
done = time.perf_counter()
print(json.dumps({{
    "import_s": imported - started,
    "run_s": done - imported,
    "resources": len(graph.resources),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}}))
"""


def fleet(size: int) -> dict:
    regions = {
        "aws": ["eu-west-1", "us-east-1", "ap-southeast-2"],
        "azure": ["westeurope", "eastus2"],
    }
    clusters = []
    for i in range(size):
        cloud = "aws" if i % 2 == 0 else "azure"
        clusters.append(
            {"name": f"app-{i}", "cloud": cloud, "region": regions[cloud][i % len(regions[cloud])]}
        )
    return {
        "ocm-fleet:hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
        "ocm-fleet:clusters": clusters,
        "ocm-fleet:apiAllowedCidrs": ["203.0.113.0/24"],
    }


def measure(size: int, mode: str) -> dict:
    code = CHILD.format(tests=str(ROOT / "tests"), root=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(fleet(size)), mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,10,20", help="app cluster counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is shown")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(
        "| app clusters | mode | resources | import harness (s) "
        "| evaluate, with SDK imports (s) | peak RSS (MB) |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for size in sizes:
        for mode in ("update", "preview"):
            runs = [measure(size, mode) for _ in range(args.repeat)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(
                f"| {size} | {mode} | {int(med['resources'])} | {med['import_s']:.2f} "
                f"| {med['run_s']:.2f} | {med['peak_rss_mb']:.0f} |"
            )


if __name__ == "__main__":
    main()
