"""Power-of-two-choices scheduling (net/netfilter/ipvs/ip_vs_twos.c, kernel >= 6.5).

Two dests are drawn at random, each with probability proportional to its weight, and the one with
the smaller ``overhead / weight`` wins (cross-multiplied; ties keep the first draw). Draws are
``r in [0, total]`` with ``total`` the sum of eligible weights; walking the eligible dests and
subtracting weights, the first dest where ``r <= 0`` is the draw. (So ``r == 0`` lands on the
first dest, which is drawn with probability ``(w1 + 1) / (total + 1)``.)
"""

from __future__ import annotations

from pylvs.core.schedulers.base import Scheduler, register
from pylvs.core.service import Dest, Service

__all__ = ["TwoChoicesScheduler"]


@register
class TwoChoicesScheduler(Scheduler):
    name = "twos"

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        total = 0
        for dest in svc.dests:
            if not dest.overloaded and dest.weight > 0:
                total += dest.weight
        if total == 0:
            return None
        total += 1
        r1 = self.rng.randrange(total)
        r2 = self.rng.randrange(total)
        choice1: Dest | None = None
        choice2: Dest | None = None
        w1 = w2 = oh1 = oh2 = 0
        for dest in svc.dests:
            if dest.overloaded:
                continue
            w = dest.weight
            if w <= 0:
                continue
            r1 -= w
            r2 -= w
            if r1 <= 0 and choice1 is None:
                choice1, w1, oh1 = dest, w, dest.overhead
            if r2 <= 0 and choice2 is None:
                choice2, w2, oh2 = dest, w, dest.overhead
            if choice1 is not None and choice2 is not None:
                break
        # The walk always ends on a draw: r < total means r - (total - 1) <= 0 at the last dest.
        assert choice1 is not None and choice2 is not None
        if w2 * oh1 > w1 * oh2:
            return choice2
        return choice1
