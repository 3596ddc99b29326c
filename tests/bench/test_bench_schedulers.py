"""One scheduling decision per IPVS scheduler, over a service of 10 dests.

Disabled by default (``--benchmark-disable`` in addopts: each runs once as a plain test). Measure:

    .venv/bin/python -m pytest tests/bench/test_bench_schedulers.py --benchmark-enable
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import pytest

from pylvs.core.schedulers import available, create
from pylvs.core.schedulers.mh import MaglevHashingScheduler
from pylvs.core.service import AF_INET, IPPROTO_TCP, Dest, Service

pytestmark = pytest.mark.bench


def ten_dest_service() -> Service:
    """Weights 1..10 with a spread of connections; none quiesced, overloaded or over its weight."""
    svc = Service(AF_INET, IPPROTO_TCP, 0xC0A80001, 80)
    rng = random.Random(1)
    for i in range(10):
        dest = Dest(AF_INET, 0x0A000101 + i, 80, weight=i + 1)
        dest.activeconns = rng.randrange(1, i + 2)
        dest.inactconns = rng.randrange(0, 200)
        svc.dests.append(dest)
    return svc


@pytest.mark.parametrize("name", available())
def test_bench_schedule(benchmark: Any, name: str) -> None:
    svc = ten_dest_service()
    sched = create(name, svc, random.Random(2))
    # A new client each call (256 of them, cycling), asking for one of 16 destination addresses,
    # as in a cache cluster: lblc/lblcr hit their table after the first round.
    counter = itertools.count()

    def decide() -> Dest | None:
        i = next(counter)
        return sched.schedule(
            svc, 0x0B000000 + (i & 0xFF), 1024 + i % 60000, 0xC6336400 + (i & 15), i * 0.001
        )

    dest = benchmark(decide)
    assert dest is not None


def test_bench_harness(benchmark: Any) -> None:
    """The cost of the calling closure alone, to subtract from the figures above."""
    svc = ten_dest_service()
    counter = itertools.count()
    first = svc.dests[0]

    def decide() -> Dest | None:
        i = next(counter)
        _ = (0x0B000000 + (i & 0xFF), 1024 + i % 60000, 0xC6336400 + (i & 15), i * 0.001)
        return first

    assert benchmark(decide) is first


def test_bench_mh_table_build(benchmark: Any) -> None:
    svc = ten_dest_service()
    mh = MaglevHashingScheduler(svc)
    update: Callable[[Service], None] = mh.update
    benchmark(update, svc)
    assert None not in mh.lookup
