"""Node-pool knobs against the cited replacement table (components/clusters/node_pool_changes.py):
changing nodeSize, nodeCount or kubernetesVersion in a cluster entry moves exactly the inputs
the table lists for it, on the side it lists, and never an input that replaces a cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conftest import dev_config
from harness import Graph, failure_of, run_program

from components.clusters.node_pool_changes import (
    CONTROL_PLANE_REPLACING_INPUTS,
    IN_PLACE,
    REFUSED,
    REPLACES_POOL,
    TABLE,
    changes_for,
)

KNOB_VALUES = {
    ("nodeSize", "aws"): "m6i.large",
    ("nodeCount", "aws"): 4,
    ("kubernetesVersion", "aws"): "1.34",
    ("nodeSize", "azure"): "Standard_D8s_v5",
    ("nodeCount", "azure"): 4,
    ("kubernetesVersion", "azure"): "1.34",
}
CLUSTER = {"aws": 0, "azure": 1}  # index in the dev stack's clusters


def with_knob(knob: str, cloud: str) -> dict[str, Any]:
    config = copy.deepcopy(dev_config())
    config["ocm-fleet:clusters"][CLUSTER[cloud]][knob] = KNOB_VALUES[(knob, cloud)]
    return config


_BASE: dict[str, Graph] = {}


def base() -> Graph:
    if "graph" not in _BASE:
        _BASE["graph"] = run_program(dev_config())
    return _BASE["graph"]


def changed_inputs(before: Graph, after: Graph) -> set[tuple[str, str, str]]:
    """(resource name, type, input) for every top-level input that differs between runs."""
    a, b = before.by_urn, after.by_urn
    assert a.keys() == b.keys(), (
        f"a knob must not add or remove resources: {sorted(set(a) ^ set(b))[:5]}"
    )
    changed = set()
    for urn, res in a.items():
        other = b[urn].wire_inputs
        for key in set(res.wire_inputs) | set(other):
            if res.wire_inputs.get(key) != other.get(key):
                changed.add((res.name, res.type, key))
    return changed


def test_every_knob_of_every_cloud_has_a_cited_entry():
    for knob, cloud in KNOB_VALUES:
        entries = changes_for(knob, cloud)
        assert entries, f"{knob} on {cloud} is missing from the replacement table"
        for entry in entries:
            assert entry.effect in (IN_PLACE, REPLACES_POOL, REFUSED), entry
            assert len(entry.source) > 60, f"{entry} must say where its effect is stated"


@pytest.mark.parametrize(("knob", "cloud"), list(KNOB_VALUES), ids=lambda v: str(v))
def test_a_knob_moves_exactly_the_inputs_the_table_lists(knob, cloud):
    after = run_program(with_knob(knob, cloud))
    changed = changed_inputs(base(), after)
    cluster = dev_config()["ocm-fleet:clusters"][CLUSTER[cloud]]["name"]
    # Kubernetes objects re-render only through the provider's kubeconfig, which no knob moves.
    moved = {(t, i) for name, t, i in changed if not t.startswith("pulumi:providers:")}
    listed = {(c.resource, i) for c in changes_for(knob, cloud) for i in c.inputs}
    assert moved, f"changing {knob} on {cluster} must change something"
    assert moved <= listed, (
        f"changing {knob} on {cluster} moved inputs the table does not list: {moved - listed}"
    )
    for name, type_, key in changed:
        assert name.startswith(cluster), f"{knob} of {cluster} changed {name}.{key}"
        assert key not in CONTROL_PLANE_REPLACING_INPUTS.get(type_, ()), (
            f"changing {knob} would replace the control plane of {cluster} through {key}"
        )


def test_an_eks_size_change_replaces_an_auto_named_group():
    """A replaced node group is created before the old one is deleted (Pulumi's default):
    a fixed node_group_name would collide, so the program never sets one."""
    group = base().named("app-aws-nodes", "aws:eks/nodeGroup:NodeGroup")
    assert "nodeGroupName" not in group.inputs and "nodeGroupNamePrefix" not in group.inputs
    assert not group.options["deleteBeforeReplace"]
    (entry,) = [c for c in changes_for("nodeSize", "aws")]
    assert entry.effect == REPLACES_POOL


def test_graviton_sizes_move_the_ami_type_with_the_instance_type():
    config = with_knob("nodeSize", "aws")
    config["ocm-fleet:clusters"][0]["nodeSize"] = "m7g.large"
    changed = changed_inputs(base(), run_program(config))
    assert ("app-aws-nodes", "aws:eks/nodeGroup:NodeGroup", "amiType") in changed
    assert ("app-aws-nodes", "aws:eks/nodeGroup:NodeGroup", "instanceTypes") in changed


def test_an_aks_size_change_is_refused_before_any_change():
    outputs = run_program(dev_config()).stack_outputs
    assert outputs["clusters"]["app-azure"]["nodeSize"] == "Standard_D4s_v5"
    code = (
        "from harness import run_program\n"
        "from test_node_pool_changes import with_knob\n"
        f"run_program(with_knob('nodeSize', 'azure'), previous_outputs={outputs!r})\n"
    )
    error = failure_of(code)
    assert error is not None, "a new nodeSize on an existing AKS cluster must stop the run"
    assert "ocm-fleet:clusters[1].nodeSize: 'Standard_D8s_v5'" in error, error
    assert "Standard_D4s_v5" in error and "retire" in error, error


def test_an_unchanged_aks_size_and_a_new_cluster_run_through():
    outputs = run_program(dev_config()).stack_outputs
    run_program(with_knob("nodeCount", "azure"), previous_outputs=outputs)
    run_program(with_knob("nodeSize", "azure"))  # no previous run: a new cluster, any size


def test_the_table_refuses_only_what_it_must():
    refused = [(c.knob, c.cloud) for c in TABLE if c.effect == REFUSED]
    assert refused == [("nodeSize", "azure")]
