"""Locality-based least-connection scheduling (net/netfilter/ipvs/ip_vs_lblc.c).

For cache clusters: requests for one destination address should reach the same cache server.
The table maps the packet's destination address to a dest::

    if table[daddr] exists, its dest is available with weight > 0, and it is not
       "overloaded" (activeconns > weight while some dest has activeconns * 2 < weight):
        use it
    else:
        choose by wlc over the service and (re)bind table[daddr] to that dest

A hit refreshes the entry's ``lastuse``; the garbage collector is described in
:mod:`pylvs.core.schedulers.locality`. The cached dest is not checked for the threshold
OVERLOAD flag (only wlc's fallback is): that is how ip_vs_lblc.c behaves. Deleted dests are
recognised by ``available`` being false, as IPVS clears IP_VS_DEST_F_AVAILABLE on deletion.
"""

from __future__ import annotations

from pylvs.core.compat import slotted_dataclass
from pylvs.core.schedulers.base import register
from pylvs.core.schedulers.locality import LocalityEntry, LocalityScheduler
from pylvs.core.schedulers.wlc import weighted_least_connection
from pylvs.core.service import Dest, Service

__all__ = ["LblcEntry", "LocalityLeastConnectionScheduler", "locality_overloaded"]


def locality_overloaded(dest: Dest, svc: Service) -> bool:
    """lblc/lblcr's own overload test: busier than its weight while another dest is half idle."""
    if dest.activeconns > dest.weight:
        return any(d.activeconns * 2 < d.weight for d in svc.dests)
    return False


@slotted_dataclass(eq=False)
class LblcEntry(LocalityEntry):
    dest: Dest


@register
class LocalityLeastConnectionScheduler(LocalityScheduler[LblcEntry]):
    name = "lblc"

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        self.expire(now)
        bucket = self.bucket_of(daddr)
        en = bucket.get(daddr)
        if en is not None:
            en.lastuse = now
            dest = en.dest
            if dest.available and dest.weight > 0 and not locality_overloaded(dest, svc):
                return dest
        chosen = weighted_least_connection(svc.dests)
        if chosen is None:
            return None
        if en is None or en.dest is not chosen:
            # ip_vs_lblc_new unlinks the old entry without decrementing tbl->entries and then
            # counts the new one: the kernel's counter grows by one on every rebinding, which
            # makes the size-triggered collection start earlier. Kept for fidelity.
            bucket[daddr] = LblcEntry(lastuse=now, dest=chosen)
            self.entries += 1
        return chosen
