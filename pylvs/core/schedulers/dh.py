"""Destination hashing scheduling (net/netfilter/ipvs/ip_vs_dh.c).

A 256-bucket table (``CONFIG_IP_VS_DH_TAB_BITS = 8``) is filled round-robin over the dest list,
one bucket per dest whatever its weight, and rebuilt on every dest change. A decision looks up
``hash_32(daddr_fold, 8)`` with the packet's destination address; a dest there that is not
available, quiesced or overloaded means no destination: dh has no fallback (a cache cluster
pairs it with the bypass path instead).
"""

from __future__ import annotations

from pylvs.core.schedulers.base import Scheduler, register
from pylvs.core.schedulers.hashing import addr_fold, hash_32
from pylvs.core.service import Dest, Service

__all__ = ["DH_TAB_BITS", "DH_TAB_SIZE", "DestinationHashingScheduler"]

DH_TAB_BITS = 8
DH_TAB_SIZE = 1 << DH_TAB_BITS


@register
class DestinationHashingScheduler(Scheduler):
    name = "dh"

    buckets: list[Dest | None]

    def update(self, svc: Service) -> None:
        dests = svc.dests
        if not dests:
            self.buckets = [None] * DH_TAB_SIZE
            return
        n = len(dests)
        self.buckets = [dests[i % n] for i in range(DH_TAB_SIZE)]

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        dest = self.buckets[hash_32(addr_fold(svc.af, daddr), DH_TAB_BITS)]
        if dest is None or not dest.available or dest.weight <= 0 or dest.overloaded:
            return None
        return dest
