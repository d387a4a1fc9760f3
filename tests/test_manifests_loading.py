"""Loading manifests/ for ManifestWorks: what may travel, in a stable order, and what may not."""

from __future__ import annotations

import pytest

from components.app._manifests import (
    MANIFESTS_DIR,
    WORK_KINDS,
    ManifestError,
    load_manifests,
    place,
    work_agent_rules,
)


def write(tmp_path, name: str, text: str):
    (tmp_path / name).write_text(text)
    return tmp_path


def test_the_app_loads_sorted_by_kind_and_name():
    objects = load_manifests(MANIFESTS_DIR)
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert keys == sorted(keys)
    assert {o["kind"] for o in objects} <= set(WORK_KINDS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n", "Secrets must not travel"),
        ("apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n", "kind 'Namespace' is not one"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: x}\n",
            "remove metadata.namespace",
        ),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "metadata.name is missing"),
        ("just: data\n", "not a Kubernetes object"),
    ],
)
def test_objects_that_cannot_travel_are_refused_with_the_file_named(tmp_path, text, message):
    write(tmp_path, "bad.yaml", text)
    with pytest.raises(ManifestError, match=message) as err:
        load_manifests(tmp_path)
    assert "bad.yaml" in str(err.value)


def test_an_empty_folder_is_an_error(tmp_path):
    with pytest.raises(ManifestError, match="no Kubernetes objects"):
        load_manifests(tmp_path)


def test_place_sets_the_namespace_without_touching_the_input():
    original = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    [placed] = place([original], "bookstore")
    assert placed["metadata"] == {"name": "c", "namespace": "bookstore"}
    assert "namespace" not in original["metadata"]


def test_work_agent_rules_cover_exactly_the_kinds_sent():
    objects = [
        {"kind": "Deployment", "metadata": {"name": "a"}},
        {"kind": "Service", "metadata": {"name": "a"}},
        {"kind": "ConfigMap", "metadata": {"name": "b"}},
    ]
    rules = work_agent_rules(objects)
    assert [(r["apiGroups"], r["resources"]) for r in rules] == [
        ([""], ["configmaps", "services"]),
        (["apps"], ["deployments"]),
    ]
