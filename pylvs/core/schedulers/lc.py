"""Least-connection scheduling (net/netfilter/ipvs/ip_vs_lc.c).

The eligible dest with the smallest overhead (``activeconns * 256 + inactconns``) wins; weight
only decides eligibility. The comparison is a strict ``<``, so ties go to the earlier dest.
"""

from __future__ import annotations

from pylvs.core.schedulers.base import Scheduler, register
from pylvs.core.service import Dest, Service

__all__ = ["LeastConnectionScheduler"]


@register
class LeastConnectionScheduler(Scheduler):
    name = "lc"

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        least: Dest | None = None
        loh = 0
        for dest in svc.dests:
            if dest.overloaded or dest.weight <= 0:
                continue
            doh = dest.overhead
            if least is None or doh < loh:
                least = dest
                loh = doh
        return least
