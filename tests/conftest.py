"""Shared test configuration: tiers are told apart by folder and marker."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if "/tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/tests/cluster/" in path:
            item.add_marker(pytest.mark.cluster)
