"""Upstream schemas: OCM CRDs and Helm chart values from shared/reference, and Kubernetes kinds."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml


@cache
def crd_schemas(reference: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every CRD in the reference data."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    files = [*sorted((reference / "crds").glob("*.yaml"))]
    files += sorted((reference / "charts").glob("*/crds/*.yaml"))
    for path in files:
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def _closed(schema: Any) -> Any:
    """The schema with unknown fields refused wherever the API server would prune them.

    A structural CRD schema lists an object's fields; the API server silently drops any other
    (pruning), so a misspelt field is lost without an error. Closing every object that lists
    properties (and does not preserve unknown fields) turns that loss into a test failure.
    """
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {k: _closed(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


def crd_errors(reference: Path, obj: dict[str, Any]) -> list[str]:
    """Schema violations of a custom resource, unknown fields included (empty when valid)."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    schema = crd_schemas(reference).get(key)
    if schema is None:
        return [f"no served CRD version for {key[0]} {key[1]} in {reference}"]
    body = {k: obj[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in obj}
    schema = _closed(schema)
    # metadata is validated by the API server, not the CRD: keep it open.
    schema["properties"]["metadata"] = {"type": "object"}
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(body)
    ]


@cache
def chart_values(reference: Path, chart: str) -> dict[str, Any]:
    return yaml.safe_load((reference / "charts" / chart / "values.yaml").read_text())


def unknown_value_keys(values: Any, defaults: Any, path: str = "") -> list[str]:
    """Keys set in `values` that the chart's values.yaml does not have.

    Helm ignores a misspelt key silently. Below a key whose default is empty ({} or null or "")
    the chart takes free-form content, so nothing under it is checked.
    """
    if not isinstance(values, dict) or not isinstance(defaults, dict) or not defaults:
        return []
    missing = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        if key not in defaults:
            missing.append(where)
        else:
            missing += unknown_value_keys(value, defaults[key], where)
    return missing


def kubernetes_errors(obj: dict[str, Any], kubernetes_version: str) -> list[str]:
    """Strict validation of a built-in kind for a Kubernetes MAJOR.MINOR version."""
    try:
        kubernetes_validate.validate(obj, f"{kubernetes_version}.0", strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{'.'.join(map(str, err.path))}: {err.message}"]
    return []
