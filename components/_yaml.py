"""YAML the program writes and reads while it evaluates, through libyaml where PyYAML has it.

libyaml's safe dumper and loader give the same text and the same data as PyYAML's pure-Python
ones (tests/test_evaluation.py compares the whole recorded graph), several times faster; each
cluster's kubeconfig and metrics-agent config, and manifests/, go through them on every preview.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

DUMPER: type = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_dump(data: Any, **options: Any) -> str:
    """`yaml.safe_dump(data, **options)`, as text."""
    return yaml.dump(data, Dumper=DUMPER, **options)


def safe_load(text: str) -> Any:
    """`yaml.safe_load(text)`."""
    return yaml.load(text, Loader=LOADER)


def safe_load_all(text: str) -> Iterator[Any]:
    """`yaml.safe_load_all(text)`."""
    return yaml.load_all(text, Loader=LOADER)
