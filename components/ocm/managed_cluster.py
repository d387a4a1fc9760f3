"""One app cluster joined to the OCM hub: its klusterlet, and its ManagedCluster on the hub."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.clusters._base import FleetCluster
from components.ocm import _charts as _ocm
from components.ocm.hub import OcmHub

OCM_MANAGED_CLUSTER_TYPE = "ocm-fleet:index:OcmManagedCluster"

LEASE_DURATION_SECONDS = 20
"""How often the agent renews its lease. The hub marks the cluster's Available condition Unknown
once the lease is 5 x this old (registration/hub/lease/controller.go, leaseController.sync:
gracePeriod = leaseDurationTimes * LeaseDurationSeconds), and the taint controller then taints it
`unreachable` (registration/hub/taint/controller.go, taintController.sync). OCM's default, 60 s,
makes that 5 minutes before failover can even start; 20 s makes it 100 s, at the cost of one
Lease update per cluster every 20 s on the hub. See docs/rollout-and-failover.md, "Losing a
cluster"."""


@dataclass(frozen=True, kw_only=True)
class OcmManagedClusterArgs:
    cluster: FleetCluster
    """The app cluster that joins."""
    hub_cluster: FleetCluster
    """The main cluster, where the ManagedCluster is declared."""
    ocm_hub: OcmHub
    """The hub's OCM objects: ClusterManager, cluster set and bootstrap kubeconfig."""
    ocm_version: str
    """OCM release; the klusterlet chart version and the agent image tag."""
    chart_path: str | None = None
    """A local klusterlet chart (directory or .tgz) instead of the chart repository's."""


class OcmManagedCluster(pulumi.ComponentResource):
    """Creates, in this order (destroy runs it backwards):

    1. on the app cluster, the `klusterlet` chart (operator only, `klusterlet.create=false`)
       with the bootstrap kubeconfig as a secret value;
    2. on the app cluster, the Klusterlet CR (Singleton mode: one agent for registration
       and work);
    3. on the hub, the ManagedCluster with `hubAcceptsClient: true`, labelled into the cluster
       set and waited for until `HubAcceptedManagedCluster`.

    Deleting the ManagedCluster first lets the hub clean up while the agent still runs;
    deleting the Klusterlet CR before the chart lets the operator remove the agent and its
    finalizer. ManifestWorks depend on `managed_cluster`, so they go before all of it.
    """

    managed_cluster: k8s.apiextensions.CustomResource
    """The ManagedCluster on the hub; the cluster namespace of the same name exists once it does."""
    klusterlet: k8s.apiextensions.CustomResource
    """The Klusterlet CR on the app cluster."""
    chart: k8s.helm.v3.Release
    """The klusterlet chart release on the app cluster."""

    def __init__(
        self, name: str, args: OcmManagedClusterArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(OCM_MANAGED_CLUSTER_TYPE, name, None, opts)
        cluster, version = args.cluster, args.ocm_version
        on_app = pulumi.ResourceOptions(parent=self, provider=cluster.provider)

        _, self.chart = _ocm.operator_chart(
            name,
            "klusterlet",
            version,
            klusterlet_values(cluster.name, args.ocm_hub.bootstrap_kubeconfig, version),
            on_app,
            chart_path=args.chart_path,
        )
        self.klusterlet = k8s.apiextensions.CustomResource(
            f"{name}-klusterlet-cr",
            api_version=_ocm.OPERATOR_API,
            kind="Klusterlet",
            metadata={"name": "klusterlet"},
            spec=klusterlet_spec(cluster.name, version),
            opts=pulumi.ResourceOptions.merge(
                on_app,
                pulumi.ResourceOptions(
                    depends_on=[self.chart],
                    custom_timeouts=pulumi.CustomTimeouts(delete=_ocm.DELETE_TIMEOUT),
                ),
            ),
        )
        self.managed_cluster = k8s.apiextensions.CustomResource(
            f"{name}-managed-cluster",
            api_version=f"{_ocm.CLUSTER_API}/v1",
            kind="ManagedCluster",
            metadata={
                "name": cluster.name,
                "labels": managed_cluster_labels(cluster),
                "annotations": {
                    **_ocm.wait_for("condition=HubAcceptedManagedCluster"),
                    # The registered agent updates its ManagedCluster (client configs, claims);
                    # keep ownership of the fields declared here when they overlap.
                    "pulumi.com/patchForce": "true",
                },
            },
            spec={"hubAcceptsClient": True, "leaseDurationSeconds": LEASE_DURATION_SECONDS},
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.hub_cluster.provider,
                depends_on=[
                    args.ocm_hub.cluster_manager,
                    args.ocm_hub.cluster_set,
                    self.klusterlet,
                ],
                custom_timeouts=pulumi.CustomTimeouts(
                    create=_ocm.CREATE_TIMEOUT, delete=_ocm.DELETE_TIMEOUT
                ),
            ),
        )
        self.register_outputs({"clusterName": cluster.name})


def managed_cluster_labels(cluster: FleetCluster) -> dict[str, str]:
    """Labels placements select on: the cluster set, cloud, region, the cluster's own name
    (decision groups and the app's candidate list) and whether it is a standby."""
    return {
        _ocm.CLUSTER_SET_LABEL: _ocm.CLUSTER_SET,
        f"{_ocm.LABEL_PREFIX}/cloud": cluster.cloud,
        f"{_ocm.LABEL_PREFIX}/region": cluster.region,
        _ocm.CLUSTER_NAME_LABEL: cluster.name,
        f"{_ocm.LABEL_PREFIX}/standby": "true" if cluster.spec.standby else "false",
    }


def klusterlet_values(
    cluster_name: str, bootstrap_kubeconfig: pulumi.Input[str], version: str
) -> dict:
    """Values of the klusterlet chart. The chart turns `bootstrapHubKubeConfig` into the agent
    namespace's `bootstrap-hub-kubeconfig` Secret; the value stays a Pulumi secret."""
    return {
        "bootstrapHubKubeConfig": bootstrap_kubeconfig,
        "klusterlet": {"create": False, "clusterName": cluster_name, "mode": "Singleton"},
        **_ocm.operator_image_values(version),
    }


def klusterlet_spec(cluster_name: str, version: str) -> dict:
    return {
        "clusterName": cluster_name,
        "deployOption": {"mode": "Singleton"},
        "namespace": _ocm.AGENT_NAMESPACE,
        "imagePullSpec": _ocm.image("registration-operator", version),
        "registrationImagePullSpec": _ocm.image("registration", version),
        "workImagePullSpec": _ocm.image("work", version),
    }
