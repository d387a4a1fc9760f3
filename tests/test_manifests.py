"""The bookstore's Kubernetes objects in manifests/ are valid, safe and wired to each other.

This module has no golden files (UPDATE_GOLDEN=1 changes nothing here): the manifests are the
reviewed text themselves. tests/test_haproxy.py checks the router's HAProxy config for real.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
K8S_VERSIONS = ["1.33.0", "1.34.0", "1.35.0"]
# What the OCM work agent may apply on an app cluster (its default RBAC plus what the program
# grants it).
ALLOWED_KINDS = {"ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service"}
COMPONENTS = {"website", "shopui", "shopapi", "router"}
ROUTER_CONFIG_ANNOTATION = "bookstore.ocm-fleet.io/router-config-sha256"
# Created on every app cluster by the program, never shipped in manifests/.
DATABASE_OBJECT = "bookstore-database"
DATABASE_CONFIG = "bookstore-database-endpoint"


def load() -> list[tuple[str, dict[str, Any]]]:
    files = sorted(MANIFESTS.glob("*.yaml"))
    assert files, f"no YAML files in {MANIFESTS}"
    result = []
    for path in files:
        for obj in yaml.safe_load_all(path.read_text()):
            if obj is not None:
                result.append((path.name, obj))
    return result


OBJECTS = load()


def ident(item: tuple[str, dict[str, Any]]) -> str:
    file, obj = item
    return f"{file}:{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def of_kind(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(f, o) for f, o in OBJECTS if o["kind"] == kind]


def by_name(kind: str) -> dict[str, tuple[str, dict[str, Any]]]:
    return {o["metadata"]["name"]: (f, o) for f, o in of_kind(kind)}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


DEPLOYMENTS = of_kind("Deployment")
DEPLOYMENT_IDS = [ident(d) for d in DEPLOYMENTS]
CONTAINERS = [
    (f"{ident((f, d))}/{c['name']}", d, c)
    for f, d in DEPLOYMENTS
    for c in pod_spec(d)["containers"]
]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("item", OBJECTS, ids=ident)
def test_object_is_valid_for_kubernetes(item: tuple[str, dict[str, Any]], version: str) -> None:
    try:
        kubernetes_validate.validate(item[1], version, strict=True)
    except kubernetes_validate.ValidationError as err:
        pytest.fail(f"{ident(item)} is not a valid object for Kubernetes {version}: {err.message}")


@pytest.mark.parametrize("item", OBJECTS, ids=ident)
def test_object_is_an_allowed_kind_without_namespace(item: tuple[str, dict[str, Any]]) -> None:
    _, obj = item
    assert obj["kind"] in ALLOWED_KINDS, (
        f"{ident(item)}: the work agent may only apply {sorted(ALLOWED_KINDS)}; Secrets and "
        "Namespaces are created by the program"
    )
    assert "namespace" not in obj["metadata"], (
        f"{ident(item)} sets metadata.namespace; the program chooses the app namespace"
    )
    labels = obj["metadata"].get("labels", {})
    assert labels.get("app.kubernetes.io/part-of") == "bookstore", f"{ident(item)}: part-of"
    if obj["kind"] != "NetworkPolicy":  # policies span components
        assert labels.get("app.kubernetes.io/name") in COMPONENTS, f"{ident(item)}: name label"


def test_database_config_and_secret_are_not_in_manifests() -> None:
    names = {(o["kind"], o["metadata"]["name"]) for _, o in OBJECTS}
    assert ("ConfigMap", DATABASE_CONFIG) not in names, "the program generates it per cluster"
    assert not of_kind("Secret"), "Secrets never travel in a ManifestWork"


def test_every_component_has_deployment_service_and_pdb() -> None:
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        assert set(by_name(kind)) == COMPONENTS, f"{kind}s: {sorted(by_name(kind))}"


@pytest.mark.parametrize("item", DEPLOYMENTS, ids=DEPLOYMENT_IDS)
def test_deployment_survives_losing_a_pod(item: tuple[str, dict[str, Any]]) -> None:
    _, dep = item
    assert dep["spec"].get("replicas", 1) >= 2, f"{ident(item)} needs at least 2 replicas"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selects(dep["spec"]["selector"]["matchLabels"], labels), f"{ident(item)}: selector"
    pdbs = [
        ident(p)
        for p in of_kind("PodDisruptionBudget")
        if selects(p[1]["spec"]["selector"].get("matchLabels", {}), labels)
        and p[1]["spec"].get("minAvailable") == 1
    ]
    assert len(pdbs) == 1, f"{ident(item)} needs one PodDisruptionBudget with minAvailable 1"


@pytest.mark.parametrize("item", DEPLOYMENTS, ids=DEPLOYMENT_IDS)
def test_pods_spread_over_zones_and_nodes(item: tuple[str, dict[str, Any]]) -> None:
    _, dep = item
    labels = dep["spec"]["template"]["metadata"]["labels"]
    constraints = pod_spec(dep).get("topologySpreadConstraints", [])
    keys = set()
    for c in constraints:
        assert c["whenUnsatisfiable"] == "ScheduleAnyway", f"{ident(item)}: {c['topologyKey']}"
        assert selects(c["labelSelector"]["matchLabels"], labels), f"{ident(item)}: selector"
        keys.add(c["topologyKey"])
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, ident(item)


@pytest.mark.parametrize("item", DEPLOYMENTS, ids=DEPLOYMENT_IDS)
def test_pod_is_locked_down(item: tuple[str, dict[str, Any]]) -> None:
    _, dep = item
    spec = pod_spec(dep)
    assert spec.get("automountServiceAccountToken") is False, f"{ident(item)}: token mounted"
    assert spec.get("securityContext", {}).get("seccompProfile", {}).get("type") == (
        "RuntimeDefault"
    ), f"{ident(item)}: seccompProfile RuntimeDefault"


@pytest.mark.parametrize(("cid", "dep", "container"), CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_container_is_pinned_probed_sized_and_unprivileged(
    cid: str, dep: dict[str, Any], container: dict[str, Any]
) -> None:
    image = container["image"]
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    assert "@sha256:" in image or (tag and tag != "latest"), f"{cid}: image {image} not pinned"
    assert container.get("imagePullPolicy") == "IfNotPresent", f"{cid}: imagePullPolicy"
    for probe in ("readinessProbe", "livenessProbe"):
        assert probe in container, f"{cid} has no {probe}"
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container.get("resources", {}).get(bound, {})), (
            f"{cid}: resources.{bound} must set cpu and memory"
        )
    sc = container.get("securityContext", {})
    assert sc.get("allowPrivilegeEscalation") is False, f"{cid}: allowPrivilegeEscalation"
    assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{cid}: drop ALL capabilities"
    added = set(sc.get("capabilities", {}).get("add", []))
    # nginx's master needs these to bind port 80 and hand its workers to the nginx user.
    assert added <= {"CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"}, f"{cid}: adds {added}"
    if "privileged" in sc:
        assert sc["privileged"] is False, f"{cid}: privileged"


@pytest.mark.parametrize("item", of_kind("Service"), ids=ident)
def test_service_selects_its_deployment_and_a_named_port(item: tuple[str, dict[str, Any]]) -> None:
    _, svc = item
    name = svc["metadata"]["name"]
    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", f"{ident(item)}: ClusterIP only"
    _, dep = by_name("Deployment")[name]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selects(svc["spec"]["selector"], labels), (
        f"{ident(item)} does not select the pods of Deployment {name}"
    )
    port_names = {p["name"] for c in pod_spec(dep)["containers"] for p in c.get("ports", [])}
    for port in svc["spec"]["ports"]:
        assert port["targetPort"] in port_names, f"{ident(item)}: targetPort {port['targetPort']}"


def test_shopapi_reads_database_config_and_password_from_the_cluster() -> None:
    file, dep = by_name("Deployment")["shopapi"]
    (container,) = pod_spec(dep)["containers"]
    where = f"{file}:Deployment/shopapi"
    refs = [e.get("configMapRef", {}).get("name") for e in container.get("envFrom", [])]
    assert DATABASE_CONFIG in refs, f"{where} must take envFrom ConfigMap {DATABASE_CONFIG}"
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env.get("RAILS_ENV") == "production" and env.get("RAILS_LOG_TO_STDOUT") == "1", where
    assert "DB_PASSWORD" not in env, f"{where}: the password comes from the Secret only"
    volumes = {v["name"]: v for v in pod_spec(dep).get("volumes", [])}
    mounts = [
        m for m in container.get("volumeMounts", []) if m["mountPath"] == "/app/config/app_secret"
    ]
    assert len(mounts) == 1, f"{where} must mount the password at /app/config/app_secret"
    assert mounts[0].get("readOnly") is True, f"{where}: the password mount must be read-only"
    secret = volumes[mounts[0]["name"]].get("secret", {})
    assert secret.get("secretName") == DATABASE_OBJECT, f"{where}: mounts {secret}"
    items = secret.get("items")
    assert items is None or {"key": "DB_PASSWORD", "path": "DB_PASSWORD"} in items, (
        f"{where}: the file DB_PASSWORD must hold the key DB_PASSWORD"
    )


def test_shopapi_liveness_does_not_depend_on_the_database() -> None:
    _, dep = by_name("Deployment")["shopapi"]
    (container,) = pod_spec(dep)["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/books"
    assert "tcpSocket" in container["livenessProbe"], "a database outage must not restart shopapi"
    assert container["livenessProbe"].get("initialDelaySeconds", 0) >= 30, "Rails boots slowly"


def router_config() -> str:
    _, cm = by_name("ConfigMap")["router"]
    return cm["data"]["haproxy.cfg"]


def test_router_runs_as_haproxy_user_on_8080_with_its_config_mounted() -> None:
    file, dep = by_name("Deployment")["router"]
    where = f"{file}:Deployment/router"
    spec = pod_spec(dep)
    assert dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "router"
    (container,) = spec["containers"]
    assert container["image"] == "haproxy:3.2-alpine", where
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports.get("http") == 8080, f"{where}: the program's LoadBalancer targets port `http`"
    sc = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
    assert sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 99, where
    assert sc.get("readOnlyRootFilesystem") is True, where
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounted = {
        volumes[m["name"]].get("configMap", {}).get("name"): m["mountPath"]
        for m in container["volumeMounts"]
    }
    assert mounted.get("router") == "/usr/local/etc/haproxy", f"{where}: config not mounted"
    env = {e["name"]: e for e in container.get("env", [])}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_router_pods_roll_when_their_config_changes() -> None:
    _, dep = by_name("Deployment")["router"]
    annotations = dep["spec"]["template"]["metadata"].get("annotations", {})
    want = hashlib.sha256(router_config().encode()).hexdigest()
    assert annotations.get(ROUTER_CONFIG_ANNOTATION) == want, (
        f"manifests/router.yaml: set the pod annotation {ROUTER_CONFIG_ANNOTATION} to {want!r}"
    )


def test_router_backends_are_services_in_manifests() -> None:
    services = by_name("Service")
    found = re.findall(r"^\s*server\s+\S+\s+\"?([^\s\"]+)\"?", router_config(), re.MULTILINE)
    assert found, "the router config has no server lines"
    for address in found:
        host, _, port = address.rpartition(":")
        name = host.split(".", 1)[0]
        assert name in services, f"router backend {address} names no Service in manifests/"
        ports = {p["port"] for p in services[name][1]["spec"]["ports"]}
        assert int(port) in ports, f"router backend {address}: Service {name} has ports {ports}"
    assert {a.split(".", 1)[0] for a in found} == COMPONENTS - {"router"}
