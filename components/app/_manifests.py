"""The app's Kubernetes YAML from manifests/, and what the OCM work agent needs to apply it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from components import _yaml, images

try:
    from pulumi import RunError as _ReportedError
except ImportError:  # scripts/check.py runs the config model, which reads manifests/, without it

    class _ReportedError(Exception):  # type: ignore[no-redef]
        pass


MANIFESTS_DIR = Path(__file__).resolve().parents[2] / "manifests"

# Kinds manifests/ may hold, with the API group and resource the work agent must be allowed to
# manage. A kind outside this table fails loudly rather than failing on the cluster later.
WORK_KINDS: dict[str, tuple[str, str]] = {
    "ConfigMap": ("", "configmaps"),
    "Deployment": ("apps", "deployments"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "Service": ("", "services"),
    "ServiceAccount": ("", "serviceaccounts"),
}
WORK_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


class ManifestError(_ReportedError, ValueError):
    """An object in manifests/ cannot be delivered safely (reported without a traceback)."""


def load_manifests(directory: Path = MANIFESTS_DIR) -> list[dict[str, Any]]:
    """Every object of every *.yaml/*.yml file, sorted by kind and name so runs are stable,
    with container images pinned by digest (components/images.py).

    Objects must not carry a namespace (the program places them) and must not be Secrets:
    a ManifestWork is stored in plain text on the hub.
    """
    objects: list[dict[str, Any]] = []
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    for path in files:
        for index, obj in enumerate(_yaml.safe_load_all(path.read_text())):
            if obj is None:
                continue
            where = f"{path.name} document {index + 1}"
            if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
                raise ManifestError(f"{where}: not a Kubernetes object (no kind/apiVersion)")
            kind = obj["kind"]
            name = (obj.get("metadata") or {}).get("name")
            where = f"{path.name}: {kind} {name!r}"
            if kind == "Secret":
                raise ManifestError(
                    f"{where}: Secrets must not travel in a ManifestWork (stored in plain text "
                    "on the hub); the program creates them on each cluster directly"
                )
            if kind not in WORK_KINDS:
                raise ManifestError(
                    f"{where}: kind {kind!r} is not one the work agent is granted "
                    f"({', '.join(sorted(WORK_KINDS))}); add it to WORK_KINDS"
                )
            if not name:
                raise ManifestError(f"{where}: metadata.name is missing")
            if "namespace" in obj.get("metadata", {}):
                raise ManifestError(
                    f"{where}: remove metadata.namespace; every object goes into the app namespace"
                )
            objects.append(obj)
    if not objects:
        raise ManifestError(f"no Kubernetes objects found in {directory}")
    # manifests/ names images by tag; they are deployed by the digest in components/images.yaml.
    objects = [images.pin_pod_images(o) for o in objects]
    return sorted(objects, key=lambda o: (o["kind"], o["metadata"]["name"]))


def place(objects: Iterable[Mapping[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Copies of `objects` with `metadata.namespace` set."""
    placed = []
    for obj in objects:
        copy = dict(obj)
        copy["metadata"] = {**obj["metadata"], "namespace": namespace}
        placed.append(copy)
    return placed


def work_agent_rules(objects: Iterable[Mapping[str, Any]]) -> list[dict[str, list[str]]]:
    """RBAC rules covering every kind in `objects`, grouped by API group, sorted."""
    by_group: dict[str, set[str]] = {}
    for obj in objects:
        group, resource = WORK_KINDS[obj["kind"]]
        by_group.setdefault(group, set()).add(resource)
    return [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(WORK_VERBS)}
        for group, resources in sorted(by_group.items())
    ]


def _pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}


def container_names(objects: Iterable[Mapping[str, Any]]) -> set[str]:
    """Names of every container and init container in `objects`' pod templates."""
    return {
        c["name"]
        for obj in objects
        for kind in ("containers", "initContainers")
        for c in _pod_spec(obj).get(kind, [])
    }


def with_image_tag(image: str, tag: str) -> str:
    """`image` with its tag (and any digest, which pins the old content) replaced by `tag`,
    pinned by the digest components/images.yaml has for the new reference unless `tag` carries
    its own."""
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return f"{name}:{tag}" if "@" in tag else images.pinned(f"{name}:{tag}")


def set_image_tags(
    objects: Iterable[Mapping[str, Any]], tags: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Copies of `objects` whose containers named in `tags` run that tag of their image."""
    result = []
    for obj in objects:
        pod = _pod_spec(obj)
        if not any(
            c["name"] in tags for k in ("containers", "initContainers") for c in pod.get(k, [])
        ):
            result.append(dict(obj))
            continue
        new_pod = dict(pod)
        for kind in ("containers", "initContainers"):
            if kind in pod:
                new_pod[kind] = [
                    {**c, "image": with_image_tag(c["image"], tags[c["name"]])}
                    if c["name"] in tags
                    else c
                    for c in pod[kind]
                ]
        template = obj["spec"]["template"]
        result.append({**obj, "spec": {**obj["spec"], "template": {**template, "spec": new_pod}}})
    return result
