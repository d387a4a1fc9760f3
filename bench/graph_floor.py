"""The graph floor: what the SDK costs to register exactly the program's resources, with no program.

A run of the program is recorded at the SDK's own entry point (`pulumi.Resource.__init__`):
each resource's class, type, name, inputs and options, in the order the program made them.
The replay makes the same calls again, in the same order, through the same SDK classes: the
same inputs (an Output becomes an already-resolved Output with the same value, secrecy and
dependencies), the same parents, providers, `depends_on`, aliases and other options, and the
same evaluation settings (`prepare_evaluation`). What it leaves out is the program itself:
reading config and manifests, rendering payloads, the invokes, the applies that compute
inputs, and the outputs components and the stack register. Those are the program's own
costs, so the replay is a floor below the program for this graph: a program that declares
these registrations cannot cost the SDK less than their replay does.

`differences` compares two recorded graphs registration by registration. bench/program_eval.py
replays a fleet and refuses to report a time unless the replay registered exactly what the
program did; tests/test_graph_floor.py checks the same for every fleet, in update and preview.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pulumi
from pulumi import _types
from pulumi.output import _OutputData
from pulumi.resource import ProviderResource, Resource


@dataclasses.dataclass(frozen=True)
class _Output:
    """An Output the program passed, as it resolved: rebuilt, resolved, at each replay."""

    resources: tuple[int, ...]
    value: Any
    is_known: bool
    is_secret: bool


@dataclasses.dataclass(frozen=True)
class _Ref:
    """A resource the program passed where a value goes (by its position in the recording)."""

    index: int


@dataclasses.dataclass(frozen=True)
class _Container:
    """A dict, list or input type holding an Output or a resource: rebuilt at each replay.

    Containers that hold neither are kept as the program passed them and reused; the SDK
    reads its inputs without changing them."""

    make: Callable[[list], Any]
    items: tuple[Any, ...]
    keyed: bool
    """Items are (key, value) pairs: a dict's or an input type's fields."""


@dataclasses.dataclass(frozen=True)
class _Call:
    cls: type
    type_: str
    name: str
    custom: bool
    props: Any
    opts: pulumi.ResourceOptions | None
    refs: dict[str, Any]
    """The options that name resources, by position in the recording."""
    remote: bool
    package_ref: Any


@dataclasses.dataclass
class Recording:
    """The SDK calls one run of the program made, ready to replay."""

    calls: list[_Call]


STACK_TYPE = "pulumi:pulumi:Stack"


@contextmanager
def recording() -> Iterator[Recording]:
    """Record every resource made while the block runs; the recording is filled at its end."""
    made: list[tuple] = []
    sdk_init = Resource.__init__

    def record(
        self,
        t,
        name,
        custom,
        props=None,
        opts=None,
        remote=False,
        dependency=False,
        package_ref=None,
    ):
        # The stack, and the stand-ins the SDK makes for URNs it is given, are the SDK's own.
        if not dependency and t != STACK_TYPE:
            made.append((self, t, name, custom, props, opts, remote, package_ref))
        return sdk_init(self, t, name, custom, props, opts, remote, dependency, package_ref)

    result = Recording(calls=[])
    Resource.__init__ = record
    try:
        yield result
    finally:
        Resource.__init__ = sdk_init
    # Every Output the program passed has resolved by now: the run awaited each one to send it.
    index = {id(entry[0]): i for i, entry in enumerate(made)}
    result.calls = [
        _Call(
            cls=type(res),
            type_=t,
            name=name,
            custom=custom,
            props=_template(props, index),
            opts=_options_template(opts),
            refs=_option_refs(opts, index),
            remote=remote,
            package_ref=package_ref,
        )
        for res, t, name, custom, props, opts, remote, package_ref in made
    ]


def _template(value: Any, index: dict[int, int]) -> Any:
    if isinstance(value, pulumi.Output):
        data = value._data.result()
        return _Output(
            resources=tuple(sorted(index[id(r)] for r in data.resources)),
            value=_template(data.value, index),
            is_known=data.is_known,
            is_secret=data.is_secret,
        )
    if isinstance(value, Resource):
        return _Ref(index[id(value)])
    if isinstance(value, dict):
        items = tuple((k, _template(v, index)) for k, v in value.items())
        if any(_rebuilt(v) for _, v in items):
            return _Container(make=type(value), items=items, keyed=True)
        return value
    if isinstance(value, (list, tuple)):
        items = tuple(_template(v, index) for v in value)
        if any(_rebuilt(v) for v in items):
            return _Container(make=type(value), items=items, keyed=False)
        return value
    if _types.is_input_type(type(value)):
        items = tuple((k, _template(v, index)) for k, v in vars(value).items())
        if any(_rebuilt(v) for _, v in items):
            return _Container(
                make=lambda pairs, v=value: _with_fields(v, pairs), items=items, keyed=True
            )
        return value
    return value


def _rebuilt(value: Any) -> bool:
    return isinstance(value, (_Output, _Ref, _Container))


def _with_fields(input_type: Any, pairs: list) -> Any:
    copy = object.__new__(type(input_type))
    vars(copy).update(pairs)
    return copy


REFERENCE_OPTIONS = ("parent", "provider", "deleted_with")


def _options_template(opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions | None:
    if opts is None:
        return None
    template = opts._copy()
    for field in (*REFERENCE_OPTIONS, "providers", "depends_on"):
        setattr(template, field, None)
    return template


def _option_refs(opts: pulumi.ResourceOptions | None, index: dict[int, int]) -> dict[str, Any]:
    if opts is None:
        return {}
    refs: dict[str, Any] = {
        f: index[id(getattr(opts, f))] for f in REFERENCE_OPTIONS if getattr(opts, f) is not None
    }
    if isinstance(opts.providers, dict):
        refs["providers"] = {k: index[id(p)] for k, p in opts.providers.items()}
    elif opts.providers:
        refs["providers"] = [index[id(p)] for p in opts.providers]
    depends_on = opts.depends_on
    if isinstance(depends_on, pulumi.Output):
        depends_on = depends_on._data.result().value
    if depends_on is not None:
        listed = depends_on if isinstance(depends_on, (list, tuple)) else [depends_on]
        refs["depends_on"] = [index[id(r)] for r in listed]
    if opts.aliases and any(isinstance(getattr(a, "parent", None), Resource) for a in opts.aliases):
        raise NotImplementedError(
            "the replay does not map an alias's parent resource: add it to _option_refs"
        )
    return refs


def replay_program(rec: Recording) -> Callable[[], None]:
    """A program that makes the recorded calls again, for `harness.run_program(program=...)`."""

    def program() -> None:
        from components._evaluation import prepare_evaluation

        prepare_evaluation()
        made: list[Resource] = []
        for call in rec.calls:
            res = call.cls.__new__(call.cls)
            made.append(res)
            _SdkClass(res, call, made)

    return program


class _SdkClass:
    """Stands where the provider SDK's class stands, so the SDK walks a stack of the same shape
    (it records the source position of each resource from the first frame outside the SDK)."""

    def __init__(self, res: Resource, call: _Call, made: list[Resource]):
        opts = call.opts._copy() if call.opts is not None else None
        for field, ref in call.refs.items():
            if isinstance(ref, dict):
                value: Any = {k: made[i] for k, i in ref.items()}
            elif isinstance(ref, list):
                value = [made[i] for i in ref]
            else:
                value = made[ref]
            setattr(opts, field, value)
        props = _materialize(call.props, made)
        if isinstance(res, ProviderResource):
            package = call.type_.removeprefix("pulumi:providers:")
            ProviderResource.__init__(res, package, call.name, props, opts, False, call.package_ref)
        elif call.custom:
            pulumi.CustomResource.__init__(
                res, call.type_, call.name, props, opts, False, call.package_ref
            )
        else:
            pulumi.ComponentResource.__init__(
                res, call.type_, call.name, props, opts, call.remote, call.package_ref
            )


def _materialize(value: Any, made: list[Resource]) -> Any:
    if isinstance(value, _Output):
        data = asyncio.get_event_loop().create_future()
        data.set_result(
            _OutputData(
                resources={made[i] for i in value.resources},
                value=_materialize(value.value, made),
                is_known=value.is_known,
                is_secret=value.is_secret,
            )
        )
        return pulumi.Output._from_data(data)
    if isinstance(value, _Ref):
        return made[value.index]
    if isinstance(value, _Container):
        if value.keyed:
            return value.make([(k, _materialize(v, made)) for k, v in value.items])
        return value.make([_materialize(v, made) for v in value.items])
    return value


def registrations(graph: Any) -> dict[str, dict[str, Any]]:
    """Each registration as the engine received it, by URN; edges as sets (they arrive in any
    order)."""
    return {
        r.urn: {
            "type": r.type,
            "name": r.name,
            "custom": r.custom,
            "parent": r.parent,
            "provider": r.provider,
            "dependencies": sorted(r.dependencies),
            "property_dependencies": {k: sorted(v) for k, v in r.property_dependencies.items()},
            "inputs": r.wire_inputs,
            "options": r.options,
        }
        for r in graph.resources
    }


def differences(program: Any, replay: Any) -> list[str]:
    """What the replay registered or read differently from the program, one line per resource."""
    want, got = registrations(program), registrations(replay)
    found = []
    if program.reads != replay.reads:
        found.append(f"reads differ: {program.reads} against {replay.reads}")
    found += [f"{urn}: not replayed" for urn in want.keys() - got.keys()]
    found += [f"{urn}: replayed, not in the program" for urn in got.keys() - want.keys()]
    for urn in want.keys() & got.keys():
        fields = [f for f in want[urn] if want[urn][f] != got[urn][f]]
        if fields:
            found.append(f"{urn}: {', '.join(fields)} differ")
    return sorted(found)
