"""The whole program under mocks: fleets of every shape evaluate, in update and preview mode."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import FLEETS, fleet_graph
from harness import CLUSTER_COMPONENT_TYPES, Graph, is_secret, is_unknown, run_program

AWS_REGIONS = ["eu-west-1", "us-east-1", "ap-southeast-2"]
AZURE_REGIONS = ["westeurope", "eastus2", "japaneast"]
EKS = "aws:eks/cluster:Cluster"
AKS = "azure-native:containerservice:ManagedCluster"


def fleet_of(n_aws: int, n_azure: int) -> dict:
    clusters = [
        {"name": f"aws-{i}", "cloud": "aws", "region": AWS_REGIONS[i % len(AWS_REGIONS)]}
        for i in range(n_aws)
    ] + [
        {"name": f"az-{i}", "cloud": "azure", "region": AZURE_REGIONS[i % len(AZURE_REGIONS)]}
        for i in range(n_azure)
    ]
    return {
        "ocm-fleet:hub": {"name": "main", "cloud": "azure", "region": "northeurope"},
        "ocm-fleet:clusters": clusters,
        "ocm-fleet:apiAllowedCidrs": ["203.0.113.0/24"],
    }


def cluster_providers(graph: Graph) -> dict[str, str]:
    """Kubernetes provider URN -> cluster name."""
    return {
        graph.kubernetes_provider(c.name).urn: c.name
        for c in graph.resources
        if c.type in CLUSTER_COMPONENT_TYPES
    }


SHAPES = [(1, 0), (0, 1), (3, 0), (0, 3), (2, 2), (3, 3)]


@pytest.mark.parametrize(("n_aws", "n_azure"), SHAPES, ids=[f"aws{a}-azure{z}" for a, z in SHAPES])
@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_fleets_of_any_shape_build_one_of_everything_per_cluster(n_aws, n_azure, preview):
    graph = run_program(fleet_of(n_aws, n_azure), preview=preview)
    counts = Counter(r.type for r in graph.resources)
    n_apps = n_aws + n_azure
    assert counts[EKS] == n_aws
    assert counts[AKS] == n_azure + 1, "one AKS per azure app cluster, plus the hub"
    assert counts["pulumi:providers:kubernetes"] == n_apps + 1, "one provider per cluster"
    assert counts["pulumi:providers:aws"] == n_aws, "one AWS provider per EKS cluster"
    assert counts["pulumi:providers:azure-native"] == n_azure + 1
    for kind in ("ManagedCluster", "Klusterlet"):
        matching = [t for t in counts if t.endswith(f":{kind}") and "open-cluster-management" in t]
        assert sum(counts[t] for t in matching) == n_apps, f"one {kind} per app cluster"
    works = Counter(
        r.inputs["metadata"]["name"]
        for r in graph.of_type("kubernetes:work.open-cluster-management.io/v1:ManifestWork")
    )
    assert works == {"metrics-agent": n_apps}, "the monitoring agent's work per cluster"
    assert counts["kubernetes:work.open-cluster-management.io/v1alpha1:ManifestWorkReplicaSet"] == 1
    assert counts["kubernetes:core/v1:ConfigMap"] >= n_apps, "a database ConfigMap per cluster"
    charts = Counter(r.inputs["chart"] for r in graph.of_type("kubernetes:helm.sh/v3:Release"))
    assert charts == {"klusterlet": n_apps, "cluster-manager": 1, "prometheus": 1, "grafana": 1}
    regions = sorted(r.inputs["region"] for r in graph.of_type("pulumi:providers:aws"))
    assert regions == sorted(AWS_REGIONS[i % 3] for i in range(n_aws))
    locations = sorted(r.inputs["location"] for r in graph.of_type("pulumi:providers:azure-native"))
    assert locations == sorted([*(AZURE_REGIONS[i % 3] for i in range(n_azure)), "northeurope"])


def test_every_kubernetes_resource_names_its_clusters_provider(any_graph):
    providers = cluster_providers(any_graph)
    kubernetes = [r for r in any_graph.resources if r.type.startswith("kubernetes:")]
    assert kubernetes
    for res in kubernetes:
        assert res.provider_urn in providers, (
            f"{res} must use a cluster's provider, not {res.provider or 'the default provider'}"
        )


def test_cloud_resources_use_their_clusters_explicit_provider(any_graph):
    for res in any_graph.resources:
        if not res.custom or not res.type.startswith(("aws:", "azure-native:")):
            continue
        provider = any_graph.by_urn.get(res.provider_urn)
        assert provider is not None and provider.type.startswith("pulumi:providers:"), (
            f"{res} must use an explicit per-cluster provider, not the default one"
        )
        assert "default" not in provider.name, res


def test_kubernetes_providers_are_stable_and_secret(any_graph):
    for urn, cluster in cluster_providers(any_graph).items():
        provider = any_graph.by_urn[urn]
        assert provider.inputs["clusterIdentifier"] == cluster, provider
        assert is_secret(provider.wire_inputs["kubeconfig"]), f"{provider}: kubeconfig not secret"


def test_stack_outputs_describe_each_cluster_and_keep_kubeconfigs_secret(any_graph):
    outputs, wire = any_graph.stack_outputs, any_graph.stack_wire_outputs
    assert set(outputs) >= {"url", "hub", "clusters", "kubeconfigs", "databaseHost"}
    assert is_secret(wire["kubeconfigs"]), "kubeconfigs must be a secret output"
    for name, cluster in outputs["clusters"].items():
        expected = {"cloud", "region", "apiServerUrl", "egressIps", "edgeAddress"}
        # An EKS cluster's name is exported so that a later run can tell it would rename it,
        # and its log group, so that a later run knows the program made or adopted it.
        expected |= {"cloudName", "logGroup"} if cluster["cloud"] == "aws" else set()
        # An AKS cluster's node size, its first pool's size and its Azure name: where a later
        # run finds its nodes and adds a pool (node_pool_changes.py); its identity, which a
        # later run keeps.
        azure = {
            "nodeSize",
            "firstPoolSize",
            "azureName",
            "kubernetesVersion",
            "controlPlaneIdentity",
        }
        expected |= azure if cluster["cloud"] == "azure" else set()
        assert set(cluster) == expected, name
    plain = json.dumps({k: v for k, v in wire.items() if k != "kubeconfigs"})
    for marker in ("certificate-authority-data", "client-key-data", "token:"):
        assert marker not in plain, f"{marker} appears in a plain stack output"


def test_preview_declares_the_same_graph_as_update():
    for fleet in FLEETS:
        update, preview = fleet_graph(fleet, False), fleet_graph(fleet, True)
        assert sorted(r.urn for r in update.resources) == sorted(r.urn for r in preview.resources)
        assert is_unknown(preview.stack_outputs["url"]), "the first preview cannot know the URL"


def test_two_runs_of_one_config_give_identical_inputs():
    first, second = (run_program(FLEETS["large"]()) for _ in range(2))
    a = {r.urn: r.wire_inputs for r in first.resources}
    b = {r.urn: r.wire_inputs for r in second.resources}
    assert a.keys() == b.keys()
    changed = [urn for urn in a if a[urn] != b[urn]]
    assert not changed, f"inputs differ between two runs (a perpetual diff): {changed[:5]}"


# A KMS alias is a name for the key; nothing on the cluster uses it.
NOT_UNDER_THE_CLUSTER = {"aws:kms/alias:Alias"}


def test_everything_on_a_cluster_goes_before_the_cloud_resources_under_it(any_graph):
    """The Kubernetes provider depends on every cloud resource of its cluster: objects on the
    cluster are created after, and deleted before, the network, nodes, NAT and routes that
    carry their traffic (agents must reach the hub while their ManifestWorks are deleted).
    A resource deleted with the cluster (deletedWith) is not removed before it, so it outlives
    every object on the cluster without the provider waiting for it."""
    for component in any_graph.resources:
        if component.type not in CLUSTER_COMPONENT_TYPES:
            continue
        provider = any_graph.kubernetes_provider(component.name)
        plane = any_graph.control_plane(component.name)
        for res in any_graph.descendants(component):
            if not res.custom or res.type.startswith("pulumi:providers:"):
                continue
            if res.type in NOT_UNDER_THE_CLUSTER:
                continue
            if res.options.get("deletedWith") == plane.urn:
                assert any_graph.depends_on(res, plane), f"{res} must depend on {plane}"
                continue
            assert any_graph.depends_on(provider, res), (
                f"the Kubernetes provider of {component.name} must depend on {res}, or destroy "
                "removes it while objects on the cluster still need it"
            )
