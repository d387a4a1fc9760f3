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
    args = pulumi.ResourceTransformationArgs(
        resource=None,  # type: ignore[arg-type]
        type_=type_,
        name="x",
        props={"location": "westeurope"},
        opts=pulumi.ResourceOptions(aliases=aliases, protect=True),
    )
    result = _evaluation._drop_aliases_nothing_can_match(args)
    assert len(args.opts.aliases) == len(aliases), "the caller's options are not modified"
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


def test_kubernetes_aliases_for_other_api_versions_of_the_same_kind_are_dropped():
    role = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
    moves_more = [
        pulumi.Alias(type_="kubernetes:rbac.authorization.k8s.io/v1beta1:ClusterRole", name="old"),
        pulumi.Alias(type_="kubernetes:rbac.authorization.k8s.io/v1beta1:ClusterRole", parent=None),
        pulumi.Alias(type_="kubernetes:rbac.authorization.k8s.io/v1beta1:ClusterRole", stack="x"),
        pulumi.Alias(type_="kubernetes:rbac.authorization.k8s.io/v1beta1:ClusterRole", project="p"),
    ]
    other_kind = pulumi.Alias(type_="kubernetes:rbac.authorization.k8s.io/v1beta1:Role")
    same_type = pulumi.Alias(type_=role)
    aliases = [
        pulumi.Alias(type_="kubernetes:rbac.authorization.k8s.io/v1alpha1:ClusterRole"),
        pulumi.Alias(type_="kubernetes:rbac.authorization.k8s.io/v1beta1:ClusterRole"),
        *moves_more,
        other_kind,
        same_type,
        pulumi.Alias(name="old-name"),
    ]
    result = _transform(role, aliases)
    assert result is not None
    assert result.opts.aliases == [*moves_more, other_kind, same_type, aliases[-1]], (
        "only an alias that names the same kind under another API version, and nothing else, may go"
    )


def test_kubernetes_aliases_stay_on_a_resource_of_another_package():
    aliases = [pulumi.Alias(type_="kubernetes:apps/v1beta1:Deployment")]
    assert _transform("azure-native:containerservice:ManagedCluster", aliases) is None


def test_resources_without_such_aliases_are_left_alone():
    assert _transform("kubernetes:apps/v1:Deployment", [pulumi.Alias(name="old-name")]) is None
    assert _transform("kubernetes:apps/v1:Deployment", []) is None


def test_no_resource_of_a_fleet_keeps_an_alias_that_names_another_api_version():
    """Where the fleet used to carry such aliases, none are left, and the program's own are."""
    graph = run_program(FLEETS["dev"]())
    recorded = {r.type: r.options["aliases"] for r in graph.resources if r.options["aliases"]}
    for type_, aliases in recorded.items():
        for alias in aliases:
            assert "name" in alias, f"{type_} still carries {alias}"


def _without_dropped_aliases(options):
    """The options, less the aliases the evaluation settings drop on purpose (tested above)."""
    aliases = [
        a
        for a in options.get("aliases", [])
        if not re.fullmatch(r"azure-native:[a-z]+/v[0-9a-z]+:\w+", a.get("type", ""))
        and not (
            set(a) <= {"type", "parentUrn"}
            and re.fullmatch(r"kubernetes:[\w.]+/v\w+:\w+", a.get("type", ""))
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
            _without_dropped_aliases(r.options),
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
