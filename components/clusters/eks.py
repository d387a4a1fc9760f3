"""An EKS cluster of the fleet, in its own VPC and region, with secure defaults."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components._kubeconfig import exec_kubeconfig
from components.clusters._base import FleetCluster
from components.config import ELASTIC_IPS, ClusterSpec

EKS_CLUSTER_TYPE = "ocm-fleet:index:EksCluster"

ZONE_COUNT = 3
"""Availability zones the VPC spans: one public and one private subnet each."""

VPC_CIDR = ipaddress.ip_network("10.0.0.0/16")
# Pods take their IPs from the private subnets (VPC CNI), hence /19s there and /24s in public.
PRIVATE_CIDRS = [str(n) for n in list(VPC_CIDR.subnets(new_prefix=19))[:ZONE_COUNT]]
PUBLIC_CIDRS = [
    str(n) for n in list(ipaddress.ip_network("10.0.96.0/19").subnets(new_prefix=24))[:ZONE_COUNT]
]

CLUSTER_LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

CLUSTER_POLICIES = ["AmazonEKSClusterPolicy"]
NODE_POLICIES = [
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
]
EBS_CSI_POLICY = "service-role/AmazonEBSCSIDriverPolicy"
EBS_CSI_NAMESPACE = "kube-system"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
CLUSTER_ADMIN_ACCESS_POLICY = "AmazonEKSClusterAdminPolicy"

# Daemon add-ons that nodes need to become Ready (network, service routing, pod credentials):
# created before the node group because EKS installs no self-managed copies of them here.
ADDONS_BEFORE_NODES = ["vpc-cni", "kube-proxy", "eks-pod-identity-agent"]


def compact_json(value: Any) -> str:
    """JSON with sorted keys and no spaces. terraform-provider-aws stores an add-on's
    configuration_values as the string it was given and compares strings, not JSON
    (terraform-aws-modules/terraform-aws-eks#3380): one canonical spelling keeps the diff empty
    whatever the dict's order or the encoder's spacing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


ADDON_CONFIGURATION = {
    # The VPC CNI enforces NetworkPolicies only with its network policy agent, which is off by
    # default (EKS user guide, "Configure your cluster for Kubernetes network policies"). The
    # add-on's schema takes the flag as the string "true".
    "vpc-cni": compact_json({"enableNetworkPolicy": "true"}),
}
# Add-ons with Deployments: they only become healthy once nodes can run them.
ADDONS_AFTER_NODES = ["coredns", "aws-ebs-csi-driver"]

ROOT_VOLUME_GIB = 50
# AL2023 EKS-optimized AMIs boot from /dev/xvda.
ROOT_DEVICE = "/dev/xvda"
IMDS_HOP_LIMIT = 2
"""Hops for IMDSv2 responses: 2, so that pods on the node network can still reach IMDS."""

_GRAVITON = re.compile(r"^([a-z]+\d+g[a-z]*|a1)\.")
# Accelerated families and the AL2023 AMI type that carries their drivers (EKS user guide,
# "Amazon EKS optimized accelerated Amazon Linux AMIs"; EKS API Nodegroup amiType). Families
# with no AL2023 AMI type are refused by the config model (config.EKS_UNSUPPORTED_FAMILIES).
_NVIDIA = re.compile(
    r"^(g4dn|g5|g6|g6e|g6f|gr6|gr6f|g7e|p3|p3dn|p4d|p4de|p5|p5e|p5en|p6[a-z0-9-]*)\."
)
_NVIDIA_ARM = re.compile(r"^g5g\.")
_NEURON = re.compile(r"^(inf1|inf2|trn1|trn1n|trn2|trn2u)\.")


def ami_type_for(instance_type: str) -> str:
    """The EKS-optimized AL2023 AMI type for an instance type: NVIDIA for NVIDIA GPU families
    (g5, p5...; g5g on ARM), Neuron for Inferentia and Trainium, ARM64 for Graviton (a1, m7g...),
    else x86_64 standard."""
    size = instance_type.strip().lower()
    if _NVIDIA_ARM.match(size):
        return "AL2023_ARM_64_NVIDIA"
    if _NVIDIA.match(size):
        return "AL2023_x86_64_NVIDIA"
    if _NEURON.match(size):
        return "AL2023_x86_64_NEURON"
    if _GRAVITON.match(size):
        return "AL2023_ARM_64_STANDARD"
    return "AL2023_x86_64_STANDARD"


def control_plane_log_group(cloud_name: str) -> str:
    """The log group EKS writes control-plane logs to; it creates it itself, with logs kept
    forever, unless the group exists (EKS user guide, "Send control plane logs to CloudWatch
    Logs")."""
    return f"/aws/eks/{cloud_name}/cluster"


def _trust_policy(service: str, actions: list[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": actions if len(actions) > 1 else actions[0],
                }
            ],
        },
        sort_keys=True,
    )


class AdminPrincipalError(pulumi.RunError):
    """The identity running Pulumi is not one of `eksAdminPrincipals`."""


def access_entry_role(principal_arn: str) -> str:
    """The role part of an admin access entry's resource name: stable for a principal wherever
    it appears in the list, so reordering `eksAdminPrincipals` changes nothing."""
    return f"admin-{hashlib.sha256(principal_arn.encode()).hexdigest()[:8]}"


def check_caller_is_admin(issuer_arn: str, principals: Sequence[str]) -> str:
    """Refuse to go on as an identity the clusters do not admit: every object on them would
    fail with 401 Unauthorized, deep into the run, instead of with this message."""
    if issuer_arn not in principals:
        raise AdminPrincipalError(
            f"ocm-fleet:eksAdminPrincipals: this run is made by {issuer_arn}, which is not "
            f"listed ({', '.join(principals)}), so the EKS clusters would refuse it (401). "
            "Run as one of the listed principals, or add this one to ocm-fleet:"
            "eksAdminPrincipals in a run by a listed one"
        )
    return issuer_arn


@dataclass(frozen=True, kw_only=True)
class EksClusterArgs:
    """Inputs of an EksCluster."""

    spec: ClusterSpec
    """The validated cluster config (cloud `aws`): name, region, node count and size, version,
    NAT gateway mode and the EKS cluster name (`spec.cloud_name`)."""
    api_allowed_cidrs: tuple[str, ...]
    """CIDRs allowed to reach the public API endpoint; everything else is refused."""
    admin_principals: tuple[str, ...] = field(default=())
    """IAM role or user ARNs given cluster admin through access entries (`eksAdminPrincipals`).
    The first takes over the access entry that stacks from before this key gave the caller."""
    cloud_name: pulumi.Input[str] | None = None
    """The EKS cluster name once checked against the stack's history (see
    `lifecycle.previous_run`); default `spec.cloud_name`."""
    log_group_checked: pulumi.Input[bool] | None = None
    """`spec.import_log_group` once checked against the stack's history (see
    `lifecycle.previous_run.checked_log_group`); the log group waits for it."""


@dataclass
class _Network:
    vpc: aws.ec2.Vpc
    private_subnet_ids: list[pulumi.Output[str]]
    eips: list[aws.ec2.Eip]
    carriers: list[pulumi.Resource]
    """Everything that carries the nodes' traffic: gateways, routes, associations."""


@dataclass
class _Identity:
    cluster_role: aws.iam.Role
    cluster_role_ready: list[pulumi.Resource]
    node_role: aws.iam.Role
    node_role_ready: list[pulumi.Resource]
    key: aws.kms.Key


class EksCluster(FleetCluster):
    """An EKS cluster in its own VPC, with an explicit AWS provider for its region.

    Creates:
    - an `aws.Provider` for `spec.region`, tagging every resource with the cluster's name;
    - a VPC over three availability zones: public and private subnets (with the ELB role tags),
      an internet gateway, NAT gateways with Elastic IPs (one, or one per zone with
      `natGateways: perZone`), and route tables;
    - IAM roles for the control plane and the nodes, with only the AWS managed policies EKS
      requires;
    - a KMS key (rotated yearly) and alias for envelope encryption of Kubernetes Secrets;
    - the control-plane log group `/aws/eks/<cloud name>/cluster`, kept `logRetentionDays`,
      before the cluster, so that EKS writes into it and destroy removes it;
    - the EKS cluster, named `spec.cloud_name` (the stack and the entry's name): access entries
      only (API mode), all control-plane log types, private endpoint on, public endpoint
      limited to `api_allowed_cidrs`, the configured upgrade policy (`STANDARD` by default);
    - an access entry with cluster-admin for each of `admin_principals`;
    - a managed node group in the private subnets, through a launch template that requires
      IMDSv2 and encrypts the root volume;
    - the add-ons vpc-cni, kube-proxy, eks-pod-identity-agent, coredns and aws-ebs-csi-driver,
      each at EKS's default version for the cluster's Kubernetes version, the last with its IAM
      role through EKS Pod Identity (volume claims wait for it: `storage_dependencies`);
    - the Kubernetes provider, from an `aws eks get-token` kubeconfig, usable only once the
      identity running Pulumi is known to be one of `admin_principals`.
    """

    vpc_id: pulumi.Output[str]
    """The cluster's VPC."""
    cluster_name: pulumi.Output[str]
    """The EKS cluster name (`spec.cloud_name`)."""
    log_group_name: pulumi.Output[str]
    """The control-plane log group, now in the program."""
    aws_provider: aws.Provider
    """The AWS provider for the cluster's region; use it for any further AWS resource."""

    def __init__(
        self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(EKS_CLUSTER_TYPE, name, None, opts)
        self.spec = args.spec
        self._name = name
        self._tags = {"ocm-fleet/cluster": name, "ManagedBy": "pulumi"}
        self.aws_provider = aws.Provider(
            f"{name}-aws",
            region=args.spec.region,
            default_tags={"tags": self._tags},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._invoke = pulumi.InvokeOutputOptions(parent=self, provider=self.aws_provider)
        self._partition = aws.get_partition_output(opts=self._invoke).partition

        network = self._network()
        identity = self._identity_and_encryption()
        log_group = self._control_plane_logs(args)
        cluster = self._control_plane(args, network, identity, log_group)
        admins_ready, caller = self._admins(args, cluster)
        nodes_ready, storage = self._nodes_and_addons(cluster, network, identity)

        self.vpc_id = network.vpc.id
        self.cluster_name = cluster.name
        self.log_group_name = log_group.name
        ca_data = cluster.certificate_authority.apply(lambda ca: ca.data)
        token_args = ["--region", args.spec.region, "--output", "json"]
        kubeconfig = pulumi.Output.all(cluster.endpoint, ca_data, cluster.name, caller).apply(
            lambda v: exec_kubeconfig(
                name=v[2],
                server=v[0],
                ca_data=v[1],
                command="aws",
                args=["eks", "get-token", "--cluster-name", v[2], *token_args],
            )
        )
        egress_cidrs = pulumi.Output.all(*[e.public_ip for e in network.eips]).apply(
            lambda ips: sorted(f"{ip}/32" for ip in ips)
        )
        self._finish(
            kubeconfig=kubeconfig,
            api_server_url=cluster.endpoint,
            ca_data=ca_data,
            egress_cidrs=egress_cidrs,
            provider_depends_on=[*nodes_ready, *admins_ready],
            storage_depends_on=storage,
        )

    def _child(self, **kwargs: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, provider=self.aws_provider, **kwargs)

    def _managed_policy(self, policy: str) -> pulumi.Output[str]:
        return pulumi.Output.concat("arn:", self._partition, ":iam::aws:policy/", policy)

    def _network(self) -> _Network:
        """VPC, subnets over three zones, internet gateway, NAT gateways and routes."""
        name, child, spec = self._name, self._child, self.spec
        zones = aws.get_availability_zones_output(state="available", opts=self._invoke).names
        # The zone count is fixed so that preview builds the same graph before the zone list
        # is known; a region with fewer zones reuses them round-robin.
        zone_names = [
            zones.apply(lambda names, i=i: names[i % len(names)]) for i in range(ZONE_COUNT)
        ]
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(VPC_CIDR),
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": f"{name}-vpc"},
            opts=child(),
        )
        cluster_tag = {f"kubernetes.io/cluster/{spec.cloud_name}": "shared"}
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags={"Name": f"{name}-igw"}, opts=child()
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=vpc.id, tags={"Name": f"{name}-public"}, opts=child()
        )
        # Nothing references routes, NAT gateways or associations by value, so without explicit
        # edges destroy would remove them first and cut the agents off the hub while
        # ManifestWorks still wait for them.
        carriers: list[pulumi.Resource] = [igw]
        carriers.append(
            aws.ec2.Route(
                f"{name}-public-default",
                route_table_id=public_rt.id,
                destination_cidr_block="0.0.0.0/0",
                gateway_id=igw.id,
                opts=child(),
            )
        )
        public_subnets, private_subnets = [], []
        for i in range(ZONE_COUNT):
            public = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=PUBLIC_CIDRS[i],
                availability_zone=zone_names[i],
                # Only NAT gateways and load balancers live here; neither needs this.
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-public-{i}", "kubernetes.io/role/elb": "1", **cluster_tag},
                opts=child(),
            )
            carriers.append(
                aws.ec2.RouteTableAssociation(
                    f"{name}-public-{i}",
                    subnet_id=public.id,
                    route_table_id=public_rt.id,
                    opts=child(),
                )
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=PRIVATE_CIDRS[i],
                availability_zone=zone_names[i],
                tags={
                    "Name": f"{name}-private-{i}",
                    "kubernetes.io/role/internal-elb": "1",
                    **cluster_tag,
                },
                opts=child(),
            )
            public_subnets.append(public)
            private_subnets.append(private)
            carriers += [public, private]

        eips, nat_carriers = self._nat_gateways_and_routes(
            vpc, igw, public_subnets, private_subnets
        )
        return _Network(
            vpc=vpc,
            private_subnet_ids=[s.id for s in private_subnets],
            eips=eips,
            carriers=carriers + nat_carriers,
        )

    def _nat_gateways_and_routes(
        self,
        vpc: aws.ec2.Vpc,
        igw: aws.ec2.InternetGateway,
        public_subnets: list[aws.ec2.Subnet],
        private_subnets: list[aws.ec2.Subnet],
    ) -> tuple[list[aws.ec2.Eip], list[pulumi.Resource]]:
        """NAT gateways with their Elastic IPs, and each private subnet's default route."""
        name, child, spec = self._name, self._child, self.spec
        # `single`: one gateway (and Elastic IP) in the first zone serves all three; losing
        # that zone cuts the others off the internet. `perZone`: a gateway in every zone.
        nat_count = ELASTIC_IPS[spec.nat_gateways]
        eips, nats = [], []
        for i in range(nat_count):
            eip = aws.ec2.Eip(
                f"{name}-nat-{i}", domain="vpc", tags={"Name": f"{name}-nat-{i}"}, opts=child()
            )
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{i}",
                allocation_id=eip.allocation_id,
                subnet_id=public_subnets[i].id,
                tags={"Name": f"{name}-nat-{i}"},
                # The gateway cannot route until the VPC has its internet gateway.
                opts=child(depends_on=[igw]),
            )
            eips.append(eip)
            nats.append(nat)
        carriers: list[pulumi.Resource] = list(nats)
        for i, private in enumerate(private_subnets):
            private_rt = aws.ec2.RouteTable(
                f"{name}-private-{i}-rt",
                vpc_id=vpc.id,
                tags={"Name": f"{name}-private-{i}"},
                opts=child(),
            )
            carriers.append(
                aws.ec2.Route(
                    f"{name}-private-{i}-default",
                    route_table_id=private_rt.id,
                    destination_cidr_block="0.0.0.0/0",
                    nat_gateway_id=nats[i % nat_count].id,
                    opts=child(),
                )
            )
            carriers.append(
                aws.ec2.RouteTableAssociation(
                    f"{name}-private-{i}",
                    subnet_id=private.id,
                    route_table_id=private_rt.id,
                    opts=child(),
                )
            )
        return eips, carriers

    def _service_role(self, role: str, service: str, description: str, policies: list[str]):
        """A role the AWS service assumes, with exactly the given managed policies."""
        name, child = self._name, self._child
        iam_role = aws.iam.Role(
            f"{name}-{role}-role",
            assume_role_policy=_trust_policy(service, ["sts:AssumeRole"]),
            description=description,
            opts=child(),
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-{role}-{policy}",
                role=iam_role.name,
                policy_arn=self._managed_policy(policy),
                opts=child(),
            )
            for policy in policies
        ]
        return iam_role, attachments

    def _identity_and_encryption(self) -> _Identity:
        """Control-plane and node roles; the KMS key and alias for Secrets encryption."""
        name, child, spec = self._name, self._child, self.spec
        cluster_role, cluster_attachments = self._service_role(
            "cluster",
            "eks.amazonaws.com",
            f"EKS control plane of the ocm-fleet cluster {name}",
            CLUSTER_POLICIES,
        )
        node_role, node_attachments = self._service_role(
            "node", "ec2.amazonaws.com", f"EKS nodes of the ocm-fleet cluster {name}", NODE_POLICIES
        )
        key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"Envelope encryption of Kubernetes Secrets in the EKS cluster {name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=child(),
        )
        # Alias names are unique per account and region: the cluster's name carries the stack.
        aws.kms.Alias(
            f"{name}-secrets-key",
            name=f"alias/ocm-fleet/{spec.cloud_name}-secrets",
            target_key_id=key.key_id,
            opts=child(),
        )
        # The control plane uses the key with its own role; scoped to this one key.
        actions = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:ListGrants"]
        cluster_kms = aws.iam.RolePolicy(
            f"{name}-cluster-encryption",
            role=cluster_role.name,
            policy=key.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": arn}],
                    },
                    sort_keys=True,
                )
            ),
            opts=child(),
        )
        return _Identity(
            cluster_role=cluster_role,
            cluster_role_ready=[*cluster_attachments, cluster_kms],
            node_role=node_role,
            node_role_ready=node_attachments,
            key=key,
        )

    def _control_plane_logs(self, args: EksClusterArgs) -> aws.cloudwatch.LogGroup:
        """The control-plane log group, with the configured retention.

        A cluster from before the group was in the program already has it (EKS made it on the
        first log): one run with `importLogGroup` imports it, ignoring the retention and tags
        EKS did not set, since an import whose inputs differ from the group fails; the next
        run, without the key, applies them in place.
        """
        spec = self.spec
        group = control_plane_log_group(spec.cloud_name)
        name = args.cloud_name if args.cloud_name is not None else spec.cloud_name
        checked = args.log_group_checked if args.log_group_checked is not None else False
        adopt = spec.import_log_group
        return aws.cloudwatch.LogGroup(
            f"{self._name}-control-plane-logs",
            # Through the checks: nothing is created or imported before they pass.
            name=pulumi.Output.all(name, checked).apply(lambda v: control_plane_log_group(v[0])),
            retention_in_days=spec.log_retention_days,
            opts=self._child(
                import_=group if adopt else None,
                ignore_changes=["retentionInDays", "tags", "tagsAll"] if adopt else None,
            ),
        )

    def _control_plane(
        self,
        args: EksClusterArgs,
        network: _Network,
        identity: _Identity,
        log_group: aws.cloudwatch.LogGroup,
    ) -> aws.eks.Cluster:
        """The EKS cluster: API auth mode, encrypted Secrets, logs, a narrowed public endpoint."""
        spec = self.spec
        return aws.eks.Cluster(
            f"{self._name}-eks",
            # Set, not auto-named, so that the subnets' kubernetes.io/cluster tag matches before
            # the cluster exists. EKS names are unique per account and region, hence the stack.
            name=args.cloud_name if args.cloud_name is not None else spec.cloud_name,
            version=spec.kubernetes_version,
            role_arn=identity.cluster_role.arn,
            access_config={
                "authentication_mode": "API",
                # Admin access is the explicit access entries below, so it is visible and can be
                # revoked, rather than an invisible grant to whoever created the cluster.
                "bootstrap_cluster_creator_admin_permissions": False,
            },
            # Every add-on is an EKS managed add-on below, so none is installed unmanaged.
            bootstrap_self_managed_addons=False,
            encryption_config={"provider": {"key_arn": identity.key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=CLUSTER_LOG_TYPES,
            # Set, because unset EKS moves a cluster whose version leaves standard support to
            # EXTENDED, billed at six times the standard hourly rate (EKS user guide, "Cluster
            # upgrade policy"); scripts/estimate.py shows that price when it is chosen.
            upgrade_policy={"support_type": spec.upgrade_policy},
            vpc_config={
                "subnet_ids": network.private_subnet_ids,
                "endpoint_private_access": True,
                "endpoint_public_access": True,
                "public_access_cidrs": list(args.api_allowed_cidrs),
            },
            # The log group first: EKS would otherwise create it, outside the program.
            opts=self._child(depends_on=[*identity.cluster_role_ready, log_group]),
        )

    def _admins(
        self, args: EksClusterArgs, cluster: aws.eks.Cluster
    ) -> tuple[list[pulumi.Resource], pulumi.Output[str]]:
        """An access entry with cluster admin per configured principal, and the check that the
        identity running Pulumi is one of them.

        Stacks from before `eksAdminPrincipals` have one entry, `{name}-deployer`, for whoever
        ran Pulumi. EKS refuses a second entry for a principal, and Pulumi creates before it
        deletes, so a new resource for that principal would fail. The first listed principal's
        entry therefore takes over the old resource through aliases: listed first, the former
        deployer keeps its entry untouched. Listed later, the old entry's principal changes,
        which replaces it; that replacement deletes first, and every other entry waits for it,
        so the former deployer's new entry is created only once the old one is gone.
        """
        name, child = self._name, self._child
        admin_policy = pulumi.Output.concat(
            "arn:",
            self._partition,
            ":eks::aws:cluster-access-policy/",
            CLUSTER_ADMIN_ACCESS_POLICY,
        )
        ready: list[pulumi.Resource] = []
        first: aws.eks.AccessEntry | None = None
        for i, principal in enumerate(args.admin_principals):
            role = access_entry_role(principal)
            before = [pulumi.Alias(name=f"{name}-deployer")] if i == 0 else []
            entry = aws.eks.AccessEntry(
                f"{name}-{role}",
                cluster_name=cluster.name,
                principal_arn=principal,
                type="STANDARD",
                opts=child(aliases=before, delete_before_replace=True)
                if first is None
                else child(depends_on=[first]),
            )
            first = first or entry
            before = [pulumi.Alias(name=f"{name}-deployer-admin")] if i == 0 else []
            ready.append(
                aws.eks.AccessPolicyAssociation(
                    f"{name}-{role}-cluster-admin",
                    cluster_name=cluster.name,
                    principal_arn=entry.principal_arn,
                    policy_arn=admin_policy,
                    access_scope={"type": "cluster"},
                    opts=child(aliases=before),
                )
            )
        # For an assumed role, the issuer is the role (with its path), not the session.
        caller = aws.get_caller_identity_output(opts=self._invoke)
        issuer = aws.iam.get_session_context_output(arn=caller.arn, opts=self._invoke).issuer_arn
        principals = args.admin_principals
        return ready, issuer.apply(lambda arn: check_caller_is_admin(arn, principals))

    def _addon(self, cluster: aws.eks.Cluster, addon_name: str, **kwargs: Any) -> aws.eks.Addon:
        depends_on = kwargs.pop("depends_on", [])
        deleted_with = kwargs.pop("deleted_with", None)
        # EKS's default version of the add-on for the cluster's Kubernetes version (most_recent
        # false: terraform-provider-aws internal/service/eks/find.go,
        # FindAddonVersionByAddonNameAndKubernetesVersion, takes the version whose
        # compatibility EKS marks DefaultVersion). Unset, addon_version is Optional+Computed
        # and EKS never moves an add-on when the cluster changes minor (EKS user guide,
        # "Update an Amazon EKS add-on"), so after an upgrade the add-ons would stay on builds
        # for the old minor. The version is asked
        # for the configured minor, known in preview; each add-on updates after the cluster it
        # names, the node add-ons before the node group that waits for them.
        version = aws.eks.get_addon_version_output(
            addon_name=addon_name,
            kubernetes_version=self.spec.kubernetes_version,
            most_recent=False,
            opts=self._invoke,
        ).version
        return aws.eks.Addon(
            f"{self._name}-{addon_name}",
            cluster_name=cluster.name,
            addon_name=addon_name,
            addon_version=version,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            opts=self._child(depends_on=depends_on, deleted_with=deleted_with),
            **kwargs,
        )

    def _nodes_and_addons(
        self, cluster: aws.eks.Cluster, network: _Network, identity: _Identity
    ) -> tuple[list[pulumi.Resource], list[pulumi.Resource]]:
        """Add-ons nodes need, the launch template and node group, then the other add-ons.
        Returns what the Kubernetes provider must wait for, and what volumes must wait for.

        The provider waits for CoreDNS: the OCM agents reach the hub by name, and in reverse
        CoreDNS must outlive them while they remove what their ManifestWorks applied. It does
        not wait for the EBS CSI add-on's rollout (nothing the program puts on an app cluster
        claims a volume; a claim that does depends on `storage_dependencies`), only for the
        driver's IAM role and pod identity, API calls made while the control plane is created.
        The add-on itself is deleted with the cluster (`deleted_with`): on destroy it is not
        removed before the cluster, so it outlives every object on the cluster as it did when
        the provider depended on it."""
        name, child, spec = self._name, self._child, self.spec
        before_nodes = {
            a: self._addon(cluster, a, configuration_values=ADDON_CONFIGURATION.get(a))
            for a in ADDONS_BEFORE_NODES
        }
        launch_template = aws.ec2.LaunchTemplate(
            f"{name}-nodes",
            description=f"Nodes of the EKS cluster {name}",
            update_default_version=True,
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": IMDS_HOP_LIMIT,
                "instance_metadata_tags": "disabled",
            },
            block_device_mappings=[
                {
                    "device_name": ROOT_DEVICE,
                    "ebs": {
                        "volume_size": ROOT_VOLUME_GIB,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            # The provider's default tags stop at the template; these reach instances and disks.
            tag_specifications=[
                {"resource_type": kind, "tags": {**self._tags, "Name": f"{name}-node"}}
                for kind in ("instance", "volume", "network-interface")
            ],
            opts=child(),
        )
        # No node_group_name: Pulumi auto-names the group, so a change that replaces it (see
        # node_pool_changes.py) creates the new group under a new name before deleting the old.
        node_group = aws.eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=cluster.name,
            version=cluster.version,
            node_role_arn=identity.node_role.arn,
            subnet_ids=network.private_subnet_ids,
            ami_type=ami_type_for(spec.node_size),
            instance_types=[spec.node_size],
            launch_template={
                "id": launch_template.id,
                "version": launch_template.latest_version.apply(str),
            },
            # max is one above desired: room for a replacement node during repairs and
            # rolling updates, which replace one node at a time.
            scaling_config={
                "desired_size": spec.node_count,
                "min_size": spec.node_count,
                "max_size": spec.node_count + 1,
            },
            update_config={"max_unavailable": 1},
            opts=child(
                depends_on=[
                    *identity.node_role_ready,
                    *before_nodes.values(),
                    *network.carriers,
                ]
            ),
        )
        coredns = self._addon(cluster, "coredns", depends_on=[node_group])
        ebs_csi, ebs_csi_identity = self._storage(
            cluster, node_group, before_nodes["eks-pod-identity-agent"]
        )
        return [node_group, coredns, *ebs_csi_identity], [ebs_csi]

    def _storage(
        self,
        cluster: aws.eks.Cluster,
        node_group: aws.eks.NodeGroup,
        pod_identity_agent: aws.eks.Addon,
    ) -> tuple[aws.eks.Addon, list[pulumi.Resource]]:
        """The EBS CSI driver add-on, and its IAM role, policy and pod identity (EKS Pod
        Identity)."""
        name, child = self._name, self._child
        ebs_csi_role = aws.iam.Role(
            f"{name}-ebs-csi-role",
            assume_role_policy=_trust_policy(
                "pods.eks.amazonaws.com", ["sts:AssumeRole", "sts:TagSession"]
            ),
            description=f"EBS CSI controller of the EKS cluster {name} (EKS Pod Identity)",
            opts=child(),
        )
        ebs_csi_policy = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi-AmazonEBSCSIDriverPolicy",
            role=ebs_csi_role.name,
            policy_arn=self._managed_policy(EBS_CSI_POLICY),
            opts=child(),
        )
        ebs_csi_identity = aws.eks.PodIdentityAssociation(
            f"{name}-ebs-csi",
            cluster_name=cluster.name,
            namespace=EBS_CSI_NAMESPACE,
            service_account=EBS_CSI_SERVICE_ACCOUNT,
            role_arn=ebs_csi_role.arn,
            opts=child(depends_on=[ebs_csi_policy]),
        )
        # The controller must find its credentials on first start: the association and the
        # pod identity agent come first.
        addon = self._addon(
            cluster,
            "aws-ebs-csi-driver",
            depends_on=[node_group, ebs_csi_identity, pod_identity_agent],
            deleted_with=cluster,
        )
        return addon, [ebs_csi_role, ebs_csi_policy, ebs_csi_identity]
