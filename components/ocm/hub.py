"""The OCM hub on the main cluster: cluster-manager, the bootstrap identity and the cluster set."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components._kubeconfig import token_kubeconfig
from components.clusters._base import FleetCluster
from components.ocm import _charts as _ocm

OCM_HUB_TYPE = "ocm-fleet:index:OcmHub"


@dataclass(frozen=True, kw_only=True)
class OcmHubArgs:
    hub_cluster: FleetCluster
    """The main cluster; everything here is created through its provider."""
    ocm_version: str
    """OCM release; the cluster-manager chart version and the image tag of every hub component."""
    chart_path: str | None = None
    """A local cluster-manager chart (directory or .tgz) instead of the chart repository's."""
    multiple_hubs: bool = False
    """The fleet has a standby OCM hub and its klusterlets run with MultipleHubs: the bootstrap
    identity may then also `create` ManagedClusters (see `bootstrap_rules`)."""


class OcmHub(pulumi.ComponentResource):
    """Creates, on the hub cluster:

    - the `cluster-manager` Helm chart (operator only, `clusterManager.create=false`);
    - the ClusterManager CR, waited for until `Applied` (only then do the OCM CRDs exist);
    - the bootstrap identity: a ServiceAccount bound to a bootstrap ClusterRole, and its
      long-lived token Secret, from which the bootstrap kubeconfig is assembled;
    - the ManagedClusterSet of all app clusters (bound and placed by FleetPlacement).
    """

    cluster_manager: k8s.apiextensions.CustomResource
    """The ClusterManager CR; anything needing an OCM CRD depends on it."""
    bootstrap_kubeconfig: pulumi.Output[str]
    """Kubeconfig (secret) the klusterlets use to register: hub URL, hub CA, bootstrap token."""
    cluster_set: k8s.apiextensions.CustomResource
    """ManagedClusterSet holding every app cluster."""

    def __init__(self, name: str, args: OcmHubArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(OCM_HUB_TYPE, name, None, opts)
        version = args.ocm_version
        on_hub = pulumi.ResourceOptions(parent=self, provider=args.hub_cluster.provider)

        # The program declares the ClusterManager CR itself, so that it is deleted (and its
        # finalizer handled by the still-running operator) before the chart is uninstalled.
        namespace, chart = _ocm.operator_chart(
            name,
            "cluster-manager",
            version,
            {"clusterManager": {"create": False}, **_ocm.operator_image_values(version)},
            on_hub,
            chart_path=args.chart_path,
        )
        self.cluster_manager = k8s.apiextensions.CustomResource(
            f"{name}-cluster-manager-cr",
            api_version=_ocm.OPERATOR_API,
            kind="ClusterManager",
            metadata={"name": "cluster-manager", "annotations": _ocm.wait_for("condition=Applied")},
            spec=cluster_manager_spec(version),
            opts=pulumi.ResourceOptions.merge(
                on_hub,
                pulumi.ResourceOptions(
                    depends_on=[chart],
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=_ocm.CREATE_TIMEOUT, delete=_ocm.DELETE_TIMEOUT
                    ),
                ),
            ),
        )

        token = self._bootstrap_identity(name, namespace, on_hub, args.multiple_hubs)
        self.bootstrap_kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                server=args.hub_cluster.api_server_url, ca=args.hub_cluster.ca_data, token=token
            ).apply(
                lambda a: token_kubeconfig(
                    name="hub", server=a["server"], ca_data=a["ca"], token=a["token"]
                )
            )
        )

        self.cluster_set = k8s.apiextensions.CustomResource(
            f"{name}-cluster-set",
            api_version=f"{_ocm.CLUSTER_API}/v1beta2",
            kind="ManagedClusterSet",
            metadata={"name": _ocm.CLUSTER_SET},
            spec={"clusterSelector": {"selectorType": "ExclusiveClusterSetLabel"}},
            opts=pulumi.ResourceOptions.merge(
                on_hub, pulumi.ResourceOptions(depends_on=[self.cluster_manager])
            ),
        )
        self.register_outputs(
            {"bootstrapKubeconfig": self.bootstrap_kubeconfig, "clusterSet": _ocm.CLUSTER_SET}
        )

    def _bootstrap_identity(
        self,
        name: str,
        namespace: k8s.core.v1.Namespace,
        on_hub: pulumi.ResourceOptions,
        multiple_hubs: bool,
    ) -> pulumi.Output[str]:
        """The identity klusterlets register with; returns its token (secret).

        A token Secret of type service-account-token lives as long as the Secret: unlike the
        chart's `createBootstrapToken`, it does not change on every run.
        """
        account = k8s.core.v1.ServiceAccount(
            f"{name}-bootstrap-sa",
            metadata={"name": _ocm.BOOTSTRAP_SERVICE_ACCOUNT, "namespace": namespace.metadata.name},
            automount_service_account_token=False,
            opts=on_hub,
        )
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-bootstrap-role",
            metadata={"name": "ocm-fleet:bootstrap"},
            rules=bootstrap_rules(multiple_hubs),
            opts=on_hub,
        )
        binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-bootstrap-binding",
            metadata={"name": "ocm-fleet:bootstrap"},
            role_ref={
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role.metadata.name,
            },
            subjects=[
                {
                    "kind": "ServiceAccount",
                    "name": account.metadata.name,
                    "namespace": namespace.metadata.name,
                }
            ],
            opts=on_hub,
        )
        secret = k8s.core.v1.Secret(
            f"{name}-bootstrap-token",
            metadata={
                "name": f"{_ocm.BOOTSTRAP_SERVICE_ACCOUNT}-token",
                "namespace": namespace.metadata.name,
                "annotations": {
                    "kubernetes.io/service-account.name": _ocm.BOOTSTRAP_SERVICE_ACCOUNT,
                    # The token controller fills `data.token` after creation.
                    **_ocm.wait_for("jsonpath={.data.token}"),
                },
            },
            type="kubernetes.io/service-account-token",
            opts=pulumi.ResourceOptions.merge(
                on_hub,
                pulumi.ResourceOptions(
                    depends_on=[account], additional_secret_outputs=["data", "stringData"]
                ),
            ),
        )
        # The token is only useful once the binding exists: tie them, so that whatever uses the
        # bootstrap kubeconfig depends on the binding too (and outlives it on destroy).
        return pulumi.Output.secret(
            pulumi.Output.all(secret.data, binding.metadata.name).apply(
                lambda a: base64.b64decode((a[0] or {}).get("token", "")).decode()
            )
        )


def bootstrap_rules(multiple_hubs: bool = False) -> list[dict]:
    """What a registration agent does with the bootstrap identity: file its CSR, read its
    ManagedCluster and join the cluster set it is labelled with.

    Not `create` on managedclusters, with one hub: the program declares each ManagedCluster
    itself, and an agent that could create one would race it (and re-register a cluster being
    destroyed). The agent skips the create when it is forbidden and waits for the object.

    With MultipleHubs the agent picks a hub only if its bootstrap identity passes the
    SelfSubjectAccessReviews of GetBootstrapSSARs, which include `create` on managedclusters
    (pkg/common/helpers/ssar.go (GetBootstrapSSARs), checked by
    pkg/registration/spoke/bootstrapkubeconfigs.go (checkBootstrapKubeConfigValid)): without
    it neither hub is valid and the agent exits ("failed to select a bootstrap kubeconfig",
    pkg/registration/spoke/spokeagent.go (RunSpokeAgentWithSpokeInformers)). The race is then
    closed by order instead: each ManagedCluster is declared before the Klusterlet CR
    (managed_cluster.py), so the agent finds it and never creates it.
    """
    return [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
        {
            "apiGroups": ["certificates.k8s.io"],
            "resources": ["certificatesigningrequests"],
            "verbs": ["create", "get", "list", "watch"],
        },
        {
            "apiGroups": [_ocm.CLUSTER_API],
            "resources": ["managedclusters"],
            "verbs": ["create", "get", "list", "watch"]
            if multiple_hubs
            else ["get", "list", "watch"],
        },
        {
            "apiGroups": [_ocm.CLUSTER_API],
            "resources": ["managedclustersets/join"],
            "verbs": ["create"],
        },
    ]


def cluster_manager_spec(version: str) -> dict:
    """The ClusterManager spec: CSR registration with auto-approval of the bootstrap identity."""
    return {
        "registrationImagePullSpec": _ocm.image("registration", version),
        "workImagePullSpec": _ocm.image("work", version),
        "placementImagePullSpec": _ocm.image("placement", version),
        "addOnManagerImagePullSpec": _ocm.image("addon-manager", version),
        "deployOption": {"mode": "Default"},
        "registrationConfiguration": {
            # The operator replaces the list: DefaultClusterSet is the chart's default, kept.
            # ManagedClusterAutoApproval lets the hub approve the first CSR and accept the
            # cluster without a person running `clusteradm accept`.
            "featureGates": _ocm.feature_gates(
                "ManagedClusterAutoApproval", keep=["DefaultClusterSet"]
            ),
            "registrationDrivers": [
                {
                    "authType": "csr",
                    "csr": {"autoApprovedIdentities": [_ocm.BOOTSTRAP_IDENTITY]},
                }
            ],
        },
        "workConfiguration": {
            "workDriver": "kube",
            "featureGates": _ocm.feature_gates("ManifestWorkReplicaSet"),
        },
        "placementConfiguration": {
            "featureGates": _ocm.feature_gates(keep=["PlacementDebugServer"]),
        },
    }
