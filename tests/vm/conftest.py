"""Tests under tests/vm run only inside the cgroup v2 VM that tests/vm/run.py boots (marker `vm`)."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    inside = os.environ.get("FLYTE_DECL_IN_VM") == "1"
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.vm)
            if not inside:
                item.add_marker(pytest.mark.skip(reason="runs inside the VM: python tests/vm/run.py"))
