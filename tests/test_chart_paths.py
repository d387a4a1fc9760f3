"""Charts from a local path (config `charts`): validated, and changing only the releases' chart
source in the graph."""

from __future__ import annotations

import copy
import tarfile
from pathlib import Path

import pytest
from conftest import FLEETS, fleet_graph
from harness import Graph, run_program

from components.config import FleetConfigError, parse_fleet_config

RELEASE = "kubernetes:helm.sh/v3:Release"
SOURCE_INPUTS = ("chart", "version", "repositoryOpts")
"""The inputs of a release that say where its chart comes from."""
CHARTS = {
    "clusterManager": "cluster-manager",
    "klusterlet": "klusterlet",
    "prometheus": "prometheus",
    "grafana": "grafana",
}


def chart_dir(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 1.0.0\n")
    return path


def chart_tgz(root: Path, name: str) -> Path:
    """A packaged chart as `helm package` writes it: <name>/Chart.yaml inside."""
    source = chart_dir(root / "src", name)
    path = root / f"{name}-1.0.0.tgz"
    with tarfile.open(path, "w:gz") as archive:
        archive.add(source, arcname=name)
    return path


def local_charts(root: Path) -> dict[str, str]:
    """Every chart key, two as directories and two as .tgz files."""
    return {
        "clusterManager": str(chart_tgz(root, "cluster-manager")),
        "klusterlet": str(chart_dir(root, "klusterlet")),
        "prometheus": str(chart_dir(root, "prometheus")),
        "grafana": str(chart_tgz(root, "grafana")),
    }


def raw_config(fleet: str, charts: object) -> dict:
    raw = {k.split(":", 1)[1]: v for k, v in copy.deepcopy(FLEETS[fleet]()).items()}
    raw["charts"] = charts
    return raw


def without_chart_source(graph: Graph) -> list[tuple[str, str, dict]]:
    """Every registration, the releases' chart source left out, by type and name (resources
    register concurrently, so their order varies between runs)."""
    return sorted(
        (
            r.type,
            r.name,
            {
                "inputs": {
                    k: v for k, v in r.inputs.items() if r.type != RELEASE or k not in SOURCE_INPUTS
                },
                "parent": r.parent,
                "provider": r.provider_urn,
                "dependencies": sorted(r.dependencies),
                "propertyDependencies": {
                    k: sorted(v)
                    for k, v in r.property_dependencies.items()
                    if r.type != RELEASE or k not in SOURCE_INPUTS
                },
                "options": r.options,
            },
        )
        for r in graph.resources
    )


# --- validation ------------------------------------------------------------------------------


def test_local_charts_are_read_into_the_config(tmp_path):
    charts = local_charts(tmp_path)
    config = parse_fleet_config(raw_config("dev", charts))
    assert config.chart_paths == {CHARTS[k]: v for k, v in charts.items()}


def test_without_the_key_every_chart_comes_from_its_repository():
    config = parse_fleet_config(raw_config("dev", None))
    assert config.chart_paths == {}


@pytest.mark.parametrize(
    ("charts", "message"),
    [
        ("charts/", r"ocm-fleet:charts: 'charts/' must be a mapping of chart"),
        (
            {"clusterManger": "x"},
            r"ocm-fleet:charts.clusterManger: unknown key \(did you mean 'clusterManager'\?",
        ),
        ({"grafana": 3}, r"ocm-fleet:charts.grafana: 3 must be the path of a chart"),
        ({"grafana": ""}, r"ocm-fleet:charts.grafana: '' must be the path of a chart"),
        (
            {"prometheus": "/nonexistent/prometheus"},
            r"ocm-fleet:charts.prometheus: '/nonexistent/prometheus' does not exist",
        ),
    ],
)
def test_a_bad_charts_value_is_refused_naming_the_key_and_value(charts, message):
    with pytest.raises(FleetConfigError, match=message):
        parse_fleet_config(raw_config("dev", charts))


def test_a_path_holding_another_chart_is_refused(tmp_path):
    klusterlet = chart_dir(tmp_path, "klusterlet")
    with pytest.raises(
        FleetConfigError,
        match=r"charts.clusterManager: '.*klusterlet' is the chart 'klusterlet'; it must be "
        r"the 'cluster-manager' chart",
    ):
        parse_fleet_config(raw_config("dev", {"clusterManager": str(klusterlet)}))


def test_a_file_that_is_not_a_packaged_chart_is_refused(tmp_path):
    plain = tmp_path / "grafana.yaml"
    plain.write_text("name: grafana\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "grafana-1.0.0.tgz"
    broken.write_text("not a tarball")
    with pytest.raises(FleetConfigError) as err:
        parse_fleet_config(raw_config("dev", {"grafana": str(plain), "prometheus": str(empty)}))
    assert "charts.grafana: " in str(err.value) and "not a .tgz packaged chart" in str(err.value)
    assert "charts.prometheus: " in str(err.value) and "holds no readable Chart.yaml" in str(
        err.value
    )
    with pytest.raises(FleetConfigError, match=r"charts.grafana: .* holds no readable Chart"):
        parse_fleet_config(raw_config("dev", {"grafana": str(broken)}))


# --- the graph -------------------------------------------------------------------------------


def test_without_the_key_the_releases_come_from_the_pinned_repositories():
    sources = {
        r.inputs["name"]: {k: r.inputs.get(k) for k in SOURCE_INPUTS}
        for r in fleet_graph("dev", False).of_type(RELEASE)
    }
    ocm = "https://open-cluster-management.io/helm-charts"
    assert sources == {
        "cluster-manager": {
            "chart": "cluster-manager",
            "version": "1.3.1",
            "repositoryOpts": {"repo": ocm},
        },
        "klusterlet": {"chart": "klusterlet", "version": "1.3.1", "repositoryOpts": {"repo": ocm}},
        "prometheus": {
            "chart": "prometheus",
            "version": "29.27.0",
            "repositoryOpts": {"repo": "https://prometheus-community.github.io/helm-charts"},
        },
        "grafana": {
            "chart": "grafana",
            "version": "12.11.1",
            "repositoryOpts": {"repo": "https://grafana-community.github.io/helm-charts"},
        },
    }


@pytest.mark.parametrize("fleet", ["dev", "local"])
def test_local_charts_change_only_the_releases_chart_source(fleet, tmp_path):
    charts = local_charts(tmp_path)
    config = {**FLEETS[fleet](), "ocm-fleet:charts": charts}
    local = run_program(config)
    today = fleet_graph(fleet, False)
    assert without_chart_source(local) == without_chart_source(today)
    releases = local.of_type(RELEASE)
    assert len(releases) == len(today.of_type(RELEASE)) >= 4
    by_chart = {v: charts[k] for k, v in CHARTS.items()}
    for release in releases:
        source = {k: release.inputs.get(k) for k in SOURCE_INPUTS}
        assert source == {
            "chart": by_chart[release.inputs["name"]],
            "version": None,
            "repositoryOpts": None,
        }, f"Helm release {release.name} takes {source}"
    assert local.stack_outputs == today.stack_outputs


def test_one_local_chart_leaves_the_others_on_their_repositories(tmp_path):
    grafana = str(chart_dir(tmp_path, "grafana"))
    local = run_program({**FLEETS["dev"](), "ocm-fleet:charts": {"grafana": grafana}})
    today = {r.name: r for r in fleet_graph("dev", False).of_type(RELEASE)}
    for release in local.of_type(RELEASE):
        if release.inputs["name"] == "grafana":
            assert release.inputs["chart"] == grafana
            assert "version" not in release.inputs and "repositoryOpts" not in release.inputs
        else:
            assert release.inputs == today[release.name].inputs, release.name
