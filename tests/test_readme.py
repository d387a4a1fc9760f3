"""The README: a table of contents whose every link lands on a heading, the local path first."""

from __future__ import annotations

import re
import sys

from harness import ROOT

README = (ROOT / "README.md").read_text()


def _anchors(text: str) -> set[str]:
    anchors, in_code = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"^#{1,4} (.+)$", line)):
            anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-"))
    return anchors


def test_every_table_of_contents_entry_lands_on_a_heading():
    contents = README.split("## Contents", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"\]\(#([^)]+)\)", contents)
    assert len(links) > 10, "the README needs a table of contents"
    missing = sorted(set(links) - _anchors(README))
    assert not missing, f"table of contents links without a heading: {missing}"


def test_every_in_page_link_lands_on_a_heading():
    missing = sorted(set(re.findall(r"\]\(#([^)]+)\)", README)) - _anchors(README))
    assert not missing, f"links without a heading: {missing}"


def test_the_local_path_comes_before_the_cloud_path():
    local = README.index("### Local fleet on kind")
    cloud = README.index("### Cloud fleet on AWS and Azure")
    assert README.index("## Contents") < local < cloud
    assert "./scripts/deploy.sh local" in README[local:cloud]


def test_ci_wiring_lives_in_its_own_document():
    ci = (ROOT / "docs" / "ci.md").read_text()
    assert "AssumeRoleWithWebIdentity" in ci and "federated-credential" in ci
    assert "AssumeRoleWithWebIdentity" not in README
    assert "docs/ci.md" in README


def test_the_table_of_contents_lists_every_section():
    sys.path.insert(0, str(ROOT / "scripts"))
    import readme_toc

    assert readme_toc.rewrite(README) == README, (
        "README.md: the Contents do not match the headings; "
        "run .venv/bin/python scripts/readme_toc.py"
    )
