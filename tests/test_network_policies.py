"""NetworkPolicies: every namespace the program fills denies by default, and the flows the
policies allow, computed from whole-program runs, are exactly the data path's."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import FLEETS, fleet_graph
from network_flows import Network, flow_table, needed_flows, network_of
from schemas import kubernetes_errors
from workloads import Placed, namespaces, rendered_objects


def network(fleet: str) -> Network:
    # Update mode: the policies' addresses and the ManifestWork payloads are known.
    return network_of(fleet_graph(fleet, preview=False))


def default_deny_problems(net: Network) -> list[str]:
    problems = []
    for cluster, name in {(p.cluster, p.name) for p in net.objects if p.kind == "Namespace"}:
        denies = [
            p
            for p in net.objects
            if p.kind == "NetworkPolicy"
            and (p.cluster, p.namespace) == (cluster, name)
            and p.obj["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        ]
        if not denies:
            problems.append(f"namespace {name} on {cluster} has no deny-all NetworkPolicy")
    return problems


def problems(net: Network) -> list[str]:
    """Everything wrong with the fleet's policies: a missing default deny, a needed flow that is
    blocked, a flow that is allowed but not needed."""
    table, needed = flow_table(net), needed_flows(net)
    found = default_deny_problems(net)
    found += [f"needed but blocked: {f}" for f in sorted(needed - table)]
    found += [f"allowed but not needed: {f}" for f in sorted(table - needed)]
    return found


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_the_policies_allow_exactly_the_data_paths_flows(fleet):
    net = network(fleet)
    assert problems(net) == []
    table = flow_table(net)
    # The table is not trivially small: the data path through every app cluster is in it.
    apps = [c for c in net.clusters if c != net.hub and c not in net.second_homes]
    assert len(table) >= 10 * len(apps), sorted(table)
    for app in apps:
        assert (
            f"{app}/bookstore/shopapi",
            f"{net.hub}/bookstore-data/mariadb",
            "TCP/3306",
        ) in table


def test_the_flow_table_reads_as_the_data_path():
    """The dev fleet's table, written out: what a reviewer reads to see who talks to whom."""
    table = flow_table(network("dev"))
    hub, app = "main", "app-aws"
    for flow in [
        ("internet", f"{hub}/ocm-fleet-ingress/public-lb", "TCP/8080"),
        (f"{hub}/ocm-fleet-ingress/public-lb", f"{app}/bookstore/router", "TCP/8080"),
        (f"{app}/bookstore/router", f"{app}/bookstore/website", "TCP/80"),
        (f"{app}/bookstore/router", f"{app}/bookstore/shopui", "TCP/80"),
        (f"{app}/bookstore/router", f"{app}/bookstore/shopapi", "TCP/3000"),
        (f"{app}/bookstore/shopapi", f"{hub}/bookstore-data/mariadb", "TCP/3306"),
        (f"{hub}/bookstore-data/bookstore-schema", f"{hub}/bookstore-data/mariadb", "TCP/3306"),
        (f"{app}/bookstore/shopapi", f"{app}/kube-system/kube-dns", "UDP/53"),
        (f"{app}/open-cluster-management/klusterlet", f"{app}/default/kube-apiserver", "TCP/443"),
    ]:
        assert flow in table, f"flow {flow} is blocked"
    for flow in [
        ("internet", f"{app}/bookstore/router", "TCP/8080"),
        ("internet", f"{hub}/bookstore-data/mariadb", "TCP/3306"),
        (f"{app}/bookstore/website", f"{app}/bookstore/shopapi", "TCP/3000"),
        (f"{app}/bookstore/router", f"{hub}/bookstore-data/mariadb", "TCP/3306"),
        (f"{hub}/ocm-fleet-ingress/public-lb", f"{hub}/bookstore-data/mariadb", "TCP/3306"),
        (f"{app}/bookstore/website", f"{app}/kube-system/kube-dns", "UDP/53"),
    ]:
        assert flow not in table, f"flow {flow} is allowed"


def policies_of(net: Network) -> list[int]:
    return [i for i, p in enumerate(net.objects) if p.kind == "NetworkPolicy"]


def describe(placed: Placed) -> str:
    return f"{placed.cluster}/{placed.namespace}/{placed.name}"


DEV_POLICIES = [describe(network("dev").objects[i]) for i in policies_of(network("dev"))]


@pytest.mark.parametrize("index", range(len(DEV_POLICIES)), ids=DEV_POLICIES)
def test_removing_any_policy_fails_the_check(index):
    net = network("dev")
    position = policies_of(net)[index]
    mutated = copy.copy(net)
    mutated.objects = net.objects[:position] + net.objects[position + 1 :]
    assert problems(mutated), f"removing {DEV_POLICIES[index]} went unnoticed"


@pytest.mark.parametrize("index", range(len(DEV_POLICIES)), ids=DEV_POLICIES)
def test_widening_any_policy_to_everything_fails_the_check(index):
    net = network("dev")
    position = policies_of(net)[index]
    original = net.objects[position]
    obj = copy.deepcopy(original.obj)
    types = obj["spec"]["policyTypes"]
    obj["spec"]["podSelector"] = {}
    if "Ingress" in types:
        obj["spec"]["ingress"] = [{}]
    if "Egress" in types:
        obj["spec"]["egress"] = [{}]
    mutated = copy.copy(net)
    mutated.objects = [*net.objects]
    mutated.objects[position] = Placed(original.cluster, obj, original.source)
    assert problems(mutated), f"widening {DEV_POLICIES[index]} went unnoticed"


# The public entry's policy admits everyone, so it does not depend on client addresses; its
# Service keeps them for HAProxy's logs.
@pytest.mark.parametrize("service", ["bookstore-edge", "mariadb-public"])
def test_services_whose_policies_match_client_addresses_keep_them(service):
    net = network("dev")
    found = [i for i, p in enumerate(net.objects) if p.kind == "Service" and p.name == service]
    assert found, f"no Service {service}"
    for position in found:
        assert net.objects[position].obj["spec"].get("externalTrafficPolicy") == "Local"
    mutated = copy.copy(net)
    mutated.objects = [*net.objects]
    for position in found:
        original = net.objects[position]
        obj = copy.deepcopy(original.obj)
        obj["spec"]["externalTrafficPolicy"] = "Cluster"
        mutated.objects[position] = Placed(original.cluster, obj, original.source)
    assert any("needed but blocked" in p for p in problems(mutated)), (
        f"{service} without externalTrafficPolicy: Local would hide client addresses"
    )


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_every_namespace_the_program_creates_denies_by_default(fleet):
    net = network(fleet)
    assert default_deny_problems(net) == []
    assert len(namespaces(fleet_graph(fleet, preview=False))) >= 5


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_every_policy_and_service_the_program_renders_is_valid_kubernetes(fleet):
    graph = fleet_graph(fleet, preview=False)
    checked = 0
    for placed in rendered_objects(graph):
        if placed.kind not in ("NetworkPolicy", "Service", "Namespace"):
            continue
        errors = kubernetes_errors(placed.obj, "1.33.0")
        assert not errors, f"{placed} is invalid: {errors}"
        checked += 1
    assert checked > 10


def test_eks_enforces_network_policies_in_the_vpc_cni():
    graph = fleet_graph("dev", preview=False)
    addons = [r for r in graph.of_type("aws:eks/addon:Addon") if r.inputs["addonName"] == "vpc-cni"]
    assert addons, "no vpc-cni add-on in the dev fleet"
    for addon in addons:
        config = json.loads(addon.inputs.get("configurationValues") or "{}")
        assert config.get("enableNetworkPolicy") == "true", f"{addon.name}: {config}"


def test_aks_enforces_network_policies_with_cilium():
    graph = fleet_graph("dev", preview=False)
    clusters = graph.of_type("azure-native:containerservice:ManagedCluster")
    assert clusters
    for cluster in clusters:
        profile = cluster.inputs["networkProfile"]
        assert (profile["networkDataplane"], profile["networkPolicy"]) == ("cilium", "cilium"), (
            f"{cluster.name}: {profile}"
        )
        assert (profile["networkPlugin"], profile["networkPluginMode"]) == ("azure", "overlay")
