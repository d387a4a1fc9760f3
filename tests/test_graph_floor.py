"""The bench's graph floor replays exactly what the program registers, and says when it does not."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest
from conftest import FLEETS
from harness import run_program

# Appended, not put first: bench/ has modules named like those in scripts/.
sys.path.append(str(Path(__file__).resolve().parent.parent / "bench"))
import graph_floor
import pulumi
import pulumi_kubernetes as k8s

STACK_REFERENCE = "pulumi:pulumi:StackReference"


def _recorded(fleet: str, preview: bool):
    with graph_floor.recording() as rec:
        graph = run_program(FLEETS[fleet](), preview=preview)
    return graph, rec


def _replay(rec: graph_floor.Recording, preview: bool):
    return run_program({}, preview=preview, program=graph_floor.replay_program(rec))


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", list(FLEETS))
def test_the_replay_registers_what_the_program_registers(fleet, preview):
    graph, rec = _recorded(fleet, preview)
    assert len(rec.calls) == len(graph.resources) + len(graph.reads), (
        "every registration and read of the program is recorded once"
    )
    replayed = _replay(rec, preview)
    assert graph_floor.differences(graph, replayed) == []
    assert graph_floor.fingerprint_differences(graph_floor.fingerprints(graph), replayed) == []
    # bench/program_eval.py replays a recording once; a second replay shows the replay changes
    # nothing it reuses.
    assert graph_floor.differences(graph, _replay(rec, preview)) == []


@pytest.mark.parametrize("fleet", ["dev", "local"])
def test_the_replay_does_no_more_sdk_work_than_the_program(fleet):
    """A floor must not cost more than what it is the floor of: per registration, the replay
    makes no more Outputs and starts no more tasks than the program (counted, not timed)."""
    with graph_floor.recording() as rec, graph_floor.count_sdk_work() as program:
        graph = run_program(FLEETS[fleet]())
    with graph_floor.count_sdk_work() as replay:
        replayed = _replay(rec, False)
    assert len(replayed.resources) == len(graph.resources) > 100
    assert 0 < replay["outputs"] <= program["outputs"], (replay, program)
    assert 0 < replay["tasks"] <= program["tasks"], (replay, program)


@pytest.fixture(scope="module")
def dev_recording():
    return _recorded("dev", preview=False)


def _with_call(rec: graph_floor.Recording, i: int, **changes) -> graph_floor.Recording:
    calls = list(rec.calls)
    calls[i] = dataclasses.replace(calls[i], **changes)
    return graph_floor.Recording(calls=calls)


def _urn_of(graph, call) -> str:
    return next(r.urn for r in graph.resources if (r.type, r.name) == (call.type_, call.name))


def test_a_registration_left_out_is_reported(dev_recording):
    graph, rec = dev_recording
    last = rec.calls[-1]
    # Leaving out the last call keeps every other call's references in place.
    assert any((r.type, r.name) == (last.type_, last.name) for r in graph.resources), (
        f"the dev fleet's last resource, {last.type_} {last.name}, is a registration"
    )
    shorter = graph_floor.Recording(calls=rec.calls[:-1])
    assert graph_floor.differences(graph, _replay(shorter, False)) == [
        f"{_urn_of(graph, last)}: not replayed"
    ]


def _fields(props) -> dict:
    """A recorded call's inputs by name: a dict, an SDK input type, or one rebuilt per replay."""
    if isinstance(props, graph_floor._Container):
        return dict(props.items)
    return props if isinstance(props, dict) else vars(props)


def _with_field(props, key: str, value):
    if isinstance(props, graph_floor._Container):
        items = tuple((k, value if k == key else v) for k, v in props.items)
        return dataclasses.replace(props, items=items)
    if isinstance(props, dict):
        return {**props, key: value}
    return graph_floor._with_fields(props, list({**vars(props), key: value}.items()))


def test_a_changed_input_is_reported(dev_recording):
    graph, rec = dev_recording
    i, call = next(
        (i, c) for i, c in enumerate(rec.calls) if c.type_ == "kubernetes:core/v1:Namespace"
    )
    metadata = _fields(call.props)["metadata"]
    assert isinstance(metadata, dict) and metadata["name"] != "elsewhere"
    renamed = _with_field(call.props, "metadata", {**metadata, "name": "elsewhere"})
    replayed = _replay(_with_call(rec, i, props=renamed), False)
    urn = _urn_of(graph, call)
    assert graph_floor.differences(graph, replayed) == [f"{urn}: inputs differ"]
    fingerprints = graph_floor.fingerprints(graph)
    assert graph_floor.fingerprint_differences(fingerprints, replayed) == [f"{urn}: differs"]


def test_an_input_replayed_without_its_dependency_is_reported(dev_recording):
    """An Output input carries its resource's dependency: replayed as a plain value, it must
    show."""
    graph, rec = dev_recording
    i, call, key, output = next(
        (i, c, k, v)
        for i, c in enumerate(rec.calls)
        if c.custom and not c.refs.get("depends_on")
        for k, v in _fields(c.props).items()
        if isinstance(v, graph_floor._Output) and v.resources and not graph_floor._rebuilt(v.value)
    )
    plain = _with_field(call.props, key, output.value)
    found = graph_floor.differences(graph, _replay(_with_call(rec, i, props=plain), False))
    assert found == [f"{_urn_of(graph, call)}: dependencies, property_dependencies differ"]


def test_a_changed_read_is_reported(dev_recording):
    graph, rec = dev_recording
    i, call = next((i, c) for i, c in enumerate(rec.calls) if c.type_ == STACK_REFERENCE)
    assert _fields(call.props)["name"] != "organization/ocm-fleet/elsewhere"
    elsewhere = _with_field(call.props, "name", "organization/ocm-fleet/elsewhere")
    found = graph_floor.differences(graph, _replay(_with_call(rec, i, props=elsewhere), False))
    assert found == [
        f"read of {STACK_REFERENCE} {call.name}: not replayed as the program made it",
        f"read of {STACK_REFERENCE} {call.name}: replayed, not in the program",
    ]


def _small_program(**last_options):
    """Two ConfigMaps share one Output of a third; a fourth gets an Output that carries only a
    value; `last_options` go to the fourth, each built from the first ConfigMap."""

    def program() -> None:
        provider = k8s.Provider("p", kubeconfig="{}")
        first = k8s.core.v1.ConfigMap(
            "first", metadata={"name": "first"}, opts=pulumi.ResourceOptions(provider=provider)
        )
        for name in ("a", "b"):
            k8s.core.v1.ConfigMap(
                name,
                metadata={"name": name},
                data={"from": first.id},
                opts=pulumi.ResourceOptions(provider=provider),
            )
        options = {key: make(first) for key, make in last_options.items()}
        k8s.core.v1.ConfigMap(
            "last",
            metadata={"name": "last"},
            data={"k": pulumi.Output.from_input("v")},
            opts=pulumi.ResourceOptions(provider=provider, **options),
        )

    return program


def test_an_output_shared_by_inputs_is_made_once_and_a_bare_one_is_a_plain_value():
    with graph_floor.recording() as rec:
        graph = run_program({}, program=_small_program())
    calls = {c.name: c for c in rec.calls}
    shared = [_fields(_fields(calls[n].props)["data"])["from"] for n in ("a", "b")]
    assert all(isinstance(o, graph_floor._Output) for o in shared)
    assert shared[0].key == shared[1].key, "one Output, rebuilt once per replay"
    assert shared[0].resources == (rec.calls.index(calls["first"]),)
    last = _fields(calls["last"].props)["data"]
    assert last == {"k": "v"}, "an Output with no dependency, secret or unknown is its value"
    with graph_floor.count_sdk_work() as counted:
        replayed = _replay(rec, False)
    assert graph_floor.differences(graph, replayed) == []
    # The same recording with the two inputs' Outputs told apart: one Output more.
    i = rec.calls.index(calls["b"])
    data = _fields(calls["b"].props)["data"]
    apart = dataclasses.replace(shared[1], key=shared[1].key + 1000)
    unshared = _with_call(
        rec, i, props=_with_field(calls["b"].props, "data", _with_field(data, "from", apart))
    )
    with graph_floor.count_sdk_work() as counted_apart:
        assert graph_floor.differences(graph, _replay(unshared, False)) == []
    assert counted_apart["outputs"] == counted["outputs"] + 1


@pytest.mark.parametrize(
    "option, refusal",
    [
        ({"replace_with": lambda first: [first]}, "option `replace_with`"),
        ({"replacement_trigger": lambda first: {"id": first.id}}, "option `replacement_trigger`"),
        (
            {"parent": lambda first: pulumi.runtime.get_root_resource()},
            "the recording did not make",
        ),
    ],
    ids=["resource-in-a-list", "output-in-a-dict", "the-stack-as-parent"],
)
def test_what_the_replay_cannot_map_is_refused_by_name(option, refusal):
    refused = pytest.raises(NotImplementedError, match=f"ConfigMap last.*{re.escape(refusal)}")
    with refused, graph_floor.recording():
        run_program({}, program=_small_program(**option))
