"""The standby OCM hub (`hub.standby.ocmHub`): the config that turns it on, both hubs in the
graph, both bootstrap kubeconfigs on every klusterlet, the same placement and replica set on
both hubs, the allowlists, the destroy order, the CRDs, the chart's real render, and fleets
without it unchanged."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import helm
import pytest
import yaml
from conftest import FLEETS, REFERENCE_ROOT, fleet_graph, require_reference
from harness import Graph, Registered, is_secret, is_unknown, run_program, wire_get
from schemas import crd_errors

from components.app import rollout
from components.config import FleetConfigError, parse_fleet_config
from components.ocm import _charts as _ocm
from components.ocm import managed_cluster as mc

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_MANAGER = "kubernetes:operator.open-cluster-management.io/v1:ClusterManager"
KLUSTERLET = "kubernetes:operator.open-cluster-management.io/v1:Klusterlet"
MANAGED_CLUSTER = "kubernetes:cluster.open-cluster-management.io/v1:ManagedCluster"
PLACEMENT = "kubernetes:cluster.open-cluster-management.io/v1beta1:Placement"
REPLICA_SET = "kubernetes:work.open-cluster-management.io/v1alpha1:ManifestWorkReplicaSet"
RELEASE = "kubernetes:helm.sh/v3:Release"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
AKS = "azure-native:containerservice:ManagedCluster"
MODES = [pytest.param(False, id="update"), pytest.param(True, id="preview")]


def parsed(fleet: str):
    return parse_fleet_config({k.split(":", 1)[1]: v for k, v in FLEETS[fleet]().items()})


HUB_FLEETS = [f for f in FLEETS if parsed(f).standby_ocm_hub]
PLAIN_FLEETS = [f for f in FLEETS if not parsed(f).standby_ocm_hub]


def app_names(fleet: str) -> list[str]:
    return [c.name for c in parsed(fleet).active_clusters]


def ocm_body(res: Registered) -> dict[str, Any]:
    return {k: res.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in res.inputs}


# --- config --------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "hub": {
        "name": "main",
        "cloud": "azure",
        "region": "westeurope",
        "standby": {"name": "second", "cloud": "azure", "region": "northeurope"},
    },
    "clusters": [{"name": "app-azure", "cloud": "azure", "region": "westeurope"}],
    "apiAllowedCidrs": ["203.0.113.7/32"],
    "eksAdminPrincipals": ["arn:aws:iam::123456789012:role/platform-admin"],
}


def standby(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    raw["hub"]["standby"].update(changes)
    return raw


def test_the_standby_hub_is_off_unless_asked_for():
    assert parse_fleet_config(standby()).standby_ocm_hub is False
    assert parse_fleet_config(standby(ocmHub=True)).standby_ocm_hub is True
    assert parse_fleet_config(standby(ocmHub=False)).standby_ocm_hub is False


def test_an_eks_second_home_cannot_be_the_standby_hub_and_the_message_says_why():
    raw = standby(ocmHub=True, cloud="aws", region="eu-west-1")
    with pytest.raises(FleetConfigError) as info:
        parse_fleet_config(raw)
    (problem,) = [p for p in info.value.problems if "ocmHub" in p]
    assert problem.startswith("ocm-fleet:hub.standby.ocmHub: true is not valid with "), problem
    assert "'aws'" in problem, "the message names the value that decides"
    for reason in ("client-auth CSRs", "aws/containers-roadmap#1856", "grpc", "aws_irsa"):
        assert reason in problem, f"the refusal must say {reason!r}: {problem}"
    # The same home may still hold the data.
    assert parse_fleet_config(standby(cloud="aws", region="eu-west-1")).hub_standby is not None


def test_ocm_hub_must_be_a_boolean():
    with pytest.raises(FleetConfigError, match=re.escape("hub.standby.ocmHub: 'yes' must be")):
        parse_fleet_config(standby(ocmHub="yes"))


def test_ocm_hub_is_not_a_key_of_the_hub_or_an_app_cluster():
    raw = copy.deepcopy(BASE)
    raw["clusters"][0]["ocmHub"] = True
    with pytest.raises(FleetConfigError, match=re.escape("clusters[0].ocmHub")):
        parse_fleet_config(raw)


def test_the_local_standby_example_turns_it_on_and_the_aws_one_does_not():
    assert parsed("local-standby").standby_ocm_hub
    assert parsed("dev-standby-hub").standby_ocm_hub
    assert parsed("dev-standby-hub").hub_standby.cloud == "azure"
    assert not parsed("dev-standby").standby_ocm_hub, "an EKS second home holds only the data"


# --- both hubs -----------------------------------------------------------------------------


@pytest.mark.parametrize("preview", MODES)
@pytest.mark.parametrize("fleet", HUB_FLEETS)
def test_both_hubs_run_cluster_manager_each_through_its_own_cluster(fleet, preview):
    graph = fleet_graph(fleet, preview)
    config = parsed(fleet)
    main, second = (
        graph.kubernetes_provider(config.hub.name),
        graph.kubernetes_provider(config.hub_standby.name),
    )
    managers = {graph.by_urn[m.provider_urn].urn: m for m in graph.of_type(CLUSTER_MANAGER)}
    assert set(managers) == {main.urn, second.urn}, "one ClusterManager on each hub"
    assert managers[main.urn].name == "ocm-hub-cluster-manager-cr"
    standby_cr = managers[second.urn]
    assert standby_cr.name == "ocm-standby-hub-cluster-manager-cr"
    # The same auto-approval and acceptance as the main hub.
    assert standby_cr.inputs["spec"] == managers[main.urn].inputs["spec"]
    assert standby_cr.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Applied"


@pytest.mark.parametrize("fleet", HUB_FLEETS)
def test_the_standby_hub_is_exported_for_the_drill(fleet):
    graph = fleet_graph(fleet, False)
    name = parsed(fleet).hub_standby.name
    assert graph.stack_outputs["standbyHub"] == {
        "name": name,
        "apiServerUrl": graph.stack_outputs["hubStandby"][name]["apiServerUrl"],
    }


@pytest.mark.parametrize("fleet", HUB_FLEETS)
def test_both_hubs_may_let_agents_create_managed_clusters(fleet):
    """The MultipleHubs selection checks `create` on managedclusters (ssar.go)."""
    graph = fleet_graph(fleet, False)
    for name in ("ocm-hub-bootstrap-role", "ocm-standby-hub-bootstrap-role"):
        (rule,) = [
            r
            for r in graph.named(name, ROLE).inputs["rules"]
            if "managedclusters" in r["resources"]
        ]
        assert rule["verbs"] == ["create", "get", "list", "watch"], f"{name}: {rule}"


# --- every klusterlet: both bootstrap kubeconfigs --------------------------------------------


def kubeconfigs(release: Registered) -> list[dict[str, Any]]:
    return release.inputs["values"]["multiHubBootstrapHubKubeConfigs"]


@pytest.mark.parametrize("preview", MODES)
@pytest.mark.parametrize("fleet", HUB_FLEETS)
def test_every_klusterlet_carries_both_bootstrap_kubeconfigs_with_multiple_hubs(fleet, preview):
    graph = fleet_graph(fleet, preview)
    for cluster in app_names(fleet):
        chart = graph.named(f"{cluster}-ocm-klusterlet", RELEASE)
        values = chart.inputs["values"]
        assert "bootstrapHubKubeConfig" not in values, f"{chart}: one way to give kubeconfigs"
        entries = kubeconfigs(chart)
        assert [e["name"] for e in entries] == list(mc.BOOTSTRAP_SECRETS), chart
        assert entries[0]["name"] == "bootstrap-hub-kubeconfig", "the main hub's keeps its name"
        wire = wire_get(chart.wire_inputs, "values", "multiHubBootstrapHubKubeConfigs")
        for i, entry in enumerate(wire if isinstance(wire, list) else [wire]):
            value = entry if is_secret(entry) else wire_get(entry, "kubeConfig")
            assert is_secret(value), f"{chart}: bootstrap kubeconfig {i} must be a Pulumi secret"
        spec = graph.named(f"{cluster}-ocm-klusterlet-cr", KLUSTERLET).inputs["spec"]
        registration = spec["registrationConfiguration"]
        assert registration["featureGates"] == [{"feature": "MultipleHubs", "mode": "Enable"}]
        assert registration["bootstrapKubeConfigs"] == {
            "type": "LocalSecrets",
            "localSecretsConfig": {
                "kubeConfigSecrets": [{"name": n} for n in mc.BOOTSTRAP_SECRETS],
                "hubConnectionTimeoutSeconds": mc.HUB_CONNECTION_TIMEOUT_SECONDS,
            },
        }, f"{cluster}: the Klusterlet must name the Secrets the chart renders, main hub first"
        assert "workConfiguration" not in spec, "the eviction grace period stays at its default"


@pytest.mark.parametrize("fleet", HUB_FLEETS)
def test_each_bootstrap_kubeconfig_points_at_its_hub(fleet):
    graph = fleet_graph(fleet, False)
    servers = [
        graph.stack_outputs["hub"]["apiServerUrl"],
        graph.stack_outputs["standbyHub"]["apiServerUrl"],
    ]
    assert servers[0] != servers[1]
    for cluster in app_names(fleet):
        chart = graph.named(f"{cluster}-ocm-klusterlet", RELEASE)
        for entry, server in zip(kubeconfigs(chart), servers, strict=True):
            config = yaml.safe_load(entry["kubeConfig"])
            assert config["clusters"][0]["cluster"]["server"] == server, (chart, entry["name"])


@pytest.mark.parametrize(
    ("fleet", "plain"), [("local-standby", "local"), ("dev-standby-hub", "dev")]
)
def test_the_main_hubs_bootstrap_kubeconfig_is_exactly_the_one_without_a_standby_hub(fleet, plain):
    """The work agent names AppliedManifestWorks after the hub's host: the URL must not move."""
    with_hub, without = fleet_graph(fleet, False), fleet_graph(plain, False)
    assert (
        with_hub.stack_outputs["hub"]["apiServerUrl"]
        == without.stack_outputs["hub"]["apiServerUrl"]
    )
    for cluster in app_names(plain):
        before = without.named(f"{cluster}-ocm-klusterlet", RELEASE).inputs["values"]
        after = kubeconfigs(with_hub.named(f"{cluster}-ocm-klusterlet", RELEASE))[0]
        old, new = (
            yaml.safe_load(before["bootstrapHubKubeConfig"]),
            yaml.safe_load(after["kubeConfig"]),
        )
        assert new["clusters"] == old["clusters"], f"{cluster}: the main hub's server and CA change"


# --- the same placement and replica set on both hubs -----------------------------------------


@pytest.mark.parametrize("preview", MODES)
@pytest.mark.parametrize("fleet", HUB_FLEETS)
def test_the_same_placement_and_replica_set_are_declared_on_both_hubs(fleet, preview):
    graph = fleet_graph(fleet, preview)
    config = parsed(fleet)
    main, second = (
        graph.kubernetes_provider(config.hub.name),
        graph.kubernetes_provider(config.hub_standby.name),
    )
    placements = {
        (graph.by_urn[p.provider_urn].urn, p.inputs["metadata"]["name"]): p
        for p in graph.of_type(PLACEMENT)
    }
    for name in (rollout.PLACEMENT_NAME, "all-app-clusters"):
        ours, theirs = placements[(main.urn, name)], placements[(second.urn, name)]
        assert ours.inputs["spec"] == theirs.inputs["spec"], (
            f"Placement {name} differs between hubs"
        )
    sets = {graph.by_urn[r.provider_urn].urn: r for r in graph.of_type(REPLICA_SET)}
    assert set(sets) == {main.urn, second.urn}
    ours, theirs = sets[main.urn].inputs, sets[second.urn].inputs
    assert json.dumps(ours["spec"]["manifestWorkTemplate"], sort_keys=True) == json.dumps(
        theirs["spec"]["manifestWorkTemplate"], sort_keys=True
    ), "the ManifestWork templates must be byte-identical, or a move restarts the app"
    assert ours["metadata"]["labels"] == theirs["metadata"]["labels"], "same revision label"
    assert ours["metadata"]["name"] == theirs["metadata"]["name"] == rollout.REPLICA_SET_NAME
    assert theirs["spec"]["cascadeDeletionPolicy"] == "Foreground"
    (ref,) = theirs["spec"]["placementRefs"]
    if not preview:
        assert ref["rolloutStrategy"] == {
            "type": "All",
            "all": {"progressDeadline": config.rollout.progress_deadline},
        }, "the standby hub delivers to every arriving agent at once, canaries or not"


@pytest.mark.parametrize("fleet", HUB_FLEETS)
def test_nothing_waits_for_a_rollout_on_the_standby_hub(fleet):
    graph = fleet_graph(fleet, False)
    statuses = [r for r in graph.resources if r.type.endswith("RolloutStatus")]
    assert [s.name for s in statuses] == ["app-rollout-status"], (
        "only the main hub's rollout is waited for: no agent is on the standby until a move"
    )


# --- the allowlists ------------------------------------------------------------------------


def api_allowlist(graph: Graph, cluster: str) -> set[str]:
    plane = graph.control_plane(cluster)
    assert plane.type == AKS, plane
    return set(plane.inputs["apiServerAccessProfile"]["authorizedIPRanges"])


def test_the_standby_hubs_api_admits_exactly_the_app_clusters_and_the_operators():
    graph = fleet_graph("dev-standby-hub", False)
    config = parsed("dev-standby-hub")
    egress = {ip for c in graph.stack_outputs["clusters"].values() for ip in c["egressIps"]}
    assert egress, "the app clusters' egress addresses are known in update mode"
    operators = set(config.api_allowed_cidrs)
    # An AKS cluster also admits its own outbound address: its pods reach their API server
    # through the public endpoint (aks.authorized_ip_ranges).
    own = set(graph.stack_outputs["hubStandby"]["second"]["egressIps"])
    assert api_allowlist(graph, "second") == egress | operators | own, (
        "the standby hub's API must admit exactly the app clusters' egress, apiAllowedCidrs "
        "and its own nodes"
    )
    main_own = set(graph.stack_outputs["hub"]["egressIps"])
    assert api_allowlist(graph, "main") - main_own == api_allowlist(graph, "second") - own, (
        "both hubs admit the same agents and operators"
    )


def test_a_second_home_without_the_standby_hub_admits_the_operators_only():
    raw = {k: copy.deepcopy(v) for k, v in FLEETS["dev-standby-hub"]().items()}
    raw["ocm-fleet:hub"]["standby"]["ocmHub"] = False
    graph = run_program(raw, preview=False)
    own = set(graph.stack_outputs["hubStandby"]["second"]["egressIps"])
    assert api_allowlist(graph, "second") == set(raw["ocm-fleet:apiAllowedCidrs"]) | own
    assert "standbyHub" not in graph.stack_outputs


# --- the destroy order ---------------------------------------------------------------------


@pytest.mark.parametrize("preview", MODES)
@pytest.mark.parametrize("fleet", HUB_FLEETS)
def test_destroy_removes_each_hubs_objects_before_its_cluster_manager_and_the_agent_first(
    fleet, preview
):
    graph = fleet_graph(fleet, preview)
    second = parsed(fleet).hub_standby.name
    cr = graph.named("ocm-standby-hub-cluster-manager-cr", CLUSTER_MANAGER)
    chart = graph.named("ocm-standby-hub-cluster-manager", RELEASE)
    assert graph.depends_on(cr, chart), "the standby ClusterManager CR goes before its chart"
    assert graph.depends_on(chart, graph.control_plane(second)), "and the chart before its cluster"
    replica_set = graph.named("standby-app-rollout-replica-set", REPLICA_SET)
    for name in (
        "standby-app-rollout-placement",
        "standby-fleet-placement-placement",
        "standby-fleet-placement-cluster-set-binding",
        "standby-app-rollout-replica-set",
    ):
        assert graph.depends_on(graph.named(name), cr), f"{name} goes before the ClusterManager"
    for cluster in app_names(fleet):
        klusterlet = graph.named(f"{cluster}-ocm-klusterlet-cr", KLUSTERLET)
        main_mc = graph.named(f"{cluster}-ocm-managed-cluster", MANAGED_CLUSTER)
        standby_mc = graph.named(f"{cluster}-ocm-standby-managed-cluster", MANAGED_CLUSTER)
        assert graph.by_urn[standby_mc.provider_urn] == graph.kubernetes_provider(second)
        assert graph.depends_on(standby_mc, cr), f"{standby_mc} goes before the ClusterManager"
        for managed in (main_mc, standby_mc):
            assert graph.depends_on(klusterlet, managed), (
                f"{klusterlet} must go before {managed}: an agent allowed to create its "
                "ManagedCluster must be gone before that is deleted"
            )
        for placed in (replica_set, graph.named("standby-app-rollout-placement")):
            for member in (standby_mc, klusterlet):
                assert graph.depends_on(placed, member), (
                    f"{placed} must be deleted while {member} of {cluster} exists"
                )


# --- CRDs and the real chart ---------------------------------------------------------------


@pytest.mark.parametrize("fleet", HUB_FLEETS)
def test_every_new_ocm_object_is_valid_against_the_upstream_crds(fleet, shared_reference):
    graph = fleet_graph(fleet, False)
    new = [
        r
        for r in graph.resources
        if r.type.startswith("kubernetes:")
        and ("standby" in r.name or r.type == KLUSTERLET)
        and r.type.split(":")[1].split("/")[0].endswith("open-cluster-management.io")
    ]
    kinds = {r.inputs["kind"] for r in new}
    assert kinds >= {
        "ClusterManager",
        "ManagedClusterSet",
        "ManagedCluster",
        "ManagedClusterSetBinding",
        "Placement",
        "ManifestWorkReplicaSet",
        "Klusterlet",
    }, kinds
    for res in new:
        errors = crd_errors(shared_reference, ocm_body(res))
        assert not errors, f"{res} is not valid against its upstream CRD: {errors}"


def test_the_crd_check_refuses_a_connection_timeout_below_the_minimum(shared_reference):
    klusterlet = fleet_graph("local-standby", False).named("app-1-ocm-klusterlet-cr", KLUSTERLET)
    body = copy.deepcopy(ocm_body(klusterlet))
    secrets = body["spec"]["registrationConfiguration"]["bootstrapKubeConfigs"]
    secrets["localSecretsConfig"]["hubConnectionTimeoutSeconds"] = 60
    assert crd_errors(shared_reference, body), "hubConnectionTimeoutSeconds below 180 must fail"
    secrets["type"] = "Local"
    assert crd_errors(shared_reference, body), "an unknown bootstrapKubeConfigs type must fail"


@pytest.fixture(scope="module")
def chart_reference() -> Path:
    require_reference(REFERENCE_ROOT / helm.CHART_DIRS["klusterlet"] / "Chart.yaml")
    try:
        helm.helm_binary()
    except helm.HelmUnavailable as why:
        if "not installed" in str(why) and os.environ.get("OCM_FLEET_REQUIRE_REFERENCE") == "1":
            pytest.fail(f"OCM_FLEET_REQUIRE_REFERENCE=1 but {why}")
        pytest.skip(f"no real Helm: {why}")
    return REFERENCE_ROOT


@pytest.mark.parametrize("fleet", HUB_FLEETS)
def test_helm_renders_one_bootstrap_secret_per_hub_from_the_klusterlet_chart(
    fleet, chart_reference
):
    graph = fleet_graph(fleet, False)
    versions = {c.name: c.kubernetes_version for c in parsed(fleet).all_clusters}
    klusterlets = [
        r for r in helm.releases(graph, chart_reference, versions) if r.chart == "klusterlet"
    ]
    assert len(klusterlets) == len(app_names(fleet))
    for release in klusterlets:
        objects = helm.render(release, chart_reference)
        secrets = {
            o["metadata"]["name"]: o
            for o in objects
            if o["kind"] == "Secret" and o["metadata"]["name"].startswith("bootstrap-hub-")
        }
        assert list(secrets) == list(mc.BOOTSTRAP_SECRETS), f"{release}: {list(secrets)}"
        given = {
            e["name"]: e["kubeConfig"] for e in release.values["multiHubBootstrapHubKubeConfigs"]
        }
        for name, secret in secrets.items():
            assert secret["metadata"]["namespace"] == _ocm.AGENT_NAMESPACE, (
                f"{release}: {name} must be where the agent reads it"
            )
            assert base64.b64decode(secret["data"]["kubeconfig"]).decode() == given[name], (
                f"{release}: {name} must hold its hub's bootstrap kubeconfig"
            )
        assert not [o for o in objects if o["kind"] == "Klusterlet"], "the program declares it"


# --- fleets without it: unchanged ----------------------------------------------------------


@pytest.mark.parametrize("preview", MODES)
@pytest.mark.parametrize("fleet", PLAIN_FLEETS)
def test_fleets_without_the_standby_hub_have_one_hub_and_single_hub_klusterlets(fleet, preview):
    graph = fleet_graph(fleet, preview)
    assert len(graph.of_type(CLUSTER_MANAGER)) == 1
    assert "standbyHub" not in graph.stack_outputs
    assert not [r for r in graph.resources if r.name.startswith(("ocm-standby-", "standby-"))]
    for cluster in app_names(fleet):
        values = graph.named(f"{cluster}-ocm-klusterlet", RELEASE).inputs["values"]
        assert "multiHubBootstrapHubKubeConfigs" not in values
        assert "bootstrapHubKubeConfig" in values
        spec = graph.named(f"{cluster}-ocm-klusterlet-cr", KLUSTERLET).inputs["spec"]
        assert "registrationConfiguration" not in spec, f"{cluster}: MultipleHubs must stay off"
        managed = graph.named(f"{cluster}-ocm-managed-cluster", MANAGED_CLUSTER)
        klusterlet = graph.named(f"{cluster}-ocm-klusterlet-cr", KLUSTERLET)
        assert graph.depends_on(managed, klusterlet), "the single-hub order is unchanged"
    (rule,) = [
        r
        for r in graph.named("ocm-hub-bootstrap-role", ROLE).inputs["rules"]
        if "managedclusters" in r["resources"]
    ]
    assert "create" not in rule["verbs"], "with one hub the agent may not create ManagedClusters"


# --- the arithmetic in the docs ------------------------------------------------------------

DOC = ROOT / "docs" / "standby-hub.md"


def doc_seconds(label: str) -> int:
    match = re.search(rf"^\| {re.escape(label)} \| (\d+) \|", DOC.read_text(), re.MULTILINE)
    assert match, f"docs/standby-hub.md has no row {label!r}"
    return int(match.group(1))


def test_the_docs_arithmetic_is_the_codes_and_fits_the_grace_period_many_times():
    move = sum(rollout.STANDBY_HUB_MOVE_SECONDS.values())
    delivery = sum(rollout.STANDBY_HUB_DELIVERY_SECONDS.values())
    text = DOC.read_text()
    assert f"| **move, at most** | **{move}** |" in text
    assert f"| **lost main cluster to app delivered, at most** | **{move + delivery}** |" in text
    assert doc_seconds("delivery on the standby hub") == delivery
    assert (
        doc_seconds("`appliedManifestWorkEvictionGracePeriod`") == mc.EVICTION_GRACE_PERIOD_SECONDS
    )
    assert doc_seconds("lease on the main hub stale, and noticed") == (
        mc.HUB_CONNECTION_TIMEOUT_SECONDS + 60
    )
    # "Well within": the whole outage-to-delivery time in under a quarter of the grace period.
    assert 4 * (move + delivery) < mc.EVICTION_GRACE_PERIOD_SECONDS


def test_the_docs_say_what_pauses_and_how_to_go_back():
    text = DOC.read_text()
    assert text.startswith("# Losing the main cluster: the hub\n")
    for needed in (
        "## What pauses while agents are between hubs",
        "## Going back to the main hub",
        '"hubAcceptsClient":false',
        "pulumi up --refresh",
        "## Destroy with two hubs",
    ):
        assert needed in text, f"docs/standby-hub.md must cover {needed!r}"
    assert "standby-hub.md" in (ROOT / "docs" / "how-it-works.md").read_text()


def test_preview_keeps_the_standby_hubs_url_unknown_and_the_graph_whole():
    graph = fleet_graph("dev-standby-hub", True)
    assert is_unknown(graph.stack_outputs["standbyHub"]["apiServerUrl"])
    assert graph.named("standby-app-rollout-replica-set", REPLICA_SET)
