"""The run order of the suite (tests/conftest.py): the named longest tests exist and go first."""

from __future__ import annotations

import re

import pytest

from tests.conftest import LONGEST_FIRST, REPO, schedule_rank


@pytest.mark.parametrize("nodeid", LONGEST_FIRST)
def test_schedule_names_existing_tests(nodeid):
    path, _, name = nodeid.partition("::")
    assert re.search(rf"^def {name}\(", (REPO / path).read_text(), flags=re.M), f"{nodeid} is not a test any more"


class _Item:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid


def test_longest_first_then_the_collection_order():
    items = [
        _Item("tests/a.py::test_fast"),
        _Item("tests/b.py::test_slow"),
        _Item(f"{LONGEST_FIRST[1]}@group"),
        _Item(LONGEST_FIRST[0]),
        _Item("tests/c.py::test_fast"),
    ]
    order = [item.nodeid for item in sorted(items, key=schedule_rank)]
    assert order == [LONGEST_FIRST[0], f"{LONGEST_FIRST[1]}@group", "tests/a.py::test_fast", "tests/b.py::test_slow",
                     "tests/c.py::test_fast"]  # fmt: skip
