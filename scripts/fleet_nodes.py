"""How many nodes of which size each cloud cluster of a stack file runs, and at most during an
upgrade, read without the program: shared by scripts/estimate.py and scripts/cloud_preflight.py.

Standard library only, and no import of the program (which needs Pulumi): the defaults a stack
file may leave out are read from the program's source with `ast`, so they cannot drift from it.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "ocm-fleet"
BILLED_CLOUDS = ("aws", "azure")


def source_constants(path: Path, *names: str) -> dict[str, Any]:
    """Module-level literals of a Python file (`NAME = <literal>`), without importing it."""
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id in names:
                found[target.id] = _literal(node.value)
    missing = set(names) - set(found)
    if missing:
        raise LookupError(f"{path}: no literal {', '.join(sorted(missing))}")
    return found


def _literal(value: ast.expr) -> Any:
    # frozenset({...}) is how the program writes constant sets.
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "frozenset"
        and len(value.args) == 1
        and not value.keywords
    ):
        return frozenset(ast.literal_eval(value.args[0]))
    return ast.literal_eval(value)


_CONFIG = source_constants(
    ROOT / "components" / "config.py",
    "DEFAULT_NODE_SIZE",
    "DEFAULT_NODE_COUNT",
    "DEFAULT_KUBERNETES_VERSION",
    "ELASTIC_IPS",
)
DEFAULT_NODE_SIZE: dict[str, str] = _CONFIG["DEFAULT_NODE_SIZE"]
DEFAULT_NODE_COUNT: int = _CONFIG["DEFAULT_NODE_COUNT"]
DEFAULT_KUBERNETES_VERSION: str = _CONFIG["DEFAULT_KUBERNETES_VERSION"]
ELASTIC_IPS: dict[str, int] = _CONFIG["ELASTIC_IPS"]
EKS_ZONES: int = source_constants(ROOT / "components" / "clusters" / "eks.py", "ZONE_COUNT")[
    "ZONE_COUNT"
]


def upgrade_surge(cloud: str, count: int) -> int:
    """Extra nodes while a pool is upgraded or its nodes replaced.

    EKS managed node groups scale up by up to twice the number of zones the group spans (EKS
    user guide, "Understand each phase of node updates", scale up phase); the program's groups
    span three. AKS adds max surge nodes, 10% of the pool rounded up by default (AKS docs,
    "Customize node surge upgrade"), at least one.
    """
    if cloud == "aws":
        return 2 * EKS_ZONES
    return max(1, math.ceil(count * 0.1))


@dataclass(frozen=True)
class Nodes:
    """The nodes of one cloud cluster."""

    cluster: str
    cloud: str
    region: str
    size: str
    count: int
    kubernetes_version: str
    nat_gateways: str = "single"

    @property
    def peak(self) -> int:
        """Nodes at once while the pool is upgraded."""
        return self.count + upgrade_surge(self.cloud, self.count)


def cloud_nodes(config: Mapping[str, Any]) -> list[Nodes]:
    """The nodes of every aws and azure cluster of a stack file's `config:` mapping (keys with
    the namespace), hub first, then the second home (`hub.standby`), as the program's config
    model reads them. Entries the model would refuse are skipped: the program reports them."""
    hub = config.get(f"{NAMESPACE}:hub")
    clusters = config.get(f"{NAMESPACE}:clusters")
    standby = hub.get("standby") if isinstance(hub, Mapping) else None
    entries = [hub, standby, *(clusters if isinstance(clusters, list) else [])]
    found = []
    for entry in entries:
        if not isinstance(entry, Mapping) or entry.get("cloud") not in BILLED_CLOUDS:
            continue
        cloud = entry["cloud"]
        count = entry.get("nodeCount", DEFAULT_NODE_COUNT)
        size = entry.get("nodeSize", DEFAULT_NODE_SIZE[cloud])
        version = entry.get("kubernetesVersion", DEFAULT_KUBERNETES_VERSION)
        name, region = entry.get("name"), entry.get("region")
        if not all(isinstance(v, str) and v for v in (name, region, size, version)):
            continue
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            continue
        found.append(
            Nodes(
                cluster=name,
                cloud=cloud,
                region=region,
                size=size.strip(),
                count=count,
                kubernetes_version=version,
                nat_gateways=str(entry.get("natGateways", "single")),
            )
        )
    return found


if __name__ == "__main__":
    import argparse
    import sys

    argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="A module, not a command: scripts/cloud_preflight.py and scripts/estimate.py "
        "use it.",
    ).parse_args()
    print("scripts/fleet_nodes.py is a module; run scripts/cloud_preflight.py", file=sys.stderr)
    sys.exit(2)
