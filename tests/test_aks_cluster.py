"""AksCluster alone, under mocks: what it declares, how it is wired and what it keeps secret."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pulumi
import pytest
from harness import FAKE_CA, Graph, Registered, is_secret, is_unknown, run_program

from components.clusters._azure_zones import ZONED_REGIONS, zones_for
from components.clusters.aks import (
    AKS_CLUSTER_TYPE,
    AksCluster,
    AksClusterArgs,
    authorized_ip_ranges,
    node_resource_group_name,
    unenforced_policies,
)
from components.config import ClusterSpec, MaintenanceWindow
from components.lifecycle.previous_run import AksPools

MC = "azure-native:containerservice:ManagedCluster"
PIP = "azure-native:network:PublicIPAddress"
RG = "azure-native:resources:ResourceGroup"
ROLE = "azure-native:authorization:RoleAssignment"
UAI = "azure-native:managedidentity:UserAssignedIdentity"
WINDOW = "azure-native:containerservice:MaintenanceConfiguration"
AZURE_PROVIDER = "pulumi:providers:azure-native"
K8S_PROVIDER = "pulumi:providers:kubernetes"

ALLOWED = ("203.0.113.0/24", "198.51.100.7/32")
HUB_EXTRA = ["192.0.2.10/32", "192.0.2.11/32"]
NON_ZONED_REGION = "northcentralus"

PER_CLUSTER = {
    AKS_CLUSTER_TYPE: 1,
    AZURE_PROVIDER: 1,
    RG: 1,
    "azure-native:network:VirtualNetwork": 1,
    "azure-native:network:Subnet": 1,
    PIP: 1,
    MC: 1,
    ROLE: 1,
    UAI: 1,
    WINDOW: 2,
    K8S_PROVIDER: 1,
}


def spec(name: str = "main", region: str = "westeurope", **kw: Any) -> ClusterSpec:
    kw.setdefault("node_size", "Standard_D4s_v5")
    return ClusterSpec(name=name, cloud="azure", region=region, **kw)


def build(
    *specs: ClusterSpec,
    preview: bool = False,
    allowed: tuple[str, ...] = ALLOWED,
    extra: list[str] | None = None,
    stack: str = "dev",
    **kw: Any,
) -> Graph:
    """Run a program that builds one AksCluster per spec and exports its outputs by name."""

    def program() -> None:
        for s in specs:
            extra_cidrs = pulumi.Output.from_input(extra) if extra is not None else ()
            c = AksCluster(
                s.name,
                AksClusterArgs(
                    spec=s, api_allowed_cidrs=allowed, extra_api_cidrs=extra_cidrs, **kw
                ),
            )
            pulumi.export(f"{s.name}-egress", c.egress_cidrs)
            pulumi.export(f"{s.name}-url", c.api_server_url)
            pulumi.export(f"{s.name}-ca", c.ca_data)
            pulumi.export(f"{s.name}-kubeconfig", c.kubeconfig)

    return run_program({}, preview=preview, stack=stack, program=program)


def one(graph: Graph, type_: str, cluster: str = "main") -> Registered:
    found = [r for r in graph.of_type(type_) if r.name.startswith(f"{cluster}-")]
    assert len(found) == 1, f"cluster {cluster} must declare exactly one {type_}, found {found}"
    return found[0]


def pool(graph: Graph, cluster: str = "main") -> dict[str, Any]:
    pools = one(graph, MC, cluster).inputs["agentPoolProfiles"]
    assert len(pools) == 1, f"ManagedCluster {cluster}-aks must declare one pool, got {pools}"
    return pools[0]


@pytest.fixture(scope="module")
def hub() -> Graph:
    return build(spec(), extra=HUB_EXTRA)


@pytest.fixture(scope="module")
def hub_preview() -> Graph:
    return build(spec(), extra=HUB_EXTRA, preview=True)


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_each_cluster_declares_its_resources_once(preview: bool) -> None:
    graph = build(spec("main"), spec("app-azure", region="eastus2"), preview=preview)
    for cluster in ("main", "app-azure"):
        counts = Counter(
            r.type for r in graph.resources if r.name == cluster or r.name.startswith(f"{cluster}-")
        )
        assert counts == PER_CLUSTER, f"AksCluster {cluster} declares {dict(counts)}"


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_children_are_named_after_the_cluster_and_parented_to_it(preview: bool) -> None:
    graph = build(spec("app-azure"), preview=preview)
    (component,) = graph.of_type(AKS_CLUSTER_TYPE)
    for res in graph.resources:
        if res is component:
            continue
        assert res.name.startswith("app-azure-"), f"{res} must be named app-azure-<role>"
        assert res.parent == component.urn, f"{res} must be a child of AksCluster app-azure"


def test_cluster_identity_is_user_assigned_with_rbac_and_admin_credentials(hub: Graph) -> None:
    aks, identity = one(hub, MC), one(hub, UAI)
    assert aks.inputs["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": [f"{identity.name}-id"],
    }, f"ManagedCluster {aks.name} must run as its user-assigned identity {identity.name}"
    assert aks.inputs["enableRBAC"] is True, f"ManagedCluster {aks.name} must enable RBAC"
    assert aks.inputs["disableLocalAccounts"] is False, (
        f"ManagedCluster {aks.name} must keep local accounts: the admin kubeconfig is used"
    )


def test_api_server_admits_configured_extra_and_own_egress_cidrs(hub: Graph) -> None:
    aks = one(hub, MC)
    (own,) = hub.stack_outputs["main-egress"]
    expected = sorted({*ALLOWED, *HUB_EXTRA, own})
    ranges = aks.inputs["apiServerAccessProfile"]["authorizedIPRanges"]
    assert ranges == expected, (
        f"ManagedCluster {aks.name} authorized IP ranges must be the configured CIDRs, the extra "
        f"CIDRs and its own egress, sorted: got {ranges}, want {expected}"
    )


def test_extra_api_cidrs_unknown_in_preview_leave_the_ranges_unknown(hub_preview: Graph) -> None:
    aks = one(hub_preview, MC)
    ranges = aks.inputs["apiServerAccessProfile"]["authorizedIPRanges"]
    assert is_unknown(ranges), f"ManagedCluster {aks.name} ranges must wait for the egress IPs"


def test_open_cidr_turns_authorized_ip_ranges_off() -> None:
    graph = build(spec(), allowed=("0.0.0.0/0",), extra=HUB_EXTRA)
    aks = one(graph, MC)
    ranges = aks.inputs["apiServerAccessProfile"]["authorizedIPRanges"]
    assert ranges == [], (
        f"ManagedCluster {aks.name}: apiAllowedCidrs 0.0.0.0/0 must give an open API server "
        f"(empty authorized ranges), got {ranges}"
    )


@pytest.mark.parametrize(
    ("configured", "extra", "want"),
    [
        (["203.0.113.0/24"], [], ["198.51.100.1/32", "203.0.113.0/24"]),
        (["203.0.113.0/24"], ["203.0.113.0/24"], ["198.51.100.1/32", "203.0.113.0/24"]),
        (["0.0.0.0/0", "203.0.113.0/24"], ["192.0.2.1/32"], []),
        (["203.0.113.0/24"], ["0.0.0.0/0"], []),
        (["0.0.0.0/32"], [], ["198.51.100.1/32"]),
    ],
    ids=["own-egress-added", "deduplicated", "open", "open-from-extra", "own-only"],
)
def test_authorized_ip_ranges(configured: list[str], extra: list[str], want: list[str]) -> None:
    assert authorized_ip_ranges(configured, extra, ["198.51.100.1/32"]) == want


def test_static_standard_public_ip_is_the_only_outbound_ip(hub: Graph) -> None:
    aks, ip = one(hub, MC), one(hub, PIP)
    assert ip.inputs["sku"] == {"name": "Standard", "tier": "Regional"}, f"{ip} must be Standard"
    assert ip.inputs["publicIPAllocationMethod"] == "Static", f"{ip} must be static"
    net = aks.inputs["networkProfile"]
    assert net["outboundType"] == "loadBalancer", f"{aks} must send egress through its LB"
    assert net["loadBalancerSku"] == "standard", f"{aks} must use a Standard load balancer"
    lb = net["loadBalancerProfile"]
    assert lb["outboundIPs"] == {"publicIPs": [{"id": f"{ip.name}-id"}]}, (
        f"{aks} must use {ip.name} as its one outbound IP, got {lb}"
    )
    assert not {"managedOutboundIPs", "outboundIPPrefixes"} & set(lb), (
        f"{aks} must not add AKS-managed outbound IPs or prefixes next to {ip.name}: {lb}"
    )
    assert ip.urn in aks.property_dependencies.get("networkProfile", []), (
        f"{aks} networkProfile must depend on {ip.name}"
    )


def test_egress_cidrs_are_the_outbound_ip_as_a_host_route(hub: Graph) -> None:
    egress = hub.stack_outputs["main-egress"]
    assert len(egress) == 1 and egress[0].endswith("/32"), f"egress_cidrs of main: {egress}"
    assert egress[0] in one(hub, MC).inputs["apiServerAccessProfile"]["authorizedIPRanges"]


def test_azure_cni_overlay_with_non_overlapping_ranges(hub: Graph) -> None:
    import ipaddress

    net = one(hub, MC).inputs["networkProfile"]
    assert (net["networkPlugin"], net["networkPluginMode"]) == ("azure", "overlay")
    vnet = one(hub, "azure-native:network:VirtualNetwork").inputs["addressSpace"]["addressPrefixes"]
    subnet = one(hub, "azure-native:network:Subnet").inputs["addressPrefix"]
    nets = [ipaddress.ip_network(c) for c in (*vnet, net["podCidr"], net["serviceCidr"])]
    for i, a in enumerate(nets):
        for b in nets[i + 1 :]:
            assert not a.overlaps(b), f"main: ranges {a} and {b} overlap"
    assert ipaddress.ip_network(subnet).subnet_of(ipaddress.ip_network(vnet[0]))
    assert ipaddress.ip_address(net["dnsServiceIP"]) in ipaddress.ip_network(net["serviceCidr"])
    assert pool(hub)["vnetSubnetID"] == "main-nodes-id", "the pool must use the node subnet"


def test_zoned_region_spreads_pool_and_ip_over_three_zones(hub: Graph) -> None:
    assert "westeurope" in ZONED_REGIONS
    assert pool(hub)["availabilityZones"] == ["1", "2", "3"], "main pool must span zones 1-3"
    assert one(hub, PIP).inputs["zones"] == ["1", "2", "3"], "main egress IP must be zonal"


def test_region_without_zones_gets_none() -> None:
    assert NON_ZONED_REGION not in ZONED_REGIONS and zones_for(NON_ZONED_REGION) is None
    graph = build(spec(region=NON_ZONED_REGION))
    assert "availabilityZones" not in pool(graph), "a pool in northcentralus must have no zones"
    assert "zones" not in one(graph, PIP).inputs, "an IP in northcentralus must have no zones"


def test_pool_is_a_system_scale_set_sized_from_the_spec() -> None:
    graph = build(spec(node_count=3, node_size="Standard_D8s_v5", kubernetes_version="1.34"))
    aks, p = one(graph, MC), pool(graph)
    assert aks.inputs["kubernetesVersion"] == "1.34", "kubernetesVersion must come from the spec"
    assert p["orchestratorVersion"] == "1.34", "the pool must run the spec's version"
    assert (p["mode"], p["type"]) == ("System", "VirtualMachineScaleSets")
    assert (p["count"], p["vmSize"]) == (3, "Standard_D8s_v5")
    assert p["osDiskType"] == "Managed" and 30 <= p["maxPods"] <= 250
    assert aks.inputs["autoUpgradeProfile"] == {
        "upgradeChannel": "patch",
        "nodeOSUpgradeChannel": "NodeImage",
    }


def test_names_derived_from_the_cluster(hub: Graph) -> None:
    aks = one(hub, MC)
    assert aks.inputs["dnsPrefix"] == "main"
    node_rg = aks.inputs["nodeResourceGroup"]
    assert node_rg == "MC_ocm-fleet-dev_main_westeurope", node_rg
    long = node_resource_group_name("ocm-fleet", "s" * 60, "c" * 40, "germanywestcentral")
    assert len(long) <= 80 and not long.endswith(".")


def test_workload_identity_is_off_unless_asked() -> None:
    assert "oidcIssuerProfile" not in one(build(spec()), MC).inputs
    aks = one(build(spec(), workload_identity=True), MC)
    assert aks.inputs["oidcIssuerProfile"] == {"enabled": True}
    assert aks.inputs["securityProfile"] == {"workloadIdentity": {"enabled": True}}


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_every_azure_resource_uses_its_clusters_provider(preview: bool) -> None:
    graph = build(spec("main"), spec("app-azure", region="eastus2"), preview=preview)
    providers = {p.name: p for p in graph.of_type(AZURE_PROVIDER)}
    assert set(providers) == {"main-azure", "app-azure-azure"}, f"providers: {set(providers)}"
    assert providers["main-azure"].inputs["location"] == "westeurope"
    assert providers["app-azure-azure"].inputs["location"] == "eastus2"
    for res in graph.resources:
        if not res.type.startswith("azure-native:"):
            continue
        cluster = "app-azure" if res.name.startswith("app-azure-") else "main"
        assert res.provider_urn == providers[f"{cluster}-azure"].urn, (
            f"{res} must use the azure-native provider of {cluster}, not {res.provider_urn}"
        )
        if "location" in res.inputs:
            assert res.inputs["location"] == providers[f"{cluster}-azure"].inputs["location"]


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_kubernetes_provider_is_secret_stable_and_waits_for_cluster_and_role(
    preview: bool,
) -> None:
    graph = build(spec(), preview=preview)
    prov = one(graph, K8S_PROVIDER)
    assert is_secret(prov.wire_inputs["kubeconfig"]), f"{prov} kubeconfig must be a secret"
    assert prov.inputs["clusterIdentifier"] == "main", f"{prov} clusterIdentifier must be main"
    for target in (one(graph, MC), one(graph, ROLE)):
        assert graph.depends_on(prov, target), f"{prov} must depend on {target}"
    if preview:
        assert is_unknown(prov.inputs["kubeconfig"]), f"{prov} kubeconfig unknown in preview"
    assert is_secret(graph.stack_wire_outputs["main-kubeconfig"]), "kubeconfig output is secret"


def test_kubeconfig_url_and_ca_come_from_the_cluster(hub: Graph) -> None:
    prov, aks = one(hub, K8S_PROVIDER), one(hub, MC)
    kubeconfig = prov.inputs["kubeconfig"]
    assert "clusterAdmin" not in kubeconfig and "apiVersion: v1" in kubeconfig, (
        "the provider must get the decoded kubeconfig YAML, not its base64"
    )
    assert hub.stack_outputs["main-ca"] == FAKE_CA.decode()
    url = hub.stack_outputs["main-url"]
    assert url.startswith("https://main-aks-") and url.endswith(".azmk8s.io:443"), url
    assert aks.name == "main-aks"


def assert_network_contributor_on_group(graph: Graph) -> Registered:
    role, rg = one(graph, ROLE), one(graph, RG)
    assert role.inputs["roleDefinitionId"] == (
        "/subscriptions/33333333-3333-3333-3333-333333333333/providers/"
        "Microsoft.Authorization/roleDefinitions/4d97b98b-1d4f-4787-a291-c67834d212e7"
    ), f"{role} must grant Network Contributor"
    if is_unknown(role.inputs["scope"]):
        assert rg.urn in role.property_dependencies["scope"], f"{role} must be scoped to {rg.name}"
    else:
        assert role.inputs["scope"] == f"{rg.name}-id", f"{role} must be scoped to {rg.name}"
    assert role.inputs["principalType"] == "ServicePrincipal"
    assert role.options["deleteBeforeReplace"], f"{role} must be deleted before replacement"
    return role


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_a_new_cluster_gets_its_rights_before_it_exists(preview: bool) -> None:
    """The user-assigned identity and its Network Contributor grant come before the
    ManagedCluster, so no LoadBalancer Service meets a grant still propagating
    (Azure/AKS#1945)."""
    graph = build(spec(), preview=preview)
    role, aks, identity = (
        assert_network_contributor_on_group(graph),
        one(graph, MC),
        one(graph, UAI),
    )
    assert identity.urn in role.property_dependencies["principalId"], (
        f"{role} principal must be {identity.name}'s"
    )
    assert not graph.depends_on(role, aks), f"{role} must not wait for {aks.name}"
    for before in (identity, role):
        assert graph.depends_on(aks, before), f"ManagedCluster {aks.name} must wait for {before}"
    if not preview:
        assert role.inputs["principalId"].startswith("55555555-"), role.inputs["principalId"]


def test_a_system_assigned_cluster_keeps_its_identity_and_is_granted_after(hub: Graph) -> None:
    graph = build(spec(control_plane_identity="systemAssigned"))
    aks = one(graph, MC)
    assert aks.inputs["identity"] == {"type": "SystemAssigned"}, (
        f"ManagedCluster {aks.name} must keep its system-assigned identity, as before"
    )
    assert not [r for r in graph.resources if r.type == UAI], "no user-assigned identity"
    role = assert_network_contributor_on_group(graph)
    assert role.inputs["principalId"].startswith("00000000-0000-0000-0000-")
    assert aks.urn in role.property_dependencies["principalId"], (
        f"{role} principal must come from {aks.name}'s identity"
    )
    # The same resource name and Azure name either way: a switch replaces only the assignment.
    assert role.name == one(hub, ROLE).name
    assert role.inputs["roleAssignmentName"] == one(hub, ROLE).inputs["roleAssignmentName"]


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_node_upgrades_wait_for_the_configured_maintenance_window(preview: bool) -> None:
    window = MaintenanceWindow(
        day_of_week="Saturday", start_time="22:30", duration_hours=6, utc_offset="+01:00"
    )
    for graph, want in (
        (build(spec(), preview=preview), MaintenanceWindow()),
        (build(spec(maintenance_window=window), preview=preview), window),
    ):
        aks = one(graph, MC)
        configs = {r.inputs["configName"]: r for r in graph.of_type(WINDOW)}
        assert set(configs) == {"aksManagedNodeOSUpgradeSchedule", "aksManagedAutoUpgradeSchedule"}
        for name, config in configs.items():
            assert aks.urn in config.property_dependencies["resourceName"], (
                f"maintenance configuration {name} must name the cluster {aks.name}"
            )
            assert config.inputs["maintenanceWindow"] == {
                "schedule": {"weekly": {"dayOfWeek": want.day_of_week, "intervalWeeks": 1}},
                "durationHours": want.duration_hours,
                "startTime": want.start_time,
                "utcOffset": want.utc_offset,
            }, f"maintenance configuration {name}"
    assert MaintenanceWindow() == MaintenanceWindow(
        day_of_week="Sunday", start_time="02:00", duration_hours=4, utc_offset="+00:00"
    ), "the documented default window"


def test_role_assignment_name_is_a_stable_guid_per_cluster_and_stack() -> None:
    import uuid

    names = {
        (stack, cluster): one(build(spec(cluster), stack=stack), ROLE, cluster).inputs[
            "roleAssignmentName"
        ]
        for stack in ("dev", "prod")
        for cluster in ("main", "app-azure")
    }
    for key, value in names.items():
        assert str(uuid.UUID(value)) == value, f"role assignment name of {key} is not a GUID"
    assert len(set(names.values())) == 4, f"names must differ per cluster and stack: {names}"


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_two_runs_declare_identical_inputs(preview: bool) -> None:
    # The mocks number resources in registration order, which concurrency does not fix, so
    # inputs taken from another resource's outputs are compared by where they come from; every
    # input the component computes itself (names, GUIDs, ranges, sizes) is compared by value.
    def snapshot() -> dict[tuple[str, str], Any]:
        graph = build(spec("main"), spec("app-azure", region=NON_ZONED_REGION), preview=preview)
        names = {r.urn: r.name for r in graph.resources}
        out = {}
        for r in graph.resources:
            wired = {
                k: sorted(names[u] for u in v) for k, v in r.property_dependencies.items() if v
            }
            own = {k: v for k, v in r.wire_inputs.items() if k not in wired}
            out[(r.type, r.name)] = (own, wired, r.options)
        return out

    first, second = snapshot(), snapshot()
    assert first.keys() == second.keys(), "the same resources must be declared on every run"
    for key, value in first.items():
        assert value == second[key], f"{key[0]} {key[1]} changes between runs: perpetual diff"


def test_cilium_is_chosen_at_creation_and_never_replaces_an_existing_cluster(hub: Graph) -> None:
    cluster = one(hub, MC)
    net = cluster.inputs["networkProfile"]
    assert (net["networkDataplane"], net["networkPolicy"]) == ("cilium", "cilium")
    # azure-native forces a new cluster when either changes (replacement.go); a cluster made
    # before Cilium must keep its data plane rather than be rebuilt with its database.
    assert {"networkProfile.networkDataplane", "networkProfile.networkPolicy"} <= set(
        cluster.options["ignoreChanges"]
    ), f"{cluster.name}: ignoreChanges {cluster.options['ignoreChanges']}"
    assert not any("not enforced" in line for line in hub.logs), hub.logs


@pytest.mark.parametrize("engine", [None, "azure", "calico"])
def test_a_cluster_without_cilium_is_told_how_to_switch_in_place(engine: str | None) -> None:
    message = unenforced_policies("app-azure", engine)
    assert message is not None
    assert "'app-azure'" in message and "not enforced" in message
    assert "az aks update" in message and "--network-dataplane cilium" in message
    assert unenforced_policies("app-azure", "cilium") is None


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_a_separate_pool_builds_in_preview_and_update(preview: bool) -> None:
    pools = AksPools(size="Standard_D8s_v5", first_size="Standard_D4s_v5", cluster_name="main-1")
    graph = build(spec(node_size="Standard_D8s_v5"), pools=pools, preview=preview)
    (own,) = graph.of_type("azure-native:containerservice:AgentPool")
    assert own.inputs["vmSize"] == "Standard_D8s_v5" and own.inputs["resourceName"] == "main-1"
    assert own.provider_urn == one(graph, AZURE_PROVIDER).urn
    assert own.parent == graph.named("main", AKS_CLUSTER_TYPE).urn
    assert pool(graph)["vmSize"] == "Standard_D4s_v5"
