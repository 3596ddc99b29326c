"""Sending gratuitous ARP on one interface (the frames and their timing: :mod:`pylvs.core.garp`),
and IPv6's equivalent, unsolicited neighbour advertisements (:mod:`pylvs.core.ndisc`).

The frames go out through an ``AF_PACKET`` socket bound to the interface, so they leave even
while the address is not yet usable for IP. :func:`announce` blocks for the whole schedule
(about a second); the HA component calls it from its own thread, never from the data plane's.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from pylvs.core.garp import ARP_COUNT, ARP_INTERVAL, arp_frames, send_arp_schedule
from pylvs.core.ndisc import UA_COUNT, UA_INTERVAL, send_ua_schedule, unsolicited_na
from pylvs.io import netcfg

__all__ = ["announce", "announce_na", "send_frames"]

_ETH_P_ARP = 0x0806
_ETH_P_IPV6 = 0x86DD


def announce(
    ifname: str,
    ip: str,
    count: int = ARP_COUNT,
    interval: float = ARP_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    cancel: threading.Event | None = None,
) -> int:
    """Send ``send_arp``'s requests and replies for ``ip`` on ``ifname``; returns how many.
    Setting ``cancel`` stops the rest (IPaddr2's stop kills a running send_arp: a node that
    gave the address up must not announce it any more)."""
    mac = netcfg.link_info(ifname).mac
    request, reply = arp_frames(mac, socket.inet_aton(ip))
    sent = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ARP)) as sock:
        sock.bind((ifname, _ETH_P_ARP))
        start = clock()
        for offset, kind in send_arp_schedule(count, interval):
            wait = start + offset - clock()
            if cancel is not None:
                if cancel.wait(max(wait, 0.0)):
                    break
            elif wait > 0:
                sleep(wait)
            sock.send(reply if kind else request)
            sent += 1
    return sent


def announce_na(
    ifname: str,
    ip: str,
    count: int = UA_COUNT,
    interval: float = UA_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    cancel: threading.Event | None = None,
) -> int:
    """Send ``send_ua -c COUNT -i INTERVAL``'s unsolicited neighbour advertisements for the
    IPv6 address ``ip`` on ``ifname`` (IPaddr2 on IPv6); returns how many. ``cancel`` stops
    the rest, as for :func:`announce`."""
    frame = unsolicited_na(netcfg.link_info(ifname).mac, ip, netcfg.ipv6_forwarding(ifname))
    sent = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_IPV6)) as sock:
        sock.bind((ifname, _ETH_P_IPV6))
        start = clock()
        for offset in send_ua_schedule(count, interval):
            wait = start + offset - clock()
            stop = cancel if cancel is not None else threading.Event()
            if stop.wait(max(wait, 0.0)):
                break
            sock.send(frame)
            sent += 1
    return sent


def send_frames(ifname: str, frames: list[bytes], ethertype: int = _ETH_P_ARP) -> int:
    """Send ready-made Ethernet frames on ``ifname`` back to back (keepalived's gratuitous ARP
    burst: :func:`pylvs.core.vrrpmsg.gratuitous_arp`; with ``ethertype`` 0x86dd its unsolicited
    neighbour advertisements, :func:`pylvs.core.ndisc.unsolicited_na`); returns how many."""
    sent = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype)) as sock:
        sock.bind((ifname, ethertype))
        for frame in frames:
            sock.send(frame)
            sent += 1
    return sent
