"""Times what a new user waits for before the first preview: the offline check and the preflight.

    .venv/bin/python bench/first_hour.py [--repeat N]

On a fresh clone of this repository (git clone into a temporary folder), each command runs in
a new process, as a user runs it: `scripts/check.py` on the shipped stacks and on a stack file
with typos, and, with --with-deploy, `scripts/deploy.sh local` (on a machine without a Docker
engine or registry access it stops at the preflight; where the preflight passes it DEPLOYS the
local fleet, so ask for it only there where that is wanted). Prints a table of wall-clock
seconds (median and range) and what each command left in `git status --ignored`. The target is
under 20 seconds for the check, counting whatever it installs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TYPO = """\
config:
  ocm-fleet:hub: {name: main, cloud: azure, region: westeurop}
  ocm-fleet:cluster:
    - {name: app-aws, cloud: aws, region: eu-west-9}
  ocm-fleet:apiAllowedCidrs: [203.0.113.7/32]
"""


def timed(command: list[str], cwd: Path) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, done.returncode


def leftovers(clone: Path) -> str:
    status = subprocess.run(
        ["git", "status", "--ignored", "--porcelain"], cwd=clone, capture_output=True, text=True
    ).stdout.split("\n")
    changed = [line for line in status if line and not line.endswith("Pulumi.typo.yaml")]
    return ", ".join(changed) or "nothing"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--with-deploy", action="store_true", help="also time deploy.sh local")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        clone = Path(scratch) / "ocm-fleet"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        (clone / "Pulumi.typo.yaml").write_text(TYPO)
        python = "python3"
        commands = {
            "check.py dev (deploy fills the allowlist)": [
                python,
                "scripts/check.py",
                "dev",
                *("--filled-by-deploy", "apiAllowedCidrs"),
                *("--filled-by-deploy", "eksAdminPrincipals"),
            ],
            "check.py local": [python, "scripts/check.py", "local"],
            "check.py typo (3 problems)": [python, "scripts/check.py", "typo"],
        }
        if args.with_deploy:
            commands["deploy.sh local"] = ["bash", "scripts/deploy.sh", "local"]
        print("| command | exit | median s | range s | left behind |")
        print("| --- | ---: | ---: | --- | --- |")
        for label, command in commands.items():
            runs = [timed(command, clone) for _ in range(args.repeat)]
            seconds = [s for s, _ in runs]
            print(
                f"| {label} | {runs[-1][1]} | {statistics.median(seconds):.2f} "
                f"| {min(seconds):.2f} to {max(seconds):.2f} | {leftovers(clone)} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
