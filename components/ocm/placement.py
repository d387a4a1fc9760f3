"""Where the fleet's workload objects live on the hub: the cluster set's binding and a Placement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.ocm import _charts as _ocm
from components.ocm.hub import OcmHub
from components.security import network_policies as netpol
from components.security import pod_security

FLEET_PLACEMENT_TYPE = "ocm-fleet:index:FleetPlacement"


@dataclass(frozen=True, kw_only=True)
class FleetPlacementArgs:
    hub_provider: k8s.Provider
    """Provider of the main cluster."""
    ocm_hub: OcmHub
    """The hub; its ClusterManager and cluster set come first."""
    managed_clusters: Sequence[pulumi.Resource]
    """Every app cluster's ManagedCluster: the binding and Placement are deleted before them."""


class FleetPlacement(pulumi.ComponentResource):
    """Creates, on the hub: the fleet namespace, the ManagedClusterSetBinding that makes the
    cluster set usable there, and a Placement selecting every cluster of the set (for
    ManifestWorkReplicaSets and add-ons).

    Both depend on every ManagedCluster, so destroy removes them first, as it does the
    ManifestWorks, while the clusters are still registered.
    """

    namespace: pulumi.Output[str]
    """The fleet namespace on the hub, where fleet-wide workload objects live."""
    placement: k8s.apiextensions.CustomResource
    """Placement `all-app-clusters`: every cluster of the cluster set."""

    def __init__(
        self, name: str, args: FleetPlacementArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(FLEET_PLACEMENT_TYPE, name, None, opts)
        on_hub = pulumi.ResourceOptions(parent=self, provider=args.hub_provider)
        after = [args.ocm_hub.cluster_manager, args.ocm_hub.cluster_set, *args.managed_clusters]

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=pod_security.namespace_metadata(
                _ocm.HUB_WORKLOAD_NAMESPACE, pod_security.NO_PODS
            ),
            opts=on_hub,
        )
        self.namespace = namespace.metadata.name
        # No pods run here; the policy keeps it that way for any that are added later.
        netpol.declare(name, [netpol.default_deny(self.namespace)], on_hub)
        binding = k8s.apiextensions.CustomResource(
            f"{name}-cluster-set-binding",
            api_version=f"{_ocm.CLUSTER_API}/v1beta2",
            kind="ManagedClusterSetBinding",
            metadata={"name": _ocm.CLUSTER_SET, "namespace": self.namespace},
            spec={"clusterSet": _ocm.CLUSTER_SET},
            opts=pulumi.ResourceOptions.merge(on_hub, pulumi.ResourceOptions(depends_on=after)),
        )
        self.placement = k8s.apiextensions.CustomResource(
            f"{name}-placement",
            api_version=f"{_ocm.CLUSTER_API}/v1beta1",
            kind="Placement",
            metadata={"name": "all-app-clusters", "namespace": self.namespace},
            spec={"clusterSets": [_ocm.CLUSTER_SET]},
            opts=pulumi.ResourceOptions.merge(
                on_hub, pulumi.ResourceOptions(depends_on=[*after, binding])
            ),
        )
        self.register_outputs({"placement": "all-app-clusters"})
