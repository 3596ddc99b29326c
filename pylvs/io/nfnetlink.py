"""NFQUEUE over netlink in pure Python: bind a queue, receive packets in batches, send verdicts.

This replaces libnetfilter_queue (and the ``netfilterqueue`` C extension, which runs on CPython
only, and slowly on PyPy's C-API emulation) with the few messages pylvs needs; the formats are
those of the kernel's ``net/netfilter/nfnetlink_queue.c`` and ``include/uapi/linux/netfilter/
nfnetlink_queue.h``:

* every message is a ``struct nlmsghdr`` (16 bytes, host byte order), a ``struct nfgenmsg``
  (family, version, queue number in network byte order) and netlink attributes (``struct nlattr``:
  length and type in host order, the value padded to 4 bytes);
* ``NFQNL_MSG_CONFIG`` binds the queue (``NFQNL_CFG_CMD_BIND``; the ``PF_BIND`` command older
  kernels needed is a no-op since Linux 3.8 and still sent), sets the copy mode and range, the
  queue's length and its flags. These are sent with ``NLM_F_ACK`` and their acknowledgements
  read, so a queue bound by another process fails :meth:`QueueSocket.open` with ``EBUSY``;
* ``NFQNL_MSG_PACKET`` (kernel to us): ``NFQA_PACKET_HDR`` first (packet id, hardware protocol,
  hook), optional attributes (interfaces, ``NFQA_MARK``, hardware address, time stamp, ...) and
  ``NFQA_PAYLOAD``, the IP packet, last (``nfqnl_build_packet_message``);
* ``NFQNL_MSG_VERDICT`` (us to kernel): ``NFQA_VERDICT_HDR`` (verdict and id), and
  ``NFQA_PAYLOAD`` when the packet was rewritten (``nfqnl_mangle`` replaces its content);
  ``NFQNL_MSG_VERDICT_BATCH`` gives one verdict to every queued packet up to an id.

Batching: the kernel sends one datagram per queued packet, so several packets per system call
need ``recvmmsg(2)``, which Python's socket module lacks; it is called through ctypes (on CPython
and PyPy alike, one call per batch) into one preallocated buffer of fixed slots. Verdicts are
concatenated and sent in one ``send``: nfnetlink handles every message of a datagram in turn
(``netlink_rcv_skb``), answering only those that fail (no ``NLM_F_ACK`` on verdicts), with an
``NLMSG_ERROR`` that the receive path counts.

Packet ids are kept as they are on the wire: :func:`parse_packet` returns the id's four bytes read
in host order (a *handle*) and the verdict builders write it back the same way, which saves two
byte swaps per packet. :func:`packet_id` and :func:`handle_of` convert.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import socket
import struct
import time
from collections.abc import Sequence

__all__ = [
    "COPY_PACKET",
    "F_FAIL_OPEN",
    "F_GSO",
    "NF_ACCEPT",
    "NF_DROP",
    "NLMSG_ERROR",
    "QueueSocket",
    "VerdictBatch",
    "config_messages",
    "handle_of",
    "packet_id",
    "parse_error",
    "parse_packet",
    "unbind_message",
    "verdict_batch_message",
    "verdict_message",
]

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
# Error messages carry only the failed request's header, not the whole request (a verdict with
# its payload): less to receive, nothing lost (include/uapi/linux/netlink.h).
NETLINK_CAP_ACK = 10

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4

NFNL_SUBSYS_QUEUE = 3
NFNETLINK_V0 = 0
MSG_PACKET = NFNL_SUBSYS_QUEUE << 8 | 0  # NFQNL_MSG_PACKET
MSG_VERDICT = NFNL_SUBSYS_QUEUE << 8 | 1  # NFQNL_MSG_VERDICT
MSG_CONFIG = NFNL_SUBSYS_QUEUE << 8 | 2  # NFQNL_MSG_CONFIG
MSG_VERDICT_BATCH = NFNL_SUBSYS_QUEUE << 8 | 3  # NFQNL_MSG_VERDICT_BATCH

# enum nfqnl_attr_type
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_MARK = 3
NFQA_PAYLOAD = 10
# enum nfqnl_attr_config
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
# enum nfqnl_msg_config_cmds
CMD_BIND = 1
CMD_UNBIND = 2
CMD_PF_BIND = 3
# enum nfqnl_config_mode
COPY_PACKET = 2
# NFQA_CFG_F_*
F_FAIL_OPEN = 0x1
F_GSO = 0x4

NF_DROP = 0
NF_ACCEPT = 1
# nla_type's top bits are flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
_NLA_TYPE_MASK = 0x3FFF

_NLMSG = struct.Struct("=IHHII")  # struct nlmsghdr
_NFGEN = struct.Struct("!BBH")  # struct nfgenmsg: family, version, res_id (network order)
_NLA = struct.Struct("=HH")  # struct nlattr
_U32 = struct.Struct("=I")
_BE32 = struct.Struct("!I")
_ERRNO = struct.Struct("=i")  # struct nlmsgerr's error: 0 (an ack) or -errno
_HEADER = _NLMSG.size + _NFGEN.size  # nlmsghdr + nfgenmsg: 20 bytes
# NFQA_PACKET_HDR is the first attribute: its packet id at 24, the next attribute at 32
# (struct nfqnl_msg_packet_hdr is 7 bytes, padded to 8).
_ID_AT = _HEADER + _NLA.size
_ATTRS_AT = _HEADER + 12
_HEAD = struct.Struct("=IH18xI")  # nlmsg_len, nlmsg_type, packet id
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # by length % 4
_PAD_LEN = (0, 3, 2, 1)


def _be_as_host(value: int) -> int:
    """The host-order reading of ``value``'s four network-order bytes."""
    return int(_U32.unpack(_BE32.pack(value))[0])


def packet_id(handle: int) -> int:
    """The kernel's packet id of a handle from :func:`parse_packet`."""
    return _be_as_host(handle)  # the swap is its own inverse


def handle_of(ident: int) -> int:
    """The handle of packet id ``ident`` (what the verdict builders take)."""
    return _be_as_host(ident)


def _attr(kind: int, value: bytes) -> bytes:
    return _NLA.pack(_NLA.size + len(value), kind) + value + _PAD[len(value) % 4]


def _message(kind: int, flags: int, seq: int, queue_num: int, attrs: bytes, family: int) -> bytes:
    body = _NFGEN.pack(family, NFNETLINK_V0, queue_num) + attrs
    return _NLMSG.pack(_NLMSG.size + len(body), kind, flags, seq, 0) + body


def config_messages(
    queue_num: int,
    copy_range: int,
    max_len: int,
    flags: int,
    mask: int,
    seq: int,
) -> list[bytes]:
    """The configuration that binds ``queue_num`` (each with ``NLM_F_ACK``, sequence numbers from
    ``seq`` on): PF_BIND for IPv4 (a no-op since Linux 3.8), BIND, copy the whole packet up to
    ``copy_range`` bytes, the queue's length, and ``flags`` (NFQA_CFG_F_*) under ``mask``."""
    req = NLM_F_REQUEST | NLM_F_ACK

    def command(cmd: int, pf: int = 0) -> bytes:
        return _attr(NFQA_CFG_CMD, struct.pack("!BxH", cmd, pf))

    be32 = _BE32.pack
    attrs = [
        (0, command(CMD_PF_BIND, socket.AF_INET)),
        (queue_num, command(CMD_BIND)),
        (queue_num, _attr(NFQA_CFG_PARAMS, struct.pack("!IB", copy_range, COPY_PACKET))),
        (queue_num, _attr(NFQA_CFG_QUEUE_MAXLEN, be32(max_len))),
        (queue_num, _attr(NFQA_CFG_FLAGS, be32(flags)) + _attr(NFQA_CFG_MASK, be32(mask))),
    ]
    return [
        _message(MSG_CONFIG, req, seq + i, queue, value, 0)
        for i, (queue, value) in enumerate(attrs)
    ]


def unbind_message(queue_num: int, seq: int) -> bytes:
    """NFQNL_CFG_CMD_UNBIND (no ack asked: it is sent on the way out)."""
    cmd = _attr(NFQA_CFG_CMD, struct.pack("!BxH", CMD_UNBIND, 0))
    return _message(MSG_CONFIG, NLM_F_REQUEST, seq, queue_num, cmd, 0)


# A verdict message up to its payload attribute's header, in one pack: nlmsghdr (len, type,
# flags, seq, pid), nfgenmsg (family, version, res_id: its network-order bytes read in host
# order), NFQA_VERDICT_HDR (nlattr, then verdict and id: host-order readings of network-order
# values), and the NFQA_PAYLOAD nlattr.
_VERDICT_PAYLOAD = struct.Struct("=IHHIIBBHHHIIHH")
_VERDICT = struct.Struct("=IHHIIBBHHHII")


def _res_id(queue_num: int) -> int:
    return int(struct.unpack("=H", struct.pack("!H", queue_num))[0])


def _verdict_head(kind: int, res_id: int, host_verdict: int, handle: int) -> bytes:
    """A whole verdict message without payload (NFQNL_MSG_VERDICT or _VERDICT_BATCH)."""
    size = _VERDICT.size
    return _VERDICT.pack(
        size, kind, NLM_F_REQUEST, 0, 0, 0, NFNETLINK_V0, res_id, 12, NFQA_VERDICT_HDR,
        host_verdict, handle,
    )  # fmt: skip


def _payload_head(res_id: int, host_verdict: int, handle: int, n: int) -> bytes:
    """A verdict message with an ``n``-byte payload, up to the payload (which is then padded to
    4 bytes: nlmsg_len counts the padding, the attribute's length does not, as libmnl does)."""
    size = _VERDICT_PAYLOAD.size + ((n + 3) & ~3)
    return _VERDICT_PAYLOAD.pack(
        size, MSG_VERDICT, NLM_F_REQUEST, 0, 0, 0, NFNETLINK_V0, res_id, 12, NFQA_VERDICT_HDR,
        host_verdict, handle, 4 + n, NFQA_PAYLOAD,
    )  # fmt: skip


def verdict_message(
    queue_num: int, handle: int, verdict: int, payload: bytes | bytearray | None = None
) -> bytes:
    """NFQNL_MSG_VERDICT for one packet; with ``payload``, the packet's new content."""
    res_id = _res_id(queue_num)
    if payload is None:
        return _verdict_head(MSG_VERDICT, res_id, _be_as_host(verdict), handle)
    head = _payload_head(res_id, _be_as_host(verdict), handle, len(payload))
    return head + bytes(payload) + _PAD[len(payload) & 3]


def verdict_batch_message(queue_num: int, handle: int, verdict: int) -> bytes:
    """NFQNL_MSG_VERDICT_BATCH: ``verdict`` for every queued packet up to ``handle``'s id."""
    return _verdict_head(MSG_VERDICT_BATCH, _res_id(queue_num), _be_as_host(verdict), handle)


def parse_packet(
    buf: bytes | bytearray | memoryview | mmap.mmap, off: int
) -> tuple[int, int, int, int, int]:
    """The message at ``off``: (type, handle, mark, payload start, payload end).

    Only an NFQNL_MSG_PACKET (type MSG_PACKET) has the other fields; its payload is the IP packet
    (start == end when the message has none), and ``mark`` is 0 when the packet has none.
    ValueError (struct.error) if the buffer ends before the packet header.
    """
    # nlmsg_len, nlmsg_type, and NFQA_PACKET_HDR's packet id at 24, in one unpack.
    length, kind, handle = _HEAD.unpack_from(buf, off)
    if kind != MSG_PACKET:
        return kind, 0, 0, off, off
    end = off + length
    mark = 0
    at = off + _ATTRS_AT
    unpack_attr = _NLA.unpack_from
    while at + 4 <= end:
        size, attr = unpack_attr(buf, at)
        if size < 4:
            break  # malformed: nla_ok() would stop here too
        attr &= _NLA_TYPE_MASK
        if attr == NFQA_PAYLOAD:
            stop = at + size
            return kind, handle, mark, at + 4, stop if stop <= end else end
        if attr == NFQA_MARK:
            mark = _BE32.unpack_from(buf, at + 4)[0]
        at += (size + 3) & ~3
    return kind, handle, mark, end, end


def parse_error(buf: bytes | bytearray | memoryview | mmap.mmap, off: int) -> tuple[int, int]:
    """An NLMSG_ERROR at ``off``: (errno, the failed request's sequence number); errno 0 is an
    acknowledgement."""
    error = _ERRNO.unpack_from(buf, off + _NLMSG.size)[0]
    seq = _NLMSG.unpack_from(buf, off + _NLMSG.size + 4)[3]
    return -error, seq


_HOST_ACCEPT = _be_as_host(NF_ACCEPT)
_HOST_VERDICT = {NF_ACCEPT: _HOST_ACCEPT, NF_DROP: _be_as_host(NF_DROP)}


class VerdictBatch:
    """Verdicts for one received batch, sent in one datagram by :meth:`take`.

    A run of verdicts without payload that follow each other becomes one NFQNL_MSG_VERDICT_BATCH
    (the run ends at the largest id: every earlier packet already has its verdict, in an earlier
    message of the same datagram or an earlier datagram, as the kernel queues in id order).
    """

    __slots__ = ("_parts", "_res_id", "_run", "_run_handle", "_run_len", "batch_runs", "size")

    def __init__(self, queue_num: int, batch_runs: bool = True) -> None:
        self._res_id = _res_id(queue_num)
        self._parts: list[bytes | bytearray] = []
        self._run = 0  # the current run's verdict (host-order reading)
        self._run_handle = 0
        self._run_len = 0
        self.batch_runs = batch_runs
        self.size = 0  # bytes pending

    def add(self, handle: int, verdict: int) -> None:
        """``verdict`` (NF_ACCEPT, NF_DROP) for a packet, unchanged."""
        host = _HOST_VERDICT[verdict]
        if self._run_len:
            if host == self._run and self.batch_runs:
                self._run_handle = handle
                self._run_len += 1
                return
            self._end_run()
        self._run = host
        self._run_handle = handle
        self._run_len = 1

    def rewrite(self, handle: int, payload: bytes | bytearray) -> None:
        """NF_ACCEPT for a packet whose content is now ``payload``."""
        if self._run_len:
            self._end_run()
        n = len(payload)
        pad = n & 3
        # _payload_head inlined: once per NAT packet.
        head = _VERDICT_PAYLOAD.pack(
            _VERDICT_PAYLOAD.size + n + _PAD_LEN[pad], MSG_VERDICT, NLM_F_REQUEST, 0, 0, 0,
            NFNETLINK_V0, self._res_id, 12, NFQA_VERDICT_HDR, _HOST_ACCEPT, handle, 4 + n,
            NFQA_PAYLOAD,
        )  # fmt: skip
        if pad:
            self._parts += (head, payload, _PAD[pad])
        else:
            self._parts += (head, payload)
        self.size += _VERDICT_PAYLOAD.size + n + 3

    def _end_run(self) -> None:
        kind = MSG_VERDICT if self._run_len == 1 else MSG_VERDICT_BATCH
        self._parts.append(_verdict_head(kind, self._res_id, self._run, self._run_handle))
        self.size += _VERDICT.size
        self._run_len = 0

    def take(self) -> bytes:
        """The pending verdicts as one datagram (b"" if none); the batch is empty again."""
        if self._run_len:
            self._end_run()
        if not self._parts:
            return b""
        data = b"".join(self._parts)
        self._parts.clear()
        self.size = 0
        return data


# -- recvmmsg through ctypes ------------------------------------------------------------------


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


def _libc_recvmmsg() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        func = ctypes.CDLL(None, use_errno=True).recvmmsg
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    func.restype = ctypes.c_int
    return func


_MSG_DONTWAIT = 0x40
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
# The largest packet message: the payload (copy range up to 65535) and the attributes before it.
SLOT = 65536 + 4096


class QueueSocket:
    """One bound NFQUEUE: :meth:`receive` a batch of messages into :attr:`buf` (message ``i`` at
    ``i * SLOT``), :meth:`send` verdicts.

    The buffer is an anonymous mapping of ``batch`` slots of 68 KiB: a slot holds the largest
    packet the queue copies, and only the pages packets reach are ever backed by memory.
    ``recvmmsg``: receive with one ``recvmmsg`` call per batch (the default where libc has it),
    or with one ``recv_into`` per message.
    """

    def __init__(
        self,
        queue_num: int,
        *,
        batch: int = 64,
        max_len: int = 16384,
        copy_range: int = 0xFFFF,
        fail_open: bool = False,
        rcvbuf: int = 32 << 20,
        sndbuf: int = 4 << 20,
        recvmmsg: bool | None = None,
    ) -> None:
        self.queue_num = queue_num
        self.batch = batch
        self.max_len = max_len
        self.copy_range = copy_range
        self.fail_open = fail_open
        self.rcvbuf = rcvbuf
        self.sndbuf = sndbuf
        self._recvmmsg = _libc_recvmmsg() if recvmmsg is not False else None
        if recvmmsg and self._recvmmsg is None:
            raise OSError(errno.ENOSYS, "recvmmsg is not available")
        self.sock: socket.socket | None = None
        self.buf = mmap.mmap(-1, batch * SLOT)
        self.view = memoryview(self.buf)
        self._c_buf = (ctypes.c_char * len(self.buf)).from_buffer(self.buf)
        base = ctypes.addressof(self._c_buf)
        self._iov = (_Iovec * batch)()
        self._msgs = (_Mmsghdr * batch)()
        for i in range(batch):
            self._iov[i].iov_base = base + i * SLOT
            self._iov[i].iov_len = SLOT
            self._msgs[i].msg_hdr.msg_iov = ctypes.addressof(self._iov[i])
            self._msgs[i].msg_hdr.msg_iovlen = 1
        self._msgs_addr = ctypes.addressof(self._msgs)
        self._slots = [self.view[i * SLOT : (i + 1) * SLOT] for i in range(batch)]
        self._seq = int(time.time()) & 0xFFFF
        self.enobufs = 0  # times the kernel found the receive buffer full (packets lost)
        self.receives = 0  # system calls that returned messages

    @property
    def uses_recvmmsg(self) -> bool:
        return self._recvmmsg is not None

    def fileno(self) -> int:
        return -1 if self.sock is None else self.sock.fileno()

    def open(self) -> None:
        """Bind the queue; OSError with the kernel's errno if it refuses (EBUSY: bound by another
        process; EPERM: not root)."""
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            sock.bind((0, 0))
            # The kernel queues one message per packet: with the default receive buffer (about
            # 200 KiB) a pause of a few milliseconds overflows it (ENOBUFS); root may raise it
            # past rmem_max. The send buffer must hold a batch of verdicts with payloads
            # (netlink_sendmsg refuses a datagram larger than sk_sndbuf).
            for option, size in ((_SO_RCVBUFFORCE, self.rcvbuf), (_SO_SNDBUFFORCE, self.sndbuf)):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, size)
                except OSError:
                    pass
            try:
                sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            except OSError:
                pass
            flags = F_FAIL_OPEN if self.fail_open else 0
            seq = self._seq
            self._seq += 8
            messages = config_messages(
                self.queue_num, self.copy_range, self.max_len, flags, F_FAIL_OPEN | F_GSO, seq
            )
            # One datagram: the kernel applies them in turn, in this call.
            sock.sendall(b"".join(messages))
            self._await_acks(sock, range(seq, seq + len(messages)))
        except BaseException:
            sock.close()
            raise
        sock.setblocking(False)
        self.sock = sock

    def _await_acks(self, sock: socket.socket, seqs: Sequence[int]) -> None:
        """Read until every configuration message is acknowledged; the first error raises. A
        packet that arrives meanwhile (the queue is live from BIND on) is dropped."""
        waiting = set(seqs)
        sock.settimeout(5.0)
        buf = bytearray(SLOT)
        failure: OSError | None = None
        drops = VerdictBatch(self.queue_num)
        while waiting:
            try:
                n = sock.recv_into(buf)
            except socket.timeout:  # noqa: UP041 - not TimeoutError before Python 3.10
                raise OSError(errno.ETIMEDOUT, "no answer from nfnetlink_queue") from None
            off = 0
            while off + 16 <= n:
                length, kind = struct.unpack_from("=IH", buf, off)
                if kind == NLMSG_ERROR:
                    err, seq = parse_error(buf, off)
                    waiting.discard(seq)
                    if err and failure is None:
                        failure = OSError(err, os.strerror(err))
                elif kind == MSG_PACKET:
                    drops.add(parse_packet(buf, off)[0], NF_DROP)
                off += (length + 3) & ~3 if length >= 16 else n
        data = drops.take()
        if data:
            sock.send(data)
        if failure is not None:
            raise failure

    def receive(self) -> int:
        """Receive up to :attr:`batch` messages without waiting; returns how many (0: none)."""
        sock = self.sock
        assert sock is not None
        recvmmsg = self._recvmmsg
        if recvmmsg is not None:
            while True:
                n = int(recvmmsg(sock.fileno(), self._msgs_addr, self.batch, _MSG_DONTWAIT, None))
                if n > 0:
                    self.receives += 1
                    return n
                if n == 0:
                    return 0
                err = ctypes.get_errno()
                if err == errno.EINTR:
                    continue
                if err == errno.ENOBUFS:
                    # The kernel dropped packets (its receive buffer was full); the socket
                    # works on, and the next call returns what is queued.
                    self.enobufs += 1
                    continue
                if err in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return 0
                raise OSError(err, os.strerror(err))
        n = 0
        recv_into = sock.recv_into
        slots = self._slots
        while n < self.batch:
            try:
                recv_into(slots[n])
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.enobufs += 1
                    continue
                raise
            n += 1
            self.receives += 1
        return n

    def send(self, data: bytes) -> None:
        """Send verdicts (one datagram). ENOBUFS / EAGAIN: waits for room, briefly."""
        sock = self.sock
        assert sock is not None
        for _attempt in range(100):
            try:
                sock.send(data)
                return
            except (BlockingIOError, InterruptedError):
                time.sleep(0.0001)
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                time.sleep(0.0001)
        raise OSError(errno.ENOBUFS, "cannot send verdicts")

    def queue_stats(self) -> dict[str, int]:
        """The queue's line of /proc/net/netfilter/nfnetlink_queue (``nfqnl``'s seq_show)."""
        try:
            with open("/proc/net/netfilter/nfnetlink_queue") as f:
                lines = f.read().splitlines()
        except OSError:
            return {}
        for line in lines:
            fields = line.split()
            if len(fields) >= 8 and fields[0] == str(self.queue_num):
                return {
                    "queue_total": int(fields[2]),
                    "queue_dropped": int(fields[5]),
                    "queue_user_dropped": int(fields[6]),
                }
        return {}

    def close(self) -> None:
        if self.sock is not None:
            # Closing the socket destroys the queue too (NETLINK_URELEASE); unbinding first
            # frees the queue number at once.
            try:
                self.sock.send(unbind_message(self.queue_num, self._seq))
            except OSError:
                pass
            self.sock.close()
            self.sock = None
