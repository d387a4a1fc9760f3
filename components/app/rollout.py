"""The bookstore on every serving cluster through one OCM ManifestWorkReplicaSet, rolled out
progressively: canary first, then the rest a few at a time, halting on failure. A delivery that
changes nothing any cluster runs (a new fleet, an added cluster) goes to all at once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.app.delivery import APP_NAMESPACE
from components.app.rollout_status import (
    RolloutStatus,
    RolloutStatusArgs,
    rollout_budget_seconds,
)
from components.config import RolloutSpec
from components.ocm import _charts as _ocm
from components.ocm.hub import OcmHub
from components.ocm.managed_cluster import (
    HUB_CONNECTION_TIMEOUT_SECONDS,
    LEASE_DURATION_SECONDS,
)

APP_ROLLOUT_TYPE = "ocm-fleet:index:AppRollout"

PLACEMENT_NAME = "bookstore"
REPLICA_SET_NAME = "bookstore"
CANARY_GROUP = "canary"
REVISION_LABEL = f"{_ocm.LABEL_PREFIX}/revision"
"""On the replica set, and so on every ManifestWork it stamps: a digest of the template. The
controller copies the replica set's labels into each ManifestWork when it applies it
(manifestworkreplicaset_deploy_reconcile.go, buildManifestWork), so a work not yet reached by a
rollout keeps the previous revision's label."""
REPLICA_SET_LABEL = "work.open-cluster-management.io/manifestworkreplicaset"
"""Label the controller puts on every ManifestWork it makes, valued `<namespace>.<name>`
(buildManifestWork: ManifestWorkReplicaSetControllerNameLabelKey)."""

TOLERATION_SECONDS = 60
"""How long the app stays on a cluster the hub has tainted unreachable or unavailable.

The taint appears once the lease is 5 x LEASE_DURATION_SECONDS old; tolerating it a further
minute keeps a short hub-side outage (an API server upgrade, a network blip) from moving the app
to a standby and back, each move restarting it. Past this the placement drops the cluster
(placement/plugins/tainttoleration/taint_toleration.go, isTolerationTimeExpired: tolerated
until taint.TimeAdded + tolerationSeconds, requeued for that moment)."""

TAKEOVER_BUDGET_SECONDS = {
    "lease lapses (5 x leaseDurationSeconds)": 5 * LEASE_DURATION_SECONDS,
    "taint tolerated (tolerationSeconds)": TOLERATION_SECONDS,
    "placement + replica set + work agent apply": 10,
    "pods ready (image pull, shopapi readiness)": 90,
    "public LB rise (2 checks x 2 s)": 4,
}
"""The expected takeover time of a standby, part by part (docs/rollout-and-failover.md)."""

# How an agent that moves to the standby OCM hub gets the app there, and why well inside the
# work agent's appliedManifestWorkEvictionGracePeriod (60 minutes, managed_cluster.py). The
# standby hub declares the same Placement and the same ManifestWork template as the main hub;
# only the rollout differs (`All`, AppRolloutArgs.on_standby_hub):
# - Before any move, every standby ManagedCluster is tainted unreachable from the start (no
#   Available condition: registration/hub/taint/controller.go (sync), `cond == nil`), the
#   toleration has expired, and the Placement chooses nobody. No agent has seen the standby's
#   ManifestWorks, so they carry no finalizer (the work agent adds it:
#   work/spoke/controllers/finalizercontroller/add_finalizer_controller.go) and go at once.
# - An agent that arrives registers, its cluster turns Available and the taint is removed
#   (taint controller, `cond.Status == True`). The scheduler reschedules on that update
#   (placement/controllers/scheduling/cluster_event_handler.go (OnUpdate)) and picks the
#   available candidates as the main hub did: same spec, Exact with no prioritizer, so by name,
#   serving first. Lost clusters stay tainted and filtered, canaries or not.
# - `All` hands every decided cluster its ManifestWork at once: getRolloutAllClusters runs
#   progressivePerCluster with the rollout size set to every cluster and no minSuccessTime
#   (sdk-go/pkg/apis/cluster/v1alpha1/rollout.go). Progressive would roll the decided canaries
#   first and give no other cluster its work until they had succeeded and soaked
#   minSuccessTime, then step maxConcurrency at a time with the same soak
#   (getProgressiveClusters): steps x (ready + minSuccessTime) per move, and a canary arriving
#   late halts the clusters arriving after it. Lost canaries do not block it, though: they stay
#   tainted, are not decided, and the mandatory group holds only decided clusters
#   (pdTracker.ExistingClusterGroups).
# - The work agent applies objects byte-identical to those running: they gain the standby's
#   AppliedManifestWork as a second owner and nothing restarts. The old hub's one is evicted
#   after the grace period whether or not the new hub has the work
#   (unmanaged_appliedmanifestwork_controller.go (sync): "manifestwork exists but hub
#   changed"), and evicting it only removes its owner reference where another
#   AppliedManifestWork owns the object (work/helper/helpers.go (DeleteAppliedResources)).
# The arithmetic, from the lost main cluster to the app delivered (docs/standby-hub.md):
STANDBY_HUB_MOVE_SECONDS = {
    "lease on the main hub stale (hubConnectionTimeoutSeconds) + one check (60 s)": (
        HUB_CONNECTION_TIMEOUT_SECONDS + 60
    ),
    "agent container restarted (kubelet back-off)": 10,
    "main hub's bootstrap kubeconfig tried twice (client-go dial 30 s + TLS 10 s)": 2 * (30 + 10),
    "bootstrap on the standby hub (CSR auto-approved, hub kubeconfig written)": 30,
}
"""Upper bound of one agent's move, part by part (modeled: the first from the source, the rest
from client-go's transport defaults and a CSR round trip)."""
STANDBY_HUB_DELIVERY_SECONDS = {
    "cluster Available, taint removed, placement, replica set All, work agent apply": 10,
}
"""From the agent's arrival to its ManifestWork applied (modeled, as in TAKEOVER_BUDGET_SECONDS):
the time that counts against the eviction grace period, which starts when the work agent first
runs against the standby hub."""


# A Deployment is still progressing until the controller has seen its latest spec and every
# replica is updated and available with no old pod left. The rule is on every Deployment and the
# agent ORs Progressing across manifests (work/spoke/conditions/helpers.go,
# newAggregateConditionFromRules: Progressing is True if any manifest's is), so the work counts
# as Progressing=False, "succeeded", only when the whole app is ready. Without a rule the work's
# Progressing turns False as soon as the objects are applied, before any pod runs.
# `has(object.status) && ...` keeps a missing field from being an evaluation error, which the
# agent would report as False (conditions/reader.go, evaluateCelExpressions), i.e. "done".
DEPLOYMENT_PROGRESSING = (
    "!(has(object.status)"
    " && has(object.status.observedGeneration)"
    " && object.status.observedGeneration >= object.metadata.generation"
    " && (has(object.status.updatedReplicas) ? object.status.updatedReplicas : 0)"
    " == object.spec.replicas"
    " && (has(object.status.availableReplicas) ? object.status.availableReplicas : 0)"
    " == object.spec.replicas"
    " && (has(object.status.replicas) ? object.status.replicas : 0) == object.spec.replicas)"
)


@dataclass(frozen=True, kw_only=True)
class AppRolloutArgs:
    hub_provider: k8s.Provider
    """Provider of the main cluster, where the Placement and replica set live."""
    ocm_hub: OcmHub
    """The hub; its ClusterManager comes first."""
    namespace: pulumi.Input[str]
    """The fleet namespace on the hub, bound to the cluster set."""
    binding: pulumi.Resource
    """The ManagedClusterSetBinding that makes the cluster set usable in that namespace."""
    serving: Sequence[str]
    """Names of the serving app clusters: the Placement picks this many."""
    standby: Sequence[str] = ()
    """Names of the standby app clusters: candidates picked only for a lost serving cluster."""
    memberships: Sequence[pulumi.Resource]
    """Every candidate's ManagedCluster and Klusterlet CR: the replica set is deleted, and with it
    every ManifestWork, while each cluster's agent still runs."""
    cluster_parts: Sequence[pulumi.Resource]
    """What every candidate's ManifestWork needs on its cluster (AppDelivery.work_needs: the
    namespace, credentials, permissions): the works wait for them, and are gone before them on
    destroy. Not the edges: their load balancers are needed by the public entry only."""
    manifests: Sequence[Mapping[str, Any]]
    """The template's objects, placed in the app namespace (delivery.workload_manifests)."""
    rollout: RolloutSpec
    """Canary, concurrency, soak, deadline and failure budget."""
    hub_kubeconfig: pulumi.Input[str]
    """Admin kubeconfig of the main cluster (secret), for reading the rollout's outcome."""
    hub_context: str | None = None
    """Its context, for a main cluster of `cloud: existing`."""
    ready_after: Sequence[pulumi.Resource] = ()
    """Resources the app needs before any cluster runs it (the database schema)."""
    delivered: pulumi.Input[Mapping[str, str]] | None = None
    """Cluster -> the revision it ran at the stack's last run (PreviousRun.app_revisions); None
    when unknown, which treats every delivery as a change to protect."""
    last_strategy: pulumi.Input[str | None] = None
    """The rollout type the last run used (PreviousRun.last_strategy), kept while nothing is to
    be delivered so that a run that changes nothing shows no diff."""
    on_standby_hub: bool = False
    """This is the standby OCM hub's copy (`hub.standby.ocmHub`): rolled out `All`, and not
    waited for, since no agent is on that hub until the main cluster is lost (see
    `STANDBY_HUB_DELIVERY`)."""


class AppRollout(pulumi.ComponentResource):
    """Creates, on the hub in the fleet namespace:

    - the Placement `bookstore`: `numberOfClusters` = the serving clusters, every serving and
      standby cluster a candidate, the canaries a decision group of their own, tolerations of
      the unreachable/unavailable taints for TOLERATION_SECONDS, and prioritizerPolicy mode
      Exact with no prioritizer so that serving clusters (which sort first by name) win;
    - the ManifestWorkReplicaSet `bookstore`: one ManifestWork template for every chosen
      cluster, rolled out Progressive with the canary group mandatory, and Foreground cascade
      deletion so that deleting it waits until every ManifestWork is gone;
    - a RolloutStatus (rollout_status.py) that holds `pulumi up` until the rollout completed
      everywhere, or fails it naming the clusters that failed and those still on the previous
      version.

    Destroy: with cascadeDeletionPolicy Foreground the replica set's finalizer first deletes
    every ManifestWork it made, then stays until none is left
    (manifestworkreplicaset_finalize_reconcile.go, finalizeReconciler.reconcile:
    finalizeManifestWorkReplicaSet, then "remove finalizer until all works are gone if
    deletionPolicy is Foreground"). A ManifestWork goes only when its cluster's work agent has
    removed what it applied. So the replica set depends on every candidate's ManagedCluster and
    Klusterlet CR (and through them the agent's chart and the cluster): destroy deletes it, and
    waits for it, while every agent still runs. With Background it would vanish at once and
    Pulumi would go on to remove the agents under ManifestWorks still being deleted.
    """

    placement: k8s.apiextensions.CustomResource
    """The Placement choosing which clusters run the app."""
    replica_set: k8s.apiextensions.CustomResource
    """The ManifestWorkReplicaSet stamping the app's ManifestWork into each chosen cluster."""
    revision: str
    """Digest of the ManifestWork template; each work carries it as REVISION_LABEL."""
    images: dict[str, str]
    """Container name -> image of the template: what the revision runs."""
    status: RolloutStatus | None
    """The rollout's outcome; `status.clusters` has each chosen cluster's revision and state.
    None on the standby hub."""
    strategy_type: pulumi.Output[str]
    """`All` or `Progressive`: how this run rolls the template out (see `rollout_type`)."""

    def __init__(self, name: str, args: AppRolloutArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(APP_ROLLOUT_TYPE, name, None, opts)
        on_hub = pulumi.ResourceOptions(parent=self, provider=args.hub_provider)
        after_hub = [args.ocm_hub.cluster_manager, args.ocm_hub.cluster_set, args.binding]

        self.placement = k8s.apiextensions.CustomResource(
            f"{name}-placement",
            api_version=f"{_ocm.CLUSTER_API}/v1beta1",
            kind="Placement",
            metadata={"name": PLACEMENT_NAME, "namespace": args.namespace},
            spec=placement_spec(
                serving=args.serving, standby=args.standby, canary=args.rollout.canary
            ),
            opts=pulumi.ResourceOptions.merge(
                on_hub, pulumi.ResourceOptions(depends_on=[*after_hub, *args.memberships])
            ),
        )
        template = manifest_work_template(args.manifests)
        self.revision = template_revision(template)
        serving, revision = list(args.serving), self.revision
        if args.on_standby_hub:
            self.strategy_type = pulumi.Output.from_input(ALL)
        elif args.delivered is not None:
            self.strategy_type = pulumi.Output.all(args.delivered, args.last_strategy).apply(
                lambda v: rollout_type(
                    delivered=v[0], last=v[1], serving=serving, revision=revision
                )
            )
        else:
            self.strategy_type = pulumi.Output.from_input(PROGRESSIVE)
        self.replica_set = k8s.apiextensions.CustomResource(
            f"{name}-replica-set",
            api_version=f"{_ocm.WORK_API}/v1alpha1",
            kind="ManifestWorkReplicaSet",
            metadata={
                "name": REPLICA_SET_NAME,
                "namespace": args.namespace,
                "labels": {REVISION_LABEL: self.revision, "app.kubernetes.io/part-of": "bookstore"},
                "annotations": {"pulumi.com/deletionPropagationPolicy": "foreground"},
            },
            spec=replica_set_spec(template, args.rollout, strategy_type=self.strategy_type),
            opts=pulumi.ResourceOptions.merge(
                on_hub,
                pulumi.ResourceOptions(
                    depends_on=[
                        *after_hub,
                        self.placement,
                        *args.memberships,
                        *args.cluster_parts,
                        *args.ready_after,
                    ],
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=_ocm.CREATE_TIMEOUT,
                        update=_ocm.CREATE_TIMEOUT,
                        delete=_ocm.DELETE_TIMEOUT,
                    ),
                ),
            ),
        )
        self.images = template_images(args.manifests)
        rollout = args.rollout
        if args.on_standby_hub:
            # Nothing runs from this hub until agents move to it: there is no outcome to wait for.
            self.status = None
            self.register_outputs({"revision": self.revision, "strategy": self.strategy_type})
            return
        self.status = RolloutStatus(
            f"{name}-status",
            RolloutStatusArgs(
                hub_kubeconfig=args.hub_kubeconfig,
                hub_context=args.hub_context,
                namespace=args.namespace,
                replica_set=REPLICA_SET_NAME,
                placement=PLACEMENT_NAME,
                revision=self.revision,
                revision_label=REVISION_LABEL,
                canary=rollout.canary,
                max_failures=rollout.max_failures,
                progress_deadline=rollout.progress_deadline,
                budget_seconds=rollout_budget_seconds(
                    clusters=len(args.serving),
                    canary=len(rollout.canary),
                    max_concurrency=rollout.max_concurrency,
                    progress_deadline=rollout.progress_deadline,
                    min_success_time=rollout.min_success_time,
                ),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[self.replica_set]),
        )
        self.register_outputs(
            {
                "revision": self.revision,
                "strategy": self.strategy_type,
                "clusters": self.status.clusters,
            }
        )


def _names_in(names: Sequence[str]) -> dict[str, Any]:
    return {
        "labelSelector": {
            "matchExpressions": [
                {"key": _ocm.CLUSTER_NAME_LABEL, "operator": "In", "values": sorted(names)}
            ]
        }
    }


def placement_spec(
    *, serving: Sequence[str], standby: Sequence[str], canary: Sequence[str]
) -> dict[str, Any]:
    """The bookstore Placement.

    Candidates are named explicitly, so a cluster leaving the config (retired) stops being
    chosen in the same `up`, while its agent still runs to remove the app.

    Which candidates win: in mode Exact the scheduler runs only the prioritizers listed
    (placement scheduling/schedule.go, getWeights -> mergeWeights(nil, configurations)); with none
    listed every score is 0 and clusters are sorted by name (Schedule, step 4: "if score is
    equal, sort by name"), then cut to numberOfClusters (selectClusters). Config validation makes
    every standby sort after every serving cluster, so the serving clusters are chosen whenever
    they are not filtered out by a taint, a standby only in place of a lost one, and the lost
    one again as soon as it returns. The default prioritizers (Balance and Steady, weight 1
    each, defaultPrioritizerConfig) would instead keep a standby once chosen.
    """
    return {
        "clusterSets": [_ocm.CLUSTER_SET],
        "numberOfClusters": len(serving),
        "predicates": [{"requiredClusterSelector": _names_in([*serving, *standby])}],
        "tolerations": [
            {"key": taint, "operator": "Exists", "tolerationSeconds": TOLERATION_SECONDS}
            for taint in (_ocm.UNREACHABLE_TAINT, _ocm.UNAVAILABLE_TAINT)
        ],
        "prioritizerPolicy": {"mode": "Exact"},
        "decisionStrategy": {
            "groupStrategy": {
                "decisionGroups": [
                    {"groupName": CANARY_GROUP, "groupClusterSelector": _names_in(canary)}
                ]
            }
        },
    }


def manifest_configs(manifests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per Deployment: the well-known status fed back to the hub (ReadyReplicas, Replicas,
    AvailableReplicas: work/spoke/statusfeedback/rules/rule.go, deploymentRule) and the
    Progressing condition rule the rollout judges a cluster by."""
    configs = []
    for obj in manifests:
        if obj["kind"] != "Deployment":
            continue
        configs.append(
            {
                "resourceIdentifier": {
                    "group": "apps",
                    "resource": "deployments",
                    "name": obj["metadata"]["name"],
                    "namespace": obj["metadata"].get("namespace", APP_NAMESPACE),
                },
                "feedbackRules": [{"type": "WellKnownStatus"}],
                "conditionRules": [
                    {
                        "type": "CEL",
                        "condition": "Progressing",
                        "celExpressions": [DEPLOYMENT_PROGRESSING],
                        "messageExpression": (
                            'result ? "rolling out" : "every replica updated and available"'
                        ),
                    }
                ],
            }
        )
    return sorted(configs, key=lambda c: c["resourceIdentifier"]["name"])


def manifest_work_template(manifests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ManifestWorkSpec every chosen cluster gets."""
    return {
        "workload": {"manifests": [dict(m) for m in manifests]},
        # The work agent deletes what it applied before the ManifestWork goes away.
        "deleteOption": {"propagationPolicy": "Foreground"},
        "manifestConfigs": manifest_configs(manifests),
    }


def template_images(manifests: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Container name -> image, over every pod template of the manifests."""
    return {
        c["name"]: c["image"]
        for obj in manifests
        for c in ((obj.get("spec") or {}).get("template") or {})
        .get("spec", {})
        .get("containers", [])
    }


def template_revision(template: Mapping[str, Any]) -> str:
    """A short digest of the template: equal templates, equal revisions."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


ALL, PROGRESSIVE = "All", "Progressive"


def rollout_type(
    *,
    delivered: Mapping[str, str] | None,
    last: str | None,
    serving: Sequence[str],
    revision: str,
) -> str:
    """How this run rolls the template out, from what each cluster ran at the last run.

    - Some cluster runs another revision: the change is progressive (canaries, steps, soaks),
      whatever else is new in the run: the clusters it adds take part in the same rollout.
    - Otherwise, some serving cluster has never run the app (a new fleet, an added cluster):
      `All`. The canary and the soak protect clusters that serve a previous version; these
      have none, and the clusters that run this revision already are left as they are.
    - Otherwise nothing is to be delivered: the last run's type, so that the spec, and the
      preview, stay unchanged (Progressive when the last run did not say).

    A cluster whose work failed in the last run still counts as running the revision it was
    given, so a retry of the same revision is `All` too and delivers without soaking.
    """
    delivered = delivered or {}
    if any(r != revision for r in delivered.values()):
        return PROGRESSIVE
    if any(name not in delivered for name in serving):
        return ALL
    return last if last in (ALL, PROGRESSIVE) else PROGRESSIVE


def rollout_strategy(rollout: RolloutSpec, type_: str = PROGRESSIVE) -> dict[str, Any]:
    """The placement's rolloutStrategy of `type_` with the configured settings.

    `All` keeps the deadline, so a cluster that never becomes ready still counts as failed
    (sdk-go rollout.go, getRolloutAllClusters: parseTimeout of all.progressDeadline), and no
    soak: no step waits for another.
    """
    if type_ == ALL:
        return {"type": ALL, "all": {"progressDeadline": rollout.progress_deadline}}
    return {
        "type": PROGRESSIVE,
        "progressive": {
            "mandatoryDecisionGroups": [{"groupName": CANARY_GROUP}],
            "maxConcurrency": rollout.max_concurrency,
            "minSuccessTime": rollout.min_success_time,
            "progressDeadline": rollout.progress_deadline,
            "maxFailures": rollout.max_failures,
        },
    }


def replica_set_spec(
    template: Mapping[str, Any],
    rollout: RolloutSpec,
    strategy_type: pulumi.Input[str] = PROGRESSIVE,
) -> dict[str, Any]:
    """The ManifestWorkReplicaSet's spec: one placement, rolled out Progressive (or `All` for a
    delivery that changes nothing a cluster runs, see `rollout_type`).

    How OCM 1.3.1 judges each cluster, and so what the settings below mean:

    - A cluster's ManifestWork is "succeeded" when the agent has applied the latest spec and
      reports Progressing=False for it; Progressing=True is "progressing", and True together
      with Degraded=True "failed" (work/hub/controllers/manifestworkreplicasetcontroller/
      manifestworkreplicaset_deploy_reconcile.go, deployReconciler.clusterRolloutStatusFunc).
      Progressing comes from DEPLOYMENT_PROGRESSING, so succeeded means every Deployment is
      updated and available.
    - A cluster progressing or failed for longer than progressDeadline since its Progressing
      condition last changed is "timed out" (sdk-go pkg/apis/cluster/v1alpha1/rollout.go,
      determineRolloutStatus with parseTimeout). OCM's default "None" never times out; the
      config refuses it.
    - A succeeded cluster holds its slot until minSuccessTime has passed since it succeeded
      (determineRolloutStatus, the Succeeded case), which is the soak between steps.
    - The mandatory decision groups (the canaries) go first and tolerate no failure whatever
      maxFailures says: getProgressiveClusters rolls them out with progressivePerGroup and a
      maxFailures of 0, and stops there while any of them is still to apply, progressing,
      soaking, failed or timed out.
    - Then the rest, maxConcurrency at a time (calculateRolloutSize, a count or a percentage
      of the remaining clusters, rounded up), in name order (progressivePerCluster). Failed and
      timed-out clusters are counted; once they exceed maxFailures no new cluster is started
      (failureBreach), so the clusters not yet reached keep the previous version.
    """
    return {
        "cascadeDeletionPolicy": "Foreground",
        "placementRefs": [
            {
                "name": PLACEMENT_NAME,
                "rolloutStrategy": pulumi.Output.from_input(strategy_type).apply(
                    lambda t: rollout_strategy(rollout, t)
                ),
            }
        ],
        "manifestWorkTemplate": dict(template),
    }
