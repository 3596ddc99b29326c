"""The lossless-rate search and the CPU arithmetic of scripts/bench, against a model director."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pylvs.bench.pps import Step, SweepResult
from pylvs.bench.search import (
    SearchPlan,
    cpu_us_per_packet,
    descendants,
    find_lossless,
    one_core_pps,
    tree_of,
)

QUICK = SearchPlan(start=100_000, resolution_pps=10_000, resolution_fraction=0.05)


@dataclass
class _Model:
    """A director that forwards up to ``capacity`` frames/s and drops the rest, behind a sender
    that cannot send faster than ``sender_max``; ``buffered``: rates it absorbs in a buffer
    (lossless, but its frames arrive after the sender stopped)."""

    capacity: float
    sender_max: float = 1e9
    buffered: float = 0.0
    seconds: float = 1.0

    def __post_init__(self) -> None:
        self.offered: list[int] = []

    def measure(self, rate: int) -> Step:
        self.offered.append(rate)
        sent_pps = min(rate, self.sender_max)
        sent = round(sent_pps * self.seconds)
        if sent_pps <= self.capacity:
            received, backlog = sent, 0
        elif sent_pps <= self.buffered:
            received, backlog = sent, round((sent_pps - self.capacity) * self.seconds)
        else:
            received, backlog = round(self.capacity * self.seconds), 0
        return Step(rate, sent, received, self.seconds, 0.0, None, backlog)


def _check_bracket(plan: SearchPlan, capacity: float, model: _Model) -> None:
    result = find_lossless(model.measure, plan)
    assert result.lossless is not None and result.lossy_pps is not None
    lo, hi = result.lossless.sent_pps, result.lossy_pps
    assert lo <= capacity < hi
    assert hi - lo <= plan.resolution(lo)


@pytest.mark.parametrize("capacity", [5_500, 37_000, 61_000, 99_000, 137_000, 199_000, 250_000])
def test_bisection_brackets_the_capacity_within_the_resolution(capacity: int) -> None:
    model = _Model(capacity)
    _check_bracket(QUICK, capacity, model)
    assert len(model.offered) <= 9


def test_the_rates_offered_are_deterministic() -> None:
    model = _Model(137_000)
    result = find_lossless(model.measure, QUICK)
    # Doubling to the first loss, then halving the interval to 10k (5% of 125k is 6.25k).
    assert model.offered == [100_000, 200_000, 150_000, 125_000, 138_000, 132_000]
    assert result.lossless is not None and result.lossless.offered_pps == 132_000
    assert result.lossy_pps == 138_000
    assert result.gap_pps == 6_000
    assert not result.sender_bound


def test_a_first_step_that_loses_is_halved_until_one_is_lossless() -> None:
    model = _Model(30_000)
    result = find_lossless(model.measure, QUICK)
    assert model.offered[:3] == [100_000, 50_000, 25_000]
    assert result.lossless is not None and 25_000 <= result.lossless.sent_pps <= 30_000


def test_a_director_that_loses_at_every_rate_has_no_lossless_step() -> None:
    model = _Model(0)
    result = find_lossless(model.measure, QUICK)
    assert result.lossless is None
    assert model.offered[-1] == QUICK.min_rate


def test_a_sender_that_falls_short_while_nothing_is_lost_ends_the_search() -> None:
    model = _Model(capacity=1e9, sender_max=180_000)
    result = find_lossless(model.measure, QUICK)
    # 200k is sent at 180k: the sender's limit; 300k (max_rate) once, to see how far it goes.
    assert model.offered == [100_000, 200_000, 300_000]
    assert result.sender_bound
    assert result.lossless is not None and result.lossless.sent_pps == 180_000
    assert result.lossy_pps is None


def test_lossless_at_the_highest_rate_offered_is_sender_bound() -> None:
    model = _Model(capacity=1e9)
    result = find_lossless(model.measure, QUICK)
    assert model.offered == [100_000, 200_000, 300_000]
    assert result.sender_bound


def test_frames_that_arrive_after_the_sender_stopped_make_a_step_lossy() -> None:
    """A director buffering what it cannot forward loses nothing in a short step; its lossless
    rate is still its capacity."""
    model = _Model(capacity=120_000, buffered=250_000)
    result = find_lossless(model.measure, QUICK)
    step200 = model.measure(200_000)
    assert step200.loss == 0.0 and not QUICK.passes(step200)
    _check_bracket(QUICK, 120_000, _Model(capacity=120_000, buffered=250_000))
    assert result.lossless is not None and result.lossless.sent_pps <= 120_000


def test_confirm_offers_a_lossy_rate_once_more() -> None:
    hiccups = {100_000: 1}  # one pause of the machine during the first step at 100k

    def measure(rate: int) -> Step:
        lost = 5_000 if hiccups.get(rate) else 0
        if lost:
            hiccups[rate] -= 1
        if rate > 150_000:
            lost = rate - 150_000
        return Step(rate, rate, rate - lost, 1.0, 0.0)

    plan = SearchPlan(start=100_000, resolution_pps=10_000, resolution_fraction=0.05, confirm=True)
    result = find_lossless(measure, plan)
    assert [s.offered_pps for s in result.steps][:3] == [100_000, 100_000, 200_000]
    assert result.lossless is not None and result.lossless.sent_pps >= 140_000
    unconfirmed = find_lossless(
        lambda rate: Step(rate, rate, rate - (5_000 if rate == 100_000 else 0), 1.0, 0.0),
        QUICK,
    )
    # Without confirmation the one bad step is taken for the limit: lossless just below it.
    assert unconfirmed.lossless is not None and unconfirmed.lossless.sent_pps == 94_000


def test_cpu_arithmetic() -> None:
    assert cpu_us_per_packet(1.5, 300_000) == pytest.approx(5.0)
    assert one_core_pps(5.0) == 200_000
    assert one_core_pps(3.1) == 322_581
    assert cpu_us_per_packet(0.0, 1000) is None
    assert cpu_us_per_packet(1.0, 0) is None
    assert one_core_pps(None) is None


def test_a_step_divides_cpu_time_by_the_packets_handled_else_delivered() -> None:
    handled = Step(100_000, 100_000, 99_990, 1.0, cpu_seconds=0.5, handled=125_000)
    assert handled.cpu_us_per_packet == pytest.approx(4.0)
    delivered = Step(100_000, 100_000, 100_000, 1.0, cpu_seconds=0.5)
    assert delivered.cpu_us_per_packet == pytest.approx(5.0)
    kernel = Step(100_000, 100_000, 100_000, 1.0, cpu_seconds=0.0)
    assert kernel.cpu_us_per_packet is None


def test_summary_reports_cpu_at_the_lossless_step_or_at_the_best_delivered() -> None:
    ok = Step(100_000, 100_000, 100_000, 1.0, cpu_seconds=0.5, handled=100_000)
    bad = Step(200_000, 200_000, 150_000, 1.0, cpu_seconds=0.9, handled=150_000)
    summary = SweepResult(steps=[ok, bad], best=ok, lossy_pps=200_000).summary()
    assert summary["cpu_us_per_packet"] == 5.0
    assert summary["one_core_pps"] == 200_000
    assert summary["cpu_at_lossless"] is True
    assert summary["lossless_pps"] == 100_000 and summary["lossy_pps"] == 200_000
    lossy = SweepResult(steps=[bad], best=None, lossy_pps=200_000).summary()
    assert lossy["lossless_pps"] == 0
    assert lossy["cpu_us_per_packet"] == 6.0 and lossy["cpu_at_lossless"] is False
    assert lossy["one_core_pps"] == 166_667


def test_descendants_follow_the_parent_links() -> None:
    # pylvsd 10 -> workers 11, 12 (12 started a helper 13); 20 is someone else's.
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 12, 20: 1}
    assert sorted(descendants(10, parents)) == [10, 11, 12, 13]
    assert descendants(99, parents) == [99]  # gone: only itself (its stat reads then fail)
    assert sorted(tree_of([10, 11], parents)) == [10, 11, 12, 13]


def test_a_sender_falling_short_during_the_bisection_ends_it() -> None:
    """The sender manages 130k at most from the third step on (a busy machine): a bisection
    step at 150k cannot test 150k, and the same rate is not offered again and again."""
    calls: list[int] = []

    def measure(rate: int) -> Step:
        calls.append(rate)
        sent = rate if len(calls) <= 2 else min(rate, 130_000)
        lost = max(0, sent - 140_000)
        return Step(rate, sent, sent - lost, 1.0, 0.0)

    result = find_lossless(measure, QUICK)
    assert calls == [100_000, 200_000, 150_000]
    assert result.sender_bound
    assert result.lossless is not None and result.lossless.sent_pps == 130_000
    assert result.lossy_pps == 200_000


def test_a_lossy_step_below_the_lossless_rate_is_set_aside() -> None:
    steps = iter(
        [
            Step(100_000, 100_000, 100_000, 1.0, 0.0),  # lossless
            Step(200_000, 200_000, 150_000, 1.0, 0.0),  # lossy
            Step(150_000, 90_000, 80_000, 1.0, 0.0),  # sender short and lossy: contradicts
        ]
    )
    result = find_lossless(lambda rate: next(steps), QUICK)
    assert result.contradictions == 1
    assert result.lossy_pps == 200_000
    assert result.lossless is not None and result.lossless.sent_pps == 100_000


def test_a_step_that_received_more_than_was_sent_is_not_lossless() -> None:
    """Frames of an earlier step that arrived after its wait are no proof of this one."""
    assert QUICK.passes(Step(75_000, 75_000, 75_001, 1.0, 0.0))
    assert not QUICK.passes(Step(75_000, 75_000, 78_612, 1.0, 0.0))
    assert not QUICK.passes(Step(75_000, 75_000, 74_000, 1.0, 0.0))
