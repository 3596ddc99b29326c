"""Source hashing scheduling (net/netfilter/ipvs/ip_vs_sh.c).

A 256-bucket table (``CONFIG_IP_VS_SH_TAB_BITS = 8``) is filled round-robin over the dest list,
each dest taking ``weight`` consecutive buckets per turn (a weight-0 dest still takes one, as the
kernel advances on ``++count >= weight``), and rebuilt on every dest change. A decision looks up
``(offset + hash_32(port + caddr_fold, 8)) & 255`` with offset 0.

Service flags (``ipvsadm -b``):
- ``sh-port`` (``SCHED2``): hash the client port too, instead of 0. The caller passes
  ``cport = 0`` for protocols without ports, as ``ip_vs_sh_get_port`` only reads TCP, UDP and SCTP.
- ``sh-fallback`` (``SCHED1``): when the chosen dest is quiesced or overloaded, rehash with
  offsets ``(ihash + k) % 256`` for k = 0..255 and take the first usable dest; without it, such a
  dest means no destination.

Older kernels hashed with ``(addr * 2654435761) & 255`` (the low bits of the product); pylvs
follows the current ``hash_32``, which takes the high bits.
"""

from __future__ import annotations

from pylvs.core.schedulers.base import Scheduler, register
from pylvs.core.schedulers.hashing import addr_fold, hash_32
from pylvs.core.service import Dest, Service, ServiceFlags

__all__ = ["SH_FALLBACK", "SH_PORT", "SH_TAB_BITS", "SH_TAB_SIZE", "SourceHashingScheduler"]

SH_TAB_BITS = 8
SH_TAB_SIZE = 1 << SH_TAB_BITS
_SH_TAB_MASK = SH_TAB_SIZE - 1

SH_FALLBACK = ServiceFlags.SCHED1
SH_PORT = ServiceFlags.SCHED2


def _unavailable(dest: Dest) -> bool:
    return dest.weight <= 0 or dest.overloaded


@register
class SourceHashingScheduler(Scheduler):
    name = "sh"

    buckets: list[Dest | None]

    def update(self, svc: Service) -> None:
        dests = svc.dests
        if not dests:
            self.buckets = [None] * SH_TAB_SIZE
            return
        buckets: list[Dest | None] = []
        i = 0
        count = 0
        for _ in range(SH_TAB_SIZE):
            dest = dests[i]
            buckets.append(dest)
            count += 1
            if count >= dest.weight:
                i = (i + 1) % len(dests)
                count = 0
        self.buckets = buckets

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        port = cport if svc.flags & SH_PORT else 0
        key = (port + addr_fold(svc.af, caddr)) & 0xFFFFFFFF
        ihash = hash_32(key, SH_TAB_BITS)
        dest = self.buckets[ihash]
        if dest is None:
            return None
        if not _unavailable(dest):
            return dest
        if not svc.flags & SH_FALLBACK:
            return None
        # Walk the table deterministically, starting from the original hash (ip_vs_sh_get_fallback).
        for offset in range(SH_TAB_SIZE):
            roffset = (offset + ihash) % SH_TAB_SIZE
            dest = self.buckets[(roffset + ihash) & _SH_TAB_MASK]
            if dest is None:
                return None
            if not _unavailable(dest):
                return dest
        return None
