"""The graph floor: what the SDK costs, under the mocks, to register just the program's resources.

A run of the program is recorded at the SDK's own entry point (`pulumi.Resource.__init__`):
each resource's class, type, name, inputs and options, in the order the program made them, and
the options as the program's stack transformations left them. The replay makes the same calls
again, in the same order, through the same SDK base classes: the same inputs, the same parents,
providers, `depends_on`, aliases and other options. An Output input is replayed as one
already-resolved Output with the same value, secrecy and dependencies (one per Output the
program made, however many inputs shared it), or as the plain value where that is all it was.

What the replay leaves out is everything a program does around those calls: reading config and
manifests, rendering payloads, invokes, the applies that compute inputs, the provider classes'
own constructors (their args classes, option merging and the aliases they add and the program's
transformation drops), the stack transformations themselves, and the outputs components and the
stack register. So a program that declares these registrations cannot cost the SDK less than
their replay does, give or take the replay's own bookkeeping (a copy of each resource's options
and the rebuilt Outputs: under 1 % of the replay, timed at 30 app clusters).

`differences` compares two recorded graphs registration by registration: URNs, parents,
providers, dependencies, inputs, the options the test harness records, and reads.
bench/program_eval.py replays a fleet and refuses to report a time unless the replay's
`fingerprints` are the program's. tests/test_graph_floor.py checks the same for every fleet,
in update and preview; that the replay does no more SDK work than the program
(`count_sdk_work`); and that what it cannot map is refused by name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pulumi
from pulumi import _types
from pulumi.output import _OutputData
from pulumi.resource import ProviderResource, Resource

STACK_TYPE = "pulumi:pulumi:Stack"


@dataclasses.dataclass(frozen=True)
class _Output:
    """An Output the program passed, as it resolved; rebuilt, resolved, once per replay."""

    key: int
    """Which of the program's Outputs this was: inputs that shared one share its rebuild."""
    resources: tuple[int, ...]
    value: Any
    is_known: bool
    is_secret: bool


@dataclasses.dataclass(frozen=True)
class _Ref:
    """A resource the program passed where a value goes, by its position in the recording."""

    index: int


@dataclasses.dataclass(frozen=True)
class _Container:
    """A dict, list or SDK input type that holds an Output or a resource: rebuilt at each replay.

    Containers that hold neither are kept as the program passed them and reused by every
    replay: the SDK reads its inputs without changing them (tests/test_graph_floor.py replays
    each fleet twice to show it)."""

    make: Callable[[list], Any]
    items: tuple[Any, ...]
    keyed: bool
    """Items are (key, value) pairs: a dict's or an input type's fields."""


@dataclasses.dataclass(frozen=True)
class _Call:
    """One call the program made to `Resource.__init__`, ready to make again."""

    cls: type
    type_: str
    name: str
    custom: bool
    props: Any
    opts: pulumi.ResourceOptions | None
    """The options after the program's stack transformations, with the fields that name
    resources left empty: `refs` fills them in at each replay."""
    refs: dict[str, Any]
    remote: bool


@dataclasses.dataclass
class Recording:
    """The SDK calls one run of the program made, ready to replay."""

    calls: list[_Call]


@contextmanager
def recording() -> Iterator[Recording]:
    """Record every resource made while the block runs; the recording is filled at its end."""
    made: list[tuple] = []
    sdk_init = Resource.__init__

    def record(
        self, t, name, custom, props=None, opts=None, remote=False, dependency=False,
        package_ref=None,
    ):  # fmt: skip
        sdk_init(self, t, name, custom, props, opts, remote, dependency, package_ref)
        # The stack, and the stand-ins the SDK makes for URNs it is given, are the SDK's own.
        if not dependency and t != STACK_TYPE:
            made.append((self, t, name, custom, props, opts, remote, package_ref))

    result = Recording(calls=[])
    Resource.__init__ = record
    try:
        yield result
    finally:
        Resource.__init__ = sdk_init
    # Every Output the program passed has resolved by now: the run awaited each one to send it.
    index = {id(entry[0]): i for i, entry in enumerate(made)}
    outputs: dict[int, int] = {}
    calls = []
    for i, (res, t, name, custom, props, opts, remote, package_ref) in enumerate(made):
        where = f"{t} {name}"
        if package_ref is not None:
            raise NotImplementedError(f"{where}: the replay cannot reuse a package reference")

        def position(other: Any, i: int = i, where: str = where) -> int:
            return _position(index, other, i, where)

        final = _transformed(res, t, name, props, opts)
        calls.append(
            _Call(
                cls=type(res),
                type_=t,
                name=name,
                custom=custom,
                props=_template(props, position, outputs),
                opts=_options_template(final, where),
                refs=_option_refs(final, position),
                remote=remote,
            )
        )
    result.calls = calls


def _transformed(res: Resource, t: str, name: str, props: Any, opts: Any) -> Any:
    """The options as the transformations the SDK ran on `res` left them: each in turn, on the
    arguments the SDK gives them (pulumi/resource.py, Resource.__init__). A change they made to
    the props would reach the engine and show in `differences`."""
    opts = opts if opts is not None else pulumi.ResourceOptions()
    if _types.is_input_type(type(props)):
        props = _types.input_type_to_untranslated_dict(props)
    for transformation in res._transformations:
        args = pulumi.ResourceTransformationArgs(
            resource=res, type_=t, name=name, props=props, opts=opts
        )
        result = transformation(args)
        if result is not None:
            props, opts = result.props, result.opts
    return opts


def _position(index: dict[int, int], res: Any, before: int, where: str) -> int:
    """Where the recording made `res`, which the call at `before` names."""
    if id(res) not in index:
        raise NotImplementedError(
            f"{where} names {res!r}, which the recording did not make (the stack itself, or a "
            "resource made outside the recorded run): the replay cannot name it"
        )
    if index[id(res)] >= before:
        raise NotImplementedError(
            f"{where} names {res!r}, which the program finished making only after it: the "
            "replay makes resources in the order the program finished them"
        )
    return index[id(res)]


def _template(value: Any, position: Callable[[Any], int], outputs: dict[int, int]) -> Any:
    """`value` as the replay makes it again: what holds no Output or resource is kept as it is,
    so a replay spends nothing on it that the SDK would not."""
    if isinstance(value, pulumi.Output):
        data = value._data.result()
        if data.is_known and not data.is_secret and not data.resources:
            # A plain value reaches the engine the same way; a program could have passed one.
            return _template(data.value, position, outputs)
        return _Output(
            key=outputs.setdefault(id(value), len(outputs)),
            resources=tuple(sorted(position(r) for r in data.resources)),
            value=_template(data.value, position, outputs),
            is_known=data.is_known,
            is_secret=data.is_secret,
        )
    if isinstance(value, Resource):
        return _Ref(position(value))
    if isinstance(value, dict):
        pairs = tuple((k, _template(v, position, outputs)) for k, v in value.items())
        return _container(value, value.values(), pairs, type(value), keyed=True)
    if isinstance(value, (list, tuple)):
        items = tuple(_template(v, position, outputs) for v in value)
        return _container(value, value, items, list if isinstance(value, list) else tuple)
    if _types.is_input_type(type(value)):
        fields = vars(value)
        pairs = tuple((k, _template(v, position, outputs)) for k, v in fields.items())

        def make(pairs: list, like: Any = value) -> Any:
            return _with_fields(like, pairs)

        return _container(value, fields.values(), pairs, make, keyed=True)
    return value


def _container(
    value: Any, held: Any, templates: tuple, make: Callable[[list], Any], keyed: bool = False
) -> Any:
    """`value` itself if nothing in it changed, else a copy with the plain values it now holds,
    made once; or, if it holds what each replay makes anew, a `_Container` rebuilt each time."""
    parts = [t[1] for t in templates] if keyed else list(templates)
    if all(part is original for part, original in zip(parts, held, strict=True)):
        return value
    if any(_rebuilt(part) for part in parts):
        return _Container(make=make, items=templates, keyed=keyed)
    return make(list(templates))


def _rebuilt(value: Any) -> bool:
    return isinstance(value, (_Output, _Ref, _Container))


def _with_fields(input_type: Any, pairs: list) -> Any:
    copy = object.__new__(type(input_type))
    vars(copy).update(pairs)
    return copy


REFERENCE_OPTIONS = ("parent", "provider", "deleted_with")
"""Options that name one resource; with `providers` and `depends_on`, the replay maps them to
the resources it made."""


def _options_template(opts: pulumi.ResourceOptions, where: str) -> pulumi.ResourceOptions:
    template = opts._copy()
    for field in (*REFERENCE_OPTIONS, "providers", "depends_on"):
        setattr(template, field, None)
    # They have shaped these options already; run again, they would cost the replay twice.
    template.transformations = None
    if template.transforms:
        raise NotImplementedError(f"{where}: the replay does not run the `transforms` option")
    # Any other option that still holds a resource or an Output would reach the replay as the
    # recorded run's object, which `differences` cannot always tell (URNs come from names).
    for field, value in vars(template).items():
        if _holds_objects(value):
            raise NotImplementedError(
                f"{where}: the replay does not map the resources or Outputs in option "
                f"`{field}`; map it in _option_refs"
            )
    return template


def _holds_objects(value: Any) -> bool:
    """Whether `value` holds a resource or an Output, however deep: an alias's parent too."""
    if isinstance(value, (pulumi.Output, Resource)):
        return True
    if isinstance(value, pulumi.Alias):
        return _holds_objects(value.parent)
    if isinstance(value, dict):
        return any(_holds_objects(v) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_holds_objects(v) for v in value)
    return False


def _option_refs(opts: pulumi.ResourceOptions, position: Callable[[Any], int]) -> dict[str, Any]:
    refs: dict[str, Any] = {
        f: position(getattr(opts, f)) for f in REFERENCE_OPTIONS if getattr(opts, f) is not None
    }
    if isinstance(opts.providers, dict):
        refs["providers"] = {k: position(p) for k, p in opts.providers.items()}
    elif opts.providers:
        refs["providers"] = [position(p) for p in opts.providers]
    depends_on = opts.depends_on
    if isinstance(depends_on, pulumi.Output):
        depends_on = depends_on._data.result().value
    if depends_on is not None:
        listed = depends_on if isinstance(depends_on, (list, tuple)) else [depends_on]
        refs["depends_on"] = [position(r) for r in listed]
    return refs


def replay_program(rec: Recording) -> Callable[[], None]:
    """A program that makes the recorded calls again, for `harness.run_program(program=...)`."""

    def program() -> None:
        from components._evaluation import skip_full_garbage_collections

        # The program's garbage collection setting; its stack transformations already shaped
        # the recorded options.
        skip_full_garbage_collections()
        made: list[Resource] = []
        outputs: dict[int, pulumi.Output] = {}
        for call in rec.calls:
            res = call.cls.__new__(call.cls)
            made.append(res)
            _ProviderClassFrame(res, call, made, outputs)

    return program


class _ProviderClassFrame:
    """Calls the SDK's base class from an `__init__`, as a provider SDK's class does.

    The SDK sends each resource's stack trace: the frames below the third `__init__` above it
    (runtime/resource.py, _get_stack_trace). From here that is the harness and the replay loop,
    as shallow as the ConfigMap floor's and shallower than the program's, whose resources are
    made inside components: so this cost, too, is no higher than the program's."""

    def __init__(
        self, res: Resource, call: _Call, made: list[Resource], outputs: dict[int, pulumi.Output]
    ):
        opts = call.opts._copy() if call.opts is not None else None
        for field, ref in call.refs.items():
            if isinstance(ref, dict):
                value: Any = {k: made[i] for k, i in ref.items()}
            elif isinstance(ref, list):
                value = [made[i] for i in ref]
            else:
                value = made[ref]
            setattr(opts, field, value)
        props = _materialize(call.props, made, outputs)
        if isinstance(res, ProviderResource):
            package = call.type_.removeprefix("pulumi:providers:")
            ProviderResource.__init__(res, package, call.name, props, opts)
        elif call.custom:
            pulumi.CustomResource.__init__(res, call.type_, call.name, props, opts)
        else:
            pulumi.ComponentResource.__init__(
                res, call.type_, call.name, props, opts, remote=call.remote
            )


def _materialize(value: Any, made: list[Resource], outputs: dict[int, pulumi.Output]) -> Any:
    if isinstance(value, _Output):
        if value.key not in outputs:
            data = asyncio.get_running_loop().create_future()
            data.set_result(
                _OutputData(
                    resources={made[i] for i in value.resources},
                    value=_materialize(value.value, made, outputs),
                    is_known=value.is_known,
                    is_secret=value.is_secret,
                )
            )
            outputs[value.key] = pulumi.Output._from_data(data)
        return outputs[value.key]
    if isinstance(value, _Ref):
        return made[value.index]
    if isinstance(value, _Container):
        if value.keyed:
            return value.make([(k, _materialize(v, made, outputs)) for k, v in value.items])
        return value.make([_materialize(v, made, outputs) for v in value.items])
    return value


def registrations(graph: Any) -> dict[str, dict[str, Any]]:
    """Each registration as the engine received it, by URN; edges sorted (they arrive in any
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
    found = [
        f"read of {read[0]} {read[1]}: not replayed as the program made it"
        for read in program.reads
        if read not in replay.reads
    ]
    found += [
        f"read of {read[0]} {read[1]}: replayed, not in the program"
        for read in replay.reads
        if read not in program.reads
    ]

    def fields_that_differ(urn: str) -> str | None:
        fields = [f for f in want[urn] if want[urn][f] != got[urn][f]]
        return f"{', '.join(fields)} differ" if fields else None

    return sorted(found + _compare(want, got, fields_that_differ))


READS = "reads"
"""The key `fingerprints` gives the reads under, next to the URNs."""


def fingerprints(graph: Any) -> dict[str, str]:
    """A digest of each registration, as `registrations` gives it, and of the reads: enough to
    check a replay against a run no longer kept in memory."""
    prints = {urn: _digest(reg) for urn, reg in registrations(graph).items()}
    prints[READS] = _digest(graph.reads)
    return prints


def fingerprint_differences(expected: dict[str, str], replay: Any) -> list[str]:
    """What the replay registered or read differently from the fingerprinted program run."""
    got = fingerprints(replay)
    return sorted(_compare(expected, got, lambda key: expected[key] != got[key] and "differs"))


def _compare(want: dict, got: dict, change: Callable[[str], Any]) -> list[str]:
    """A line for each key only one side has, and for each key `change` describes."""
    found = [f"{key}: not replayed" for key in want.keys() - got.keys()]
    found += [f"{key}: replayed, not in the program" for key in got.keys() - want.keys()]
    found += [f"{key}: {change(key)}" for key in want.keys() & got.keys() if change(key)]
    return found


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()


@contextmanager
def count_sdk_work() -> Iterator[dict[str, int]]:
    """Count the SDK's units of work while the block runs: each Output made, each asyncio task
    started. They do not move with the machine's load, as times do."""
    import asyncio.base_events

    counts = {"outputs": 0, "tasks": 0}
    # Every Output, made by its constructor or by apply, all and the like, registers itself in
    # _track; SDKs older than _track make every Output through the constructor.
    made_at = "_track" if hasattr(pulumi.Output, "_track") else "__init__"
    make = getattr(pulumi.Output, made_at)
    loop_class = asyncio.base_events.BaseEventLoop
    create_task = loop_class.create_task

    def counted_make(self, *args, **kwargs):
        counts["outputs"] += 1
        return make(self, *args, **kwargs)

    def counted_create_task(self, *args, **kwargs):
        counts["tasks"] += 1
        return create_task(self, *args, **kwargs)

    setattr(pulumi.Output, made_at, counted_make)
    loop_class.create_task = counted_create_task
    try:
        yield counts
    finally:
        setattr(pulumi.Output, made_at, make)
        loop_class.create_task = create_task


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="A module, not a command: bench/program_eval.py run it.",
    ).parse_args()
    print(
        "bench/graph_floor.py is a module; run bench/program_eval.py",
        file=sys.stderr,
    )
    sys.exit(2)
