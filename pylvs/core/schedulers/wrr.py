"""Weighted round-robin scheduling (net/netfilter/ipvs/ip_vs_wrr.c).

Interleaved WRR: ``cw`` is the weight a dest needs in the current pass, ``mw`` the largest weight
less ``di - 1``, and ``di`` the gcd of all positive weights (1 when there are none). A decision
scans forward from ``cl`` (the dest chosen last, -1 for the list head) for a dest that is not
overloaded with ``weight >= cw``; each time the scan passes the end of the list, ``cw`` drops by
``di``, and below 1 it starts again at ``mw``. Weights 4, 3, 2 give A A B A B C A B C.

On any dest change (add, delete, edit) IPVS resets ``cl`` to the head, recomputes ``di`` and
``mw``, and keeps ``cw`` on a valid step: ``cw = mw`` if ``cw > mw`` or ``cw == 0``, else
``cw = (cw // di) * di + 1`` when ``di > 1`` (``ip_vs_wrr_dest_changed``).

Lowering ``mw`` by ``di - 1`` makes the last pass run at ``cw == 1``, so a dest whose weight fell
below ``di`` since the last change is still found when it is the only one left.
"""

from __future__ import annotations

import math
import random

from pylvs.core.schedulers.base import Scheduler, register
from pylvs.core.service import Dest, Service

__all__ = ["WeightedRoundRobinScheduler"]


@register
class WeightedRoundRobinScheduler(Scheduler):
    name = "wrr"

    def __init__(self, svc: Service, rng: random.Random | None = None) -> None:
        self.cl = -1
        self.cw = 0
        self.mw = 0
        self.di = 1
        super().__init__(svc, rng)

    def update(self, svc: Service) -> None:
        g = 0
        for dest in svc.dests:
            if dest.weight > 0:
                g = math.gcd(g, dest.weight)
        self.di = g or 1
        self.mw = max((d.weight for d in svc.dests), default=0) - (self.di - 1)
        self.cl = -1
        if self.cw > self.mw or self.cw == 0:
            self.cw = self.mw
        elif self.di > 1:
            self.cw = (self.cw // self.di) * self.di + 1

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        if self.mw <= 0:
            return None
        dests = svc.dests
        last = self.cl
        pos = last
        stop = -2  # no stop dest until the final pass (ip_vs_wrr_schedule)
        last_pass = False
        restarted = False
        while True:
            for i in range(pos + 1, len(dests)):
                dest = dests[i]
                if not dest.overloaded and dest.weight >= self.cw:
                    self.cl = i
                    return dest
                if i == stop:
                    # Every dest was checked at weight >= 1: all are overloaded or quiesced.
                    self.cl = i
                    return None
            pos = -1
            self.cw -= self.di
            if self.cw <= 0:
                self.cw = self.mw
                if last_pass or last == -1:
                    self.cl = -1
                    return None
                restarted = True
            last_pass = self.cw <= self.di
            if last_pass and restarted and last != -1:
                # The first pass at weight >= 1 covered only the dests after ``last``; this
                # one covers the rest, up to and including ``last``.
                stop = last
