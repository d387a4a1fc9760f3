"""The second home for the data (`hub.standby`): the config that declares it, the standby main
cluster in the graph, and fleets without it unchanged."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from conftest import FLEETS, STANDBY_FLEETS, fleet_graph
from harness import ROOT, failure_of, is_secret, is_unknown, load_stack_config, run_program

from components.config import FleetConfigError, parse_fleet_config
from components.pulumi_config import load_fleet_config

PRINCIPAL = "arn:aws:iam::123456789012:role/platform-admin"
VALID: dict[str, Any] = {
    "hub": {
        "name": "main",
        "cloud": "azure",
        "region": "westeurope",
        "standby": {"name": "second", "cloud": "aws", "region": "eu-west-1"},
    },
    "clusters": [{"name": "app-azure", "cloud": "azure", "region": "westeurope"}],
    "apiAllowedCidrs": ["203.0.113.7/32"],
    "eksAdminPrincipals": [PRINCIPAL],
}


def with_standby(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(VALID)
    raw["hub"]["standby"].update(changes)
    return raw


def rejects(raw: dict[str, Any], message: str) -> list[str]:
    """parse_fleet_config(raw) fails, and one of its problems is `message` (literal text)."""
    with pytest.raises(FleetConfigError, match=re.escape(message)) as info:
        parse_fleet_config(raw)
    return info.value.problems


# --- config --------------------------------------------------------------------------------


def test_a_standby_main_cluster_parses_like_a_cluster_entry_and_joins_all_clusters():
    fleet = parse_fleet_config(
        with_standby(nodeCount=3, nodeSize="m6i.large", kubernetesVersion="1.34")
    )
    standby = fleet.hub_standby
    assert standby is not None, "hub.standby must parse into FleetConfig.hub_standby"
    assert (standby.name, standby.cloud, standby.region) == ("second", "aws", "eu-west-1")
    assert (standby.node_count, standby.node_size, standby.kubernetes_version) == (
        3,
        "m6i.large",
        "1.34",
    )
    assert standby.cloud_name == "dev-second", "an EKS second home carries the stack in its name"
    assert [c.name for c in fleet.all_clusters] == ["main", "second", "app-azure"]
    assert [c.name for c in fleet.clusters] == ["app-azure"], "the second home is no app cluster"


def test_without_a_standby_the_fleet_has_one_home():
    raw = copy.deepcopy(VALID)
    del raw["hub"]["standby"]
    fleet = parse_fleet_config(raw)
    assert fleet.hub_standby is None
    assert [c.name for c in fleet.all_clusters] == ["main", "app-azure"]


def test_the_standby_must_leave_the_hubs_cloud_or_region():
    rejects(
        with_standby(cloud="azure", region="westeurope"),
        "ocm-fleet:hub.standby.region: 'westeurope' on azure is the hub's own cloud and region",
    )
    # Another region of the same cloud outlives the loss of the hub's region.
    fleet = parse_fleet_config(with_standby(cloud="azure", region="northeurope"))
    assert fleet.hub_standby is not None and fleet.hub_standby.region == "northeurope"


def test_the_standby_may_be_on_aws_though_the_hub_may_not():
    assert parse_fleet_config(VALID).hub_standby.cloud == "aws"
    raw = copy.deepcopy(VALID)
    raw["hub"].update(cloud="aws", region="eu-west-1")
    rejects(raw, "ocm-fleet:hub.cloud: 'aws' is not supported for the hub")


def test_an_aws_standby_needs_the_eks_admin_principals():
    raw = copy.deepcopy(VALID)
    del raw["eksAdminPrincipals"]
    rejects(raw, "ocm-fleet:eksAdminPrincipals: missing; the fleet has aws clusters (second)")


def test_the_standby_name_is_unique_across_hub_and_clusters():
    rejects(
        with_standby(name="app-azure"),
        "ocm-fleet:clusters[0].name: 'app-azure' is already used by ocm-fleet:hub.standby.name",
    )
    rejects(
        with_standby(name="main"),
        "ocm-fleet:hub.standby.name: 'main' is already used by ocm-fleet:hub.name",
    )


def test_kind_standby_only_with_a_kind_hub():
    rejects(
        with_standby(cloud="kind", region=None),
        "ocm-fleet:hub.standby.cloud: 'kind' cannot be mixed with other clouds",
    )
    local = load_stack_config(ROOT / "Pulumi.local-standby.yaml")
    raw = {k.split(":", 1)[1]: v for k, v in local.items()}
    fleet = parse_fleet_config(raw)
    assert fleet.hub_standby is not None and fleet.hub_standby.cloud == "kind"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cloud": "gcp"}, "ocm-fleet:hub.standby.cloud: 'gcp' is not one of"),
        ({"region": "eu-central-9"}, "ocm-fleet:hub.standby.region: 'eu-central-9' is not a known"),
        ({"name": "Second"}, "ocm-fleet:hub.standby.name: 'Second' is not a DNS-1123 label"),
        ({"nodeCount": 0}, "ocm-fleet:hub.standby.nodeCount: 0 must be an integer of at least 1"),
        ({"zones": 3}, "ocm-fleet:hub.standby.zones: unknown key"),
        ({"retire": True}, "ocm-fleet:hub.standby.retire: True is not valid here"),
        ({"standby": True}, "ocm-fleet:hub.standby.standby: True is not valid here"),
        (
            {"databaseStorage": "zoneRedundant"},
            "ocm-fleet:hub.standby.databaseStorage: 'zoneRedundant' is not valid here",
        ),
    ],
)
def test_bad_standby_values_name_the_key_and_the_value(changes, message):
    rejects(with_standby(**changes), message)


@pytest.mark.parametrize("value", [True, "aws", ["second"], 3])
def test_hub_standby_must_be_a_cluster_entry(value):
    raw = copy.deepcopy(VALID)
    raw["hub"]["standby"] = value
    rejects(raw, "ocm-fleet:hub.standby: ")
    with pytest.raises(FleetConfigError, match="must be a cluster entry"):
        parse_fleet_config(raw)


def test_the_promotion_key_names_the_second_home():
    assert parse_fleet_config({**VALID, "database": {"primary": "standby"}}).database_primary == (
        "standby"
    )
    assert parse_fleet_config(VALID).database_primary == "main"


def test_a_run_with_a_second_home_no_longer_warns_that_it_holds_no_replica():
    graph = fleet_graph("dev-standby", False)
    assert not any("no database replica" in line for line in graph.logs), graph.logs
    assert graph.named("database-second-mariadb"), "the replica is in the graph"


def test_the_second_home_arrives_through_pulumi_config():
    config = {f"ocm-fleet:{k}": v for k, v in VALID.items()}
    loaded: list = []
    run_program(config, program=lambda: loaded.append(load_fleet_config()))
    assert loaded and loaded[0].hub_standby is not None, "hub.standby lost on the Pulumi path"


# --- graph ---------------------------------------------------------------------------------


def _comparable(value: Any) -> Any:
    """`value` with every unknown as one marker: unknowns compare by identity."""
    if is_unknown(value):
        return "<unknown>"
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


# The host's cloud-provider-kind serves every kind cluster of the fleet, the second home too.
SERVES_EVERY_KIND_CLUSTER = {"kind-load-balancer-controller"}


_DATA_HOME: dict[tuple[str, bool], Any] = {}


def data_home_graph(fleet: str, preview: bool):
    """The fleet's run with its second home but without the standby OCM hub."""
    config = copy.deepcopy(FLEETS[fleet]())
    config["ocm-fleet:hub"]["standby"].pop("ocmHub", None)
    if config == FLEETS[fleet]():
        return fleet_graph(fleet, preview)
    if (fleet, preview) not in _DATA_HOME:
        _DATA_HOME[(fleet, preview)] = run_program(config, preview=preview)
    return _DATA_HOME[(fleet, preview)]


def _edge_allowlist(res: Any) -> Any:
    """What an edge's allowlist holds: a Service's source ranges or a NetworkPolicy's peers."""
    spec = res.inputs["spec"]
    if "loadBalancerSourceRanges" in spec:
        return spec["loadBalancerSourceRanges"]
    return [peer["ipBlock"]["cidr"] for rule in spec["ingress"] for peer in rule["from"]]


def _without_allowlist(res: Any) -> Any:
    inputs = copy.deepcopy(res.inputs)
    spec = inputs["spec"]
    if "loadBalancerSourceRanges" in spec:
        spec["loadBalancerSourceRanges"] = "<allowlist>"
    else:
        for rule in spec["ingress"]:
            rule["from"] = "<allowlist>"
    return _comparable(inputs)


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))
def test_the_second_home_adds_its_cluster_and_entry_and_changes_only_the_edges(fleet, preview):
    """Besides its own resources, the second home changes the app clusters' edge allowlists
    (which admit its entry's egress too) and the database's wiring, and nothing else. The
    standby OCM hub (hub.standby.ocmHub) changes every klusterlet on purpose and has its own
    tests (test_standby_hub.py): here the second home is compared without it."""
    with_home = data_home_graph(fleet, preview)
    without = fleet_graph(STANDBY_FLEETS[fleet], preview)
    hub = load_stack_config(ROOT / f"Pulumi.{fleet}.yaml")["ocm-fleet:hub"]
    standby = hub["standby"]["name"]
    added = {r.urn: r for r in with_home.resources if r.urn not in without.by_urn}
    assert added, f"{fleet}: the second home must add resources"
    # The database takes the second home as its replica's (tests/test_database_replica.py),
    # and each app cluster then reaches it by the stable name a promotion re-points, which the
    # app's rollout template carries (tests/test_promotion.py): those objects change or are
    # added too.
    database = "database"

    def database_wiring(res) -> bool:
        return (
            res.name.startswith(database)
            or "-app-database-" in res.name
            or res.name.endswith("-shopapi-to-database")
            or res.name in ("app-rollout-replica-set", "app-rollout-status")
        )

    for res in added.values():
        assert res.name.startswith(standby) or database_wiring(res), (
            f"{fleet}: {res.name} is neither on the second home nor the database's wiring"
        )
    assert f"{standby}-entry-service" in {r.name for r in added.values()}, (
        f"{fleet}: the second home must carry an entry"
    )
    apps = sorted(with_home.stack_outputs["clusters"])
    edges = {f"{app}-app-edge" for app in apps}
    edges |= {f"{app}-app-network-policy-router-from-main-cluster" for app in apps}
    by_urn = with_home.by_urn
    changed = set()
    for res in without.resources:
        if database_wiring(res):
            continue
        assert res.urn in by_urn, f"{fleet}: {res.urn} is gone with a second home"
        other = by_urn[res.urn]
        if res.name in SERVES_EVERY_KIND_CLUSTER:
            clusters = other.inputs["environment"]["CLUSTERS"].split()
            assert f"dev-{standby}" in clusters, f"{res.name} must serve the second home"
            continue
        # What waits for the database waits for both homes' (Database.ready).
        new_deps = {
            u
            for u in with_home.direct_deps(other) - without.direct_deps(res)
            if "ocm-fleet:index:Database$" not in u
        }
        if res.name in edges:
            assert _without_allowlist(other) == _without_allowlist(res), (
                f"{fleet}: {res.urn} changes beyond its allowlist with a second home"
            )
            assert with_home.direct_deps(other) >= without.direct_deps(res), res.urn
            assert all(by_urn[u].name.startswith(standby) for u in new_deps), (
                f"{fleet}: {res.urn} gains dependencies off the second home: {new_deps}"
            )
            if _comparable(other.inputs) != _comparable(res.inputs):
                changed.add(res.name)
            continue
        # The main cluster's provider too: a second home sets no skip flag on any provider
        # (the lost-home run sets it from the environment, docs/data.md "Promotion").
        assert _comparable(other.inputs) == _comparable(res.inputs), (
            f"{fleet}: the inputs of {res.urn} change with a second home"
        )
        assert not new_deps and without.direct_deps(res) <= with_home.direct_deps(other), (
            f"{fleet}: the dependencies of {res.urn} change with a second home"
        )
    if not preview:
        assert changed == edges, f"{fleet}: edge allowlists unchanged: {sorted(edges - changed)}"
        second = with_home.stack_outputs["hubStandby"][standby]["egressIps"]
        for res in (r for r in with_home.resources if r.name in edges):
            assert set(second) <= set(_edge_allowlist(res)), (
                f"{fleet}: {res.name} must admit the second entry's egress {second}"
            )
    assert set(with_home.stack_outputs) - set(without.stack_outputs) == {
        "hubStandby",
        "entryUrls",
        "databaseHosts",
    }


@pytest.mark.parametrize("fleet", ["dev", "local", "large"])
def test_fleets_without_a_second_home_export_none(fleet):
    assert "hubStandby" not in fleet_graph(fleet, False).stack_outputs


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_the_aws_second_home_is_an_eks_cluster_in_its_region_with_its_egress_known(preview):
    graph = fleet_graph("dev-standby", preview)
    eks = graph.named("second-eks", "aws:eks/cluster:Cluster")
    assert eks.inputs["name"] == "dev-second", "the EKS name carries the stack"
    provider = graph.by_urn[eks.provider_urn]
    assert provider.inputs["region"] == "eu-west-1", (
        "the second home is in the region its entry names"
    )
    endpoint = eks.inputs["vpcConfig"]
    assert endpoint["publicAccessCidrs"] == ["203.0.113.7/32"], (
        "the second home's API admits the operators only (apiAllowedCidrs)"
    )
    described = graph.stack_outputs["hubStandby"]["second"]
    assert described["cloud"] == "aws" and described["region"] == "eu-west-1"
    assert {"cloudName", "logGroup", "egressIps", "apiServerUrl"} <= set(described)
    if not preview:
        assert described["egressIps"], "the second home's egress addresses must be known"
        assert all(re.fullmatch(r"[0-9.]+/32", c) for c in described["egressIps"])
    kubeconfigs = graph.stack_wire_outputs["kubeconfigs"]
    assert is_secret(kubeconfigs), "kubeconfigs stay secret"
    if not preview:
        assert "second" in graph.stack_outputs["kubeconfigs"], "the second home's kubeconfig"


def test_the_kind_second_home_is_a_kind_cluster_of_the_stack():
    graph = fleet_graph("local-standby", False)
    assert graph.named("second", "ocm-fleet:index:KindCluster")
    described = graph.stack_outputs["hubStandby"]["second"]
    assert described["cloud"] == "kind" and described["egressIps"]


def test_a_later_run_checks_the_eks_name_of_the_second_home():
    """A second home the stack already has under another EKS name stops the run at its key."""
    previous = {"hubStandby": {"second": {"cloud": "aws", "cloudName": "second"}}}
    code = (
        "from harness import run_program\n"
        f"run_program({FLEETS['dev-standby']()!r}, previous_outputs={previous!r})\n"
    )
    error = failure_of(code)
    assert error is not None and "ocm-fleet:hub.standby.physicalName: missing" in error, error


def test_every_standby_fleet_has_a_stack_file_beside_the_ones_without():
    for fleet, plain in STANDBY_FLEETS.items():
        assert (ROOT / f"Pulumi.{fleet}.yaml").exists(), f"Pulumi.{fleet}.yaml"
        assert (ROOT / f"Pulumi.{plain}.yaml").exists(), f"Pulumi.{plain}.yaml"
