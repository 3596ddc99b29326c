"""Overflow-connection scheduling (net/netfilter/ipvs/ip_vs_ovf.c).

Connections go to the eligible dest with the highest weight until its active connections exceed
its weight; then they overflow to the next highest. A dest is eligible when its weight is
positive, it is not overloaded and ``activeconns <= weight``. Ties go to the earlier dest.
Only active connections count, so the scheduler suits TCP rather than UDP.
"""

from __future__ import annotations

from pylvs.core.schedulers.base import Scheduler, register
from pylvs.core.service import Dest, Service

__all__ = ["OverflowScheduler"]


@register
class OverflowScheduler(Scheduler):
    name = "ovf"

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        best: Dest | None = None
        hw = 0
        for dest in svc.dests:
            w = dest.weight
            if dest.overloaded or dest.activeconns > w or w <= 0:
                continue
            if best is None or w > hw:
                best = dest
                hw = w
        return best
