"""The model of a first `pulumi up`, on hand-made graphs whose answer is known, then the fleets."""

from __future__ import annotations

import sys

import pytest
from conftest import FLEETS, dev_config, fleet_graph
from harness import ROOT, run_program, with_admin_principals

from components.app.rollout import rollout_strategy
from components.config import RolloutSpec

sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

import program_eval
import up_model as m


def node(name, type_="test:index:Thing", deps=(), **kw) -> m.Node:
    return m.Node(urn=f"urn:{name}", type=type_, name=name, deps={f"urn:{d}" for d in deps}, **kw)


@pytest.fixture
def timed(monkeypatch):
    """Hand-made types with hand-picked durations."""

    def set_times(**seconds):
        for type_, s in seconds.items():
            monkeypatch.setitem(m.CREATION_SECONDS, f"test:index:{type_}", m.Figure(s, "t", "t"))

    return set_times


def test_a_resource_starts_when_its_slowest_dependency_is_done(timed):
    timed(A=10, B=20, C=5, D=3)
    nodes = [
        node("a", "test:index:A"),
        node("b", "test:index:B", deps=["a"]),
        node("c", "test:index:C", deps=["a"]),
        node("d", "test:index:D", deps=["b", "c"]),
    ]
    sched = m.schedule(nodes)
    assert sched.total == 33, "a(10) then b(20) then d(3)"
    assert [s.node.name for s in sched.critical_path] == ["a", "b", "d"]
    assert sched.steps["urn:c"].finish == 15
    assert sched.steps["urn:d"].start == 30


def test_a_component_takes_no_time_and_stands_for_everything_inside(timed):
    timed(Slow=100, Fast=50, After=1)
    nodes = [
        node("comp", "test:index:Component", custom=False),
        node("slow", "test:index:Slow", parent="urn:comp"),
        node("inner", "test:index:Component", parent="urn:comp", custom=False),
        node("fast", "test:index:Fast", parent="urn:inner"),
        node("after", "test:index:After", deps=["comp"]),
    ]
    sched = m.schedule(nodes)
    assert "urn:comp" not in sched.steps, "components are not scheduled"
    assert sched.steps["urn:after"].start == 100, "depending on a component waits for all of it"
    assert [s.node.name for s in sched.critical_path] == ["slow", "after"]


def app_cluster_graph(*, edge_after_work: bool) -> list[m.Node]:
    """An EKS cluster's provider, a ManifestWork carrying the router, and the edge Service."""
    router_labels = {"app": "router"}
    router = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "router"},
        "spec": {"template": {"metadata": {"labels": router_labels}}},
    }
    return [
        node("c1", "ocm-fleet:index:EksCluster", custom=False),
        node("cluster", "test:index:Cluster", parent="urn:c1"),
        node("c1-k8s", "pulumi:providers:kubernetes", parent="urn:c1", deps=["cluster"]),
        node(
            "work",
            m.MANIFEST_WORK,
            deps=["cluster"],
            inputs={
                "metadata": {"namespace": "c1"},
                "spec": {"workload": {"manifests": [router]}},
            },
        ),
        node(
            "edge",
            m.SERVICE,
            deps=["c1-k8s", *(["work"] if edge_after_work else [])],
            provider="urn:c1-k8s",
            inputs={"spec": {"type": "LoadBalancer", "selector": router_labels}},
        ),
    ]


@pytest.mark.parametrize("edge_after_work", [True, False])
def test_a_service_completes_once_the_pods_it_selects_are_ready(
    timed, monkeypatch, edge_after_work
):
    timed(Cluster=600)
    monkeypatch.setitem(m.CREATION_SECONDS, m.MANIFEST_WORK, m.Figure(240, "t", "t"))
    monkeypatch.setitem(m.LOAD_BALANCER_SECONDS, "aws", m.Figure(180, "t", "t"))
    sched = m.schedule(app_cluster_graph(edge_after_work=edge_after_work))
    edge = sched.steps["urn:edge"]
    if edge_after_work:
        # 600 cluster, 240 work, then the load balancer's 180 on top.
        assert (edge.start, edge.finish) == (840, 1020)
    else:
        # Started with the cluster, the load balancer is ready before the router: the edge is
        # done when the router's endpoints are, 10 s after the ManifestWork is Available.
        assert (edge.start, edge.finish) == (600, 850)
        assert edge.why == "endpoints of work"
        assert [s.node.name for s in sched.critical_path] == ["cluster", "work", "edge"]


def test_a_service_the_pod_owner_depends_on_does_not_deadlock_the_model():
    labels = {"app": "db"}
    nodes = [
        node("k8s", "pulumi:providers:kubernetes"),
        node(
            "headless",
            m.SERVICE,
            deps=["k8s"],
            provider="urn:k8s",
            inputs={"spec": {"clusterIP": "None", "selector": labels}},
        ),
        node(
            "db",
            "kubernetes:apps/v1:StatefulSet",
            deps=["k8s", "headless"],
            provider="urn:k8s",
            inputs={"spec": {"template": {"metadata": {"labels": labels}}}},
        ),
    ]
    service = m.CREATION_SECONDS[m.SERVICE].seconds
    statefulset = m.CREATION_SECONDS["kubernetes:apps/v1:StatefulSet"].seconds
    sched = m.schedule(nodes)
    assert sched.steps["urn:headless"].finish == service
    assert sched.total == service + statefulset


def test_a_cycle_is_reported_by_name(timed):
    timed(A=1)
    nodes = [node("a", "test:index:A", deps=["b"]), node("b", "test:index:A", deps=["a"])]
    with pytest.raises(ValueError, match="dependency cycle through"):
        m.schedule(nodes)


def test_a_waited_for_progressive_rollout_adds_its_soak_between_steps():
    clusters = [node(f"mc{i}", m.MANAGED_CLUSTER) for i in range(5)]
    rollout = {
        "type": "Progressive",
        "progressive": {
            "maxConcurrency": 2,
            "minSuccessTime": "5m",
            "mandatoryDecisionGroups": [{"groupName": "canary"}],
        },
    }
    mwrs = node(
        "mwrs",
        m.MANIFEST_WORK_REPLICA_SET,
        inputs={
            "metadata": {"annotations": {"pulumi.com/waitFor": "condition=PlacementRolledOut"}},
            "spec": {"placementRefs": [{"name": "all", "rolloutStrategy": rollout}]},
        },
    )
    sched = m.schedule([*clusters, mwrs])
    # The canary group, then 4 clusters 2 at a time: 3 steps, so two waits of 5 minutes.
    assert sched.soak_seconds == 600
    held = sched.steps["urn:mwrs"]
    assert (held.soak, held.finish) == (600, m.DEFAULT_SECONDS.seconds + 600), (
        "the soak holds what waits for the rollout"
    )
    assert m.modeled_up_seconds(sched) == sched.total == held.finish
    unwaited = node("mwrs", m.MANIFEST_WORK_REPLICA_SET, inputs={**mwrs.inputs, "metadata": {}})
    assert m.schedule([*clusters, unwaited]).soak_seconds == 0, (
        "an `up` that does not wait for the rollout does not wait for its soak either"
    )


def fleet_with_a_late_second_work(*, work_waits_for_edge: bool = False) -> list[m.Node]:
    """One EKS cluster whose app rolls out with a soak, whose metrics ManifestWork is done
    after the app's and whose public entry waits for the edge's address, not the works."""
    router_labels, entry_labels = {"app": "router"}, {"app": "haproxy"}
    soaked = {
        "type": "Progressive",
        "progressive": {"maxConcurrency": 1, "minSuccessTime": "5m"},
    }
    return [
        node("cluster-component", "ocm-fleet:index:EksCluster", custom=False),
        node("key", "test:index:Policy", parent="urn:cluster-component"),
        node("eks", "aws:eks/cluster:Cluster", parent="urn:cluster-component", deps=["key"]),
        node("nodes", "aws:eks/nodeGroup:NodeGroup", parent="urn:cluster-component", deps=["eks"]),
        node("k8s", "pulumi:providers:kubernetes", parent="urn:cluster-component", deps=["nodes"]),
        node(
            "klusterlet",
            "kubernetes:operator.open-cluster-management.io/v1:Klusterlet",
            deps=["k8s"],
        ),
        node("managed-cluster", m.MANAGED_CLUSTER, deps=["klusterlet"]),
        # A second cluster, already in the fleet: the rollout takes two steps, one soak.
        node("existing-managed-cluster", m.MANAGED_CLUSTER),
        node(
            "edge",
            m.SERVICE,
            deps=["k8s"],
            provider="urn:k8s",
            inputs={
                "spec": {"type": "LoadBalancer", "selector": router_labels},
                "metadata": {"annotations": {"pulumi.com/waitFor": "jsonpath=..."}},
            },
        ),
        node(
            "app-work",
            m.MANIFEST_WORK_REPLICA_SET,
            deps=["managed-cluster", *(["edge"] if work_waits_for_edge else [])],
            inputs={
                "metadata": {"annotations": {"pulumi.com/waitFor": "condition=RolledOut"}},
                "spec": {"placementRefs": [{"name": "all", "rolloutStrategy": soaked}]},
            },
        ),
        node("metrics-work", m.MANIFEST_WORK, deps=["managed-cluster"]),
        node("hub-k8s", "pulumi:providers:kubernetes"),
        node(
            "entry-config",
            "kubernetes:core/v1:ConfigMap",
            deps=["hub-k8s", "edge"],
            provider="urn:hub-k8s",
        ),
        node(
            "haproxy",
            "kubernetes:apps/v1:Deployment",
            deps=["hub-k8s", "entry-config"],
            provider="urn:hub-k8s",
            inputs={"spec": {"template": {"metadata": {"labels": entry_labels}}}},
        ),
        node(
            "public",
            m.SERVICE,
            deps=["hub-k8s"],
            provider="urn:hub-k8s",
            inputs={"spec": {"type": "LoadBalancer", "selector": entry_labels}},
        ),
    ]


@pytest.fixture
def figures(monkeypatch):
    for type_, seconds in {
        "aws:eks/cluster:Cluster": 600,
        "aws:eks/nodeGroup:NodeGroup": 100,
        "kubernetes:operator.open-cluster-management.io/v1:Klusterlet": 60,
        m.MANIFEST_WORK: 240,
        m.MANIFEST_WORK_REPLICA_SET: 2,
        "kubernetes:apps/v1:Deployment": 30,
        "kubernetes:core/v1:ConfigMap": 2,
        "test:index:Policy": 5,
    }.items():
        monkeypatch.setitem(m.CREATION_SECONDS, type_, m.Figure(seconds, "t", "t"))
    monkeypatch.setitem(m.LOAD_BALANCER_SECONDS, "aws", m.Figure(180, "t", "t"))
    monkeypatch.setitem(m.LOAD_BALANCER_SECONDS, "other", m.Figure(60, "t", "t"))


def test_the_unavoidable_chain_lies_inside_the_graph_and_is_never_longer_than_up(figures):
    sched = m.schedule(fleet_with_a_late_second_work())
    # key 5, eks 600, nodes 100, klusterlet 60, managed cluster 2, then the app's work (2)
    # held 300 s by its soak ends after the metrics work (240).
    assert m.modeled_up_seconds(sched) == 5 + 600 + 100 + 60 + 2 + 2 + 300
    # Only what nothing can skip takes time: not the key, not the managed cluster record.
    assert m.unavoidable_chain(sched) == 600 + 100 + 60 + 2 + 300
    assert [s.node.name for s in sched.unavoidable] == [
        "eks",
        "nodes",
        "k8s",
        "klusterlet",
        "managed-cluster",
        "app-work",
    ], "a step that takes no time there is not waited for"
    assert m.unavoidable_chain(sched) <= m.modeled_up_seconds(sched)


def test_a_work_made_to_wait_for_a_load_balancer_does_not_lengthen_the_unavoidable_chain(
    figures,
):
    sched = m.schedule(fleet_with_a_late_second_work(work_waits_for_edge=True))
    # The edge's 180 s load balancer now delays the app's work: `up` is longer, what nothing
    # can shorten is not.
    assert m.modeled_up_seconds(sched) == 5 + 600 + 100 + 180 + 2 + 300
    assert m.unavoidable_chain(sched) == 600 + 100 + 60 + 2 + 300


def test_the_public_entry_is_an_unavoidable_chain_of_its_own(figures, monkeypatch):
    monkeypatch.setitem(m.LOAD_BALANCER_SECONDS, "aws", m.Figure(1500, "t", "t"))
    sched = m.schedule(fleet_with_a_late_second_work())
    # The edge's address, then the entry's config and HAProxy, then its endpoints.
    entry = 600 + 100 + 1500 + 30 + m.ENDPOINT_SETTLE_SECONDS
    assert m.unavoidable_chain(sched) == entry
    assert sched.unavoidable[-1].node.name == "public"
    assert m.modeled_up_seconds(sched) == 5 + entry + 2, "and the config map's 2 s"


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_the_fleet_up_is_within_a_tenth_of_the_unavoidable_chain(fleet):
    sched = m.schedule(m.nodes_from_graph(fleet_graph(fleet, False)))
    unavoidable = m.unavoidable_chain(sched)
    table = "\n".join(
        m.critical_path_table(sched) + m.critical_path_table(sched, sched.unavoidable)
    )
    assert unavoidable <= m.modeled_up_seconds(sched), table
    assert m.modeled_up_seconds(sched) <= 1.1 * unavoidable, table
    path = [s.node for s in sched.critical_path]
    assert path[-1].name in (
        "public-lb-service",
        "app-rollout-replica-set",
        "app-rollout-status",
    ), "the public entry or the app's rollout is the last thing ready"
    assert not any(n.type == m.MANIFEST_WORK for n in path), "ManifestWorks come from OCM now"


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_the_public_entry_waits_for_its_pods_and_edges_for_their_address_in_the_model(fleet):
    graph = fleet_graph(fleet, False)
    nodes = m.nodes_from_graph(graph)
    waits = m.endpoint_sources(nodes)
    by_urn = {n.urn: n for n in nodes}
    edges = [r for r in graph.of_type(m.SERVICE) if r.name.endswith("-app-edge")]
    assert edges
    for edge in edges:
        # The router arrives through the replica set, and never on a standby: the edge waits
        # for its load balancer's address only (pulumi.com/waitFor).
        assert edge.urn not in waits, f"{edge} must not wait for pods: {waits[edge.urn]}"
    public = graph.named("public-lb-service")
    assert [by_urn[u].name for u in waits[public.urn]] == ["public-lb-haproxy"]


def five_clusters_two_clouds_three_regions() -> dict:
    return with_admin_principals(
        {
            "ocm-fleet:hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
            "ocm-fleet:clusters": [
                {"name": "app-1", "cloud": "aws", "region": "eu-west-1"},
                {"name": "app-2", "cloud": "aws", "region": "us-east-1"},
                {"name": "app-3", "cloud": "azure", "region": "westeurope"},
                {"name": "app-4", "cloud": "azure", "region": "westeurope"},
                {"name": "app-5", "cloud": "aws", "region": "eu-west-1"},
            ],
            "ocm-fleet:apiAllowedCidrs": ["203.0.113.0/24"],
        }
    )


@pytest.mark.parametrize("fleet", ["dev", "five"])
def test_the_path_to_the_app_waits_for_no_load_balancer_or_storage_add_on(fleet):
    config = dev_config() if fleet == "dev" else five_clusters_two_clouds_three_regions()
    sched = m.schedule(m.nodes_from_graph(run_program(config, preview=False)))
    table = "\n".join(
        m.critical_path_table(sched) + m.critical_path_table(sched, sched.unavoidable)
    )
    app = next(s for s in sched.steps.values() if s.node.type == m.MANIFEST_WORK_REPLICA_SET)
    before = m._path(app, sched.steps)
    waited = [s.node.name for s in before if m._is_load_balancer(s.node)]
    assert not waited, f"{fleet}: the app waits for load balancers {waited}\n{table}"
    addons = [s.node.name for s in before if s.node.name.endswith("aws-ebs-csi-driver")]
    assert not addons, f"{fleet}: the app waits for the EBS CSI add-on\n{table}"
    assert sched.soak_seconds == 0, f"{fleet}: a first `up` soaks for nothing\n{table}"
    up, unavoidable = m.modeled_up_seconds(sched), m.unavoidable_chain(sched)
    assert up <= 1.1 * unavoidable, f"{fleet}: {up:.0f} s against {unavoidable:.0f} s\n{table}"


def test_the_first_up_takes_about_as_long_at_3_30_and_100_app_clusters():
    ups = {}
    for size in (3, 30, 100):
        sched = m.schedule(m.nodes_from_graph(run_program(program_eval.fleet(size))))
        ups[size] = m.modeled_up_seconds(sched)
        assert sched.soak_seconds == 0, f"{size} app clusters: the first `up` soaks"
    assert max(ups.values()) <= 1.25 * min(ups.values()), (
        "modeled first `up` by size: " + ", ".join(f"{n}: {m.minutes(s)}" for n, s in ups.items())
    )


@pytest.mark.parametrize(
    ("strategy", "clusters", "canaries", "steps"),
    [
        ({"type": "All", "all": {}}, 100, 0, 1),
        ({"type": "Progressive", "progressive": {"maxConcurrency": 1}}, 5, 0, 5),
        (
            {
                "type": "Progressive",
                "progressive": {"maxConcurrency": "50%", "mandatoryDecisionGroups": [{}]},
            },
            5,
            1,
            3,
        ),
        # 25% of the 99 outside the canary, rounded up: 25 a step, four steps.
        (rollout_strategy(RolloutSpec()), 100, 1, 5),
        (rollout_strategy(RolloutSpec()), 30, 1, 5),
        # 25% of 2 rounds up to 1: one a step.
        (rollout_strategy(RolloutSpec()), 3, 1, 3),
        # More than the rest: all the rest at once (calculateRolloutSize's default).
        ({"type": "Progressive", "progressive": {"maxConcurrency": 50}}, 10, 0, 1),
    ],
)
def test_rollout_steps_are_counted_as_sdk_go_counts_them(strategy, clusters, canaries, steps):
    assert m.rollout_steps(strategy, clusters, canaries) == steps


def test_a_version_change_with_the_defaults_takes_as_many_steps_at_30_as_at_100_clusters():
    change = rollout_strategy(RolloutSpec())
    step, soak = m.ROLLOUT_STEP.seconds, 120
    update = m.CREATION_SECONDS.get(m.MANIFEST_WORK_REPLICA_SET, m.DEFAULT_SECONDS).seconds
    assert m.version_change_seconds(change, 100, 1) == update + 5 * step + 4 * soak
    assert m.version_change_seconds(change, 30, 1) == m.version_change_seconds(change, 100, 1)
    one_at_a_time = rollout_strategy(RolloutSpec(max_concurrency=1))
    assert m.version_change_seconds(one_at_a_time, 100, 1) == update + 100 * step + 99 * soak
