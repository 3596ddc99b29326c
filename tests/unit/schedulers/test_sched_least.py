"""lc, wlc, sed, nq, fo, ovf and twos with hand-set loads (one IPVS source file each)."""

from __future__ import annotations

import random

from sched_util import label, make_service

from pylvs.core.schedulers import create
from pylvs.core.service import Service


def load(svc: Service, *conns: tuple[int, int]) -> None:
    """Set (activeconns, inactconns) of the dests in order."""
    for dest, (act, inact) in zip(svc.dests, conns, strict=True):
        dest.activeconns = act
        dest.inactconns = inact


def pick(name: str, svc: Service) -> str:
    return label(svc, create(name, svc).schedule(svc, 1, 1, 2, 0.0))


def test_lc_least_overhead() -> None:
    svc = make_service([1, 1, 1])
    # overheads: 256, 300, 256 -> A (C ties with A and loses, strict <)
    load(svc, (1, 0), (0, 300), (1, 0))
    assert pick("lc", svc) == "A"
    svc.dests[0].overloaded = True
    assert pick("lc", svc) == "C"
    svc.dests[2].weight = 0
    assert pick("lc", svc) == "B"


def test_lc_ignores_weight() -> None:
    svc = make_service([1, 100])
    load(svc, (0, 1), (0, 2))
    assert pick("lc", svc) == "A"


def test_wlc_cross_multiplication_and_ties() -> None:
    svc = make_service([1, 2])
    load(svc, (1, 0), (2, 0))  # 256/1 vs 512/2: equal -> earlier
    assert pick("wlc", svc) == "A"
    svc.dests[1].weight = 3  # 256 * 3 > 512 * 1
    assert pick("wlc", svc) == "B"


def test_wlc_counts_inactive_connections() -> None:
    svc = make_service([1, 1])
    load(svc, (1, 0), (0, 255))  # 256 vs 255
    assert pick("wlc", svc) == "B"
    load(svc, (1, 0), (0, 256))
    assert pick("wlc", svc) == "A"


def test_wlc_first_least_must_be_eligible() -> None:
    svc = make_service([0, 1, 1])
    load(svc, (0, 0), (5, 0), (6, 0))
    svc.dests[1].overloaded = True
    assert pick("wlc", svc) == "C"


def test_sed_ignores_inactive_and_adds_one() -> None:
    svc = make_service([1, 3])
    load(svc, (0, 50), (1, 0))
    # wlc: 0 * 3 > 256 * 1 is false -> A; sed: (0+1) * 3 > (1+1) * 1 -> B
    assert pick("wlc", svc) == "A"
    assert pick("sed", svc) == "B"
    svc.dests[1].weight = 2  # 1 * 2 > 2 * 1 is false: tie, A
    assert pick("sed", svc) == "A"


def test_nq_takes_the_first_idle_dest() -> None:
    svc = make_service([5, 1, 1])
    load(svc, (1, 0), (0, 9), (0, 0))
    assert pick("nq", svc) == "B"
    svc.dests[1].overloaded = True
    assert pick("nq", svc) == "C"


def test_nq_without_idle_dest_is_sed() -> None:
    svc = make_service([1, 3])
    load(svc, (2, 0), (5, 0))  # 3 * 3 > 6 * 1 -> B
    assert pick("nq", svc) == "B"
    svc.dests[1].weight = 2  # 3 * 2 > 6 * 1 is false -> A
    assert pick("nq", svc) == "A"


def test_nq_skips_quiescent_idle_dest() -> None:
    svc = make_service([0, 1])
    load(svc, (0, 0), (4, 0))
    assert pick("nq", svc) == "B"


def test_fo_highest_weight_first_of_equals() -> None:
    svc = make_service([2, 5, 5, 1])
    assert pick("fo", svc) == "B"
    svc.dests[1].overloaded = True
    assert pick("fo", svc) == "C"
    svc.dests[2].weight = 0
    assert pick("fo", svc) == "A"


def test_ovf_overflows_when_active_exceeds_weight() -> None:
    svc = make_service([5, 3, 3])
    load(svc, (5, 0), (0, 0), (3, 0))
    assert pick("ovf", svc) == "A"  # 5 active <= weight 5
    load(svc, (6, 0), (0, 0), (3, 0))
    assert pick("ovf", svc) == "B"  # A overflows; B and C tie at weight 3
    load(svc, (6, 0), (4, 0), (3, 0))
    assert pick("ovf", svc) == "C"
    load(svc, (6, 0), (4, 0), (4, 0))
    assert pick("ovf", svc) == "-"


class FixedDraws(random.Random):
    """An rng whose randrange returns preset values, to hand-derive twos decisions."""

    def __init__(self, *draws: int) -> None:
        super().__init__(0)
        self.draws = list(draws)
        self.bounds: list[int] = []

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:  # type: ignore[override]
        self.bounds.append(start)
        return self.draws.pop(0)


def test_twos_weighted_draws_and_choice() -> None:
    svc = make_service([1, 2, 3])
    load(svc, (1, 0), (0, 0), (0, 0))
    rng = FixedDraws(0, 6)
    twos = create("twos", svc, rng)
    # total = 1 + 2 + 3 + 1 = 7; r1 = 0 -> A; r2 = 6 -> 6-1-2-3 = 0 -> C
    # choose C: w_C * oh_A = 3 * 256 > w_A * oh_C = 0
    assert label(svc, twos.schedule(svc, 1, 1, 2, 0.0)) == "C"
    assert rng.bounds == [7, 7]


def test_twos_keeps_the_first_draw_on_a_tie() -> None:
    svc = make_service([1, 2, 3])
    load(svc, (1, 0), (2, 0), (0, 0))
    # r1 = 3 -> 3-1-2 = 0 -> B (512/2); r2 = 1 -> A (256/1): tie, keep B
    twos = create("twos", svc, FixedDraws(3, 1))
    assert label(svc, twos.schedule(svc, 1, 1, 2, 0.0)) == "B"


def test_twos_draws_only_eligible_dests() -> None:
    svc = make_service([4, 0, 2])
    svc.dests[0].overloaded = True
    rng = FixedDraws(0, 2)
    twos = create("twos", svc, rng)
    assert label(svc, twos.schedule(svc, 1, 1, 2, 0.0)) == "C"
    assert rng.bounds == [3, 3]


def test_twos_follows_weights_statistically() -> None:
    svc = make_service([1, 3])
    twos = create("twos", svc, random.Random(7))
    counts = {"A": 0, "B": 0}
    for _ in range(4000):
        counts[label(svc, twos.schedule(svc, 1, 1, 2, 0.0))] += 1
    # No load: the first draw wins; P(A) = (1 + 1) / 5.
    assert 0.35 < counts["A"] / 4000 < 0.45
