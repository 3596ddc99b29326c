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
the daemon in the engine (``EEXIST`` for a second one of a state), opens the socket, and is then
driven by the daemon's loop: :meth:`SyncManager.flush` after packets and on timers,
:meth:`SyncManager.receive` when the backup socket is readable. Only IPv4 groups are supported.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import logging
import socket
import struct

from pylvs.core.control import DaemonInfo, DaemonSpec, IPVSError
from pylvs.core.engine import Engine
from pylvs.core.sync import SyncError, decode_message

__all__ = ["SyncManager", "SyncReceiver", "SyncSender", "interface_mtu"]

log = logging.getLogger("pylvs.sync")

_SIOCGIFADDR = 0x8915
_SIOCGIFMTU = 0x8921
# linux/in.h; the socket module does not export IP_MTU_DISCOVER.
_IP_MTU_DISCOVER = 10
_IP_PMTUDISC_DONT = 0
# Datagrams waiting for room in the socket's send buffer; beyond this the oldest are dropped
# (the kernel bounds its queue the same way, sync_qlen_max).
_BACKLOG_MAX = 1024


def _ifreq(ifname: str, request: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return fcntl.ioctl(s.fileno(), request, struct.pack("16s16x", ifname.encode()[:15]))


def interface_mtu(ifname: str) -> int:
    """The interface's MTU; OSError(ENODEV) when there is no such interface."""
    return int(struct.unpack_from("i", _ifreq(ifname, _SIOCGIFMTU), 16)[0])


def _interface_addr(ifname: str) -> str:
    """The interface's (first) IPv4 address, or 0.0.0.0 when it has none."""
    try:
        data = _ifreq(ifname, _SIOCGIFADDR)
    except OSError:
        return "0.0.0.0"
    return socket.inet_ntoa(data[20:24])


class SyncSender:
    """The master's multicast socket."""

    def __init__(self, info: DaemonInfo) -> None:
        self.info = info
        self.sent = 0
        self.dropped = 0
        self._backlog: collections.deque[bytes] = collections.deque(maxlen=_BACKLOG_MAX)
        ifindex = socket.if_nametoindex(info.mcast_ifn)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            # struct ip_mreqn with only the interface index: multicasts leave by this interface.
            mreqn = struct.pack("4s4si", bytes(4), bytes(4), ifindex)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, info.mcast_ttl)
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DONT)
            addr = _interface_addr(info.mcast_ifn)
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
        ifindex = socket.if_nametoindex(info.mcast_ifn)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, info.mcast_ifn.encode())
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
        syncid = self.info.syncid
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
            try:
                msg = decode_message(data)
            except SyncError as exc:
                self.dropped += 1
                log.debug("sync: BACKUP, %s", exc.reason)
                if exc.records and self._accepts(syncid, data[1]):
                    self.applied += engine.apply_synced(exc.records, now)
                continue
            if not self._accepts(syncid, msg.syncid):
                continue
            self.applied += engine.apply_synced(msg.conns, now)

    @staticmethod
    def _accepts(own: int, theirs: int) -> bool:
        # A backup with syncid 0 takes every master's messages (ip_vs_process_message).
        return own == 0 or own == theirs

    def close(self) -> None:
        # Closing the socket leaves the group.
        self.sock.close()


class SyncManager:
    """The sync daemons of one pylvsd: configuration in the engine, sockets here."""

    def __init__(self, engine: Engine | None) -> None:
        # None when the packets are handled by several worker processes, each with its own
        # connection table: there is no single table to send or to fill.
        self.engine = engine
        self.sender: SyncSender | None = None
        self.receiver: SyncReceiver | None = None

    def start(self, spec: DaemonSpec) -> None:
        op = "start_daemon"
        engine = self.engine
        if engine is None:
            raise IPVSError(errno.EINVAL, op, "synchronisation needs one data plane (--workers 1)")
        if ":" in spec.mcast_group:
            raise IPVSError(errno.EAFNOSUPPORT, op, "IPv6 sync groups are not supported")
        try:
            mtu = interface_mtu(spec.mcast_ifn)
        except OSError:
            # start_sync_thread: "Unknown mcast interface"
            log.error("Unknown mcast interface: %s", spec.mcast_ifn)
            raise IPVSError(errno.ENODEV, op, f"unknown interface {spec.mcast_ifn!r}") from None
        engine.start_daemon(spec, mtu)
        info = engine.sync_daemons[spec.state]
        try:
            if spec.state == "master":
                self.sender = SyncSender(info)
            else:
                self.receiver = SyncReceiver(info)
        except OSError as exc:
            engine.stop_daemon(spec.state)
            raise IPVSError(exc.errno or errno.EIO, op, str(exc.strerror or exc)) from None
        log.info(
            "sync thread started: state = %s, mcast_ifn = %s, syncid = %d, maxlen = %d, "
            "group = %s, port = %d, ttl = %d",
            spec.state.upper(),
            info.mcast_ifn,
            info.syncid,
            info.sync_maxlen,
            info.mcast_group,
            info.mcast_port,
            info.mcast_ttl,
        )

    def stop(self, state: str) -> None:
        if self.engine is None:
            raise IPVSError(errno.ESRCH, "stop_daemon")
        self.engine.stop_daemon(state)
        if state == "master" and self.sender is not None:
            self.sender.close()
            self.sender = None
        elif state == "backup" and self.receiver is not None:
            self.receiver.close()
            self.receiver = None
        log.info("stopping %s sync thread", state)

    def daemons(self) -> list[DaemonInfo]:
        return self.engine.daemons() if self.engine is not None else []

    def receiver_fileno(self) -> int | None:
        return self.receiver.fileno() if self.receiver is not None else None

    def receive(self, now: float) -> None:
        if self.receiver is not None and self.engine is not None:
            self.receiver.receive(self.engine, now)

    def next_deadline(self) -> float | None:
        """When :meth:`flush` must run next (a message waiting for its 2 s)."""
        master = self.engine.sync_master if self.engine is not None else None
        return master.next_deadline() if master is not None else None

    def flush(self, now: float) -> None:
        """Send the master's full messages, and the current one once it is 2 s old."""
        master = self.engine.sync_master if self.engine is not None else None
        if master is None or self.sender is None:
            return
        # Called with nothing new too: a backlog left by a full socket buffer goes out then.
        self.sender.send(master.datagrams_to_send(now))

    def close(self) -> None:
        for state in ("master", "backup"):
            if self.engine is not None and state in self.engine.sync_daemons:
                self.stop(state)
