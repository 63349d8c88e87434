"""Shared test configuration: tiers are told apart by folder and marker; `--update-golden`."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

# Property tests check behaviour, not speed: on a fresh clone Hypothesis first builds its
# Unicode tables (over a second), which its too-slow health check and deadline would count
# against the first test that draws text.
settings.register_profile(
    "switchboard", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("switchboard")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the expected outputs of golden tests (tests/golden/) for review",
    )


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True under `pytest --update-golden`: golden tests write what they got, then pass."""
    return bool(request.config.getoption("--update-golden"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if "/tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/tests/cluster/" in path:
            item.add_marker(pytest.mark.cluster)
