"""Maglev hashing scheduling (net/netfilter/ipvs/ip_vs_mh.c; Eisenbud et al., NSDI 2016, 3.4).

Each dest gets a preference list of the ``M`` lookup slots (``M`` prime), defined by an offset
and a skip from two hashes of its address and port::

    offset = h1(dest) % M        skip = h2(dest) % (M - 1) + 1

Population runs round-robin over the dest list: each dest in turn claims ``turns`` slots, each
time the next free slot of its preference list, until all ``M`` slots are taken. ``turns`` is
``last_weight / gcd`` shifted right by ``rshift`` so that the heaviest dest needs at most
``2**TAB_BITS`` turns per round (at least 1 when ``last_weight`` is positive). Built from
``last_weight``, the table keeps the slots of a quiesced (weight 0) dest, so quiescing a server
moves no other client. A decision looks up slot ``h1(caddr) % M``.

The hash is the kernel's 64-bit ``hsiphash`` (SipHash-1-3, u32 result) of
``v = offset + port + addr_fold`` as a host-order u32, with the fixed keys of
``generate_hash_secret``. Service flags: ``mh-fallback`` (``SCHED1``) retries offsets
``(ihash + k) % M`` when the chosen dest is quiesced or overloaded; ``mh-port`` (``SCHED2``) hashes
the client port too (the caller passes 0 for protocols without ports).

``M`` is ``primes[CONFIG_IP_VS_MH_TAB_INDEX - 8]``; the default index 12 gives 4093 slots.
"""

from __future__ import annotations

import math
import random

from pylvs.core.schedulers.base import Scheduler, SchedulerError, register
from pylvs.core.schedulers.hashing import addr_fold
from pylvs.core.schedulers.siphash import hsiphash_u32
from pylvs.core.service import Dest, Service, ServiceFlags

__all__ = [
    "HASH1_KEY",
    "HASH2_KEY",
    "MH_FALLBACK",
    "MH_PORT",
    "MH_PRIMES",
    "MH_TAB_SIZE",
    "MaglevHashingScheduler",
]

# The table sizes IPVS offers, for CONFIG_IP_VS_MH_TAB_INDEX = 8 .. 17.
MH_PRIMES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)
MH_TAB_SIZE = 4093

MH_FALLBACK = ServiceFlags.SCHED1
MH_PORT = ServiceFlags.SCHED2

# generate_hash_secret(): the same two words in both halves of each key.
HASH1_KEY = (2654435761, 2654435761)
HASH2_KEY = (2654446892, 2654446892)


def _unavailable(dest: Dest) -> bool:
    return dest.weight <= 0 or dest.overloaded


@register
class MaglevHashingScheduler(Scheduler):
    name = "mh"

    lookup: list[Dest | None]

    def __init__(
        self, svc: Service, rng: random.Random | None = None, table_size: int = MH_TAB_SIZE
    ) -> None:
        if table_size not in MH_PRIMES:
            raise SchedulerError(f"mh table size must be one of {MH_PRIMES}, not {table_size}")
        if len(svc.dests) > table_size:
            raise SchedulerError(f"mh: {len(svc.dests)} dests do not fit {table_size} slots")
        self.table_size = table_size
        # IP_VS_MH_TAB_BITS = CONFIG_IP_VS_MH_TAB_INDEX / 2
        self.tab_bits = (MH_PRIMES.index(table_size) + 8) // 2
        self.gcd = 0
        self.rshift = 0
        self.lookup = [None] * table_size
        super().__init__(svc, rng)

    def _hashkey(self, af: int, addr: int, port: int, key: tuple[int, int], offset: int) -> int:
        return hsiphash_u32(key[0], key[1], offset + port + addr_fold(af, addr))

    def update(self, svc: Service) -> None:
        m = self.table_size
        dests = svc.dests
        if len(dests) > m:
            # ip_vs_mh_reassign refuses (-EINVAL) and the previous table stays in use.
            return
        g = 0
        maxw = 0
        for dest in dests:
            lw = dest.last_weight
            if lw > 0:
                g = math.gcd(g, lw)
            maxw = max(maxw, lw)
        self.gcd = g
        self.rshift = max((maxw // g).bit_length() - self.tab_bits, 0) if g >= 1 else 0
        if g < 1:
            # No dest ever had a weight: the table stays empty and every lookup fails.
            self.lookup = [None] * m
            return

        perm: list[int] = []
        skip: list[int] = []
        turns: list[int] = []
        for dest in dests:
            offset = self._hashkey(svc.af, dest.addr, dest.port, HASH1_KEY, 0) % m
            perm.append(offset)
            skip.append(self._hashkey(svc.af, dest.addr, dest.port, HASH2_KEY, 0) % (m - 1) + 1)
            t = (dest.last_weight // g) >> self.rshift
            turns.append(t if t else int(dest.last_weight != 0))

        lookup: list[Dest | None] = [None] * m
        taken = bytearray(m)
        n = 0
        while n < m:
            for i, dest in enumerate(dests):
                for _ in range(turns[i]):
                    c = perm[i]
                    while taken[c]:
                        c += skip[i]
                        if c >= m:
                            c -= m
                    perm[i] = c
                    taken[c] = 1
                    lookup[c] = dest
                    n += 1
                    if n == m:
                        break
                if n == m:
                    break
        self.lookup = lookup

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        m = self.table_size
        port = cport if svc.flags & MH_PORT else 0
        ihash = self._hashkey(svc.af, caddr, port, HASH1_KEY, 0) % m
        dest = self.lookup[ihash]
        if dest is None:
            return None
        if not _unavailable(dest):
            return dest
        if not svc.flags & MH_FALLBACK:
            return None
        # Loop around the table starting from the original slot (ip_vs_mh_get_fallback).
        for offset in range(m):
            roffset = (offset + ihash) % m
            dest = self.lookup[self._hashkey(svc.af, caddr, port, HASH1_KEY, roffset) % m]
            if dest is None:
                return None
            if not _unavailable(dest):
                return dest
        return None
