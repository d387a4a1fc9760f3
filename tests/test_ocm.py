"""OCM on the recorded graph of whole-program runs: hub, joining, schemas and destroy order."""

from __future__ import annotations

import itertools

import pytest
import yaml
from conftest import FLEETS, fleet_graph
from harness import Graph, Registered, is_secret, wire_get
from schemas import chart_values, crd_errors, unknown_value_keys

from components.config import parse_fleet_config
from components.ocm import _charts as _ocm

MODES = [pytest.param(False, id="update"), pytest.param(True, id="preview")]
OCM_GROUPS = (
    "kubernetes:cluster.open-cluster-management.io/",
    "kubernetes:work.open-cluster-management.io/",
    "kubernetes:operator.open-cluster-management.io/",
)
MANIFEST_WORK = "kubernetes:work.open-cluster-management.io/v1:ManifestWork"
REPLICA_SET = "kubernetes:work.open-cluster-management.io/v1alpha1:ManifestWorkReplicaSet"
PLACEMENT = "kubernetes:cluster.open-cluster-management.io/v1beta1:Placement"
MANAGED_CLUSTER = "kubernetes:cluster.open-cluster-management.io/v1:ManagedCluster"
KLUSTERLET = "kubernetes:operator.open-cluster-management.io/v1:Klusterlet"
CLUSTER_MANAGER = "kubernetes:operator.open-cluster-management.io/v1:ClusterManager"
RELEASE = "kubernetes:helm.sh/v3:Release"
OCM_CHARTS = {"cluster-manager", "klusterlet"}


def ocm_releases(graph):
    """The OCM charts' releases (the monitoring charts have their own tests)."""
    return [r for r in graph.of_type(RELEASE) if r.inputs["chart"] in OCM_CHARTS]


def app_cluster_names(fleet: str) -> list[str]:
    from conftest import FLEETS as fleets

    raw = {k.split(":", 1)[1]: v for k, v in fleets[fleet]().items()}
    return [c.name for c in parse_fleet_config(raw).clusters]


def hub_name(fleet: str) -> str:
    raw = {k.split(":", 1)[1]: v for k, v in FLEETS[fleet]().items()}
    return parse_fleet_config(raw).hub.name


def has_standby_hub(fleet: str) -> bool:
    raw = {k.split(":", 1)[1]: v for k, v in FLEETS[fleet]().items()}
    return parse_fleet_config(raw).standby_ocm_hub


def per_cluster(graph: Graph, cluster: str) -> dict[str, Registered]:
    """The OCM chain of one app cluster; "work" is the replica set that stamps its ManifestWork."""
    return {
        "work": graph.named("app-rollout-replica-set", REPLICA_SET),
        "app_namespace": graph.named(f"{cluster}-app-namespace"),
        "managed_cluster": graph.named(f"{cluster}-ocm-managed-cluster", MANAGED_CLUSTER),
        "klusterlet": graph.named(f"{cluster}-ocm-klusterlet-cr", KLUSTERLET),
        "chart": graph.named(f"{cluster}-ocm-klusterlet", RELEASE),
        "cluster": graph.control_plane(cluster),
    }


def fleet_cases():
    return [
        pytest.param(
            fleet, preview, cluster, id=f"{fleet}-{'preview' if preview else 'update'}-{cluster}"
        )
        for fleet in FLEETS
        for preview in (False, True)
        for cluster in app_cluster_names(fleet)
    ]


@pytest.mark.parametrize(("fleet", "preview", "cluster"), fleet_cases())
def test_destroy_order_of_each_app_cluster_is_encoded_as_dependencies(fleet, preview, cluster):
    graph = fleet_graph(fleet, preview)
    r = per_cluster(graph, cluster)
    # With a standby OCM hub the agent may create ManagedClusters, so they come before it
    # (managed_cluster.py): destroy removes the agent, then its ManagedClusters.
    chains = (
        [["work", "klusterlet", "managed_cluster"], ["klusterlet", "chart", "cluster"]]
        if has_standby_hub(fleet)
        else [["work", "managed_cluster", "klusterlet", "chart", "cluster"]]
    )
    for chain in chains:
        for before, after in itertools.pairwise(chain):
            assert graph.depends_on(r[before], r[after]), (
                f"{r[before]} of {cluster} must depend on {r[after]}, so that destroy deletes "
                "it first"
            )
    assert graph.depends_on(r["work"], r["klusterlet"]), (
        f"{r['work']} must be deleted while the Klusterlet CR of {cluster} (its agent) exists"
    )
    assert graph.depends_on(r["work"], r["app_namespace"]), (
        f"{r['work']} must be gone before the app namespace of {cluster} is deleted"
    )
    for placed in (
        "fleet-placement-placement",
        "fleet-placement-cluster-set-binding",
        "app-rollout-placement",
    ):
        res = graph.named(placed)
        assert graph.depends_on(res, r["managed_cluster"]), (
            f"{res} must be deleted before the ManagedCluster of {cluster}"
        )
    assert not graph.depends_on(r["chart"], r["klusterlet"]), (
        f"the klusterlet chart of {cluster} must not depend on its Klusterlet CR"
    )


@pytest.mark.parametrize("fleet", list(FLEETS))
@pytest.mark.parametrize("preview", MODES)
def test_hub_destroy_order(fleet, preview):
    graph = fleet_graph(fleet, preview)
    cr = graph.named("ocm-hub-cluster-manager-cr", CLUSTER_MANAGER)
    chart = graph.named("ocm-hub-cluster-manager", RELEASE)
    hub = graph.control_plane(hub_name(fleet))
    assert graph.depends_on(cr, chart), "ClusterManager CR must depend on the cluster-manager chart"
    assert graph.depends_on(chart, hub), "cluster-manager chart must depend on the hub cluster"
    # Each hub's objects wait for, and are deleted before, the ClusterManager of their cluster
    # (a standby OCM hub has its own).
    managers = {m.provider_urn: m for m in graph.of_type(CLUSTER_MANAGER)}
    assert len(managers) == (2 if has_standby_hub(fleet) else 1), f"{fleet}: {managers}"
    for res in graph.resources:
        if res.type.startswith(OCM_GROUPS[:2]):
            own = managers.get(res.provider_urn)
            assert own is not None and graph.depends_on(res, own), (
                f"{res} needs an OCM CRD that exists only once its hub's ClusterManager is "
                "Applied: it must depend on that ClusterManager CR"
            )


@pytest.mark.parametrize("fleet", list(FLEETS))
@pytest.mark.parametrize("preview", MODES)
def test_each_agent_runs_on_its_own_cluster_and_the_hub_on_the_hub(fleet, preview):
    graph = fleet_graph(fleet, preview)
    hub_provider = graph.kubernetes_provider(hub_name(fleet))
    for name in ("ocm-hub-cluster-manager", "ocm-hub-cluster-manager-cr"):
        res = graph.named(name)
        assert res.provider_urn == hub_provider.urn, f"{res} must use the hub's provider"
    for cluster in app_cluster_names(fleet):
        provider = graph.kubernetes_provider(cluster)
        r = per_cluster(graph, cluster)
        for key in ("chart", "klusterlet"):
            assert r[key].provider_urn == provider.urn, f"{r[key]} must use {cluster}'s provider"
        for key in ("work", "managed_cluster"):
            assert r[key].provider_urn == hub_provider.urn, f"{r[key]} must be declared on the hub"
        assert r["app_namespace"].provider_urn == provider.urn, f"{r['app_namespace']}"
        values = r["chart"].inputs["values"]
        assert values["klusterlet"]["clusterName"] == cluster, f"klusterlet chart of {cluster}"
        assert r["klusterlet"].inputs["spec"]["clusterName"] == cluster
        assert r["managed_cluster"].inputs["metadata"]["name"] == cluster
    work = graph.named("app-rollout-replica-set", REPLICA_SET)
    assert work.inputs["metadata"]["namespace"] == _ocm.HUB_WORKLOAD_NAMESPACE, (
        f"{work} must live in the fleet namespace, known even in a first preview"
    )


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_charts_are_pinned_to_the_configured_ocm_version(fleet):
    graph = fleet_graph(fleet, False)
    for res in ocm_releases(graph):
        assert res.inputs["version"] == "1.3.1", f"{res} must pin the chart version"
        assert res.inputs["repositoryOpts"]["repo"] == _ocm.CHART_REPO
        assert res.inputs["chart"] in ("cluster-manager", "klusterlet")
    for res in graph.of_type(KLUSTERLET) + graph.of_type(CLUSTER_MANAGER):
        images = [v for k, v in res.inputs["spec"].items() if k.endswith("ImagePullSpec")]
        assert images and all(i.endswith(":v1.3.1") for i in images), f"{res} images {images}"


def test_ocm_version_is_configurable(dev):
    from harness import run_program

    dev["ocm-fleet:ocmVersion"] = "1.2.0"
    graph = run_program(dev)
    versions = {r.inputs["version"] for r in ocm_releases(graph)}
    assert versions == {"1.2.0"}


def test_cluster_manager_auto_approves_the_bootstrap_identity():
    graph = fleet_graph("dev", False)
    spec = graph.named("ocm-hub-cluster-manager-cr").inputs["spec"]
    registration = spec["registrationConfiguration"]
    gates = {g["feature"]: g["mode"] for g in registration["featureGates"]}
    assert gates.get("ManagedClusterAutoApproval") == "Enable"
    assert gates.get("DefaultClusterSet") == "Enable", "the chart's default gate must be kept"
    assert registration["registrationDrivers"] == [
        {"authType": "csr", "csr": {"autoApprovedIdentities": [_ocm.BOOTSTRAP_IDENTITY]}}
    ]
    work_gates = {g["feature"]: g["mode"] for g in spec["workConfiguration"]["featureGates"]}
    assert work_gates == {"ManifestWorkReplicaSet": "Enable"}
    placement = {g["feature"] for g in spec["placementConfiguration"]["featureGates"]}
    assert "PlacementDebugServer" in placement, "the chart's default placement gate must be kept"
    # The auto-approved identity is the ServiceAccount the bootstrap token belongs to.
    account = graph.named("ocm-hub-bootstrap-sa")
    namespace = account.inputs["metadata"]["namespace"]
    name = account.inputs["metadata"]["name"]
    assert f"system:serviceaccount:{namespace}:{name}" == _ocm.BOOTSTRAP_IDENTITY
    token = graph.named("ocm-hub-bootstrap-token")
    assert token.inputs["type"] == "kubernetes.io/service-account-token"
    assert token.inputs["metadata"]["annotations"]["kubernetes.io/service-account.name"] == name


def test_the_program_declares_the_operator_crs_not_the_charts():
    graph = fleet_graph("dev", False)
    hub_values = graph.named("ocm-hub-cluster-manager").inputs["values"]
    assert hub_values["clusterManager"]["create"] is False
    assert not hub_values.get("createBootstrapToken"), "the chart's random token must not be used"
    for res in ocm_releases(graph):
        if res.inputs["chart"] == "klusterlet":
            assert res.inputs["values"]["klusterlet"]["create"] is False, res


@pytest.mark.parametrize("fleet", list(FLEETS))
@pytest.mark.parametrize("preview", MODES)
def test_waits_and_timeouts(fleet, preview):
    graph = fleet_graph(fleet, preview)
    cm = graph.named("ocm-hub-cluster-manager-cr")
    assert cm.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Applied"
    for res in graph.of_type(MANAGED_CLUSTER):
        annotations = res.inputs["metadata"]["annotations"]
        assert annotations["pulumi.com/waitFor"] == "condition=HubAcceptedManagedCluster", res
        assert res.inputs["spec"]["hubAcceptsClient"] is True, res
    for res in graph.of_type(MANIFEST_WORK):
        assert res.inputs["metadata"]["name"] != "bookstore", f"{res}: the app's come from OCM"
        annotations = res.inputs["metadata"]["annotations"]
        assert yaml.safe_load(annotations["pulumi.com/waitFor"]) == [
            "condition=Applied",
            "condition=Available",
        ], res
        assert res.inputs["spec"]["deleteOption"] == {"propagationPolicy": "Foreground"}, res
        timeouts = res.options["customTimeouts"]
        assert timeouts["create"] and timeouts["delete"], f"{res} needs generous custom timeouts"
    for res in graph.of_type(REPLICA_SET):
        spec = res.inputs["spec"]
        assert spec["cascadeDeletionPolicy"] == "Foreground", (
            f"{res}: deleting it must wait until every ManifestWork it made is gone"
        )
        template = spec["manifestWorkTemplate"]
        assert template["deleteOption"] == {"propagationPolicy": "Foreground"}, res
        annotations = res.inputs["metadata"]["annotations"]
        assert annotations["pulumi.com/deletionPropagationPolicy"] == "foreground", res
        timeouts = res.options["customTimeouts"]
        assert timeouts["create"] and timeouts["delete"], f"{res} needs generous custom timeouts"


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_managed_clusters_are_labelled_into_the_cluster_set(fleet):
    graph = fleet_graph(fleet, False)
    raw = {k.split(":", 1)[1]: v for k, v in FLEETS[fleet]().items()}
    specs = {c.name: c for c in parse_fleet_config(raw).clusters}
    for res in graph.of_type(MANAGED_CLUSTER):
        spec = specs[res.inputs["metadata"]["name"]]
        labels = res.inputs["metadata"]["labels"]
        assert labels[_ocm.CLUSTER_SET_LABEL] == _ocm.CLUSTER_SET, res
        assert labels["ocm-fleet.io/cloud"] == spec.cloud, res
        assert labels["ocm-fleet.io/region"] == spec.region, res
        assert labels[_ocm.CLUSTER_NAME_LABEL] == spec.name, res
        assert labels["ocm-fleet.io/standby"] == ("true" if spec.standby else "false"), res
    hubs = 2 if has_standby_hub(fleet) else 1  # a ManagedCluster and replica set on each hub
    assert len(graph.of_type(MANAGED_CLUSTER)) == hubs * len(specs)
    assert len(graph.of_type(REPLICA_SET)) == hubs
    app_works = [
        w for w in graph.of_type(MANIFEST_WORK) if w.inputs["metadata"]["name"] == "bookstore"
    ]
    assert app_works == [], "the app's ManifestWorks come from the replica set, not the program"
    assert len(graph.of_type(KLUSTERLET)) == len(specs)
    placement = graph.named("fleet-placement-placement")
    assert placement.inputs["spec"]["clusterSets"] == [_ocm.CLUSTER_SET]
    binding = graph.named("fleet-placement-cluster-set-binding")
    assert binding.inputs["metadata"]["namespace"] == placement.inputs["metadata"]["namespace"]


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_every_ocm_object_is_valid_against_the_upstream_crds(fleet, shared_reference):
    graph = fleet_graph(fleet, False)
    checked = 0
    for res in graph.resources:
        if not res.type.startswith(OCM_GROUPS):
            continue
        obj = {
            k: res.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in res.inputs
        }
        errors = crd_errors(shared_reference, obj)
        assert not errors, f"{res} is not valid against its upstream CRD: {errors}"
        checked += 1
    assert checked >= 6, f"only {checked} OCM objects found"


def test_schema_check_rejects_a_wrong_field(shared_reference):
    """The CRD check is real: a misspelt field in a ManagedCluster spec is caught."""
    graph = fleet_graph("dev", False)
    res = graph.of_type(MANAGED_CLUSTER)[0]
    obj = {k: res.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}
    wrong_type = {**obj, "spec": {**obj["spec"], "hubAcceptsClient": "yes"}}
    assert crd_errors(shared_reference, wrong_type), "a string hubAcceptsClient must fail"
    misspelt = {**obj, "spec": {**obj["spec"], "hubAcceptClient": True}}
    errors = crd_errors(shared_reference, misspelt)
    assert errors and "hubAcceptClient" in errors[0], f"a misspelt field must fail: {errors}"


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_every_helm_value_key_exists_in_the_chart(fleet, shared_reference):
    graph = fleet_graph(fleet, False)
    for res in ocm_releases(graph):
        defaults = chart_values(shared_reference, res.inputs["chart"])
        unknown = unknown_value_keys(res.inputs["values"], defaults)
        assert not unknown, (
            f"{res} sets keys the chart does not have (Helm ignores them): {unknown}"
        )


def test_helm_value_check_catches_a_typo(shared_reference):
    defaults = chart_values(shared_reference, "klusterlet")
    assert unknown_value_keys({"klusterlet": {"clustername": "x"}}, defaults) == [
        "klusterlet.clustername"
    ]


@pytest.mark.parametrize("fleet", list(FLEETS))
@pytest.mark.parametrize("preview", MODES)
def test_bootstrap_kubeconfig_and_token_stay_secret(fleet, preview):
    graph = fleet_graph(fleet, preview)
    for res in ocm_releases(graph):
        if res.inputs["chart"] != "klusterlet":
            continue
        # One hub: `bootstrapHubKubeConfig`; with a standby OCM hub, one entry per hub.
        multi = "multiHubBootstrapHubKubeConfigs" in res.inputs["values"]
        assert multi == has_standby_hub(fleet), res
        if multi:
            wires = [
                wire_get(entry, "kubeConfig") if not is_secret(entry) else entry
                for entry in wire_get(res.wire_inputs, "values", "multiHubBootstrapHubKubeConfigs")
            ]
            texts = [
                e["kubeConfig"] for e in res.inputs["values"]["multiHubBootstrapHubKubeConfigs"]
            ]
            servers = [
                graph.stack_outputs["hub"]["apiServerUrl"],
                graph.stack_outputs.get("standbyHub", {}).get("apiServerUrl"),
            ]
        else:
            wires = [wire_get(res.wire_inputs, "values", "bootstrapHubKubeConfig")]
            texts = [res.inputs["values"]["bootstrapHubKubeConfig"]]
            servers = [graph.stack_outputs["hub"]["apiServerUrl"]]
        for value in wires:
            assert is_secret(value), f"{res}: the bootstrap kubeconfig must be a Pulumi secret"
        if not preview:
            for text, server in zip(texts, servers, strict=True):
                kubeconfig = yaml.safe_load(text)
                user = kubeconfig["users"][0]["user"]
                assert set(user) == {"token"}, "no exec plugin or client cert in the bootstrap"
                assert user["token"].startswith("sa-token-"), "the token comes from the SA"
                assert kubeconfig["clusters"][0]["cluster"]["server"] == server, res
                assert kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_hub_api_allowlist_admits_every_app_cluster(fleet):
    graph = fleet_graph(fleet, False)
    hub = graph.control_plane(hub_name(fleet))
    if hub.type != "azure-native:containerservice:ManagedCluster":
        pytest.skip("only an AKS hub has an API allowlist managed here")
    allowed = set(hub.inputs["apiServerAccessProfile"].get("authorizedIPRanges") or [])
    configured = FLEETS[fleet]()["ocm-fleet:apiAllowedCidrs"]
    if not allowed:
        assert "0.0.0.0/0" in configured, "the hub's API may be open only when the config says so"
        return
    for name, cluster in graph.stack_outputs["clusters"].items():
        missing = set(cluster["egressIps"]) - allowed
        assert not missing, f"hub API allowlist lacks {name}'s egress IPs {missing}"


def test_only_the_program_creates_managed_clusters():
    """The bootstrap identity may not create ManagedClusters: an agent that could would race
    the program's own ManagedCluster (AlreadyExists) and re-register a cluster being destroyed."""
    graph = fleet_graph("dev", False)
    role = graph.named("ocm-hub-bootstrap-role")
    for rule in role.inputs["rules"]:
        if "managedclusters" in rule["resources"]:
            assert "create" not in rule["verbs"], rule
    csr_rules = [r for r in role.inputs["rules"] if "certificatesigningrequests" in r["resources"]]
    assert csr_rules and "create" in csr_rules[0]["verbs"], "agents must still file their CSR"


@pytest.mark.parametrize("preview", MODES)
def test_klusterlets_come_after_the_bootstrap_permissions(preview):
    graph = fleet_graph("dev", preview)
    binding = graph.named("ocm-hub-bootstrap-binding")
    for cluster in app_cluster_names("dev"):
        chart = graph.named(f"{cluster}-ocm-klusterlet", RELEASE)
        assert graph.depends_on(chart, binding), (
            f"{chart} must wait for the bootstrap ClusterRoleBinding (and outlive it on destroy)"
        )
