"""A userspace IPIP decapsulator for real servers whose kernel has no ``ipip`` (no ``tunl0``).

An LVS-TUN director sends each client packet wrapped in an outer IPv4 header (protocol 4, RFC 2003)
addressed to the real server. Without ``tunl0`` the kernel delivers such packets only to raw sockets
of protocol 4 (and, since a raw socket took them, sends no ICMP protocol-unreachable). This module
reads them from such a socket, strips the outer header and writes the inner packet into a TUN
device, so the kernel receives it as if it had arrived on a tunnel interface: its destination (the
VIP, configured on ``lo``) is local and it is delivered to the listening service. Replies leave by
the normal routing table, straight to the client.

The TUN device needs ``rp_filter`` off: the inner source (the client) is not routed via it.

IPv6 (the kernel has no ``ip6_tunnel`` either: ``ip link add t6 type ip6tnl`` fails): a director
tunnelling to an IPv6 real server sends IPv6 with next header 41 around an IPv6 packet (RFC 2473)
or next header 4 around an IPv4 one (a mixed-family service, ``ip_vs_tunnel_xmit_v6``); an IPv6
service with an IPv4 real server sends IPv4 protocol 41 (RFC 4213). The decapsulator reads all
four kinds, each from a raw socket of its own (an ``AF_INET6`` raw socket receives the payload
after the IPv6 header, an ``AF_INET`` one the whole packet), and writes the inner packet, of
either family, into the same TUN device (without packet information the kernel takes the family
from the first nibble). A raw socket taking next header 41 or 4 also keeps the kernel from
answering it with ICMPv6 parameter problem (``ip6_input_finish``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time

from pylvs.core.ratelimit import RateLimit
from pylvs.io import netcfg

__all__ = [
    "DEFAULT_TUN_NAME",
    "IPPROTO_IPIP",
    "IPPROTO_IPV6",
    "IpipDecapsulator",
    "decapsulate",
    "decapsulate6",
]

IPPROTO_IPIP = 4
IPPROTO_IPV6 = 41  # IPv6 inside IPv4 or IPv6 (RFC 4213, RFC 2473)
# The inner packet's version each encapsulating protocol number carries.
_INNER_VERSION = {IPPROTO_IPIP: 4, IPPROTO_IPV6: 6}
# The shortest inner packet of each version (its fixed header).
_MIN_INNER = {4: 20, 6: 40}
DEFAULT_TUN_NAME = "pylvs-tun0"

log = logging.getLogger("pylvs.ipipdecap")


def decapsulate(packet: bytes) -> bytes | None:
    """The inner packet of an IPv4 packet of protocol 4 (IPIP: an IPv4 packet inside) or 41
    (an IPv6 packet inside), or None if this is not a well-formed one."""
    if len(packet) < 40 or packet[0] >> 4 != 4:
        return None
    version = _INNER_VERSION.get(packet[9])
    if version is None:
        return None
    ihl = (packet[0] & 0x0F) * 4
    inner = packet[ihl:]
    if len(inner) < _MIN_INNER[version] or inner[0] >> 4 != version:
        return None
    return inner


def decapsulate6(payload: bytes, proto: int) -> bytes | None:
    """The inner packet of an IPv6 packet with next header ``proto`` (41: IPv6, 4: IPv4), as an
    ``AF_INET6`` raw socket gives it (the payload after the outer header), or None if it is not
    a packet of the version ``proto`` announces."""
    version = _INNER_VERSION.get(proto)
    if version is None or len(payload) < _MIN_INNER[version] or payload[0] >> 4 != version:
        return None
    return payload


class IpipDecapsulator:
    """Raw sockets for IPv4 protocols 4 and 41 and IPv6 next headers 41 and 4 -> TUN device
    ``tun_name``; :meth:`run` until :meth:`stop`."""

    def __init__(self, tun_name: str = DEFAULT_TUN_NAME) -> None:
        self.tun_name = tun_name
        self.packets = 0
        self.errors = 0
        self._sock: socket.socket | None = None
        # (socket, family, protocol) of every raw socket read, the IPv4 IPIP one first.
        self._socks: list[tuple[socket.socket, int, int]] = []
        self._tun_fd = -1
        self._stop_r, self._stop_w = os.pipe()
        self._stopped = threading.Event()

    def open(self) -> None:
        """Create the TUN device, bring it up with rp_filter off, and open the raw socket."""
        self._tun_fd = netcfg.open_tun(self.tun_name)
        netcfg.set_link_up(self.tun_name)
        netcfg.write_sysctl(f"net/ipv4/conf/{self.tun_name}/rp_filter", 0)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
        self._log_limit = RateLimit()  # a write failure can happen once per packet
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._socks = [(self._sock, socket.AF_INET, IPPROTO_IPIP)]
        for family, proto in (
            (socket.AF_INET, IPPROTO_IPV6),
            (socket.AF_INET6, IPPROTO_IPV6),
            (socket.AF_INET6, IPPROTO_IPIP),
        ):
            try:
                sock = socket.socket(family, socket.SOCK_RAW, proto)
            except OSError as exc:
                # A host without IPv6 still decapsulates IPv4.
                log.info("no raw socket for family %d protocol %d: %s", family, proto, exc)
                continue
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self._socks.append((sock, family, proto))

    def run(self) -> None:
        """Decapsulate until :meth:`stop` is called (from another thread or a signal handler)."""
        sock = self._sock
        if sock is None:
            raise RuntimeError("IpipDecapsulator.run() before open()")
        poller = select.poll()
        by_fd: dict[int, tuple[socket.socket, int, int]] = {}
        for entry in self._socks:
            entry[0].setblocking(False)
            by_fd[entry[0].fileno()] = entry
            poller.register(entry[0].fileno(), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while not self._stopped.is_set():
            for fd, _events in poller.poll():
                if fd == self._stop_r:
                    return
                raw, family, proto = by_fd[fd]
                self._drain(raw, family, proto)

    def _drain(
        self, sock: socket.socket, family: int = socket.AF_INET, proto: int = IPPROTO_IPIP
    ) -> None:
        while True:
            try:
                packet = sock.recv(65535)
            except BlockingIOError:
                return
            if family == socket.AF_INET6:
                inner = decapsulate6(packet, proto)
            else:
                inner = decapsulate(packet)
            if inner is None:
                self.errors += 1
                continue
            try:
                os.write(self._tun_fd, inner)
                self.packets += 1
            except OSError as exc:
                self.errors += 1
                if self._log_limit.allow(time.monotonic()):
                    log.warning("cannot write to %s: %s", self.tun_name, exc)

    def stop(self) -> None:
        """Make :meth:`run` return; safe to call from a signal handler."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")

    def close(self) -> None:
        """Close the socket and the TUN device (the device disappears with its last fd)."""
        for sock, _family, _proto in self._socks:
            sock.close()
        self._socks = []
        self._sock = None
        if self._tun_fd >= 0:
            os.close(self._tun_fd)
            self._tun_fd = -1
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
