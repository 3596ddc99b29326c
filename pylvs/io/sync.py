"""The sync daemon's sockets: a master multicasts its connections, a backup applies them.

This is the I/O half of ``ip_vs_sync.c`` (the codec and the decisions are in
:mod:`pylvs.core.sync`):

* master (``make_send_sock``): a UDP socket whose multicasts leave by the sync interface
  (``IP_MULTICAST_IF``), with the configured TTL, without loopback, fragmentation allowed
  (``IP_PMTUDISC_DONT``), bound to the interface's address and connected to group:port;
* backup (``make_receive_sock``): a UDP socket bound to group:port on the sync interface only
  (``SO_BINDTODEVICE``) that has joined the group there; each datagram is decoded, filtered by
  syncid (a backup with syncid 0 accepts every master) and handed to the engine.

:class:`SyncManager` is what pylvsd's control operations call: it checks the interface, records
the daemon in the engine (``EEXIST`` for a second one of a state) and opens the socket. It is a
component of the daemon's loop (:mod:`pylvs.loop`): it watches the backup's socket, and its
deadline is when the master's buffer must go out (at once when full messages wait, which the
loop sees right after a batch of packets). The group may be IPv4 or IPv6 (``--mcast-group
ff02::...``, kernel 4.3+): an IPv6 socket is set up the same way with the IPv6 options, as
``make_send_sock``/``make_receive_sock`` do for ``mcast_af == AF_INET6``. Interface facts come
from :mod:`pylvs.io.netcfg`.
"""

from __future__ import annotations

import collections
import errno
import logging
import selectors
import socket
import struct
from collections.abc import Sequence
from typing import Any

from pylvs.core.control import DaemonInfo, DaemonSpec, IPVSError
from pylvs.core.engine import Engine
from pylvs.core.sync import SyncConn, SyncError, decode_message
from pylvs.io import netcfg

__all__ = ["SyncManager", "SyncReceiver", "SyncSender", "accepted_records"]

log = logging.getLogger("pylvs.sync")

# linux/in.h; the socket module does not export IP_MTU_DISCOVER.
_IP_MTU_DISCOVER = 10
_IP_PMTUDISC_DONT = 0
# linux/in6.h: IPV6_MTU_DISCOVER and IPV6_PMTUDISC_DONT (not exported by the socket module);
# the multicast options as Linux numbers them, for socket modules that lack them.
_IPV6_MTU_DISCOVER = 23
_IPV6_PMTUDISC_DONT = 0
_IPV6_MULTICAST_IF = getattr(socket, "IPV6_MULTICAST_IF", 17)
_IPV6_MULTICAST_HOPS = getattr(socket, "IPV6_MULTICAST_HOPS", 18)
_IPV6_MULTICAST_LOOP = getattr(socket, "IPV6_MULTICAST_LOOP", 19)
_IPV6_JOIN_GROUP = getattr(socket, "IPV6_JOIN_GROUP", 20)
# asm-generic/socket.h; PyPy's socket module does not export it.
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
# Datagrams waiting for room in the socket's send buffer; beyond this the oldest are dropped
# (the kernel bounds its queue the same way, sync_qlen_max).
_BACKLOG_MAX = 1024


def accepted_records(own_syncid: int, data: bytes) -> tuple[list[SyncConn], str | None]:
    """What a backup with ``own_syncid`` applies of one datagram (ip_vs_process_message), and
    why it dropped the rest (None when nothing was wrong).

    A backup with syncid 0 takes every master's messages, otherwise only its own syncid's. A
    message that fails a check part-way still has its good records before the fault applied, as
    the kernel applies records one by one.
    """
    try:
        msg = decode_message(data)
    except SyncError as exc:
        good = list(exc.records) if len(data) > 1 and _accepts(own_syncid, data[1]) else []
        return good, exc.reason
    if not _accepts(own_syncid, msg.syncid):
        return [], None
    return list(msg.conns), None


def _accepts(own: int, theirs: int) -> bool:
    return own == 0 or own == theirs


def _is_ipv6(group: str) -> bool:
    return ":" in group


def _ipv6_send_sock(info: DaemonInfo, ifindex: int) -> socket.socket:
    """make_send_sock for an IPv6 group: multicasts leave by the interface (``mcast_oif``), with
    ``mcast_ttl`` as hop limit, without loopback, fragmentation allowed; the kernel binds only an
    IPv4 socket to the interface's address (bind_mcastif_addr), so the source is the route's."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MULTICAST_IF, ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MULTICAST_HOPS, info.mcast_ttl)
        sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER, _IPV6_PMTUDISC_DONT)
        # The scope id names the interface for a link-local group (ff02::/16).
        sock.connect((info.mcast_group, info.mcast_port, 0, ifindex))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _ipv6_receive_sock(info: DaemonInfo, ifindex: int) -> socket.socket:
    """make_receive_sock for an IPv6 group: bound to group:port on the interface, joined there
    (join_mcast_group6: ``ipv6_sock_mc_join`` with the interface's index)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, info.mcast_ifn.encode())
        sock.bind((info.mcast_group, info.mcast_port, 0, ifindex))
        # struct ipv6_mreq: the group and the interface index.
        mreq = socket.inet_pton(socket.AF_INET6, info.mcast_group) + struct.pack("@I", ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_JOIN_GROUP, mreq)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class SyncSender:
    """The master's multicast socket."""

    def __init__(self, info: DaemonInfo) -> None:
        self.info = info
        self.sent = 0
        self.dropped = 0
        self._backlog: collections.deque[bytes] = collections.deque(maxlen=_BACKLOG_MAX)
        ifindex = netcfg.link_info(info.mcast_ifn).index
        if _is_ipv6(info.mcast_group):
            self.sock = _ipv6_send_sock(info, ifindex)
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            # struct ip_mreqn with only the interface index: multicasts leave by this interface.
            mreqn = struct.pack("4s4si", bytes(4), bytes(4), ifindex)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, info.mcast_ttl)
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DONT)
            addr = netcfg.link_ipv4_address(info.mcast_ifn) or "0.0.0.0"
            if addr == "0.0.0.0":
                log.error("You probably need to specify IP address on multicast interface.")
            sock.bind((addr, 0))
            sock.connect((info.mcast_group, info.mcast_port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock

    def send(self, datagrams: list[bytes]) -> None:
        """Send what the master produced; what the socket cannot take now waits for later."""
        backlog = self._backlog
        for data in datagrams:
            if len(backlog) == backlog.maxlen:
                self.dropped += 1
            backlog.append(data)
        while backlog:
            try:
                self.sock.send(backlog[0])
            except BlockingIOError:
                return
            except OSError as exc:
                # ENOBUFS, ENETUNREACH, ...: the message is lost, as in ip_vs_send_sync_msg.
                log.error("sync: sending a message failed: %s", exc.strerror or exc)
                self.dropped += 1
            else:
                self.sent += 1
            backlog.popleft()

    def close(self) -> None:
        self.sock.close()


class SyncReceiver:
    """The backup's socket: joined to the group on the sync interface."""

    def __init__(self, info: DaemonInfo) -> None:
        self.info = info
        self.received = 0
        self.dropped = 0
        self.applied = 0
        ifindex = netcfg.link_info(info.mcast_ifn).index
        if _is_ipv6(info.mcast_group):
            self.sock = _ipv6_receive_sock(info, ifindex)
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, info.mcast_ifn.encode())
            sock.bind((info.mcast_group, info.mcast_port))
            mreqn = struct.pack("4s4si", socket.inet_aton(info.mcast_group), bytes(4), ifindex)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self, engine: Engine, now: float) -> None:
        """Read every waiting message and apply it (sync_thread_backup)."""
        while True:
            try:
                # A datagram longer than sync_maxlen is cut, and then fails the size check.
                data = self.sock.recv(self.info.sync_maxlen)
            except BlockingIOError:
                return
            except OSError as exc:
                log.error("sync: receiving message error: %s", exc.strerror or exc)
                return
            self.received += 1
            records, problem = accepted_records(self.info.syncid, data)
            if problem is not None:
                self.dropped += 1
                log.debug("sync: BACKUP, %s", problem)
            if records:
                self.applied += engine.apply_synced(records, now)

    def close(self) -> None:
        # Closing the socket leaves the group.
        self.sock.close()


def announce(info: DaemonInfo) -> None:
    """The log line of a started daemon (start_sync_thread's)."""
    log.info(
        "sync thread started: state = %s, mcast_ifn = %s, syncid = %d, maxlen = %d, "
        "group = %s, port = %d, ttl = %d",
        info.state.upper(),
        info.mcast_ifn,
        info.syncid,
        info.sync_maxlen,
        info.mcast_group,
        info.mcast_port,
        info.mcast_ttl,
    )


def announce_stop(state: str) -> None:
    log.info("stopping %s sync thread", state)


def unknown_interface(name: str) -> None:
    log.error("Unknown mcast interface: %s", name)


class SyncManager:
    """The sync daemons of one connection table: configuration in the engine, sockets here.

    pylvsd holds one for its engine; with data-plane workers, every worker holds one
    (:class:`pylvs.io.workers.GroupSync`) and ``quiet`` leaves the log lines to the daemon."""

    name = "sync"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sender: SyncSender | None = None
        self.receiver: SyncReceiver | None = None

    def start(self, spec: DaemonSpec, quiet: bool = False) -> None:
        op = "start_daemon"
        engine = self.engine
        try:
            mtu = netcfg.link_info(spec.mcast_ifn).mtu
        except (netcfg.NetcfgError, OSError):
            # start_sync_thread: "Unknown mcast interface"
            if not quiet:
                unknown_interface(spec.mcast_ifn)
            raise IPVSError(errno.ENODEV, op, f"unknown interface {spec.mcast_ifn!r}") from None
        engine.start_daemon(spec, mtu)
        info = engine.sync_daemons[spec.state]
        try:
            if spec.state == "master":
                self.sender = SyncSender(info)
            else:
                self.receiver = SyncReceiver(info)
        except (OSError, netcfg.NetcfgError) as exc:
            engine.stop_daemon(spec.state)
            err = getattr(exc, "errno", None) or errno.EIO
            raise IPVSError(err, op, str(getattr(exc, "strerror", None) or exc)) from None
        if not quiet:
            announce(info)

    def stop(self, state: str, quiet: bool = False) -> None:
        self.engine.stop_daemon(state)
        if state == "master" and self.sender is not None:
            self.sender.close()
            self.sender = None
        elif state == "backup" and self.receiver is not None:
            self.receiver.close()
            self.receiver = None
        if not quiet:
            announce_stop(state)

    def daemons(self) -> list[DaemonInfo]:
        return self.engine.daemons()

    # -- Component ----------------------------------------------------------------------------

    def watch(self) -> Sequence[tuple[Any, int]]:
        if self.receiver is None:
            return ()
        return ((self.receiver.sock, selectors.EVENT_READ),)

    def deadline(self) -> float | None:
        """When the master's buffer must go out next (0: full messages wait)."""
        master = self.engine.sync_master
        if master is None or self.sender is None:
            return None
        return master.next_deadline()

    def ready(self, fd: int, events: int, now: float) -> None:
        if self.receiver is not None:
            self.receiver.receive(self.engine, now)

    def due(self, now: float) -> None:
        self.flush(now)

    def flush(self, now: float) -> None:
        """Send the master's full messages, and the current one once it is 2 s old."""
        master = self.engine.sync_master
        if master is None or self.sender is None:
            return
        # Called with nothing new too: a backlog left by a full socket buffer goes out then.
        self.sender.send(master.datagrams_to_send(now))

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.sender is not None:
            out["master"] = {"sent": self.sender.sent, "dropped": self.sender.dropped}
        if self.receiver is not None:
            r = self.receiver
            out["backup"] = {"received": r.received, "dropped": r.dropped, "applied": r.applied}
        return out

    def close(self) -> None:
        for state in ("master", "backup"):
            if state in self.engine.sync_daemons:
                self.stop(state, quiet=True)
