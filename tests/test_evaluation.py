"""What the program sets up for its own evaluation changes nothing the engine records."""

from __future__ import annotations

import gc
import re

import pulumi
import pytest
from conftest import FLEETS
from harness import run_program

from components import _evaluation


def _transform(type_: str, aliases: list) -> pulumi.ResourceTransformationResult | None:
    before = list(aliases)
    args = pulumi.ResourceTransformationArgs(
        resource=None,  # type: ignore[arg-type]
        type_=type_,
        name="x",
        props={"location": "westeurope"},
        opts=pulumi.ResourceOptions(aliases=aliases, protect=True),
    )
    result = _evaluation._drop_aliases_nothing_can_match(args)
    assert args.opts.aliases == before, "the caller's options are not modified"
    if result is not None:
        assert result.opts.protect is True and result.props == {"location": "westeurope"}
    return result


def test_only_versioned_azure_native_aliases_are_dropped_from_an_azure_resource():
    aliases = [
        pulumi.Alias(type_="azure-native:containerservice/v20170831:ManagedCluster"),
        pulumi.Alias(type_="azure-native:network/v20150501preview:PublicIPAddress"),
        pulumi.Alias(type_="kubernetes:apps/v1beta1:Deployment"),
        pulumi.Alias(name="old-name"),
        "urn:pulumi:dev::ocm-fleet::some:type::old",
    ]
    result = _transform("azure-native:containerservice:ManagedCluster", aliases)
    assert result is not None
    assert result.opts.aliases == aliases[2:], "only azure-native API-versioned aliases may go"


def test_the_aliases_pulumi_kubernetes_adds_are_dropped_and_no_others():
    role = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
    older = "kubernetes:rbac.authorization.k8s.io/v1beta1:ClusterRole"
    kept = [
        pulumi.Alias(type_=older, name="old"),
        pulumi.Alias(type_=older, parent=None),
        pulumi.Alias(type_=older, stack="x"),
        pulumi.Alias(type_=older, project="p"),
        pulumi.Alias(type_="kubernetes:rbac.authorization.k8s.io/v1beta1:Role"),
        pulumi.Alias(type_="kubernetes:rbac.authorization.k8s.io/v1beta2:ClusterRole"),
        pulumi.Alias(type_=role),
        pulumi.Alias(name="old-name"),
    ]
    aliases = [
        pulumi.Alias(type_="kubernetes:rbac.authorization.k8s.io/v1alpha1:ClusterRole"),
        pulumi.Alias(type_=older),
        *kept,
    ]
    result = _transform(role, aliases)
    assert result is not None
    assert result.opts.aliases == kept, (
        "only an alias pulumi-kubernetes adds to the kind, naming nothing but its type, may go"
    )


def test_a_type_alias_on_a_custom_resource_stays():
    """Moving a custom resource to a newer API version is what a type-only alias is for."""
    replica_set = "kubernetes:work.open-cluster-management.io/v1beta1:ManifestWorkReplicaSet"
    aliases = [
        pulumi.Alias(
            type_="kubernetes:work.open-cluster-management.io/v1alpha1:ManifestWorkReplicaSet"
        )
    ]
    assert _transform(replica_set, aliases) is None


def _kubernetes_class(type_: str) -> type:
    """The pulumi-kubernetes class of a built-in kind: `kubernetes:apps/v1:Deployment`."""
    import importlib

    _, group_version, kind = type_.split(":")
    group, version = group_version.split("/")
    module = importlib.import_module(f"pulumi_kubernetes.{group.split('.')[0]}.{version}")
    return getattr(module, kind)


def _is_built_in(type_: str) -> bool:
    """A kind pulumi-kubernetes has a class of its own for (custom resources have none)."""
    if not type_.startswith("kubernetes:") or type_.count(":") != 2 or "/" not in type_:
        return False
    try:
        _kubernetes_class(type_)
    except (ImportError, AttributeError):
        return False
    return True


def test_built_in_kinds_are_told_from_custom_resources():
    assert _is_built_in("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    assert _is_built_in("kubernetes:helm.sh/v3:Release")
    assert not _is_built_in("kubernetes:work.open-cluster-management.io/v1:ManifestWork")
    assert not _is_built_in("kubernetes:cluster.open-cluster-management.io/v1beta1:Placement")
    assert not _is_built_in("pulumi:providers:kubernetes")


REQUIRED_ARGS = {
    "StorageClass": {"provisioner": "disk.csi.azure.com"},
    "Deployment": {"spec": {}},
    "StatefulSet": {"spec": {}},
    "EndpointSlice": {"address_type": "IPv4", "endpoints": []},
    "ClusterRoleBinding": {
        "role_ref": {"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "x"}
    },
}


def test_each_entry_is_what_pulumi_kubernetes_adds_to_that_kind():
    added: dict[str, set[str]] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        added[args.type_] = {
            a.type_ for a in args.opts.aliases or [] if isinstance(a, pulumi.Alias)
        }

    def program() -> None:
        pulumi.runtime.register_stack_transformation(record)
        for type_ in _evaluation.KUBERNETES_SDK_ALIASES:
            kind = type_.rpartition(":")[2]
            _kubernetes_class(type_)(kind.lower(), **REQUIRED_ARGS.get(kind, {}))

    run_program({}, program=program)
    assert added == _evaluation.KUBERNETES_SDK_ALIASES


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", list(FLEETS))
def test_no_alias_that_names_only_a_type_reaches_the_engine(fleet, preview):
    """Every built-in kind the program declares is in the table; the program's own aliases stay."""
    graph = run_program(FLEETS[fleet](), preview=preview)
    for r in graph.resources:
        for alias in r.options["aliases"]:
            only_type = alias.keys() == {"type", "parentUrn"} and not alias["parentUrn"]
            assert not (only_type and _is_built_in(r.type)), (
                f"{r} carries {alias}: add it to KUBERNETES_SDK_ALIASES if pulumi-kubernetes "
                "adds it to this built-in kind"
            )
    if fleet == "dev":
        taken_over = [
            a["name"] for r in graph.resources for a in r.options["aliases"] if "name" in a
        ]
        assert "app-aws-deployer" in taken_over, "the access entry's own alias must stay"


def _without_dropped_aliases(type_: str, options: dict) -> dict:
    """The options, less the aliases the evaluation settings drop on purpose (tested above)."""
    sdk_added = _evaluation.KUBERNETES_SDK_ALIASES.get(type_, frozenset())
    aliases = [
        a
        for a in options.get("aliases", [])
        if not re.fullmatch(r"azure-native:[a-z]+/v[0-9a-z]+:\w+", a.get("type", ""))
        and not (
            a.keys() == {"type", "parentUrn"} and not a["parentUrn"] and a["type"] in sdk_added
        )
    ]
    return {**options, "aliases": aliases}


def _recorded(graph):
    """Each registration as the engine got it; edges as sets (they arrive in any order)."""
    return [
        (
            r.urn,
            r.parent,
            r.provider,
            sorted(r.dependencies),
            {k: sorted(v) for k, v in r.property_dependencies.items()},
            r.wire_inputs,
            _without_dropped_aliases(r.type, r.options),
        )
        for r in sorted(graph.resources, key=lambda r: r.urn)
    ]


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_the_engine_records_the_same_graph_with_and_without_the_evaluation_settings(
    fleet, monkeypatch
):
    thresholds = gc.get_threshold()
    try:
        tuned = run_program(FLEETS[fleet]())
        assert gc.get_threshold()[2] == _evaluation.FULL_COLLECTION_THRESHOLD
        monkeypatch.setattr(_evaluation, "prepare_evaluation", lambda: None)
        plain = run_program(FLEETS[fleet]())
    finally:
        gc.set_threshold(*thresholds)
    assert _recorded(tuned) == _recorded(plain), (
        "URNs, parents, providers, dependencies, inputs and options must not change"
    )


def test_manifests_read_with_libyaml_are_those_the_pure_python_loader_reads(monkeypatch):
    import yaml

    from components import _yaml
    from components.app import _manifests

    fast = _manifests.load_manifests()
    monkeypatch.setattr(_yaml, "LOADER", yaml.SafeLoader)
    assert _manifests.load_manifests() == fast


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", list(FLEETS))
def test_the_engine_records_the_same_graph_with_libyaml_and_pure_python_yaml(
    fleet, preview, monkeypatch
):
    import yaml

    from components import _yaml

    assert _yaml.DUMPER is not yaml.SafeDumper, "PyYAML here is built with libyaml"
    fast = run_program(FLEETS[fleet](), preview=preview)
    monkeypatch.setattr(_yaml, "DUMPER", yaml.SafeDumper)
    monkeypatch.setattr(_yaml, "LOADER", yaml.SafeLoader)
    pure = run_program(FLEETS[fleet](), preview=preview)
    assert _recorded(fast) == _recorded(pure), (
        "kubeconfigs and agent configs must read and write the same YAML either way"
    )
