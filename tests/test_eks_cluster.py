"""EksCluster built alone under mocks: its graph, security defaults, providers and kubeconfig."""

from __future__ import annotations

import ipaddress
import json
import re

import harness
import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml
from harness import Graph, Registered, run_program

from components.clusters.eks import (
    ADDON_CONFIGURATION,
    CLUSTER_LOG_TYPES,
    EBS_CSI_SERVICE_ACCOUNT,
    EksCluster,
    EksClusterArgs,
    ami_type_for,
    compact_json,
    control_plane_log_group,
)
from components.config import ClusterSpec, FleetConfigError, parse_fleet_config

ALLOWED = ("203.0.113.0/24", "198.51.100.7/32")
MODES = pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])

T_ADDON = "aws:eks/addon:Addon"
T_ATTACH = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
T_CLUSTER = "aws:eks/cluster:Cluster"
T_EIP = "aws:ec2/eip:Eip"
T_K8S = "pulumi:providers:kubernetes"
T_KEY = "aws:kms/key:Key"
T_LT = "aws:ec2/launchTemplate:LaunchTemplate"
T_NAT = "aws:ec2/natGateway:NatGateway"
T_NODES = "aws:eks/nodeGroup:NodeGroup"
T_AWS = "pulumi:providers:aws"
T_ROLE = "aws:iam/role:Role"
T_SUBNET = "aws:ec2/subnet:Subnet"


def spec(name: str = "app-ie", region: str = "eu-west-1", **kw) -> ClusterSpec:
    return ClusterSpec(name=name, cloud="aws", region=region, node_size="t3.large", **kw)


ADMINS = (harness.MOCK_CALLER_ROLE,)


def build(
    *specs: ClusterSpec,
    preview: bool = False,
    admins: tuple[str, ...] = ADMINS,
    caller: str = harness.MOCK_CALLER_ROLE,
) -> Graph:
    def program() -> None:
        for s in specs or (spec(),):
            cluster = EksCluster(
                s.name,
                EksClusterArgs(spec=s, api_allowed_cidrs=ALLOWED, admin_principals=admins),
            )
            pulumi.export(f"{s.name}-egress", cluster.egress_cidrs)
            pulumi.export(f"{s.name}-kubeconfig", cluster.kubeconfig)

    return run_program({}, preview=preview, program=program, caller_arn=caller)


_GRAPHS: dict[bool, Graph] = {}


def graph_for(preview: bool) -> Graph:
    """One cluster `app-ie`, cached per mode: tests only read the graph."""
    if preview not in _GRAPHS:
        _GRAPHS[preview] = build(preview=preview)
    return _GRAPHS[preview]


def one(graph: Graph, type_: str) -> Registered:
    found = graph.of_type(type_)
    assert len(found) == 1, f"expected exactly one {type_}, found {found}"
    return found[0]


def pdeps(res: Registered, prop: str) -> set[str]:
    return set(res.property_dependencies.get(prop, []))


def role_of(graph: Graph, name: str) -> Registered:
    return graph.named(name, T_ROLE)


def managed_policies(graph: Graph, role: Registered) -> set[str]:
    return {
        a.inputs["policyArn"].rsplit("/", 1)[-1]
        for a in graph.of_type(T_ATTACH)
        if role.urn in pdeps(a, "role")
    }


def addons(graph: Graph) -> dict[str, Registered]:
    return {a.inputs["addonName"]: a for a in graph.of_type(T_ADDON)}


# --- what one cluster is made of ------------------------------------------------------------


@MODES
def test_one_cluster_has_a_complete_network_and_control_plane(preview):
    g = graph_for(preview)
    assert len(g.of_type("aws:ec2/vpc:Vpc")) == 1, "EksCluster app-ie must create one VPC"
    subnets = g.of_type(T_SUBNET)
    assert len(subnets) >= 4, f"EksCluster app-ie needs >= 4 subnets, has {subnets}"
    zones = {s.inputs["availabilityZone"] for s in subnets}
    if not preview:
        assert len(zones) >= 2, f"subnets of app-ie span only the zones {zones}"
    nats, eips = g.of_type(T_NAT), g.of_type(T_EIP)
    public = [s for s in subnets if s.inputs["tags"].get("kubernetes.io/role/elb") == "1"]
    assert len(nats) == len(eips) == 1, (
        f"app-ie (natGateways: single, the default) needs one NAT gateway and Elastic IP: "
        f"{nats} {eips}"
    )
    for nat in nats:
        assert pdeps(nat, "allocationId") & {e.urn for e in eips}, f"{nat} has no Elastic IP"
        assert pdeps(nat, "subnetId") <= {s.urn for s in public}, f"{nat} is not in a public subnet"
    one(g, T_NODES)
    one(g, T_LT)
    assert one(g, T_KEY).inputs["enableKeyRotation"] is True, "KMS key of app-ie must rotate"
    one(g, "aws:kms/alias:Alias")
    assert set(addons(g)) == {
        "vpc-cni",
        "kube-proxy",
        "coredns",
        "eks-pod-identity-agent",
        "aws-ebs-csi-driver",
    }, f"add-ons of app-ie: {sorted(addons(g))}"


@MODES
def test_subnets_carry_the_load_balancer_role_tags(preview):
    g = graph_for(preview)
    for s in g.of_type(T_SUBNET):
        tags = s.inputs["tags"]
        assert tags.get("kubernetes.io/cluster/app-ie") == "shared", f"{s} lacks the cluster tag"
        role = "elb" if s.name.startswith("app-ie-public") else "internal-elb"
        assert tags.get(f"kubernetes.io/role/{role}") == "1", f"{s} lacks kubernetes.io/role/{role}"
        assert s.inputs.get("mapPublicIpOnLaunch") is not True, f"{s} gives instances public IPs"
    cidrs = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in g.of_type(T_SUBNET)]
    vpc = ipaddress.ip_network(one(g, "aws:ec2/vpc:Vpc").inputs["cidrBlock"])
    assert all(c.subnet_of(vpc) for c in cidrs), f"subnets {cidrs} outside the VPC {vpc}"
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1 :])


def test_egress_cidrs_are_the_nat_addresses_as_host_routes():
    g = graph_for(False)
    egress = g.stack_outputs["app-ie-egress"]
    assert len(egress) == len(g.of_type(T_EIP)), f"app-ie egress {egress} vs its Elastic IPs"
    assert egress == sorted(egress)
    assert len(set(egress)) == len(egress), f"app-ie egress {egress} repeats an address"
    for cidr in egress:
        assert ipaddress.ip_network(cidr).prefixlen == 32, f"egress {cidr} is not a /32"


def test_egress_cidrs_are_unknown_in_a_first_preview():
    assert harness.is_unknown(graph_for(True).stack_outputs["app-ie-egress"])


# --- security defaults ----------------------------------------------------------------------


@MODES
def test_control_plane_security_defaults(preview):
    g = graph_for(preview)
    eks = one(g, T_CLUSTER)
    access = eks.inputs["accessConfig"]
    assert access["authenticationMode"] == "API", "EKS app-ie must use access entries only"
    assert access["bootstrapClusterCreatorAdminPermissions"] is False
    enc = eks.inputs["encryptionConfig"]
    assert enc["resources"] == ["secrets"], "EKS app-ie must encrypt Secrets"
    assert one(g, T_KEY).urn in pdeps(eks, "encryptionConfig"), (
        "EKS app-ie secrets encryption must use its own KMS key"
    )
    assert sorted(eks.inputs["enabledClusterLogTypes"]) == sorted(CLUSTER_LOG_TYPES)
    assert len(CLUSTER_LOG_TYPES) == 5
    vpc_config = eks.inputs["vpcConfig"]
    assert vpc_config["endpointPrivateAccess"] is True
    assert vpc_config["endpointPublicAccess"] is True
    assert vpc_config["publicAccessCidrs"] == list(ALLOWED), (
        "EKS app-ie public endpoint must be limited to apiAllowedCidrs"
    )
    private = {s.urn for s in g.of_type(T_SUBNET) if s.name.startswith("app-ie-private")}
    assert pdeps(eks, "vpcConfig") >= private


@MODES
def test_deployer_gets_cluster_admin_through_an_access_entry(preview):
    g = graph_for(preview)
    entry = one(g, "aws:eks/accessEntry:AccessEntry")
    assoc = one(g, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    # The role behind the session (from getSessionContext), never the session itself.
    assert entry.inputs["principalArn"] == "arn:aws:iam::123456789012:role/deployer"
    assert assoc.inputs["policyArn"].endswith(":cluster-access-policy/AmazonEKSClusterAdminPolicy")
    assert assoc.inputs["accessScope"] == {"type": "cluster"}
    assert entry.urn in pdeps(assoc, "principalArn"), "admin policy must follow its access entry"


@MODES
def test_nodes_run_in_private_subnets_with_imdsv2(preview):
    g = graph_for(preview)
    nodes, lt = one(g, T_NODES), one(g, T_LT)
    private = {s.urn for s in g.of_type(T_SUBNET) if s.name.startswith("app-ie-private")}
    assert pdeps(nodes, "subnetIds") == private, "node group app-ie-nodes must be private-only"
    assert len(nodes.inputs["subnetIds"]) == len(private)
    assert lt.urn in pdeps(nodes, "launchTemplate"), "node group must use its launch template"
    meta = lt.inputs["metadataOptions"]
    assert meta["httpTokens"] == "required", "launch template app-ie-nodes must require IMDSv2"
    assert meta["httpEndpoint"] == "enabled"
    assert 1 <= meta["httpPutResponseHopLimit"] <= 2
    (root,) = lt.inputs["blockDeviceMappings"]
    assert root["ebs"]["encrypted"] == "true" and root["ebs"]["volumeType"] == "gp3"
    scaling = nodes.inputs["scalingConfig"]
    assert scaling["desiredSize"] == scaling["minSize"] == 2
    assert scaling["maxSize"] == 3
    assert nodes.inputs["updateConfig"] == {"maxUnavailable": 1}
    assert nodes.inputs["instanceTypes"] == ["t3.large"]


@MODES
def test_iam_roles_have_only_the_required_managed_policies(preview):
    g = graph_for(preview)
    expected = {
        "app-ie-cluster-role": {"AmazonEKSClusterPolicy"},
        "app-ie-node-role": {
            "AmazonEKSWorkerNodePolicy",
            "AmazonEKS_CNI_Policy",
            "AmazonEC2ContainerRegistryReadOnly",
        },
        "app-ie-ebs-csi-role": {"AmazonEBSCSIDriverPolicy"},
    }
    assert {r.name for r in g.of_type(T_ROLE)} == set(expected)
    for name, policies in expected.items():
        role = role_of(g, name)
        assert managed_policies(g, role) == policies, f"IAM role {name} policies"
        assert not role.inputs.get("managedPolicyArns"), f"IAM role {name} has extra policies"
    for attach in g.of_type(T_ATTACH):
        assert attach.inputs["policyArn"].startswith("arn:aws:iam::aws:policy/"), attach


@MODES
def test_trust_policies(preview):
    g = graph_for(preview)

    def trust(name: str) -> tuple[str, set[str]]:
        doc = json.loads(role_of(g, name).inputs["assumeRolePolicy"])
        (stmt,) = doc["Statement"]
        actions = stmt["Action"]
        return stmt["Principal"]["Service"], {actions} if isinstance(actions, str) else set(actions)

    assert trust("app-ie-cluster-role") == ("eks.amazonaws.com", {"sts:AssumeRole"})
    assert trust("app-ie-node-role") == ("ec2.amazonaws.com", {"sts:AssumeRole"})
    assert trust("app-ie-ebs-csi-role") == (
        "pods.eks.amazonaws.com",
        {"sts:AssumeRole", "sts:TagSession"},
    )


@MODES
def test_ebs_csi_driver_gets_its_role_through_pod_identity(preview):
    g = graph_for(preview)
    assoc = one(g, "aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert assoc.inputs["namespace"] == "kube-system"
    assert assoc.inputs["serviceAccount"] == EBS_CSI_SERVICE_ACCOUNT == "ebs-csi-controller-sa"
    assert role_of(g, "app-ie-ebs-csi-role").urn in pdeps(assoc, "roleArn")
    ebs = addons(g)["aws-ebs-csi-driver"]
    assert g.depends_on(ebs, assoc), "EBS CSI add-on must start after its pod identity"
    assert g.depends_on(ebs, addons(g)["eks-pod-identity-agent"])


@MODES
def test_addon_ordering_around_the_node_group(preview):
    g = graph_for(preview)
    nodes, by_name = one(g, T_NODES), addons(g)
    for name in ("coredns", "aws-ebs-csi-driver"):
        assert g.depends_on(by_name[name], nodes), f"add-on {name} must wait for app-ie-nodes"
    for name in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):
        assert g.depends_on(nodes, by_name[name]), f"app-ie-nodes must wait for add-on {name}"


# --- providers ------------------------------------------------------------------------------


@MODES
def test_every_aws_resource_uses_the_cluster_provider(preview):
    g = graph_for(preview)
    prov = one(g, T_AWS)
    component = one(g, "ocm-fleet:index:EksCluster")
    assert prov.parent == component.urn
    assert prov.inputs["region"] == "eu-west-1"
    # Provider config reaches the engine JSON-encoded.
    tags = json.loads(prov.inputs["defaultTags"])
    assert tags["tags"] == {"ocm-fleet/cluster": "app-ie", "ManagedBy": "pulumi"}
    aws_resources = [r for r in g.resources if r.type.startswith("aws:")]
    assert aws_resources
    for r in aws_resources:
        assert r.provider.startswith(prov.urn + "::"), f"{r} does not use provider {prov.name}"
        assert r.parent == component.urn, f"{r} is not a child of EksCluster app-ie"


def test_every_aws_invoke_uses_the_cluster_provider(monkeypatch):
    seen: list[tuple[str, str]] = []
    original = harness.FleetMocks.call

    def recording_call(self, args):
        seen.append((args.token, args.provider))
        return original(self, args)

    monkeypatch.setattr(harness.FleetMocks, "call", recording_call)
    g = build()
    prov = one(g, T_AWS)
    aws_calls = [(tok, p) for tok, p in seen if tok.startswith("aws:")]
    assert {tok for tok, _ in aws_calls} >= {
        "aws:index/getAvailabilityZones:getAvailabilityZones",
        "aws:iam/getSessionContext:getSessionContext",
    }
    for tok, p in aws_calls:
        assert p.startswith(prov.urn), f"invoke {tok} does not use provider {prov.name}"


@MODES
def test_two_clusters_in_two_regions_get_two_providers(preview):
    g = build(spec("app-ie", "eu-west-1"), spec("app-us", "us-east-1"), preview=preview)
    providers = {p.name: p for p in g.of_type(T_AWS)}
    assert {n: p.inputs["region"] for n, p in providers.items()} == {
        "app-ie-aws": "eu-west-1",
        "app-us-aws": "us-east-1",
    }
    for r in g.resources:
        if r.type.startswith("aws:"):
            owner = r.name.split("-")[0] + "-" + r.name.split("-")[1]
            assert r.provider.startswith(providers[f"{owner}-aws"].urn + "::"), (
                f"{r} must use the provider of {owner}"
            )
    assert len(g.of_type(T_CLUSTER)) == 2


# --- the Kubernetes provider ----------------------------------------------------------------


@MODES
def test_kubernetes_provider_uses_a_secret_exec_kubeconfig(preview):
    g = graph_for(preview)
    prov = one(g, T_K8S)
    assert harness.is_secret(prov.wire_inputs["kubeconfig"]), "kubeconfig of app-ie must be secret"
    assert prov.inputs["clusterIdentifier"] == "app-ie"
    if preview:
        assert harness.is_unknown(prov.inputs["kubeconfig"])
        return
    config = yaml.safe_load(prov.inputs["kubeconfig"])
    (user,) = config["users"]
    assert "token" not in user["user"], "kubeconfig of app-ie must not hold a static token"
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "aws"
    assert exec_["args"] == [
        "eks",
        "get-token",
        "--cluster-name",
        "app-ie",
        "--region",
        "eu-west-1",
        "--output",
        "json",
    ]
    assert exec_["interactiveMode"] == "Never"
    (cluster,) = config["clusters"]
    assert cluster["cluster"]["server"].startswith("https://")
    assert cluster["cluster"]["certificate-authority-data"] == harness.FAKE_CA.decode()


@MODES
def test_kubernetes_provider_waits_for_nodes_and_admin_access(preview):
    g = graph_for(preview)
    prov = one(g, T_K8S)
    for target in (
        one(g, T_NODES),
        addons(g)["coredns"],
        one(g, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"),
    ):
        assert g.depends_on(prov, target), f"Kubernetes provider app-ie-k8s must wait for {target}"


@MODES
def test_only_volumes_wait_for_the_ebs_csi_driver(preview):
    """Nothing on an app cluster claims a volume: the provider, and so every object on the
    cluster, does not wait for the EBS CSI add-on; a claim made with `storage_dependencies`
    does, and is deleted while the driver still runs."""

    def program() -> None:
        cluster = EksCluster(
            "app-ie",
            EksClusterArgs(spec=spec(), api_allowed_cidrs=ALLOWED, admin_principals=ADMINS),
        )
        k8s.core.v1.PersistentVolumeClaim(
            "claim",
            spec={"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            opts=pulumi.ResourceOptions(
                provider=cluster.provider, depends_on=list(cluster.storage_dependencies)
            ),
        )

    g = run_program({}, preview=preview, program=program)
    ebs = addons(g)["aws-ebs-csi-driver"]
    assert not g.depends_on(one(g, T_K8S), ebs), (
        "Kubernetes provider app-ie-k8s must not wait for the EBS CSI add-on"
    )
    claim = g.named("claim")
    assert g.depends_on(claim, ebs), "a volume claim must depend on the EBS CSI add-on"
    # Destroy still removes every object on the cluster before the driver: the add-on goes with
    # the cluster, its role and pod identity after the provider.
    assert ebs.options["deletedWith"] == one(g, "aws:eks/cluster:Cluster").urn, (
        "the EBS CSI add-on must be deleted with the cluster"
    )
    for identity in (g.named("app-ie-ebs-csi"), role_of(g, "app-ie-ebs-csi-role")):
        assert g.depends_on(one(g, T_K8S), identity), f"app-ie-k8s must depend on {identity}"


# --- stability ------------------------------------------------------------------------------


@MODES
def test_two_runs_declare_identical_inputs(preview):
    # Wire form: unknowns are a sentinel string there, so they compare equal across runs.
    first, second = build(preview=preview), build(preview=preview)
    runs = [{r.urn: r.wire_inputs for r in g.resources} for g in (first, second)]
    assert set(runs[0]) == set(runs[1]), "the two runs declared different resources"
    for urn, inputs in runs[0].items():
        assert inputs == runs[1][urn], f"{urn} would show a diff on every run"


@pytest.mark.parametrize(
    ("instance_type", "ami_type"),
    [
        ("t3.large", "AL2023_x86_64_STANDARD"),
        ("m6i.large", "AL2023_x86_64_STANDARD"),
        ("m7g.large", "AL2023_ARM_64_STANDARD"),
        ("c7gn.xlarge", "AL2023_ARM_64_STANDARD"),
        ("t4g.medium", "AL2023_ARM_64_STANDARD"),
    ],
)
def test_node_ami_matches_the_instance_architecture(instance_type, ami_type):
    assert ami_type_for(instance_type) == ami_type


# --- NAT gateways and Elastic IPs -----------------------------------------------------------


def private_routes(g: Graph) -> dict[str, set[str]]:
    """Private route name -> the NAT gateway URNs it depends on."""
    return {
        r.name: pdeps(r, "natGatewayId")
        for r in g.of_type("aws:ec2/route:Route")
        if "-private-" in r.name
    }


@MODES
def test_single_nat_gateway_serves_every_private_subnet(preview):
    g = graph_for(preview)
    (nat,) = g.of_type(T_NAT)
    routes = private_routes(g)
    assert len(routes) == 3, f"one default route per private subnet of app-ie: {routes}"
    for route, nats in routes.items():
        assert nats == {nat.urn}, f"{route} must go through the one NAT gateway {nat.name}"


@MODES
def test_per_zone_nat_gateways_give_each_zone_its_own(preview):
    g = build(spec(nat_gateways="perZone"), preview=preview)
    nats = {n.name: n.urn for n in g.of_type(T_NAT)}
    assert sorted(nats) == ["app-ie-nat-0", "app-ie-nat-1", "app-ie-nat-2"]
    assert len(g.of_type(T_EIP)) == 3, "natGateways: perZone takes three Elastic IPs"
    for i in range(3):
        assert private_routes(g)[f"app-ie-private-{i}-default"] == {nats[f"app-ie-nat-{i}"]}, (
            f"private subnet {i} of app-ie must route through the NAT gateway of its own zone"
        )


def test_single_and_per_zone_keep_the_first_gateways_name():
    """Switching modes keeps app-ie-nat-0 (and its Elastic IP): only the others come and go."""
    single = {r.urn for r in graph_for(False).of_type(T_NAT)}
    per_zone = {r.urn for r in build(spec(nat_gateways="perZone")).of_type(T_NAT)}
    assert single < per_zone


# --- names carry the stack ------------------------------------------------------------------


@MODES
def test_cluster_name_kms_alias_and_subnet_tags_use_the_cloud_name(preview):
    g = build(spec(cloud_name="prod-app-ie"), preview=preview)
    assert one(g, T_CLUSTER).inputs["name"] == "prod-app-ie"
    assert one(g, "aws:kms/alias:Alias").inputs["name"] == "alias/ocm-fleet/prod-app-ie-secrets"
    for s in g.of_type(T_SUBNET):
        assert s.inputs["tags"].get("kubernetes.io/cluster/prod-app-ie") == "shared", s
    # Resource names (URNs) stay those of the entry: nothing else is renamed.
    assert one(g, T_CLUSTER).name == "app-ie-eks"


def test_iam_roles_are_auto_named_so_stacks_cannot_collide():
    for role in graph_for(False).of_type(T_ROLE):
        assert "name" not in role.inputs and "namePrefix" not in role.inputs, (
            f"{role} must be auto-named by Pulumi (a random suffix per stack), not named"
        )


# --- cluster admins from config -------------------------------------------------------------

OTHER = "arn:aws:iam::123456789012:role/ci/github-actions"
T_ENTRY = "aws:eks/accessEntry:AccessEntry"
T_ASSOC = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"


@MODES
def test_every_listed_principal_gets_an_admin_access_entry(preview):
    g = build(admins=(harness.MOCK_CALLER_ROLE, OTHER), preview=preview)
    entries = {e.inputs["principalArn"]: e for e in g.of_type(T_ENTRY)}
    assert set(entries) == {harness.MOCK_CALLER_ROLE, OTHER}
    for principal, entry in entries.items():
        (assoc,) = [a for a in g.of_type(T_ASSOC) if entry.urn in pdeps(a, "principalArn")]
        assert assoc.inputs["policyArn"].endswith("/AmazonEKSClusterAdminPolicy"), principal
        assert assoc.inputs["accessScope"] == {"type": "cluster"}, principal


def test_the_first_principal_takes_over_the_former_deployer_entry():
    """EKS refuses a second entry for one principal and Pulumi creates before it deletes: the
    entry of a stack made before eksAdminPrincipals must move, not be created anew."""
    g = build(admins=(harness.MOCK_CALLER_ROLE, OTHER))
    first = next(
        e for e in g.of_type(T_ENTRY) if e.inputs["principalArn"] == harness.MOCK_CALLER_ROLE
    )
    second = next(e for e in g.of_type(T_ENTRY) if e.inputs["principalArn"] == OTHER)
    assert [a.get("name") for a in first.options["aliases"]] == ["app-ie-deployer"], first
    assert second.options["aliases"] == [], f"{second} must be a new entry"
    assoc = next(a for a in g.of_type(T_ASSOC) if first.urn in pdeps(a, "principalArn"))
    assert [a.get("name") for a in assoc.options["aliases"]] == ["app-ie-deployer-admin"]
    for alias in [*first.options["aliases"], *assoc.options["aliases"]]:
        # An empty parentUrn without noParent is "the resource's current parent" (the SDK's
        # reading of Alias(name=...)): the EksCluster component, as the old entry had.
        assert not alias.get("noParent") and alias.get("parentUrn", "") in ("", first.parent), (
            f"alias {alias} must keep the parent the old entry had (the EksCluster component)"
        )
        assert alias.get("type", "") in ("", first.type, assoc.type), alias


def test_the_former_deployer_listed_later_gets_its_new_entry_after_the_old_one_is_gone():
    """Listed second, the former deployer's old entry is the first entry's old state with
    another principal: a replacement. It must delete first (EKS holds one entry per
    principal), and the former deployer's new entry must wait for that."""
    g = build(admins=(OTHER, harness.MOCK_CALLER_ROLE))
    entries = g.of_type(T_ENTRY)
    (first,) = [e for e in entries if e.options["aliases"]]
    assert first.inputs["principalArn"] == OTHER
    assert first.options["deleteBeforeReplace"], f"{first} must delete before it replaces"
    for other in entries:
        if other is not first:
            assert first.urn in other.dependencies, f"{other} must wait for {first}"


def test_reordering_principals_keeps_every_entrys_name():
    a = {e.urn for e in build(admins=(harness.MOCK_CALLER_ROLE, OTHER)).of_type(T_ENTRY)}
    b = {e.urn for e in build(admins=(OTHER, harness.MOCK_CALLER_ROLE)).of_type(T_ENTRY)}
    assert a == b, "an entry's name must follow its principal, not its position in the list"


@MODES
def test_a_listed_caller_runs_through(preview):
    g = build(admins=(OTHER, harness.MOCK_CALLER_ROLE), preview=preview)
    kubeconfig = g.stack_outputs["app-ie-kubeconfig"]
    assert preview or "get-token" in kubeconfig


@MODES
def test_an_unlisted_caller_gets_an_error_naming_the_key(preview):
    error = harness.failure_of(
        "from test_eks_cluster import OTHER, build\n"
        f"build(admins=(OTHER,), caller={harness.MOCK_CALLER_ROLE!r}, preview={preview})"
    )
    assert error is not None, "a run by a principal not in eksAdminPrincipals must fail"
    assert error.startswith("AdminPrincipalError: ocm-fleet:eksAdminPrincipals: this run is made")
    assert harness.MOCK_CALLER_ROLE in error and OTHER in error, error


def test_the_caller_check_compares_the_role_not_the_session():
    """The mocks answer getCallerIdentity with an STS session of a role with a path; the
    check must see the role ARN (with its path), which is what is listed."""
    code = "from test_eks_cluster import OTHER, build\nbuild(admins=(OTHER,), caller=OTHER)"
    assert harness.failure_of(code) is None


def test_the_kubernetes_provider_waits_for_the_caller_check():
    g = graph_for(False)
    provider = one(g, T_K8S)
    assert harness.is_secret(provider.wire_inputs["kubeconfig"])
    assert g.depends_on(provider, one(g, T_CLUSTER))


@MODES
def test_runs_by_two_listed_principals_declare_identical_inputs(preview):
    """CI, a laptop and a PR preview each run as another listed principal: none of them may
    change (and so replace) anything another one declared."""
    admins = (harness.MOCK_CALLER_ROLE, OTHER)
    laptop = build(admins=admins, caller=harness.MOCK_CALLER_ROLE, preview=preview)
    ci = build(admins=admins, caller=OTHER, preview=preview)
    a = {r.urn: r.wire_inputs for r in laptop.resources}
    b = {r.urn: r.wire_inputs for r in ci.resources}
    assert a.keys() == b.keys()
    assert [u for u in a if a[u] != b[u]] == [], "a run by another admin must plan no change"


@pytest.mark.parametrize(
    ("instance_type", "ami_type"),
    [
        ("a1.large", "AL2023_ARM_64_STANDARD"),
        ("a1.metal", "AL2023_ARM_64_STANDARD"),
        ("g5.xlarge", "AL2023_x86_64_NVIDIA"),
        ("g4dn.xlarge", "AL2023_x86_64_NVIDIA"),
        ("p5.48xlarge", "AL2023_x86_64_NVIDIA"),
        ("g5g.xlarge", "AL2023_ARM_64_NVIDIA"),
        ("inf2.xlarge", "AL2023_x86_64_NEURON"),
        ("trn1.2xlarge", "AL2023_x86_64_NEURON"),
        # Families whose name merely contains a g or a digit run the standard x86 AMI.
        ("m5.large", "AL2023_x86_64_STANDARD"),
        ("c5n.large", "AL2023_x86_64_STANDARD"),
    ],
)
def test_graviton_1_and_gpu_sizes_get_their_ami_type(instance_type, ami_type):
    assert ami_type_for(instance_type) == ami_type, instance_type


@pytest.mark.parametrize("size", ["g4ad.xlarge", "f1.2xlarge", "dl1.24xlarge", "p2.xlarge"])
def test_sizes_without_an_eks_ami_are_refused_by_the_config_model(size):
    raw = {
        "hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
        "clusters": [{"name": "gpu", "cloud": "aws", "region": "eu-west-1", "nodeSize": size}],
        "apiAllowedCidrs": ["203.0.113.0/24"],
        "eksAdminPrincipals": [harness.MOCK_CALLER_ROLE],
    }
    with pytest.raises(FleetConfigError, match=re.escape(f"clusters[0].nodeSize: {size!r}")):
        parse_fleet_config(raw)


# --- add-ons that follow the cluster's version ------------------------------------------------


@MODES
def test_addons_carry_the_default_version_for_the_clusters_minor(preview):
    g = graph_for(preview)
    cluster = one(g, T_CLUSTER)
    for addon_name, addon in addons(g).items():
        want = harness.mock_addon_version(addon_name, cluster.inputs["version"])
        assert addon.inputs.get("addonVersion") == want, (
            f"add-on {addon.name} must run EKS's default build for Kubernetes "
            f"{cluster.inputs['version']}, not {addon.inputs.get('addonVersion')!r}"
        )
        assert g.depends_on(addon, cluster), f"add-on {addon.name} must update after {cluster.name}"


@MODES
def test_a_kubernetes_version_change_moves_every_addon(preview):
    before = addons(graph_for(preview))
    after = addons(build(spec(kubernetes_version="1.36"), preview=preview))
    assert set(before) == set(after)
    for addon_name in before:
        old, new = (
            before[addon_name].inputs["addonVersion"],
            after[addon_name].inputs["addonVersion"],
        )
        assert new == harness.mock_addon_version(addon_name, "1.36"), f"{addon_name}: {new}"
        assert old != new, f"add-on {addon_name} must move with the cluster to 1.36"


def test_addon_configuration_is_compact_sorted_json_and_stable():
    assert compact_json({"b": "1", "a": {"d": 2, "c": [1, 2]}}) == '{"a":{"c":[1,2],"d":2},"b":"1"}'
    cni = addons(graph_for(False))["vpc-cni"]
    assert cni.inputs["configurationValues"] == '{"enableNetworkPolicy":"true"}', (
        "vpc-cni's configuration must be one canonical string (terraform-aws-eks#3380)"
    )
    assert ADDON_CONFIGURATION["vpc-cni"] == compact_json(
        json.loads(ADDON_CONFIGURATION["vpc-cni"])
    ), "re-encoding the configuration must give the same string"


# --- the control-plane log group and the upgrade policy -----------------------------------------

T_LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


@MODES
def test_the_log_group_with_its_retention_comes_before_the_cluster(preview):
    g = build(spec(log_retention_days=30), preview=preview)
    cluster, group = one(g, T_CLUSTER), one(g, T_LOG_GROUP)
    assert group.inputs["name"] == control_plane_log_group(cluster.inputs["name"]), group.inputs
    assert group.inputs["name"] == "/aws/eks/app-ie/cluster"
    assert group.inputs["retentionInDays"] == 30, f"{group.name} keeps logs as configured"
    assert g.depends_on(cluster, group), f"{cluster.name} must wait for {group.name}"
    assert not group.options["importId"], f"a new cluster's {group.name} is created, not imported"
    assert group.provider_urn == one(g, T_AWS).urn


def test_the_default_log_retention_is_ninety_days():
    assert one(graph_for(False), T_LOG_GROUP).inputs["retentionInDays"] == 90


def test_an_existing_clusters_log_group_is_imported_then_given_its_retention():
    adopting = one(build(spec(import_log_group=True)), T_LOG_GROUP)
    assert adopting.options["importId"] == "/aws/eks/app-ie/cluster", (
        "the group EKS made must be imported, since CloudWatch refuses a second of that name"
    )
    assert set(adopting.options["ignoreChanges"]) >= {"retentionInDays", "tags", "tagsAll"}, (
        "the import must ignore what EKS did not set, or it fails on the difference"
    )
    adopted = one(build(spec()), T_LOG_GROUP)
    assert not adopted.options["importId"] and not adopted.options["ignoreChanges"]
    assert adopted.inputs["retentionInDays"] == 90


@MODES
@pytest.mark.parametrize("policy", ["STANDARD", "EXTENDED"])
def test_upgrade_policy_is_set_from_config(preview, policy):
    g = build(spec(upgrade_policy=policy), preview=preview)
    assert one(g, T_CLUSTER).inputs["upgradePolicy"] == {"supportType": policy}


def test_upgrade_policy_defaults_to_standard_support():
    assert one(graph_for(False), T_CLUSTER).inputs["upgradePolicy"] == {"supportType": "STANDARD"}
