"""Heartbeat's ping nodes (``ping host...``, ``ping_group name host...``), sans I/O.

A ping node is a pseudo-node of the cluster that stands for the network: heartbeat pings it
every ``keepalive`` and calls it ``ping`` (up) while echo replies come, ``dead`` after
``deadping`` without one. A ping group is up while any of its hosts answers (``ping_group.c``).

What pylvs does with them (heartbeat itself leaves it to its ``ipfail`` client): a node that
reaches no ping node does not take over a silent peer's resources (it may be the one cut off),
and a node that reaches fewer ping nodes than its peer says it does gives its resources to the
peer (``hb_standby``), as ipfail does.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from pylvs.core.checksum import checksum

__all__ = ["ICMP_IDENT", "PingEvent", "PingTracker", "echo_request", "parse_echo_reply"]

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
ICMP_IDENT = 0x6862  # "hb": pylvs's heartbeat echo requests
PAYLOAD = b"pylvs-heartbeat-ping"


def echo_request(seq: int) -> bytes:
    """An ICMP echo request (no IP header: a raw ICMP socket adds it)."""
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ICMP_IDENT, seq & 0xFFFF)
    csum = checksum(header + PAYLOAD)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, csum, ICMP_IDENT, seq & 0xFFFF) + PAYLOAD


def parse_echo_reply(packet: bytes) -> bool:
    """Whether an IPv4 packet from a raw ICMP socket is a reply to our echo requests."""
    if len(packet) < 20:
        return False
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + 8:
        return False
    kind, _code, _csum, ident, _seq = struct.unpack_from("!BBHHH", packet, ihl)
    return bool(kind == ICMP_ECHO_REPLY and ident == ICMP_IDENT)


@dataclass(frozen=True)
class PingEvent:
    """A ping node changed: ``ping`` (up) or ``dead``."""

    node: str
    status: str


@dataclass
class _PingNode:
    name: str
    hosts: tuple[str, ...]
    status: str = "dead"
    last: float | None = None


@dataclass
class PingTracker:
    """The ping nodes of ha.cf as ``(name, hosts)``; ``deadping`` in seconds."""

    nodes: Sequence[tuple[str, tuple[str, ...]]]
    deadping: float
    started: float = 0.0
    _nodes: dict[str, _PingNode] = field(default_factory=dict)
    _by_host: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, hosts in self.nodes:
            self._nodes[name] = _PingNode(name, hosts)
            for host in hosts:
                self._by_host.setdefault(host, []).append(name)

    @property
    def configured(self) -> bool:
        return bool(self._nodes)

    def hosts(self) -> list[str]:
        return sorted(self._by_host)

    def reply(self, host: str, now: float) -> list[PingEvent]:
        events = []
        for name in self._by_host.get(host, []):
            node = self._nodes[name]
            node.last = now
            if node.status != "ping":
                node.status = "ping"
                events.append(PingEvent(name, "ping"))
        return events

    def tick(self, now: float) -> list[PingEvent]:
        events = []
        for node in self._nodes.values():
            last = node.last if node.last is not None else self.started
            if node.status == "ping" and now >= last + self.deadping:
                node.status = "dead"
                events.append(PingEvent(node.name, "dead"))
        return events

    def deadline(self) -> float | None:
        times = [
            n.last + self.deadping
            for n in self._nodes.values()
            if n.status == "ping" and n.last is not None
        ]
        return min(times) if times else None

    def last_reply(self) -> float | None:
        """When the latest echo reply of any ping node came."""
        times = [n.last for n in self._nodes.values() if n.last is not None]
        return max(times) if times else None

    def up(self) -> int:
        """How many ping nodes answer."""
        return sum(1 for n in self._nodes.values() if n.status == "ping")

    def status(self, name: str) -> str:
        node = self._nodes.get(name)
        return node.status if node is not None else "unknown"

    def names(self) -> list[str]:
        return list(self._nodes)
