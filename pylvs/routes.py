"""Route tracking: the daemon follows rtnetlink, so a route that appears later is used at once.

A component of the daemon's loop (:mod:`pylvs.loop`). When the kernel reports a change of links,
addresses or routes, every real server's path (route source, MTU, or none) is resolved again
(:meth:`pylvs.director.Director.resolve_paths`) and the backend's next-hop cache is emptied; a
neighbour change only empties the cache. Changes come in bursts (an interface going up brings a
link, an address and several routes), so the work waits :data:`SETTLE` seconds after the first.
"""

from __future__ import annotations

import selectors
from collections.abc import Sequence
from typing import Any

from pylvs.director import Director
from pylvs.io import netcfg

__all__ = ["SETTLE", "RouteTracker"]

SETTLE = 0.05


class RouteTracker:
    name = "routes"

    def __init__(self, director: Director) -> None:
        self.director = director
        self.monitor = netcfg.RouteMonitor()
        self._due: float | None = None
        self._paths = False
        self._hops = False
        self.route_changes = 0
        self.neigh_changes = 0

    def watch(self) -> Sequence[tuple[int, int]]:
        return ((self.monitor.fileno(), selectors.EVENT_READ),)

    def deadline(self) -> float | None:
        return self._due

    def ready(self, fd: int, events: int, now: float) -> None:
        routing, neighbours = self.monitor.drain()
        if routing:
            self.route_changes += 1
            self._paths = True
        if neighbours:
            self.neigh_changes += 1
            self._hops = True
        if (routing or neighbours) and self._due is None:
            self._due = now + SETTLE

    def due(self, now: float) -> None:
        self._due = None
        paths, hops = self._paths, self._hops
        self._paths = self._hops = False
        if paths:
            self.director.resolve_paths()
        if paths or hops:
            self.director.backend.forget_hops()

    def status(self) -> dict[str, Any]:
        return {
            "route_changes": self.route_changes,
            "neigh_changes": self.neigh_changes,
            "unroutable": sorted(self.director.unroutable),
        }

    def close(self) -> None:
        self.monitor.close()
