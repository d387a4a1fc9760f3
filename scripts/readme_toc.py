"""Rewrites the README's "Contents" from its `##` and `###` headings.

.venv/bin/python scripts/readme_toc.py           # rewrite README.md in place
.venv/bin/python scripts/readme_toc.py --check   # exit 1 if the contents are out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
HEADING = "## Contents"


def anchor(title: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def headings(text: str) -> list[tuple[int, str]]:
    found, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif (
            not in_code and (m := re.match(r"^(##|###) (.+)$", line)) and m.group(2) != HEADING[3:]
        ):
            found.append((len(m.group(1)), m.group(2)))
    return found


def contents(text: str) -> str:
    lines = [
        f"{'  ' * (level - 2)}- [{title.replace('`', '')}](#{anchor(title)})"
        for level, title in headings(text)
    ]
    return f"{HEADING}\n\n" + "\n".join(lines) + "\n"


def rewrite(text: str) -> str:
    start = text.index(f"{HEADING}\n")
    end = text.index("\n## ", start + len(HEADING))
    return text[:start] + contents(text) + text[end:]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    text = README.read_text()
    updated = rewrite(text)
    if args.check:
        if updated != text:
            print("README.md: Contents out of date; run .venv/bin/python scripts/readme_toc.py")
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
