"""The UDP sockets of heartbeat's media: ``ucast``, ``bcast`` and ``mcast`` lines of ha.cf.

As heartbeat's plugins do (``ucast.c``, ``bcast.c``, ``mcast.c``): each medium is bound to its
interface (``SO_BINDTODEVICE``) on its port, so several media can share a port, and every message
goes out on every medium. A medium is named by its interface, heartbeat's link name
(``Link nodeb:eth0 dead.``). ``ucast`` lines for the same interface share one socket that sends
to each peer; a line naming one of this node's own addresses is skipped, so one ha.cf serves
every node.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from pylvs.config.heartbeat import BcastMedium, McastMedium, Medium, UcastMedium
from pylvs.io import netcfg

__all__ = ["MediaError", "MediumSocket", "open_media"]

log = logging.getLogger("pylvs.ha")

MAX_MESSAGE = 65536


class MediaError(Exception):
    """A medium cannot be opened (no such interface, port in use)."""


@dataclass
class MediumSocket:
    name: str  # the interface
    kind: str  # ucast, bcast, mcast
    sock: socket.socket
    destinations: list[tuple[str, int]] = field(default_factory=list)
    sent: int = 0
    received: int = 0
    errors: int = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes) -> None:
        for dest in self.destinations:
            try:
                self.sock.sendto(data, dest)
                self.sent += 1
            except OSError:
                # A medium that is down fails on its own; the others carry the message.
                self.errors += 1

    def receive(self) -> bytes | None:
        try:
            data, _addr = self.sock.recvfrom(MAX_MESSAGE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            self.errors += 1
            return None
        self.received += 1
        return data

    def close(self) -> None:
        self.sock.close()


def _bound(dev: str, port: int) -> socket.socket:
    if not netcfg.link_exists(dev):
        raise MediaError(f"heartbeat medium: no interface {dev}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
        sock.bind(("", port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise MediaError(f"heartbeat medium on {dev} port {port}: {exc.strerror or exc}") from None
    return sock


def open_media(media: Sequence[Medium]) -> list[MediumSocket]:
    """Open every medium pylvs speaks; the others are reported by the configuration."""
    opened: list[MediumSocket] = []
    ucast: dict[tuple[str, int], MediumSocket] = {}
    try:
        for medium in media:
            if isinstance(medium, UcastMedium):
                if netcfg.interfaces_with(medium.peer):
                    continue  # our own address: the line is for the other node
                key = (medium.dev, medium.port)
                if key not in ucast:
                    ucast[key] = MediumSocket(medium.dev, "ucast", _bound(*key))
                    opened.append(ucast[key])
                ucast[key].destinations.append((medium.peer, medium.port))
            elif isinstance(medium, BcastMedium):
                sock = _bound(medium.dev, medium.port)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                brd = netcfg.link_broadcast(medium.dev) or "255.255.255.255"
                opened.append(MediumSocket(medium.dev, "bcast", sock, [(brd, medium.port)]))
            elif isinstance(medium, McastMedium):
                sock = _bound(medium.dev, medium.port)
                index = netcfg.link_info(medium.dev).index
                mreqn = socket.inet_aton(medium.group) + struct.pack("=4si", b"\0" * 4, index)
                try:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, medium.ttl)
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, medium.loop)
                except OSError as exc:
                    sock.close()
                    raise MediaError(
                        f"mcast {medium.dev} {medium.group}: {exc.strerror or exc}"
                    ) from None
                opened.append(
                    MediumSocket(medium.dev, "mcast", sock, [(medium.group, medium.port)])
                )
    except Exception:
        for m in opened:
            m.close()
        raise
    if not opened:
        raise MediaError("no heartbeat medium pylvs can use (ucast, bcast or mcast)")
    return opened
