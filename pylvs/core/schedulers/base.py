"""The scheduler interface shared by every IPVS algorithm, and the registry that names them.

Each algorithm lives in its own module (as IPVS keeps one ``ip_vs_<name>.c`` per scheduler) and
registers its class with :func:`register`. A scheduler instance belongs to one service; it keeps
only its own bookkeeping (a cursor, a lookup table) and never changes the dests it is given.

Rules common to all of them (ip_vs_sched.c and each ip_vs_<name>.c):
- a dest with ``weight == 0`` (quiescent) or ``overloaded`` is never chosen for a new connection;
- the dest list is walked in insertion order, and ties go to the earlier dest;
- when nothing can be chosen, ``schedule`` returns ``None`` (the caller answers with ICMP
  port unreachable, as ip_vs_leave does).
"""

from __future__ import annotations

import random
from typing import ClassVar

from pylvs.core.service import Dest, Service

__all__ = ["Scheduler", "SchedulerError", "available", "create", "register"]


class SchedulerError(ValueError):
    """Unknown scheduler name, or a configuration the algorithm cannot accept."""


class Scheduler:
    """Base class: one instance per virtual service."""

    name: ClassVar[str] = ""

    def __init__(self, svc: Service, rng: random.Random | None = None) -> None:
        self.rng = rng if rng is not None else random.Random()
        self.update(svc)

    def update(self, svc: Service) -> None:
        """Called after dests were added, removed or edited (IPVS add_dest/del_dest/upd_dest)."""

    def schedule(self, svc: Service, caddr: int, cport: int, daddr: int, now: float) -> Dest | None:
        """Choose the real server for a new connection.

        ``caddr``/``cport`` are the client's address and port, ``daddr`` the packet's destination
        address (the VIP, or the original destination for firewall-mark services), ``now`` the
        current time in seconds (used by schedulers that age their tables).
        """
        raise NotImplementedError

    def expire(self, now: float) -> None:
        """Periodic housekeeping (lblc/lblcr garbage collection); default: nothing to do."""


_REGISTRY: dict[str, type[Scheduler]] = {}


def register(cls: type[Scheduler]) -> type[Scheduler]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise SchedulerError(f"{cls.__qualname__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of all registered schedulers, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def create(name: str, svc: Service, rng: random.Random | None = None) -> Scheduler:
    """A new scheduler of algorithm ``name`` for ``svc``; SchedulerError if there is none."""
    _load_all()
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise SchedulerError(f"unknown scheduler {name!r}") from None
    return cls(svc, rng)


def _load_all() -> None:
    # Importing the package imports every algorithm module, each of which registers itself.
    import pylvs.core.schedulers  # noqa: F401
