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
    for release, objects in renders:
        assert objects, f"{release} renders nothing"
        # Everything namespaced lands in the release's namespace, but for the objects the
        # charts place elsewhere on purpose (node-exporter's host namespace, the agent's).
        kinds = {o["kind"] for o in objects}
        assert WORKLOAD_KINDS & kinds, f"{release} renders no workload: {sorted(kinds)}"


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
