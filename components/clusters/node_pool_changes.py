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
REPLACES_POOL = "replaces the node pool (a new one is created first)"


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
        "kubernetesVersion",
        "aws",
        "aws:eks/addon:Addon",
        ("addonVersion",),
        IN_PLACE,
        "hashicorp/terraform-provider-aws internal/service/eks/addon.go (ResourceAddon): "
        "addon_version is Optional and Computed, not ForceNew, and resourceAddonUpdate calls "
        "UpdateAddon when it changes; addon_name and cluster_name are ForceNew, and no knob moves "
        "them. The version is EKS's default for the new minor (find.go, "
        "FindAddonVersionByAddonNameAndKubernetesVersion with most_recent false); EKS does not "
        "move an add-on by itself when the cluster changes minor (EKS user guide, 'Update an "
        "Amazon EKS add-on'). Each add-on names the cluster, "
        "so it updates after the control plane; vpc-cni, kube-proxy and the pod identity agent "
        "before the node group, which waits for them, coredns and the EBS CSI driver after it. "
        "kube-proxy a minor ahead of the kubelet for that while is within the Kubernetes "
        "version skew policy (kube-proxy up to three minors older or newer than the kubelet, "
        "never newer than the API server).",
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
        IN_PLACE,
        "AKS cannot change a pool's VM size ('You can't change the VM size of a node pool "
        "after you create it', AKS docs, 'Manage node pools', limitations), so the first pool "
        "keeps its size and only its mode and count move: System with nodeCount nodes while "
        "nodeSize is its size, else an empty User pool. Both are updated in place by the "
        "cluster's PUT (replacement.go lists no agentPoolProfiles property since "
        "pulumi-azure-native#2774); a pool may turn User while another System pool exists (AKS "
        "docs, 'Manage system node pools'), and a User pool may have 0 nodes (AKS REST API, "
        "Agent Pools - Create Or Update, count). The cluster resource cannot add the pool to "
        "move to ('Adding agent pools to an existing cluster is not allowed through managed "
        "cluster operations', pulumi-azure-native#579) nor drop the first pool (a profile "
        "left out of the PUT stays in Azure, #1686; one deleted behind it fails every later "
        "PUT, #2719), so the first pool is never removed.",
    ),
    Change(
        "nodeSize",
        "azure",
        "azure-native:containerservice:AgentPool",
        ("agentPoolName", "vmSize"),
        REPLACES_POOL,
        "pulumi-azure-native provider/pkg/gen/replacement.go, forceNewMap, AgentPool: vmSize "
        "forces a new pool, and agentPoolName is a path parameter of the pool's id (AKS REST "
        "API, Agent Pools - Create Or Update). The pool is named after its size, so the "
        "replacement never collides with the old pool (azure-native refuses to create over an "
        "existing one: client_azcore.go, CanCreate); azure-native asks for delete-before-"
        "replace on it (provider.go, Diff), and the program overrides that with an explicit "
        "deleteBeforeReplace: false, which the engine honours (step_generator.go), so the new "
        "System pool exists before the old one goes. The pool exists only while nodeSize "
        "differs from the first pool's size: "
        "it is created when nodeSize first leaves that size and deleted, after the first "
        "pool has taken the nodes back, when it returns.",
    ),
    Change(
        "nodeCount",
        "azure",
        "azure-native:containerservice:AgentPool",
        ("count",),
        IN_PLACE,
        "replacement.go lists no count for AgentPool; AKS scales a pool through its own PUT "
        "(AKS docs, 'Scale the node count in an AKS cluster', az aks nodepool scale).",
    ),
    Change(
        "kubernetesVersion",
        "azure",
        "azure-native:containerservice:AgentPool",
        ("orchestratorVersion",),
        IN_PLACE,
        "replacement.go lists no orchestratorVersion for AgentPool; AKS docs, 'Upgrade a "
        "node pool' (az aks nodepool upgrade): pools are upgraded in place, never ahead of the "
        "control plane (AKS REST API, Agent Pools, orchestratorVersion: 'The node pool version "
        "cannot be greater than the control plane version'). The cluster waits for this pool, "
        "so a run that changes kubernetesVersion upgrades the control plane only and keeps "
        "every pool on the version the last run gave the control plane; the next run upgrades "
        "the pools (previous_run.aks_pools).",
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
