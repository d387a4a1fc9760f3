"""Facts about Open Cluster Management shared by the hub and agent components."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import images
from components._k8s import chart_source
from components.security import network_policies as netpol
from components.security import pod_security

CHART_REPO = "https://open-cluster-management.io/helm-charts"
IMAGE_REGISTRY = "quay.io/open-cluster-management"

IMAGE_COMPONENTS = ("addon-manager", "placement", "registration", "registration-operator", "work")
"""Every OCM image the hub and the agents run."""

OPERATOR_NAMESPACE = "open-cluster-management"
"""Where both charts install their operator."""
AGENT_NAMESPACE = "open-cluster-management-agent"
"""Where the klusterlet runs its agent (Singleton mode) and reads the bootstrap kubeconfig."""
HUB_WORKLOAD_NAMESPACE = "ocm-fleet"
"""Hub namespace holding the fleet's Placement and cluster-set binding."""

CLUSTER_SET = "app-clusters"
CLUSTER_SET_LABEL = "cluster.open-cluster-management.io/clusterset"
LABEL_PREFIX = "ocm-fleet.io"
CLUSTER_NAME_LABEL = f"{LABEL_PREFIX}/cluster"
"""Carries the cluster's name on its ManagedCluster, for placements to select by name."""
UNREACHABLE_TAINT = "cluster.open-cluster-management.io/unreachable"
UNAVAILABLE_TAINT = "cluster.open-cluster-management.io/unavailable"

BOOTSTRAP_SERVICE_ACCOUNT = "ocm-fleet-bootstrap"
BOOTSTRAP_IDENTITY = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{BOOTSTRAP_SERVICE_ACCOUNT}"
"""The user the klusterlets authenticate as until their CSR is signed; auto-approved on the hub."""

CLUSTER_API = "cluster.open-cluster-management.io"
WORK_API = "work.open-cluster-management.io"
OPERATOR_API = "operator.open-cluster-management.io/v1"

# OCM's delete paths wait on controllers (finalizers); a slow cloud API makes them take minutes.
CREATE_TIMEOUT = "20m"
DELETE_TIMEOUT = "20m"


def image(component: str, version: str) -> str:
    """The upstream image of an OCM component at a release, e.g. registration:v1.3.1, pinned
    by its digest in components/images.yaml when that has it."""
    return images.pinned(f"{IMAGE_REGISTRY}/{component}:v{version}")


def operator_image_values(version: str) -> dict[str, Any]:
    """Chart values naming the operator's image, so that it is pinned like the rest (the chart
    would otherwise build `registry/registration-operator:<appVersion>` itself)."""
    return {"images": {"overrides": {"operatorImage": image("registration-operator", version)}}}


def wait_for(*conditions: str) -> dict[str, str]:
    """The pulumi-kubernetes (>= 4.18) annotation that makes `pulumi up` wait for conditions.

    With several conditions, every one must hold (a JSON list is ANDed).
    """
    value = conditions[0] if len(conditions) == 1 else json.dumps(list(conditions))
    return {"pulumi.com/waitFor": value}


def feature_gates(*enabled: str, keep: Sequence[str] = ()) -> list[dict[str, str]]:
    """A featureGates list: Helm and the operator replace lists, so defaults in `keep` are
    repeated alongside the gates this program turns on."""
    names = sorted({*keep, *enabled})
    return [{"feature": name, "mode": "Enable"} for name in names]


def operator_chart(
    name: str,
    chart: str,
    version: str,
    values: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    chart_path: str | None = None,
) -> tuple[k8s.core.v1.Namespace, k8s.helm.v3.Release]:
    """The operator namespace and an OCM chart pinned to `version` from the official repo, or
    from `chart_path` (a local chart directory or .tgz) when given.

    `opts` carries the parent and the cluster's provider. The chart's CR is declared by the
    caller, depending on the release, so that destroy deletes it while the operator runs.
    """
    namespace = k8s.core.v1.Namespace(
        f"{name}-operator-namespace",
        metadata=pod_security.namespace_metadata(OPERATOR_NAMESPACE, pod_security.OCM_OPERATOR),
        opts=opts,
    )
    policies = netpol.declare(name, operator_policies(namespace.metadata.name), opts)
    release = k8s.helm.v3.Release(
        f"{name}-{chart}",
        name=chart,
        **chart_source(chart, version, CHART_REPO, chart_path),
        namespace=namespace.metadata.name,
        values=dict(values),
        # A failed install or upgrade is rolled back, not left half-applied.
        atomic=True,
        cleanup_on_fail=True,
        timeout=600,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=policies)),
    )
    return namespace, release


def operator_policies(namespace: pulumi.Input[str]) -> list[dict[str, Any]]:
    """The operators serve nothing and only call their cluster's API server.

    The API server is not a pod and its address differs by cloud (EKS endpoint interfaces in
    the VPC, AKS's public endpoint, a kind node), and Cilium's ipBlock does not match an API
    server on the cluster's nodes (cilium/cilium#20550): the rule names the ports and no peer,
    i.e. any destination on those ports.
    """
    return [
        netpol.default_deny(namespace),
        netpol.policy(
            "operator-to-api-server",
            namespace,
            {},
            egress=[{"ports": netpol.tcp(*netpol.API_SERVER_PORTS)}],
        ),
    ]
