"""The config model never crashes, whatever the stack file holds: generated valid stack configs
parse, and every mutation of one either parses or fails with the model's own error, each problem
naming its `ocm-fleet:` key path and calling an absent value "missing", never Python's None.

The examples are derandomized and Hypothesis's database is off, so every run (and CI) tries the
same inputs in bounded time; the explicit `@example`s are the crashes these properties found.
"""

from __future__ import annotations

import copy
import ipaddress
import pathlib
import re
import string
import sys
import tempfile
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from conftest import dev_config
from harness import ROOT, run_program
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from components.app._manifests import container_names, load_manifests
from components.config import (
    APP_KEYS,
    CLUSTER_KEYS,
    FIND_YOUR_PRINCIPAL,
    MAX_NAME_LENGTH,
    ROLLOUT_KEYS,
    TOP_LEVEL_KEYS,
    FleetConfig,
    FleetConfigError,
    parse_fleet_config,
)

CONTAINERS = frozenset(container_names(load_manifests()))
STACK = "dev"

# Fixed budgets: each property tries this many inputs, each within the deadline (ms). Together
# they keep this file under a minute: about 20 s on a shared 2-core machine
# (`pytest tests/test_config_properties.py`).
VALID_EXAMPLES = 150
MUTATED_EXAMPLES = 600
STRUCTURAL_EXAMPLES = 250
LONG_NUMBER_EXAMPLES = 150
DEADLINE_MS = 2000


def bounded(max_examples: int) -> Callable[[Any], Any]:
    """The same inputs on every run, and no more than `max_examples` of them."""
    return settings(
        derandomize=True,
        database=None,
        max_examples=max_examples,
        deadline=DEADLINE_MS,
        # A few inputs are deliberately large (long strings and lists); generating them is
        # what is slow, not the model.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- valid stack values, from the schema in Pulumi.yaml ------------------------------------

_LABEL_CHARS = string.ascii_lowercase + string.digits + "-"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# The model's own limit is per cloud (MAX_NAME_LENGTH); the shortest keeps every cloud valid.
_NAME_MAX = min(MAX_NAME_LENGTH.values())

names = st.text(_LABEL_CHARS, min_size=1, max_size=_NAME_MAX).filter(_DNS_LABEL.fullmatch)
# Unicode text for free-form values; "None" is kept out so that the word in a message can only
# have come from the model.
texts = st.text(min_size=1, max_size=20).filter(lambda s: "None" not in s)
non_blank = texts.filter(lambda s: s.strip() != "")

aws_regions = st.sampled_from(
    ["eu-west-1", "us-east-1", "ap-southeast-2", "us-gov-west-1", "eu-central-1", "sa-east-1"]
)
azure_regions = st.sampled_from(["westeurope", "eastus2", "northeurope", "japaneast", "uksouth"])
node_counts = st.integers(min_value=1, max_value=100)
kubernetes_versions = st.integers(min_value=10, max_value=99).map(lambda m: f"1.{m}")
node_sizes = st.one_of(st.sampled_from(["t3.large", "m6i.xlarge", "Standard_D4s_v5"]), non_blank)
eks_names = st.from_regex(r"\A[0-9A-Za-z][A-Za-z0-9_-]{0,40}\Z")


@st.composite
def cidrs(draw: st.DrawFn) -> str:
    version = draw(st.sampled_from([4, 6]))
    address = draw(st.ip_addresses(v=version))
    prefix = draw(st.integers(min_value=0, max_value=32 if version == 4 else 128))
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


arns = st.builds(
    "arn:aws:iam::{}:{}/{}".format,
    st.from_regex(r"\A[0-9]{12}\Z"),
    st.sampled_from(["role", "user"]),
    st.from_regex(
        r"\A[\w+=,.@-]{1,20}\Z", alphabet=string.ascii_letters + string.digits + "_+=,.@-"
    ),
)
image_tags = st.builds(
    "{}{}".format,
    st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z", alphabet=string.printable),
    st.one_of(st.just(""), st.from_regex(r"\A[0-9a-f]{64}\Z").map("@sha256:{}".format)),
)
percentages = st.integers(min_value=0, max_value=100).map("{}%".format)
durations = st.builds("{}{}".format, st.integers(0, 10_000), st.sampled_from("hms"))
deadlines = st.builds("{}{}".format, st.integers(1, 10_000), st.sampled_from("hms"))


@st.composite
def cluster_entries(draw: st.DrawFn, name: str, cloud: str, *, is_hub: bool) -> dict[str, Any]:
    """One entry of `clusters` (or the hub) on `cloud`, with any of its optional keys."""
    required: dict[str, st.SearchStrategy[Any]] = {"name": st.just(name), "cloud": st.just(cloud)}
    optional: dict[str, st.SearchStrategy[Any]]
    if cloud in ("aws", "azure"):
        required["region"] = aws_regions if cloud == "aws" else azure_regions
        optional = dict(
            nodeCount=node_counts, nodeSize=node_sizes, kubernetesVersion=kubernetes_versions
        )
        if cloud == "aws":
            optional.update(
                natGateways=st.sampled_from(["single", "perZone"]), physicalName=eks_names
            )
    elif cloud == "existing":
        required["egressIps"] = st.lists(cidrs(), min_size=1, max_size=3)
        url = st.builds("https://{}:6443".format, names)
        if is_hub:
            required["apiServerUrl"] = url
        optional = dict(region=texts, context=texts, kubeconfig=texts)
        if not is_hub:
            optional["apiServerUrl"] = url
    else:
        optional = dict(nodeCount=node_counts, region=texts)
    return draw(st.fixed_dictionaries(required, optional=optional))


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    """Stack values (keys without the namespace) that the schema admits."""
    count = draw(st.integers(min_value=1, max_value=4))
    pool = draw(st.lists(names, min_size=count + 1, max_size=count + 1, unique=True))
    hub_name, app_names = pool[0], sorted(pool[1:])
    on_kind = draw(st.booleans())
    hub_cloud = "kind" if on_kind else draw(st.sampled_from(["azure", "existing"]))
    hub = draw(cluster_entries(hub_name, hub_cloud, is_hub=True))

    # Standbys must sort after every serving cluster, and at least one cluster serves; a
    # retiring cluster is out of both, wherever it sorts.
    serving_count = draw(st.integers(min_value=1, max_value=count))
    entries: list[dict[str, Any]] = []
    serving: list[str] = []
    for i, name in enumerate(app_names):
        cloud = "kind" if on_kind else draw(st.sampled_from(["aws", "azure", "existing"]))
        entry = draw(cluster_entries(name, cloud, is_hub=False))
        if i >= serving_count:
            entry["standby"] = True
        elif draw(st.booleans()):
            entry["standby"] = False
        if i > 0 and draw(st.integers(0, 3)) == 0:
            entry["retire"] = True
        elif i == 0 and draw(st.booleans()):
            entry["retire"] = False
        if not entry.get("standby") and not entry.get("retire"):
            serving.append(name)
        entries.append(entry)
    raw: dict[str, Any] = {
        "hub": hub,
        "clusters": draw(st.permutations(entries)),
        "apiAllowedCidrs": draw(st.lists(cidrs(), min_size=1, max_size=3)),
    }
    if any(e["cloud"] == "aws" for e in entries) or draw(st.booleans()):
        raw["eksAdminPrincipals"] = draw(st.lists(arns, min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        raw["ocmVersion"] = draw(st.from_regex(r"\A[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\Z"))
    if draw(st.booleans()):
        raw["protectData"] = draw(st.booleans())
    if draw(st.booleans()):
        raw["databasePasswordRotation"] = draw(st.integers(min_value=0, max_value=10**20))
    if draw(st.booleans()):
        raw["app"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "imageTags": st.dictionaries(st.sampled_from(sorted(CONTAINERS)), image_tags)
                },
            )
        )
    if draw(st.booleans()):
        canary = st.lists(st.sampled_from(serving), min_size=1, unique=True)
        raw["rollout"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "canary": canary,
                    "maxConcurrency": st.one_of(
                        st.integers(1, 10**6), percentages.filter(lambda p: p != "0%")
                    ),
                    "maxFailures": st.one_of(st.integers(0, 10**6), percentages),
                    "minSuccessTime": st.one_of(st.just("0"), durations),
                    "progressDeadline": deadlines,
                },
            )
        )
    return raw


# --- mutations -------------------------------------------------------------------------------

Path = tuple[str | int, ...]

# Scalars a YAML or JSON stack file can hold, including the awkward ones: YAML turns unquoted
# 2024-01-01 into a date and .nan into a float.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.just(""),
    st.dates(min_value=date(1970, 1, 1), max_value=date(2100, 1, 1)),
)
# Mapping keys a YAML file can hold: any scalar (JSON, and so Pulumi, only strings).
keys = st.one_of(texts, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
# Integers past the 4300 digits str() and repr() print; no YAML or JSON loader makes one, but a
# caller of the model may.
too_long_ints = st.builds(lambda n: 10**n, st.integers(4_400, 6_000))
yaml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
containers = st.one_of(
    st.lists(yaml_values, max_size=4), st.dictionaries(keys, yaml_values, max_size=4)
)
non_null_scalars = scalars.filter(lambda v: v is not None)


def _nested(depth: int) -> Any:
    value: Any = "app-aws"
    for _ in range(depth):
        value = [value]
    return value


# Values too large for anyone to mean them: long text, long numbers in the shape of a duration
# or a percentage, integers of thousands of digits, long lists, deep nesting.
huge_values = st.one_of(
    st.builds(
        lambda c, n: c * n,
        st.sampled_from(["a", "é", "9", "-", "\u202e"]),
        st.integers(1_000, 50_000),
    ),
    st.builds(
        lambda n, unit: "9" * n + unit,
        st.integers(1_000, 10_000),
        st.sampled_from(["m", "s", "%", ""]),
    ),
    too_long_ints,
    st.builds(lambda n: -(10**n), st.integers(20, 5_000)),
    st.builds(lambda n: ["app-aws"] * n, st.integers(100, 3_000)),
    st.builds(_nested, st.integers(2, 60)),
)
empty_values = st.sampled_from(["", [], {}, " ", "\n", 0])


def walk(node: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """Every (path, value) below `node`, parents before children."""
    found: list[tuple[Path, Any]] = [(path, node)] if path else []
    if isinstance(node, dict):
        for k, v in node.items():
            found += walk(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += walk(v, (*path, i))
    return found


def get(node: Any, path: Path) -> Any:
    for step in path:
        node = node[step]
    return node


def put(raw: dict[str, Any], path: Path, value: Any) -> None:
    # a copy: strategies such as sampled_from hand out the same list or mapping every time
    get(raw, path[:-1])[path[-1]] = copy.deepcopy(value)


def key_path(path: Path) -> str:
    """The key path as the model names it: `ocm-fleet:clusters[0].name`."""
    text = f"ocm-fleet:{path[0]}"
    for step in path[1:]:
        text += f"[{step}]" if isinstance(step, int) else f".{step}"
    return text


def _near_miss(known: str, how: int) -> str:
    if how == 0:
        return known.lower()
    if how == 1:
        return known[:-1]
    return known + "s"


CONFLICTS = (
    "canary-not-serving",
    "standby-sorts-first",
    "all-retire",
    "all-standby",
    "kind-mixed",
    "named-like-hub",
    "duplicate-name",
    "aws-without-principals",
    "hub-standby-or-retire",
    "hub-on-aws",
    "canary-twice",
    "keys-of-another-cloud",
)


@st.composite
def conflicts(draw: st.DrawFn, raw: dict[str, Any]) -> None:
    """Values each valid on its own that the keys around them refuse."""
    clusters = raw["clusters"]
    index = draw(st.integers(0, len(clusters) - 1))
    entry = clusters[index]
    others = clusters[:index] + clusters[index + 1 :]
    kind = draw(st.sampled_from(CONFLICTS))
    if kind == "canary-not-serving":
        # the canary names a standby, a retiring cluster, the hub or nobody
        target = draw(
            st.sampled_from(
                [c["name"] for c in clusters if c.get("standby") or c.get("retire")]
                + [raw["hub"]["name"], "nobody"]
            )
        )
        raw.setdefault("rollout", {})["canary"] = [target]
    elif kind == "standby-sorts-first":
        entry["standby"] = True
        entry["name"] = "0" + entry["name"][: _NAME_MAX - 1]
    elif kind == "all-retire":
        for c in clusters:
            c["retire"] = True
    elif kind == "all-standby":
        for c in clusters:
            c["standby"] = True
    elif kind == "kind-mixed":
        # kind mixed with a cloud (or a cloud mixed into a kind fleet)
        if entry["cloud"] == "kind":
            entry.clear()
            entry.update(name="mixed", cloud="azure", region="westeurope")
        else:
            entry.clear()
            entry.update(name="mixed", cloud="kind")
    elif kind == "named-like-hub":
        entry["name"] = raw["hub"]["name"]
    elif kind == "duplicate-name" and others:
        entry["name"] = others[0]["name"]
    elif kind == "aws-without-principals":
        # an aws cluster, perhaps misnamed, and no eksAdminPrincipals: the message about the
        # missing principals lists the aws clusters
        entry.update(cloud="aws", region="eu-west-1")
        entry["name"] = draw(st.one_of(st.just(entry["name"]), yaml_values))
        for k in ("egressIps", "context", "kubeconfig", "apiServerUrl"):
            entry.pop(k, None)
        raw.pop("eksAdminPrincipals", None)
    elif kind == "hub-standby-or-retire":
        raw["hub"][draw(st.sampled_from(["standby", "retire"]))] = draw(st.booleans())
    elif kind == "hub-on-aws":
        raw["hub"].update(cloud="aws", region="eu-west-1")
    elif kind == "canary-twice":
        raw.setdefault("rollout", {})["canary"] = [entry["name"], entry["name"]]
    elif kind == "keys-of-another-cloud":
        # keys of one cloud on a cluster of another
        extra = [
            {"egressIps": ["192.0.2.1/32"]},
            {"natGateways": "perZone"},
            {"nodeSize": "t3.large"},
            {"physicalName": "x"},
        ]
        entry.update(copy.deepcopy(draw(st.sampled_from(extra))))


@st.composite
def mutate(draw: st.DrawFn, raw: dict[str, Any]) -> None:
    """One mutation of `raw`, in place."""
    paths = walk(raw)
    mappings = [()] + [p for p, v in paths if isinstance(v, dict)]
    lists = [p for p, v in paths if isinstance(v, list) and v]
    kind = draw(
        st.sampled_from(
            [
                "replace",
                "wrap",
                "empty",
                "huge",
                "delete",
                "unknown",
                "duplicate",
                "swap",
            ]
        )
    )
    # Half the time a key other keys refer to: names (canary, uniqueness, the aws list), clouds
    # (kind mixing), standby and retire (ordering), and the canary.
    referred = [(p, v) for p, v in paths if {"name", "cloud", "standby", "retire", "canary"} & {*p}]
    pool = referred if referred and draw(st.booleans()) else paths
    path = draw(st.sampled_from([p for p, _ in pool]))
    value = get(raw, path)
    if kind == "replace":
        put(raw, path, draw(yaml_values))
    elif kind == "wrap":
        # a list (or mapping) around the value: `canary: [[app-aws]]`, an easy YAML slip
        wrapped = draw(st.sampled_from(["list", "map"]))
        put(raw, path, [value] if wrapped == "list" else {str(path[-1]): value})
    elif kind == "empty":
        put(raw, path, draw(empty_values))
    elif kind == "huge":
        # ...or the value in its own shape, with every number in it thousands of digits long
        digits = draw(st.integers(4_400, 6_000))
        if isinstance(value, str) and re.search(r"[0-9]", value) and draw(st.booleans()):
            put(raw, path, re.sub(r"[0-9]+", "9" * digits, value))
        else:
            put(raw, path, draw(huge_values))
    elif kind == "delete":
        parent_path = draw(st.sampled_from(mappings))
        parent = get(raw, parent_path)
        if parent:
            del parent[draw(st.sampled_from(sorted(parent, key=str)))]
    elif kind == "unknown":
        parent_path = draw(st.sampled_from(mappings))
        known = {(): TOP_LEVEL_KEYS, ("app",): APP_KEYS, ("rollout",): ROLLOUT_KEYS}.get(
            parent_path, CLUSTER_KEYS
        )
        near = _near_miss(draw(st.sampled_from(sorted(known))), draw(st.integers(0, 2)))
        # the top level is Pulumi's config keys, always strings; below, any YAML key
        new_key = draw(
            st.one_of(st.just(near), texts)
            if parent_path == ()
            else st.one_of(st.just(near), keys, too_long_ints)
        )
        get(raw, parent_path)[new_key] = copy.deepcopy(draw(yaml_values))
    elif kind == "duplicate" and lists:
        target = get(raw, draw(st.sampled_from(lists)))
        twin = copy.deepcopy(draw(st.sampled_from(target)))
        target.insert(draw(st.integers(0, len(target))), twin)
    elif kind == "swap":
        # another key's value, of another shape: a list of CIDRs as a name, a name as a list
        other = draw(st.sampled_from([v for _, v in paths]))
        put(raw, path, copy.deepcopy(other))


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    raw = draw(valid_configs())
    # Conflicts first, while the config still has the shape they rearrange.
    conflicting = draw(st.booleans())
    if conflicting:
        draw(conflicts(raw))
    for _ in range(draw(st.integers(min_value=0 if conflicting else 1, max_value=3))):
        draw(mutate(raw))
    return raw


@st.composite
def structural_mutations(draw: st.DrawFn) -> tuple[dict[str, Any], Path]:
    """A valid config with a list or mapping where a scalar belongs, or a scalar where a list or
    mapping belongs, at one path; no key of the schema admits either."""
    raw = draw(valid_configs())
    path, value = draw(st.sampled_from(walk(raw)))
    if isinstance(value, (dict, list)):
        put(raw, path, draw(non_null_scalars))
    else:
        put(raw, path, draw(st.one_of(st.just([value]), containers)))
    return raw, path


@st.composite
def long_numbers(draw: st.DrawFn) -> dict[str, Any]:
    """A valid config in which one value that holds a number (a count, a duration, a version, a
    CIDR, a region) holds it thousands of digits long, in the value's own shape."""
    raw = draw(valid_configs())
    numeric = [
        (p, v)
        for p, v in walk(raw)
        if (isinstance(v, str) and re.search(r"[0-9]", v)) or type(v) is int
    ]
    path, value = draw(st.sampled_from(numeric))
    digit, length = draw(st.sampled_from("901")), draw(st.integers(4_400, 6_000))
    if isinstance(value, str):
        put(raw, path, re.sub(r"[0-9]+", digit * length, value, count=draw(st.integers(0, 1))))
    else:
        # 99...9, 11...1 or -10...0; int() would refuse the text of any of them
        put(raw, path, {"9": 10**length - 1, "1": (10**length - 1) // 9, "0": -(10**length)}[digit])
    return raw


# --- the properties --------------------------------------------------------------------------

_PYTHON_NONE = re.compile(r"(?<!['\w])None(?![\w'])")


def outcome(raw: dict[str, Any]) -> FleetConfig | FleetConfigError:
    """What the model makes of `raw`: a config or its own error; any other exception escapes."""
    try:
        return parse_fleet_config(copy.deepcopy(raw), stack=STACK, containers=CONTAINERS)
    except FleetConfigError as err:
        return err


def assert_readable(err: FleetConfigError) -> None:
    assert err.problems, "a FleetConfigError must carry at least one problem"
    for problem in err.problems:
        assert isinstance(problem, str), f"problem {problem!r} is not text"
        assert problem.startswith("ocm-fleet:"), f"problem does not name a key path: {problem}"
        assert ": " in problem[len("ocm-fleet:") :], f"problem has no key path: {problem}"
        assert not _PYTHON_NONE.search(problem), (
            f"problem shows Python's None where the user wrote nothing or null: {problem}"
        )
        assert f"  - {problem}" in str(err), f"problem missing from the message: {problem}"


BASE: dict[str, Any] = {
    "hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
    "clusters": [
        {"name": "app-aws", "cloud": "aws", "region": "eu-west-1"},
        {"name": "app-azure", "cloud": "azure", "region": "westeurope"},
    ],
    "apiAllowedCidrs": ["203.0.113.0/24"],
    "eksAdminPrincipals": ["arn:aws:iam::123456789012:role/platform-admin"],
}


def base_with(*changes: tuple[Path, Any]) -> dict[str, Any]:
    """BASE with each (path, value) set; a value of DELETE removes the key."""
    raw = copy.deepcopy(BASE)
    for path, value in changes:
        if value is DELETE:
            del get(raw, path[:-1])[path[-1]]
        else:
            put(raw, path, value)
    return raw


DELETE = object()
LONG = 10**5000


@bounded(VALID_EXAMPLES)
@given(raw=valid_configs())
def test_every_config_the_schema_admits_parses(raw):
    fleet = outcome(raw)
    if isinstance(fleet, FleetConfigError):
        pytest.fail(f"a valid config was refused:\n{fleet}\nconfig: {raw!r}")
    assert fleet.hub.name == raw["hub"]["name"], "the hub must keep its name"
    assert [c.name for c in fleet.clusters] == [c["name"] for c in raw["clusters"]], (
        "app clusters must keep their names and order"
    )
    assert [c.cloud for c in fleet.clusters] == [c["cloud"] for c in raw["clusters"]], (
        "app clusters must keep their clouds"
    )
    canary = raw.get("rollout", {}).get("canary")
    if canary:
        assert fleet.rollout.canary == tuple(canary), "the canary must be the clusters listed"


@bounded(MUTATED_EXAMPLES)
@given(raw=mutated_configs())
@example(raw=base_with((("rollout",), {"canary": [["app-aws"]]})))
@example(raw=base_with((("rollout",), {"canary": [{"app-aws": None}]})))
@example(raw=base_with((("clusters", 0, "name"), 5), (("eksAdminPrincipals",), DELETE)))
@example(raw=base_with((("clusters", 0, "nodeCount"), LONG)))
@example(raw=base_with((("clusters", 0, LONG), 1)))
@example(raw=base_with((("rollout",), {"progressDeadline": "9" * 5000 + "m"})))
def test_any_mutated_config_parses_or_gets_the_models_own_error(raw):
    result = outcome(raw)
    if isinstance(result, FleetConfigError):
        assert_readable(result)
    else:
        assert isinstance(result, FleetConfig), f"parse_fleet_config returned {result!r}"


@bounded(STRUCTURAL_EXAMPLES)
@given(case=structural_mutations())
def test_a_list_or_mapping_where_a_scalar_belongs_is_named_by_its_key_path(case):
    raw, path = case
    result = outcome(raw)
    where = key_path(path)
    assert isinstance(result, FleetConfigError), f"{where}: {get(raw, path)!r} was accepted"
    assert_readable(result)
    assert any(p.startswith((f"{where}:", f"{where}.", f"{where}[")) for p in result.problems), (
        f"no problem names {where}: {result.problems}"
    )


@bounded(LONG_NUMBER_EXAMPLES)
@given(raw=long_numbers())
def test_numbers_thousands_of_digits_long_get_the_models_own_error(raw):
    result = outcome(raw)
    if isinstance(result, FleetConfigError):
        assert_readable(result)
    else:
        assert isinstance(result, FleetConfig), f"parse_fleet_config returned {result!r}"


# --- what each input these properties found now gets --------------------------------------

_PRINCIPALS_MISSING = (
    "ocm-fleet:eksAdminPrincipals: missing; the fleet has aws clusters (ocm-fleet:clusters[0]), "
    "and every EKS cluster grants cluster admin to exactly the IAM role or user ARNs listed here, "
    f"never to whoever happens to run Pulumi; {FIND_YOUR_PRINCIPAL}"
)
_NOT_A_LABEL = (
    "is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a "
    "letter or digit)"
)
_CLUSTER_KEYS = ", ".join(sorted(CLUSTER_KEYS))


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        pytest.param(
            [(("rollout",), {"canary": [["app-aws"]]})],
            [
                "ocm-fleet:rollout.canary[0]: ['app-aws'] is not an app cluster of "
                "ocm-fleet:clusters (app-aws, app-azure)"
            ],
            id="canary-entry-a-list",
        ),
        pytest.param(
            [(("rollout",), {"canary": [{"app-aws": None}]})],
            [
                "ocm-fleet:rollout.canary[0]: {'app-aws': null} is not an app cluster of "
                "ocm-fleet:clusters (app-aws, app-azure)"
            ],
            id="canary-entry-a-mapping",
        ),
        pytest.param(
            [(("clusters", 0, "name"), 5), (("eksAdminPrincipals",), DELETE)],
            [f"ocm-fleet:clusters[0].name: 5 {_NOT_A_LABEL}", _PRINCIPALS_MISSING],
            id="aws-cluster-named-by-a-number-without-principals",
        ),
        pytest.param(
            [(("clusters", 0, "nodeCount"), LONG)],
            [
                "ocm-fleet:clusters[0].nodeCount: an integer of about 5000 digits is above the "
                "supported 100"
            ],
            id="integer-too-long-to-print",
        ),
        pytest.param(
            [(("apiAllowedCidrs",), LONG)],
            [
                "ocm-fleet:apiAllowedCidrs: an integer of about 5000 digits must be a non-empty "
                "list of CIDRs that may reach the Kubernetes API servers (your workstation's and "
                "CI's public addresses)"
            ],
            id="integer-too-long-to-print-where-a-list-belongs",
        ),
        pytest.param(
            [(("clusters", 0, LONG), 1)],
            [
                "ocm-fleet:clusters[0].an integer of about 5000 digits: unknown key (known keys: "
                f"{_CLUSTER_KEYS})"
            ],
            id="unknown-key-too-long-to-print",
        ),
        pytest.param(
            [(("rollout",), {LONG: 1})],
            [
                "ocm-fleet:rollout.an integer of about 5000 digits: unknown key (known keys: "
                "canary, maxConcurrency, maxFailures, minSuccessTime, progressDeadline)"
            ],
            id="unknown-rollout-key-too-long-to-print",
        ),
        pytest.param(
            [(("app",), {"imageTags": {LONG: "1.1"}})],
            [
                "ocm-fleet:app.imageTags.an integer of about 5000 digits: no container of that "
                "name in manifests/ (containers: router, shopapi, shopui, website)"
            ],
            id="image-tag-key-too-long-to-print",
        ),
        pytest.param(
            [(("rollout",), {"progressDeadline": "0" * 5000 + "s"})],
            [
                f"ocm-fleet:rollout.progressDeadline: '{'0' * 5000}s' would time every cluster "
                "out at once"
            ],
            id="zero-deadline-of-5000-digits",
        ),
        pytest.param(
            [(("rollout",), {"progressDeadline": "9" * 5000 + "m"})],
            [
                f"ocm-fleet:rollout.progressDeadline: '{'9' * 5000}m' is longer than OCM can "
                "hold (Go's time.Duration: at most 2562047h, 292 years)"
            ],
            id="deadline-of-5000-digits",
        ),
        pytest.param(
            [(("rollout",), {"minSuccessTime": "2562048h", "progressDeadline": "153722868m"})],
            [
                "ocm-fleet:rollout.minSuccessTime: '2562048h' is longer than OCM can hold "
                "(Go's time.Duration: at most 2562047h, 292 years)",
                "ocm-fleet:rollout.progressDeadline: '153722868m' is longer than OCM can hold "
                "(Go's time.Duration: at most 2562047h, 292 years)",
            ],
            id="durations-one-past-go",
        ),
    ],
)
def test_each_crash_found_is_now_a_config_error(changes, problems):
    with pytest.raises(FleetConfigError) as err:
        parse_fleet_config(base_with(*changes), containers=CONTAINERS)
    assert err.value.problems == problems


def test_the_longest_durations_go_holds_are_accepted():
    rollout = {"minSuccessTime": "9223372036s", "progressDeadline": "2562047h"}
    fleet = parse_fleet_config(base_with((("rollout",), rollout)))
    assert (fleet.rollout.min_success_time, fleet.rollout.progress_deadline) == (
        "9223372036s",
        "2562047h",
    )


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        (
            ("hub", "name"),
            f"ocm-fleet:hub.name: missing; it must be {_NOT_A_LABEL[len('is not ') :]}",
        ),
        (
            ("clusters", 0, "cloud"),
            "ocm-fleet:clusters[0].cloud: missing; it must be one of aws, azure, existing, kind",
        ),
        (
            ("clusters", 0, "nodeCount"),
            "ocm-fleet:clusters[0].nodeCount: missing; it must be an integer of at least 1",
        ),
        (
            ("clusters", 0, "nodeSize"),
            "ocm-fleet:clusters[0].nodeSize: missing; it must be a non-empty string",
        ),
        (
            ("clusters", 0, "standby"),
            "ocm-fleet:clusters[0].standby: missing; it must be true or false",
        ),
        (
            ("clusters", 0, "retire"),
            "ocm-fleet:clusters[0].retire: missing; it must be true or false",
        ),
        (
            ("clusters", 0, "natGateways"),
            "ocm-fleet:clusters[0].natGateways: missing; it must be one of single, perZone "
            "(single: one Elastic IP; perZone: one per zone, survives the loss of a zone)",
        ),
        (
            ("clusters", 1),
            "ocm-fleet:clusters[1]: missing; it must be a mapping with at least 'name', 'cloud' "
            "and 'region'",
        ),
        (
            ("clusters",),
            "ocm-fleet:clusters: missing; it must be a list of application clusters (each with "
            "name, cloud and region)",
        ),
        (
            ("apiAllowedCidrs", 0),
            "ocm-fleet:apiAllowedCidrs[0]: missing; it must be a CIDR string such as "
            "'203.0.113.0/24'",
        ),
        (
            ("eksAdminPrincipals", 0),
            "ocm-fleet:eksAdminPrincipals[0]: missing; it must be an IAM role or user ARN such as "
            "'arn:aws:iam::123456789012:role/platform-admin'",
        ),
        (("protectData",), "ocm-fleet:protectData: missing; it must be true or false"),
        (
            ("databasePasswordRotation",),
            "ocm-fleet:databasePasswordRotation: missing; it must be an integer of at least 0 "
            "(raise it by one to rotate the app's database password)",
        ),
        (
            ("ocmVersion",),
            "ocm-fleet:ocmVersion: missing; it must be an OCM release such as '1.3.1' (no "
            "leading 'v')",
        ),
        (
            ("rollout",),
            None,
        ),
        (
            ("app", "imageTags"),
            "ocm-fleet:app.imageTags: missing; it must map container names to image tags",
        ),
        (
            ("app", "imageTags", "shopapi"),
            "ocm-fleet:app.imageTags.shopapi: missing; it must be an image tag such as '1.1' or "
            "'1.1@sha256:<64 hex digits>' (quote it in YAML so 1.10 stays 1.10)",
        ),
        (
            ("rollout", "canary", 0),
            "ocm-fleet:rollout.canary[0]: missing; it must be an app cluster of "
            "ocm-fleet:clusters (app-aws, app-azure)",
        ),
        (
            ("rollout", "maxConcurrency"),
            "ocm-fleet:rollout.maxConcurrency: missing; it must be an integer of at least 1 or a "
            "percentage such as '25%'",
        ),
        (
            ("rollout", "minSuccessTime"),
            "ocm-fleet:rollout.minSuccessTime: missing; it must be a duration such as '2m', '90s' "
            "or '0'",
        ),
    ],
    ids=lambda v: key_path(v) if isinstance(v, tuple) else "missing",
)
def test_a_null_value_is_called_missing_not_none(path, problem):
    """What YAML writes as `~`, `null` or nothing at all reaches the model as None."""
    around = {"app": {"imageTags": {"shopapi": "1.1"}}, "rollout": {"canary": ["app-aws"]}}
    raw = base_with(*[((k,), v) for k, v in around.items() if k == path[0]])
    put(raw, path, None)
    if problem is None:
        # an optional structured key left empty is the same as leaving it out
        assert isinstance(parse_fleet_config(raw, containers=CONTAINERS), FleetConfig)
        return
    with pytest.raises(FleetConfigError) as err:
        parse_fleet_config(raw, containers=CONTAINERS)
    assert err.value.problems == [problem]


def test_the_program_reports_a_nested_canary_as_a_config_error_not_a_traceback():
    config = dev_config()
    config["ocm-fleet:rollout"] = {"canary": [["app-aws"]]}
    with pytest.raises(FleetConfigError) as err:
        run_program(config)
    assert err.value.problems == [
        "ocm-fleet:rollout.canary[0]: ['app-aws'] is not an app cluster of ocm-fleet:clusters "
        "(app-aws, app-azure)"
    ]


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("hub", None), 1, f"ocm-fleet:hub.null: unknown key (known keys: {_CLUSTER_KEYS})"),
        (
            ("clusters", 0, "nodeCount"),
            [None, {"a": None}],
            "ocm-fleet:clusters[0].nodeCount: [null, {'a': null}] must be an integer of at least 1",
        ),
    ],
    ids=["null-key", "null-inside-a-value"],
)
def test_a_null_key_or_a_null_inside_a_value_reads_null_not_none(path, value, problem):
    with pytest.raises(FleetConfigError) as err:
        parse_fleet_config(base_with((path, value)))
    assert err.value.problems == [problem]


# --- the offline check (scripts/check.py) on the same inputs, as stack files ---------------------

CHECK_EXAMPLES = 200


@bounded(CHECK_EXAMPLES)
@given(raw=mutated_configs())
@example(raw=base_with((("rollout",), {"canary": [["app-aws"]]})))
def test_the_offline_check_reads_any_mutated_stack_file_without_a_traceback(raw):
    """Written as a stack file, any of these inputs gets the check's own answer: problems that
    name a key, or a pass, and nothing the check did not mean to raise."""
    import yaml

    sys.path.insert(0, str(ROOT / "scripts"))
    import check

    document = {"config": {f"ocm-fleet:{key}": value for key, value in raw.items()}}
    with tempfile.TemporaryDirectory() as folder:
        stack_file = pathlib.Path(folder) / "Pulumi.prop.yaml"
        try:
            stack_file.write_text(yaml.safe_dump(document, allow_unicode=True))
        except (yaml.YAMLError, ValueError):
            return  # not a document YAML can write: no stack file could hold it either
        report = check.Report()
        try:
            check.check_stack("prop", stack_file, report)
        except check.CheckError as err:
            assert str(err).startswith(str(stack_file)), err
            return
    for problem in report.problems:
        assert problem.startswith("Pulumi.prop.yaml"), problem
        assert not _PYTHON_NONE.search(problem), f"Python's word for missing: {problem}"
