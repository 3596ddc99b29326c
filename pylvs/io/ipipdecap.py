"""A userspace IPIP decapsulator for real servers whose kernel has no ``ipip`` (no ``tunl0``).

An LVS-TUN director sends each client packet wrapped in an outer IPv4 header (protocol 4, RFC 2003)
addressed to the real server. Without ``tunl0`` the kernel delivers such packets only to raw sockets
of protocol 4 (and, since a raw socket took them, sends no ICMP protocol-unreachable). This module
reads them from such a socket, strips the outer header and writes the inner packet into a TUN
device, so the kernel receives it as if it had arrived on a tunnel interface: its destination (the
VIP, configured on ``lo``) is local and it is delivered to the listening service. Replies leave by
the normal routing table, straight to the client.

The TUN device needs ``rp_filter`` off: the inner source (the client) is not routed via it.
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

__all__ = ["DEFAULT_TUN_NAME", "IPPROTO_IPIP", "IpipDecapsulator", "decapsulate"]

IPPROTO_IPIP = 4
DEFAULT_TUN_NAME = "pylvs-tun0"

log = logging.getLogger("pylvs.ipipdecap")


def decapsulate(packet: bytes) -> bytes | None:
    """The inner IPv4 packet of an IPIP packet, or None if this is not a well-formed one."""
    if len(packet) < 40 or packet[0] >> 4 != 4 or packet[9] != IPPROTO_IPIP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    inner = packet[ihl:]
    if len(inner) < 20 or inner[0] >> 4 != 4:
        return None
    return inner


class IpipDecapsulator:
    """Raw socket for IP protocol 4 -> TUN device ``tun_name``; :meth:`run` until :meth:`stop`."""

    def __init__(self, tun_name: str = DEFAULT_TUN_NAME) -> None:
        self.tun_name = tun_name
        self.packets = 0
        self.errors = 0
        self._sock: socket.socket | None = None
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

    def run(self) -> None:
        """Decapsulate until :meth:`stop` is called (from another thread or a signal handler)."""
        sock = self._sock
        if sock is None:
            raise RuntimeError("IpipDecapsulator.run() before open()")
        sock.setblocking(False)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while not self._stopped.is_set():
            for fd, _events in poller.poll():
                if fd == self._stop_r:
                    return
                self._drain(sock)

    def _drain(self, sock: socket.socket) -> None:
        while True:
            try:
                packet = sock.recv(65535)
            except BlockingIOError:
                return
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
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._tun_fd >= 0:
            os.close(self._tun_fd)
            self._tun_fd = -1
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
