"""The region lists the config model checks names against (components/regions.yaml)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from harness import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import update_regions

from components.regions import known_regions, nearest_region


def test_the_aws_list_is_every_region_of_the_installed_botocore():
    botocore = pytest.importorskip("botocore", reason="botocore is in requirements-dev.txt")
    data = json.loads((Path(botocore.__file__).parent / "data" / "endpoints.json").read_text())
    listed = {r for part in data["partitions"] for r in part.get("regions", {})}
    missing = sorted(listed - known_regions("aws"))
    assert not missing, (
        f"botocore {botocore.__version__} lists regions components/regions.yaml lacks: {missing}; "
        "run .venv/bin/python scripts/update_regions.py and commit the file"
    )


def test_the_updater_rewrites_only_the_aws_list():
    text = (ROOT / "components" / "regions.yaml").read_text()
    updated = update_regions.rewritten(text, "9.9.9", ["eu-west-1", "zz-new-1"])
    assert "(botocore 9.9.9)" in updated
    assert "aws:\n  - eu-west-1\n  - zz-new-1\nazure:\n" in updated
    assert updated.split("azure:\n", 1)[1] == text.split("azure:\n", 1)[1]


def test_both_lists_hold_the_regions_the_shipped_stacks_use():
    assert {"eu-west-1", "us-east-1", "ap-northeast-1"} <= known_regions("aws")
    assert {"westeurope", "northeurope", "eastus2", "brazilsouth"} <= known_regions("azure")
    assert known_regions("kind") == frozenset(), "kind and existing regions are free-form"


@pytest.mark.parametrize(
    ("cloud", "typo", "nearest"),
    [
        ("azure", "westeurop", "westeurope"),
        ("azure", "west-europe", "westeurope"),
        ("aws", "eu-wset-1", "eu-west-1"),
    ],
)
def test_the_nearest_region_is_suggested(cloud, typo, nearest):
    assert nearest_region(cloud, typo) == nearest


def test_the_check_looks_at_the_regions_not_the_botocore_version(tmp_path, monkeypatch):
    regions = tmp_path / "regions.yaml"
    text = (ROOT / "components" / "regions.yaml").read_text()
    listed = sorted(known_regions("aws"))
    monkeypatch.setattr(update_regions, "REGIONS_FILE", regions)
    monkeypatch.setattr(update_regions, "botocore_regions", lambda: ("0.0.1", listed))
    regions.write_text(text)
    assert update_regions.main(["--check"]) == 0, "a new botocore version alone is no change"
    monkeypatch.setattr(update_regions, "botocore_regions", lambda: ("0.0.1", [*listed, "zz-1"]))
    assert update_regions.main(["--check"]) == 1, "a region botocore adds is"
    assert regions.read_text() == text, "--check writes nothing"
