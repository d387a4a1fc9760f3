"""Which component builds a cluster: EKS, AKS, kind or an existing cluster, by its `cloud`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi

from components.clusters._base import FleetCluster
from components.clusters.aks import AksCluster, AksClusterArgs
from components.clusters.eks import EksCluster, EksClusterArgs
from components.clusters.existing import ExistingCluster, ExistingClusterArgs, LocalKubeconfig
from components.clusters.kind import (
    KindCluster,
    KindClusterArgs,
    KindLoadBalancer,
    KindLoadBalancerArgs,
    kind_cluster_name,
)
from components.config import ClusterSpec, FleetConfig
from components.lifecycle.previous_run import PreviousRun


def kind_load_balancer(fleet: FleetConfig) -> KindLoadBalancer | None:
    """The host's cloud-provider-kind when the fleet runs on kind, else None."""
    stack = pulumi.get_stack()
    kind = [kind_cluster_name(spec, stack) for spec in fleet.all_clusters if spec.cloud == "kind"]
    if kind:
        return KindLoadBalancer("kind-load-balancer", KindLoadBalancerArgs(clusters=kind))
    return None


def build_cluster(
    spec: ClusterSpec,
    fleet: FleetConfig,
    local_kubeconfigs: Mapping[str, LocalKubeconfig],
    extra_api_cidrs: pulumi.Input[Sequence[str]] = (),
    local_load_balancer: KindLoadBalancer | None = None,
    previous_run: PreviousRun | None = None,
) -> FleetCluster:
    """The cluster component for `spec`. `extra_api_cidrs` also reach its API server where the
    cloud manages an allowlist (AKS; the EKS public endpoint is for operators only).
    `local_load_balancer` is the host's cloud-provider-kind, needed by kind clusters.
    `previous_run` guards an EKS cluster's name against a change that would replace it, and
    says where an AKS cluster's nodes run."""
    if spec.cloud == "aws":
        return EksCluster(
            spec.name,
            EksClusterArgs(
                spec=spec,
                api_allowed_cidrs=fleet.api_allowed_cidrs,
                admin_principals=fleet.eks_admin_principals,
                cloud_name=previous_run.cloud_name(spec) if previous_run else None,
                log_group_checked=previous_run.log_group(spec) if previous_run else None,
            ),
        )
    if spec.cloud == "azure":
        return AksCluster(
            spec.name,
            AksClusterArgs(
                spec=spec,
                api_allowed_cidrs=fleet.api_allowed_cidrs,
                extra_api_cidrs=extra_api_cidrs,
                pools=previous_run.aks_pools(spec) if previous_run else None,
                identity_checked=previous_run.aks_identity(spec) if previous_run else None,
            ),
        )
    if spec.cloud == "kind":
        if local_load_balancer is None:
            raise ValueError(f"kind cluster {spec.name!r} needs the host's load balancer")
        return KindCluster(
            spec.name,
            KindClusterArgs(spec=spec, load_balancer=local_load_balancer, stack=pulumi.get_stack()),
        )
    return ExistingCluster(
        spec.name, ExistingClusterArgs(spec=spec, kubeconfig=local_kubeconfigs[spec.name])
    )
