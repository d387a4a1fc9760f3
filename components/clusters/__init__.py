"""Which component builds a cluster: EKS, AKS or an existing cluster, by its `cloud`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi

from components.clusters._base import FleetCluster
from components.clusters.aks import AksCluster, AksClusterArgs
from components.clusters.eks import EksCluster, EksClusterArgs
from components.clusters.existing import ExistingCluster, ExistingClusterArgs, LocalKubeconfig
from components.config import ClusterSpec, FleetConfig
from components.lifecycle.previous_run import PreviousRun


def build_cluster(
    spec: ClusterSpec,
    fleet: FleetConfig,
    local_kubeconfigs: Mapping[str, LocalKubeconfig],
    extra_api_cidrs: pulumi.Input[Sequence[str]] = (),
    previous_run: PreviousRun | None = None,
) -> FleetCluster:
    """The cluster component for `spec`. `extra_api_cidrs` also reach its API server where the
    cloud manages an allowlist (AKS; the EKS public endpoint is for operators only).
    `previous_run` guards an EKS cluster's name against a change that would replace it."""
    if spec.cloud == "aws":
        return EksCluster(
            spec.name,
            EksClusterArgs(
                spec=spec,
                api_allowed_cidrs=fleet.api_allowed_cidrs,
                admin_principals=fleet.eks_admin_principals,
                cloud_name=previous_run.cloud_name(spec) if previous_run else None,
            ),
        )
    if spec.cloud == "azure":
        return AksCluster(
            spec.name,
            AksClusterArgs(
                spec=spec,
                api_allowed_cidrs=fleet.api_allowed_cidrs,
                extra_api_cidrs=extra_api_cidrs,
            ),
        )
    return ExistingCluster(
        spec.name, ExistingClusterArgs(spec=spec, kubeconfig=local_kubeconfigs[spec.name])
    )
