"""Print the clouds a stack config uses (e.g. "aws azure"), for deploy.sh's credential checks."""

from __future__ import annotations

import sys

import yaml


def stack_clouds(path: str) -> list[str]:
    with open(path) as f:
        config = (yaml.safe_load(f) or {}).get("config") or {}
    hub = config.get("ocm-fleet:hub")
    clusters = config.get("ocm-fleet:clusters")
    entries = [hub, *(clusters if isinstance(clusters, list) else [])]
    return sorted({c["cloud"] for c in entries if isinstance(c, dict) and c.get("cloud")})


if __name__ == "__main__":
    print(" ".join(stack_clouds(sys.argv[1])))
