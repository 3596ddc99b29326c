"""Gratuitous ARP as heartbeat's IPaddr2 sends it when it takes an address over (``send_arp``).

``send_arp -i 200 -r 5`` (IPaddr2's ``arp_interval`` and ``arp_count``) sends, for each of its 5
repeats, an ARP request and then an ARP reply, half the interval apart, all to the broadcast
address, with sender and target protocol address both the taken address and sender hardware
address the interface's MAC; the request's target hardware address is zero, the reply's the
sender's own MAC (as seen in ``captures/heartbeat-ipaddr2-garp.pcap``). A neighbour that already
has an entry for the address moves it to the new MAC at the first of them.

Pure: frames and a schedule; :mod:`pylvs.io.garp` puts them on the wire.
"""

from __future__ import annotations

import struct

__all__ = ["ARP_COUNT", "ARP_INTERVAL", "arp_frames", "send_arp_schedule"]

ARP_COUNT = 5  # IPaddr2 arp_count
ARP_INTERVAL = 0.2  # IPaddr2 arp_interval (ms in its parameters): between two requests
_BROADCAST = b"\xff" * 6
_ETH_P_ARP = 0x0806
_ARP_HEADER = struct.pack("!HHBB", 1, 0x0800, 6, 4)  # Ethernet, IPv4, 6-byte MAC, 4-byte IP


def arp_frames(mac: bytes, ip: bytes) -> tuple[bytes, bytes]:
    """The request and the reply announcing that ``ip`` (4 bytes) is at ``mac`` (6 bytes)."""
    if len(mac) != 6 or len(ip) != 4:
        raise ValueError("a MAC address has 6 bytes and an IPv4 address 4")
    eth = _BROADCAST + mac + struct.pack("!H", _ETH_P_ARP)
    request = eth + _ARP_HEADER + struct.pack("!H", 1) + mac + ip + b"\x00" * 6 + ip
    reply = eth + _ARP_HEADER + struct.pack("!H", 2) + mac + ip + mac + ip
    return request, reply


def send_arp_schedule(
    count: int = ARP_COUNT, interval: float = ARP_INTERVAL
) -> list[tuple[float, int]]:
    """When each frame goes, as (seconds after the first, 0 for the request / 1 for the reply)."""
    half = interval / 2
    return [(i * interval + kind * half, kind) for i in range(count) for kind in (0, 1)]
