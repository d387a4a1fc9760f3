"""Images by digest: the data in components/images.yaml, what the program deploys, the
pre-deploy check, the policy, and the resolver (against a stand-in registry)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FLEETS, REFERENCE_ROOT, fleet_graph, require_reference
from harness import ROOT, Graph
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs
from registry_stand_in import Registry
from workloads import pod_template, rendered_objects, workloads

sys.path.insert(0, str(ROOT / "policy"))
sys.path.insert(0, str(ROOT / "scripts"))

import check_images
import ocm_fleet_policies as pol

from components import images
from components.observability import _chart_images

KIND_CONTAINER = "command:local:Command"


def deployed_images(graph: Graph) -> dict[str, set[str]]:
    """image reference -> where it is deployed: pods (also inside ManifestWorks), the OCM CRs'
    image pull specs, the OCM charts' image overrides, the images the monitoring charts render
    from their release's values, and the kind load balancer container."""
    found: dict[str, set[str]] = {}
    for workload in workloads(graph):
        spec = pod_template(workload.obj)["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            found.setdefault(container["image"], set()).add(str(workload))
    for placed in rendered_objects(graph):
        if placed.kind in ("ClusterManager", "Klusterlet"):
            for key, value in placed.obj["spec"].items():
                if key.endswith("ImagePullSpec"):
                    found.setdefault(value, set()).add(f"{placed} spec.{key}")
    for release in graph.of_type("kubernetes:helm.sh/v3:Release"):
        chart = release.inputs["chart"]
        if chart not in ("cluster-manager", "klusterlet"):
            assert chart in _chart_images.CHART_IMAGES, (
                f"Helm release {release.name}: chart {chart} has no list of the images it renders"
            )
            rendered = _chart_images.rendered_images(chart, release.inputs["values"])
            for path, value in rendered.items():
                found.setdefault(value, set()).add(f"{release.name} values.{path}")
            continue
        overrides = ((release.inputs.get("values") or {}).get("images") or {}).get("overrides")
        assert overrides and overrides.get("operatorImage"), (
            f"Helm release {release.name} must name its operator image (else the chart pulls "
            "its default by tag)"
        )
        for key, value in overrides.items():
            found.setdefault(value, set()).add(f"{release.name} values.images.overrides.{key}")
    for res in graph.of_type(KIND_CONTAINER):
        image = (res.inputs.get("environment") or {}).get("IMAGE")
        if image:
            found.setdefault(image, set()).add(f"{res.name} IMAGE")
    return found


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_every_deployed_image_carries_its_digest_or_is_marked_unresolved(fleet):
    deployed = deployed_images(fleet_graph(fleet, preview=False))
    assert len(deployed) >= 8, sorted(deployed)
    data = images.read()
    for ref, where in sorted(deployed.items()):
        name, _, digest = ref.partition("@")
        entry = images.entry_for(ref, data)
        assert entry, f"{ref} ({sorted(where)}) is not in components/images.yaml"
        if entry.digest:
            assert digest == entry.digest, f"{ref} ({sorted(where)}) must be {entry.pinned}"
        else:
            assert not digest, f"{ref}: a digest that images.yaml does not record"
            assert entry.unresolved, f"{name} has neither digest nor reason"
    # The one digest published upstream is in use.
    assert data["haproxy:3.2-alpine"].pinned in deployed


def test_a_bare_tag_fails_the_check():
    data = images.read()
    ok = {e.pinned for e in data.values()}
    assert [p for p in images.check(ok, data) if "unresolved" not in p] == []
    for bad, why in [
        ("nginx:1.27", "not in images.yaml"),
        ("haproxy:3.2-alpine", "deployed by tag"),
        ("haproxy:3.2-alpine@sha256:" + "0" * 64, "digest differs"),
    ]:
        (problem,) = images.check([bad], data)
        assert problem.startswith(bad) and why in problem, problem
    assert images.check(["example/app:2.0@sha256:" + "b" * 64], data) == [], (
        "an image pinned by digest where it is configured needs no entry"
    )


def write_images(path: Path, entries: dict) -> Path:
    path.write_text(yaml.safe_dump({"images": entries}))
    return path


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"digest": "sha256:abc"}, "is not sha256:<64 hex digits>"),
        ({"digest": "sha256:" + "a" * 64}, "needs the source"),
        ({"digest": None}, "say why"),
    ],
)
def test_image_data_refuses_a_malformed_entry(tmp_path, entry, message):
    path = write_images(tmp_path / "images.yaml", {"example/app:1.0": entry})
    with pytest.raises(images.ImageDataError, match=message):
        images.read(path)


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_the_pre_deploy_check_lists_exactly_what_the_program_deploys(fleet, tmp_path):
    graph = fleet_graph(fleet, preview=False)
    stack = {f"ocm-fleet:{k.split(':', 1)[-1]}": v for k, v in FLEETS[fleet]().items()}
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(yaml.safe_dump({"config": stack}))
    version, clouds = check_images.stack_settings(path)
    assert check_images.program_images(version, clouds) == set(deployed_images(graph))


def run_check(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "check_images.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_pre_deploy_check_refuses_unresolved_images_unless_allowed():
    refused = run_check(ROOT, "--stack-file", str(ROOT / "Pulumi.dev.yaml"))
    unresolved = sorted(ref for ref, e in images.read().items() if not e.digest)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    for ref in unresolved:
        if "cloud-provider-kind" not in ref:  # dev has no kind cluster
            assert ref in refused.stderr, f"{ref} not named:\n{refused.stderr}"
    assert "--allow-unresolved-images" in refused.stderr
    allowed = run_check(ROOT, "--stack-file", str(ROOT / "Pulumi.dev.yaml"), "--allow-unresolved")
    assert allowed.returncode == 0, allowed.stderr
    assert "WARNING" in allowed.stdout and "mariadb:11.4.8" in allowed.stdout


def test_the_pre_deploy_check_passes_once_every_image_is_resolved(tmp_path):
    for part in ("components", "manifests", "scripts"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    resolved = {
        ref: {"digest": "sha256:" + hashlib.sha256(ref.encode()).hexdigest(), "source": "test"}
        for ref in images.read()
    }
    write_images(tmp_path / "components" / "images.yaml", resolved)
    done = run_check(tmp_path, "--stack-file", str(ROOT / "Pulumi.dev.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    (tmp_path / "components" / "images.yaml").write_text("images: {broken")
    assert run_check(tmp_path, "--stack-file", str(ROOT / "Pulumi.dev.yaml")).returncode == 2


def _validate(props: dict, config: dict | None) -> list[str]:
    messages: list[str] = []
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
    args = ResourceValidationArgs(
        "kubernetes:apps/v1:Deployment", props, "urn:x", "web", opts, None, config
    )
    pol.images_pinned_by_digest.validate(args, lambda message, urn=None: messages.append(message))
    return messages


def test_the_policy_refuses_a_tag_unless_its_flag_is_set():
    pod = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}}
    (message,) = _validate(pod, None)
    assert "'nginx:1.27' by tag" in message
    assert _validate(pod, {"allowUnresolvedImages": True}) == []
    pinned = json.loads(json.dumps(pod).replace("nginx:1.27", "nginx:1.27@sha256:" + "a" * 64))
    assert _validate(pinned, None) == []
    config = json.loads((ROOT / "policy" / "allow-unresolved-images.json").read_text())
    assert config == {"images-pinned-by-digest": {"allowUnresolvedImages": True}}


def test_the_policy_on_the_real_graph_refuses_exactly_the_unresolved_images():
    from test_policy_on_graph import UNPINNED, pack_run

    run = pack_run("dev", False)
    reported = {
        UNPINNED.search(v.message).group(1)
        for v in run.violations
        if v.policy == "images-pinned-by-digest"
    }
    deployed = deployed_images(fleet_graph("dev", preview=False))
    assert reported == {ref for ref in deployed if "@" not in ref}
    assert reported, "the dev fleet has unresolved images; the policy must name them"


# The monitoring charts' own images ------------------------------------------------------------

CHARTS = REFERENCE_ROOT / "observability" / "charts"
PROMETHEUS_SUBCHARTS = ("kube-state-metrics", "prometheus-node-exporter")
ALERTMANAGER_DEFAULTS = {
    "enabled": True,
    "image": {"repository": "quay.io/prometheus/alertmanager", "tag": ""},
    "configmapReload": {
        "enabled": False,
        "image": {"repository": "quay.io/prometheus-operator/prometheus-config-reloader"},
    },
}
"""The image values of alertmanager chart 1.42.0 (the prometheus chart's Chart.lock; appVersion
v0.34.0), whose values.yaml the reference data lacks: prometheus-community/helm-charts at the
reference data's commit, charts/alertmanager/values.yaml."""
ALERTMANAGER_APP_VERSION = "v0.34.0"


def _sidecars_off(v: dict) -> bool:
    kinds = ("alerts", "dashboards", "datasources", "notifiers", "plugins")
    return not any(v["sidecar"][kind]["enabled"] for kind in kinds)


NOT_RENDERED = {
    "prometheus": {
        # kube-state-metrics templates/deployment.yaml, prometheus-node-exporter
        # templates/daemonset.yaml: each container behind its condition.
        "kube-state-metrics.kubeRBACProxy.image": (
            "kube-state-metrics.kubeRBACProxy.enabled is false",
            lambda v: not v["kube-state-metrics"]["kubeRBACProxy"]["enabled"],
        ),
        "prometheus-node-exporter.kubeRBACProxy.image": (
            "prometheus-node-exporter.kubeRBACProxy.enabled is false",
            lambda v: not v["prometheus-node-exporter"]["kubeRBACProxy"]["enabled"],
        ),
        "prometheus-node-exporter.permissionInitContainer.image": (
            "no permission fix (fixes.rapl, fixes.slabinfo, extraCommands) is on",
            lambda v: (
                not (
                    v["prometheus-node-exporter"]["permissionInitContainer"]["fixes"]["rapl"]
                    or v["prometheus-node-exporter"]["permissionInitContainer"]["fixes"]["slabinfo"]
                    or v["prometheus-node-exporter"]["permissionInitContainer"]["extraCommands"]
                )
            ),
        ),
        # alertmanager templates/statefulset.yaml
        "alertmanager.configmapReload.image": (
            "alertmanager.configmapReload.enabled is false",
            lambda v: not v["alertmanager"]["configmapReload"]["enabled"],
        ),
    },
    "grafana": {
        # grafana templates/_pod.tpl, templates/tests/test.yaml, image-renderer-deployment.yaml
        "testFramework.image": (
            "testFramework.enabled is false",
            lambda v: not v["testFramework"]["enabled"],
        ),
        "initChownData.image": (
            "persistence.enabled (with initChownData.enabled) is false",
            lambda v: not (v["persistence"]["enabled"] and v["initChownData"]["enabled"]),
        ),
        "sidecar.image": ("every sidecar.*.enabled is false", _sidecars_off),
        "imageRenderer.image": (
            "imageRenderer.enabled is false",
            lambda v: not v["imageRenderer"]["enabled"],
        ),
    },
}
"""Image values of the charts that render no container with the program's values, and the
condition (from the chart's templates) that keeps them out."""


@pytest.fixture
def charts() -> Path:
    return require_reference(CHARTS)


def _merge(base: Any, over: Any) -> Any:
    """Helm's merge of values: mappings key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {k: _merge(base.get(k), over[k]) if k in base else over[k] for k in over} | {
            k: v for k, v in base.items() if k not in over
        }
    return over


def _at(values: Any, path: str) -> Any:
    for key in path.split("."):
        values = values.get(key) if isinstance(values, dict) else None
    return values


def chart_defaults(charts: Path, chart: str) -> dict[str, Any]:
    """A chart's values.yaml with its subcharts' under their names, and each empty image tag
    replaced by the tag the chart's template falls back to (its appVersion)."""

    def load(name: str) -> tuple[dict[str, Any], str]:
        app = str(yaml.safe_load((charts / name / "Chart.yaml").read_text())["appVersion"])
        return yaml.safe_load((charts / name / "values.yaml").read_text()), app

    values, app = load(chart)
    if chart == "prometheus":
        values["server"]["image"]["tag"] = values["server"]["image"]["tag"] or app
        for sub in PROMETHEUS_SUBCHARTS:
            sub_values, sub_app = load(sub)
            sub_values["image"]["tag"] = sub_values["image"]["tag"] or f"v{sub_app}"
            values[sub] = _merge(sub_values, values[sub])
        alertmanager = _merge(ALERTMANAGER_DEFAULTS, values["alertmanager"])
        alertmanager["image"]["tag"] = alertmanager["image"]["tag"] or ALERTMANAGER_APP_VERSION
        values["alertmanager"] = alertmanager
    if chart == "grafana":
        values["image"]["tag"] = values["image"]["tag"] or app
    return values


def image_values(values: Any, path: str = "") -> set[str]:
    """Paths of the image-bearing values: mappings that name a `repository`."""
    if not isinstance(values, dict):
        return set()
    found = {path} if isinstance(values.get("repository"), str) else set()
    for key, value in values.items():
        found |= image_values(value, f"{path}.{key}" if path else key)
    return found


def chart_image_problems(
    chart: str, release_values: dict, defaults: dict, data: dict[str, images.ImageEntry]
) -> list[str]:
    """Every image-bearing value of a chart and its release, judged: an image the chart renders
    must be one the program lists (and pins from images.yaml, or leaves unresolved there); any
    other must be kept out by its condition."""
    merged = _merge(defaults, release_values)
    listed = {".".join(image.path): image for image in _chart_images.CHART_IMAGES[chart]}
    problems = []
    for path in sorted(image_values(defaults) | image_values(release_values) | set(listed)):
        if path not in listed:
            why, off = NOT_RENDERED[chart].get(path, ("", lambda v: False))
            if not off(merged):
                problems.append(
                    f"{chart}: {path} renders {_at(merged, path)} and the program does not pin it"
                    + (f" ({why} no longer holds)" if why else "")
                )
            continue
        ref = listed[path].rendered(_at(merged, path) or {})
        entry = images.entry_for(ref, data)
        if entry is None:
            problems.append(f"{chart}: {path} renders {ref}, which images.yaml does not list")
        elif entry.digest and not ref.endswith(f"@{entry.digest}"):
            problems.append(f"{chart}: {path} renders {ref}, not by images.yaml's {entry.digest}")
        elif not entry.digest and "@" in ref:
            problems.append(f"{chart}: {path} renders {ref}, a digest images.yaml does not record")
    return problems


def release_values() -> dict[str, dict]:
    from components.observability import _prometheus, hub

    return {
        "prometheus": hub.prometheus_values(["app"], _prometheus.AlertTimings(), "15d", 50, 2),
        "grafana": hub.grafana_values(),
    }


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_every_image_a_monitoring_chart_renders_is_pinned_or_unresolved(fleet, charts):
    releases = {
        r.inputs["chart"]: r.inputs["values"]
        for r in fleet_graph(fleet, preview=False).of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["chart"] in _chart_images.CHART_IMAGES
    }
    assert set(releases) == {"prometheus", "grafana"}, sorted(releases)
    data = images.read()
    for chart, values in releases.items():
        assert chart_image_problems(chart, values, chart_defaults(charts, chart), data) == []
    assert releases["prometheus"]["prometheus-pushgateway"]["enabled"] is False, (
        "the pushgateway subchart is not used: its images are not listed, so it stays off"
    )


def test_each_chart_image_is_the_tag_its_chart_version_deploys_by_default(charts):
    for chart, chart_images in _chart_images.CHART_IMAGES.items():
        defaults = chart_defaults(charts, chart)
        for image in chart_images:
            default = image.rendered(_at(defaults, ".".join(image.path)))
            assert image.reference == default, (
                f"{chart} {'.'.join(image.path)}: images.yaml key {image.reference}, but the "
                f"chart version deploys {default}"
            )
            assert image.reference in images.read(), f"{image.reference} not in images.yaml"


def _resolved(monkeypatch) -> dict[str, images.ImageEntry]:
    """images.yaml's entries, every one with a stand-in digest, in place of the real data."""
    data = {
        ref: images.ImageEntry(ref, "sha256:" + hashlib.sha256(ref.encode()).hexdigest(), "t", None)
        for ref in images.read()
    }
    monkeypatch.setattr(images, "_data", lambda: data)
    return data


def test_a_monitoring_image_by_tag_or_unlisted_fails(monkeypatch, charts):
    data = _resolved(monkeypatch)
    values = release_values()
    prometheus = chart_defaults(charts, "prometheus")
    grafana = chart_defaults(charts, "grafana")

    bare = json.loads(json.dumps(values["prometheus"]))
    del bare["server"]["image"]["digest"]
    (problem,) = chart_image_problems("prometheus", bare, prometheus, data)
    assert "server.image renders quay.io/prometheus/prometheus:v3.14.0, not by" in problem

    new_default = json.loads(json.dumps(grafana))
    new_default["newSidecar"] = {"image": {"repository": "example/new", "tag": "1.0"}}
    (problem,) = chart_image_problems("grafana", values["grafana"], new_default, data)
    assert "newSidecar.image renders" in problem and "does not pin it" in problem

    persistent = {**values["grafana"], "persistence": {"enabled": True}}
    (problem,) = chart_image_problems("grafana", persistent, grafana, data)
    assert "initChownData.image" in problem and "no longer holds" in problem

    (problem,) = images.check(["quay.io/prometheus/prometheus@sha256:" + "0" * 64], data)
    assert "digest differs from images.yaml's quay.io/prometheus/prometheus:v3.14.0" in problem


def test_the_policy_reads_the_images_in_chart_values():
    def release(values: dict) -> list[str]:
        messages: list[str] = []
        opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
        args = ResourceValidationArgs(
            "kubernetes:helm.sh/v3:Release", {"values": values}, "urn:x", "r", opts, None, None
        )
        pol.images_pinned_by_digest.validate(args, lambda m, urn=None: messages.append(m))
        return messages

    image = {"registry": "docker.io", "repository": "grafana/grafana", "tag": "13.2.0"}
    (message,) = release({"sub": {"image": image}})
    assert "'docker.io/grafana/grafana:13.2.0' by tag" in message
    hexdigest = "a" * 64
    for pinned in (
        {**image, "sha": hexdigest},
        {**image, "sha": f"sha256:{hexdigest}"},
        {**image, "digest": f"sha256:{hexdigest}"},
        {**image, "tag": f"13.2.0@sha256:{hexdigest}"},
    ):
        assert release({"sub": {"image": pinned}}) == [], pinned


def test_the_resolver_reads_the_monitoring_images_references():
    import resolve_digests

    assert resolve_digests.split_reference("docker.io/grafana/grafana:13.2.0") == (
        "registry-1.docker.io",
        "grafana/grafana",
        "13.2.0",
    )
    assert resolve_digests.split_reference(
        "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1"
    ) == ("quay.io", "prometheus-operator/prometheus-config-reloader", "v0.93.1")


# The resolver against a stand-in registry ------------------------------------------------------


def test_the_resolver_records_the_digest_of_the_bytes_the_registry_serves(tmp_path, registry):
    index = b'{"schemaVersion":2,"manifests":[]}'
    digest = "sha256:" + hashlib.sha256(index).hexdigest()
    Registry.manifests = {
        "/v2/library/mariadb/manifests/11.4.8": index,
        "/v2/open-cluster-management/work/manifests/v1.3.1": index + b" ",
    }
    path = tmp_path / "images.yaml"
    path.write_text(
        "# kept header\n"
        + yaml.safe_dump(
            {
                "images": {
                    "mariadb:11.4.8": {"digest": None, "unresolved": "not yet"},
                    "quay.io/open-cluster-management/work:v1.3.1": {
                        "digest": None,
                        "unresolved": "not yet",
                    },
                }
            }
        )
    )
    mirrors = [
        "--registry",
        f"registry-1.docker.io={registry}",
        "--registry",
        f"quay.io={registry}",
    ]
    script = [
        sys.executable,
        str(ROOT / "scripts" / "resolve_digests.py"),
        "--images-file",
        str(path),
    ]
    stale = subprocess.run(
        [*script, *mirrors, "--check"], capture_output=True, text=True, timeout=60
    )
    assert stale.returncode == 1 and path.read_text().startswith("# kept header")
    assert "sha256:" not in path.read_text(), "--check changes nothing"
    done = subprocess.run([*script, *mirrors], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = images.read(path)
    assert data["mariadb:11.4.8"].digest == digest
    assert "resolve_digests.py" in data["mariadb:11.4.8"].source
    work = data["quay.io/open-cluster-management/work:v1.3.1"].digest
    assert work == "sha256:" + hashlib.sha256(index + b" ").hexdigest()
    assert path.read_text().startswith("# kept header\n")
    again = subprocess.run(
        [*script, *mirrors, "--check"], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stdout + again.stderr


def test_the_resolver_refuses_a_registry_whose_digest_does_not_match_its_bytes(tmp_path, registry):
    Registry.manifests = {"/v2/library/mariadb/manifests/11.4.8": b"{}"}
    Registry.announce = {"/v2/library/mariadb/manifests/11.4.8": "sha256:" + "f" * 64}
    # A HEAD without the digest sends the resolver to the bytes, which it checks.
    Registry.announce_on_head = False
    path = write_images(
        tmp_path / "images.yaml", {"mariadb:11.4.8": {"digest": None, "unresolved": "not yet"}}
    )
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "resolve_digests.py"),
            "--images-file",
            str(path),
            "--registry",
            f"registry-1.docker.io={registry}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "the registry announces" in done.stderr, done.stderr
    assert images.read(path)["mariadb:11.4.8"].digest is None
