"""End-to-end tests: real traffic through pylvsd in network namespaces (root only)."""

from __future__ import annotations

import os

import pytest

from pylvs.daemon import pypy_runtime

# The data-plane backends the suite runs against, each with its default data plane (on PyPy
# where .venv-pypy is installed) and once more on CPython (in pylvsd, or forked from it).
BACKENDS = ["nfqueue", "afpacket", "nfqueue-cpython", "afpacket-cpython"]

# Tests of NFQUEUE's own rules and failure behaviour (queue chains, --queue-bypass fail-open,
# binding the queue). test_afpacket.py checks the afpacket equivalents.
NFQUEUE_ONLY = {
    "test_sigterm_removes_everything",
    "test_kill9_fails_open",
    "test_nfqueue_unavailable",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="end-to-end tests need root"))
            callspec = getattr(item, "callspec", None)
            backend = callspec.params.get("backend") if callspec is not None else None
            if backend is None:
                continue
            if backend.startswith("afpacket") and item.originalname in NFQUEUE_ONLY:  # type: ignore[attr-defined]
                item.add_marker(pytest.mark.skip(reason="NFQUEUE-specific; see test_afpacket.py"))
            if backend.endswith("-cpython") and pypy_runtime() is None:
                item.add_marker(pytest.mark.skip(reason="no PyPy: the default runs on CPython"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
