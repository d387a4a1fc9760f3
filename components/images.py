"""Container images by digest: the data in images.yaml, and the references the program deploys."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

IMAGES_FILE = Path(__file__).resolve().parent / "images.yaml"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class ImageDataError(ValueError):
    """images.yaml is malformed; the message names the entry."""


@dataclass(frozen=True)
class ImageEntry:
    reference: str
    """repository:tag, as the code names the image."""
    digest: str | None
    source: str | None
    """Where the digest comes from."""
    unresolved: str | None
    """Why there is no digest yet."""

    @property
    def pinned(self) -> str:
        return f"{self.reference}@{self.digest}" if self.digest else self.reference


def read(path: Path = IMAGES_FILE) -> dict[str, ImageEntry]:
    """The entries of an images file, checked: a digest with its source, or a reason without."""
    raw = yaml.safe_load(path.read_text()) or {}
    entries = {}
    for reference, fields in sorted((raw.get("images") or {}).items()):
        fields = fields or {}
        digest, source, why = fields.get("digest"), fields.get("source"), fields.get("unresolved")
        where = f"{path.name}: {reference}"
        if "@" in reference or ":" not in reference.rsplit("/", 1)[-1]:
            raise ImageDataError(f"{where}: the key must be repository:tag")
        if digest is not None and not (isinstance(digest, str) and DIGEST.fullmatch(digest)):
            raise ImageDataError(f"{where}: digest {digest!r} is not sha256:<64 hex digits>")
        if digest and not source:
            raise ImageDataError(f"{where}: a digest needs the source it was taken from")
        if not digest and not why:
            raise ImageDataError(f"{where}: without a digest, say why (`unresolved`)")
        entries[reference] = ImageEntry(reference, digest, source, why)
    return entries


@functools.cache
def _data() -> dict[str, ImageEntry]:
    return read()


def digest(reference: str) -> str | None:
    """The digest images.yaml records for `repository:tag`: None while unresolved (or absent,
    which `check` reports)."""
    entry = _data().get(reference)
    return entry.digest if entry else None


def repository(reference: str) -> str:
    """`repository` of `repository:tag` or `repository@digest` (a registry port is kept)."""
    name = reference.partition("@")[0]
    head, _, last = name.rpartition("/")
    last = last.partition(":")[0]
    return f"{head}/{last}" if head else last


def entry_for(ref: str, data: Mapping[str, ImageEntry]) -> ImageEntry | None:
    """The entry a deployed reference stands for: by `repository:tag`, or, for a chart that
    renders `repository@digest` (dropping the tag), the entry of that repository with that
    digest."""
    name, _, digest = ref.partition("@")
    if ":" in name.rsplit("/", 1)[-1]:
        return data.get(name)
    same = [e for e in data.values() if repository(e.reference) == name and e.digest == digest]
    return same[0] if same else None


def pinned(reference: str) -> str:
    """`reference@digest` when images.yaml has the digest, else the reference unchanged (an
    unresolved image, or one missing from the data: `check` reports both)."""
    entry = _data().get(reference)
    return entry.pinned if entry else reference


def pin_pod_images(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a workload object with every container image pinned."""
    obj = dict(obj)
    spec = obj.get("spec")
    template = (spec or {}).get("template") if isinstance(spec, Mapping) else None
    if not template:
        return obj
    pod = dict(template["spec"])
    for field in ("initContainers", "containers"):
        if field in pod:
            pod[field] = [{**c, "image": pinned(c["image"])} for c in pod[field]]
    obj["spec"] = {**spec, "template": {**template, "spec": pod}}
    return obj


def check(references: Iterable[str], data: Mapping[str, ImageEntry] | None = None) -> list[str]:
    """Problems with deployed image references: a bare tag the data does not list, an
    unresolved image, or a digest that is not the data's. A reference with a digest that the
    data does not list is pinned where it is named (the stack config) and passes."""
    data = _data() if data is None else data
    problems = []
    for ref in sorted(set(references)):
        name, _, digest = ref.partition("@")
        entry = entry_for(ref, data)
        if entry is None:
            known = sorted(e.reference for e in data.values() if repository(e.reference) == name)
            if not digest:
                problems.append(f"{ref}: not in images.yaml (no digest, and no reason why)")
            elif known:
                # repository@digest of a repository the data lists: the digest must be its.
                problems.append(f"{ref}: digest differs from images.yaml's {', '.join(known)}")
            # else: pinned where it is named (an image tag with its digest in the stack config)
        elif digest and digest != entry.digest:
            problems.append(f"{ref}: digest differs from images.yaml's {entry.digest}")
        elif not digest and entry.digest:
            problems.append(f"{ref}: images.yaml pins it to {entry.digest}, deployed by tag")
        elif not digest:
            problems.append(f"{ref}: unresolved ({entry.unresolved})")
    return problems


def unresolved(references: Iterable[str]) -> list[str]:
    """The references that would deploy by tag."""
    return sorted({ref for ref in references if "@" not in ref})
