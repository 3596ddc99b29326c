"""Shortest expected delay scheduling (net/netfilter/ipvs/ip_vs_sed.c).

As wlc, but the overhead is ``activeconns + 1``: the expected delay of a new connection on a dest
that serves its active connections at a rate proportional to its weight. Inactive connections do
not count. Cross-multiplied with a strict ``>``, ties to the earlier dest.
"""

from __future__ import annotations

from pylvs.core.schedulers.base import Scheduler, register
from pylvs.core.service import Dest, Service

__all__ = ["ShortestExpectedDelayScheduler"]


@register
class ShortestExpectedDelayScheduler(Scheduler):
    name = "sed"

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        it = iter(svc.dests)
        least: Dest | None = None
        for dest in it:
            if not dest.overloaded and dest.weight > 0:
                least = dest
                break
        if least is None:
            return None
        loh = least.activeconns + 1
        lw = least.weight
        for dest in it:
            if dest.overloaded:
                continue
            doh = dest.activeconns + 1
            if loh * dest.weight > doh * lw:
                least = dest
                loh = doh
                lw = dest.weight
        return least
