"""Connection synchronisation: the sync message codec and the master's decisions (ip_vs_sync.c).

A master director multicasts the state of its connections so that a backup director, taking over,
already knows them. This module holds the parts without I/O:

* the wire format: version 1 messages (encoded and decoded) and version 0 messages (decoded, as a
  backup of today's kernel still accepts them). Every multi-byte field is big-endian.

  Message header, version 1 (8 bytes)::

      u8 reserved (0), u8 syncid, be16 size, u8 nr_conns, s8 version (1), be16 spare (0)

  Message header, version 0 (4 bytes)::

      u8 nr_conns, u8 syncid, be16 size

  Connection record, version 1 (36 bytes for IPv4, 72 for IPv6, then options)::

      u8 type (bit 0: IPv6), u8 protocol, be16 ver_size (version << 12 | record size),
      be32 flags, be16 state, be16 cport, be16 vport, be16 dport, be32 fwmark,
      be32 timeout (seconds), caddr, vaddr, daddr (4 or 16 bytes each)
      options: u8 type, u8 length, data (IPVS_OPT_SEQ_DATA 1, PE_DATA 2, PE_NAME 3);
      the next record starts on a 32-bit boundary.

  Connection record, version 0 (24 bytes, +24 of sequence data when IP_VS_CONN_F_SEQ_MASK)::

      u8 reserved, u8 protocol, be16 cport, be16 vport, be16 dport,
      be32 caddr, be32 vaddr, be32 daddr, be16 flags, be16 state

* :func:`sync_conn_needed`: whether a packet of a connection makes the master send it
  (``ip_vs_sync_conn_needed`` with ``sync_refresh_period`` 0);
* :class:`SyncMaster`: the master's send buffer: records are appended to a message of at most
  ``sync_maxlen`` bytes, which goes out when full or 2 s after its first record
  (``IPVS_SYNC_FLUSH_TIME``);
* conversion between a :class:`~pylvs.core.conntrack.Conn` and a :class:`SyncConn` record,
  including the mapping of pylvs's compact ``CF_*`` flag bits onto ``IP_VS_CONN_F_*``.

Decoding follows ``ip_vs_process_message``: a malformed header drops the message; a malformed
record drops the rest of the message (the records before it stand); a record of an unsupported
protocol, an invalid state or an unknown mandatory option is skipped alone.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from pylvs.core import tcpstate
from pylvs.core.conntrack import (
    CF_FWD_MASK,
    CF_INACTIVE,
    CF_INVALID,
    CF_NOOUTPUT,
    CF_ONE_PACKET,
    CF_SYNC,
    CF_TEMPLATE,
    Conn,
    split_key,
)
from pylvs.core.service import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP

__all__ = [
    "DEFAULT_MCAST_GROUP",
    "DEFAULT_MCAST_PORT",
    "DEFAULT_MCAST_TTL",
    "IPVS_SYNC_FLUSH_TIME",
    "IP_VS_CONN_F_BACKUP_MASK",
    "IP_VS_CONN_F_BACKUP_UPD_MASK",
    "IP_VS_CONN_F_HASHED",
    "IP_VS_CONN_F_INACTIVE",
    "IP_VS_CONN_F_NOOUTPUT",
    "IP_VS_CONN_F_NO_CPORT",
    "IP_VS_CONN_F_ONE_PACKET",
    "IP_VS_CONN_F_SEQ_MASK",
    "IP_VS_CONN_F_SYNC",
    "IP_VS_CONN_F_TEMPLATE",
    "STATE_BACKUP",
    "STATE_MASTER",
    "SYNC_PERIOD",
    "SYNC_THRESHOLD",
    "SyncConn",
    "SyncError",
    "SyncMaster",
    "SyncMessage",
    "clamp_maxlen",
    "conn_to_sync",
    "decode_message",
    "default_maxlen",
    "encode_conn",
    "encode_message",
    "flags_from_wire",
    "flags_to_wire",
    "sync_conn_needed",
]

# ip_vs_sync.c / include/uapi/linux/ip_vs.h
DEFAULT_MCAST_GROUP = "224.0.0.81"  # IP_VS_SYNC_GROUP 0xe0000051
DEFAULT_MCAST_PORT = 8848  # IP_VS_SYNC_PORT
DEFAULT_MCAST_TTL = 1
IPVS_SYNC_FLUSH_TIME = 2.0  # seconds a record may wait in a message that is not full
SYNC_PROTO_VER = 1
STATE_MASTER = 1  # IP_VS_STATE_MASTER
STATE_BACKUP = 2  # IP_VS_STATE_BACKUP
# net.ipv4.vs.sync_threshold default "3 50": sync at packet 3, then every 50 packets.
SYNC_THRESHOLD = 3
SYNC_PERIOD = 50

IP_VS_CONN_F_FWD_MASK = 0x0007
IP_VS_CONN_F_SYNC = 0x0020
IP_VS_CONN_F_HASHED = 0x0040
IP_VS_CONN_F_NOOUTPUT = 0x0080
IP_VS_CONN_F_INACTIVE = 0x0100
IP_VS_CONN_F_SEQ_MASK = 0x0600
IP_VS_CONN_F_NO_CPORT = 0x0800
IP_VS_CONN_F_TEMPLATE = 0x1000
IP_VS_CONN_F_ONE_PACKET = 0x2000
# Bits a backup takes from a message for a new connection, and for an existing one.
IP_VS_CONN_F_BACKUP_MASK = (
    IP_VS_CONN_F_FWD_MASK
    | IP_VS_CONN_F_NOOUTPUT
    | IP_VS_CONN_F_INACTIVE
    | IP_VS_CONN_F_SEQ_MASK
    | IP_VS_CONN_F_NO_CPORT
    | IP_VS_CONN_F_TEMPLATE
)
IP_VS_CONN_F_BACKUP_UPD_MASK = IP_VS_CONN_F_INACTIVE | IP_VS_CONN_F_SEQ_MASK

IPVS_OPT_SEQ_DATA = 1
IPVS_OPT_PE_DATA = 2
IPVS_OPT_PE_NAME = 3
IPVS_OPT_F_PARAM = 1 << (7 - 1)  # an option with this bit may be ignored by a receiver
_IP_VS_PEDATA_MAXLEN = 255
_IP_VS_PENAME_MAXLEN = 16
_SEQ_OPT_LEN = 24  # struct ip_vs_sync_conn_options: two struct ip_vs_seq of 3 be32

_HEADER_V1 = struct.Struct("!BBHBbH")
_HEADER_V0 = struct.Struct("!BBH")
_CONN_V1 = struct.Struct("!BBHIHHHHII")  # the 24 bytes before the addresses
_CONN_V0 = struct.Struct("!BBHHHIIIHH")
_STYPE_F_INET6 = 1
_SVER_SHIFT = 12
_SVER_MASK = 0x0FFF
_V4_SIZE = _CONN_V1.size + 12
_V6_SIZE = _CONN_V1.size + 48

# Number of states per protocol (pp->num_states): TCP IP_VS_TCP_S_LAST, UDP IP_VS_UDP_S_LAST.
_NUM_STATES = {IPPROTO_TCP: 11, IPPROTO_UDP: 2}
# TCP states a master syncs in (ip_vs_sync_conn_needed).
_TCP_SYNC_STATES = frozenset(
    {
        tcpstate.TCP_ESTABLISHED,
        tcpstate.TCP_FIN_WAIT,
        tcpstate.TCP_CLOSE,
        tcpstate.TCP_CLOSE_WAIT,
        tcpstate.TCP_TIME_WAIT,
    }
)


class SyncError(ValueError):
    """A message (or the rest of it) was dropped; ``records`` are those decoded before the fault,
    which a backup has already applied, as the kernel has."""

    def __init__(self, reason: str, records: Sequence[SyncConn] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.records = list(records)


@dataclass
class SyncConn:
    """One connection as it travels: addresses as integers, flags as IP_VS_CONN_F_* bits,
    ``timeout`` in seconds (0 in version 0 messages, which carry none)."""

    af: int
    protocol: int
    flags: int
    state: int
    caddr: int
    cport: int
    vaddr: int
    vport: int
    daddr: int
    dport: int
    fwmark: int = 0
    timeout: int = 0
    seq: tuple[int, int, int, int, int, int] | None = None
    pe_data: bytes = b""
    pe_name: bytes = b""


@dataclass
class SyncMessage:
    version: int
    syncid: int
    conns: list[SyncConn]
    skipped: int = 0  # records left out (unsupported protocol, invalid state, unknown option)


# -- flags -------------------------------------------------------------------------------------

_CF_TO_WIRE = (
    (CF_SYNC, IP_VS_CONN_F_SYNC),
    (CF_INACTIVE, IP_VS_CONN_F_INACTIVE),
    (CF_NOOUTPUT, IP_VS_CONN_F_NOOUTPUT),
    (CF_TEMPLATE, IP_VS_CONN_F_TEMPLATE),
    (CF_ONE_PACKET, IP_VS_CONN_F_ONE_PACKET),
)


def flags_to_wire(cf: int) -> int:
    """pylvs's compact ``CF_*`` bits -> ``IP_VS_CONN_F_*`` (the forwarding method is the same)."""
    wire = cf & CF_FWD_MASK
    for bit, wire_bit in _CF_TO_WIRE:
        if cf & bit:
            wire |= wire_bit
    return wire


def flags_from_wire(wire: int) -> int:
    """``IP_VS_CONN_F_*`` -> ``CF_*``; bits pylvs has no use for (SEQ, NO_CPORT, HASHED) drop."""
    cf = wire & IP_VS_CONN_F_FWD_MASK
    for bit, wire_bit in _CF_TO_WIRE:
        if wire & wire_bit:
            cf |= bit
    return cf


# -- encoding ----------------------------------------------------------------------------------


def _addr_bytes(af: int, addr: int) -> bytes:
    return addr.to_bytes(4 if af == AF_INET else 16, "big")


def encode_conn(rec: SyncConn) -> bytes:
    """One version 1 record with its options, without the padding that may follow it."""
    options = bytearray()
    if rec.seq is not None:
        options += bytes((IPVS_OPT_SEQ_DATA, _SEQ_OPT_LEN)) + struct.pack("!6I", *rec.seq)
    if rec.pe_data:
        options += bytes((IPVS_OPT_PE_DATA, len(rec.pe_data))) + rec.pe_data
        if rec.pe_name:
            options += bytes((IPVS_OPT_PE_NAME, len(rec.pe_name))) + rec.pe_name
    v6 = rec.af != AF_INET
    size = (_V6_SIZE if v6 else _V4_SIZE) + len(options)
    head = _CONN_V1.pack(
        _STYPE_F_INET6 if v6 else 0,
        rec.protocol,
        size & _SVER_MASK,  # record version 0 in the top 4 bits
        rec.flags & ~IP_VS_CONN_F_HASHED,
        rec.state,
        rec.cport,
        rec.vport,
        rec.dport,
        rec.fwmark,
        rec.timeout,
    )
    addrs = _addr_bytes(rec.af, rec.caddr) + _addr_bytes(rec.af, rec.vaddr)
    return head + addrs + _addr_bytes(rec.af, rec.daddr) + bytes(options)


def _pad(length: int) -> int:
    return (4 - length) & 3


def encode_message(syncid: int, records: Sequence[SyncConn]) -> bytes:
    """A complete version 1 message (at most 255 records: nr_conns is one byte)."""
    if len(records) > 255:
        raise ValueError("a sync message holds at most 255 connections")
    body = bytearray()
    for rec in records:
        body += bytes(_pad(len(body)))
        body += encode_conn(rec)
    size = _HEADER_V1.size + len(body)
    return _HEADER_V1.pack(0, syncid, size, len(records), SYNC_PROTO_VER, 0) + bytes(body)


# -- decoding ----------------------------------------------------------------------------------


def decode_message(data: bytes | bytearray | memoryview) -> SyncMessage:
    """Decode one datagram (either version); SyncError when the message or its rest is dropped."""
    buf = bytes(data)
    if len(buf) < _HEADER_V0.size:
        raise SyncError("message header too short")
    if struct.unpack_from("!H", buf, 2)[0] != len(buf):
        raise SyncError("bogus message size")
    if len(buf) >= _HEADER_V1.size:
        reserved, syncid, _size, nr_conns, version, spare = _HEADER_V1.unpack_from(buf)
        if version == SYNC_PROTO_VER and reserved == 0 and spare == 0:
            return _decode_v1(buf, syncid, nr_conns)
    return _decode_v0(buf)


def _decode_v1(buf: bytes, syncid: int, nr_conns: int) -> SyncMessage:
    msg = SyncMessage(version=1, syncid=syncid, conns=[])
    end = len(buf)
    pos = _HEADER_V1.size
    for _ in range(nr_conns):
        if pos + _V4_SIZE > end:
            raise SyncError("dropping buffer, too small", msg.conns)
        size = struct.unpack_from("!H", buf, pos + 2)[0]
        rec_end = pos + (size & _SVER_MASK)
        if rec_end > end:
            raise SyncError("dropping buffer, msg > buffer", msg.conns)
        if size >> _SVER_SHIFT:
            raise SyncError(f"dropping buffer, unknown version {size >> _SVER_SHIFT}", msg.conns)
        rec = _decode_conn_v1(buf, pos, rec_end, msg)
        if rec is not None:
            msg.conns.append(rec)
        # The next record starts on a 32-bit boundary.
        pos += ((size & _SVER_MASK) + 3) & ~3
    return msg


def _decode_conn_v1(buf: bytes, pos: int, rec_end: int, msg: SyncMessage) -> SyncConn | None:
    """ip_vs_proc_sync_conn: None for a record skipped alone; SyncError drops the rest."""
    (stype, protocol, _vs, flags, state, cport, vport, dport, fwmark, timeout) = (
        _CONN_V1.unpack_from(buf, pos)
    )
    if stype & _STYPE_F_INET6:
        af, alen = AF_INET6, 16
    elif stype == 0:
        af, alen = AF_INET, 4
    else:
        raise SyncError(f"dropping buffer, unknown record type {stype}", msg.conns)
    p = pos + _CONN_V1.size
    if p + 3 * alen > rec_end:
        raise SyncError("dropping buffer, record shorter than its addresses", msg.conns)
    caddr = int.from_bytes(buf[p : p + alen], "big")
    vaddr = int.from_bytes(buf[p + alen : p + 2 * alen], "big")
    daddr = int.from_bytes(buf[p + 2 * alen : p + 3 * alen], "big")
    p += 3 * alen
    seq: tuple[int, int, int, int, int, int] | None = None
    pe_data = pe_name = b""
    seen: set[int] = set()
    while p < rec_end:
        if p + 2 > rec_end:
            raise SyncError("dropping buffer, truncated option header", msg.conns)
        ptype, plen = buf[p], buf[p + 1]
        p += 2
        if not plen or p + plen > rec_end:
            raise SyncError("dropping buffer, bad option length", msg.conns)
        kind = ptype & ~IPVS_OPT_F_PARAM
        data = buf[p : p + plen]
        if kind == IPVS_OPT_SEQ_DATA:
            if plen != _SEQ_OPT_LEN or kind in seen:
                raise SyncError("dropping buffer, bogus sequence option", msg.conns)
            seq = struct.unpack("!6I", data)
        elif kind == IPVS_OPT_PE_DATA:
            if plen > _IP_VS_PEDATA_MAXLEN or kind in seen:
                raise SyncError("dropping buffer, bogus persistence-engine data", msg.conns)
            pe_data = data
        elif kind == IPVS_OPT_PE_NAME:
            if plen > _IP_VS_PENAME_MAXLEN or kind in seen:
                raise SyncError("dropping buffer, bogus persistence-engine name", msg.conns)
            pe_name = data
        elif not ptype & IPVS_OPT_F_PARAM:
            # An unknown mandatory option: this record alone is dropped.
            msg.skipped += 1
            return None
        seen.add(kind)
        p += plen
    if not _valid(protocol, flags, state):
        msg.skipped += 1
        return None
    if pe_data:
        # Persistence-engine data needs that engine (ip_vs_conn_fill_param_sync); pylvs has none.
        msg.skipped += 1
        return None
    return SyncConn(
        af=af,
        protocol=protocol,
        flags=flags,
        state=state,
        caddr=caddr,
        cport=cport,
        vaddr=vaddr,
        vport=vport,
        daddr=daddr,
        dport=dport,
        fwmark=fwmark,
        timeout=timeout,
        seq=seq,
        pe_data=pe_data,
        pe_name=pe_name,
    )


def _valid(protocol: int, flags: int, state: int) -> bool:
    """A connection needs a protocol pylvs tracks and a state of that protocol; templates pass
    (the kernel only logs a template state out of range)."""
    if flags & IP_VS_CONN_F_TEMPLATE:
        return True
    num_states = _NUM_STATES.get(protocol)
    return num_states is not None and state < num_states


def _decode_v0(buf: bytes) -> SyncMessage:
    nr_conns, syncid, _size = _HEADER_V0.unpack_from(buf)
    msg = SyncMessage(version=0, syncid=syncid, conns=[])
    end = len(buf)
    pos = _HEADER_V0.size
    for _ in range(nr_conns):
        if pos + _CONN_V0.size > end:
            raise SyncError("v0, bogus conn", msg.conns)
        (_res, protocol, cport, vport, dport, caddr, vaddr, daddr, flags, state) = (
            _CONN_V0.unpack_from(buf, pos)
        )
        seq: tuple[int, int, int, int, int, int] | None = None
        if flags & IP_VS_CONN_F_SEQ_MASK:
            if pos + _CONN_V0.size + _SEQ_OPT_LEN > end:
                raise SyncError("v0, dropping buffer bogus conn options", msg.conns)
            # Version 0 copies struct ip_vs_seq in the sender's byte order; read it as sent by
            # a little-endian host.
            seq = struct.unpack_from("<6I", buf, pos + _CONN_V0.size)
            pos += _CONN_V0.size + _SEQ_OPT_LEN
        else:
            pos += _CONN_V0.size
        flags &= ~IP_VS_CONN_F_HASHED
        if not _valid(protocol, flags, state):
            msg.skipped += 1
            continue
        msg.conns.append(
            SyncConn(
                af=AF_INET,
                protocol=protocol,
                flags=flags,
                state=state,
                caddr=caddr,
                cport=cport,
                vaddr=vaddr,
                vport=vport,
                daddr=daddr,
                dport=dport,
                seq=seq,
            )
        )
    return msg


# -- the master --------------------------------------------------------------------------------


def sync_conn_needed(
    template: bool,
    protocol: int,
    state: int,
    old_state: int,
    pkts: int,
    threshold: int = SYNC_THRESHOLD,
    period: int = SYNC_PERIOD,
) -> tuple[bool, bool]:
    """ip_vs_sync_conn_needed with sync_refresh_period 0: (send it?, remember the state?).

    Templates are always sent. TCP connections are sent only in ESTABLISHED, FIN_WAIT, CLOSE,
    CLOSE_WAIT and TIME_WAIT; entering one of these other than ESTABLISHED sends at once;
    otherwise (and for UDP) a connection is sent when ``pkts % period == threshold``
    (``pkts == threshold`` when ``period`` is 0). When it is sent, the connection's state is
    remembered (``old_state``) to detect the next change.
    """
    if template:
        return True, True
    if protocol == IPPROTO_TCP:
        if state not in _TCP_SYNC_STATES:
            return False, False
        if state != old_state and state != tcpstate.TCP_ESTABLISHED:
            return True, True
    due = pkts % period == threshold if period > 0 else pkts == threshold
    return due, due


def conn_to_sync(cp: Conn) -> SyncConn:
    """The record a master sends for ``cp``.

    A template of a firewall-mark service has protocol 0 and the mark where the virtual address
    goes (as in its key); the mark of a connection is its service's, pylvs does not keep the
    packet's.
    """
    af, proto, caddr, cport, vaddr, vport = split_key(cp.key)
    dest = cp.dest
    svc = dest.svc
    return SyncConn(
        af=af,
        protocol=proto,
        flags=flags_to_wire(cp.flags),
        state=cp.state,
        caddr=caddr,
        cport=cport,
        vaddr=vaddr,
        vport=vport,
        daddr=dest.addr,
        dport=dest.port if cp.flags & CF_TEMPLATE else cp.dport,
        fwmark=svc.fwmark if svc is not None else 0,
        timeout=cp.timeout,
    )


def default_maxlen(state: int, mtu: int, ipv6: bool = False) -> int:
    """sync_maxlen when none is given: 1500 - headers for a master, the interface MTU (at least
    1500) - headers for a backup (start_sync_thread)."""
    hlen = 48 if ipv6 else 28
    if state == STATE_BACKUP:
        return min(max(mtu, 1500), 65535) - hlen
    return 1500 - hlen


def clamp_maxlen(state: int, maxlen: int, ipv6: bool = False) -> int:
    """A given sync_maxlen, clamped as start_sync_thread does (a backup reads at least 1024)."""
    hlen = 48 if ipv6 else 28
    low = 1024 if state == STATE_BACKUP else 1
    return min(max(maxlen, low), 65535 - hlen)


class SyncMaster:
    """The master's sync buffer (ip_vs_sync_conn + sync_thread_master without the socket).

    The engine calls :meth:`conn_in` for every packet it forwards from a client on a tracked
    connection; the I/O side collects :meth:`datagrams_to_send` and multicasts them.
    """

    def __init__(
        self,
        syncid: int,
        maxlen: int,
        threshold: int = SYNC_THRESHOLD,
        period: int = SYNC_PERIOD,
    ) -> None:
        self.syncid = syncid
        self.maxlen = maxlen
        self.threshold = threshold
        self.period = period
        self._queue: list[bytes] = []
        self._buf: bytearray | None = None
        self._nr_conns = 0
        self._firstuse = 0.0
        self.sent_conns = 0

    def conn_in(self, cp: Conn, now: float) -> None:
        """A client packet of ``cp`` was forwarded: sync it and its controlling template when
        :func:`sync_conn_needed` says so. One-packet connections are never synced, but their
        template is."""
        pkts = cp.in_pkts
        current: Conn | None = cp
        while current is not None:
            flags = current.flags
            if not flags & (CF_ONE_PACKET | CF_INVALID):
                # CF_INVALID: an invalidated template matches no new connection any more, so
                # a backup has no use for it.
                send, remember = sync_conn_needed(
                    bool(flags & CF_TEMPLATE),
                    split_key(current.key)[1],
                    current.state,
                    # Unset until the connection is first synced: Conn.__init__ stays as cheap
                    # as it was for directors that run no master.
                    getattr(current, "old_state", tcpstate.TCP_NONE),
                    pkts,
                    self.threshold,
                    self.period,
                )
                if remember:
                    current.old_state = current.state
                if send:
                    self.add(conn_to_sync(current), now)
            ctl = current.control
            if ctl is None:
                return
            if ctl.flags & CF_TEMPLATE:
                ctl.in_pkts += 1
                pkts = ctl.in_pkts
            else:
                pkts = self.threshold
            current = ctl

    def add(self, rec: SyncConn, now: float) -> None:
        """Append one record, queueing the current message first if it has no room."""
        data = encode_conn(rec)
        buf = self._buf
        if buf is not None:
            pad = _pad(len(buf))
            if len(buf) + pad + len(data) > self.maxlen or self._nr_conns == 255:
                self._queue_current()
                buf = None
        if buf is None:
            buf = self._buf = bytearray(_HEADER_V1.size)
            self._nr_conns = 0
            self._firstuse = now
        buf += bytes(_pad(len(buf)))
        buf += data
        self._nr_conns += 1
        self.sent_conns += 1

    def _queue_current(self) -> None:
        buf = self._buf
        if buf is None:
            return
        _HEADER_V1.pack_into(buf, 0, 0, self.syncid, len(buf), self._nr_conns, SYNC_PROTO_VER, 0)
        self._queue.append(bytes(buf))
        self._buf = None
        self._nr_conns = 0

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """Full messages, and the current one once its first record is 2 s old."""
        if self._buf is not None and now - self._firstuse >= IPVS_SYNC_FLUSH_TIME:
            self._queue_current()
        out, self._queue = self._queue, []
        return out

    def next_deadline(self) -> float | None:
        """When the current message must go out, or None when nothing waits."""
        if self._queue:
            return 0.0
        if self._buf is not None:
            return self._firstuse + IPVS_SYNC_FLUSH_TIME
        return None
