"""An AKS cluster of the fleet: its own network, static egress IP and admin Kubernetes provider."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure_native
from pulumi_azure_native import (
    authorization,
    containerservice,
    managedidentity,
    network,
    resources,
)

from components import _yaml
from components.clusters._azure_zones import zones_for
from components.clusters._base import FleetCluster
from components.config import ClusterSpec, MaintenanceWindow
from components.lifecycle.previous_run import USER_ASSIGNED, AksPools

AKS_CLUSTER_TYPE = "ocm-fleet:index:AksCluster"

# Address plan, the same in every cluster: clusters never share a network (they meet over public
# addresses), so only the ranges inside one cluster must not overlap. The VNet and node subnet
# follow AKS's own default VNet range. With Azure CNI Overlay the subnet holds nodes only (one
# address each), pods get addresses from POD_CIDR, which never appears in the VNet, and
# Services from SERVICE_CIDR.
VNET_CIDR = "10.224.0.0/16"
NODE_SUBNET_CIDR = "10.224.0.0/20"
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.0.0.0/16"
DNS_SERVICE_IP = "10.0.0.10"

# Kubernetes' own scalability guidance is 110 pods per node; Overlay would allow 250, which only
# packs more blast radius onto one node of a small pool.
MAX_PODS = 110
OS_DISK_SIZE_GB = 128

# Built-in role "Network Contributor" (the same id in every Azure tenant).
NETWORK_CONTRIBUTOR_ROLE = "4d97b98b-1d4f-4787-a291-c67834d212e7"

OPEN_TO_ALL = "0.0.0.0/0"
# AKS gives "0.0.0.0/32" a special meaning ("only the cluster's own outbound IP") and rejects it
# next to any other range (Azure/terraform-azurerm-aks#378).
OWN_OUTBOUND_ONLY = "0.0.0.0/32"

# AKS caps the node resource group name at 80 characters.
MAX_NODE_RESOURCE_GROUP_LENGTH = 80

# Planned-maintenance configurations AKS reads by name: the node OS channel (weekly node images)
# and the auto-upgrade channel (patch versions), both of which roll the nodes (AKS docs, "Use
# Planned Maintenance to schedule and control upgrades for your AKS cluster").
MAINTENANCE_SCHEDULES = ("aksManagedNodeOSUpgradeSchedule", "aksManagedAutoUpgradeSchedule")

_ROLE_ASSIGNMENT_NAMESPACE = uuid.UUID("5b0c7f3e-1d2a-5e7b-9c4d-6f8a0b1c2d3e")


@dataclass(frozen=True, kw_only=True)
class AksClusterArgs:
    """What an AksCluster is built from."""

    spec: ClusterSpec
    """The validated cluster config (`cloud: azure`): name, region, node count and size, version."""
    api_allowed_cidrs: tuple[str, ...]
    """CIDRs of the operators and CI that may reach the API server. Listing `0.0.0.0/0` opens the
    API server to every address (no authorized IP ranges at all)."""
    extra_api_cidrs: pulumi.Input[Sequence[str]] = ()
    """Addresses that must also reach the API server, e.g. the app clusters' egress IPs when this
    cluster is the OCM hub. May be unknown until the clusters exist."""
    pools: pulumi.Input[AksPools] | None = None
    """Which pools the nodes run in, from the stack's last run (see `lifecycle.previous_run`);
    default: a new cluster, its nodes in its first pool."""
    workload_identity: bool = False
    """Enable the OIDC issuer and Microsoft Entra Workload ID. The OIDC issuer cannot be turned
    off again once on."""
    identity_checked: pulumi.Input[str] | None = None
    """The control-plane identity (`spec.control_plane_identity`, default `userAssigned`) once
    checked against the stack's history (see `lifecycle.previous_run.checked_aks_identity`);
    the identity, its grant and the cluster wait for it."""


def authorized_ip_ranges(
    configured: Sequence[str], extra: Sequence[str], own_egress: Sequence[str]
) -> list[str]:
    """The API server's authorized IP ranges, sorted and without duplicates.

    An empty list means "no restriction": that is how AKS represents an open API server (the
    documented way to turn authorized IP ranges off is to set them to an empty value), so a
    `0.0.0.0/0` anywhere yields `[]` instead of a catch-all entry next to narrower ones.

    The cluster's own outbound address is always included: nodes reach the API server through
    its public endpoint from that address. AKS documents allowing it by itself when ranges are
    set at cluster creation, but an update replaces the whole list, and clusters whose list
    lacked it lost their nodes (MicrosoftDocs/azure-docs#72339). `0.0.0.0/32` ("own outbound
    IP only") is thereby covered and dropped, since AKS refuses it next to other ranges.
    """
    ranges = {*configured, *extra}
    if OPEN_TO_ALL in ranges:
        return []
    ranges.discard(OWN_OUTBOUND_ONLY)
    return sorted(ranges | set(own_egress))


def node_resource_group_name(project: str, stack: str, name: str, region: str) -> str:
    """The resource group AKS creates for nodes; it must not exist yet, so the stack is in it."""
    full = f"MC_{project}-{stack}_{name}_{region}"
    # Azure refuses resource group names that end with a period.
    return full[:MAX_NODE_RESOURCE_GROUP_LENGTH].rstrip(".")


def role_assignment_name(subscription_id: str, project: str, stack: str, name: str) -> str:
    """A stable GUID for the cluster's Network Contributor assignment.

    Role assignment names are GUIDs unique in the whole Entra tenant, not just in their scope, so
    the seed carries the subscription, project and stack besides the cluster name. Deterministic,
    so that no run produces a new name (and with it a replacement).
    """
    seed = f"{subscription_id}/{project}/{stack}/{name}/network-contributor"
    return str(uuid.uuid5(_ROLE_ASSIGNMENT_NAMESPACE, seed))


def pool_name(vm_size: str) -> str:
    """The AKS name of the separate pool for `vm_size`: `^[a-z][a-z0-9]{0,11}$`, readable, and
    different for every size (so a replacement pool, created before the old one is deleted,
    never takes the old one's name), and never the first pool's name. Azure reads sizes
    without regard to case, and so does this."""
    size = vm_size.strip().casefold()
    slug = re.sub(r"[^a-z0-9]", "", size.removeprefix("standard_"))[:7]
    return f"n{slug}{hashlib.sha256(size.encode()).hexdigest()[:4]}"


def unenforced_policies(
    cluster: str,
    network_policy: str | None,
    resource_group: str = "<group>",
    azure_name: str = "<cluster>",
) -> str | None:
    """A warning when an AKS cluster does not enforce NetworkPolicies, else None.

    Clusters created before the program chose Cilium keep their data plane: azure-native would
    replace a cluster to change it (see `_network_profile`), so the switch is made in place with
    the Azure CLI instead.
    """
    if network_policy == "cilium":
        return None
    return (
        f"AKS cluster {cluster!r} runs network policy {network_policy or 'none'!r}, so the "
        "fleet's NetworkPolicies are not enforced there. Switch it in place (all its nodes are "
        f"reimaged): az aks update --resource-group {resource_group} --name {azure_name} "
        "--network-dataplane cilium; then pulumi refresh "
        "(docs/security.md, what enforces the policies)"
    )


def _decode_kubeconfig(creds: containerservice.ListManagedClusterAdminCredentialsResult) -> str:
    if not creds.kubeconfigs:
        raise ValueError("AKS returned no admin kubeconfig")
    return base64.b64decode(creds.kubeconfigs[0].value).decode()


def _ca_data(kubeconfig: str) -> str:
    clusters = (_yaml.safe_load(kubeconfig) or {}).get("clusters") or []
    if not clusters:
        raise ValueError("the AKS admin kubeconfig lists no cluster")
    return clusters[0]["cluster"]["certificate-authority-data"]


class AksCluster(FleetCluster):
    """An AKS cluster with its network, a static egress IP and an admin Kubernetes provider.

    Creates, all children of this component and in the cluster's region:
    - an `azure-native` Provider pinned to the region, used by every Azure resource and invoke;
    - a resource group, a virtual network and a node subnet (Azure CNI Overlay: pods get
      addresses outside the VNet);
    - a Standard, static public IP (zone-redundant where the region has zones): the cluster's
      only outbound address, exported as `egress_cidrs`;
    - the control plane's identity: for new clusters a user-assigned identity with Network
      Contributor on the resource group (the node subnet and the egress IP), granted before the
      ManagedCluster exists; clusters created system-assigned keep that identity, and get the
      same grant once the cluster exists;
    - the ManagedCluster: that identity, Kubernetes RBAC, authorized IP ranges on the API
      server, a System-mode VM scale set pool spread over the zones, patch auto-upgrades;
    - once nodeSize differs from the size the cluster was created with, a separate System pool
      of that size, which the nodes move to (see `AksPools`);
    - planned-maintenance windows for node-image and patch upgrades (`maintenanceWindow`);
    - the Kubernetes provider, from the admin kubeconfig (a secret).
    """

    def __init__(
        self,
        name: str,
        args: AksClusterArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(AKS_CLUSTER_TYPE, name, None, opts)
        self.spec = args.spec
        self._name = name
        self._zones = zones_for(args.spec.region)
        self._tags = {"ocm-fleet-cluster": name, "managed-by": "pulumi"}
        # An explicit provider per cluster: the region is pinned here, and nothing depends on
        # the ambient `azure-native:location` config of whoever runs the program.
        self._azure_provider = azure_native.Provider(
            f"{name}-azure",
            location=args.spec.region,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._child = pulumi.ResourceOptions(parent=self, provider=self._azure_provider)

        resource_group, node_subnet, egress_ip = self._network()
        egress_cidrs = egress_ip.ip_address.apply(lambda ip: [f"{ip}/32"])
        mode = args.spec.control_plane_identity or USER_ASSIGNED
        checked = pulumi.Output.from_input(
            args.identity_checked if args.identity_checked is not None else mode
        )
        self.control_plane_identity: pulumi.Output[str] = checked
        """`userAssigned` or `systemAssigned`: what the control plane runs as."""
        own_identity, grant = None, None
        if mode == USER_ASSIGNED:
            # A user-assigned identity exists before the cluster, so its rights can too: the
            # cluster's first LoadBalancer Services then never meet a grant still propagating
            # (LinkedAuthorizationFailed on publicIPAddresses/join/action, Azure/AKS#1945).
            own_identity = self._user_identity(resource_group, checked)
            grant = self._network_contributor(resource_group, own_identity.principal_id)
        cluster = self._control_plane_and_nodes(
            args, resource_group, node_subnet, egress_ip, egress_cidrs, own_identity, grant, checked
        )
        if grant is None:
            grant = self._network_contributor(
                resource_group, cluster.identity.apply(lambda i: i.principal_id if i else None)
            )
        role_assignment = grant
        windows = self._maintenance(resource_group, cluster)
        kubeconfig, ca_data = self._admin_credentials(resource_group, cluster)

        self.resource_group_name: pulumi.Output[str] = resource_group.name
        """The resource group holding the cluster, its network and egress IP."""
        self.cluster_name: pulumi.Output[str] = cluster.name
        """The ManagedCluster's Azure name."""

        self._finish(
            kubeconfig=kubeconfig,
            api_server_url=cluster.fqdn.apply(lambda fqdn: f"https://{fqdn}:443"),
            ca_data=ca_data,
            egress_cidrs=egress_cidrs,
            provider_depends_on=[cluster, role_assignment, *windows],
        )

    def _network(
        self,
    ) -> tuple[resources.ResourceGroup, network.Subnet, network.PublicIPAddress]:
        """Resource group, VNet, node subnet and the static egress IP."""
        name, region, zones, tags, child = (
            self._name,
            self.spec.region,
            self._zones,
            self._tags,
            self._child,
        )
        resource_group = resources.ResourceGroup(
            f"{name}-rg", location=region, tags=tags, opts=child
        )

        # No `subnets` on the VNet: the node subnet is its own resource, and the provider then
        # leaves subnets alone when it updates the VNet (pulumi/pulumi-azure-native#611).
        vnet = network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=resource_group.name,
            location=region,
            address_space=network.AddressSpaceArgs(address_prefixes=[VNET_CIDR]),
            tags=tags,
            opts=child,
        )
        node_subnet = network.Subnet(
            f"{name}-nodes",
            resource_group_name=resource_group.name,
            virtual_network_name=vnet.name,
            address_prefix=NODE_SUBNET_CIDR,
            opts=child,
        )

        # The egress IP is a resource of the graph, so allowlists elsewhere (hub API, database,
        # edges) are computed from it and it survives a rebuild of the cluster.
        egress_ip = network.PublicIPAddress(
            f"{name}-egress-ip",
            resource_group_name=resource_group.name,
            location=region,
            sku=network.PublicIPAddressSkuArgs(
                name=network.PublicIPAddressSkuName.STANDARD,
                tier=network.PublicIPAddressSkuTier.REGIONAL,
            ),
            public_ip_allocation_method=network.IPAllocationMethod.STATIC,
            public_ip_address_version=network.IPVersion.I_PV4,
            zones=zones,
            tags=tags,
            opts=child,
        )
        return resource_group, node_subnet, egress_ip

    def _control_plane_and_nodes(
        self,
        args: AksClusterArgs,
        resource_group: resources.ResourceGroup,
        node_subnet: network.Subnet,
        egress_ip: network.PublicIPAddress,
        egress_cidrs: pulumi.Output[list[str]],
        own_identity: managedidentity.UserAssignedIdentity | None,
        grant_before: authorization.RoleAssignment | None,
        identity_checked: pulumi.Output[str],
    ) -> containerservice.ManagedCluster:
        """The ManagedCluster with its first pool, the separate pool when there is one (see
        node_pool_changes.py for what a change of each knob does) and its API allowlist."""
        name, spec, region, tags, child = (
            self._name,
            self.spec,
            self.spec.region,
            self._tags,
            self._child,
        )
        project, stack = pulumi.get_project(), pulumi.get_stack()
        api_ranges = pulumi.Output.all(
            pulumi.Output.from_input(args.extra_api_cidrs), egress_cidrs
        ).apply(lambda a: authorized_ip_ranges(args.api_allowed_cidrs, a[0], a[1]))

        workload_identity: dict = {}
        if args.workload_identity:
            workload_identity = {
                "oidc_issuer_profile": containerservice.ManagedClusterOIDCIssuerProfileArgs(
                    enabled=True
                ),
                "security_profile": containerservice.ManagedClusterSecurityProfileArgs(
                    workload_identity=containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(
                        enabled=True
                    )
                ),
            }

        pools = pulumi.Output.from_input(args.pools or AksPools(spec.node_size, spec.node_size))
        # Created once the stack's last run is read, which both preview and update know. The
        # cluster waits for the pool: emptying the first pool needs another System pool.
        own_pool = pools.apply(
            lambda p: self._own_pool(p, resource_group, node_subnet) if p.separate else None
        )
        cluster = containerservice.ManagedCluster(
            f"{name}-aks",
            resource_group_name=resource_group.name,
            location=region,
            # Through the identity check: no change reaches a cluster the check would refuse.
            dns_prefix=identity_checked.apply(lambda _: name),
            node_resource_group=node_resource_group_name(project, stack, name, region),
            kubernetes_version=spec.kubernetes_version,
            identity=containerservice.ManagedClusterIdentityArgs(
                type=containerservice.ResourceIdentityType.USER_ASSIGNED,
                user_assigned_identities=[own_identity.id],
            )
            if own_identity
            else containerservice.ManagedClusterIdentityArgs(
                type=containerservice.ResourceIdentityType.SYSTEM_ASSIGNED
            ),
            enable_rbac=True,
            # The program authenticates with the admin (local account) credentials, so local
            # accounts must stay on; access is narrowed by the authorized IP ranges instead.
            disable_local_accounts=False,
            sku=containerservice.ManagedClusterSKUArgs(
                name=containerservice.ManagedClusterSKUName.BASE,
                tier=containerservice.ManagedClusterSKUTier.FREE,
            ),
            api_server_access_profile=containerservice.ManagedClusterAPIServerAccessProfileArgs(
                authorized_ip_ranges=api_ranges,
            ),
            agent_pool_profiles=[self._first_pool(pools, node_subnet)],
            network_profile=_network_profile(egress_ip),
            auto_upgrade_profile=containerservice.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel=containerservice.UpgradeChannel.PATCH,
                node_os_upgrade_channel=containerservice.NodeOSUpgradeChannel.NODE_IMAGE,
            ),
            tags=tags,
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    depends_on=own_pool.apply(
                        lambda pool: [r for r in (pool, grant_before) if r is not None]
                    ),
                    # Set when a cluster is created. azure-native replaces a cluster whose
                    # data plane or policy engine changes (replacement.go, forceNewMap), while
                    # AKS switches them in place; clusters made before Cilium keep theirs and
                    # get a warning with the in-place command (`unenforced_policies`).
                    ignore_changes=[
                        "networkProfile.networkDataplane",
                        "networkProfile.networkPolicy",
                    ],
                ),
            ),
            **workload_identity,
        )
        policy = cluster.network_profile.apply(lambda p: (p.network_policy or "") if p else None)
        pulumi.Output.all(resource_group.name, cluster.name, policy).apply(
            lambda a: (
                _warn(unenforced_policies(name, a[2] or None, a[0], a[1]))
                if a[2] is not None
                else None
            )
        )
        pools.apply(lambda p: _warn(_lagging_pools(name, spec.kubernetes_version, p)))
        self.first_pool_size: pulumi.Output[str] = pools.apply(lambda p: p.first_size)
        """The VM size of the cluster's first pool, kept for the cluster's life."""
        self.node_size: pulumi.Output[str] = pools.apply(lambda p: p.size)
        """The VM size the nodes run on."""
        return cluster

    def _pool_settings(self, node_subnet: network.Subnet, version: pulumi.Input[str]) -> dict:
        """What every pool of the cluster shares, whichever resource declares it."""
        return {
            "type": containerservice.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS,
            "orchestrator_version": version,
            "os_type": containerservice.OSType.LINUX,
            # Ephemeral OS disks need a VM size with local storage, which the configurable
            # size need not have; managed disks work with all of them.
            "os_disk_type": containerservice.OSDiskType.MANAGED,
            "os_disk_size_gb": OS_DISK_SIZE_GB,
            "max_pods": MAX_PODS,
            "availability_zones": self._zones,
            "vnet_subnet_id": node_subnet.id,
            "enable_node_public_ip": False,
            "tags": self._tags,
        }

    def _first_pool(
        self, pools: pulumi.Output[AksPools], node_subnet: network.Subnet
    ) -> containerservice.ManagedClusterAgentPoolProfileArgs:
        """The pool created with the cluster. It keeps its VM size; once the nodes run in a
        pool of another size it becomes an empty User pool (User pools may have no nodes,
        System pools may not), and it takes them back when nodeSize returns to its size."""
        count = self.spec.node_count
        return containerservice.ManagedClusterAgentPoolProfileArgs(
            name="system",
            mode=pools.apply(
                lambda p: (
                    containerservice.AgentPoolMode.USER
                    if p.separate
                    else containerservice.AgentPoolMode.SYSTEM
                )
            ),
            count=pools.apply(lambda p: 0 if p.separate else count),
            vm_size=pools.apply(lambda p: p.first_size),
            **self._pool_settings(
                node_subnet, pools.apply(lambda p: p.pool_version or self.spec.kubernetes_version)
            ),
        )

    def _own_pool(
        self,
        pools: AksPools,
        resource_group: resources.ResourceGroup,
        node_subnet: network.Subnet,
    ) -> containerservice.AgentPool:
        """The System pool of `pools.size` the nodes run in while it differs from the first
        pool's. A new size replaces it (vmSize and the name both force a new pool); the new
        pool has a new name, so it is created before the old one is deleted. That order must be
        asked for: azure-native asks for delete-before-replace on every replacement of a
        resource it does not name itself (provider/pkg/provider/provider.go, Diff), and the
        engine lets an explicit deleteBeforeReplace: false override that (pkg/resource/deploy/
        step_generator.go). Deleting first would remove the cluster's only System pool."""
        return containerservice.AgentPool(
            f"{self._name}-pool",
            resource_group_name=resource_group.name,
            resource_name_=pools.cluster_name,
            agent_pool_name=pool_name(pools.size),
            mode=containerservice.AgentPoolMode.SYSTEM,
            count=self.spec.node_count,
            vm_size=pools.size,
            **self._pool_settings(node_subnet, pools.pool_version or self.spec.kubernetes_version),
            opts=pulumi.ResourceOptions.merge(
                self._child, pulumi.ResourceOptions(delete_before_replace=False)
            ),
        )

    def _user_identity(
        self, resource_group: resources.ResourceGroup, checked: pulumi.Output[str]
    ) -> managedidentity.UserAssignedIdentity:
        """The control plane's own identity, made before the cluster once the check passed."""
        region = self.spec.region
        return managedidentity.UserAssignedIdentity(
            f"{self._name}-control-plane-identity",
            resource_group_name=resource_group.name,
            location=checked.apply(lambda _: region),
            tags=self._tags,
            opts=self._child,
        )

    def _network_contributor(
        self, resource_group: resources.ResourceGroup, principal_id: pulumi.Input[str]
    ) -> authorization.RoleAssignment:
        """Network Contributor for the control plane's identity on its resource group."""
        name, child = self._name, self._child
        project, stack = pulumi.get_project(), pulumi.get_stack()
        # The cluster identity acts on the node subnet (load balancer backends, NIC joins) and on
        # the BYO outbound IP, both outside the node resource group where AKS grants it rights
        # itself. `az aks create` adds this assignment on the caller's behalf; ARM, Bicep and
        # Pulumi callers must do it themselves (Azure/terraform-azurerm-aks role_assignments.tf,
        # "custom VNET ... needs the Network Contributor role"; AKS docs on BYO outbound IPs).
        # A system-assigned identity exists only once the cluster does, so there the assignment
        # follows the cluster; either way the Kubernetes provider waits for it, so no
        # LoadBalancer Service is created before the cloud provider may act on the network.
        # Scope: the resource group, which holds only this cluster's network and IP.
        client = authorization.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self, provider=self._azure_provider)
        )
        return authorization.RoleAssignment(
            f"{name}-network-contributor",
            scope=resource_group.id,
            principal_id=principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=client.subscription_id.apply(
                lambda sub: (
                    f"/subscriptions/{sub}/providers/Microsoft.Authorization"
                    f"/roleDefinitions/{NETWORK_CONTRIBUTOR_ROLE}"
                )
            ),
            role_assignment_name=client.subscription_id.apply(
                lambda sub: role_assignment_name(sub, project, stack, name)
            ),
            # Assignments cannot be updated in place and the name is fixed: a new principal
            # (cluster replaced, or its identity switched) needs the old assignment gone first.
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(delete_before_replace=True)
            ),
        )

    def _maintenance(
        self, resource_group: resources.ResourceGroup, cluster: containerservice.ManagedCluster
    ) -> list[containerservice.MaintenanceConfiguration]:
        """The weekly window in which AKS may roll the nodes. Without one, node-image and
        patch upgrades start whenever AKS schedules them, business hours included."""
        window: MaintenanceWindow = self.spec.maintenance_window
        return [
            containerservice.MaintenanceConfiguration(
                f"{self._name}-{config_name}",
                resource_group_name=resource_group.name,
                resource_name_=cluster.name,
                config_name=config_name,
                maintenance_window=containerservice.MaintenanceWindowArgs(
                    schedule=containerservice.ScheduleArgs(
                        weekly=containerservice.WeeklyScheduleArgs(
                            day_of_week=window.day_of_week, interval_weeks=1
                        )
                    ),
                    duration_hours=window.duration_hours,
                    start_time=window.start_time,
                    utc_offset=window.utc_offset,
                ),
                opts=self._child,
            )
            for config_name in MAINTENANCE_SCHEDULES
        ]

    def _admin_credentials(
        self, resource_group: resources.ResourceGroup, cluster: containerservice.ManagedCluster
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """The admin kubeconfig (secret) and the API server's CA, from
        listManagedClusterAdminCredentials."""
        # Depends on the cluster through its name: the engine withholds the call while the
        # cluster is still to be created, so a first preview sees an unknown kubeconfig.
        credentials = containerservice.list_managed_cluster_admin_credentials_output(
            resource_group_name=resource_group.name,
            resource_name=cluster.name,
            opts=pulumi.InvokeOutputOptions(parent=self, provider=self._azure_provider),
        )
        kubeconfig = pulumi.Output.secret(credentials.apply(_decode_kubeconfig))
        # The CA certificate is public (every client is given it); only the kubeconfig's
        # credentials are secret, so the CA need not stay wrapped.
        ca_data = pulumi.Output.unsecret(kubeconfig.apply(_ca_data))
        return kubeconfig, ca_data


def _lagging_pools(cluster: str, version: str, pools: AksPools) -> str | None:
    if pools.pool_version is None:
        return None
    return (
        f"AKS cluster {cluster!r}: this run upgrades the control plane to {version!r} only; its "
        f"node pools stay on {pools.pool_version!r}, since its nodes are or were in a separate "
        "pool, which AKS may not upgrade ahead of the control plane. Run `pulumi up` again to "
        "upgrade the pools (docs/day-2.md, change node sizes and counts)"
    )


def _warn(message: str | None) -> None:
    if message:
        pulumi.log.warn(message)


def _network_profile(
    egress_ip: network.PublicIPAddress,
) -> containerservice.ContainerServiceNetworkProfileArgs:
    """Azure CNI Overlay with Cilium, and the static egress IP as the only outbound address."""
    return containerservice.ContainerServiceNetworkProfileArgs(
        network_plugin=containerservice.NetworkPlugin.AZURE,
        network_plugin_mode=containerservice.NetworkPluginMode.OVERLAY,
        # Azure CNI powered by Cilium enforces NetworkPolicies in eBPF at no extra
        # charge. Only new clusters get it from here (see the cluster's ignore_changes).
        network_dataplane=containerservice.NetworkDataplane.CILIUM,
        network_policy=containerservice.NetworkPolicy.CILIUM,
        pod_cidr=POD_CIDR,
        service_cidr=SERVICE_CIDR,
        dns_service_ip=DNS_SERVICE_IP,
        load_balancer_sku=containerservice.LoadBalancerSku.STANDARD,
        outbound_type=containerservice.OutboundType.LOAD_BALANCER,
        load_balancer_profile=containerservice.ManagedClusterLoadBalancerProfileArgs(
            outbound_ips=containerservice.ManagedClusterLoadBalancerProfileOutboundIPsArgs(
                public_ips=[containerservice.ResourceReferenceArgs(id=egress_ip.id)]
            ),
        ),
    )
