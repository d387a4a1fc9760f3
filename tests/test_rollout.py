"""Progressive rollout, standby placement and their destroy order, on the recorded graph of
whole-program runs in update and preview mode, plus the Progressing rule evaluated as CEL."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from conftest import FLEETS, dev_config
from harness import Graph, run_program
from schemas import crd_errors
from test_ocm import PLACEMENT, REPLICA_SET, per_cluster

from components.app._manifests import load_manifests
from components.app.delivery import workload_manifests
from components.app.rollout import (
    CANARY_GROUP,
    DEPLOYMENT_PROGRESSING,
    REVISION_LABEL,
    TOLERATION_SECONDS,
    manifest_work_template,
    rollout_type,
    template_revision,
)
from components.config import parse_fleet_config
from components.lifecycle.previous_run import UNKNOWN_REVISION, app_revisions
from components.ocm import _charts as _ocm

MODES = [pytest.param(False, id="update"), pytest.param(True, id="preview")]


def standby_config() -> dict[str, Any]:
    """dev plus a standby on Azure and an explicit rollout policy."""
    config = dev_config()
    config["ocm-fleet:clusters"] = [
        *config["ocm-fleet:clusters"],
        {"name": "standby-eu", "cloud": "azure", "region": "northeurope", "standby": True},
    ]
    config["ocm-fleet:rollout"] = {
        "canary": ["app-azure"],
        "maxConcurrency": "50%",
        "minSuccessTime": "5m",
        "progressDeadline": "15m",
        "maxFailures": 1,
    }
    config["ocm-fleet:app"] = {"imageTags": {"shopapi": "1.1", "router": "3.2.9-alpine"}}
    return config


SHAPES = {**FLEETS, "standby": standby_config}
_GRAPHS: dict[tuple[str, bool, bool], Graph] = {}
OLD_REVISION = "0123456789ab"


def ran(clusters, revision: str = OLD_REVISION, strategy: str = "Progressive") -> dict[str, Any]:
    """The stack outputs of a last run in which each of `clusters` ran `revision`."""
    placed = {name: {"revision": revision, "state": "succeeded"} for name in clusters}
    return {"app": {"revision": revision, "strategy": strategy, "clusters": placed}}


def graph_of(shape: str, preview: bool, *, change: bool = False) -> Graph:
    """The fleet's first `up` (nothing ran before), or with `change` a run that changes what
    every serving cluster runs (they ran OLD_REVISION)."""
    key = (shape, preview, change)
    if key not in _GRAPHS:
        before = ran(c.name for c in fleet_of(shape).serving_clusters) if change else None
        _GRAPHS[key] = run_program(SHAPES[shape](), preview=preview, previous_outputs=before)
    return _GRAPHS[key]


def fleet_of(shape: str):
    raw = {k.split(":", 1)[1]: v for k, v in SHAPES[shape]().items()}
    return parse_fleet_config(raw)


CASES = [
    pytest.param(shape, preview, id=f"{shape}-{'preview' if preview else 'update'}")
    for shape in SHAPES
    for preview in (False, True)
]


def placement(graph: Graph):
    return graph.named("app-rollout-placement", PLACEMENT)


def replica_set(graph: Graph):
    return graph.named("app-rollout-replica-set", REPLICA_SET)


def strategy(graph: Graph) -> dict[str, Any]:
    (ref,) = replica_set(graph).inputs["spec"]["placementRefs"]
    assert ref["name"] == placement(graph).inputs["metadata"]["name"], (
        "the replica set must roll out through the bookstore Placement"
    )
    return ref["rolloutStrategy"]


@pytest.mark.parametrize(("shape", "preview"), CASES)
def test_the_canary_is_rolled_out_before_the_rest(shape, preview):
    graph, fleet = graph_of(shape, preview, change=True), fleet_of(shape)
    groups = placement(graph).inputs["spec"]["decisionStrategy"]["groupStrategy"]
    (group,) = groups["decisionGroups"]
    assert group["groupName"] == CANARY_GROUP
    selector = group["groupClusterSelector"]["labelSelector"]["matchExpressions"]
    assert selector == [
        {"key": _ocm.CLUSTER_NAME_LABEL, "operator": "In", "values": sorted(fleet.rollout.canary)}
    ], "the canary decision group must hold exactly the configured canary clusters"
    rollout = strategy(graph)
    assert rollout["type"] == "Progressive"
    assert rollout["progressive"]["mandatoryDecisionGroups"] == [{"groupName": CANARY_GROUP}], (
        "OCM rolls the mandatory decision groups out first and only then the rest"
    )


def test_the_canary_defaults_to_the_first_serving_cluster():
    assert fleet_of("dev").rollout.canary == ("app-aws",)
    assert fleet_of("large").rollout.canary == ("aws-ie",)
    assert fleet_of("standby").rollout.canary == ("app-azure",)


@pytest.mark.parametrize(("shape", "preview"), CASES)
def test_halt_on_failure_settings_are_set(shape, preview):
    fleet = fleet_of(shape)
    progressive = strategy(graph_of(shape, preview, change=True))["progressive"]
    assert progressive["progressDeadline"] == fleet.rollout.progress_deadline != "None", (
        "a finite progressDeadline turns a stuck cluster into a failure"
    )
    assert progressive["maxFailures"] == fleet.rollout.max_failures
    assert progressive["maxConcurrency"] == fleet.rollout.max_concurrency
    assert progressive["minSuccessTime"] == fleet.rollout.min_success_time


def test_configured_rollout_settings_reach_the_replica_set():
    progressive = strategy(graph_of("standby", False, change=True))["progressive"]
    assert progressive == {
        "mandatoryDecisionGroups": [{"groupName": "canary"}],
        "maxConcurrency": "50%",
        "minSuccessTime": "5m",
        "progressDeadline": "15m",
        "maxFailures": 1,
    }
    default = strategy(graph_of("dev", False, change=True))["progressive"]
    assert (default["maxConcurrency"], default["maxFailures"]) == ("25%", 0)
    assert (default["minSuccessTime"], default["progressDeadline"]) == ("2m", "10m")


@pytest.mark.parametrize(("shape", "preview"), CASES)
def test_standby_placement(shape, preview):
    graph, fleet = graph_of(shape, preview), fleet_of(shape)
    spec = placement(graph).inputs["spec"]
    serving = [c.name for c in fleet.serving_clusters]
    standby = [c.name for c in fleet.standby_clusters]
    assert spec["numberOfClusters"] == len(serving), "the app runs on as many as serve"
    (predicate,) = spec["predicates"]
    names = predicate["requiredClusterSelector"]["labelSelector"]["matchExpressions"]
    assert names == [
        {"key": _ocm.CLUSTER_NAME_LABEL, "operator": "In", "values": sorted(serving + standby)}
    ], "every serving and standby cluster is a candidate, nothing else"
    assert sorted(spec["tolerations"], key=lambda t: t["key"]) == [
        {"key": _ocm.UNAVAILABLE_TAINT, "operator": "Exists", "tolerationSeconds": 60},
        {"key": _ocm.UNREACHABLE_TAINT, "operator": "Exists", "tolerationSeconds": 60},
    ], "a lost cluster must be dropped after a bounded toleration"
    assert TOLERATION_SECONDS == 60
    assert spec["prioritizerPolicy"] == {"mode": "Exact"}, (
        "Exact with no prioritizer: no Steady to keep a standby once chosen; ties go by name"
    )
    assert all(s > max(serving) for s in standby), "standbys sort after every serving cluster"


def choose(candidates: list[str], number: int, lost: set[str]) -> list[str]:
    """The scheduler's choice for this Placement, step by step as in placement
    scheduling/schedule.go: drop clusters whose taint is no longer tolerated (the taint
    toleration filter), score all 0 (Exact mode, no prioritizer), sort by score then name,
    cut to numberOfClusters (selectClusters)."""
    feasible = [c for c in candidates if c not in lost]
    scores = dict.fromkeys(feasible, 0)
    feasible.sort(key=lambda c: (-scores[c], c))
    return feasible[:number]


@pytest.mark.parametrize("shape", ["standby", "large"])
def test_losing_any_serving_cluster_moves_the_app_to_a_standby_and_back(shape):
    fleet = fleet_of(shape)
    if not fleet.standby_clusters:
        config = SHAPES[shape]()
        config["ocm-fleet:clusters"].append(
            {"name": "zz-spare", "cloud": "azure", "region": "westeurope", "standby": True}
        )
        fleet = parse_fleet_config({k.split(":", 1)[1]: v for k, v in config.items()})
    serving = {c.name for c in fleet.serving_clusters}
    first_standby = min(c.name for c in fleet.standby_clusters)
    candidates = sorted(c.name for c in fleet.clusters)
    assert set(choose(candidates, len(serving), set())) == serving
    for lost in serving:
        chosen = set(choose(candidates, len(serving), {lost}))
        assert chosen == serving - {lost} | {first_standby}, f"losing {lost}"
    assert set(choose(candidates, len(serving), set())) == serving, "the lost one returns"


@pytest.mark.parametrize(("shape", "preview"), CASES)
def test_standby_is_joined_and_reachable_but_carries_no_app_of_its_own(shape, preview):
    graph, fleet = graph_of(shape, preview), fleet_of(shape)
    upstreams = graph.named("public-lb-config")
    for spec in fleet.standby_clusters:
        r = per_cluster(graph, spec.name)
        assert r["managed_cluster"].inputs["metadata"]["labels"]["ocm-fleet.io/standby"] == "true"
        edge = graph.named(f"{spec.name}-app-edge")
        assert edge.provider_urn == graph.kubernetes_provider(spec.name).urn
        assert graph.depends_on(upstreams, edge), f"the public LB must list {spec.name}'s edge"
    app_works = [
        w
        for w in graph.of_type("kubernetes:work.open-cluster-management.io/v1:ManifestWork")
        if w.inputs["metadata"]["name"] == "bookstore"
    ]
    assert not app_works, "no cluster gets an app ManifestWork of its own: the Placement decides"


@pytest.mark.parametrize("preview", MODES)
def test_destroy_order_covers_standby_clusters(preview):
    graph = graph_of("standby", preview)
    for spec in fleet_of("standby").clusters:
        r = per_cluster(graph, spec.name)
        chain = ["work", "managed_cluster", "klusterlet", "chart", "cluster"]
        for before, after in itertools.pairwise(chain):
            assert graph.depends_on(r[before], r[after]), (
                f"{r[before]} of {spec.name} must depend on {r[after]}"
            )
        assert graph.depends_on(r["work"], r["klusterlet"]), spec.name
        assert graph.depends_on(placement(graph), r["managed_cluster"]), spec.name


def test_new_ocm_objects_are_valid_against_the_upstream_crds(shared_reference):
    for shape, change in itertools.product(SHAPES, (False, True)):
        graph = graph_of(shape, False, change=change)
        for res in (placement(graph), replica_set(graph)):
            obj = {k: res.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}
            errors = crd_errors(shared_reference, obj)
            assert not errors, f"{res} of fleet {shape} (change {change}) is not valid: {errors}"


def test_crd_check_catches_a_misspelt_rollout_field(shared_reference):
    res = replica_set(graph_of("dev", False, change=True))
    obj = copy.deepcopy({k: res.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    obj["spec"]["placementRefs"][0]["rolloutStrategy"]["progressive"]["maxFailure"] = 1
    assert crd_errors(shared_reference, obj), "a misspelt maxFailures must fail"
    obj = copy.deepcopy({k: res.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    obj["spec"]["placementRefs"][0]["rolloutStrategy"]["progressive"]["progressDeadline"] = "soon"
    assert crd_errors(shared_reference, obj), "a progressDeadline that is no duration must fail"


@pytest.mark.parametrize(("shape", "preview"), CASES)
def test_every_deployment_reports_status_and_progress(shape, preview):
    template = replica_set(graph_of(shape, preview)).inputs["spec"]["manifestWorkTemplate"]
    deployments = {
        o["metadata"]["name"]
        for o in template["workload"]["manifests"]
        if o["kind"] == "Deployment"
    }
    configs = {c["resourceIdentifier"]["name"]: c for c in template["manifestConfigs"]}
    assert deployments and set(configs) == deployments
    for name, config in configs.items():
        assert config["resourceIdentifier"]["resource"] == "deployments", name
        assert config["feedbackRules"] == [{"type": "WellKnownStatus"}], name
        (rule,) = config["conditionRules"]
        assert (rule["type"], rule["condition"]) == ("CEL", "Progressing"), name
        assert rule["celExpressions"] == [DEPLOYMENT_PROGRESSING], name


def test_image_tags_and_revision_follow_config():
    graph = graph_of("standby", False)
    objects = replica_set(graph).inputs["spec"]["manifestWorkTemplate"]["workload"]["manifests"]
    images = {
        c["name"]: c["image"]
        for o in objects
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert images["shopapi"] == "devteds/demo-bookstore-shopapi:1.1"
    assert images["router"] == "haproxy:3.2.9-alpine"
    assert images["shopui"] == "devteds/demo-bookstore-shopui:1.0", "untouched tags stay"
    expected = workload_manifests(
        load_manifests(), image_tags={"shopapi": "1.1", "router": "3.2.9-alpine"}
    )
    revision = template_revision(manifest_work_template(expected))
    labels = replica_set(graph).inputs["metadata"]["labels"]
    assert labels[REVISION_LABEL] == revision
    assert (
        labels[REVISION_LABEL]
        != replica_set(graph_of("dev", False)).inputs["metadata"]["labels"][REVISION_LABEL]
    ), "a new tag is a new revision"
    assert (
        replica_set(graph_of("dev", True)).inputs["metadata"]["labels"][REVISION_LABEL]
        == (replica_set(graph_of("dev", False)).inputs["metadata"]["labels"][REVISION_LABEL])
    ), "the revision is known in preview"


# --- the Progressing rule, evaluated by a CEL implementation -------------------------------

celpy = pytest.importorskip("celpy", reason="cel-python (requirements-dev.txt) evaluates CEL")


def progressing(deployment: dict[str, Any]) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(DEPLOYMENT_PROGRESSING))
    return bool(program.evaluate({"object": celpy.json_to_cel(deployment)}))


def deployment(generation: int = 2, wanted: int = 2, **status: int) -> dict[str, Any]:
    """A Deployment of `wanted` replicas at `generation`, with `status` as given."""
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": wanted},
        "status": dict(status),
    }


@pytest.mark.parametrize(
    ("obj", "expected", "why"),
    [
        ({"metadata": {"generation": 1}, "spec": {"replicas": 2}}, True, "no status yet"),
        (deployment(), True, "empty status"),
        (
            deployment(observedGeneration=1, replicas=2, updatedReplicas=2, availableReplicas=2),
            True,
            "the controller has not seen the new spec",
        ),
        (
            deployment(observedGeneration=2, replicas=3, updatedReplicas=2, availableReplicas=2),
            True,
            "an old pod is still there",
        ),
        (
            deployment(observedGeneration=2, replicas=2, updatedReplicas=2, availableReplicas=1),
            True,
            "a new pod is not available yet",
        ),
        (
            deployment(observedGeneration=2, replicas=2, updatedReplicas=2, availableReplicas=2),
            False,
            "rolled out and available",
        ),
        (deployment(wanted=0, observedGeneration=2), False, "scaled to zero on purpose"),
    ],
)
def test_progressing_rule(obj, expected, why):
    assert progressing(obj) is expected, why


@pytest.mark.parametrize("preview", MODES)
def test_a_retiring_cluster_leaves_the_placement_while_the_rest_keep_their_order(preview):
    config = standby_config()
    config["ocm-fleet:rollout"] = {"canary": ["app-aws"]}
    for cluster in config["ocm-fleet:clusters"]:
        if cluster["name"] == "app-azure":
            cluster["retire"] = True
    graph = run_program(config, preview=preview)
    spec = placement(graph).inputs["spec"]
    assert spec["numberOfClusters"] == 1, "only app-aws serves now"
    (predicate,) = spec["predicates"]
    (names,) = predicate["requiredClusterSelector"]["labelSelector"]["matchExpressions"]
    assert names["values"] == ["app-aws", "standby-eu"], "the retiring cluster is no candidate"
    work = replica_set(graph)
    azure = graph.cluster_component("app-azure")
    assert not graph.depends_on(work, azure), "the replica set no longer needs app-azure"
    assert not [r for r in graph.resources if r.name.startswith("app-azure-ocm")], (
        "a retiring cluster has no OCM membership"
    )
    for name in ("app-aws", "standby-eu"):
        r = per_cluster(graph, name)
        chain = ["work", "managed_cluster", "klusterlet", "chart", "cluster"]
        for before, after in itertools.pairwise(chain):
            assert graph.depends_on(r[before], r[after]), f"{r[before]} of {name} -> {r[after]}"


@pytest.mark.parametrize(("shape", "preview"), CASES)
def test_the_app_waits_for_each_clusters_namespace_and_credentials_but_not_its_edge(shape, preview):
    """The work agent needs the namespace, the database Secret and ConfigMap and its own
    permissions before it applies; the edge's address is needed only by the public entry."""
    graph, fleet = graph_of(shape, preview), fleet_of(shape)
    mwrs = replica_set(graph)
    entry = graph.named("public-lb-config")
    for spec in fleet.active_clusters:
        for part in ("namespace", "database-secret", "database-config", "work-agent-role"):
            needed = graph.named(f"{spec.name}-app-{part}")
            assert graph.depends_on(mwrs, needed), f"{mwrs} must depend on {needed}"
        edge = graph.named(f"{spec.name}-app-edge")
        assert not graph.depends_on(mwrs, edge), f"{mwrs} must not wait for {edge}"
        assert graph.depends_on(entry, edge), f"{entry} must wait for {edge}"


# --- first delivery ---------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "preview"), CASES)
def test_a_new_fleet_gets_the_app_everywhere_at_once(shape, preview):
    """Nothing runs the app yet: no canary, no steps, no soak; the deadline still holds."""
    rollout = strategy(graph_of(shape, preview))
    assert rollout == {
        "type": "All",
        "all": {"progressDeadline": fleet_of(shape).rollout.progress_deadline},
    }, f"the first delivery to fleet {shape} must not wait for canaries or soaks: {rollout}"


@pytest.mark.parametrize("preview", MODES)
def test_an_added_cluster_gets_the_app_at_once_and_a_change_stays_progressive(preview):
    config = dev_config()
    fleet = fleet_of("dev")
    revision = replica_set(graph_of("dev", preview)).inputs["metadata"]["labels"][REVISION_LABEL]
    config["ocm-fleet:clusters"].append({"name": "app-more", "cloud": "azure", "region": "eastus2"})
    already = [c.name for c in fleet.serving_clusters]

    added = run_program(config, preview=preview, previous_outputs=ran(already, revision))
    assert strategy(added)["type"] == "All", (
        "a cluster that never ran the app, beside clusters that run this very revision, has "
        "nothing to protect"
    )
    changed = run_program(config, preview=preview, previous_outputs=ran(already))
    assert strategy(changed)["type"] == "Progressive", (
        "clusters that run another revision are protected, even when a cluster is added too"
    )
    steady = run_program(
        dev_config(), preview=preview, previous_outputs=ran(already, revision, "Progressive")
    )
    assert strategy(steady)["type"] == "Progressive", (
        "a run that delivers nothing keeps the last run's strategy: no diff"
    )


def test_a_stack_from_before_the_app_output_is_treated_as_running_an_older_version():
    assert app_revisions({"clusters": {"app-aws": {}, "app-azure": {}}}) == {
        "app-aws": UNKNOWN_REVISION,
        "app-azure": UNKNOWN_REVISION,
    }
    assert app_revisions({}) == {}, "a new stack ran nothing"
    assert app_revisions(
        {"app": {"clusters": {"a": {"revision": "r1"}, "b": {"revision": "", "state": "previous"}}}}
    ) == {"a": "r1"}, "a cluster the app had not reached yet ran nothing"


@pytest.mark.parametrize(
    ("delivered", "last", "expected"),
    [
        ({}, None, "All"),
        ({"a": "new"}, "All", "All"),
        ({"a": "new", "b": "new"}, "All", "All"),
        ({"a": "new", "b": "new"}, "Progressive", "Progressive"),
        ({"a": "new", "b": "new"}, None, "Progressive"),
        ({"a": "old"}, "All", "Progressive"),
        ({"a": "old", "b": "new"}, "All", "Progressive"),
    ],
)
def test_the_rollout_type_follows_what_the_clusters_ran(delivered, last, expected):
    got = rollout_type(delivered=delivered, last=last, serving=["a", "b"], revision="new")
    assert got == expected, f"{delivered}, last {last}: {got}"
