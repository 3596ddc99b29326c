"""End-to-end tests: real traffic through pylvsd in network namespaces (root only)."""

from __future__ import annotations

import os

import pytest

# The data-plane backends the suite runs against ("afpacket" joins when it exists).
BACKENDS = ["nfqueue"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="end-to-end tests need root"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
