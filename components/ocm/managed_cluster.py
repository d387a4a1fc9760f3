"""One app cluster joined to the OCM hub: its klusterlet, and its ManagedCluster on the hub."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


HUB_CONNECTION_TIMEOUT_SECONDS = 180
"""How old the agent's lease on its hub may get before the agent restarts and picks a hub again
(MultipleHubs). 180 is the Klusterlet CRD's minimum (`hubConnectionTimeoutSeconds`, minimum
180, default 600); the agent checks it once a minute
(pkg/registration/spoke/registration/hub_timeout_controller.go (NewHubTimeoutController:
ResyncEvery(time.Minute); sync, isTimeout)). Lower is refused, and the default would add seven
minutes to every move. docs/standby-hub.md."""

EVICTION_GRACE_PERIOD_SECONDS = 60 * 60
"""The work agent's `appliedManifestWorkEvictionGracePeriod`, left at its default of 60 minutes
(pkg/work/spoke/options.go (NewWorkloadAgentOptions)): how long what the old hub delivered
stays once the agent is on the other hub. The Klusterlet spec does not set it; the move and the
delivery on the standby hub fit in it many times over (docs/standby-hub.md)."""

BOOTSTRAP_SECRETS = ("bootstrap-hub-kubeconfig", "bootstrap-hub-kubeconfig-standby")
"""The agent namespace's bootstrap kubeconfig Secrets, in the order the agent tries them: the
main hub's keeps the name the single-hub chart gives it."""


@dataclass(frozen=True, kw_only=True)
class StandbyHub:
    """The second OCM hub a klusterlet may move to (`hub.standby.ocmHub`)."""

    hub_cluster: FleetCluster
    """The second home, where the standby ManagedCluster is declared."""
    ocm_hub: OcmHub
    """Its OCM objects: ClusterManager, cluster set and bootstrap kubeconfig."""


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
    standby_hub: StandbyHub | None = None
    """The standby OCM hub: the klusterlet gets both bootstrap kubeconfigs with MultipleHubs
    on, and the cluster a ManagedCluster on that hub too. None: one hub, as before."""


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

    With a standby hub (`standby_hub`), the chart carries both bootstrap kubeconfigs, the
    Klusterlet turns MultipleHubs on, and a second ManagedCluster is declared on the standby
    hub. Both ManagedClusters then come *before* the Klusterlet CR: the bootstrap identity may
    create ManagedClusters there (hub.bootstrap_rules), and an agent started first would create
    its own, which Pulumi's create would then meet as AlreadyExists. Destroy runs it backwards:
    the agent goes before the ManagedClusters, so it cannot re-register on either hub while they
    are deleted; the app's ManifestWorks are gone before either (they depend on both).
    """

    managed_cluster: k8s.apiextensions.CustomResource
    """The ManagedCluster on the hub; the cluster namespace of the same name exists once it does."""
    klusterlet: k8s.apiextensions.CustomResource
    """The Klusterlet CR on the app cluster."""
    chart: k8s.helm.v3.Release
    """The klusterlet chart release on the app cluster."""
    standby_managed_cluster: k8s.apiextensions.CustomResource | None
    """The ManagedCluster on the standby hub, or None without one."""

    def __init__(
        self, name: str, args: OcmManagedClusterArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(OCM_MANAGED_CLUSTER_TYPE, name, None, opts)
        cluster, version = args.cluster, args.ocm_version
        on_app = pulumi.ResourceOptions(parent=self, provider=cluster.provider)

        standby = args.standby_hub
        _, self.chart = _ocm.operator_chart(
            name,
            "klusterlet",
            version,
            klusterlet_values(
                cluster.name,
                args.ocm_hub.bootstrap_kubeconfig,
                version,
                standby_bootstrap_kubeconfig=standby.ocm_hub.bootstrap_kubeconfig
                if standby
                else None,
            ),
            on_app,
            chart_path=args.chart_path,
        )
        self.standby_managed_cluster = None
        if standby is None:
            self.klusterlet = self._klusterlet(name, cluster, version, on_app, after=[])
            self.managed_cluster = self._managed_cluster(
                f"{name}-managed-cluster",
                cluster,
                args.hub_cluster,
                args.ocm_hub,
                [self.klusterlet],
            )
        else:
            self.managed_cluster = self._managed_cluster(
                f"{name}-managed-cluster", cluster, args.hub_cluster, args.ocm_hub, []
            )
            self.standby_managed_cluster = self._managed_cluster(
                f"{name}-standby-managed-cluster", cluster, standby.hub_cluster, standby.ocm_hub, []
            )
            self.klusterlet = self._klusterlet(
                name,
                cluster,
                version,
                on_app,
                after=[self.managed_cluster, self.standby_managed_cluster],
                multiple_hubs=True,
            )
        self.register_outputs({"clusterName": cluster.name})

    def _klusterlet(
        self,
        name: str,
        cluster: FleetCluster,
        version: str,
        on_app: pulumi.ResourceOptions,
        *,
        after: list[pulumi.Resource],
        multiple_hubs: bool = False,
    ) -> k8s.apiextensions.CustomResource:
        return k8s.apiextensions.CustomResource(
            f"{name}-klusterlet-cr",
            api_version=_ocm.OPERATOR_API,
            kind="Klusterlet",
            metadata={"name": "klusterlet"},
            spec=klusterlet_spec(cluster.name, version, multiple_hubs=multiple_hubs),
            opts=pulumi.ResourceOptions.merge(
                on_app,
                pulumi.ResourceOptions(
                    depends_on=[self.chart, *after],
                    custom_timeouts=pulumi.CustomTimeouts(delete=_ocm.DELETE_TIMEOUT),
                ),
            ),
        )

    def _managed_cluster(
        self,
        resource_name: str,
        cluster: FleetCluster,
        hub_cluster: FleetCluster,
        ocm_hub: OcmHub,
        after: list[pulumi.Resource],
    ) -> k8s.apiextensions.CustomResource:
        return k8s.apiextensions.CustomResource(
            resource_name,
            api_version=f"{_ocm.CLUSTER_API}/v1",
            kind="ManagedCluster",
            metadata={
                "name": cluster.name,
                "labels": managed_cluster_labels(cluster),
                "annotations": {
                    # The hub accepts a declared cluster by itself: with hubAcceptsClient true
                    # its ManagedClusterController sets HubAcceptedManagedCluster, no agent
                    # involved (pkg/registration/hub/managedcluster/controller.go (sync), OCM
                    # v1.3.1), so this holds on the standby hub too.
                    **_ocm.wait_for("condition=HubAcceptedManagedCluster"),
                    # The registered agent updates its ManagedCluster (client configs, claims);
                    # keep ownership of the fields declared here when they overlap.
                    "pulumi.com/patchForce": "true",
                },
            },
            spec={"hubAcceptsClient": True, "leaseDurationSeconds": LEASE_DURATION_SECONDS},
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=hub_cluster.provider,
                depends_on=[ocm_hub.cluster_manager, ocm_hub.cluster_set, *after],
                custom_timeouts=pulumi.CustomTimeouts(
                    create=_ocm.CREATE_TIMEOUT, delete=_ocm.DELETE_TIMEOUT
                ),
            ),
        )


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
    cluster_name: str,
    bootstrap_kubeconfig: pulumi.Input[str],
    version: str,
    standby_bootstrap_kubeconfig: pulumi.Input[str] | None = None,
) -> dict:
    """Values of the klusterlet chart. The chart turns `bootstrapHubKubeConfig` into the agent
    namespace's `bootstrap-hub-kubeconfig` Secret; the value stays a Pulumi secret.

    With a standby hub, `multiHubBootstrapHubKubeConfigs` instead: one Secret per entry, named
    as given (the chart's templates/bootstrap_kubeconfig_secret.yaml renders only this list when
    it is set). The main hub's entry is the very kubeconfig of one hub, so its server URL is
    unchanged: the work agent names every AppliedManifestWork `<sha256 of the hub host>-<work>`
    (pkg/work/spoke/spokeagent.go (RunWorkloadAgent), pkg/work/helper/helpers.go (HubHash)), and
    a changed URL would make every work applied so far unmanaged, then evicted
    (unmanaged_appliedmanifestwork_controller.go (sync): "manifestwork exists but hub changed").
    """
    values: dict[str, Any] = {
        "bootstrapHubKubeConfig": bootstrap_kubeconfig,
        "klusterlet": {"create": False, "clusterName": cluster_name, "mode": "Singleton"},
        **_ocm.operator_image_values(version),
    }
    if standby_bootstrap_kubeconfig is not None:
        del values["bootstrapHubKubeConfig"]
        values["multiHubBootstrapHubKubeConfigs"] = [
            {"name": secret, "kubeConfig": kubeconfig}
            for secret, kubeconfig in zip(
                BOOTSTRAP_SECRETS, (bootstrap_kubeconfig, standby_bootstrap_kubeconfig), strict=True
            )
        ]
    return values


def klusterlet_spec(cluster_name: str, version: str, *, multiple_hubs: bool = False) -> dict:
    """The Klusterlet CR's spec; with `multiple_hubs`, the agent holds both bootstrap
    kubeconfigs, main hub first.

    How the agent moves (pkg/registration/spoke/): at start it keeps the hub its hub kubeconfig
    points at if that hub's bootstrap kubeconfig is still valid, else takes the first valid one
    in this order (bootstrapkubeconfigs.go (selectBootstrapKubeConfigs)); valid means the
    bootstrap SSARs pass and the hub has the ManagedCluster with hubAcceptsClient true, or none
    (checkBootstrapKubeConfigValid). Once registered it restarts, to select again, when its lease
    on the hub is older than hubConnectionTimeoutSeconds (registration/hub_timeout_controller.go
    (sync), checked each minute) or the hub sets hubAcceptsClient false
    (registration/hub_accept_controller.go (sync)); both call the agent's stop function
    (spokeagent.go (RunSpokeAgentWithSpokeInformers)). So an agent on the standby hub stays
    there while that hub is valid, even once the main hub is back: the return is a step of its
    own (docs/standby-hub.md).

    The agent's ID, which filters the AppliedManifestWorks it manages, is the Klusterlet's UID
    (pkg/operator/.../klusterletcontroller/klusterlet_controller.go (sync: AgentID)), which a
    move keeps; the hub hash in their names changes with the hub.
    """
    spec: dict[str, Any] = {
        "clusterName": cluster_name,
        "deployOption": {"mode": "Singleton"},
        "namespace": _ocm.AGENT_NAMESPACE,
        "imagePullSpec": _ocm.image("registration-operator", version),
        "registrationImagePullSpec": _ocm.image("registration", version),
        "workImagePullSpec": _ocm.image("work", version),
    }
    if multiple_hubs:
        # The operator reads the gate from this list and the Secrets only with type
        # LocalSecrets (klusterlet_controller.go (populateBootstrap)). The list is not a
        # replacement: only gates differing from their default become flags
        # (pkg/operator/helpers/helpers.go (ConvertToFeatureGateFlags)).
        spec["registrationConfiguration"] = {
            "featureGates": _ocm.feature_gates("MultipleHubs"),
            "bootstrapKubeConfigs": {
                "type": "LocalSecrets",
                "localSecretsConfig": {
                    "kubeConfigSecrets": [{"name": secret} for secret in BOOTSTRAP_SECRETS],
                    "hubConnectionTimeoutSeconds": HUB_CONNECTION_TIMEOUT_SECONDS,
                },
            },
        }
    return spec
