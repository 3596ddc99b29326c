"""rr and wrr: hand-derived IPVS sequences (ip_vs_rr.c, ip_vs_wrr.c)."""

from __future__ import annotations

from sched_util import label, make_service

from pylvs.core.schedulers import Scheduler, create
from pylvs.core.schedulers.wrr import WeightedRoundRobinScheduler
from pylvs.core.service import AF_INET, Dest, Service


def run(sched: Scheduler, svc: Service, n: int) -> str:
    return "".join(label(svc, sched.schedule(svc, 1, 1, 2, 0.0)) for _ in range(n))


# --- rr ----------------------------------------------------------------------------------------


def test_rr_cycles_in_insertion_order() -> None:
    svc = make_service([1, 1, 1])
    assert run(create("rr", svc), svc, 7) == "ABCABCA"


def test_rr_weight_is_only_eligibility() -> None:
    svc = make_service([5, 1, 3])
    assert run(create("rr", svc), svc, 6) == "ABCABC"


def test_rr_skips_quiescent_and_overloaded() -> None:
    svc = make_service([1, 0, 1, 1])
    svc.dests[3].overloaded = True
    assert run(create("rr", svc), svc, 5) == "ACACA"


def test_rr_none_when_nothing_eligible() -> None:
    svc = make_service([0, 0])
    assert create("rr", svc).schedule(svc, 1, 1, 2, 0.0) is None
    empty = make_service([])
    assert create("rr", empty).schedule(empty, 1, 1, 2, 0.0) is None


def test_rr_cursor_survives_a_skip() -> None:
    # The cursor is the last chosen dest; a dest becoming eligible again resumes after it.
    svc = make_service([1, 1, 1])
    rr = create("rr", svc)
    assert run(rr, svc, 1) == "A"
    svc.dests[1].weight = 0
    assert run(rr, svc, 1) == "C"
    svc.dests[1].weight = 1
    assert run(rr, svc, 3) == "ABC"


def test_rr_deleting_the_cursor_continues_from_its_predecessor() -> None:
    svc = make_service([1, 1, 1, 1])
    a, b, c, d = svc.dests
    rr = create("rr", svc)
    assert run(rr, svc, 2) == "AB"  # cursor = B
    svc.dests.remove(b)
    rr.update(svc)  # ip_vs_rr_del_dest: cursor -> A, so C is next
    assert rr.schedule(svc, 1, 1, 2, 0.0) is c
    assert rr.schedule(svc, 1, 1, 2, 0.0) is d
    assert rr.schedule(svc, 1, 1, 2, 0.0) is a


def test_rr_deleting_the_first_dest_as_cursor_goes_back_to_the_head() -> None:
    svc = make_service([1, 1, 1])
    a, b, _c = svc.dests
    rr = create("rr", svc)
    assert rr.schedule(svc, 1, 1, 2, 0.0) is a
    svc.dests.remove(a)
    rr.update(svc)
    assert rr.schedule(svc, 1, 1, 2, 0.0) is b


def test_rr_deleting_another_dest_keeps_the_cursor() -> None:
    svc = make_service([1, 1, 1])
    rr = create("rr", svc)
    assert run(rr, svc, 2) == "AB"
    del svc.dests[0]
    rr.update(svc)
    assert run(rr, svc, 3) == "BAB"  # old C, old B, old C: labels are by new position


def test_rr_new_dest_joins_the_cycle() -> None:
    svc = make_service([1, 1, 1])
    rr = create("rr", svc)
    assert run(rr, svc, 3) == "ABC"
    svc.dests.append(Dest(AF_INET, 0x0A0001FF, 80, weight=1))
    rr.update(svc)
    assert run(rr, svc, 5) == "DABCD"


# --- wrr ---------------------------------------------------------------------------------------


def test_wrr_interleaved_4_3_2() -> None:
    svc = make_service([4, 3, 2])
    assert run(WeightedRoundRobinScheduler(svc), svc, 18) == "AABABCABC" * 2


def test_wrr_gcd_steps() -> None:
    # di = gcd(6, 4) = 2, mw = 6 - (2 - 1) = 5: passes at cw = 5, 3, 1.
    svc = make_service([6, 4])
    wrr = WeightedRoundRobinScheduler(svc)
    assert (wrr.di, wrr.mw, wrr.cw) == (2, 5, 5)
    assert run(wrr, svc, 10) == "AABAB" * 2


def test_wrr_skips_overloaded() -> None:
    svc = make_service([4, 3, 2])
    svc.dests[1].overloaded = True
    assert run(WeightedRoundRobinScheduler(svc), svc, 12) == "AAACAC" * 2


def test_wrr_update_keeps_cw_and_restarts_from_the_head() -> None:
    svc = make_service([4, 3, 2])
    wrr = WeightedRoundRobinScheduler(svc)
    assert run(wrr, svc, 2) == "AA"  # now cw = 3, cl = A
    wrr.update(svc)  # upd_dest: cl = head; cw = 3 is <= mw = 4 and di = 1, so it stays
    assert wrr.cw == 3
    assert run(wrr, svc, 9) == "ABABCABCA"


def test_wrr_update_rounds_cw_to_the_new_step() -> None:
    svc = make_service([9, 6, 3])  # di = 3, mw = 7
    wrr = WeightedRoundRobinScheduler(svc)
    assert run(wrr, svc, 3) == "AAB"  # cw = 4
    svc.dests[0].weight = 8
    svc.dests[1].weight = 4
    del svc.dests[2]
    wrr.update(svc)  # di = 4, mw = 5; cw = (4 // 4) * 4 + 1 = 5
    assert (wrr.di, wrr.mw, wrr.cw, wrr.cl) == (4, 5, 5, -1)
    assert run(wrr, svc, 6) == "AABAAB"


def test_wrr_update_clamps_cw_to_the_new_maximum() -> None:
    svc = make_service([4, 3, 2])
    wrr = WeightedRoundRobinScheduler(svc)
    svc.dests[0].weight = 2
    wrr.update(svc)  # mw = 3 < cw = 4
    assert wrr.cw == 3
    assert run(wrr, svc, 6) == "BABCAB"


def test_wrr_dests_added_to_an_empty_service() -> None:
    svc = make_service([])
    wrr = WeightedRoundRobinScheduler(svc)
    assert wrr.schedule(svc, 1, 1, 2, 0.0) is None
    svc.dests = make_service([4, 3, 2]).dests
    wrr.update(svc)  # cw == 0 -> cw = mw
    assert run(wrr, svc, 9) == "AABABCABC"


def test_wrr_none_when_all_quiescent_or_overloaded() -> None:
    svc = make_service([0, 0])
    assert WeightedRoundRobinScheduler(svc).schedule(svc, 1, 1, 2, 0.0) is None
    svc = make_service([3, 1])
    for d in svc.dests:
        d.overloaded = True
    wrr = WeightedRoundRobinScheduler(svc)
    assert run(wrr, svc, 3) == "---"
    svc.dests[1].overloaded = False
    assert run(wrr, svc, 2) == "BB"
