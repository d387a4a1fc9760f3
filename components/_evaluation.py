"""How the program's own evaluation is set up: garbage collection, and aliases nothing can match."""

from __future__ import annotations

import gc

import pulumi

FULL_COLLECTION_THRESHOLD = 1_000_000
"""Young-generation collections between two full ones: in effect, none while the program runs."""


def prepare_evaluation() -> None:
    """Run before the first resource: both cut the SDK's work per resource.

    What reaches the engine changes only by the aliases no stack of this program can match.
    """
    skip_full_garbage_collections()
    pulumi.runtime.register_stack_transformation(_drop_aliases_nothing_can_match)


def skip_full_garbage_collections() -> None:
    """Keep CPython's young-generation collections and leave out its full ones.

    The SDK keeps every resource's Outputs, futures and tasks alive until the program ends,
    and they form almost no reference cycles. A full collection scans all of them, so each
    one costs more as the fleet grows and there are more of them: measured under mocks with
    30 app clusters, full collections took 60 % of the evaluation and made the time per
    resource grow with the fleet (bench/program_eval.py). Young collections still free the
    short-lived cycles; the process ends with the program, which returns the rest.
    """
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, FULL_COLLECTION_THRESHOLD)


def _is_versioned_azure_type(alias: object) -> bool:
    type_ = getattr(alias, "type_", None)
    if not isinstance(alias, pulumi.Alias) or not isinstance(type_, str):
        return False
    package, _, rest = type_.partition(":")
    module = rest.split(":", 1)[0]
    return package == "azure-native" and "/v" in module


def _rbac(kind: str) -> frozenset[str]:
    return frozenset(
        f"kubernetes:rbac.authorization.k8s.io/{v}:{kind}" for v in ("v1alpha1", "v1beta1")
    )


KUBERNETES_SDK_ALIASES: dict[str, frozenset[str]] = {
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": frozenset(
        {"kubernetes:extensions/v1beta1:NetworkPolicy"}
    ),
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole": _rbac("ClusterRole"),
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": _rbac("ClusterRoleBinding"),
    "kubernetes:apps/v1:Deployment": frozenset(
        {
            "kubernetes:apps/v1beta1:Deployment",
            "kubernetes:apps/v1beta2:Deployment",
            "kubernetes:extensions/v1beta1:Deployment",
        }
    ),
    "kubernetes:apps/v1:StatefulSet": frozenset(
        {"kubernetes:apps/v1beta1:StatefulSet", "kubernetes:apps/v1beta2:StatefulSet"}
    ),
    "kubernetes:policy/v1:PodDisruptionBudget": frozenset(
        {"kubernetes:policy/v1beta1:PodDisruptionBudget"}
    ),
    "kubernetes:storage.k8s.io/v1:StorageClass": frozenset(
        {"kubernetes:storage.k8s.io/v1beta1:StorageClass"}
    ),
    "kubernetes:discovery.k8s.io/v1:EndpointSlice": frozenset(
        {"kubernetes:discovery.k8s.io/v1beta1:EndpointSlice"}
    ),
}
"""Per built-in Kubernetes kind the program declares, the aliases pulumi-kubernetes adds to it:
the kind under the API versions it had before (tests/test_evaluation.py checks each entry
against the SDK's classes, and that no other type-only alias reaches the engine)."""


def _is_kubernetes_sdk_alias(alias: object, type_: str) -> bool:
    """An alias pulumi-kubernetes adds to `type_`: only a type, one of the kind's older versions."""
    if not isinstance(alias, pulumi.Alias):
        return False
    # Each field an Alias leaves unset is Ellipsis: the alias moves nothing but the type.
    if any(v is not ... for v in (alias.name, alias.parent, alias.stack, alias.project)):
        return False
    return alias.type_ in KUBERNETES_SDK_ALIASES.get(type_, ())


def _cannot_match(alias: object, type_: str) -> bool:
    return _is_versioned_azure_type(alias) or _is_kubernetes_sdk_alias(alias, type_)


def _drop_aliases_nothing_can_match(
    args: pulumi.ResourceTransformationArgs,
) -> pulumi.ResourceTransformationResult | None:
    """Drop the aliases provider SDKs add for other API versions, before the SDK expands them.

    - Every azure-native resource carries one alias per API version of its type (113 on a
      ManagedCluster, e.g. `azure-native:containerservice/v20170831:ManagedCluster`), so that
      a stack built from a versioned module can move to the default one without a
      replacement.
    - pulumi-kubernetes gives a built-in kind one alias per API version the kind had before
      (KUBERNETES_SDK_ALIASES: `extensions/v1beta1` for NetworkPolicy, v1alpha1 and v1beta1
      for the RBAC kinds, ...), so that a resource declared under an older version keeps its
      state.

    The SDK turns each alias into Outputs and tasks when the resource is constructed: with
    them, alias handling made most of the Outputs of a whole fleet, and the Kubernetes ones
    about seven tasks each (22.4 tasks per resource with them, 19.9 without, at 30 app
    clusters, counted the way bench/program_eval.py counts). This program declares
    only the default azure-native modules (`azure-native:containerservice:ManagedCluster`)
    and those built-in kinds only at their current versions, so no resource of its stacks
    was ever recorded under one of those types: the aliases cannot match anything. Every
    other alias stays: one that also moves a name or a parent, one on a custom resource
    (Placement, ManifestWorkReplicaSet), and those a component sets (`eksAdminPrincipals`
    taking over the former deployer's access entry).
    """
    aliases = args.opts.aliases
    if not aliases:
        return None
    kept = [a for a in aliases if not _cannot_match(a, args.type_)]
    if len(kept) == len(aliases):
        return None
    opts = args.opts._copy()
    opts.aliases = kept
    return pulumi.ResourceTransformationResult(props=args.props, opts=opts)
