"""What pylvsd asks of a data-plane backend, and the one status every backend reports.

A backend takes packets off the wire, hands them to the engine and carries out its verdicts. The
daemon builds the engine (one :class:`pylvs.core.engine.Engine`, or a
:class:`pylvs.io.workers.EngineGroup` of worker processes) and gives it to the backend; the
backend is a component of the daemon's loop (:mod:`pylvs.loop`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pylvs.core.control import ServiceInfo, ServiceSpec

__all__ = ["Backend", "BackendError", "BackendStatus"]


class BackendError(Exception):
    """The backend cannot start or apply its rules; the message says why, for the operator."""


@dataclass
class BackendStatus:
    """Counters every backend keeps, under the same names; ``details`` has the backend's own
    (ring and queue statistics)."""

    backend: str
    handled: int = 0  # packets the engine decided on
    failures: int = 0  # packets a bug dropped (logged at a limited rate)
    sent: int = 0  # frames and packets pylvs sent itself
    dropped_unresolved: int = 0  # next hop's MAC unknown: dropped, the kernel resolves it
    dropped_no_route: int = 0  # no route to the next hop
    send_errors: int = 0  # the kernel refused a send
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Backend(Protocol):
    """The interface between pylvsd and a data plane (NFQUEUE, AF_PACKET)."""

    name: str
    # True when the kernel forwards what the engine rewrote (NFQUEUE): the director must let it
    # (ip_forward, accept_local while a masquerading real server exists).
    kernel_forwards: bool

    def open(self, close_in_children: Sequence[int] = ()) -> None:
        """Start: bind the queue or rings, install the (empty) rules. ``close_in_children``:
        descriptors a forked worker process must not keep (the control socket)."""

    def check_service(self, spec: ServiceSpec, op: str) -> None:
        """Refuse (IPVSError with ``limit``) a service this backend cannot serve."""

    def set_services(self, services: Sequence[ServiceInfo]) -> None:
        """Make the rules (and filters) match the configured services; BackendError if not."""

    def prepare_dest(self, addr: int) -> None:
        """A DR real server was added: resolve its next hop before its first packet."""

    def forget_hops(self) -> None:
        """Routes or neighbours changed: resolve next hops again."""

    # Component (pylvs.loop)
    def watch(self) -> Sequence[tuple[int, int]]: ...
    def deadline(self) -> float | None: ...
    def ready(self, fd: int, events: int, now: float) -> None: ...
    def due(self, now: float) -> None: ...
    def backend_status(self) -> BackendStatus: ...
    def status(self) -> dict[str, Any]: ...
    def close(self) -> None: ...
