"""The test harness itself: what one program run leaves behind for the next in the process."""

from __future__ import annotations

import pickle

from conftest import FLEETS
from harness import run_program


def test_a_program_run_leaves_the_pickler_as_it_found_it():
    """Each dynamic resource makes pulumi wrap pickle._Pickler._batch_setitems once more
    (pulumi/dynamic/dynamic.py, serialize_provider); without the harness's restore, a long
    test process nests the wrappers until pickling a provider exceeds the recursion limit."""
    before = pickle._Pickler._batch_setitems
    graph = run_program(FLEETS["local"]())
    assert any(r.type.startswith("pulumi-python:dynamic") for r in graph.resources), (
        "the local fleet must register a dynamic resource for this test to mean anything"
    )
    assert pickle._Pickler._batch_setitems is before
