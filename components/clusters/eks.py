"""An EKS cluster of the fleet, in its own VPC and region, with secure defaults."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components._kubeconfig import exec_kubeconfig
from components.clusters._base import FleetCluster
from components.config import ClusterSpec

EKS_CLUSTER_TYPE = "ocm-fleet:index:EksCluster"

ZONE_COUNT = 3
"""Availability zones the VPC spans: one public subnet, private subnet and NAT gateway each."""

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
ADDON_CONFIGURATION = {
    # The VPC CNI enforces NetworkPolicies only with its network policy agent, which is off by
    # default (EKS user guide, "Configure your cluster for Kubernetes network policies"). The
    # add-on's schema takes the flag as the string "true".
    "vpc-cni": json.dumps({"enableNetworkPolicy": "true"}),
}
# Add-ons with Deployments: they only become healthy once nodes can run them.
ADDONS_AFTER_NODES = ["coredns", "aws-ebs-csi-driver"]

ROOT_VOLUME_GIB = 50
# AL2023 EKS-optimized AMIs boot from /dev/xvda.
ROOT_DEVICE = "/dev/xvda"
IMDS_HOP_LIMIT = 2
"""Hops for IMDSv2 responses: 2, so that pods on the node network can still reach IMDS."""

_GRAVITON = re.compile(r"^[a-z]+\d+g[a-z]*\.")


def ami_type_for(instance_type: str) -> str:
    """The EKS-optimized AL2023 AMI type for an instance type: ARM64 for Graviton (m7g...)."""
    if _GRAVITON.match(instance_type):
        return "AL2023_ARM_64_STANDARD"
    return "AL2023_x86_64_STANDARD"


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


@dataclass(frozen=True, kw_only=True)
class EksClusterArgs:
    """Inputs of an EksCluster."""

    spec: ClusterSpec
    """The validated cluster config (cloud `aws`): name, region, node count and size, version."""
    api_allowed_cidrs: tuple[str, ...]
    """CIDRs allowed to reach the public API endpoint; everything else is refused."""


class EksCluster(FleetCluster):
    """An EKS cluster in its own VPC, with an explicit AWS provider for its region.

    Creates:
    - an `aws.Provider` for `spec.region`, tagging every resource with the cluster's name;
    - a VPC over three availability zones: public and private subnets (with the ELB role tags),
      an internet gateway, one NAT gateway with an Elastic IP per zone, and route tables;
    - IAM roles for the control plane and the nodes, with only the AWS managed policies EKS
      requires;
    - a KMS key (rotated yearly) and alias for envelope encryption of Kubernetes Secrets;
    - the EKS cluster: access entries only (API mode), all control-plane log types, private
      endpoint on, public endpoint limited to `api_allowed_cidrs`;
    - an access entry with cluster-admin for the IAM principal running Pulumi;
    - a managed node group in the private subnets, through a launch template that requires
      IMDSv2 and encrypts the root volume;
    - the add-ons vpc-cni, kube-proxy, eks-pod-identity-agent, coredns and aws-ebs-csi-driver,
      the last with its IAM role through EKS Pod Identity;
    - the Kubernetes provider, from an `aws eks get-token` kubeconfig.
    """

    vpc_id: pulumi.Output[str]
    """The cluster's VPC."""
    cluster_name: pulumi.Output[str]
    """The EKS cluster name (equal to `spec.name`)."""
    aws_provider: aws.Provider
    """The AWS provider for the cluster's region; use it for any further AWS resource."""

    def __init__(
        self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(EKS_CLUSTER_TYPE, name, None, opts)
        self.spec = args.spec
        spec = args.spec
        tags = {"ocm-fleet/cluster": name, "ManagedBy": "pulumi"}

        self.aws_provider = aws.Provider(
            f"{name}-aws",
            region=spec.region,
            default_tags={"tags": tags},
            opts=pulumi.ResourceOptions(parent=self),
        )

        def child(**kwargs: Any) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=self.aws_provider, **kwargs)

        invoke = pulumi.InvokeOutputOptions(parent=self, provider=self.aws_provider)
        partition = aws.get_partition_output(opts=invoke).partition

        def managed_policy(policy: str) -> pulumi.Output[str]:
            return pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", policy)

        # --- Network -------------------------------------------------------------------------
        zones = aws.get_availability_zones_output(state="available", opts=invoke).names
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
        cluster_tag = {f"kubernetes.io/cluster/{name}": "shared"}
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags={"Name": f"{name}-igw"}, opts=child()
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=vpc.id, tags={"Name": f"{name}-public"}, opts=child()
        )
        # Everything that carries the nodes' traffic. Nothing references routes, NAT gateways or
        # associations by value, so without explicit edges destroy would remove them first and
        # cut the agents off the hub while ManifestWorks still wait for them.
        network: list[pulumi.Resource] = [igw]
        public_default = aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=child(),
        )
        network.append(public_default)

        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        eips: list[aws.ec2.Eip] = []
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
            public_association = aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=public.id, route_table_id=public_rt.id, opts=child()
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
            eip = aws.ec2.Eip(
                f"{name}-nat-{i}", domain="vpc", tags={"Name": f"{name}-nat-{i}"}, opts=child()
            )
            # A NAT gateway per zone: losing one zone does not cut the others off the internet.
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{i}",
                allocation_id=eip.allocation_id,
                subnet_id=public.id,
                tags={"Name": f"{name}-nat-{i}"},
                # The gateway cannot route until the VPC has its internet gateway.
                opts=child(depends_on=[igw]),
            )
            private_rt = aws.ec2.RouteTable(
                f"{name}-private-{i}-rt",
                vpc_id=vpc.id,
                tags={"Name": f"{name}-private-{i}"},
                opts=child(),
            )
            private_default = aws.ec2.Route(
                f"{name}-private-{i}-default",
                route_table_id=private_rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat.id,
                opts=child(),
            )
            private_association = aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}",
                subnet_id=private.id,
                route_table_id=private_rt.id,
                opts=child(),
            )
            network += [public, public_association, nat, private_default, private_association]
            public_subnets.append(public)
            private_subnets.append(private)
            eips.append(eip)
        private_subnet_ids = [s.id for s in private_subnets]

        # --- IAM -----------------------------------------------------------------------------
        def service_role(role: str, service: str, description: str, policies: list[str]):
            """A role the AWS service assumes, with exactly the given managed policies."""
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
                    policy_arn=managed_policy(policy),
                    opts=child(),
                )
                for policy in policies
            ]
            return iam_role, attachments

        cluster_role, cluster_attachments = service_role(
            "cluster",
            "eks.amazonaws.com",
            f"EKS control plane of the ocm-fleet cluster {name}",
            CLUSTER_POLICIES,
        )
        node_role, node_attachments = service_role(
            "node", "ec2.amazonaws.com", f"EKS nodes of the ocm-fleet cluster {name}", NODE_POLICIES
        )

        # --- Secrets encryption --------------------------------------------------------------
        key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"Envelope encryption of Kubernetes Secrets in the EKS cluster {name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=child(),
        )
        aws.kms.Alias(
            f"{name}-secrets-key",
            name=f"alias/ocm-fleet/{name}-secrets",
            target_key_id=key.key_id,
            opts=child(),
        )
        # The control plane uses the key with its own role; scoped to this one key.
        cluster_kms = aws.iam.RolePolicy(
            f"{name}-cluster-encryption",
            role=cluster_role.name,
            policy=key.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "kms:Decrypt",
                                    "kms:DescribeKey",
                                    "kms:Encrypt",
                                    "kms:ListGrants",
                                ],
                                "Resource": arn,
                            }
                        ],
                    },
                    sort_keys=True,
                )
            ),
            opts=child(),
        )

        # --- Control plane -------------------------------------------------------------------
        cluster = aws.eks.Cluster(
            f"{name}-eks",
            # Named after the fleet cluster, so the subnets' kubernetes.io/cluster tag matches
            # before the cluster exists. One cluster of that name per account and region.
            name=name,
            version=spec.kubernetes_version,
            role_arn=cluster_role.arn,
            access_config={
                "authentication_mode": "API",
                # Admin access is the explicit access entry below, so it is visible and can be
                # revoked, rather than an invisible grant to whoever created the cluster.
                "bootstrap_cluster_creator_admin_permissions": False,
            },
            # Every add-on is an EKS managed add-on below, so none is installed unmanaged.
            bootstrap_self_managed_addons=False,
            encryption_config={"provider": {"key_arn": key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=CLUSTER_LOG_TYPES,
            vpc_config={
                "subnet_ids": private_subnet_ids,
                "endpoint_private_access": True,
                "endpoint_public_access": True,
                "public_access_cidrs": list(args.api_allowed_cidrs),
            },
            opts=child(depends_on=[*cluster_attachments, cluster_kms]),
        )

        # The principal Pulumi runs as; for an assumed role that is the role, not the session.
        caller = aws.get_caller_identity_output(opts=invoke)
        deployer_arn = aws.iam.get_session_context_output(arn=caller.arn, opts=invoke).issuer_arn
        deployer = aws.eks.AccessEntry(
            f"{name}-deployer",
            cluster_name=cluster.name,
            principal_arn=deployer_arn,
            type="STANDARD",
            opts=child(),
        )
        deployer_admin = aws.eks.AccessPolicyAssociation(
            f"{name}-deployer-admin",
            cluster_name=cluster.name,
            principal_arn=deployer.principal_arn,
            policy_arn=pulumi.Output.concat(
                "arn:", partition, ":eks::aws:cluster-access-policy/", CLUSTER_ADMIN_ACCESS_POLICY
            ),
            access_scope={"type": "cluster"},
            opts=child(),
        )

        def addon(addon_name: str, **kwargs: Any) -> aws.eks.Addon:
            depends_on = kwargs.pop("depends_on", [])
            # No addon_version: EKS installs its default for the cluster's Kubernetes version,
            # and a new add-on release does not show up as a diff on the next run.
            return aws.eks.Addon(
                f"{name}-{addon_name}",
                cluster_name=cluster.name,
                addon_name=addon_name,
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                opts=child(depends_on=depends_on),
                **kwargs,
            )

        before_nodes = {
            a: addon(a, configuration_values=ADDON_CONFIGURATION.get(a))
            for a in ADDONS_BEFORE_NODES
        }

        # --- Nodes ---------------------------------------------------------------------------
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
                {"resource_type": kind, "tags": {**tags, "Name": f"{name}-node"}}
                for kind in ("instance", "volume", "network-interface")
            ],
            opts=child(),
        )
        node_group = aws.eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=cluster.name,
            version=cluster.version,
            node_role_arn=node_role.arn,
            subnet_ids=private_subnet_ids,
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
            opts=child(depends_on=[*node_attachments, *before_nodes.values(), *network]),
        )

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
            policy_arn=managed_policy(EBS_CSI_POLICY),
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
        coredns = addon("coredns", depends_on=[node_group])
        # The controller must find its credentials on first start: the association and the
        # pod identity agent come first.
        ebs_csi = addon(
            "aws-ebs-csi-driver",
            depends_on=[node_group, ebs_csi_identity, before_nodes["eks-pod-identity-agent"]],
        )

        # --- Outputs -------------------------------------------------------------------------
        self.vpc_id = vpc.id
        self.cluster_name = cluster.name
        ca_data = cluster.certificate_authority.apply(lambda ca: ca.data)
        region = spec.region
        kubeconfig = pulumi.Output.all(cluster.endpoint, ca_data, cluster.name).apply(
            lambda v: exec_kubeconfig(
                name=v[2],
                server=v[0],
                ca_data=v[1],
                command="aws",
                args=[
                    "eks",
                    "get-token",
                    "--cluster-name",
                    v[2],
                    "--region",
                    region,
                    "--output",
                    "json",
                ],
            )
        )
        egress_cidrs = pulumi.Output.all(*[e.public_ip for e in eips]).apply(
            lambda ips: sorted(f"{ip}/32" for ip in ips)
        )
        self._finish(
            kubeconfig=kubeconfig,
            api_server_url=cluster.endpoint,
            ca_data=ca_data,
            egress_cidrs=egress_cidrs,
            provider_depends_on=[node_group, coredns, ebs_csi, deployer_admin],
        )
