"""Node-pool knobs against the cited replacement table (components/clusters/node_pool_changes.py):
changing nodeSize, nodeCount or kubernetesVersion in an entry of a stack that already exists
moves exactly the inputs the table lists for it, on the side it lists, adds or removes only the
resources it lists, and never touches an input that replaces a cluster."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from conftest import dev_config
from harness import Graph, failure_of, run_program

from components.clusters.aks import pool_name
from components.clusters.node_pool_changes import (
    CONTROL_PLANE_REPLACING_INPUTS,
    IN_PLACE,
    REPLACES_POOL,
    TABLE,
    changes_for,
)

KNOB_VALUES = {
    ("nodeSize", "aws"): "m6i.large",
    ("nodeCount", "aws"): 4,
    ("kubernetesVersion", "aws"): "1.36",
    ("nodeSize", "azure"): "Standard_D8s_v5",
    ("nodeCount", "azure"): 4,
    ("kubernetesVersion", "azure"): "1.36",
}
CLUSTER = {"aws": 0, "azure": 1}  # index in the dev stack's clusters


def with_knob(knob: str, cloud: str, value: Any = None) -> dict[str, Any]:
    config = copy.deepcopy(dev_config())
    chosen = KNOB_VALUES[(knob, cloud)] if value is None else value
    config["ocm-fleet:clusters"][CLUSTER[cloud]][knob] = chosen
    return config


_BASE: dict[str, Graph] = {}


def base() -> Graph:
    """The dev stack as it stands after its first run, rerun unchanged."""
    if "graph" not in _BASE:
        first = run_program(dev_config())
        _BASE["graph"] = run_program(dev_config(), previous_outputs=first.stack_outputs)
    return _BASE["graph"]


def then(config: dict[str, Any], before: Graph) -> Graph:
    """The run of `config` on the stack whose last run was `before`."""
    return run_program(config, previous_outputs=before.stack_outputs)


def diff(before: Graph, after: Graph) -> tuple[set[tuple[str, str, str]], set, set]:
    """(resource name, type, input) for every top-level input that differs between runs, and
    the (name, type) of resources only `after` has and only `before` has."""
    a, b = before.by_urn, after.by_urn
    changed = set()
    for urn in a.keys() & b.keys():
        mine, other = a[urn].wire_inputs, b[urn].wire_inputs
        for key in set(mine) | set(other):
            if mine.get(key) != other.get(key):
                changed.add((a[urn].name, a[urn].type, key))
    added = {(b[u].name, b[u].type) for u in b.keys() - a.keys()}
    removed = {(a[u].name, a[u].type) for u in a.keys() - b.keys()}
    return changed, added, removed


def test_every_knob_of_every_cloud_has_a_cited_entry():
    for knob, cloud in KNOB_VALUES:
        entries = changes_for(knob, cloud)
        assert entries, f"{knob} on {cloud} is missing from the replacement table"
        for entry in entries:
            assert entry.effect in (IN_PLACE, REPLACES_POOL), entry
            assert len(entry.source) > 60, f"{entry} must say where its effect is stated"


def assert_only_listed(knob: str, cloud: str, before: Graph, after: Graph) -> None:
    changed, added, removed = diff(before, after)
    cluster = dev_config()["ocm-fleet:clusters"][CLUSTER[cloud]]["name"]
    entries = changes_for(knob, cloud)
    # Kubernetes objects re-render only through the provider's kubeconfig, which no knob moves.
    moved = {(t, i) for name, t, i in changed if not t.startswith("pulumi:providers:")}
    listed = {(c.resource, i) for c in entries for i in c.inputs}
    assert moved or added or removed, f"changing {knob} on {cluster} must change something"
    assert moved <= listed, (
        f"changing {knob} on {cluster} moved inputs the table does not list: {moved - listed}"
    )
    pools = {c.resource for c in entries if c.effect == REPLACES_POOL}
    for name, type_ in added | removed:
        assert type_ in pools, f"changing {knob} on {cluster} added or removed {name} ({type_})"
    for name, type_, key in changed:
        assert name.startswith(cluster), f"{knob} of {cluster} changed {name}.{key}"
        assert key not in CONTROL_PLANE_REPLACING_INPUTS.get(type_, ()), (
            f"changing {knob} would replace the control plane of {cluster} through {key}"
        )


@pytest.mark.parametrize(("knob", "cloud"), list(KNOB_VALUES), ids=lambda v: str(v))
def test_a_knob_moves_exactly_the_inputs_the_table_lists(knob, cloud):
    assert_only_listed(knob, cloud, base(), then(with_knob(knob, cloud), base()))


def test_an_eks_size_change_replaces_an_auto_named_group():
    """A replaced node group is created before the old one is deleted (Pulumi's default):
    a fixed node_group_name would collide, so the program never sets one."""
    group = base().named("app-aws-nodes", "aws:eks/nodeGroup:NodeGroup")
    assert "nodeGroupName" not in group.inputs and "nodeGroupNamePrefix" not in group.inputs
    assert not group.options["deleteBeforeReplace"]
    (entry,) = [c for c in changes_for("nodeSize", "aws")]
    assert entry.effect == REPLACES_POOL


def test_graviton_sizes_move_the_ami_type_with_the_instance_type():
    config = with_knob("nodeSize", "aws", "m7g.large")
    changed, _, _ = diff(base(), then(config, base()))
    assert ("app-aws-nodes", "aws:eks/nodeGroup:NodeGroup", "amiType") in changed
    assert ("app-aws-nodes", "aws:eks/nodeGroup:NodeGroup", "instanceTypes") in changed


FIRST, SECOND, THIRD = "Standard_D4s_v5", "Standard_D8s_v5", "Standard_E4s_v5"
AKS = "azure-native:containerservice:ManagedCluster"
POOL = "azure-native:containerservice:AgentPool"


def first_pool(graph: Graph) -> dict[str, Any]:
    (profile,) = graph.named("app-azure-aks", AKS).inputs["agentPoolProfiles"]
    return profile


def sizes(*chosen: str) -> list[Graph]:
    """The graphs of successive runs of the dev stack, the azure cluster at each size."""
    graphs = [base()]
    for size in chosen:
        graphs.append(then(with_knob("nodeSize", "azure", size), graphs[-1]))
    return graphs


def test_an_aks_size_change_moves_the_nodes_to_a_new_pool_and_empties_the_first():
    _, moved = sizes(SECOND)
    pool = moved.named("app-azure-pool", POOL)
    assert pool.inputs["vmSize"] == SECOND
    assert pool.inputs["mode"] == "System", "the first pool may only turn User beside a System"
    assert pool.inputs["count"] == first_pool(base())["count"], "the nodes move, all of them"
    assert pool.inputs["agentPoolName"] == pool_name(SECOND)
    assert pool.inputs["resourceName"] == base().stack_outputs["clusters"]["app-azure"]["azureName"]
    first = first_pool(moved)
    assert first["vmSize"] == FIRST, "AKS cannot resize a pool: the first keeps its size"
    assert (first["mode"], first["count"], first["name"]) == ("User", 0, "system")
    cluster = moved.named("app-azure-aks", AKS)
    assert pool.urn in cluster.dependencies, (
        "the cluster's update empties the first pool: the new System pool must exist first"
    )
    assert cluster.urn not in moved.direct_deps(pool), "the pool must not wait for the cluster"
    provider = moved.kubernetes_provider("app-azure")
    assert moved.depends_on(provider, pool), (
        "Kubernetes objects must be deleted while the pool's nodes still run"
    )
    assert moved.stack_outputs["clusters"]["app-azure"]["firstPoolSize"] == FIRST
    assert moved.stack_outputs["clusters"]["app-azure"]["nodeSize"] == SECOND


def test_sizes_after_the_first_move_replace_the_pool_and_leave_the_cluster_alone():
    _, second, third = sizes(SECOND, THIRD)
    changed, added, removed = diff(second, third)
    assert not added and not removed, "a new size replaces the same pool resource"
    assert {(n, k) for n, _, k in changed} == {
        ("app-azure-pool", "vmSize"),
        ("app-azure-pool", "agentPoolName"),
    }
    assert pool_name(SECOND) != pool_name(THIRD), "the replacement is created beside the old"
    pool = third.named("app-azure-pool", POOL)
    # azure-native asks for delete-before-replace on every replacement of a pool it does not
    # name; deleting first would remove the cluster's only System pool.
    assert pool.options["deleteBeforeReplaceDefined"], "the order must be chosen, not left"
    assert not pool.options["deleteBeforeReplace"], "the new pool must exist before the old goes"
    assert_only_listed("nodeSize", "azure", second, third)


def test_returning_to_the_first_size_gives_the_nodes_back_to_the_first_pool():
    first, _, back = sizes(SECOND, FIRST)
    assert not back.of_type(POOL), "the separate pool is deleted once the first holds the nodes"
    assert first_pool(back) == first_pool(first)
    assert back.named("app-azure-aks", AKS).inputs == first.named("app-azure-aks", AKS).inputs


def test_node_count_follows_the_nodes_into_the_separate_pool():
    _, moved = sizes(SECOND)
    config = with_knob("nodeSize", "azure", SECOND)
    config["ocm-fleet:clusters"][1]["nodeCount"] = 5
    after = then(config, moved)
    changed, added, removed = diff(moved, after)
    assert not added and not removed
    assert {(n, k) for n, _, k in changed} == {("app-azure-pool", "count")}
    assert first_pool(after)["count"] == 0, "the emptied first pool stays empty"


def with_size_and_version(size: str, version: str) -> dict[str, Any]:
    config = with_knob("nodeSize", "azure", size)
    config["ocm-fleet:clusters"][1]["kubernetesVersion"] = version
    return config


def versions(graph: Graph) -> tuple[str, str, str | None]:
    """(control plane, first pool, separate pool) Kubernetes versions of app-azure."""
    pools = graph.of_type(POOL)
    return (
        graph.named("app-azure-aks", AKS).inputs["kubernetesVersion"],
        first_pool(graph)["orchestratorVersion"],
        pools[0].inputs["orchestratorVersion"] if pools else None,
    )


def test_an_upgrade_beside_a_separate_pool_takes_the_control_plane_first_then_the_pools():
    """The cluster waits for the separate pool, so in one run the pool would be upgraded
    first; AKS refuses a pool newer than its control plane."""
    _, moved = sizes(SECOND)
    old = versions(moved)[0]
    upgraded = then(with_size_and_version(SECOND, "1.36"), moved)
    assert versions(upgraded) == ("1.36", old, old), "the pools wait for the control plane"
    assert any("Run `pulumi up` again" in line for line in upgraded.logs), upgraded.logs
    caught_up = then(with_size_and_version(SECOND, "1.36"), upgraded)
    assert versions(caught_up) == ("1.36", "1.36", "1.36")
    assert not any("Run `pulumi up` again" in line for line in caught_up.logs)


@pytest.mark.parametrize("size", [SECOND, FIRST], ids=["moving away", "moving back"])
def test_a_size_and_version_change_together_upgrade_the_control_plane_first(size):
    _, moved = sizes(SECOND)
    start = moved if size == FIRST else base()
    old = versions(start)[0]
    both = then(with_size_and_version(size if size == FIRST else SECOND, "1.36"), start)
    plane, first, separate = versions(both)
    assert (plane, first) == ("1.36", old)
    assert separate in (None, old), "no pool may be newer than the control plane"


def test_an_upgrade_without_a_separate_pool_takes_everything_in_one_run():
    upgraded = then(with_knob("kubernetesVersion", "azure"), base())
    assert versions(upgraded) == ("1.36", "1.36", None)


def test_only_the_case_of_a_size_changes_nothing():
    for graphs in (sizes("standard_d4s_v5 "), sizes(SECOND, SECOND.upper())):
        changed, added, removed = diff(graphs[-2], graphs[-1])
        assert not changed and not added and not removed, (changed, added, removed)


def test_a_size_change_on_a_stack_from_before_the_azure_name_was_exported_is_refused():
    outputs = copy.deepcopy(base().stack_outputs)
    for key in ("azureName", "firstPoolSize"):
        del outputs["clusters"]["app-azure"][key]
    code = (
        "from harness import run_program\n"
        "from test_node_pool_changes import with_knob\n"
        f"run_program(with_knob('nodeSize', 'azure'), previous_outputs={outputs!r})\n"
    )
    error = failure_of(code)
    assert error is not None, "without the cluster's Azure name no pool can be added to it"
    assert "ocm-fleet:clusters[1].nodeSize: 'Standard_D8s_v5'" in error, error
    assert f"with nodeSize {FIRST!r}" in error, error
    # The same stack without a size change runs, and records the name for the next run.
    rerun = run_program(dev_config(), previous_outputs=outputs)
    assert rerun.stack_outputs["clusters"]["app-azure"]["azureName"]
    assert rerun.stack_outputs["clusters"]["app-azure"]["firstPoolSize"] == FIRST


def test_a_new_cluster_and_a_moved_region_start_in_their_first_pool():
    new = run_program(with_knob("nodeSize", "azure"))
    assert first_pool(new)["vmSize"] == KNOB_VALUES[("nodeSize", "azure")]
    assert not new.of_type(POOL)
    config = with_knob("nodeSize", "azure")
    config["ocm-fleet:clusters"][1]["region"] = "northeurope"
    moved_region = then(config, base())
    assert not moved_region.of_type(POOL), "a new location replaces the cluster: no old pool"
    assert first_pool(moved_region)["mode"] == "System"


def test_pool_names_are_valid_distinct_and_never_the_first_pools():
    chosen = [FIRST, SECOND, THIRD, "Standard_NC24ads_A100_v4", "Standard_B2s"]
    names = [pool_name(size) for size in chosen]
    for size, name in zip(chosen, names, strict=True):
        assert re.fullmatch(r"[a-z][a-z0-9]{0,11}", name), (size, name)
        assert name != "system"
    assert len(set(names)) == len(names), names
    assert pool_name(" standard_d4s_v5") == pool_name(FIRST), "Azure reads sizes without case"


def test_no_knob_is_refused_any_more():
    assert {c.effect for c in TABLE} == {IN_PLACE, REPLACES_POOL}
