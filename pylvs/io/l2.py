"""Sending what the engine decided to send: Ethernet frames (DR) and IP packets (TUN, ICMP errors).

DR (``ip_vs_dr_xmit``) puts the unchanged IP packet in a frame addressed to the real server's MAC
on the interface that routes to it. The kernel's neighbour table supplies the MAC; when it has no
usable entry, :class:`Transmitter` makes the kernel resolve it (:func:`netcfg.neigh_probe`) and
drops the packet: the client retransmits, as it would after any loss. Resolved next hops are cached
for :data:`NEIGH_TTL` seconds and then looked up again, so a changed MAC is picked up.

Encapsulated (IPIP) packets and ICMP errors are complete IP packets and go out through a raw socket
with ``IP_HDRINCL`` (``IPPROTO_RAW``); the kernel routes them by their destination address.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass

from pylvs.io import netcfg

__all__ = ["NEIGH_TTL", "NextHop", "Transmitter"]

log = logging.getLogger("pylvs.l2")

NEIGH_TTL = 5.0
_ETH_P_IP = b"\x08\x00"
_NUD_STALE = 0x04


@dataclass
class NextHop:
    """Where frames for one real server go: interface, our MAC, its MAC (None: unresolved)."""

    ifindex: int
    ifname: str
    src_mac: bytes
    dst_mac: bytes | None
    checked: float
    probed: float = 0.0


def _ip_text(addr: int) -> str:
    return socket.inet_ntoa(addr.to_bytes(4, "big"))


class Transmitter:
    """AF_PACKET socket for DR frames, raw IP socket for IP packets, and a next-hop cache."""

    def __init__(self) -> None:
        self._packet = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._hops: dict[int, NextHop] = {}
        self.sent_frames = 0
        self.sent_packets = 0
        self.dropped_unresolved = 0
        self.errors = 0

    def close(self) -> None:
        self._packet.close()
        self._raw.close()

    def forget(self) -> None:
        """Drop the next-hop cache (routes or links changed)."""
        self._hops.clear()

    def _resolve(self, addr: int, now: float) -> NextHop | None:
        hop = self._hops.get(addr)
        if hop is not None and hop.dst_mac is not None and now - hop.checked < NEIGH_TTL:
            return hop
        text = _ip_text(addr)
        try:
            route = netcfg.route_get(text)
            link = netcfg.link_info(route.oif)
            mac, state = netcfg.neigh_lookup(route.oif, route.next_hop)
        except netcfg.NetcfgError as exc:
            self.errors += 1
            log.warning("DR: cannot reach real server %s: %s", text, exc)
            return None
        probed = hop.probed if hop is not None else 0.0
        hop = NextHop(route.oif, link.name, link.mac, mac, now, probed)
        self._hops[addr] = hop
        if (mac is None or state & _NUD_STALE) and now - hop.probed > 1.0:
            # No entry, or one the kernel no longer vouches for: have the kernel (re)resolve it.
            hop.probed = now
            netcfg.neigh_probe(route.next_hop)
        return hop

    def prepare(self, addr: int) -> None:
        """Start resolving a real server's MAC before its first packet (called on add_dest)."""
        self._resolve(addr, time.monotonic())

    def send_frame(self, packet: bytes | bytearray, next_hop: int) -> bool:
        """DR: send the IP packet in an Ethernet frame to ``next_hop``'s MAC; False if dropped."""
        hop = self._resolve(next_hop, time.monotonic())
        if hop is None or hop.dst_mac is None:
            self.dropped_unresolved += 1
            return False
        try:
            self._packet.sendto(hop.dst_mac + hop.src_mac + _ETH_P_IP + packet, (hop.ifname, 0))
        except OSError as exc:
            self.errors += 1
            log.warning("DR: send to %s on %s failed: %s", _ip_text(next_hop), hop.ifname, exc)
            self._hops.pop(next_hop, None)
            return False
        self.sent_frames += 1
        return True

    def send_ip(self, packet: bytes | bytearray, dst: int) -> bool:
        """Send a complete IPv4 packet (IPIP outer packet, ICMP error) by the kernel's routing."""
        try:
            self._raw.sendto(packet, (_ip_text(dst), 0))
        except OSError as exc:
            self.errors += 1
            log.warning("cannot send to %s: %s", _ip_text(dst), exc)
            return False
        self.sent_packets += 1
        return True
