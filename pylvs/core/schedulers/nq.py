"""Never-queue scheduling (net/netfilter/ipvs/ip_vs_nq.c).

The first eligible dest with no active connection is taken at once (an idle server beats a
faster busy one); without one, the choice is sed's: the smallest ``(activeconns + 1) / weight``,
cross-multiplied with a strict ``>`` so ties go to the earlier dest.
"""

from __future__ import annotations

from pylvs.core.schedulers.base import Scheduler, register
from pylvs.core.service import Dest, Service

__all__ = ["NeverQueueScheduler"]


@register
class NeverQueueScheduler(Scheduler):
    name = "nq"

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        least: Dest | None = None
        loh = 0
        lw = 0
        for dest in svc.dests:
            if dest.overloaded or dest.weight <= 0:
                continue
            if dest.activeconns == 0:
                return dest
            doh = dest.activeconns + 1
            if least is None or loh * dest.weight > doh * lw:
                least = dest
                loh = doh
                lw = dest.weight
        return least
