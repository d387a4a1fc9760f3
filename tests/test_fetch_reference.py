"""scripts/fetch_reference.py, offline: against mirrors of the upstream repositories built from
the reference copy (over loopback HTTP and file://), a checksum mismatch and a missing file."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REFERENCE_ROOT, require_reference
from harness import ROOT
from registry_stand_in import serving

sys.path.insert(0, str(ROOT / "scripts"))

import fetch_reference as fr

SCRIPT = ROOT / "scripts" / "fetch_reference.py"


def unsubstituted(dest: str, data: bytes) -> bytes:
    """The file as upstream has it: the addon CRDs with their operator placeholders back."""
    if dest not in fr.SUBSTITUTED:
        return data
    text = data.decode()
    for placeholder, value in fr.SUBSTITUTIONS.items():
        field = {"Cg==": "caBundle: ", "open-cluster-management-hub": "namespace: "}[value]
        assert text.count(field + value) == 1, (dest, field + value)
        text = text.replace(field + value, field + placeholder)
    return text.encode()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """raw.githubusercontent.com's layout (<owner>/<repo>/<commit>/<path>), from the copy."""
    reference = require_reference(REFERENCE_ROOT / "ocm-v1.3.1" / "crds")
    reference = reference.parent.parent
    root = tmp_path_factory.mktemp("mirror")
    for dest in fr.read_sums(fr.SUMS):
        source = fr.source_of(dest)
        target = root / source.repo / source.commit / source.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(unsubstituted(dest, (reference / dest).read_bytes()))
    return root


@pytest.fixture
def served(mirror) -> Iterator[str]:
    with serving(functools.partial(_QuietHandler, directory=str(mirror))) as url:
        yield url


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def test_the_sums_cover_what_the_tests_read_and_nothing_of_the_copys_own():
    sums = fr.read_sums(fr.SUMS)
    for needed in (
        "ocm-v1.3.1/crds/0000_00_work.open-cluster-management.io_manifestworks.crd.yaml",
        "ocm-v1.3.1/charts/klusterlet/values.yaml",
        "ocm-v1.3.1/charts/cluster-manager/templates/operator.yaml",
        "observability/charts/prometheus/values.yaml",
        "observability/charts-full/prometheus/charts/alertmanager/Chart.yaml",
        "observability/charts-full/grafana/templates/deployment.yaml",
    ):
        assert needed in sums, f"scripts/reference.sha256 lacks {needed}"
    assert not [d for d in sums if d.endswith(("README.md", "SOURCES")) and d.count("/") < 3], (
        "the copy's own notes are not upstream files"
    )
    assert len(sums) >= 290, len(sums)


def test_every_path_maps_to_its_pinned_upstream_file():
    cases = {
        "ocm-v1.3.1/crds/0000_00_work.open-cluster-management.io_manifestworks.crd.yaml": (
            fr.OCM,
            "manifests/cluster-manager/hub/crds/"
            "0000_00_work.open-cluster-management.io_manifestworks.crd.yaml",
        ),
        "ocm-v1.3.1/crds/clusterproperties.crd.yaml": (
            fr.OCM,
            "manifests/klusterlet/managed/clusterproperties.crd.yaml",
        ),
        "ocm-v1.3.1/charts/klusterlet/templates/operator.yaml": (
            fr.OCM,
            "deploy/klusterlet/chart/klusterlet/templates/operator.yaml",
        ),
        "observability/charts-full/prometheus/charts/alertmanager/values.yaml": (
            fr.PROMETHEUS_COMMUNITY,
            "charts/alertmanager/values.yaml",
        ),
        "observability/charts-full/prometheus/templates/deploy.yaml": (
            fr.PROMETHEUS_COMMUNITY,
            "charts/prometheus/templates/deploy.yaml",
        ),
        "observability/charts/grafana/values.yaml": (
            fr.GRAFANA_COMMUNITY,
            "charts/grafana/values.yaml",
        ),
        "observability/charts/kube-state-metrics/values.yaml": (
            fr.PROMETHEUS_COMMUNITY,
            "charts/kube-state-metrics/values.yaml",
        ),
    }
    for dest, ((repo, commit), path) in cases.items():
        assert fr.source_of(dest) == fr.Source(repo, commit, path), dest
    with pytest.raises(ValueError, match="no upstream source"):
        fr.source_of("ocm-v1.3.1/README.md")


def test_fetching_from_a_loopback_mirror_gives_the_reference_copy(served, tmp_path):
    dest = tmp_path / "reference"
    done = run("--base-url", served, "--dest", str(dest))
    assert done.returncode == 0, done.stderr
    assert "each matching its SHA-256" in done.stdout
    assert fr.check(fr.read_sums(fr.SUMS), dest) == []
    addon = dest / fr.SUBSTITUTED[0]
    text = addon.read_text()
    assert "caBundle: Cg==" in text and "{{" not in text, "the placeholders are substituted"
    assert [p.name for p in tmp_path.iterdir()] == ["reference"], "no staging directory left"
    again = run("--base-url", served, "--dest", str(dest))
    assert again.returncode == 0 and "already present" in again.stdout, again.stdout


def test_the_tests_find_what_the_script_fetched(served, tmp_path):
    dest = tmp_path / "reference"
    assert run("--base-url", served, "--dest", str(dest)).returncode == 0
    code = (
        "import os, sys\n"
        f"os.environ['OCM_FLEET_REFERENCE'] = {str(dest)!r}\n"
        f"sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "import conftest\n"
        "print(conftest.SHARED_REFERENCE)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == str(dest / "ocm-v1.3.1"), done.stderr


def test_a_checksum_mismatch_fails_and_writes_nothing(mirror, tmp_path):
    sums = fr.read_sums(fr.SUMS)
    dest = "observability/charts-full/grafana/values.yaml"
    source = fr.source_of(dest)
    tampered = tmp_path / "mirror"
    # A copy of the mirror with one file changed upstream.
    shutil.copytree(mirror, tampered)
    target = tampered / source.repo / source.commit / source.path
    target.write_bytes(target.read_bytes() + b"\n# changed\n")
    out = tmp_path / "reference"
    done = run("--base-url", tampered.as_uri(), "--dest", str(out))
    assert done.returncode == 1
    # observability/charts/ holds the same upstream values.yaml: both copies fail.
    sharing = sorted(d for d in sums if fr.source_of(d) == source)
    assert len(sharing) == 2, sharing
    for each in sharing:
        assert f"{each}: SHA-256 " in done.stderr and f"expected {sums[each]}" in done.stderr
    assert f"2 of {len(sums)} files failed; nothing written" in done.stderr
    assert not out.exists(), "nothing is written when a file does not match"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror"], "no staging directory left"


def test_a_file_missing_upstream_fails_naming_it(mirror, tmp_path):
    partial = tmp_path / "mirror"
    shutil.copytree(mirror, partial)
    dest = "ocm-v1.3.1/charts/klusterlet/values.yaml"
    source = fr.source_of(dest)
    (partial / source.repo / source.commit / source.path).unlink()
    done = run("--base-url", partial.as_uri(), "--dest", str(tmp_path / "reference"))
    assert done.returncode == 1
    assert f"{dest}: cannot fetch" in done.stderr, done.stderr
    assert not (tmp_path / "reference").exists()


def test_check_reports_a_changed_copy(tmp_path, mirror):
    copy = tmp_path / "copy"
    assert run("--base-url", mirror.as_uri(), "--dest", str(copy)).returncode == 0
    assert run("--check", str(copy)).returncode == 0
    (copy / "ocm-v1.3.1" / "charts" / "klusterlet" / "values.yaml").write_text("changed\n")
    done = run("--check", str(copy))
    assert done.returncode == 1
    assert "ocm-v1.3.1/charts/klusterlet/values.yaml: SHA-256 differs" in done.stderr


def test_help_describes_and_changes_nothing(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0 and "pinned" in done.stdout
    assert list(tmp_path.iterdir()) == []
    bad = run("--no-such-option")
    assert bad.returncode == 2 and "usage:" in bad.stderr


def test_the_test_workflow_fetches_the_reference_data_before_the_tests_and_requires_it():
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    runs = [s.get("run", "").strip() for s in steps]
    fetch = runs.index("python3 scripts/fetch_reference.py")
    tests = runs.index("./scripts/test.sh")
    assert fetch < tests, "the reference data must be there before the tests run"
    assert steps[tests].get("env", {}).get("OCM_FLEET_REQUIRE_REFERENCE") == "1", (
        "with the data fetched, a test that cannot find it must fail, not skip"
    )
    assert (ROOT / ".gitignore").read_text().count("/.reference/") == 1
