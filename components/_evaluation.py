"""How the program's own evaluation is set up: garbage collection, and aliases nothing can match."""

from __future__ import annotations

import gc

import pulumi

FULL_COLLECTION_THRESHOLD = 1_000_000
"""Young-generation collections between two full ones: in effect, none while the program runs."""


def prepare_evaluation() -> None:
    """Run before the first resource: both cut the SDK's work per resource, not what it sends."""
    skip_full_garbage_collections()
    pulumi.runtime.register_stack_transformation(_drop_versioned_azure_aliases)


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


def _drop_versioned_azure_aliases(
    args: pulumi.ResourceTransformationArgs,
) -> pulumi.ResourceTransformationResult | None:
    """Drop the aliases azure-native adds for its API-versioned types, before the SDK expands them.

    Every azure-native resource carries one alias per API version of its type (113 on a
    ManagedCluster, e.g. `azure-native:containerservice/v20170831:ManagedCluster`), so that a
    stack built from a versioned module can move to the default one without a replacement.
    The SDK turns each alias into several Outputs when the resource is constructed: with
    them, alias handling made most of the Outputs of a whole fleet. This program
    declares only the default modules (`azure-native:containerservice:ManagedCluster`), so
    no resource of its stacks was ever recorded under a versioned type: those aliases cannot
    match anything. Every other alias (Kubernetes API versions, any a component sets) stays.
    """
    aliases = args.opts.aliases
    if not aliases:
        return None
    kept = [a for a in aliases if not _is_versioned_azure_type(a)]
    if len(kept) == len(aliases):
        return None
    opts = args.opts._copy()
    opts.aliases = kept
    return pulumi.ResourceTransformationResult(props=args.props, opts=opts)
