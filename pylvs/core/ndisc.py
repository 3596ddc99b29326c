"""Unsolicited neighbour advertisements: IPv6's gratuitous ARP (RFC 4861 7.2.6), as keepalived
2.2.7 sends them when it takes IPv6 virtual addresses over (``vrrp_ndisc.c``
``ndisc_send_unsolicited_na_immediate``) and heartbeat's IPaddr2 through ``send_ua``.

One frame per address, built whole for an ``AF_PACKET`` socket (the address may not be usable
for IP yet):

* Ethernet to 33:33:00:00:00:01 (RFC 2464 7: the all-nodes group ff02::1), from the interface's
  MAC, type 0x86dd;
* IPv6: traffic class and flow label 0, next header 58 (ICMPv6), hop limit 255 (RFC 4861 7.1.2:
  a receiver drops any other), source the advertised address itself (keepalived puts the VIP
  there), destination ff02::1;
* ICMPv6 type 136 code 0: Override set (the entry moves to the new MAC), Solicited clear (nobody
  asked), Router set when the interface forwards IPv6 (keepalived's ``set_ipv6_forwarding``,
  as the kernel's own ``ndisc_send_unsol_na``), target the address, and a Target Link-Layer
  Address option (type 2, length 1 = 8 bytes) holding the MAC.

How many go and when is the caller's business: keepalived's ``garp_master_repeat`` rounds back to
back (:mod:`pylvs.ha.vrrp`), IPaddr2's ``send_ua -i 200 -c 5`` (:func:`send_ua_schedule`).
Pure: bytes out, nothing sent here.
"""

from __future__ import annotations

import ipaddress
import struct

from pylvs.core.checksum import checksum, pseudo_header_sum

__all__ = [
    "ALL_NODES",
    "ICMPV6_NA",
    "NA_FLAG_OVERRIDE",
    "NA_FLAG_ROUTER",
    "NA_FLAG_SOLICITED",
    "NDISC_HOPLIMIT",
    "UA_COUNT",
    "UA_INTERVAL",
    "send_ua_schedule",
    "unsolicited_na",
]

ALL_NODES = "ff02::1"
ICMPV6_NA = 136  # RFC 4861 4.4
NDISC_HOPLIMIT = 255
NA_FLAG_ROUTER = 0x80  # first byte of the 32-bit flags word
NA_FLAG_SOLICITED = 0x40
NA_FLAG_OVERRIDE = 0x20
_OPT_TARGET_LLADDR = 2  # RFC 4861 4.6.1
_IPPROTO_ICMPV6 = 58
_ETH_P_IPV6 = 0x86DD
_ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
_ALL_NODES_INT = int(ipaddress.IPv6Address(ALL_NODES))
_NA_LEN = 24 + 8  # the message (type .. target) and one link-layer address option

UA_COUNT = 5  # IPaddr2 arp_count, passed to send_ua as -c
UA_INTERVAL = 0.2  # IPaddr2 arp_interval (200 ms), passed to send_ua as -i


def unsolicited_na(mac: bytes, target: str, router: bool = False) -> bytes:
    """The Ethernet frame announcing that ``target`` (an IPv6 address) is at ``mac`` (6 bytes);
    86 bytes."""
    if len(mac) != 6:
        raise ValueError("a MAC address has 6 bytes")
    ip = ipaddress.ip_address(target)
    if ip.version != 6:
        raise ValueError(f"{target} is not an IPv6 address")
    flags = NA_FLAG_OVERRIDE | (NA_FLAG_ROUTER if router else 0)
    icmp = bytearray(
        struct.pack("!BBHB3x", ICMPV6_NA, 0, 0, flags)
        + ip.packed
        + struct.pack("!BB", _OPT_TARGET_LLADDR, 1)
        + mac
    )
    initial = pseudo_header_sum(int(ip), _ALL_NODES_INT, _IPPROTO_ICMPV6, _NA_LEN)
    struct.pack_into("!H", icmp, 2, checksum(icmp, initial))
    ipv6 = (
        struct.pack("!IHBB", 6 << 28, _NA_LEN, _IPPROTO_ICMPV6, NDISC_HOPLIMIT)
        + ip.packed
        + ipaddress.IPv6Address(ALL_NODES).packed
    )
    return _ALL_NODES_MAC + mac + struct.pack("!H", _ETH_P_IPV6) + ipv6 + bytes(icmp)


def send_ua_schedule(count: int = UA_COUNT, interval: float = UA_INTERVAL) -> list[float]:
    """When each of ``send_ua -c COUNT -i INTERVAL``'s advertisements goes, in seconds after the
    first: one every ``interval``."""
    return [i * interval for i in range(max(count, 0))]
