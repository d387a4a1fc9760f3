"""Rewrites the aws list of components/regions.yaml from the installed botocore's endpoints.json.

    .venv/bin/python scripts/update_regions.py          # rewrite the aws list
    .venv/bin/python scripts/update_regions.py --check  # change nothing; exit 1 if it is stale

botocore (PyPI, a test dependency) ships data/endpoints.json, the regions of every AWS
partition. The azure list is kept by hand (its source is named in the file). Review the diff
and commit it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REGIONS_FILE = Path(__file__).resolve().parent.parent / "components" / "regions.yaml"


def botocore_regions() -> tuple[str, list[str]]:
    """(botocore's version, every region of every partition in its endpoints.json)."""
    try:
        import botocore
    except ImportError as err:
        raise SystemExit(
            "update_regions: botocore is not installed; pip install -r requirements-dev.txt"
        ) from err
    data = json.loads((Path(botocore.__file__).parent / "data" / "endpoints.json").read_text())
    regions = sorted({r for part in data["partitions"] for r in part.get("regions", {})})
    return botocore.__version__, regions


def rewritten(text: str, version: str, regions: list[str]) -> str:
    text = re.sub(r"\(botocore [^)]*\)", f"(botocore {version})", text, count=1)
    block = "aws:\n" + "".join(f"  - {r}\n" for r in regions)
    return re.sub(r"^aws:\n(?:  - .*\n)*", block, text, count=1, flags=re.MULTILINE)


def _listed(text: str) -> list[str]:
    block = re.search(r"^aws:\n((?:  - .*\n)*)", text, flags=re.MULTILINE)
    return block.group(1).split() if block else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    version, regions = botocore_regions()
    text = REGIONS_FILE.read_text()
    updated = rewritten(text, version, regions)
    if args.check:
        # Only the regions count: a botocore release that adds none is not a change.
        if _listed(updated) != _listed(text):
            print(f"{REGIONS_FILE.name}: the aws list differs from botocore {version}'s")
            return 1
        return 0
    REGIONS_FILE.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
