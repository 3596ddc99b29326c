"""Weighted least-connection scheduling (net/netfilter/ipvs/ip_vs_wlc.c), the ipvsadm default.

The dest with the smallest ``overhead / weight`` wins. IPVS avoids the division by comparing
``loh * dest.weight > doh * least.weight`` (equivalent to ``loh/lw > doh/dw`` for positive
weights). The first eligible dest starts as ``least``; later dests are only skipped when
overloaded, since a quiesced dest (weight 0) makes the left side 0 and can never win. The strict
``>`` sends ties to the earlier dest.
"""

from __future__ import annotations

from collections.abc import Iterable

from pylvs.core.schedulers.base import Scheduler, register
from pylvs.core.service import Dest, Service

__all__ = ["WeightedLeastConnectionScheduler", "weighted_least_connection"]


def weighted_least_connection(dests: Iterable[Dest]) -> Dest | None:
    """The WLC choice over ``dests``; also the fallback of lblc and lblcr."""
    it = iter(dests)
    least: Dest | None = None
    for dest in it:
        if not dest.overloaded and dest.weight > 0:
            least = dest
            break
    if least is None:
        return None
    loh = least.overhead
    lw = least.weight
    for dest in it:
        if dest.overloaded:
            continue
        doh = dest.overhead
        if loh * dest.weight > doh * lw:
            least = dest
            loh = doh
            lw = dest.weight
    return least


@register
class WeightedLeastConnectionScheduler(Scheduler):
    name = "wlc"

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        return weighted_least_connection(svc.dests)
