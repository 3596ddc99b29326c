"""Weighted failover scheduling (net/netfilter/ipvs/ip_vs_fo.c).

Every new connection goes to the eligible dest with the highest weight; the strict ``>`` keeps
the earliest of equal weights. Lowering a weight (or a health check quiescing the dest) fails over
to the next.
"""

from __future__ import annotations

from pylvs.core.schedulers.base import Scheduler, register
from pylvs.core.service import Dest, Service

__all__ = ["WeightedFailoverScheduler"]


@register
class WeightedFailoverScheduler(Scheduler):
    name = "fo"

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        best: Dest | None = None
        hw = 0
        for dest in svc.dests:
            if not dest.overloaded and dest.weight > hw:
                best = dest
                hw = dest.weight
        return best
