"""Counted nouns in messages: "1 action", never "1 actions"."""

from __future__ import annotations

import pytest

from flyte_decl.words import counted


@pytest.mark.parametrize(("n", "expected"), [(0, "0 actions"), (1, "1 action"), (2, "2 actions")])
def test_counted_is_singular_for_one(n, expected):
    assert counted(n, "action") == expected


def test_an_irregular_plural_is_given():
    assert counted(3, "entry", "entries") == "3 entries"
    assert counted(1, "entry", "entries") == "1 entry"
