"""Shared fixtures: fleet configs, and whole-program runs under mocks (see harness.py)."""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    ROOT,
    Graph,
    fake_kubeconfig,
    load_stack_config,
    run_program,
    with_admin_principals,
)
from registry_stand_in import registry  # noqa: F401 (a fixture for every test module)

REFERENCE_ENV = "OCM_FLEET_REFERENCE"
FETCHED_REFERENCE = ROOT / ".reference"
"""Where scripts/fetch_reference.py puts the reference data by default."""


def reference_root() -> Path:
    """The upstream reference data: $OCM_FLEET_REFERENCE, else ../shared/reference beside the
    repository, else what scripts/fetch_reference.py fetched into .reference/."""
    if os.environ.get(REFERENCE_ENV):
        return Path(os.environ[REFERENCE_ENV])
    shared = ROOT.parent / "shared" / "reference"
    if shared.is_dir() or not FETCHED_REFERENCE.is_dir():
        return shared
    return FETCHED_REFERENCE


REFERENCE_ROOT = reference_root()
SHARED_REFERENCE = REFERENCE_ROOT / "ocm-v1.3.1"


# What deploy.sh writes into a stack on its first run: the caller's address.
FIRST_RUN_API_CIDRS = ["203.0.113.7/32"]


def dev_config() -> dict[str, Any]:
    """The config of the dev stack as Pulumi.dev.yaml has it, plus what deploy.sh fills in on
    a first run (the file ships without them): apiAllowedCidrs and, for its aws cluster,
    eksAdminPrincipals (the caller's role)."""
    config = load_stack_config(ROOT / "Pulumi.dev.yaml")
    config.setdefault("ocm-fleet:apiAllowedCidrs", FIRST_RUN_API_CIDRS)
    return with_admin_principals(config)


def existing_kubeconfig() -> str:
    """Path of a kubeconfig for `cloud: existing` clusters in test fleets (written on demand)."""
    path = Path(tempfile.gettempdir()) / "ocm-fleet-tests" / "lab.kubeconfig"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fake_kubeconfig("https://lab.example.test:6443"))
    return str(path)


def large_config() -> dict[str, Any]:
    """Seven app clusters: six on both clouds in six regions, and one existing cluster."""
    return with_admin_principals(_large_config())


def _large_config() -> dict[str, Any]:
    return {
        "ocm-fleet:hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
        "ocm-fleet:clusters": [
            {"name": "aws-ie", "cloud": "aws", "region": "eu-west-1"},
            {"name": "aws-us", "cloud": "aws", "region": "us-east-1", "nodeCount": 3},
            {"name": "aws-jp", "cloud": "aws", "region": "ap-northeast-1", "nodeSize": "m6i.large"},
            {"name": "az-nl", "cloud": "azure", "region": "westeurope"},
            {"name": "az-us", "cloud": "azure", "region": "eastus2", "kubernetesVersion": "1.34"},
            {"name": "az-br", "cloud": "azure", "region": "brazilsouth"},
            {
                "name": "lab",
                "cloud": "existing",
                "kubeconfig": existing_kubeconfig(),
                "context": "c",
                "egressIps": ["192.0.2.10/32"],
            },
        ],
        "ocm-fleet:apiAllowedCidrs": ["203.0.113.0/24", "198.51.100.7/32"],
    }


def local_config() -> dict[str, Any]:
    """The config of the local stack (kind), exactly as Pulumi.local.yaml has it."""
    return load_stack_config(ROOT / "Pulumi.local.yaml")


def dev_standby_config() -> dict[str, Any]:
    """Pulumi.dev-standby.yaml (the dev fleet with a second home, on aws), plus what deploy.sh
    fills in on a first run, as for dev."""
    config = load_stack_config(ROOT / "Pulumi.dev-standby.yaml")
    config.setdefault("ocm-fleet:apiAllowedCidrs", FIRST_RUN_API_CIDRS)
    return with_admin_principals(config)


def dev_standby_hub_config() -> dict[str, Any]:
    """Pulumi.dev-standby-hub.yaml (the dev fleet with a second home on AKS in another region,
    running the standby OCM hub), plus what deploy.sh fills in on a first run, as for dev."""
    config = load_stack_config(ROOT / "Pulumi.dev-standby-hub.yaml")
    config.setdefault("ocm-fleet:apiAllowedCidrs", FIRST_RUN_API_CIDRS)
    return with_admin_principals(config)


def local_standby_config() -> dict[str, Any]:
    """Pulumi.local-standby.yaml (the local fleet with a second home on kind), as it is."""
    return load_stack_config(ROOT / "Pulumi.local-standby.yaml")


FLEETS = {
    "dev": dev_config,
    "large": large_config,
    "local": local_config,
    "dev-standby": dev_standby_config,
    "dev-standby-hub": dev_standby_hub_config,
    "local-standby": local_standby_config,
}
STANDBY_FLEETS = {"dev-standby": "dev", "local-standby": "local"}
"""A fleet with a second home -> the same fleet without it."""


def entry_services(fleet: str) -> list[str]:
    """The public entries' LoadBalancer Services of a named fleet, from its config: the main
    cluster's, and with a second home that home's (`<name>-entry-service`)."""
    standby = (FLEETS[fleet]().get("ocm-fleet:hub") or {}).get("standby")
    return ["public-lb-service", *([f"{standby['name']}-entry-service"] if standby else [])]


def entry_egress(graph: Graph) -> list[str]:
    """The egress addresses of every main home that runs an entry (the stack outputs `hub` and
    `hubStandby`), sorted: what the app clusters' edges must admit, exactly."""
    homes = [graph.stack_outputs["hub"], *(graph.stack_outputs.get("hubStandby") or {}).values()]
    return sorted({cidr for home in homes for cidr in home["egressIps"]})


_CACHE: dict[tuple[str, bool], Graph] = {}


def fleet_graph(fleet: str, preview: bool) -> Graph:
    """A whole-program run of a named fleet, cached: the graph is read-only for tests."""
    key = (fleet, preview)
    if key not in _CACHE:
        _CACHE[key] = run_program(FLEETS[fleet](), preview=preview)
    return _CACHE[key]


@pytest.fixture(
    params=[(f, p) for f in FLEETS for p in (False, True)],
    ids=lambda fp: f"{fp[0]}-{'preview' if fp[1] else 'update'}",
)
def any_graph(request) -> Graph:
    """Each fleet, in update mode and in preview mode (every cloud output unknown)."""
    fleet, preview = request.param
    return fleet_graph(fleet, preview)


@pytest.fixture
def dev() -> dict[str, Any]:
    return copy.deepcopy(dev_config())


@pytest.fixture
def large() -> dict[str, Any]:
    return copy.deepcopy(large_config())


@pytest.fixture
def shared_reference() -> Path:
    if not SHARED_REFERENCE.is_dir():
        if os.environ.get("OCM_FLEET_REQUIRE_REFERENCE") == "1":
            pytest.fail(f"OCM_FLEET_REQUIRE_REFERENCE=1 but {SHARED_REFERENCE} does not exist")
        pytest.skip(
            f"upstream reference data not found at {SHARED_REFERENCE} (the shared/ folder, or "
            "run scripts/fetch_reference.py)"
        )
    return SHARED_REFERENCE


def require_reference(path: Path) -> Path:
    """`path` under the reference data, or a skip saying where it was looked for (a failure
    when OCM_FLEET_REQUIRE_REFERENCE=1, as in .ci/run and test.yml)."""
    if not path.exists():
        if os.environ.get("OCM_FLEET_REQUIRE_REFERENCE") == "1":
            pytest.fail(f"OCM_FLEET_REQUIRE_REFERENCE=1 but {path} does not exist")
        pytest.skip(
            f"upstream reference data not found at {path} (the shared/ folder, or run "
            "scripts/fetch_reference.py)"
        )
    return path
