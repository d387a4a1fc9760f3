"""The ocm-fleet guardrails: checks over plain property dicts, and the policies that run them."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

MANIFEST_WORK = "kubernetes:work.open-cluster-management.io/v1:ManifestWork"
REPLICA_SET = "kubernetes:work.open-cluster-management.io/v1alpha1:ManifestWorkReplicaSet"
# Where each kind keeps the manifests it sends to managed clusters.
WORK_MANIFESTS = {
    MANIFEST_WORK: ("spec", "workload", "manifests"),
    REPLICA_SET: ("spec", "manifestWorkTemplate", "workload", "manifests"),
}
WORK_KIND = {MANIFEST_WORK: "ManifestWork", REPLICA_SET: "ManifestWorkReplicaSet"}
MANAGED_CLUSTER = "kubernetes:cluster.open-cluster-management.io/v1:ManagedCluster"
KLUSTERLET = "kubernetes:operator.open-cluster-management.io/v1:Klusterlet"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE = "kubernetes:core/v1:Service"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
AKS_CLUSTER = "azure-native:containerservice:ManagedCluster"
KUBERNETES_PROVIDER = "pulumi:providers:kubernetes"
CLUSTER_MANAGER = "kubernetes:operator.open-cluster-management.io/v1:ClusterManager"
MANIFEST_WORK_REPLICA_SET = (
    "kubernetes:work.open-cluster-management.io/v1alpha1:ManifestWorkReplicaSet"
)
WORKLOADS = {
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:batch/v1:Job",
}
ALLOW_UNRESOLVED_IMAGES = "allowUnresolvedImages"

PUBLIC_ENTRY_LABEL = "ocm-fleet.io/public-entry"

# A stack-level violation: the message and the URN of the resource it is about.
StackViolation = tuple[str, str]


class _Unknown:
    """A value that `pulumi preview` cannot know yet (computed by a resource still to be made)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


def _get(obj: Any, *path: str) -> Any:
    """The value at `path` in nested mappings: None when absent, UNKNOWN when not known yet."""
    current = obj
    for key in path:
        if not isinstance(current, Mapping):
            return None
        try:
            current = current.get(key)
        except UnknownValueError:
            return UNKNOWN
        if current is None:
            return None
    return current


def _items(value: Any) -> list[Any] | _Unknown:
    """The elements of a list property (strings are not lists); UNKNOWN items stay UNKNOWN."""
    if value is UNKNOWN:
        return UNKNOWN
    if value is None or isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return []
    items: list[Any] = []
    for index in range(len(value)):
        try:
            items.append(value[index])
        except UnknownValueError:
            items.append(UNKNOWN)
    return items


def _is_open_cidr(cidr: Any) -> bool:
    """True for a range that admits every address (0.0.0.0/0, ::/0 and their spellings)."""
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False).prefixlen == 0
    except ValueError:
        return False


# 1. No Secret inside a ManifestWork -----------------------------------------------------------


def manifestwork_secret_violations(
    name: str, props: Mapping[str, Any], resource_type: str = MANIFEST_WORK
) -> list[str]:
    """Messages for every Kubernetes Secret carried in a ManifestWork's manifests, or in the
    template a ManifestWorkReplicaSet stamps into every chosen cluster."""
    kind = WORK_KIND[resource_type]
    manifests = _items(_get(props, *WORK_MANIFESTS[resource_type]))
    if manifests is UNKNOWN:
        return []
    violations = []
    for index, manifest in enumerate(manifests):
        if _get(manifest, "kind") != "Secret":
            continue
        secret_name = _get(manifest, "metadata", "name") or f"manifests[{index}]"
        violations.append(
            f"{kind} {name} carries the Secret {secret_name!r}: everything in a "
            "ManifestWork is stored in plain text on the hub. Create the Secret on the managed "
            "cluster directly with that cluster's Kubernetes provider instead."
        )
    return violations


def _validate_manifestwork_secrets(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in WORK_MANIFESTS:
        return
    for message in manifestwork_secret_violations(args.name, args.props, args.resource_type):
        report(message, None)


# 2. LoadBalancer Services: allowlisted, except the public entries ----------------------------

MAX_PUBLIC_ENTRIES = 2
"""The main cluster's entry and the second home's (`hub.standby`): one per main home."""


def _is_public_entry(props: Mapping[str, Any]) -> bool:
    labels = _get(props, "metadata", "labels")
    return isinstance(labels, Mapping) and _get(labels, PUBLIC_ENTRY_LABEL) == "true"


PUBLIC_LOAD_BALANCER = "ocm-fleet:index:PublicLoadBalancer"
"""The component that owns a public entry (components/edge/public_load_balancer.py)."""


def loadbalancer_violations(
    services: Iterable[tuple[str, Mapping[str, Any], str, str]],
) -> list[StackViolation]:
    """(message, urn) for every LoadBalancer Service open to the world, for a public entry that
    is not a PublicLoadBalancer's own Service, and for public entries beyond one per cluster or
    beyond the two main homes. `services` holds (urn, props, cluster, parent type) of every
    Service in the stack: the cluster is the URN of the Kubernetes provider the Service is
    created with ("" for the default one), the parent type that of the component it belongs to
    ("" for none)."""
    violations: list[StackViolation] = []
    public_entries: dict[str, list[str]] = {}
    for urn, props, cluster, parent_type in services:
        if _get(props, "spec", "type") != "LoadBalancer":
            continue
        if _is_public_entry(props):
            if parent_type != PUBLIC_LOAD_BALANCER:
                # The label alone would let any Service through: an entry is the one Service
                # a PublicLoadBalancer makes, one per main home.
                violations.append(
                    (
                        f"LoadBalancer Service {urn} is labelled {PUBLIC_ENTRY_LABEL}: "
                        f'"true" but is not the Service of a {PUBLIC_LOAD_BALANCER} (its parent '
                        f"is {parent_type or 'none'}). Only the public load balancer of a main "
                        "home is open to everyone: remove the label and give this Service "
                        "spec.loadBalancerSourceRanges.",
                        urn,
                    )
                )
                continue
            public_entries.setdefault(cluster, []).append(urn)
            continue
        ranges = _items(_get(props, "spec", "loadBalancerSourceRanges"))
        if ranges is UNKNOWN or UNKNOWN in ranges:
            # The allowlist is computed from egress IPs that `preview` cannot know yet; the
            # check runs again on the update, when they are.
            continue
        if not ranges:
            violations.append(
                (
                    f"LoadBalancer Service {urn} has no spec.loadBalancerSourceRanges, so it "
                    "accepts traffic from anywhere. List the CIDRs that may reach it (the egress "
                    f'IPs of its clients), or label it {PUBLIC_ENTRY_LABEL}: "true" if it is '
                    "the public entry of its main home.",
                    urn,
                )
            )
            continue
        open_ranges = sorted(r for r in ranges if _is_open_cidr(r))
        if open_ranges:
            violations.append(
                (
                    f"LoadBalancer Service {urn} allows {', '.join(open_ranges)} in "
                    "spec.loadBalancerSourceRanges, which admits every address. Replace it with "
                    "the CIDRs of the clients that need it.",
                    urn,
                )
            )
    for cluster, urns in sorted(public_entries.items()):
        if len(urns) > 1:
            listed = ", ".join(sorted(urns))
            on_cluster = f"provider {cluster}" if cluster else "the default provider"
            violations += [
                (
                    f"Service {urn} is one of {len(urns)} LoadBalancer Services labelled "
                    f'{PUBLIC_ENTRY_LABEL}: "true" on one cluster ({on_cluster}: {listed}); '
                    "a main home has exactly one public entry. Remove the label from all but "
                    "the public load balancer and give the others spec.loadBalancerSourceRanges.",
                    urn,
                )
                for urn in sorted(urns)
            ]
    clusters = sorted(c for c, urns in public_entries.items() if len(urns) == 1)
    if len(clusters) > MAX_PUBLIC_ENTRIES:
        every = sorted(urn for c in clusters for urn in public_entries[c])
        violations += [
            (
                f"Service {urn} is one of {len(every)} public entries on {len(clusters)} "
                f"clusters ({', '.join(every)}); the fleet has at most {MAX_PUBLIC_ENTRIES}, one "
                "on the main cluster and one on the second home (hub.standby).",
                urn,
            )
            for urn in every
        ]
    return violations


def _validate_loadbalancers(args: StackValidationArgs, report: ReportViolation) -> None:
    services = [
        (
            r.urn,
            r.props,
            r.provider.urn if r.provider is not None else "",
            r.parent.resource_type if r.parent is not None else "",
        )
        for r in args.resources
        if r.resource_type == SERVICE
    ]
    for message, urn in loadbalancer_violations(services):
        report(message, urn)


# 3. Kubernetes API servers open to the internet (advisory) ------------------------------------


def eks_endpoint_violations(name: str, props: Mapping[str, Any]) -> list[str]:
    """Messages when an EKS cluster's public API endpoint admits every address."""
    vpc_config = _get(props, "vpcConfig")
    public = _get(vpc_config, "endpointPublicAccess")
    if public is False:
        return []
    # EKS defaults: the public endpoint is on, and open to 0.0.0.0/0, unless told otherwise.
    cidrs = _items(_get(vpc_config, "publicAccessCidrs"))
    if cidrs is UNKNOWN or UNKNOWN in cidrs:
        return []
    if not cidrs or any(_is_open_cidr(c) for c in cidrs):
        return [
            f"EKS cluster {name} has a public API endpoint open to 0.0.0.0/0. Set "
            "vpcConfig.publicAccessCidrs to the apiAllowedCidrs (operators, CI, the hub's egress "
            "IPs), or turn endpointPublicAccess off and reach it through the private endpoint."
        ]
    return []


def aks_api_violations(name: str, props: Mapping[str, Any]) -> list[str]:
    """Messages when an AKS cluster's API server admits every address."""
    profile = _get(props, "apiServerAccessProfile")
    if _get(profile, "enablePrivateCluster") is True:
        return []
    ranges = _items(_get(profile, "authorizedIPRanges"))
    if ranges is UNKNOWN or UNKNOWN in ranges:
        return []
    if not ranges or any(_is_open_cidr(r) for r in ranges):
        return [
            f"AKS cluster {name} has an API server open to 0.0.0.0/0. Set "
            "apiServerAccessProfile.authorizedIPRanges to the apiAllowedCidrs (operators, CI, "
            "the hub's egress IPs), or make it a private cluster."
        ]
    return []


def _validate_open_api_servers(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == EKS_CLUSTER:
        messages = eks_endpoint_violations(args.name, args.props)
    elif args.resource_type == AKS_CLUSTER:
        messages = aks_api_violations(args.name, args.props)
    else:
        return
    for message in messages:
        report(message, None)


# 4. EKS secrets encrypted with KMS -------------------------------------------------------------


def eks_encryption_violations(name: str, props: Mapping[str, Any]) -> list[str]:
    """Messages when an EKS cluster does not envelope-encrypt Kubernetes Secrets with KMS."""
    config = _get(props, "encryptionConfig")
    # pulumi-aws 7 takes one object; older schemas took a list of them.
    configs = [config] if isinstance(config, Mapping) else _items(config)
    if configs is UNKNOWN or UNKNOWN in configs:
        return []
    for entry in configs:
        resources = _items(_get(entry, "resources"))
        key_arn = _get(entry, "provider", "keyArn")
        covers_secrets = resources is UNKNOWN or "secrets" in resources
        # An unknown key ARN is a key created in this same update: it is set.
        if covers_secrets and (key_arn is UNKNOWN or (isinstance(key_arn, str) and key_arn)):
            return []
    return [
        f"EKS cluster {name} does not encrypt Kubernetes Secrets with a KMS key. Set "
        'encryptionConfig with resources ["secrets"] and provider.keyArn of a KMS key '
        "(with key rotation on)."
    ]


def _validate_eks_encryption(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != EKS_CLUSTER:
        return
    for message in eks_encryption_violations(args.name, args.props):
        report(message, None)


# 5. ManifestWorks depend on their ManagedCluster and klusterlet ------------------------------


def _dependencies(resource: PolicyResource) -> list[PolicyResource]:
    direct = list(resource.dependencies or [])
    for deps in (resource.property_dependencies or {}).values():
        direct.extend(deps)
    return direct


def transitive_dependencies(resource: PolicyResource) -> dict[str, PolicyResource]:
    """Every resource `resource` depends on, directly or not, by URN."""
    seen: dict[str, PolicyResource] = {}
    stack = _dependencies(resource)
    while stack:
        dep = stack.pop()
        if dep.urn in seen:
            continue
        seen[dep.urn] = dep
        stack.extend(_dependencies(dep))
    return seen


def _managed_cluster_name(resource: PolicyResource) -> Any:
    return _get(resource.props, "metadata", "name")


def _klusterlet_cluster_name(resource: PolicyResource) -> Any:
    if resource.resource_type == KLUSTERLET:
        return _get(resource.props, "spec", "clusterName")
    if resource.resource_type == HELM_RELEASE:
        return _get(resource.props, "values", "klusterlet", "clusterName")
    return None


def manifestwork_dependency_violations(
    resources: Sequence[PolicyResource],
) -> list[StackViolation]:
    """(message, urn) for every ManifestWork that does not depend, transitively, on its
    cluster's ManagedCluster and klusterlet (which is what makes destroy remove it first), and
    for every ManifestWorkReplicaSet that does not depend on those of every cluster."""
    violations: list[StackViolation] = replica_set_dependency_violations(resources)
    for work in resources:
        if work.resource_type != MANIFEST_WORK:
            continue
        deps = transitive_dependencies(work).values()
        managed = [d for d in deps if d.resource_type == MANAGED_CLUSTER]
        cluster = _get(work.props, "metadata", "namespace")
        if cluster is UNKNOWN or cluster is None:
            # The namespace is computed from the ManagedCluster's name: that dependency names it.
            known = {_managed_cluster_name(m) for m in managed} - {UNKNOWN, None}
            if len(known) != 1:
                if not managed:
                    violations.append(
                        (
                            f"ManifestWork {work.urn} depends on no ManagedCluster. Give it "
                            "depends_on (or its namespace from) the ManagedCluster of its cluster.",
                            work.urn,
                        )
                    )
                continue
            cluster = known.pop()
        if not any(_managed_cluster_name(m) == cluster for m in managed):
            violations.append(
                (
                    f"ManifestWork {work.urn} must depend on the ManagedCluster {cluster!r}: "
                    "without it destroy can delete the cluster's registration first and leave the "
                    "ManifestWork's finalizer to hang. Add the ManagedCluster to its depends_on.",
                    work.urn,
                )
            )
        if not any(_klusterlet_cluster_name(d) == cluster for d in deps):
            violations.append(
                (
                    f"ManifestWork {work.urn} must depend on the klusterlet of {cluster!r} (its "
                    "Klusterlet CR or klusterlet chart): only the work agent removes a "
                    "ManifestWork's finalizer, so the agent must outlive it. Make the "
                    "ManagedCluster (or the ManifestWork) depend on the klusterlet.",
                    work.urn,
                )
            )
    return violations


def replica_set_dependency_violations(
    resources: Sequence[PolicyResource],
) -> list[StackViolation]:
    """(message, urn) for every ManifestWorkReplicaSet that does not depend on the ManagedCluster
    and klusterlet of every cluster in the stack: its placement may choose any of them, and
    with Foreground cascade deletion it is gone only once every ManifestWork it made is."""
    clusters = sorted(
        {_managed_cluster_name(r) for r in resources if r.resource_type == MANAGED_CLUSTER}
        - {UNKNOWN, None}
    )
    violations: list[StackViolation] = []
    for replica_set in resources:
        if replica_set.resource_type != REPLICA_SET:
            continue
        name = _get(replica_set.props, "metadata", "name")
        label = f"{replica_set.urn} ({name})" if isinstance(name, str) else replica_set.urn
        deps = transitive_dependencies(replica_set).values()
        managed = {_managed_cluster_name(d) for d in deps if d.resource_type == MANAGED_CLUSTER}
        agents = {_klusterlet_cluster_name(d) for d in deps}
        for cluster in clusters:
            if cluster not in managed:
                violations.append(
                    (
                        f"ManifestWorkReplicaSet {label} must depend on the "
                        f"ManagedCluster {cluster!r}: its placement may put a ManifestWork "
                        "there, and destroy must delete the replica set (which waits for its "
                        "ManifestWorks) before the cluster's registration.",
                        replica_set.urn,
                    )
                )
            if cluster not in agents:
                violations.append(
                    (
                        f"ManifestWorkReplicaSet {label} must depend on the klusterlet "
                        f"of {cluster!r}: only that cluster's work agent removes the finalizer "
                        "of the ManifestWork the replica set put there.",
                        replica_set.urn,
                    )
                )
    return violations


def _validate_manifestwork_dependencies(args: StackValidationArgs, report: ReportViolation) -> None:
    for message, urn in manifestwork_dependency_violations(args.resources):
        report(message, urn)


# 6. Kubeconfigs are secrets ---------------------------------------------------------------------


def _raw(props: Any) -> Any:
    """The plain dict behind pulumi_policy's proxies, in which secrets are still `Secret`s."""
    while not isinstance(props, dict) and isinstance(props, Mapping):
        try:
            props = props["__target"]
        except KeyError:
            break
    return props


def kubeconfig_secret_violation(name: str, props: Mapping[str, Any]) -> str | None:
    """The message when a Kubernetes provider's kubeconfig is set and not a secret.

    Only works on properties that keep secret markers: pulumi_policy gives those to remediations,
    and unwraps secrets before any validation sees them."""
    raw = _raw(props)
    if not isinstance(raw, Mapping):
        return None
    kubeconfig = raw.get("kubeconfig")
    if kubeconfig is None or isinstance(kubeconfig, Secret):
        return None
    return (
        f"Kubernetes provider {name} has a kubeconfig that is not a secret: it holds cluster "
        "credentials and would be stored in plain text in the state. Wrap it in "
        "pulumi.Output.secret(...); this policy marks it secret in the meantime."
    )


def remediate_kubeconfig_secret(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    """Returns the provider's properties with `kubeconfig` marked secret, when it was not."""
    if args.resource_type != KUBERNETES_PROVIDER:
        return None
    if kubeconfig_secret_violation(args.name, args.props) is None:
        return None
    raw = dict(_raw(args.props))
    raw["kubeconfig"] = Secret(raw["kubeconfig"])
    return raw


# Registration -----------------------------------------------------------------------------------

# 7. Images pinned by digest ---------------------------------------------------------------------


def _pod_images(obj: Any) -> list[Any]:
    spec = _get(obj, "spec", "template", "spec")
    if spec is UNKNOWN:
        return [UNKNOWN]
    images: list[Any] = []
    for field in ("initContainers", "containers"):
        containers = _items(_get(spec, field))
        if containers is UNKNOWN:
            return [UNKNOWN]
        images += [_get(c, "image") for c in containers]
    return images


def image_references(resource_type: str, props: Mapping[str, Any]) -> list[Any]:
    """Every image a resource deploys: its pods', those of the manifests it carries, the OCM
    CRs' image pull specs, the OCM charts' image overrides and the images other charts' values
    name (the monitoring charts')."""
    if resource_type in WORKLOADS:
        return _pod_images(props)
    if resource_type in (MANIFEST_WORK, MANIFEST_WORK_REPLICA_SET):
        path = ("spec", "workload", "manifests")
        if resource_type == MANIFEST_WORK_REPLICA_SET:
            path = ("spec", "manifestWorkTemplate", "workload", "manifests")
        manifests = _items(_get(props, *path))
        if manifests is UNKNOWN:
            return [UNKNOWN]
        return [image for manifest in manifests for image in _pod_images(manifest)]
    if resource_type in (CLUSTER_MANAGER, KLUSTERLET):
        spec = _get(props, "spec")
        if not isinstance(spec, Mapping):
            return []
        return [_get(spec, key) for key in sorted(spec) if key.endswith("ImagePullSpec")]
    if resource_type == HELM_RELEASE:
        overrides = _get(props, "values", "images", "overrides")
        found = []
        if isinstance(overrides, Mapping):
            found = [_get(overrides, key) for key in sorted(overrides) if _get(overrides, key)]
        return found + _chart_value_images(_get(props, "values"))
    return []


def _chart_value_images(values: Any) -> list[Any]:
    """Every image a chart's values name (a mapping with `repository` and `tag`, the shape the
    monitoring charts share), as a reference: with its digest when the mapping gives one
    (`digest`, `sha` with or without `sha256:`, or a tag that carries it)."""
    if values is UNKNOWN:
        return [UNKNOWN]
    if not isinstance(values, Mapping):
        return []
    found: list[Any] = []
    repository, tag = _get(values, "repository"), _get(values, "tag")
    if repository is not None and tag is not None:
        registry = _get(values, "registry")
        digest = _get(values, "digest") or _get(values, "sha")
        if UNKNOWN in (repository, tag, registry, digest):
            return [UNKNOWN]
        name = f"{registry}/{repository}" if registry else str(repository)
        if digest:
            found.append(f"{name}:{tag}@sha256:{str(digest).removeprefix('sha256:')}")
        else:
            found.append(f"{name}:{tag}")
    for key in sorted(values):
        value = _get(values, key)
        if isinstance(value, Mapping) or value is UNKNOWN:
            found += _chart_value_images(value)
    return found


def unpinned_image_violations(name: str, resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Messages for every image deployed by tag alone (not known yet: not judged)."""
    return [
        f"{name} deploys the image {image!r} by tag: a tag can be moved after review. Pin it by "
        "digest (scripts/resolve_digests.py fills components/images.yaml), or allow unresolved "
        f"images on purpose (policy config {ALLOW_UNRESOLVED_IMAGES}: true, which deploy.sh "
        "passes with --allow-unresolved-images)."
        for image in image_references(resource_type, props)
        if isinstance(image, str) and "@sha256:" not in image
    ]


def _validate_images(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if (args.get_config() or {}).get(ALLOW_UNRESOLVED_IMAGES) is True:
        return
    for message in unpinned_image_violations(args.name, args.resource_type, args.props):
        report(message, None)


no_secret_in_manifestwork = ResourceValidationPolicy(
    name="no-secret-in-manifestwork",
    description=(
        "No Kubernetes Secret inside a ManifestWork or a ManifestWorkReplicaSet's template: "
        "manifests are stored in plain text on the hub. Secrets are created on each managed "
        "cluster with that cluster's provider."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_manifestwork_secrets,
)

no_open_loadbalancer = StackValidationPolicy(
    name="no-open-loadbalancer",
    description=(
        "Every LoadBalancer Service has spec.loadBalancerSourceRanges without 0.0.0.0/0 or ::/0, "
        f'except the public entries, labelled {PUBLIC_ENTRY_LABEL}: "true": at most one per '
        f"cluster and {MAX_PUBLIC_ENTRIES} in the stack (the main cluster and the second home)."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_loadbalancers,
)

no_open_api_server = ResourceValidationPolicy(
    name="no-open-api-server",
    description=(
        "EKS public endpoints and AKS API servers are limited to allowlisted CIDRs, not open to "
        "0.0.0.0/0."
    ),
    enforcement_level=EnforcementLevel.ADVISORY,
    validate=_validate_open_api_servers,
)

eks_secrets_encrypted = ResourceValidationPolicy(
    name="eks-secrets-kms-encrypted",
    description="EKS clusters envelope-encrypt Kubernetes Secrets with a KMS key.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_eks_encryption,
)

manifestwork_depends_on_klusterlet = StackValidationPolicy(
    name="manifestwork-depends-on-cluster-and-klusterlet",
    description=(
        "Every ManifestWork depends, directly or not, on the ManagedCluster of its cluster and on "
        "that cluster's klusterlet, and every ManifestWorkReplicaSet on those of every cluster, "
        "so that destroy deletes them while the work agents still run."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_manifestwork_dependencies,
)

# pulumi_policy unwraps secrets before validations run, so no validation can tell a secret
# kubeconfig from a plain one; remediations do see the secret markers. This policy therefore
# remediates: a plain kubeconfig is turned into a secret before the engine stores it.
kubeconfig_is_secret = ResourceValidationPolicy(
    name="kubeconfig-is-secret",
    description=(
        "The kubeconfig of every Kubernetes provider is a Pulumi secret; a plain one is made "
        "secret before it is stored."
    ),
    enforcement_level=EnforcementLevel.REMEDIATE,
    remediate=remediate_kubeconfig_secret,
)

images_pinned_by_digest = ResourceValidationPolicy(
    name="images-pinned-by-digest",
    description=(
        "Every image the stack deploys (pods, ManifestWork payloads, OCM CR image specs, OCM "
        "chart image overrides, chart values' images) is pinned by digest, unless the policy "
        "config sets "
        f"{ALLOW_UNRESOLVED_IMAGES}: true."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_images,
    config_schema=PolicyConfigSchema(
        properties={ALLOW_UNRESOLVED_IMAGES: {"type": "boolean", "default": False}}
    ),
)

POLICIES = [
    no_secret_in_manifestwork,
    no_open_loadbalancer,
    no_open_api_server,
    eks_secrets_encrypted,
    manifestwork_depends_on_klusterlet,
    kubeconfig_is_secret,
    images_pinned_by_digest,
]
