"""What the stack's last run exported: the clusters it had, their egress and EKS names, and
which revision of the app each ran."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pulumi

from components.config import NAMESPACE, ClusterSpec, FleetConfig

CLUSTER_OUTPUTS = ("clusters", "retiringClusters", "hubStandby")
OUTPUTS_READ = (*CLUSTER_OUTPUTS, "hub", "app")
"""Stack outputs that map each cluster's name to a description with `egressIps` (and, for EKS
clusters, `cloudName` and `logGroup`; for AKS clusters, `nodeSize`, `firstPoolSize`,
`azureName`, `kubernetesVersion` and `controlPlaneIdentity`; for the hub, `databaseStorage`);
and `app`, whose `clusters` map each cluster the app was placed on to the `revision` it ran,
and whose `strategy` is the rollout type that run used."""
UNKNOWN_REVISION = "unknown"
"""The revision of a cluster the last run listed without saying what it ran (a stack from
before the `app` output): some earlier version, to be protected like any other."""

USER_ASSIGNED, SYSTEM_ASSIGNED = "userAssigned", "systemAssigned"
ZONE_REDUNDANT, CLUSTER_DEFAULT = "zoneRedundant", "clusterDefault"


class PhysicalNameError(pulumi.RunError):
    """An EKS cluster's name would change without the user asking for it (a replacement)."""


class NodeSizeError(pulumi.RunError):
    """An AKS cluster's nodes would move to a new pool the program cannot place."""


def same_size(a: str, b: str) -> bool:
    """Whether two VM size names are one size: Azure reads them without regard to case."""
    return a.strip().casefold() == b.strip().casefold()


@dataclass(frozen=True)
class AksPools:
    """Which pools an AKS cluster's nodes run in, from its entry and the stack's last run.

    AKS cannot change a pool's VM size, and a cluster's first pool (the one created with it,
    inline in the ManagedCluster) can neither be removed nor be joined by another through the
    cluster resource (components/clusters/node_pool_changes.py). So the first pool keeps the
    size it was created with for the cluster's life; while `size` is that size the nodes run
    there, otherwise in a separate pool of `size` and the first pool is emptied.
    """

    size: str
    """The nodeSize (as the last run wrote it when only its case or spacing differs)."""
    first_size: str
    """The VM size of the cluster's first pool."""
    cluster_name: str | None = None
    """The ManagedCluster's Azure name, from the last run: a separate pool is added to it
    without waiting for the cluster, so that the cluster can wait for the pool instead."""
    pool_version: str | None = None
    """The Kubernetes version the pools run, when it must lag behind the control plane's for
    this run (see `aks_pools`); None: the configured version."""

    @property
    def separate(self) -> bool:
        """Whether the nodes run in a pool of their own instead of the first pool."""
        return not same_size(self.size, self.first_size)


def departing_egress(outputs: Mapping[str, Any] | None, fleet: FleetConfig) -> list[str]:
    """Egress CIDRs of app clusters the last run exported and the config no longer lists.

    Pulumi deletes removed resources last, after every update (pulumi/pulumi#9979). The hub's
    API allowlist is updated first, so a cluster whose entry was removed outright would lose
    access to the hub while its ManifestWorks still wait for its agent to remove their
    finalizers. Keeping its addresses for the run that deletes it lets the agent finish; the
    next run no longer sees the cluster in the outputs and drops them.
    """
    current = {c.name for c in fleet.all_clusters}
    cidrs: set[str] = set()
    for name, cluster in _described(outputs).items():
        if name not in current:
            cidrs.update(c for c in cluster.get("egressIps") or [] if isinstance(c, str))
    return sorted(cidrs)


def checked_cloud_name(
    outputs: Mapping[str, Any] | None, spec: ClusterSpec, index: int, key: str | None = None
) -> str:
    """`spec.cloud_name`, once it is known not to rename an EKS cluster the stack already has.

    EKS cluster names cannot change in place. Stacks from before names carried the stack
    exported no `cloudName`: their clusters are named after the entry alone. Unless the entry
    says `physicalName`, a different name would replace the cluster, so the run stops here.
    """
    key = key or f"{NAMESPACE}:clusters[{index}]"
    before = _described(outputs).get(spec.name)
    if before is None or spec.physical_name is not None:
        return spec.cloud_name
    previous = before.get("cloudName") or spec.name
    if previous != spec.cloud_name:
        raise PhysicalNameError(
            f"{key}.physicalName: missing; the EKS cluster of "
            f"{spec.name!r} is named {previous!r} in this stack, and the name it would get "
            f"now, {spec.cloud_name!r}, would replace the cluster. Set physicalName: "
            f"{previous} to keep it (see docs/day-2.md, upgrading a stack created before these "
            "changes)"
        )
    return spec.cloud_name


def aks_pools(outputs: Mapping[str, Any] | None, spec: ClusterSpec, key: str) -> AksPools:
    """Where the nodes of the AKS cluster of `spec` run (see `AksPools`).

    A new cluster, or one the last run had in another region (a new location replaces it),
    starts with its nodes in its first pool. Stacks last updated before the first pool's size
    was exported recorded it as `nodeSize`, which could not change then.

    While the nodes are, or were in the last run, in a separate pool, the cluster waits for that
    pool, so a pool would be upgraded before the control plane, and AKS refuses a pool newer
    than its control plane. A new kubernetesVersion then upgrades the control plane only, the
    pools keep the version the last run gave the control plane, and the next run upgrades them.
    """
    before = _described(outputs, with_hub=True).get(spec.name) or {}
    if before.get("region", spec.region) != spec.region:
        before = {}
    first = _text(before, "firstPoolSize") or _text(before, "nodeSize") or spec.node_size
    last_size = _text(before, "nodeSize")
    size = last_size if last_size and same_size(last_size, spec.node_size) else spec.node_size
    were_separate = bool(last_size) and not same_size(last_size, first)
    last_version = _text(before, "kubernetesVersion")
    pools = AksPools(size=size, first_size=first, cluster_name=_text(before, "azureName"))
    if (pools.separate or were_separate) and last_version not in (None, spec.kubernetes_version):
        pools = replace(pools, pool_version=last_version)
    if pools.separate and pools.cluster_name is None:
        raise NodeSizeError(
            f"{key}.nodeSize: {spec.node_size!r} would move the nodes of {spec.name!r} off "
            f"its first pool ({first!r}) into a new pool, and the stack's last run did not "
            "record the AKS cluster's Azure name that pool is added to (it was made by an "
            f"earlier version of this program). Run `pulumi up` once with nodeSize {first!r}, "
            f"then set {spec.node_size!r} (docs/day-2.md, change node sizes and counts)"
        )
    return pools


def app_revisions(outputs: Mapping[str, Any] | None) -> dict[str, str]:
    """App cluster -> the revision of the app it ran at the stack's last run.

    Read from the `app` output (the rollout status of each cluster the Placement chose); a
    cluster listed there with no revision had no app yet and is left out. A stack whose last
    run exported clusters but no such map ran the app under an earlier version of this
    program: its clusters count as running UNKNOWN_REVISION. A new stack ran nothing.
    """
    app = (outputs or {}).get("app")
    placed = app.get("clusters") if isinstance(app, Mapping) else None
    if isinstance(placed, Mapping):
        return {
            name: c["revision"]
            for name, c in placed.items()
            if isinstance(c, Mapping) and isinstance(c.get("revision"), str) and c["revision"]
        }
    described = (outputs or {}).get("clusters")
    if isinstance(described, Mapping):
        return dict.fromkeys(described, UNKNOWN_REVISION)
    return {}


def last_strategy(outputs: Mapping[str, Any] | None) -> str | None:
    """The rollout type (`All` or `Progressive`) the last run gave the app, if it said."""
    app = (outputs or {}).get("app")
    strategy = app.get("strategy") if isinstance(app, Mapping) else None
    return strategy if isinstance(strategy, str) else None


def _existing(outputs: Mapping[str, Any] | None, spec: ClusterSpec) -> Mapping[str, Any] | None:
    """The last run's description of the cluster of `spec`, if that run built it on the same
    cloud and in the same region (else this run builds a new one)."""
    before = _described(outputs, with_hub=True).get(spec.name)
    if before is None or before.get("cloud", spec.cloud) != spec.cloud:
        return None
    return before if before.get("region", spec.region) == spec.region else None


class KeptChoiceError(pulumi.RunError):
    """A default for new clusters would change what a cluster of the stack already has."""


def checked_aks_identity(outputs: Mapping[str, Any] | None, spec: ClusterSpec, key: str) -> str:
    """The control-plane identity of the AKS cluster of `spec`, once it is known not to switch
    one the stack already has without the user asking.

    New clusters get a user-assigned identity (`controlPlaneIdentity` unset), whose rights exist
    before the cluster. Clusters from before recorded none and are system-assigned: unless the
    entry says which it wants, the run stops here, as `checked_cloud_name` does for EKS names.
    """
    chosen = spec.control_plane_identity or USER_ASSIGNED
    before = _existing(outputs, spec)
    if before is None or spec.control_plane_identity is not None:
        return chosen
    has = _text(before, "controlPlaneIdentity") or SYSTEM_ASSIGNED
    if has != chosen:
        raise KeptChoiceError(
            f"{key}.controlPlaneIdentity: missing; the AKS cluster of {spec.name!r} runs a "
            f"{has} identity, and the {chosen} one new clusters get would switch it (its "
            f"control plane restarts). Set controlPlaneIdentity: {has} to keep it, or "
            f"{chosen} to switch (docs/day-2.md, stacks from before the cloud-path changes)"
        )
    return chosen


def default_database_storage(hub: ClusterSpec) -> str:
    """`databaseStorage` when set; else zone-redundant on an AKS hub in a region with zones."""
    if hub.database_storage is not None:
        return hub.database_storage
    # Imported here: the components.clusters package imports this module.
    from components.clusters._azure_zones import zones_for

    zoned = hub.cloud == "azure" and zones_for(hub.region) is not None
    return ZONE_REDUNDANT if zoned else CLUSTER_DEFAULT


def checked_database_storage(outputs: Mapping[str, Any] | None, hub: ClusterSpec) -> str:
    """The hub's database disk, once it is known not to move a volume the stack already has.

    A claim's class cannot change in place, so a new disk is a new, empty volume. Hubs from
    before recorded none and use the cluster's default class: unless `databaseStorage` says,
    a default that differs stops the run here."""
    chosen = default_database_storage(hub)
    before = _existing(outputs, hub)
    if before is None or hub.database_storage is not None:
        return chosen
    has = _text(before, "databaseStorage") or CLUSTER_DEFAULT
    if has != chosen:
        raise KeptChoiceError(
            f"{NAMESPACE}:hub.databaseStorage: missing; the database of this stack is on a "
            f"{has} disk, and the {chosen} disk a new hub gets would move it to a new, empty "
            f"volume. Set databaseStorage: {has} to keep it, or {chosen} to move after a dump "
            "(docs/day-2.md, stacks from before the cloud-path changes)"
        )
    return chosen


def checked_log_group(outputs: Mapping[str, Any] | None, spec: ClusterSpec, key: str) -> bool:
    """Whether this run imports the EKS cluster's control-plane log group (`importLogGroup`),
    once that is known to be what the cluster needs.

    A cluster from before the group was in the program already has it: EKS made it on the
    first log, and CloudWatch refuses a second of that name (ResourceAlreadyExistsException).
    It takes one run with `importLogGroup: true`; the next, without it, applies the retention.
    """
    before = _existing(outputs, spec)
    outside = before is not None and _text(before, "logGroup") is None
    group = f"/aws/eks/{spec.cloud_name}/cluster"
    if outside and not spec.import_log_group:
        raise KeptChoiceError(
            f"{key}.importLogGroup: missing; EKS made the log group {group} of {spec.name!r} "
            "itself, outside the program, so creating it would fail. Set importLogGroup: true "
            "for one run to import it, then remove it so that the next run applies "
            "controlPlaneLogRetentionDays (docs/day-2.md, stacks from before the cloud-path "
            "changes)"
        )
    if spec.import_log_group and not outside:
        where = "is in the program already" if before is not None else "is new"
        raise KeptChoiceError(
            f"{key}.importLogGroup: true, but the cluster {spec.name!r} {where}: there is no "
            f"log group {group} to import. Remove importLogGroup"
        )
    return spec.import_log_group


def _text(described: Mapping[str, Any], key: str) -> str | None:
    value = described.get(key)
    return value if isinstance(value, str) and value else None


def _described(
    outputs: Mapping[str, Any] | None, *, with_hub: bool = False
) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    hub = (outputs or {}).get("hub")
    if with_hub and isinstance(hub, Mapping) and isinstance(hub.get("name"), str):
        found[hub["name"]] = hub
    for key in CLUSTER_OUTPUTS:
        described = (outputs or {}).get(key) or {}
        if isinstance(described, Mapping):
            found.update({n: c for n, c in described.items() if isinstance(c, Mapping)})
    return found


class PreviousRun:
    """This very stack's last outputs, read through a StackReference.

    The reference reads state the backend already holds: known in preview as in update, and
    empty on a stack's first run.
    """

    def __init__(self, fleet: FleetConfig) -> None:
        self.fleet = fleet
        own = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
        reference = pulumi.StackReference("previous-run", stack_name=own)
        # Output by output: the kubeconfigs output is secret and would taint a read of all.
        self.outputs: pulumi.Output[dict[str, Any]] = pulumi.Output.all(
            *[reference.get_output(key) for key in OUTPUTS_READ]
        ).apply(lambda values: dict(zip(OUTPUTS_READ, values, strict=True)))

    def departing_egress(self) -> pulumi.Output[list[str]]:
        """See `departing_egress`."""
        return self.outputs.apply(lambda outputs: departing_egress(outputs, self.fleet))

    def aks_pools(self, spec: ClusterSpec) -> pulumi.Output[AksPools]:
        """See `aks_pools`; the AKS cluster's pools wait for it."""
        key = _config_key(self.fleet, spec)
        return self.outputs.apply(lambda outputs: aks_pools(outputs, spec, key))

    def app_revisions(self) -> pulumi.Output[dict[str, str]]:
        """See `app_revisions`."""
        return self.outputs.apply(app_revisions)

    def last_strategy(self) -> pulumi.Output[str | None]:
        """See `last_strategy`."""
        return self.outputs.apply(last_strategy)

    def aks_identity(self, spec: ClusterSpec) -> pulumi.Output[str]:
        """See `checked_aks_identity`; the AKS cluster and its identity wait for this check."""
        key = _config_key(self.fleet, spec)
        return self.outputs.apply(lambda outputs: checked_aks_identity(outputs, spec, key))

    def database_storage(self) -> pulumi.Output[str]:
        """See `checked_database_storage`; the database's volume waits for this check."""
        hub = self.fleet.hub
        return self.outputs.apply(lambda outputs: checked_database_storage(outputs, hub))

    def log_group(self, spec: ClusterSpec) -> pulumi.Output[bool]:
        """See `checked_log_group`; the log group and the EKS cluster wait for this check."""
        key = _config_key(self.fleet, spec)
        return self.outputs.apply(lambda outputs: checked_log_group(outputs, spec, key))

    def cloud_name(self, spec: ClusterSpec) -> pulumi.Output[str]:
        """See `checked_cloud_name`; the EKS cluster waits for this check."""
        key = _config_key(self.fleet, spec)
        return self.outputs.apply(lambda outputs: checked_cloud_name(outputs, spec, -1, key))


def _config_key(fleet: FleetConfig, spec: ClusterSpec) -> str:
    if spec is fleet.hub:
        return f"{NAMESPACE}:hub"
    if spec is fleet.hub_standby:
        return f"{NAMESPACE}:hub.standby"
    return f"{NAMESPACE}:clusters[{[c.name for c in fleet.clusters].index(spec.name)}]"


def union_of_egress(*cidr_lists: pulumi.Input[Iterable[str]]) -> pulumi.Output[list[str]]:
    """The sorted union of several egress lists (Outputs or plain)."""
    return pulumi.Output.all(*cidr_lists).apply(
        lambda lists: sorted({cidr for cidrs in lists for cidr in cidrs})
    )
