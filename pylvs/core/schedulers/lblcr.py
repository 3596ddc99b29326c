"""Locality-based least-connection with replication (net/netfilter/ipvs/ip_vs_lblcr.c).

Like lblc, but a destination address maps to a *set* of dests, so a popular address can be
served by several caches::

    if table[daddr] exists:
        n = weighted least-connection member of the set (available, weight > 0, not OVERLOAD)
        if the set has more than one member and was not modified for ``expiration`` seconds:
            drop its weighted most-loaded member
        if n is None or n is "overloaded" (lblc's test): n = wlc over the service; add n to the set
    else:
        n = wlc over the service; table[daddr] = {n}

New members go to the front of the set (``list_add_rcu``), which decides ties. Adding or removing
a member sets the set's ``lastmod``; any hit sets the entry's ``lastuse``. The dest chosen from
the set is used even when the pruning step just removed it, as in the kernel.
"""

from __future__ import annotations

from dataclasses import field

from pylvs.core.compat import slotted_dataclass
from pylvs.core.schedulers.base import register
from pylvs.core.schedulers.lblc import locality_overloaded
from pylvs.core.schedulers.locality import LocalityEntry, LocalityScheduler
from pylvs.core.schedulers.wlc import weighted_least_connection
from pylvs.core.service import Dest, Service

__all__ = ["LblcrEntry", "ReplicatedLocalityScheduler", "dest_set_max", "dest_set_min"]


@slotted_dataclass(eq=False)
class LblcrEntry(LocalityEntry):
    lastmod: float
    dests: list[Dest] = field(default_factory=list)

    def insert(self, dest: Dest, now: float) -> None:
        if any(d is dest for d in self.dests):
            return
        self.dests.insert(0, dest)
        self.lastmod = now

    def erase(self, dest: Dest, now: float) -> None:
        for i, d in enumerate(self.dests):
            if d is dest:
                del self.dests[i]
                self.lastmod = now
                return


def dest_set_min(dests: list[Dest]) -> Dest | None:
    """ip_vs_dest_set_min: the weighted least-connection usable member."""
    it = iter(dests)
    least: Dest | None = None
    for dest in it:
        if dest.overloaded:
            continue
        if dest.weight > 0 and dest.available:
            least = dest
            break
    if least is None:
        return None
    loh = least.overhead
    for dest in it:
        if dest.overloaded:
            continue
        doh = dest.overhead
        if loh * dest.weight > doh * least.weight and dest.available:
            least = dest
            loh = doh
    return least


def dest_set_max(dests: list[Dest]) -> Dest | None:
    """ip_vs_dest_set_max: the weighted most-loaded member with weight > 0 (strict ``<``)."""
    it = iter(dests)
    most: Dest | None = None
    for dest in it:
        if dest.weight > 0:
            most = dest
            break
    if most is None:
        return None
    moh = most.overhead
    for dest in it:
        doh = dest.overhead
        if moh * dest.weight < doh * most.weight and dest.weight > 0:
            most = dest
            moh = doh
    return most


@register
class ReplicatedLocalityScheduler(LocalityScheduler[LblcrEntry]):
    name = "lblcr"

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        self.expire(now)
        bucket = self.bucket_of(daddr)
        en = bucket.get(daddr)
        if en is not None:
            en.lastuse = now
            dest = dest_set_min(en.dests)
            if len(en.dests) > 1 and now > en.lastmod + self.expiration:
                most = dest_set_max(en.dests)
                if most is not None:
                    en.erase(most, now)
            if dest is not None and not locality_overloaded(dest, svc):
                return dest
            dest = weighted_least_connection(svc.dests)
            if dest is None:
                return None
            en.insert(dest, now)
            return dest
        dest = weighted_least_connection(svc.dests)
        if dest is None:
            return None
        bucket[daddr] = LblcrEntry(lastuse=now, lastmod=now, dests=[dest])
        self.entries += 1
        return dest
