"""Sending what the engine decided to send (NFQUEUE backend): Ethernet frames (DR) and IP packets
(TUN, ICMP errors).

DR (``ip_vs_dr_xmit``) puts the unchanged IP packet in a frame addressed to the real server's MAC
on the interface that routes to it; the MAC comes from :class:`pylvs.io.nexthop.NextHops` (the
kernel's neighbour table, resolved on demand).

Encapsulated (IPIP) packets and ICMP errors are complete IP packets and go out through a raw socket
with ``IP_HDRINCL`` (``IPPROTO_RAW``); the kernel routes them by their destination address.

IPv6 the same way: a DR frame for an IPv6 packet goes to the MAC neighbour discovery found
(EtherType 0x86DD), and complete IPv6 packets (IPv6-in-IPv6 or IPv4-in-IPv6 tunnels, ICMPv6
errors) leave through an ``AF_INET6`` ``IPPROTO_RAW`` socket, on which Linux implies the header
is included (``inet6_create`` sets ``hdrincl`` for it). The family is the packet's first nibble.

Send failures are counted and logged at a limited rate: they can happen once per packet.
"""

from __future__ import annotations

import logging
import socket
import time

from pylvs.core.ratelimit import RateLimit
from pylvs.io.nexthop import NextHops

__all__ = ["Transmitter"]

log = logging.getLogger("pylvs.l2")


def _ip_text(addr: int, version: int = 4) -> str:
    if version == 6:
        return socket.inet_ntop(socket.AF_INET6, addr.to_bytes(16, "big"))
    return socket.inet_ntoa(addr.to_bytes(4, "big"))


class Transmitter:
    """AF_PACKET socket for DR frames, raw IP socket for IP packets, and the next-hop cache."""

    def __init__(self) -> None:
        self._packet = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        # Opened with the first IPv6 packet to send (a host without IPv6 still serves IPv4).
        self._raw6: socket.socket | None = None
        self.hops = NextHops()
        self.sent_frames = 0
        self.sent_packets = 0
        self.errors = 0
        self._log_limit = RateLimit()

    def close(self) -> None:
        self._packet.close()
        self._raw.close()
        if self._raw6 is not None:
            self._raw6.close()

    def prepare(self, addr: int, version: int = 0) -> None:
        """Start resolving a real server's MAC before its first packet (called on add_dest)."""
        self.hops.prepare(addr, version)

    def send_frame(self, packet: bytes | bytearray, next_hop: int) -> bool:
        """DR: send the IP packet in an Ethernet frame to ``next_hop``'s MAC; False if dropped."""
        now = time.monotonic()
        version = packet[0] >> 4
        hop = self.hops.lookup(next_hop, now, version)
        if not hop.header:
            self.hops.dropped(hop)
            return False
        try:
            self._packet.sendto(hop.header + packet, (hop.ifname, 0))
        except OSError as exc:
            text = _ip_text(next_hop, version)
            self._failed(now, f"DR: send to {text} on {hop.ifname} failed: {exc}")
            hop.expires = 0.0
            return False
        self.sent_frames += 1
        return True

    def send_ip(self, packet: bytes | bytearray, dst: int) -> bool:
        """Send a complete IP packet (tunnel outer packet, ICMP error) by the kernel's routing;
        IPv4 or IPv6 after its first nibble."""
        if packet[0] >> 4 == 6:
            return self._send_ip6(packet, dst)
        try:
            self._raw.sendto(packet, (_ip_text(dst), 0))
        except OSError as exc:
            self._failed(time.monotonic(), f"cannot send to {_ip_text(dst)}: {exc}")
            return False
        self.sent_packets += 1
        return True

    def _send_ip6(self, packet: bytes | bytearray, dst: int) -> bool:
        text = _ip_text(dst, 6)
        try:
            if self._raw6 is None:
                self._raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
            self._raw6.sendto(packet, (text, 0))
        except OSError as exc:
            self._failed(time.monotonic(), f"cannot send to {text}: {exc}")
            return False
        self.sent_packets += 1
        return True

    def _failed(self, now: float, message: str) -> None:
        self.errors += 1
        if self._log_limit.allow(now):
            log.warning("%s (%d send errors so far)", message, self.errors)
