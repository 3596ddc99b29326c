"""The table and garbage collector shared by lblc and lblcr (ip_vs_lblc.c, ip_vs_lblcr.c).

Entries are keyed by the packet's destination address and hashed into 1024 buckets
(``CONFIG_IP_VS_LBLC_TAB_BITS = 10``) with ``hash_32(daddr_fold, 10)``. A periodic timer runs every
60 s (``CHECK_EXPIRE_INTERVAL``):

- every 30th run (``COUNT_FOR_FULL_EXPIRATION``, about half an hour) is a full check that drops
  every entry unused for ``expiration`` seconds (the ``lblc_expiration`` / ``lblcr_expiration``
  sysctl, default 24 h);
- otherwise, when the table holds more than ``16 * 1024`` entries, a partial collection walks the
  buckets from a rover and drops entries unused for 6 minutes (``ENTRY_TIMEOUT``) until
  ``(entries - max) * 4/3`` (capped at ``max / 2``) are gone; a run that collects does not
  advance the counter towards the next full check.

The core has no timers: the timer is emulated from the clock passed to ``schedule`` and
``expire``. The first time seen arms it; runs that fell due since are played in order.
"""

from __future__ import annotations

import random
from typing import Generic, TypeVar

from pylvs.core.compat import slotted_dataclass
from pylvs.core.schedulers.base import Scheduler
from pylvs.core.schedulers.hashing import addr_fold, hash_32
from pylvs.core.service import Service

__all__ = [
    "CHECK_EXPIRE_INTERVAL",
    "COUNT_FOR_FULL_EXPIRATION",
    "DEFAULT_EXPIRATION",
    "ENTRY_TIMEOUT",
    "TAB_BITS",
    "TAB_SIZE",
    "LocalityEntry",
    "LocalityScheduler",
]

CHECK_EXPIRE_INTERVAL = 60.0
ENTRY_TIMEOUT = 6 * 60.0
DEFAULT_EXPIRATION = 24 * 60 * 60.0
COUNT_FOR_FULL_EXPIRATION = 30
TAB_BITS = 10
TAB_SIZE = 1 << TAB_BITS
_TAB_MASK = TAB_SIZE - 1
_FULL_PERIOD = COUNT_FOR_FULL_EXPIRATION * CHECK_EXPIRE_INTERVAL


@slotted_dataclass(eq=False)
class LocalityEntry:
    """What every lblc/lblcr entry has: the time it was last used."""

    lastuse: float


E = TypeVar("E", bound=LocalityEntry)


class LocalityScheduler(Scheduler, Generic[E]):
    """Base of lblc and lblcr: the bucket table, its entry counter and the emulated GC timer."""

    def __init__(self, svc: Service, rng: random.Random | None = None) -> None:
        self.af = svc.af
        self.buckets: list[dict[int, E]] = [{} for _ in range(TAB_SIZE)]
        # tbl->entries; see LblcScheduler for the one place it differs from the real count.
        self.entries = 0
        self.max_size = TAB_SIZE * 16
        self.rover = 0
        self.counter = 1
        self.expiration = DEFAULT_EXPIRATION
        self.next_check: float | None = None
        super().__init__(svc, rng)

    def size(self) -> int:
        """The number of entries actually in the table (``entries`` is the kernel's counter)."""
        return sum(len(b) for b in self.buckets)

    def bucket_of(self, daddr: int) -> dict[int, E]:
        return self.buckets[hash_32(addr_fold(self.af, daddr), TAB_BITS)]

    def get(self, daddr: int) -> E | None:
        return self.bucket_of(daddr).get(daddr)

    def expire(self, now: float) -> None:
        """Play the periodic GC runs that are due at ``now``."""
        if self.next_check is None:
            self.next_check = now + CHECK_EXPIRE_INTERVAL
            return
        while self.next_check <= now:
            t = self.next_check
            if self.counter % COUNT_FOR_FULL_EXPIRATION == 0:
                if self.entries <= self.max_size:
                    # Nothing but counting runs lie between here and the last full check due
                    # by ``now``, and that one drops a superset of what this one would.
                    t += ((now - t) // _FULL_PERIOD) * _FULL_PERIOD
                self._full_check(t)
                self.counter = 1
                self.next_check = t + CHECK_EXPIRE_INTERVAL
            elif self.entries <= self.max_size:
                # Runs that only count: jump to the next full check, or to ``now``.
                due = int((now - t) // CHECK_EXPIRE_INTERVAL) + 1
                to_full = COUNT_FOR_FULL_EXPIRATION - self.counter % COUNT_FOR_FULL_EXPIRATION
                step = min(due, to_full)
                self.counter += step
                self.next_check = t + step * CHECK_EXPIRE_INTERVAL
            else:
                self._partial_check(t)
                self.next_check = t + CHECK_EXPIRE_INTERVAL

    def _full_check(self, now: float) -> None:
        # Every bucket is visited once, so the rover ends where it started.
        limit = self.expiration
        for bucket in self.buckets:
            stale = [k for k, en in bucket.items() if now >= en.lastuse + limit]
            for k in stale:
                del bucket[k]
                self.entries -= 1

    def _partial_check(self, now: float) -> None:
        goal = (self.entries - self.max_size) * 4 // 3
        goal = min(goal, self.max_size // 2)
        j = self.rover
        for _ in range(TAB_SIZE):
            j = (j + 1) & _TAB_MASK
            bucket = self.buckets[j]
            stale = [k for k, en in bucket.items() if now >= en.lastuse + ENTRY_TIMEOUT]
            for k in stale:
                del bucket[k]
                self.entries -= 1
                goal -= 1
            if goal <= 0:
                break
        self.rover = j
