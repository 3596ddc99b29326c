"""The lossless-rate search and the CPU arithmetic of the packet-rate benchmark: pure functions.

:func:`find_lossless` drives a ``measure(rate) -> step`` callback (one paced step at ``rate``
frames per second; :func:`pylvs.bench.pps.sweep` passes one) and decides which rate to offer
next:

1. **Bracket**: offer ``start``, then double (up to ``max_rate``) until a step is lossy: it lost
   ``threshold`` or more of its frames, or the director had not kept up (see
   :data:`MAX_BACKLOG_SECONDS`). A first step that already loses is halved instead, down to
   ``min_rate``, until one is lossless.
2. **Bisect** between the highest lossless and the lowest lossy *sent* rate until they are at most
   ``max(resolution_pps, resolution_fraction * lossless)`` apart. The lossless figure is then
   within that resolution of the rate where losses start.

Rates are what the sender really sent, not what it was asked for: when a lossless step falls more
than :data:`SENDER_SHORTFALL` short of its offered rate, the sender (which shares the machine)
has reached its own limit there; the search then offers ``max_rate`` once to see how far the
sender goes, and stops: the result is marked ``sender_bound`` (the director lost nothing at the
fastest rate the sender could offer, so its own limit is higher). A bisection step the sender
cannot keep up with ends the search the same way (no later step could test that rate).
A lossy step whose sent rate is not above the best lossless one (or the reverse) contradicts the
others; it is counted in ``contradictions`` and does not move the bracket.

With ``confirm`` a lossy step is offered once more at the same rate, and the rate counts as lossy
only when both steps lose: a single pause of the (shared) machine then does not end the search
below the director's real limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

__all__ = [
    "LOSS_THRESHOLD",
    "MAX_BACKLOG_SECONDS",
    "SENDER_SHORTFALL",
    "Search",
    "SearchPlan",
    "cpu_us_per_packet",
    "descendants",
    "find_lossless",
    "one_core_pps",
    "tree_of",
]

LOSS_THRESHOLD = 0.001  # a step is lossless when under 0.1% of its frames are missing
SENDER_SHORTFALL = 0.95  # a step whose sender sent under 95% of the offered rate: sender-bound
# A director that falls behind first fills its buffers (an AF_PACKET ring holds about half a
# second of frames, the NFQUEUE 16384 packets) and loses frames only when they are full: a short
# step at a rate it cannot sustain then looks lossless, and the frames arrive after the sender
# stopped. A step whose last frames arrive more than this long after the sender stopped counts as
# lossy (the director did not keep up), whatever its loss.
MAX_BACKLOG_SECONDS = 0.01
_RATE_QUANTUM = 1000  # offered rates are rounded to 1000 frames/s
_MAX_STEPS = 16  # a bound on one search, whatever the measurements say


class Measured(Protocol):
    """What the search reads of a step (:class:`pylvs.bench.pps.Step`)."""

    @property
    def offered_pps(self) -> int: ...

    @property
    def sent_pps(self) -> float: ...

    @property
    def loss(self) -> float: ...

    @property
    def backlog_seconds(self) -> float: ...


S = TypeVar("S", bound=Measured)


@dataclass(frozen=True)
class SearchPlan:
    start: int = 50_000
    max_rate: int = 300_000  # about what the paced sender reaches here
    min_rate: int = 5_000
    resolution_pps: int = 10_000
    resolution_fraction: float = 0.05
    threshold: float = LOSS_THRESHOLD
    max_backlog_seconds: float = MAX_BACKLOG_SECONDS
    confirm: bool = False  # offer a lossy rate twice; lossy only if both steps lose

    def passes(self, step: Measured) -> bool:
        """Lossless: under ``threshold`` lost, and the director had kept up with the sender.
        A step that received ``threshold`` more than was sent counted frames of an earlier step
        (the director had paused longer than the wait after that step): it proves nothing."""
        return (
            -self.threshold < step.loss < self.threshold
            and step.backlog_seconds <= self.max_backlog_seconds
        )

    def resolution(self, lossless_pps: float) -> float:
        """How far apart the lossless and the lossy rate may be when the search stops."""
        return max(float(self.resolution_pps), self.resolution_fraction * lossless_pps)

    def describe(self) -> str:
        confirm = (
            "; a lossy rate is offered twice and counts only if both steps are lossy"
            if self.confirm
            else ""
        )
        return (
            f"lossless = under {self.threshold:.1%} of the frames lost and at most "
            f"{self.max_backlog_seconds * 1000:g} ms of frames still arriving after the sender "
            f"stopped; rates from {self.start} doubling up to {self.max_rate} until a step is "
            "lossy, then bisection until the lossless and the lossy rate are at most "
            f"max({self.resolution_pps} pps, {self.resolution_fraction * 100:g}% of the lossless "
            f"rate) apart{confirm}"
        )


@dataclass
class Search(Generic[S]):
    steps: list[S] = field(default_factory=list)
    lossless: S | None = None  # the step with the highest sent rate under the threshold
    lossy_pps: float | None = None  # the lowest sent rate found lossy (None: none was)
    sender_bound: bool = False  # lossless as fast as the sender could send
    contradictions: int = 0  # lossy steps at or below a lossless rate, or the reverse

    @property
    def gap_pps(self) -> float | None:
        """How far the lossless figure is from the lowest lossy rate (the search's resolution)."""
        if self.lossless is None or self.lossy_pps is None:
            return None
        return self.lossy_pps - self.lossless.sent_pps


def _quantize(rate: float) -> int:
    return max(_RATE_QUANTUM, round(rate / _RATE_QUANTUM) * _RATE_QUANTUM)


def find_lossless(measure: Callable[[int], S], plan: SearchPlan) -> Search[S]:
    """Search the highest lossless rate with ``measure`` (see the module's docstring)."""
    result: Search[S] = Search()

    def lossy(rate: int) -> S | None:
        """Offer ``rate``; returns the (last) step, or records it as lossless and returns None."""
        step = measure(rate)
        result.steps.append(step)
        if not plan.passes(step) and plan.confirm and len(result.steps) < _MAX_STEPS:
            step = measure(rate)
            result.steps.append(step)
        best = result.lossless
        if plan.passes(step):
            if result.lossy_pps is not None and step.sent_pps >= result.lossy_pps:
                result.contradictions += 1
            if best is None or step.sent_pps > best.sent_pps:
                result.lossless = step
            return None
        if best is not None and step.sent_pps <= best.sent_pps:
            result.contradictions += 1
        elif result.lossy_pps is None or step.sent_pps < result.lossy_pps:
            result.lossy_pps = step.sent_pps
        return step

    def short(step: S) -> bool:
        return step.sent_pps < step.offered_pps * SENDER_SHORTFALL

    # 1. Bracket the limit.
    rate = plan.start
    while len(result.steps) < _MAX_STEPS:
        step = lossy(rate)
        if step is None:
            if result.lossy_pps is not None:
                break  # a halved rate was lossless: bracketed
            last = result.steps[-1]
            if short(last):
                if rate >= plan.max_rate:
                    result.sender_bound = True
                    break
                rate = plan.max_rate  # how far does the sender go?
                continue
            if rate >= plan.max_rate:
                result.sender_bound = True  # lossless at the highest rate the bench offers
                break
            rate = min(rate * 2, plan.max_rate)
        else:
            if result.lossless is not None:
                # Lossy, but not above the lossless rate: the sender fell short of this rate.
                result.sender_bound = result.lossy_pps is None
                break
            if rate <= plan.min_rate:
                break
            rate = max(plan.min_rate, rate // 2)
    # 2. Bisect between the highest lossless and the lowest lossy sent rate.
    tried: set[int] = set()
    while (
        not result.sender_bound
        and result.lossless is not None
        and result.lossy_pps is not None
        and len(result.steps) < _MAX_STEPS
    ):
        lo, hi = result.lossless.sent_pps, result.lossy_pps
        if hi - lo <= plan.resolution(lo):
            break
        rate = _quantize((lo + hi) / 2)
        if rate <= lo or rate >= hi or rate in tried:
            break  # the rounding cannot split the interval further
        tried.add(rate)
        lossy(rate)
        if short(result.steps[-1]):
            # The sender could not offer this rate (the machine is shared): no step can test it.
            result.sender_bound = result.lossless is result.steps[-1] or result.sender_bound
            break
    return result


def cpu_us_per_packet(cpu_seconds: float, packets: int) -> float | None:
    """CPU microseconds per packet; None when nothing was measured."""
    if cpu_seconds <= 0 or packets <= 0:
        return None
    return cpu_seconds / packets * 1e6


def one_core_pps(cpu_us: float | None) -> int | None:
    """The packets per second one core could carry at ``cpu_us`` microseconds each."""
    if not cpu_us:
        return None
    return round(1e6 / cpu_us)


def descendants(root: int, parents: Mapping[int, int]) -> list[int]:
    """``root`` and every process below it, from a pid -> parent pid map (``/proc/*/stat``)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo: list[int] = [root]
    seen: set[int] = set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        found.append(pid)
        todo.extend(sorted(children.get(pid, ()), reverse=True))
    return found


def tree_of(roots: Iterable[int], parents: Mapping[int, int]) -> list[int]:
    """Every process of several roots' trees, each once."""
    out: list[int] = []
    for root in roots:
        out += [pid for pid in descendants(root, parents) if pid not in out]
    return out
