"""How the program's own evaluation is set up: garbage collection, and aliases nothing can match."""

from __future__ import annotations

import gc

import pulumi

FULL_COLLECTION_THRESHOLD = 1_000_000
"""Young-generation collections between two full ones: in effect, none while the program runs."""


def prepare_evaluation() -> None:
    """Run before the first resource: both cut the SDK's work per resource, not what it sends."""
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


def _is_other_kubernetes_api_version(alias: object, type_: str) -> bool:
    """An alias that names only the same Kubernetes kind under another API version."""
    if not isinstance(alias, pulumi.Alias) or not isinstance(alias.type_, str):
        return False
    # Each field an Alias leaves unset is Ellipsis: the alias moves nothing but the type.
    if any(v is not ... for v in (alias.name, alias.parent, alias.stack, alias.project)):
        return False
    package, _, rest = alias.type_.partition(":")
    return (
        package == "kubernetes"
        and type_.startswith("kubernetes:")
        and alias.type_ != type_
        and rest.rpartition(":")[2] == type_.rpartition(":")[2]
    )


def _cannot_match(alias: object, type_: str) -> bool:
    return _is_versioned_azure_type(alias) or _is_other_kubernetes_api_version(alias, type_)


def _drop_aliases_nothing_can_match(
    args: pulumi.ResourceTransformationArgs,
) -> pulumi.ResourceTransformationResult | None:
    """Drop the aliases provider SDKs add for other API versions, before the SDK expands them.

    - Every azure-native resource carries one alias per API version of its type (113 on a
      ManagedCluster, e.g. `azure-native:containerservice/v20170831:ManagedCluster`), so that
      a stack built from a versioned module can move to the default one without a
      replacement.
    - Many Kubernetes kinds carry one per API version the kind once had
      (`kubernetes:extensions/v1beta1:NetworkPolicy`, the v1alpha1 and v1beta1 RBAC kinds),
      so that a resource declared under an older version keeps its state.

    The SDK turns each alias into several Outputs and tasks when the resource is
    constructed: with them, alias handling made most of the Outputs of a whole fleet, and a
    NetworkPolicy or ClusterRole cost about a third more than one without. This program
    declares only the default azure-native modules (`azure-native:containerservice:
    ManagedCluster`) and only the current Kubernetes versions (networking.k8s.io/v1,
    rbac.authorization.k8s.io/v1, apps/v1, policy/v1), so no resource of its stacks was
    ever recorded under one of those types: the aliases cannot match anything. Every other
    alias stays: one that also moves a name or a parent, and the ones a component sets
    (`eksAdminPrincipals` taking over the former deployer's access entry).
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
