"""The README and docs/: a short front door, one topic per file, every link landing somewhere."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from harness import ROOT

README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _outside_code(text: str) -> list[str]:
    lines, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code:
            lines.append(line)
    return lines


def _anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings: lowercase, punctuation dropped, spaces as dashes,
    and a repeated heading numbered from -1."""
    anchors: set[str] = set()
    for line in _outside_code(text):
        if m := re.match(r"^#{1,6} (.+)$", line):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            candidate, n = slug, 0
            while candidate in anchors:
                n += 1
                candidate = f"{slug}-{n}"
            anchors.add(candidate)
    return anchors


def _links(page: Path) -> list[str]:
    return [
        target
        for line in _outside_code(page.read_text())
        for target in LINK.findall(line)
        if not re.match(r"^[a-z]+:", target)  # https:, mailto:: not this repository's
    ]


def test_every_table_of_contents_entry_lands_on_a_heading():
    contents = README.split("## Contents", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"\]\(#([^)]+)\)", contents)
    assert len(links) > 5, "the README needs a table of contents"
    missing = sorted(set(links) - _anchors(README))
    assert not missing, f"table of contents links without a heading: {missing}"


def test_every_in_page_link_lands_on_a_heading():
    missing = sorted(set(re.findall(r"\]\(#([^)]+)\)", README)) - _anchors(README))
    assert not missing, f"links without a heading: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_lands_on_a_file_and_heading(page):
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        landing = (page.parent / path).resolve() if path else page
        if not landing.exists():
            broken.append(f"{target}: no file {landing.relative_to(ROOT.resolve())}")
        elif anchor and (landing.suffix != ".md" or anchor not in _anchors(landing.read_text())):
            broken.append(f"{target}: no heading #{anchor} in {landing.name}")
    assert not broken, f"{page.relative_to(ROOT)}: links that land nowhere: {broken}"


def test_the_link_check_sees_a_broken_link_and_a_broken_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# A\n\n## Known heading\n")
    page = tmp_path / "b.md"
    page.write_text(
        "# B\n\n[ok](a.md#known-heading) [gone](missing.md) [wrong](a.md#unknown)\n"
        "```\n[in code](nowhere.md)\n```\n[web](https://example.org/x.md)\n"
    )
    assert _links(page) == ["a.md#known-heading", "missing.md", "a.md#unknown"]
    assert _anchors("# T\n## Same\n## Same\n") == {"t", "same", "same-1"}


def test_the_readme_is_a_front_door():
    lines = README.splitlines()
    assert len(lines) <= 400, f"README.md has {len(lines)} lines; move the rest to docs/"
    first_screen = "\n".join(lines[:40])
    for command in ("./scripts/deploy.sh local", "./scripts/test.sh"):
        assert command in first_screen, f"README.md: {command} must be in its first 40 lines"


def test_the_readme_links_every_docs_file():
    unlinked = [p.name for p in DOCS if f"docs/{p.name}" not in set(_links(ROOT / "README.md"))]
    assert len(DOCS) >= 10 and not unlinked, f"docs files the README does not link: {unlinked}"


def test_the_readme_holds_no_source_citations():
    cited = re.findall(r"[\w/]+\.go\b|[\w-]+/[\w-]+#\d+", README)
    assert not cited, f"README.md cites sources; they belong in docs/ and the code: {cited}"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_docs_file_opens_with_a_paragraph_saying_what_it_covers(page):
    lines = page.read_text().splitlines()
    assert lines and re.match(r"^# \S", lines[0]), f"{page.name}: must start with a # title"
    rest = lines[1:]
    while rest and not rest[0].strip():
        rest = rest[1:]
    paragraph = []
    for line in rest:
        if not line.strip():
            break
        paragraph.append(line)
    assert paragraph and not re.match(r"^(#|[-*|>]|```|\d+\. )", paragraph[0]), (
        f"{page.name}: the title must be followed by a paragraph, not {rest[:1]}"
    )
    assert len(" ".join(paragraph).split()) >= 15, f"{page.name}: the opening paragraph is too thin"


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


def test_the_tool_paths_the_docs_give_are_the_versions_deploy_pins():
    deploy = (ROOT / "scripts" / "deploy.sh").read_text()
    pins = {
        "pulumi": re.search(r"^PULUMI_VERSION=(\S+)$", deploy, re.M).group(1),
        "kind": re.search(r"^KIND_VERSION=(\S+)$", deploy, re.M).group(1),
    }
    given = [
        (p.name, *m)
        for p in PAGES
        for m in re.findall(r"\.tools/(pulumi|kind)-([\w.]+)", p.read_text())
    ]
    assert given, "the docs should say where deploy.sh installs its tools"
    stale = [(page, tool, v) for page, tool, v in given if v != pins[tool]]
    assert not stale, f"tool versions that scripts/deploy.sh no longer pins ({pins}): {stale}"
