"""The cloud regions the config model knows (regions.yaml), and the nearest one to a misspelling."""

from __future__ import annotations

import difflib
import functools
from pathlib import Path

REGIONS_FILE = Path(__file__).resolve().parent / "regions.yaml"


@functools.cache
def known_regions(cloud: str) -> frozenset[str]:
    """Region names listed for `cloud` (aws or azure); empty for clouds without a list."""
    from components._yaml import safe_load

    data = safe_load(REGIONS_FILE.read_text()) or {}
    return frozenset(data.get(cloud) or ())


def nearest_region(cloud: str, region: str) -> str | None:
    """The listed region closest to `region`, or None when none is close."""
    matches = difflib.get_close_matches(region, sorted(known_regions(cloud)), n=1, cutoff=0.6)
    return matches[0] if matches else None
