"""A model of a first `pulumi up`: when each resource of the declared graph is done, and why.

The engine starts a resource once everything it depends on is created (its dependencies,
property dependencies and provider); a component takes no time of its own, and depending on
one means depending on everything inside it. Each resource then takes the typical time of its
type (CREATION_SECONDS, each figure with its source). One behaviour of pulumi-kubernetes
matters on top of the graph: a Service's create is held until its endpoints are ready, so a
Service completes no earlier than the pods it selects (ENDPOINT_SETTLE_SECONDS after them).

Figures are typical, not promises: clouds vary from run to run and region to region. What the
model is for is comparing shapes of the graph: which chain decides the length of `up`, and how
far it is from the chain nothing can shorten.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    seconds: float
    kind: str
    """`measured` (public measurement), `docs` (vendor documentation) or `estimate`."""
    source: str


_EKS_MEASURED = (
    "https://easontechtalk.com/unofficial-eks-cluster-creation-performance-across-aws-regions"
)
_AKS_MEASURED = "https://kubedex.com/is-azure-kubernetes-aks-any-less-terrible/"
_SERVICE_AWAIT = "https://www.pulumi.com/registry/packages/kubernetes/api-docs/core/v1/service/"

CREATION_SECONDS: dict[str, Figure] = {
    "aws:eks/cluster:Cluster": Figure(
        913,
        "measured",
        f"{_EKS_MEASURED} (eu-west-1: 912.86 s; 21 regions from 793 s to 971 s)",
    ),
    "azure-native:containerservice:ManagedCluster": Figure(
        600,
        "measured",
        f"{_AKS_MEASURED} (AKS create with its node pool: 12 min 8 s minimum, 17 min 52 s "
        "average in 2019; Microsoft then announced 5 to 6 minutes; 10 minutes taken between)",
    ),
    "aws:eks/nodeGroup:NodeGroup": Figure(
        240,
        "estimate",
        "EC2 launch, bootstrap and node registration of a managed node group; no public "
        "measurement found",
    ),
    "aws:eks/addon:Addon": Figure(
        60, "estimate", "add-on Deployment or DaemonSet rollout on ready nodes"
    ),
    "aws:ec2/natGateway:NatGateway": Figure(
        120, "estimate", "NAT gateway from pending to available; no public measurement found"
    ),
    "aws:ec2/vpc:Vpc": Figure(5, "estimate", "API call"),
    "aws:ec2/subnet:Subnet": Figure(5, "estimate", "API call"),
    "aws:ec2/internetGateway:InternetGateway": Figure(5, "estimate", "API call"),
    "aws:ec2/routeTable:RouteTable": Figure(5, "estimate", "API call"),
    "aws:ec2/route:Route": Figure(5, "estimate", "API call"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": Figure(5, "estimate", "API call"),
    "aws:ec2/eip:Eip": Figure(5, "estimate", "API call"),
    "aws:ec2/launchTemplate:LaunchTemplate": Figure(5, "estimate", "API call"),
    "aws:iam/role:Role": Figure(5, "estimate", "API call"),
    "aws:iam/rolePolicy:RolePolicy": Figure(5, "estimate", "API call"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": Figure(5, "estimate", "API call"),
    "aws:kms/key:Key": Figure(10, "estimate", "API call"),
    "aws:kms/alias:Alias": Figure(5, "estimate", "API call"),
    "aws:eks/accessEntry:AccessEntry": Figure(10, "estimate", "API call"),
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": Figure(10, "estimate", "API call"),
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": Figure(10, "estimate", "API call"),
    "azure-native:resources:ResourceGroup": Figure(5, "estimate", "ARM call"),
    "azure-native:network:VirtualNetwork": Figure(10, "estimate", "ARM call"),
    "azure-native:network:Subnet": Figure(10, "estimate", "ARM call"),
    "azure-native:network:PublicIPAddress": Figure(10, "estimate", "ARM call"),
    "azure-native:authorization:RoleAssignment": Figure(
        30, "estimate", "ARM call and Entra ID propagation"
    ),
    "kubernetes:helm.sh/v3:Release": Figure(
        90, "estimate", "chart install: operator image pull and rollout"
    ),
    "kubernetes:operator.open-cluster-management.io/v1:ClusterManager": Figure(
        120,
        "estimate",
        "waited for until Applied: the operator installs the hub CRDs and controllers",
    ),
    "kubernetes:operator.open-cluster-management.io/v1:Klusterlet": Figure(
        60, "estimate", "the operator starts the registration and work agents"
    ),
    "kubernetes:work.open-cluster-management.io/v1:ManifestWork": Figure(
        240,
        "estimate",
        "waited for until Applied and Available: the agent's CSR is approved, then the work "
        "agent applies the app and its pods pull images and become ready",
    ),
    "pulumi-python:dynamic/ocm-fleet:RolloutStatus": Figure(
        240,
        "estimate",
        "waits for the app's rollout: the agents apply the ManifestWorks and every Deployment "
        "becomes available; the later steps' soak is added by rollout_soak",
    ),
    "kubernetes:apps/v1:Deployment": Figure(30, "estimate", "image pull and readiness"),
    "kubernetes:apps/v1:StatefulSet": Figure(
        90, "estimate", "volume attach, image pull, database start"
    ),
    "kubernetes:batch/v1:Job": Figure(120, "estimate", "schema migration and seed"),
    "kubernetes:core/v1:Service": Figure(5, "estimate", "API call (ClusterIP)"),
}
LOAD_BALANCER_SECONDS: dict[str, Figure] = {
    "aws": Figure(
        180,
        "estimate",
        "a Network Load Balancer from provisioning to active, with its DNS name; no public "
        "measurement found",
    ),
    "azure": Figure(
        60, "estimate", "a rule and frontend IP on the cluster's existing Standard Load Balancer"
    ),
    "kind": Figure(
        10, "estimate", "cloud-provider-kind starts a local proxy container for the Service"
    ),
    "other": Figure(60, "estimate", "a load balancer controller on a cluster of your own"),
}
KIND_CREATE = Figure(
    60,
    "estimate",
    "`kind create cluster` with the node image already pulled; no public measurement found",
)
DEFAULT_SECONDS = Figure(2, "estimate", "one Kubernetes or provider API call")
ZERO_SECONDS_PREFIXES = ("pulumi:providers:", "random:")
"""Providers and random values are local: they take no cloud time."""

ENDPOINT_SETTLE_SECONDS = 10.0
"""pulumi-kubernetes waits 10 s for straggling endpoints after each update (see _SERVICE_AWAIT)."""

SERVICE = "kubernetes:core/v1:Service"
MANIFEST_WORK = "kubernetes:work.open-cluster-management.io/v1:ManifestWork"
MANIFEST_WORK_REPLICA_SET = (
    "kubernetes:work.open-cluster-management.io/v1alpha1:ManifestWorkReplicaSet"
)
MANAGED_CLUSTER = "kubernetes:cluster.open-cluster-management.io/v1:ManagedCluster"
PLACEMENT = "kubernetes:cluster.open-cluster-management.io/v1beta1:Placement"
ROLLOUT_STATUS = "pulumi-python:dynamic/ocm-fleet:RolloutStatus"
POD_OWNERS = ("Deployment", "StatefulSet", "DaemonSet")
CLUSTER_COMPONENTS = {
    "ocm-fleet:index:EksCluster": "aws",
    "ocm-fleet:index:AksCluster": "azure",
    "ocm-fleet:index:KindCluster": "kind",
}


@dataclass
class Node:
    """One registered resource, as far as the model needs it."""

    urn: str
    type: str
    name: str
    parent: str = ""
    custom: bool = True
    deps: set[str] = field(default_factory=set)
    inputs: Mapping[str, Any] = field(default_factory=dict)
    provider: str = ""


@dataclass(frozen=True)
class Step:
    node: Node
    start: float
    finish: float
    why: str
    """What it waited for: `after <name>`, `endpoints of <name>`, or `start`."""
    waited_on: str = ""
    """URN of the resource it waited for last, if any."""
    soak: float = 0.0
    """Part of `finish` that is the rollout's soak (only on what waits for the rollout)."""


@dataclass
class Schedule:
    steps: dict[str, Step]
    critical_path: list[Step]
    soak_seconds: float = 0.0
    """Time the rollout strategy demands after the workload is applied (canary soak): already
    in the finish of what waits for the rollout, so in `total` as well."""
    unavoidable: list[Step] = field(default_factory=list)
    """The unavoidable chain (see `unavoidable_chain`), its steps timed as if nothing else
    took any time."""

    @property
    def total(self) -> float:
        return max((s.finish for s in self.steps.values()), default=0.0)


def nodes_from_graph(graph: Any) -> list[Node]:
    """The model's view of a recorded graph (tests/harness.py `Graph`)."""
    return [
        Node(
            urn=r.urn,
            type=r.type,
            name=r.name,
            parent=r.parent,
            custom=r.custom,
            deps=graph.direct_deps(r),
            inputs=r.inputs,
            provider=r.provider_urn,
        )
        for r in graph.resources
    ]


def duration(node: Node, cloud_of_provider: Mapping[str, str]) -> Figure:
    if not node.custom:
        return Figure(0, "docs", "a component takes no time itself")
    if node.type.startswith(ZERO_SECONDS_PREFIXES):
        return Figure(0, "estimate", "local to the engine")
    create = node.inputs.get("create")
    if node.type == "command:local:Command" and "kind create cluster" in str(create or ""):
        return KIND_CREATE
    if _is_load_balancer(node):
        return LOAD_BALANCER_SECONDS[cloud_of_provider.get(node.provider, "other")]
    return CREATION_SECONDS.get(node.type, DEFAULT_SECONDS)


def _labels_match(selector: Mapping[str, str], labels: Any) -> bool:
    return (
        isinstance(labels, Mapping)
        and bool(selector)
        and all(labels.get(k) == v for k, v in selector.items())
    )


def _pod_labels(obj: Mapping[str, Any]) -> Any:
    return (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")


def _carried_objects(node: Node) -> list[Mapping[str, Any]]:
    spec = node.inputs.get("spec") or {}
    if node.type == MANIFEST_WORK_REPLICA_SET:
        spec = spec.get("manifestWorkTemplate") or {}
    manifests = (spec.get("workload") or {}).get("manifests")
    return [m for m in manifests if isinstance(m, Mapping)] if isinstance(manifests, list) else []


def endpoint_sources(nodes: Sequence[Node]) -> dict[str, list[str]]:
    """Service URN -> URNs of what creates the pods it selects (its create waits for them).

    Pods come from a Deployment or StatefulSet on the same provider, or from a ManifestWork in
    the namespace of the Service's cluster (a ManifestWorkReplicaSet reaches every cluster). A
    Service with its own `pulumi.com/waitFor` or `skipAwait` waits for no pods.
    """
    by_urn = {n.urn: n for n in nodes}
    cluster_of_provider = {
        n.urn: by_urn[n.parent].name
        for n in nodes
        if n.type == "pulumi:providers:kubernetes" and n.parent in by_urn
    }
    sources: dict[str, list[str]] = {}
    for svc in nodes:
        if svc.type != SERVICE:
            continue
        selector = (svc.inputs.get("spec") or {}).get("selector")
        if not isinstance(selector, Mapping) or not selector:
            continue
        annotations = (svc.inputs.get("metadata") or {}).get("annotations") or {}
        if "pulumi.com/waitFor" in annotations or "pulumi.com/skipAwait" in annotations:
            # Either annotation replaces the endpoint wait (pulumi-kubernetes >= 4.18.4).
            continue
        found = []
        for other in nodes:
            kind = other.type.rsplit(":", 1)[-1]
            if kind in POD_OWNERS and other.provider == svc.provider:
                if _labels_match(selector, _pod_labels(other.inputs)):
                    found.append(other.urn)
            elif other.type in (MANIFEST_WORK, MANIFEST_WORK_REPLICA_SET):
                namespace = (other.inputs.get("metadata") or {}).get("namespace")
                here = other.type == MANIFEST_WORK_REPLICA_SET or (
                    namespace == cluster_of_provider.get(svc.provider)
                )
                if here and any(
                    o.get("kind") in POD_OWNERS and _labels_match(selector, _pod_labels(o))
                    for o in _carried_objects(other)
                ):
                    found.append(other.urn)
        if found:
            sources[svc.urn] = found
    return sources


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _seconds(text: Any) -> float:
    match = _DURATION.match(str(text or ""))
    if not text or not match:
        return 0.0
    h, m, s = (int(g) if g else 0 for g in match.groups())
    return h * 3600 + m * 60 + s


def rollout_steps(strategy: Mapping[str, Any], clusters: int, canaries: int = 0) -> int:
    """How many steps a rollout of `strategy` over `clusters` takes, as sdk-go counts them
    (pkg/apis/cluster/v1alpha1/rollout.go): `All` is one step; `Progressive` rolls the mandatory
    decision groups (`canaries` clusters, or one per group when not known) out first, as one
    step, then the rest maxConcurrency at a time (calculateRolloutSize: a count, or a percentage
    of the rest rounded up; out of range, or unset, means all the rest at once)."""
    kind = strategy.get("type", "All")
    if kind == "All" or clusters <= 0:
        return 1 if clusters > 0 else 0
    settings = strategy.get(kind[0].lower() + kind[1:]) or {}
    groups = len(settings.get("mandatoryDecisionGroups") or [])
    first = min(canaries or groups, clusters)
    rest = clusters - first
    per_step = settings.get("maxConcurrency")
    if isinstance(per_step, str) and per_step.endswith("%"):
        per_step = math.ceil(float(per_step[:-1]) / 100 * rest)
    per_step = int(per_step) if per_step else rest
    if per_step <= 0 or per_step > rest:
        per_step = rest
    return (1 if first else 0) + (math.ceil(rest / per_step) if rest else 0)


def _chosen(nodes: Sequence[Node]) -> int:
    """How many clusters the rollout reaches: the Placement's numberOfClusters, else every
    managed cluster."""
    for n in nodes:
        number = (n.inputs.get("spec") or {}).get("numberOfClusters")
        if n.type == PLACEMENT and isinstance(number, int | float):
            return int(number)
    return sum(1 for n in nodes if n.type == MANAGED_CLUSTER)


def _canaries(nodes: Sequence[Node]) -> int:
    """Clusters in the Placement's mandatory decision group (the canaries), by name."""
    for n in nodes:
        if n.type != PLACEMENT:
            continue
        groups = (
            ((n.inputs.get("spec") or {}).get("decisionStrategy") or {}).get("groupStrategy") or {}
        ).get("decisionGroups") or []
        names = {
            v
            for g in groups
            for e in ((g.get("groupClusterSelector") or {}).get("labelSelector") or {}).get(
                "matchExpressions"
            )
            or []
            for v in e.get("values") or []
        }
        if names:
            return len(names)
    return 0


def rollout_soak(nodes: Sequence[Node]) -> float:
    """Seconds a progressive rollout keeps `up` waiting after the first clusters are applied.

    Only a ManifestWorkReplicaSet that `up` waits for (pulumi.com/waitFor, or a rollout status
    resource) holds `up`; each step after the first starts once the previous one has been
    successful for minSuccessTime. A first delivery rolls out `All` (components/app/rollout.py,
    rollout_type): one step, no soak.
    """
    clusters, canaries = _chosen(nodes), _canaries(nodes)
    # A rollout status resource holds `up` for the replica set's rollout as a waitFor would.
    status_waits = any(n.type == ROLLOUT_STATUS for n in nodes)
    soak = 0.0
    for n in nodes:
        if n.type != MANIFEST_WORK_REPLICA_SET:
            continue
        annotations = (n.inputs.get("metadata") or {}).get("annotations") or {}
        if "pulumi.com/waitFor" not in annotations and not status_waits:
            continue
        for ref in (n.inputs.get("spec") or {}).get("placementRefs") or []:
            soak = max(soak, _soak(ref.get("rolloutStrategy") or {}, clusters, canaries))
    return soak


def _soak(strategy: Mapping[str, Any], clusters: int, canaries: int) -> float:
    kind = strategy.get("type", "All")
    settings = strategy.get(kind[0].lower() + kind[1:]) or {}
    steps = rollout_steps(strategy, clusters, canaries)
    return max(steps - 1, 0) * _seconds(settings.get("minSuccessTime"))


ROLLOUT_STEP = Figure(
    CREATION_SECONDS[ROLLOUT_STATUS].seconds,
    "estimate",
    "one step of a rollout: the agents apply the new revision and every Deployment is "
    "updated and available (the same figure as a first rollout's)",
)


def version_change_seconds(strategy: Mapping[str, Any], clusters: int, canaries: int) -> float:
    """The modeled length of a version change on a running fleet: the replica set's update,
    then each step's apply and readiness, with minSuccessTime between steps (`up` returns once
    the last step is ready, without its soak)."""
    steps = rollout_steps(strategy, clusters, canaries)
    update = CREATION_SECONDS.get(MANIFEST_WORK_REPLICA_SET, DEFAULT_SECONDS).seconds
    return update + steps * ROLLOUT_STEP.seconds + _soak(strategy, clusters, canaries)


def rollout_waiters(nodes: Sequence[Node]) -> set[str]:
    """URNs of what holds `up` until the rollout is done: the rollout status resources, else
    each ManifestWorkReplicaSet annotated with pulumi.com/waitFor."""
    statuses = {n.urn for n in nodes if n.type == ROLLOUT_STATUS}
    if statuses:
        return statuses
    return {
        n.urn
        for n in nodes
        if n.type == MANIFEST_WORK_REPLICA_SET
        and "pulumi.com/waitFor" in ((n.inputs.get("metadata") or {}).get("annotations") or {})
    }


CERT_REQUEST = "tls:index/certRequest:CertRequest"
IMPOSED_TYPES: dict[str, str] = {
    "aws:eks/cluster:Cluster": "a control plane",
    "azure-native:containerservice:ManagedCluster": "a control plane with its node pool",
    "aws:eks/nodeGroup:NodeGroup": "the nodes",
    "kubernetes:helm.sh/v3:Release": "an operator chart (OCM's agents and hub run from them)",
    "kubernetes:operator.open-cluster-management.io/v1:ClusterManager": "the OCM hub",
    "kubernetes:operator.open-cluster-management.io/v1:Klusterlet": "the OCM agent",
    MANIFEST_WORK: "the workload applied and Available",
    MANIFEST_WORK_REPLICA_SET: "the workload handed to OCM",
    ROLLOUT_STATUS: "the app's rollout done",
    "kubernetes:apps/v1:Deployment": "pods ready",
    "kubernetes:apps/v1:StatefulSet": "pods ready",
    "kubernetes:batch/v1:Job": "the database schema",
}
"""Steps no ordering of the graph can skip or shorten: they take their time in the
unavoidable chain; everything else (IAM, networks, namespaces, policies, providers, Services
waiting for an address) takes none there.

Two waits the program keeps are not among them, so they count against it: an EKS cluster's
Kubernetes provider waits for the CoreDNS add-on, because the OCM agents reach the hub by
name and, in reverse, must still resolve it while destroy waits for them to remove what their
ManifestWorks applied (components/clusters/eks.py, _nodes_and_addons); and a ManifestWork waits
for its cluster's namespace, credentials and permissions (AppDelivery.work_needs). Neither waits
for a load balancer or for the EBS CSI add-on's rollout: the add-on is deleted with its cluster,
so destroy still removes every object on the cluster first.

One load balancer's wait is imposed too: one whose address a certificate request names (the
database's on each home of a fleet with a second home, whose replica checks the primary's
certificate against the address it connects to)."""


def _imposed(node: Node, node_addons: set[str]) -> bool:
    if node.type in IMPOSED_TYPES or node.urn in node_addons:
        return True
    create = str(node.inputs.get("create") or "")
    return node.type == "command:local:Command" and "kind create cluster" in create


def schedule(nodes: Sequence[Node]) -> Schedule:
    """Earliest finish of every resource, the chain that decides the last one, and the
    unavoidable chain (`unavoidable_chain`)."""
    by_urn = {n.urn: n for n in nodes}
    children: dict[str, list[str]] = {}
    for n in nodes:
        children.setdefault(n.parent, []).append(n.urn)

    def expand(urn: str) -> set[str]:
        """A component stands for everything inside it."""
        node = by_urn.get(urn)
        if node is None:
            return set()
        if node.custom:
            return {urn}
        out: set[str] = set()
        for child in children.get(urn, []):
            out |= expand(child)
        return out

    cloud_of_provider = {
        n.urn: CLUSTER_COMPONENTS[by_urn[n.parent].type]
        for n in nodes
        if n.parent in by_urn and by_urn[n.parent].type in CLUSTER_COMPONENTS
    }
    waits = endpoint_sources(nodes)
    preds: dict[str, set[str]] = {}
    for n in nodes:
        if not n.custom:
            continue
        deps: set[str] = set()
        for d in n.deps:
            deps |= expand(d)
        deps.discard(n.urn)
        preds[n.urn] = deps

    def reaches(start: str, target: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            urn = todo.pop()
            if urn == target:
                return True
            if urn not in seen:
                seen.add(urn)
                todo.extend(preds.get(urn, ()))
        return False

    # A Service whose pods' owner depends on it (a StatefulSet's governing Service) cannot
    # wait for those pods without a deadlock the engine would show; the model leaves it out.
    waits = {svc: [src for src in srcs if not reaches(src, svc)] for svc, srcs in waits.items()}
    soak = rollout_soak(nodes)
    soaks = dict.fromkeys(rollout_waiters(nodes), soak) if soak else {}

    def timeline(seconds: Callable[[Node], float]) -> dict[str, Step]:
        """Every resource's step when each takes `seconds(node)`; same edges, same waits."""
        steps: dict[str, Step] = {}
        visiting: set[str] = set()

        def finish_of(urn: str) -> float:
            if urn in steps:
                return steps[urn].finish
            if urn in visiting:
                raise ValueError(f"dependency cycle through {by_urn[urn].name}")
            visiting.add(urn)
            node = by_urn[urn]
            start, why, waited_on = 0.0, "start", ""
            for d in sorted(preds[urn]):
                f = finish_of(d)
                if f > start:
                    start, why, waited_on = f, f"after {by_urn[d].name}", d
            finish = start + seconds(node)
            for src in sorted(waits.get(urn, [])):
                f = finish_of(src) + ENDPOINT_SETTLE_SECONDS
                if f > finish:
                    finish, why, waited_on = f, f"endpoints of {by_urn[src].name}", src
            held = soaks.get(urn, 0.0)
            visiting.discard(urn)
            steps[urn] = Step(node, start, finish + held, why, waited_on, held)
            return finish + held

        for urn in preds:
            finish_of(urn)
        return steps

    def full(node: Node) -> float:
        return duration(node, cloud_of_provider).seconds

    # Nodes cannot join without their network add-ons: those are part of the nodes.
    node_addons = {
        d for n in nodes if n.type == "aws:eks/nodeGroup:NodeGroup" for d in preds.get(n.urn, ())
    }
    node_addons = {u for u in node_addons if by_urn[u].type == "aws:eks/addon:Addon"}

    # A load balancer whose address a server certificate must name (the database's, which its
    # replica verifies by the address it connects to): its certificate, and the server that
    # holds it, cannot come before the address does.
    named_by_certificates = {
        d
        for n in nodes
        if n.type == CERT_REQUEST
        for d in preds.get(n.urn, ())
        if _is_load_balancer(by_urn[d])
    }

    def imposed(node: Node) -> float:
        return (
            full(node) if _imposed(node, node_addons) or node.urn in named_by_certificates else 0.0
        )

    def imposed_and_balancers(node: Node) -> float:
        return full(node) if _is_load_balancer(node) else imposed(node)

    steps = timeline(full)
    # Two chains nothing can shorten: the workload's, in which waiting for a load balancer
    # is an ordering the program chose, and the public entry's, which ends at a load balancer
    # and needs the addresses of those before it.
    workload = timeline(imposed)
    entry = timeline(imposed_and_balancers)
    balancers = [s for s in entry.values() if _is_load_balancer(s.node)]
    ends = [(_last(workload.values()), workload), (_last(balancers), entry)]
    chains = [_path(last, steps_of) for last, steps_of in ends if last is not None]
    last = _last(steps.values())
    return Schedule(
        steps=steps,
        critical_path=_path(last, steps) if last else [],
        soak_seconds=soak,
        unavoidable=max(chains, key=lambda c: c[-1].finish, default=[]),
    )


def _is_load_balancer(node: Node) -> bool:
    return node.type == SERVICE and (node.inputs.get("spec") or {}).get("type") == "LoadBalancer"


def _last(steps: Iterable[Step]) -> Step | None:
    return max(steps, key=lambda s: (s.finish, s.node.name), default=None)


def _path(last: Step, steps: Mapping[str, Step]) -> list[Step]:
    path: list[Step] = []
    current: Step | None = last
    while current is not None:
        path.append(current)
        current = steps.get(current.waited_on)
    return path[::-1]


def unavoidable_chain(sched: Schedule) -> float:
    """The length of the longest chain of the same graph when only the steps nothing can skip
    take time (IMPOSED_TYPES, the add-ons nodes need to join, pods becoming ready behind a
    Service, the rollout's soak), load balancers counted only at the end of the public entry.

    Every step takes at most its time in the full schedule, over the same edges, so this is
    never longer than the modeled `up`: how much longer `up` is says what the program's own
    orderings and small resources add.
    """
    return sched.unavoidable[-1].finish if sched.unavoidable else 0.0


def modeled_up_seconds(sched: Schedule) -> float:
    """The length of a first `up`: the longest chain, the rollout's soak in it."""
    return sched.total


def minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s"


def critical_path_table(sched: Schedule, path: Sequence[Step] | None = None) -> list[str]:
    """The critical path (or `path`) as Markdown table rows."""
    rows = [
        "| starts | done | resource | type | waited for |",
        "| ---: | ---: | --- | --- | --- |",
    ]
    for s in sched.critical_path if path is None else path:
        rows.append(
            f"| {minutes(s.start)} | {minutes(s.finish - s.soak)} | {s.node.name} "
            f"| {s.node.type} | {s.why} |"
        )
        if s.soak:
            rows.append(
                f"| {minutes(s.finish - s.soak)} | {minutes(s.finish)} | rollout soak | "
                f"| minSuccessTime between the rollout's steps |"
            )
    return rows


def sources_table(types: Iterable[str]) -> list[str]:
    """Where each figure used for `types` comes from, as Markdown table rows."""
    rows = ["| type | seconds | kind | source |", "| --- | ---: | --- | --- |"]
    for t in sorted(set(types)):
        fig = CREATION_SECONDS.get(t, DEFAULT_SECONDS)
        rows.append(f"| {t} | {fig.seconds:g} | {fig.kind} | {fig.source} |")
    rows.append(
        f"| kind cluster command | {KIND_CREATE.seconds:g} | estimate | {KIND_CREATE.source} |"
    )
    for cloud, fig in LOAD_BALANCER_SECONDS.items():
        rows.append(
            f"| Service type LoadBalancer ({cloud}) | {fig.seconds:g} | {fig.kind} | {fig.source} |"
        )
    return rows


if __name__ == "__main__":
    import argparse
    import sys

    argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="A module, not a command: scripts/estimate.py and bench/program_eval.py run it.",
    ).parse_args()
    print(
        "scripts/up_model.py is a module; run scripts/estimate.py or bench/program_eval.py",
        file=sys.stderr,
    )
    sys.exit(2)
