"""Taking clusters out of the fleet: `retire: true`, then removal, and removal without retiring,
on the whole program's recorded graph in update and preview mode."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conftest import dev_config, fleet_graph
from harness import Graph, Registered, failure_of, is_unknown, run_program

from components.app.database import CLAIM
from components.config import parse_fleet_config
from components.lifecycle.previous_run import ZONE_REDUNDANT, checked_cloud_name, departing_egress

MODES = pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
EIP = "aws:ec2/eip:Eip"
AKS = "azure-native:containerservice:ManagedCluster"


def retiring(name: str) -> dict[str, Any]:
    config = copy.deepcopy(dev_config())
    for entry in config["ocm-fleet:clusters"]:
        if entry["name"] == name:
            entry["retire"] = True
    return config


def without(name: str) -> dict[str, Any]:
    config = copy.deepcopy(dev_config())
    config["ocm-fleet:clusters"] = [c for c in config["ocm-fleet:clusters"] if c["name"] != name]
    return config


_GRAPHS: dict[tuple[str, bool], Graph] = {}


def retire_graph(preview: bool) -> Graph:
    key = ("retire-app-aws", preview)
    if key not in _GRAPHS:
        _GRAPHS[key] = run_program(retiring("app-aws"), preview=preview)
    return _GRAPHS[key]


def on_provider(g: Graph, cluster: str) -> list[Registered]:
    provider = g.kubernetes_provider(cluster).urn
    return [r for r in g.resources if r.provider_urn == provider]


def hub_aks(g: Graph) -> Registered:
    return g.named("main-aks", AKS)


def eips_of(g: Graph, cluster: str) -> set[str]:
    return {r.urn for r in g.descendants(g.cluster_component(cluster)) if r.type == EIP}


def database_public_service(g: Graph) -> Registered:
    return g.named("database-public", "kubernetes:core/v1:Service")


# --- retire: true --------------------------------------------------------------------------


@MODES
def test_a_retiring_cluster_keeps_its_cloud_resources(preview):
    g = retire_graph(preview)
    assert g.control_plane("app-aws").type == "aws:eks/cluster:Cluster"
    assert eips_of(g, "app-aws"), "app-aws keeps its NAT Elastic IP while it retires"


@MODES
def test_a_retiring_cluster_gets_nothing_from_the_fleet(preview):
    g = retire_graph(preview)
    assert on_provider(g, "app-aws") == [], (
        "nothing may be declared on retiring app-aws: no klusterlet, no app Secret, no edge"
    )
    names = {r.name for r in g.resources}
    assert not {"app-aws-ocm", "app-aws-app"} & names, "no OCM membership, no app delivery"
    hub = g.kubernetes_provider("main").urn
    for r in g.resources:
        if r.provider_urn == hub and r.type.startswith("kubernetes:"):
            metadata = r.inputs.get("metadata") or {}
            assert "app-aws" not in (metadata.get("name"), metadata.get("namespace")), (
                f"{r} on the hub still belongs to retiring app-aws"
            )


@MODES
def test_the_active_cluster_keeps_everything(preview):
    g = retire_graph(preview)
    assert on_provider(g, "app-azure"), "app-azure still runs the app"
    assert {"app-azure-ocm", "app-azure-app"} <= {r.name for r in g.resources}


@MODES
def test_a_retiring_cluster_stays_on_the_hub_api_allowlist(preview):
    g = retire_graph(preview)
    deps = set(hub_aks(g).property_dependencies.get("apiServerAccessProfile", []))
    assert eips_of(g, "app-aws") <= deps, (
        "the hub API allowlist must still be computed from app-aws's Elastic IPs, so that its "
        "agent can remove the finalizers of what it carried"
    )


@MODES
def test_a_retiring_cluster_leaves_the_database_allowlist(preview):
    g = retire_graph(preview)
    deps = set(database_public_service(g).property_dependencies.get("spec", []))
    assert not eips_of(g, "app-aws") & deps, "the database must stop admitting app-aws"
    azure_ip = next(
        r.urn
        for r in g.descendants(g.cluster_component("app-azure"))
        if r.type == "azure-native:network:PublicIPAddress"
    )
    assert azure_ip in deps, "the database must still admit app-azure"


def test_a_retiring_cluster_is_on_the_hub_allowlist_by_value_and_off_the_databases():
    g = retire_graph(False)
    aws_egress = g.stack_outputs["retiringClusters"]["app-aws"]["egressIps"]
    azure_egress = g.stack_outputs["clusters"]["app-azure"]["egressIps"]
    ranges = hub_aks(g).inputs["apiServerAccessProfile"]["authorizedIPRanges"]
    # The dev stack opens the API to all (0.0.0.0/0), so its list is empty; the allowlist
    # function itself is tested with narrowed CIDRs below.
    assert ranges == [] or set(aws_egress) <= set(ranges)
    sources = database_public_service(g).inputs["spec"]["loadBalancerSourceRanges"]
    assert set(azure_egress) <= set(sources)
    assert not set(aws_egress) & set(sources), f"database still admits app-aws: {sources}"


def narrowed(config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    config["ocm-fleet:apiAllowedCidrs"] = ["203.0.113.0/24"]
    return config


def test_with_a_narrowed_allowlist_the_retiring_egress_is_listed_by_value():
    g = run_program(narrowed(retiring("app-aws")))
    aws_egress = g.stack_outputs["retiringClusters"]["app-aws"]["egressIps"]
    ranges = hub_aks(g).inputs["apiServerAccessProfile"]["authorizedIPRanges"]
    assert aws_egress and set(aws_egress) <= set(ranges), (aws_egress, ranges)
    assert "203.0.113.0/24" in ranges


@MODES
def test_a_retiring_cluster_is_not_a_load_balancer_upstream(preview):
    g = retire_graph(preview)
    configs = [
        r for r in g.resources if r.name.startswith("public-lb") and r.type.endswith("ConfigMap")
    ]
    assert configs, "the public load balancer renders its config into a ConfigMap"
    for cm in configs:
        assert not any(
            edge in cm.property_dependencies.get("data", [])
            for edge in {r.urn for r in g.resources if r.name.startswith("app-aws-")}
        ), f"{cm} must not be computed from anything of retiring app-aws"
    if not preview:
        rendered = "".join(str(v) for v in configs[0].inputs["data"].values())
        assert "app-azure" in rendered and "app-aws" not in rendered


@MODES
def test_retiring_exports_the_cluster_apart(preview):
    g = retire_graph(preview)
    assert set(g.stack_outputs["clusters"]) == {"app-azure"}
    assert set(g.stack_outputs["retiringClusters"]) == {"app-aws"}


# --- removal -------------------------------------------------------------------------------


def test_departing_egress_is_what_the_last_run_had_and_the_config_no_longer_does():
    fleet = parse_fleet_config(
        {
            "hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
            "clusters": [{"name": "app-azure", "cloud": "azure", "region": "westeurope"}],
            "apiAllowedCidrs": ["203.0.113.0/24"],
        }
    )
    outputs = {
        "clusters": {
            "app-azure": {"egressIps": ["192.0.2.1/32"]},
            "app-gone": {"egressIps": ["192.0.2.9/32", "192.0.2.8/32"]},
        },
        "retiringClusters": {"app-retired": {"egressIps": ["192.0.2.7/32"]}},
    }
    assert departing_egress(outputs, fleet) == ["192.0.2.7/32", "192.0.2.8/32", "192.0.2.9/32"]
    assert departing_egress({}, fleet) == []
    assert departing_egress(None, fleet) == []


@MODES
def test_the_program_reads_its_own_stacks_last_outputs(preview):
    g = fleet_graph("dev", preview)
    refs = [inputs for t, _, inputs in g.reads if t == "pulumi:pulumi:StackReference"]
    assert [r["name"] for r in refs] == ["organization/ocm-fleet/dev"]


@MODES
def test_removing_an_entry_outright_keeps_its_egress_on_the_hub_allowlist_for_that_run(preview):
    before = run_program(narrowed(dev_config()))
    egress = before.stack_outputs["clusters"]["app-aws"]["egressIps"]
    g = run_program(
        narrowed(without("app-aws")), preview=preview, previous_outputs=before.stack_outputs
    )
    assert not [r for r in g.resources if r.name.startswith("app-aws")], "app-aws is gone"
    ranges = hub_aks(g).inputs["apiServerAccessProfile"]["authorizedIPRanges"]
    if preview:
        # The hub's own and app-azure's egress are unknown in a first preview; the list is too.
        assert is_unknown(ranges) or set(egress) <= set(ranges)
    else:
        assert set(egress) <= set(ranges), (
            f"the hub must still admit removed app-aws ({egress}) while its work is deleted: "
            f"{ranges}"
        )


def test_the_run_after_a_removal_drops_the_departed_egress():
    before = run_program(narrowed(dev_config()))
    egress = before.stack_outputs["clusters"]["app-aws"]["egressIps"]
    removal = run_program(narrowed(without("app-aws")), previous_outputs=before.stack_outputs)
    after = run_program(narrowed(without("app-aws")), previous_outputs=removal.stack_outputs)
    ranges = hub_aks(after).inputs["apiServerAccessProfile"]["authorizedIPRanges"]
    assert not set(egress) & set(ranges), f"departed app-aws still admitted: {ranges}"


def test_removing_a_retired_cluster_keeps_its_egress_for_that_run_too():
    retired = run_program(narrowed(retiring("app-aws")))
    egress = retired.stack_outputs["retiringClusters"]["app-aws"]["egressIps"]
    g = run_program(narrowed(without("app-aws")), previous_outputs=retired.stack_outputs)
    ranges = hub_aks(g).inputs["apiServerAccessProfile"]["authorizedIPRanges"]
    assert set(egress) <= set(ranges)


# --- EKS names of existing stacks ----------------------------------------------------------


def legacy_outputs() -> dict[str, Any]:
    """What a stack from before stack-scoped names exported: no cloudName."""
    return {"clusters": {"app-aws": {"cloud": "aws", "egressIps": ["192.0.2.1/32"]}}}


def legacy_config() -> dict[str, Any]:
    """The dev config as such a stack runs it: its EKS cluster's log group, which EKS made,
    imported in this run (see test_app, stacks from before the cloud-path changes)."""
    config = copy.deepcopy(dev_config())
    config["ocm-fleet:clusters"][0]["importLogGroup"] = True
    return config


def test_a_cluster_from_before_stack_names_is_not_renamed_silently():
    spec = parse_fleet_config(
        {
            **{k.split(":")[1]: v for k, v in dev_config().items()},
            "eksAdminPrincipals": ["arn:aws:iam::123456789012:role/deployer"],
        }
    ).clusters[0]
    with pytest.raises(
        Exception,
        match=r"ocm-fleet:clusters\[0\]\.physicalName: missing; the "
        r"EKS cluster of 'app-aws' is named 'app-aws' in this stack",
    ):
        checked_cloud_name(legacy_outputs(), spec, 0)
    assert checked_cloud_name({}, spec, 0) == "dev-app-aws", "a new cluster gets the new name"
    current = {"clusters": {"app-aws": {"cloudName": "dev-app-aws"}}}
    assert checked_cloud_name(current, spec, 0) == "dev-app-aws"


def test_the_whole_program_stops_before_renaming_an_existing_eks_cluster():
    code = (
        "from harness import run_program\n"
        "from test_retire import legacy_config, legacy_outputs\n"
        "run_program(legacy_config(), previous_outputs=legacy_outputs())\n"
    )
    error = failure_of(code)
    assert error is not None and "PhysicalNameError: ocm-fleet:clusters[0].physicalName" in error


@MODES
def test_physical_name_keeps_the_old_name_with_the_old_outputs(preview):
    config = legacy_config()
    config["ocm-fleet:clusters"][0]["physicalName"] = "app-aws"
    g = run_program(config, preview=preview, previous_outputs=legacy_outputs())
    eks = g.named("app-aws-eks", "aws:eks/cluster:Cluster")
    assert eks.inputs["name"] == "app-aws"
    alias = g.named("app-aws-secrets-key", "aws:kms/alias:Alias")
    assert alias.inputs["name"] == "alias/ocm-fleet/app-aws-secrets", "the KMS alias is kept too"


@MODES
def test_two_stacks_of_one_stack_file_get_distinct_eks_names(preview):
    dev = run_program(dev_config(), preview=preview, stack="dev")
    prod = run_program(dev_config(), preview=preview, stack="prod")
    names = [g.named("app-aws-eks", "aws:eks/cluster:Cluster").inputs["name"] for g in (dev, prod)]
    aliases = [
        g.named("app-aws-secrets-key", "aws:kms/alias:Alias").inputs["name"] for g in (dev, prod)
    ]
    assert names == ["dev-app-aws", "prod-app-aws"]
    assert aliases == [
        "alias/ocm-fleet/dev-app-aws-secrets",
        "alias/ocm-fleet/prod-app-aws-secrets",
    ]
    for g in (dev, prod):
        rg = g.named("app-azure-rg", "azure-native:resources:ResourceGroup")
        assert "resourceGroupName" not in rg.inputs, "resource groups are auto-named per stack"
        pvc = g.named("database-data", "kubernetes:core/v1:PersistentVolumeClaim")
        # A namespaced name, the same in every stack: the zone-redundant claim of a new hub.
        assert pvc.inputs["metadata"]["name"] == CLAIM[ZONE_REDUNDANT], (
            "the database volume's name does not carry the stack"
        )
