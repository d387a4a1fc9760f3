"""What the program sets up for its own evaluation changes nothing the engine records."""

from __future__ import annotations

import gc
import re

import pulumi
import pytest
from conftest import FLEETS
from harness import run_program

from components import _evaluation


def test_only_versioned_azure_native_aliases_are_dropped():
    aliases = [
        pulumi.Alias(type_="azure-native:containerservice/v20170831:ManagedCluster"),
        pulumi.Alias(type_="azure-native:network/v20150501preview:PublicIPAddress"),
        pulumi.Alias(type_="kubernetes:apps/v1beta1:Deployment"),
        pulumi.Alias(name="old-name"),
        "urn:pulumi:dev::ocm-fleet::some:type::old",
    ]
    args = pulumi.ResourceTransformationArgs(
        resource=None,  # type: ignore[arg-type]
        type_="azure-native:containerservice:ManagedCluster",
        name="x",
        props={"location": "westeurope"},
        opts=pulumi.ResourceOptions(aliases=aliases, protect=True),
    )
    result = _evaluation._drop_versioned_azure_aliases(args)
    assert result is not None
    assert result.opts.aliases == aliases[2:], "only azure-native API-versioned aliases may go"
    assert result.opts.protect is True and result.props == {"location": "westeurope"}
    assert len(args.opts.aliases) == 5, "the caller's options are not modified"


def test_resources_without_such_aliases_are_left_alone():
    args = pulumi.ResourceTransformationArgs(
        resource=None,  # type: ignore[arg-type]
        type_="kubernetes:apps/v1:Deployment",
        name="x",
        props={},
        opts=pulumi.ResourceOptions(
            aliases=[pulumi.Alias(type_="kubernetes:apps/v1beta1:Deployment")]
        ),
    )
    assert _evaluation._drop_versioned_azure_aliases(args) is None


def _without_versioned_azure_aliases(options):
    """The options, less the aliases the evaluation settings drop on purpose (tested above)."""
    aliases = [
        a
        for a in options.get("aliases", [])
        if not re.fullmatch(r"azure-native:[a-z]+/v[0-9a-z]+:\w+", a.get("type", ""))
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
            _without_versioned_azure_aliases(r.options),
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
