"""Round-robin scheduling (net/netfilter/ipvs/ip_vs_rr.c).

The cursor is the dest chosen last (``svc->sched_data``), or the list head before the first
choice. A decision scans forward from the dest after the cursor, wrapping around once, up to and
including the cursor itself, and takes the first dest with ``weight > 0`` that is not overloaded.

When the cursor's dest is deleted, IPVS (``ip_vs_rr_del_dest``) moves the cursor to the dest
before it, so the dest that followed the deleted one is next. :meth:`update` does the same from
a snapshot of the list as it was before the change.
"""

from __future__ import annotations

import random

from pylvs.core.schedulers.base import Scheduler, register
from pylvs.core.service import Dest, Service

__all__ = ["RoundRobinScheduler"]


@register
class RoundRobinScheduler(Scheduler):
    name = "rr"

    def __init__(self, svc: Service, rng: random.Random | None = None) -> None:
        # None stands for the list head.
        self.cursor: Dest | None = None
        self._snapshot: list[Dest] = []
        super().__init__(svc, rng)

    def update(self, svc: Service) -> None:
        cursor = self.cursor
        if cursor is not None and not any(d is cursor for d in svc.dests):
            # Step back through the old order to the nearest predecessor still present.
            present = {id(d) for d in svc.dests}
            old = self._snapshot
            pos = next((i for i, d in enumerate(old) if d is cursor), 0)
            self.cursor = None
            for i in range(pos - 1, -1, -1):
                if id(old[i]) in present:
                    self.cursor = old[i]
                    break
        self._snapshot = list(svc.dests)

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        dests = svc.dests
        n = len(dests)
        start = 0
        if self.cursor is not None:
            for i in range(n):
                if dests[i] is self.cursor:
                    start = i + 1
                    break
        # The dests after the cursor, then from the head up to the cursor itself.
        for k in range(n):
            dest = dests[(start + k) % n]
            if dest.weight > 0 and not dest.overloaded:
                self.cursor = dest
                return dest
        return None
