"""Fleets that do not turn on the second home (`hub.standby`) keep their graph exactly.

Each golden file holds, for one fleet and mode, every registered resource: its type, parent,
provider, dependencies, options and a digest of its inputs as sent on the wire (secret markers
included, so a value turning secret or plain is a change too). A failure names the resources
that were added, removed or changed, and what about them changed.

Regenerate only for a change meant to alter what existing fleets deploy, and say so in the
commit: `OCM_FLEET_WRITE_GOLDEN=1 pytest tests/test_golden_graph.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import fleet_graph
from harness import Graph

GOLDEN = Path(__file__).parent / "golden"
FLEETS_WITHOUT_SECOND_HOME = ("dev", "local", "large")
WRITE = os.environ.get("OCM_FLEET_WRITE_GOLDEN") == "1"


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stable_inputs(res) -> dict[str, Any]:
    # A dynamic resource's `__provider` is its provider pickled, which differs between
    # processes for the same code; its other inputs are what it acts on.
    if res.type.startswith("pulumi-python:dynamic"):
        return {k: v for k, v in res.wire_inputs.items() if k != "__provider"}
    return res.wire_inputs


def snapshot(graph: Graph) -> dict[str, Any]:
    """The graph as a comparable record: resources by URN, and the stack's outputs' digests."""
    resources = {}
    for res in graph.resources:
        resources[res.urn] = {
            "parent": res.parent,
            "provider": res.provider_urn,
            "custom": res.custom,
            "dependencies": sorted(res.dependencies),
            "propertyDependencies": {
                key: sorted(urns) for key, urns in sorted(res.property_dependencies.items())
            },
            "options": _digest(res.options),
            "inputs": _digest(_stable_inputs(res)),
        }
    outputs = {key: _digest(value) for key, value in sorted(graph.stack_wire_outputs.items())}
    return {"resources": resources, "outputs": outputs}


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """What changed, one line per resource or output."""
    lines = []
    old, new = expected["resources"], actual["resources"]
    lines += [f"added: {urn}" for urn in sorted(set(new) - set(old))]
    lines += [f"removed: {urn}" for urn in sorted(set(old) - set(new))]
    for urn in sorted(set(old) & set(new)):
        changed = [key for key in old[urn] if old[urn][key] != new[urn].get(key)]
        if changed:
            lines.append(f"changed ({', '.join(changed)}): {urn}")
    outputs_old, outputs_new = expected["outputs"], actual["outputs"]
    for key in sorted(set(outputs_old) | set(outputs_new)):
        if outputs_old.get(key) != outputs_new.get(key):
            lines.append(f"stack output changed: {key}")
    return lines


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", FLEETS_WITHOUT_SECOND_HOME)
def test_fleets_without_a_second_home_keep_their_graph(fleet, preview):
    path = GOLDEN / f"graph-{fleet}-{'preview' if preview else 'update'}.json"
    actual = snapshot(fleet_graph(fleet, preview))
    if WRITE:
        path.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    lines = differences(expected, actual)
    assert not lines, f"{fleet} ({'preview' if preview else 'update'}) graph changed:\n" + (
        "\n".join(lines[:60])
    )


def test_the_snapshot_sees_a_change_in_one_input():
    """The comparison is not blind: one changed input of one resource is reported by name."""
    graph = fleet_graph("local", False)
    before = snapshot(graph)
    after = json.loads(json.dumps(before))
    urn = next(iter(after["resources"]))
    after["resources"][urn]["inputs"] = "0" * 16
    assert differences(before, after) == [f"changed (inputs): {urn}"]
