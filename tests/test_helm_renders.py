"""Real renders: every Helm release of the dev, local and large fleets through `helm template`
and `helm lint`, and the objects Helm renders checked like the program's own."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import helm
import pytest
from conftest import FLEETS, REFERENCE_ROOT, SHARED_REFERENCE, fleet_graph, require_reference
from harness import Graph
from network_flows import (
    Endpoint,
    Network,
    chart_endpoints,
    flow_table,
    needed_flows,
    network_of,
)
from pod_security_standards import check as pss_check
from schemas import crd_errors, crd_schemas, kubernetes_errors
from workloads import WORKLOAD_KINDS, pod_template, rendered_objects

from components import images
from components.config import parse_fleet_config
from components.observability import _chart_images
from components.security.pod_security import PSA_PREFIX

RENDER_FLEETS = ("dev", "local", "large")

RESOURCE_EXCEPTIONS: dict[tuple[str, str], str] = {
    (chart, container): reason
    for reason, entries in {
        "The prometheus chart 29.27.0 and its subcharts set no requests (values.yaml "
        "`resources: {}`), and the program does not size the monitoring stack: the pods are "
        "BestEffort, the first evicted when a node runs short.": (
            ("prometheus", "prometheus-server"),
            ("prometheus", "prometheus-server-configmap-reload"),
            ("prometheus", "alertmanager"),
            ("prometheus", "kube-state-metrics"),
            ("prometheus", "node-exporter"),
        ),
        "The grafana chart 12.11.1 sets no requests (values.yaml `resources: {}`, "
        "`downloadDashboards.resources: {}`), and the program does not size it: BestEffort.": (
            ("grafana", "grafana"),
            ("grafana", "download-dashboards"),
        ),
    }.items()
    for chart, container in entries
}
"""(chart, container) -> why it runs without resource requests."""
PROBE_EXCEPTIONS: dict[tuple[str, str], str] = {}
"""(chart, container) -> why it runs without a liveness or readiness probe (init containers
need none: the API refuses probes on an init container that is not a sidecar)."""


@pytest.fixture(scope="module")
def reference() -> Path:
    for chart in helm.CHART_DIRS.values():
        require_reference(REFERENCE_ROOT / chart / "Chart.yaml")
    try:
        helm.helm_binary()
    except helm.HelmUnavailable as why:
        # Another OS or architecture cannot run the binary: a skip everywhere. A missing
        # package is a broken setup where the reference data is required.
        if "not installed" in str(why) and os.environ.get("OCM_FLEET_REQUIRE_REFERENCE") == "1":
            pytest.fail(f"OCM_FLEET_REQUIRE_REFERENCE=1 but {why}")
        pytest.skip(f"no real Helm: {why}")
    return REFERENCE_ROOT


def kube_versions(fleet: str) -> dict[str, str]:
    """Cluster name -> the Kubernetes MAJOR.MINOR it runs, from the fleet's config."""
    raw = {k.split(":", 1)[1]: v for k, v in FLEETS[fleet]().items()}
    config = parse_fleet_config(raw)
    return {c.name: c.kubernetes_version for c in config.all_clusters}


def fleet_releases(fleet: str, reference: Path) -> list[helm.Release]:
    return helm.releases(fleet_graph(fleet, False), reference, kube_versions(fleet))


@cache
def _rendered(fleet: str, reference: Path) -> tuple[tuple[helm.Release, tuple[dict, ...]], ...]:
    return tuple(
        (release, tuple(helm.render(release, reference)))
        for release in fleet_releases(fleet, reference)
    )


def rendered(fleet: str, reference: Path) -> list[tuple[helm.Release, list[dict]]]:
    """Each release of a fleet with the objects Helm renders for it (a copy: tests may edit)."""
    return [(r, copy.deepcopy(list(objs))) for r, objs in _rendered(fleet, reference)]


def with_values(release: helm.Release, path: Sequence[str], value: Any) -> helm.Release:
    """The release with one value set (path of keys into its values)."""
    values = copy.deepcopy(dict(release.values))
    level = values
    for key in path[:-1]:
        level = level.setdefault(key, {})
    level[path[-1]] = value
    return helm.Release(**{**release.__dict__, "values": values})


def the_release(fleet: str, reference: Path, chart: str) -> helm.Release:
    (release,) = [r for r in fleet_releases(fleet, reference) if r.chart == chart][:1]
    return release


# --- the checks, each returning the problems as sentences ------------------------------------


def validity_problems(release: helm.Release, objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """Strict validity: built-in kinds against the cluster version's schemas, OCM kinds
    against their CRDs."""
    custom = {api for api, _ in crd_schemas(SHARED_REFERENCE)}
    problems = []
    for obj in objects:
        where = f"{release}: {obj['kind']} {obj['metadata'].get('name')}"
        if obj["apiVersion"] in custom:
            errors = crd_errors(SHARED_REFERENCE, dict(obj))
        else:
            errors = kubernetes_errors(dict(obj), release.kube_version)
        problems += [f"{where}: {e}" for e in errors]
    return problems


def image_problems(release: helm.Release, objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every image pinned by images.yaml's digest, or unresolved there (and so by tag)."""
    data = images.read()
    problems = []
    for ref, where in sorted(helm.images_of(objects).items()):
        entry = images.entry_for(ref, data)
        at = f"{release}: {sorted(where)[0]} runs {ref}"
        if entry is None:
            problems.append(f"{at}, which components/images.yaml does not list")
        elif entry.digest and not ref.endswith(f"@{entry.digest}"):
            problems.append(f"{at}, not by images.yaml's digest {entry.digest}")
        elif not entry.digest and "@" in ref:
            problems.append(f"{at}, a digest images.yaml does not record")
        elif not entry.digest and not entry.unresolved:
            problems.append(f"{at}: images.yaml neither pins nor marks it unresolved")
    return problems


def namespace_levels(graph: Graph, renders: Sequence[tuple[helm.Release, Sequence[dict]]]):
    """(cluster, namespace) -> the Pod Security level it enforces (None: no label)."""
    levels: dict[tuple[str, str], str | None] = {}
    namespaces = [(p.cluster, p.obj) for p in rendered_objects(graph) if p.kind == "Namespace"]
    namespaces += [(r.cluster, o) for r, objs in renders for o in objs if o["kind"] == "Namespace"]
    for cluster, obj in namespaces:
        labels = obj["metadata"].get("labels") or {}
        levels[(cluster, obj["metadata"]["name"])] = labels.get(f"{PSA_PREFIX}/enforce")
    return levels


def pod_security_problems(
    release: helm.Release,
    objects: Sequence[Mapping[str, Any]],
    levels: Mapping[tuple[str, str], str | None],
) -> list[str]:
    problems = []
    for obj in objects:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        namespace = obj["metadata"].get("namespace", release.namespace)
        where = f"{release}: {obj['kind']} {namespace}/{obj['metadata']['name']}"
        level = levels.get((release.cluster, namespace))
        if level is None:
            problems.append(f"{where}: its namespace enforces no Pod Security level")
            continue
        problems += [f"{where} ({level}): {p}" for p in pss_check(pod_template(dict(obj)), level)]
    return problems


def readiness_problems(release: helm.Release, objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """Requests on every container, liveness and readiness probes on every container that is
    not an init container, unless an exception says why not."""
    problems = []
    for obj in objects:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        spec = pod_template(dict(obj))["spec"]
        for init, container in [
            *((True, c) for c in spec.get("initContainers") or []),
            *((False, c) for c in spec["containers"]),
        ]:
            key = (release.chart, container["name"])
            where = f"{release}: {obj['kind']} {obj['metadata']['name']} container {key[1]}"
            if not (container.get("resources") or {}).get("requests"):
                if key not in RESOURCE_EXCEPTIONS:
                    problems.append(f"{where} sets no resource requests")
            elif key in RESOURCE_EXCEPTIONS:
                problems.append(f"{where} sets requests now: drop its exception")
            if init:
                continue
            missing = [p for p in ("livenessProbe", "readinessProbe") if p not in container]
            if missing and key not in PROBE_EXCEPTIONS:
                problems.append(f"{where} has no {' or '.join(missing)}")
    return problems


def chart_pods(renders: Sequence[tuple[helm.Release, Sequence[dict]]]) -> list[Endpoint]:
    return [e for r, objs in renders for e in chart_endpoints(r.cluster, r.chart, objs)]


def flow_problems(network: Network) -> list[str]:
    allowed, needed = flow_table(network), needed_flows(network)
    return [f"allowed but not needed: {f}" for f in sorted(allowed - needed)] + [
        f"needed but not allowed: {f}" for f in sorted(needed - allowed)
    ]


# --- every release of every fleet -------------------------------------------------------------


@pytest.mark.parametrize("fleet", RENDER_FLEETS)
def test_every_release_is_rendered_by_helm_with_the_programs_values(fleet, reference):
    graph = fleet_graph(fleet, False)
    declared = graph.of_type(helm.RELEASE_TYPE)
    renders = rendered(fleet, reference)
    assert [r.resource for r, _ in renders] == [r.name for r in declared]
    apps = {c for c in kube_versions(fleet)} - {
        fleet_graph(fleet, False).stack_outputs["hub"]["name"]
    }
    charts = sorted(r.chart for r, _ in renders)
    assert charts == sorted(
        ["cluster-manager", "prometheus", "grafana", *["klusterlet"] * len(apps)]
    )
    levels = namespace_levels(graph, renders)
    for release, objects in renders:
        assert objects, f"{release} renders nothing"
        kinds = {o["kind"] for o in objects}
        assert WORKLOAD_KINDS & kinds, f"{release} renders no workload: {sorted(kinds)}"
        # Namespaced objects land in the release's namespace, or where the values send them
        # (node-exporter's host namespace, the klusterlet's agent namespace): each one a
        # namespace the program or the chart creates.
        for obj in objects:
            namespace = obj["metadata"].get("namespace")
            assert namespace is None or (release.cluster, namespace) in levels, (
                f"{release}: {obj['kind']} {obj['metadata']['name']} lands in {namespace}, "
                "which nothing creates"
            )


@pytest.mark.parametrize("fleet", RENDER_FLEETS)
def test_helm_lint_passes_on_every_release(fleet, reference):
    for release in fleet_releases(fleet, reference):
        done = helm.lint(release, reference)
        assert done.returncode == 0, f"{release}: helm lint --strict failed:\n{done.stdout}"


@pytest.mark.parametrize("fleet", RENDER_FLEETS)
def test_every_rendered_object_is_valid_for_its_clusters_kubernetes(fleet, reference):
    for release, objects in rendered(fleet, reference):
        assert validity_problems(release, objects) == []


@pytest.mark.parametrize("fleet", RENDER_FLEETS)
def test_every_rendered_image_is_pinned_or_marked_unresolved(fleet, reference):
    for release, objects in rendered(fleet, reference):
        assert image_problems(release, objects) == []


@pytest.mark.parametrize("fleet", RENDER_FLEETS)
def test_every_rendered_pod_meets_its_namespaces_pod_security_level(fleet, reference):
    renders = rendered(fleet, reference)
    levels = namespace_levels(fleet_graph(fleet, False), renders)
    for release, objects in renders:
        assert pod_security_problems(release, objects, levels) == []


@pytest.mark.parametrize("fleet", RENDER_FLEETS)
def test_every_rendered_container_has_requests_and_probes_or_a_written_exception(fleet, reference):
    for release, objects in rendered(fleet, reference):
        assert readiness_problems(release, objects) == []


@pytest.mark.parametrize("fleet", RENDER_FLEETS)
def test_the_policies_admit_exactly_the_needed_flows_to_the_ports_the_charts_render(
    fleet, reference
):
    renders = rendered(fleet, reference)
    network = network_of(fleet_graph(fleet, False), chart_pods(renders))
    assert flow_problems(network) == []


# --- each check fails when it should ----------------------------------------------------------


def test_a_value_the_charts_schema_refuses_fails_the_render_and_the_lint(reference):
    # prometheus 29.27.0 values.schema.json: alertmanager.persistence.size is a string.
    release = with_values(
        the_release("dev", reference, "prometheus"), ("alertmanager", "persistence", "size"), 2
    )
    with pytest.raises(helm.RenderError, match=r"alertmanager\.persistence\.size|size"):
        helm.render(release, reference)
    done = helm.lint(release, reference)
    assert done.returncode != 0, f"helm lint passed a refused value:\n{done.stdout}"


def test_an_unpinned_image_in_the_values_fails_the_image_check(reference):
    release = with_values(
        the_release("dev", reference, "prometheus"),
        ("server", "image"),
        {"repository": "quay.io/prometheus/prometheus", "tag": "v3.15.0", "digest": ""},
    )
    problems = image_problems(release, helm.render(release, reference))
    assert any(
        "quay.io/prometheus/prometheus:v3.15.0" in p and "does not list" in p for p in problems
    ), problems


def test_a_digest_images_yaml_does_not_record_fails_the_image_check(reference):
    digest = "sha256:" + "0" * 64
    release = with_values(
        the_release("dev", reference, "prometheus"), ("server", "image", "digest"), digest
    )
    problems = image_problems(release, helm.render(release, reference))
    assert any(f"prometheus@{digest}" in p for p in problems), problems


def test_a_pod_breaking_its_namespaces_level_fails_the_pod_security_check(reference):
    graph = fleet_graph("dev", False)
    release = with_values(
        the_release("dev", reference, "prometheus"), ("server", "hostNetwork"), True
    )
    objects = helm.render(release, reference)
    levels = namespace_levels(graph, rendered("dev", reference))
    assert levels[(release.cluster, "monitoring")] == "baseline"
    problems = pod_security_problems(release, objects, levels)
    assert any("prometheus-server" in p and "hostNetwork" in p for p in problems), problems


def test_a_pod_in_a_namespace_without_a_level_fails_the_pod_security_check(reference):
    (release, objects), *_ = [(r, o) for r, o in rendered("dev", reference) if r.chart == "grafana"]
    levels = namespace_levels(fleet_graph("dev", False), [])
    del levels[(release.cluster, "monitoring")]
    problems = pod_security_problems(release, objects, levels)
    assert any("enforces no Pod Security level" in p for p in problems), problems


def test_a_container_without_probes_or_requests_fails_unless_written_down(reference):
    (release, objects), *_ = [
        (r, o) for r, o in rendered("dev", reference) if r.chart == "cluster-manager"
    ]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    del container["readinessProbe"]
    del container["resources"]
    problems = readiness_problems(release, objects)
    assert any("no readinessProbe" in p for p in problems), problems
    assert any("no resource requests" in p for p in problems), problems


def test_an_exception_the_render_no_longer_needs_fails(reference):
    (release, objects), *_ = [(r, o) for r, o in rendered("dev", reference) if r.chart == "grafana"]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        container["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    problems = readiness_problems(release, objects)
    assert any("drop its exception" in p for p in problems), problems


def test_an_object_the_schema_refuses_fails_the_validity_check(reference):
    (release, objects), *_ = [(r, o) for r, o in rendered("dev", reference) if r.chart == "grafana"]
    (service,) = [o for o in objects if o["kind"] == "Service"]
    service["spec"]["portz"] = service["spec"].pop("ports")
    problems = validity_problems(release, objects)
    assert any("portz" in p or "ports" in p for p in problems), problems


def test_a_policy_opening_a_port_only_the_render_shows_fails_the_flow_check(reference):
    """Grafana renders its gossip (9094) and profiling (6060) ports besides 3000; a policy
    letting Prometheus reach profiling opens a flow nothing needs. The hand-written list of
    the charts' pods (network_flows.CHART_PODS) knows port 3000 only, so it misses this."""
    graph = fleet_graph("dev", False)
    renders = rendered("dev", reference)
    hub = next(r.cluster for r, _ in renders if r.chart == "grafana")
    opened = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "grafana-profiling", "namespace": "monitoring"},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "grafana"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "server"}}}
                    ],
                    "ports": [{"protocol": "TCP", "port": 6060}],
                }
            ],
        },
    }
    # Prometheus's own egress is closed too: the pair opens the flow.
    egress = {
        **opened,
        "metadata": {"name": "server-to-grafana-profiling", "namespace": "monitoring"},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "server"}},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "grafana"}}}],
                    "ports": [{"protocol": "TCP", "port": 6060}],
                }
            ],
        },
    }
    from workloads import Placed

    by_render = network_of(graph, chart_pods(renders))
    by_render.objects += [Placed(hub, opened, "test"), Placed(hub, egress, "test")]
    problems = flow_problems(by_render)
    assert problems == [
        f"allowed but not needed: ('{hub}/monitoring/prometheus-server', "
        f"'{hub}/monitoring/grafana', 'TCP/6060')"
    ], problems
    by_hand = network_of(graph)
    by_hand.objects += [Placed(hub, opened, "test"), Placed(hub, egress, "test")]
    assert flow_problems(by_hand) == [], "the hand-written chart pods now list port 6060"


def test_the_hand_written_chart_pods_are_what_the_charts_render(reference):
    """network_flows.CHART_PODS serves the tests that run without Helm: each of its pods has
    the labels the render gives it and ports the render has."""
    from network_flows import CHART_PODS

    renders = rendered("dev", reference)
    for chart, pods in CHART_PODS.items():
        (release, objects), *_ = [(r, o) for r, o in renders if r.chart == chart]
        by_name = {e.name: e for e in chart_endpoints(release.cluster, chart, objects)}
        for name, labels, ports in pods:
            assert name in by_name, (
                f"{chart}: CHART_PODS lists {name}, the render has {sorted(by_name)}"
            )
            rendered_pod = by_name[name]
            assert labels.items() <= rendered_pod.labels.items(), (name, rendered_pod.labels)
            assert set(ports) <= set(rendered_pod.ports), (name, rendered_pod.ports)


# --- Helm 4 renders what the provider's Helm 3 library installs ------------------------------
#
# The releases are helm.v3.Release: pulumi-kubernetes installs them with the Helm 3 library it
# embeds (helm.sh/helm/v3), with the cluster at hand. The renders here come from the Helm 4
# binary, offline. What that gap could hide, and what the tests below rule out for these charts
# with the program's values:
# - the chart API: Helm 4 reads apiVersion v2 charts as Helm 3 does, while apiVersion v3
#   charts are Helm 4's alone; every chart and subchart here is v2;
# - cluster discovery: the provider's Helm sees the cluster's real API versions, the render sees
#   --api-versions only; no template the program's values reach depends on them;
# - `lookup`: against a cluster it returns live objects, offline nothing; grafana's admin-password
#   lookup falls back to a random password, so a template that uses it renders differently on
#   each run: the renders are identical run to run;
# - hooks and tests: `helm template` prints hooks the install runs as hooks; none is rendered.


def _chart_files(reference: Path) -> list[Path]:
    found = []
    for chart in helm.CHART_DIRS.values():
        found += [
            reference / chart / "Chart.yaml",
            *(reference / chart).glob("charts/*/Chart.yaml"),
        ]
    return found


def test_every_chart_and_subchart_uses_the_chart_api_both_helms_render(reference):
    import yaml

    files = _chart_files(reference)
    assert len(files) == 8, files  # four charts, the prometheus chart's four subcharts
    for path in files:
        assert yaml.safe_load(path.read_text())["apiVersion"] == "v2", path


@pytest.mark.parametrize("fleet", RENDER_FLEETS)
def test_no_render_depends_on_what_cluster_discovery_would_add(fleet, reference):
    probed = (
        "autoscaling.k8s.io/v1",
        "autoscaling.k8s.io/v1/VerticalPodAutoscaler",
        "policy/v1beta1/PodSecurityPolicy",
        "monitoring.coreos.com/v1",
    )
    for release, objects in rendered(fleet, reference):
        wider = helm.Release(
            **{**release.__dict__, "api_versions": (*release.api_versions, *probed)}
        )
        assert helm.render(wider, reference) == objects, (
            f"{release} renders differently when the cluster serves {probed}"
        )


def test_renders_are_the_same_run_to_run_so_no_lookup_or_random_fallback_is_used(reference):
    for release, objects in rendered("dev", reference):
        assert helm.render(release, reference) == objects, f"{release} renders differently twice"


def test_a_template_falling_back_from_lookup_shows_up_as_a_changing_render(reference):
    # Without admin.existingSecret grafana renders its own admin Secret, whose password comes
    # from `lookup` (templates/_helpers.tpl, grafana.password) or else randAlphaNum.
    release = the_release("dev", reference, "grafana")
    values = copy.deepcopy(dict(release.values))
    del values["admin"]
    bare = helm.Release(**{**release.__dict__, "values": values})
    assert helm.render(bare, reference) != helm.render(bare, reference)


@pytest.mark.parametrize("fleet", RENDER_FLEETS)
def test_no_release_renders_hooks(fleet, reference):
    for release, objects in rendered(fleet, reference):
        hooks = [
            f"{o['kind']} {o['metadata']['name']}"
            for o in objects
            if "helm.sh/hook" in (o["metadata"].get("annotations") or {})
        ]
        assert hooks == [], f"{release} renders hooks, which install runs apart: {hooks}"


# --- the monitoring charts' images, from the renders ------------------------------------------


@pytest.mark.parametrize("fleet", RENDER_FLEETS)
def test_the_monitoring_charts_render_exactly_the_images_the_program_lists(fleet, reference):
    """components/observability/_chart_images lists each chart's images to pin them; the
    render says which images the chart runs with the program's values."""
    for release, objects in rendered(fleet, reference):
        if release.chart not in _chart_images.CHART_IMAGES:
            continue
        listed = {i.reference for i in _chart_images.CHART_IMAGES[release.chart]}
        ran = set(helm.images_of(objects))
        assert {ref.partition("@")[0] for ref in ran} == listed, (
            f"{release}: renders {sorted(ran)}, the program lists {sorted(listed)}"
        )
        # scripts/check_images.py lists the images as _chart_images says the chart renders them.
        modeled = set(_chart_images.rendered_images(release.chart, release.values).values())
        assert modeled == ran, f"{release}: Helm renders {sorted(ran)}, the model {sorted(modeled)}"


def test_resolved_digests_render_by_digest_in_each_charts_own_field(monkeypatch, reference):
    """With a digest for every image in images.yaml, every image the monitoring charts render
    is pinned by it: each chart's digest field, read by Helm rather than by a model of it."""
    import hashlib

    from components.observability import _prometheus, hub

    data = {
        ref: images.ImageEntry(ref, "sha256:" + hashlib.sha256(ref.encode()).hexdigest(), "t", None)
        for ref in images.read()
    }
    monkeypatch.setattr(images, "_data", lambda: data)
    values = {
        "prometheus": hub.prometheus_values(["app"], _prometheus.AlertTimings(), "15d", 50, 2),
        "grafana": hub.grafana_values(),
    }
    for chart, chart_values in values.items():
        release = helm.Release(
            **{**the_release("dev", reference, chart).__dict__, "values": chart_values}
        )
        ran = helm.images_of(helm.render(release, reference))
        assert len(ran) == len(_chart_images.CHART_IMAGES[chart]), sorted(ran)
        modeled = set(_chart_images.rendered_images(chart, chart_values).values())
        assert modeled == set(ran), f"{chart}: Helm renders {sorted(ran)}, the model {modeled}"
        for ref in ran:
            name = ref.partition("@")[0]
            entry = images.entry_for(ref, data)
            assert entry is not None and ref.endswith(f"@{entry.digest}"), (
                f"{chart} renders {ref}, not {name} by its digest"
            )


def test_releases_from_local_charts_render_what_the_repositories_charts_render(reference):
    """With config `charts` naming the reference charts (directories, and the grafana chart
    packaged as a .tgz), each release installs from that path and renders the same objects."""
    import tarfile
    import tempfile

    from harness import run_program

    with tempfile.TemporaryDirectory() as tmp:
        grafana = Path(tmp) / "grafana-12.11.1.tgz"
        with tarfile.open(grafana, "w:gz") as archive:
            archive.add(reference / helm.CHART_DIRS["grafana"], arcname="grafana")
        charts = {
            "clusterManager": str(reference / helm.CHART_DIRS["cluster-manager"]),
            "klusterlet": str(reference / helm.CHART_DIRS["klusterlet"]),
            "prometheus": str(reference / helm.CHART_DIRS["prometheus"]),
            "grafana": str(grafana),
        }
        graph = run_program({**FLEETS["dev"](), "ocm-fleet:charts": charts})
        local = helm.releases(graph, reference, kube_versions("dev"))
        assert sorted(r.local_chart for r in local) == sorted(
            [*charts.values(), charts["klusterlet"]]
        )
        by_resource = {r.resource: objs for r, objs in rendered("dev", reference)}
        for release in local:
            assert helm.render(release, reference) == by_resource[release.resource], (
                f"{release} from {release.local_chart} renders differently"
            )


def test_api_versions_at_install_time_follow_what_the_graph_installs_first(reference):
    """What `--api-versions` gets: the CRDs of the releases and OCM operators a resource
    depends on. The ClusterManager CR comes after the cluster-manager chart (its CRD); a
    ManifestWork comes after the ClusterManager is Applied (the hub operator's CRDs)."""
    graph = fleet_graph("dev", False)
    (cr,) = graph.of_type("kubernetes:operator.open-cluster-management.io/v1:ClusterManager")
    assert "operator.open-cluster-management.io/v1/ClusterManager" in helm.installed_first(
        graph, cr, reference
    )
    work = graph.of_type("kubernetes:work.open-cluster-management.io/v1:ManifestWork")[0]
    after_hub = helm.installed_first(graph, work, reference)
    assert {
        "work.open-cluster-management.io/v1/ManifestWork",
        "cluster.open-cluster-management.io/v1/ManagedCluster",
    } <= after_hub
    assert "work.open-cluster-management.io/v1/AppliedManifestWork" not in after_hub, (
        "AppliedManifestWork is the klusterlet operator's, on the managed cluster"
    )
    # No release of these fleets waits for another chart or an operator: each renders with the
    # built-in API versions only.
    assert {r.api_versions for r in fleet_releases("dev", reference)} == {()}


@pytest.mark.parametrize("fleet", RENDER_FLEETS)
def test_the_only_namespace_a_chart_renders_without_a_pod_security_level_is_the_agents(
    fleet, reference
):
    """The klusterlet chart renders the agent namespace (templates/agent-namespace.yaml) with no
    Pod Security label, so it gets the cluster's default level. The chart renders no pod there:
    the operator creates the agents in it. Any other such namespace, or a rendered pod in it,
    is new and fails here."""
    renders = rendered(fleet, reference)
    unlabelled = {
        (r.chart, o["metadata"]["name"])
        for r, objs in renders
        for o in objs
        if o["kind"] == "Namespace"
        and not (o["metadata"].get("labels") or {}).get(f"{PSA_PREFIX}/enforce")
    }
    assert unlabelled == {("klusterlet", "open-cluster-management-agent")}, unlabelled
    in_it = [
        f"{r}: {o['kind']} {o['metadata']['name']}"
        for r, objs in renders
        for o in objs
        if o["kind"] in WORKLOAD_KINDS
        and o["metadata"].get("namespace") == "open-cluster-management-agent"
    ]
    assert in_it == []
