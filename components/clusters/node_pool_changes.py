"""Which cluster inputs change in place and which replace a resource: the table the program's
node-pool knobs (nodeSize, nodeCount, kubernetesVersion) are checked against.

Unit tests run under mocks, which never call a provider's diff, so a replacement cannot be
observed there. This table records, from the providers' schema source and the clouds' API
documentation, what a change of each input does; tests/test_node_pool_changes.py changes each
knob in the config and checks that exactly the inputs listed here move, and none that would
replace a control plane.
"""

from __future__ import annotations

from dataclasses import dataclass

IN_PLACE = "in place"
REPLACES_POOL = "replaces the node group (a new one is created first)"
REFUSED = "refused before any change"


@dataclass(frozen=True)
class Change:
    knob: str
    """The config key of a cluster entry."""
    cloud: str
    resource: str
    """Pulumi type token of the resource whose input the knob sets."""
    inputs: tuple[str, ...]
    """Top-level inputs (camelCase) that the knob changes."""
    effect: str
    source: str
    """Where the effect is stated: provider schema source and cloud API documentation."""


TERRAFORM_AWS_NODE_GROUP = (
    "hashicorp/terraform-provider-aws internal/service/eks/node_group.go (the schema "
    "pulumi-aws bridges): instance_types and ami_type are ForceNew; scaling_config is updated "
    "by UpdateNodegroupConfig; version and launch_template.version by UpdateNodegroupVersion; "
    "node_group_name is ForceNew and Computed, and unset it is generated unique"
)

TABLE: tuple[Change, ...] = (
    Change(
        "nodeSize",
        "aws",
        "aws:eks/nodeGroup:NodeGroup",
        ("amiType", "instanceTypes"),
        REPLACES_POOL,
        TERRAFORM_AWS_NODE_GROUP
        + ". No node_group_name is set, so the replacement gets a new unique name and "
        "Pulumi's default create-before-delete cannot collide with the old group.",
    ),
    Change(
        "nodeCount",
        "aws",
        "aws:eks/nodeGroup:NodeGroup",
        ("scalingConfig",),
        IN_PLACE,
        TERRAFORM_AWS_NODE_GROUP + "; EKS API UpdateNodegroupConfig (scalingConfig).",
    ),
    Change(
        "kubernetesVersion",
        "aws",
        "aws:eks/cluster:Cluster",
        ("version",),
        IN_PLACE,
        "terraform-provider-aws internal/service/eks/cluster.go: version is not ForceNew and "
        "is applied by UpdateClusterVersion; EKS user guide, 'Update existing cluster to new "
        "Kubernetes version' (one minor version at a time).",
    ),
    Change(
        "kubernetesVersion",
        "aws",
        "aws:eks/nodeGroup:NodeGroup",
        ("version",),
        IN_PLACE,
        TERRAFORM_AWS_NODE_GROUP + "; EKS API UpdateNodegroupVersion.",
    ),
    Change(
        "nodeCount",
        "azure",
        "azure-native:containerservice:ManagedCluster",
        ("agentPoolProfiles",),
        IN_PLACE,
        "pulumi/pulumi-azure-native provider/pkg/gen/replacement.go: forceNewMap lists no "
        "agentPoolProfiles property for ManagedCluster (removed in pulumi-azure-native#2774), "
        "so the change is a PUT of the cluster; AKS scales a pool's count through it (AKS "
        "docs, 'Scale the node count in an AKS cluster').",
    ),
    Change(
        "kubernetesVersion",
        "azure",
        "azure-native:containerservice:ManagedCluster",
        ("agentPoolProfiles", "kubernetesVersion"),
        IN_PLACE,
        "replacement.go lists neither kubernetesVersion nor orchestratorVersion; AKS docs, "
        "'Upgrade an AKS cluster': the control plane and then the pools are upgraded in place.",
    ),
    Change(
        "nodeSize",
        "azure",
        "azure-native:containerservice:ManagedCluster",
        ("agentPoolProfiles",),
        REFUSED,
        "replacement.go makes no agentPoolProfiles property force a replacement, so a new "
        "vmSize would be sent as a PUT of the cluster, and AKS refuses it: 'You can't change "
        "the VM size of a node pool after you create it' (AKS docs, 'Manage node pools', "
        "limitations). Nor can a cluster PUT add the pool to move to: 'Adding agent pools to "
        "an existing cluster is not allowed through managed cluster operations' (Azure/bicep"
        "#9644, pulumi-azure-native#579). A separate AgentPool resource does replace on vmSize "
        "(replacement.go, AgentPool: vmSize), but pairing it with the cluster's inline pool "
        "under ignoreChanges breaks every later cluster update once the inline pool is gone "
        "(pulumi-azure-native#2719). The program therefore compares nodeSize with the size the "
        "stack's last run exported and stops before any change; README, Day 2, says how to "
        "move to a new size (a new cluster, then retire the old).",
    ),
)


def changes_for(knob: str, cloud: str) -> list[Change]:
    return [c for c in TABLE if c.knob == knob and c.cloud == cloud]


CONTROL_PLANE_REPLACING_INPUTS = {
    "aws:eks/cluster:Cluster": ("name", "roleArn", "encryptionConfig"),
    "azure-native:containerservice:ManagedCluster": (
        "dnsPrefix",
        "location",
        "nodeResourceGroup",
        "networkProfile",
        "resourceName",
    ),
}
"""Inputs that replace the control plane (terraform-provider-aws cluster.go ForceNew:
name, role_arn, encryption_config once set; replacement.go for ManagedCluster: dnsPrefix,
location, nodeResourceGroup and networkProfile's CIDRs and plugin; the resource name is a path
parameter). No knob may move any of them."""
