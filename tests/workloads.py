"""What the recorded graph sends to each cluster: objects, namespaces and pods, per cluster.

Objects come from two places: Kubernetes resources declared through a cluster's provider, and
the manifests that ManifestWorks (or ManifestWorkReplicaSets) on the hub carry to app clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness import CLUSTER_COMPONENT_TYPES, Graph

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}


@dataclass(frozen=True)
class Placed:
    """One Kubernetes object as it lands on a cluster."""

    cluster: str
    obj: dict[str, Any]
    source: str
    """The graph resource that declares or carries it, for failure messages."""

    @property
    def kind(self) -> str:
        return self.obj["kind"]

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def namespace(self) -> str | None:
        return self.obj["metadata"].get("namespace")

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.cluster}:{self.kind} {where}{self.name} (from {self.source})"


def clusters_by_provider(graph: Graph) -> dict[str, str]:
    """Kubernetes provider URN -> cluster name."""
    names = [r.name for r in graph.resources if r.type in CLUSTER_COMPONENT_TYPES]
    return {graph.kubernetes_provider(name).urn: name for name in names}


def app_cluster_names(graph: Graph) -> list[str]:
    return sorted(
        r.inputs["metadata"]["name"]
        for r in graph.of_type("kubernetes:cluster.open-cluster-management.io/v1:ManagedCluster")
    )


def rendered_objects(graph: Graph) -> list[Placed]:
    """Every Kubernetes object the program puts on any cluster (Helm charts' own excepted)."""
    providers = clusters_by_provider(graph)
    placed: list[Placed] = []
    for res in graph.resources:
        if not res.type.startswith("kubernetes:") or res.type == "kubernetes:helm.sh/v3:Release":
            continue
        cluster = providers.get(res.provider_urn)
        if cluster is None:
            continue
        _, api, kind = res.type.split(":")
        group, version = api.split("/")
        api_version = version if group == "core" else f"{group}/{version}"
        obj = {"apiVersion": api_version, "kind": kind}
        obj.update({k: v for k, v in res.inputs.items() if k not in ("apiVersion", "kind")})
        placed.append(Placed(cluster, obj, res.name))
        spec = res.inputs.get("spec") or {}
        if kind == "ManifestWork":
            target = res.inputs["metadata"]["namespace"]
            for manifest in spec["workload"]["manifests"]:
                placed.append(Placed(target, manifest, res.name))
        elif kind == "ManifestWorkReplicaSet":
            for target in app_cluster_names(graph):
                for manifest in spec["manifestWorkTemplate"]["workload"]["manifests"]:
                    placed.append(Placed(target, manifest, res.name))
    return placed


def namespaces(graph: Graph) -> dict[tuple[str, str], dict[str, Any]]:
    """(cluster, namespace name) -> the Namespace object the program declares there."""
    return {(p.cluster, p.name): p.obj for p in rendered_objects(graph) if p.kind == "Namespace"}


def pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod (metadata and spec) a workload object runs."""
    kind = obj["kind"]
    if kind == "Pod":
        return {"metadata": obj.get("metadata") or {}, "spec": obj["spec"]}
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return obj["spec"]["template"]


def workloads(graph: Graph) -> list[Placed]:
    return [p for p in rendered_objects(graph) if p.kind in WORKLOAD_KINDS]
