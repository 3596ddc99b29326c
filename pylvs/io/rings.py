"""PACKET_MMAP rings: TPACKET_V3 and TPACKET_V2 receive rings, a TPACKET_V2 transmit ring, plus
classic BPF.

Layouts are those of ``include/uapi/linux/if_packet.h`` and ``Documentation/networking/
packet_mmap.rst`` (x86-64, little-endian host order):

* V3 receive: the ring is ``block_nr`` blocks of ``block_size`` bytes. A block belongs to user
  space while ``block_status & TP_STATUS_USER``; it holds ``num_pkts`` frames chained by
  ``tp_next_offset``, each a ``tpacket3_hdr`` then, at ``tp_mac``, the Ethernet frame. The kernel
  hands a block over when it is full or ``retire_blk_tov`` ms after its first frame, so one
  ``poll`` wake-up and one status write cover a whole batch of frames.
* V2 receive (:class:`RxRingV2`): ``frame_nr`` fixed slots, each with its own ``tp_status``
  that the kernel sets to ``TP_STATUS_USER`` as soon as the frame is written: no block to wait
  for (see the class for why that matters, and for frames bigger than a slot).
* V2 transmit: ``frame_nr`` fixed slots of ``frame_size`` bytes; a ``tpacket2_hdr`` then, at
  offset 32 (``TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)``), the frame. User space fills slots
  whose status is ``TP_STATUS_AVAILABLE``, marks them ``TP_STATUS_SEND_REQUEST``, and one
  ``send()`` transmits every marked slot. ``PACKET_QDISC_BYPASS`` hands frames straight to the
  driver, and ``PACKET_LOSS`` makes the kernel skip a malformed slot instead of stopping. A frame
  the device refuses (``ENOBUFS``) stays marked, and so do the ones after it, until a later
  ``send()``.

Nothing here allocates per packet: frames are read through a memoryview of the mapping, and
written into the transmit mapping with slice assignment.

Segmentation offload (``PACKET_VNET_HDR``, ``vnet=True`` on both rings): every frame is preceded by
a ``struct virtio_net_hdr`` (``include/uapi/linux/virtio_net.h``, little-endian fields on this
host: ``vio_le()`` in ``af_packet.c``). On receive the kernel writes it just before ``tp_mac``
(``tpacket_rcv``: ``h.raw + macoff - sizeof(struct virtio_net_hdr)``): a GRO-merged or
locally-segmentable frame of up to 64 KiB arrives whole, with ``gso_type``/``gso_size`` and, for a
partial checksum (``CHECKSUM_PARTIAL``), ``VIRTIO_NET_HDR_F_NEEDS_CSUM`` with ``csum_start`` (from
the Ethernet header) and ``csum_offset``. On transmit the same header before the frame makes the
kernel rebuild that skb (``virtio_net_hdr_to_skb``): the device, or the software GSO of
``validate_xmit_skb``, cuts it into MTU-sized segments and completes the checksums. Transmit-ring
slots are sized for MTU frames, so a frame bigger than a slot, and any GSO frame, goes out
through a second, ring-less socket with one ``sendmsg`` (after the ring is flushed: the two keep
their order). That socket does not bypass the qdisc layer: ``__dev_direct_xmit`` drops a frame
the device cannot segment itself, where ``dev_queue_xmit`` segments it in software.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import socket
import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = [
    "ETH_P_IP",
    "PACKET_FANOUT_CBPF",
    "PACKET_FANOUT_FLAG_IGNORE_OUTGOING",
    "PACKET_FANOUT_HASH",
    "TP_STATUS_COPY",
    "TP_STATUS_CSUMNOTREADY",
    "TP_STATUS_KERNEL",
    "TP_STATUS_USER",
    "V2_HDR",
    "V3_HDR",
    "VIRTIO_NET_HDR_F_DATA_VALID",
    "VIRTIO_NET_HDR_F_NEEDS_CSUM",
    "VIRTIO_NET_HDR_GSO_ECN",
    "VIRTIO_NET_HDR_GSO_NONE",
    "VIRTIO_NET_HDR_GSO_TCPV4",
    "VIRTIO_NET_HDR_GSO_TCPV6",
    "VIRTIO_NET_HDR_GSO_UDP",
    "VIRTIO_NET_HDR_GSO_UDP_L4",
    "VNET_HDR",
    "VNET_HDR_LEN",
    "VNET_NONE",
    "Bpf",
    "RxRing",
    "RxRingV2",
    "TxRing",
    "VnetHdr",
    "attach_filter",
    "bpf",
    "client_hash_program",
    "client_hash_program6",
    "host_filter",
    "join_fanout",
    "parse_vnet",
    "set_fanout_program",
    "vnet_header",
]

SOL_PACKET = 263
_SO_ATTACH_FILTER = 26
_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33
_PACKET_RX_RING = 5
_PACKET_STATISTICS = 6
_PACKET_VERSION = 10
_PACKET_TX_RING = 13
_PACKET_LOSS = 14
_PACKET_FANOUT = 18
_PACKET_COPY_THRESH = 7
_PACKET_VNET_HDR = 15
_PACKET_QDISC_BYPASS = 20
_PACKET_FANOUT_DATA = 22
_PACKET_IGNORE_OUTGOING = 23
_TPACKET_V2 = 1
_TPACKET_V3 = 2

PACKET_FANOUT_HASH = 0
PACKET_FANOUT_CBPF = 6
PACKET_FANOUT_FLAG_IGNORE_OUTGOING = 0x4000

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_ALL = 0x0003

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_COPY = 1 << 1  # V2: the slot holds a cut copy; the whole frame is on the socket
TP_STATUS_CSUMNOTREADY = 1 << 3
_TP_STATUS_AVAILABLE = 0
_TP_STATUS_SEND_REQUEST = 1

# tpacket3_hdr: tp_next_offset, (tp_sec, tp_nsec), tp_snaplen, tp_len, tp_status, tp_mac, tp_net
V3_HDR = struct.Struct("<I8xIIIHH")

# tpacket2_hdr: tp_status, tp_len, tp_snaplen, tp_mac, tp_net
V2_HDR = struct.Struct("<IIIHH")

# struct virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_HDR = struct.Struct("<BBHHHH")
VNET_HDR_LEN = 10
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1  # the checksum at csum_start + csum_offset is partial
VIRTIO_NET_HDR_F_DATA_VALID = 2  # receive: the checksum was verified (CHECKSUM_UNNECESSARY)
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_UDP = 3
VIRTIO_NET_HDR_GSO_TCPV6 = 4
VIRTIO_NET_HDR_GSO_UDP_L4 = 5
VIRTIO_NET_HDR_GSO_ECN = 0x80
VNET_NONE = bytes(VNET_HDR_LEN)  # a plain frame: full checksums, no segmentation
_VNET_LINEAR = struct.Struct("<2xH6x")  # a plain frame's header with hdr_len only
_U32 = struct.Struct("<I")
_BLOCK_HDR = struct.Struct("<II")  # block_status, num_pkts at offset 8
_BLOCK_FIRST = struct.Struct("<I")  # offset_to_first_pkt at offset 16
_TX_HDR = struct.Struct("<II")  # tp_status, tp_len
_TX_DATA = 32  # TPACKET_ALIGN(sizeof(struct tpacket2_hdr))


class VnetHdr(NamedTuple):
    """A ``struct virtio_net_hdr`` (offsets from the start of the Ethernet frame)."""

    flags: int
    gso_type: int
    hdr_len: int
    gso_size: int
    csum_start: int
    csum_offset: int


def parse_vnet(buf: bytes | bytearray | memoryview, offset: int = 0) -> VnetHdr:
    """The virtio_net_hdr at ``offset`` of ``buf``."""
    return VnetHdr(*VNET_HDR.unpack_from(buf, offset))


def vnet_header(
    gso_type: int = VIRTIO_NET_HDR_GSO_NONE,
    gso_size: int = 0,
    hdr_len: int = 0,
    csum_start: int | None = None,
    csum_offset: int = 0,
) -> bytes:
    """A virtio_net_hdr to send before a frame; with ``csum_start`` the frame's checksum at
    ``csum_start + csum_offset`` is partial (VIRTIO_NET_HDR_F_NEEDS_CSUM)."""
    flags = 0 if csum_start is None else VIRTIO_NET_HDR_F_NEEDS_CSUM
    return VNET_HDR.pack(flags, gso_type, hdr_len, gso_size, csum_start or 0, csum_offset)


class RxRing:
    """A TPACKET_V3 receive ring on one AF_PACKET socket (not yet bound)."""

    # A block is handed over when full or timeout_ms after its first frame. At low rates every
    # block is retired by the timeout, so the ring buffers about block_nr * timeout_ms of
    # traffic, and a frame waits up to timeout_ms. Measured: 64 blocks with 1 ms lost frames at
    # 20k packets/s (a 100 ms pause of the process overflowed it); 64 with 8 ms capped short
    # HTTP connections at 2k/s (8 ms per round trip). Many small blocks give both.
    #
    # With ``vnet`` each frame carries a virtio_net_hdr before ``tp_mac`` and may be a 64 KiB
    # GRO/GSO frame: a frame longer than a block (less its header) would be cut to fit
    # (tp_snaplen < tp_len), so the caller sizes blocks for 64 KiB frames.
    def __init__(
        self,
        block_size: int = 1 << 16,
        block_nr: int = 512,
        timeout_ms: int = 1,
        vnet: bool = False,
    ) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.block_size = block_size
        self.block_nr = block_nr
        self.vnet = vnet
        try:
            self.sock.setsockopt(SOL_PACKET, _PACKET_VERSION, _TPACKET_V3)
            if vnet:
                # Before the ring: the kernel refuses it once a ring exists (EBUSY).
                self.sock.setsockopt(SOL_PACKET, _PACKET_VNET_HDR, 1)
            # The frame size only matters for V1/V2; V3 packs frames of any size into blocks.
            req = struct.pack(
                "<7I", block_size, block_nr, 2048, block_size // 2048 * block_nr, timeout_ms, 0, 0
            )
            self.sock.setsockopt(SOL_PACKET, _PACKET_RX_RING, req)
            # Frames this host sends are seen by every tap on the interface (PACKET_OUTGOING):
            # without this a forwarder would receive its own output.
            self.sock.setsockopt(SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
            self.map = mmap.mmap(self.sock.fileno(), block_size * block_nr)
        except OSError:
            self.sock.close()
            raise
        self.view = memoryview(self.map)
        self.block = 0
        self.skipped = 0  # blocks stepped over to catch up with the kernel (see ready())

    def bind(self, ifname: str) -> None:
        # Every EtherType (ETH_P_ALL): IPv4 and IPv6 alike; the socket filter (host_filter)
        # keeps what the data plane serves and rejects the rest in the kernel.
        self.sock.bind((ifname, ETH_P_ALL))

    def fileno(self) -> int:
        return self.sock.fileno()

    def ready(self) -> int:
        """Offset of the current block if user space owns it, else -1."""
        view = self.view
        offset = self.block * self.block_size
        if _U32.unpack_from(view, offset + 8)[0] & TP_STATUS_USER:
            return offset
        # The kernel closes blocks in ring order, so while the cursor is in step with it the
        # block after a block still being filled is one we freed, never a ready one. If it is
        # ready (and the current one still is not, read again after it), the kernel has gone on
        # without this block: waiting here would wait for good while the ring fills up. Step
        # over it; the kernel fills it again on its next lap.
        following = (self.block + 1) % self.block_nr
        next_offset = following * self.block_size
        if _U32.unpack_from(view, next_offset + 8)[0] & TP_STATUS_USER:
            if _U32.unpack_from(view, offset + 8)[0] & TP_STATUS_USER:
                return offset
            self.block = following
            self.skipped += 1
            return next_offset
        return -1

    def frames(self, offset: int) -> tuple[int, int]:
        """(number of frames, offset of the first) of the block at ``offset``."""
        num = _U32.unpack_from(self.view, offset + 12)[0]
        return num, offset + _BLOCK_FIRST.unpack_from(self.view, offset + 16)[0]

    def statistics(self) -> tuple[int, int]:
        """(frames received, frames dropped because the ring was full) since the last call
        (PACKET_STATISTICS resets the kernel's counters)."""
        raw = self.sock.getsockopt(SOL_PACKET, _PACKET_STATISTICS, 12)
        packets, drops, _freeze = struct.unpack("<3I", raw)
        return packets, drops

    def release(self, offset: int) -> None:
        """Give the block back to the kernel and move to the next one."""
        _U32.pack_into(self.view, offset + 8, TP_STATUS_KERNEL)
        self.block = (self.block + 1) % self.block_nr

    def close(self) -> None:
        self.view.release()
        self.map.close()
        self.sock.close()


class RxRingV2:
    """A TPACKET_V2 receive ring on one AF_PACKET socket (not yet bound): one status per frame.

    Against :class:`RxRing` (V3): the kernel hands each frame over as soon as it is written
    (``__packet_set_status`` per frame in ``tpacket_rcv``) and wakes ``poll`` for it, instead
    of holding it in a block until the block is full or ``retire_blk_tov`` (at least 1 ms) has
    passed. At low and medium rates that is the latency of every frame (a TCP handshake crosses
    the director twice); under load the frames still come in batches, one ``poll`` for all
    that arrived meanwhile.

    Slots have a fixed size (``frame_size``): a bigger frame (a 64 KiB GRO/GSO frame with
    ``vnet``) is cut to fit, and with ``PACKET_COPY_THRESH`` the kernel also queues the whole
    frame on the socket and marks the slot ``TP_STATUS_COPY``: :meth:`read_copy` reads it (one
    ``recv`` per big frame; the slot's cut copy is ignored).
    """

    def __init__(self, frame_size: int = 2048, frame_nr: int = 16384, vnet: bool = False) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.frame_size = frame_size
        self.frame_nr = frame_nr
        self.vnet = vnet
        self.copybuf = bytearray(0)
        try:
            self.sock.setsockopt(SOL_PACKET, _PACKET_VERSION, _TPACKET_V2)
            if vnet:
                self.sock.setsockopt(SOL_PACKET, _PACKET_VNET_HDR, 1)
                self.sock.setsockopt(SOL_PACKET, _PACKET_COPY_THRESH, 1)
                # Room for the queued whole frames (64 KiB each) while the loop is busy.
                with contextlib.suppress(OSError):
                    self.sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, 16 << 20)
                self.copybuf = bytearray(VNET_HDR_LEN + (1 << 16) + 64)
            # Blocks of whole frames (a page multiple): frame i is at i * frame_size.
            block_size = max(frame_size, 1 << 16)
            per_block = block_size // frame_size
            req = struct.pack("<4I", block_size, frame_nr // per_block, frame_size, frame_nr)
            self.sock.setsockopt(SOL_PACKET, _PACKET_RX_RING, req)
            self.sock.setsockopt(SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
            self.map = mmap.mmap(self.sock.fileno(), frame_size * frame_nr)
        except OSError:
            self.sock.close()
            raise
        self.view = memoryview(self.map)
        self.index = 0  # the next frame to read
        self.skipped = 0  # frames stepped over to catch up with the kernel (see ready())

    def bind(self, ifname: str) -> None:
        # Every EtherType (ETH_P_ALL): IPv4 and IPv6 alike; the socket filter (host_filter)
        # keeps what the data plane serves and rejects the rest in the kernel.
        self.sock.bind((ifname, ETH_P_ALL))

    def fileno(self) -> int:
        return self.sock.fileno()

    def ready(self) -> int:
        """Offset of the frame at the cursor if user space owns it, else -1.

        As :meth:`RxRing.ready` does for blocks: if the frame after the cursor's is ready and
        the cursor's still is not, the kernel went on without that slot (seen after the ring
        had filled up: from then on it wrote every frame past a slot the reader waited on, and
        the data plane stopped), so the cursor steps over it."""
        view = self.view
        offset = self.index * self.frame_size
        if _U32.unpack_from(view, offset)[0] & TP_STATUS_USER:
            return offset
        following = (self.index + 1) % self.frame_nr
        next_offset = following * self.frame_size
        if _U32.unpack_from(view, next_offset)[0] & TP_STATUS_USER:
            if _U32.unpack_from(view, offset)[0] & TP_STATUS_USER:
                return offset
            self.index = following
            self.skipped += 1
            return next_offset
        return -1

    def read_copy(self) -> int:
        """Read the whole frame of a ``TP_STATUS_COPY`` slot into :attr:`copybuf`: its length
        (virtio_net_hdr included), or -1 if none is queued."""
        try:
            return self.sock.recv_into(self.copybuf, 0, socket.MSG_DONTWAIT | socket.MSG_TRUNC)
        except BlockingIOError:
            return -1

    def statistics(self) -> tuple[int, int]:
        """(frames received, frames dropped because the ring was full) since the last call."""
        raw = self.sock.getsockopt(SOL_PACKET, _PACKET_STATISTICS, 8)
        packets, drops = struct.unpack("<2I", raw)
        return packets, drops

    def close(self) -> None:
        self.view.release()
        self.map.close()
        self.sock.close()


class TxRing:
    """A TPACKET_V2 transmit ring bound to one interface, bypassing the qdisc layer.

    Slots are filled in order at ``index``; the kernel takes them in the same order from its own
    head, which is ``head`` here: ``pending`` slots from ``head`` on are marked
    ``TP_STATUS_SEND_REQUEST`` and not yet taken. The kernel stops at the first slot it cannot
    send and leaves it (and every later one) marked, so a marked slot only leaves the ring through
    a later ``send()``: :meth:`flush` sends whenever ``pending`` is not 0, and counts a slot as
    sent only once the kernel has taken it.
    """

    def __init__(
        self,
        ifname: str,
        frame_size: int = 2048,
        frame_nr: int = 1024,
        burst: int = 64,
        vnet: bool = False,
    ) -> None:
        self.ifname = ifname
        self.vnet = vnet
        self.big: socket.socket | None = None  # vnet: the socket for frames bigger than a slot
        # Frames per send(): a veth delivers each frame into its peer's per-CPU backlog
        # (netdev_max_backlog, 1000), emptied by the softirq between system calls; a longer burst
        # overflows it (ENOBUFS).
        self.burst = burst
        self.frame_size = frame_size
        self.frame_nr = frame_nr
        self.max_frame = frame_size - _TX_DATA
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self.sock.setsockopt(SOL_PACKET, _PACKET_VERSION, _TPACKET_V2)
            if vnet:
                # tpacket_snd then reads a virtio_net_hdr at the start of each slot's data.
                self.sock.setsockopt(SOL_PACKET, _PACKET_VNET_HDR, 1)
            self.sock.setsockopt(SOL_PACKET, _PACKET_LOSS, 1)
            self.sock.setsockopt(SOL_PACKET, _PACKET_QDISC_BYPASS, 1)
            # A slot is free again only when the receiver has freed its skb; each frame in flight
            # counts against the send buffer, so the default (about 200 KiB) caps the frames in
            # flight at a few hundred. SO_SNDBUFFORCE (root) lifts the cap to the ring's size.
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, 4 * frame_size * frame_nr)
            # Block size: a page multiple holding whole frames (the kernel checks both).
            block_size = max(frame_size, mmap.PAGESIZE)
            per_block = block_size // frame_size
            req = struct.pack("<4I", block_size, frame_nr // per_block, frame_size, frame_nr)
            self.sock.setsockopt(SOL_PACKET, _PACKET_TX_RING, req)
            self.map = mmap.mmap(self.sock.fileno(), frame_size * frame_nr)
            # Protocol 0: a transmit-only socket receives nothing.
            self.sock.bind((ifname, 0))
            if vnet:
                # A socket with a transmit ring sends only from the ring (packet_sendmsg), so
                # big frames need a socket of their own.
                # Not PACKET_QDISC_BYPASS: __dev_direct_xmit drops an skb that
                # validate_xmit_skb had to segment (a device without TSO), while
                # dev_queue_xmit sends the segments.
                self.big = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                self.big.setsockopt(SOL_PACKET, _PACKET_VNET_HDR, 1)
                with contextlib.suppress(OSError):
                    self.big.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, 4 << 20)
                self.big.bind((ifname, 0))
        except OSError:
            if self.big is not None:
                self.big.close()
            self.sock.close()
            raise
        self.view = memoryview(self.map)
        self.index = 0  # the next slot to fill
        self.head = 0  # the oldest marked slot the kernel has not taken
        self.pending = 0  # marked slots not taken yet: head, head + 1, ... index - 1
        self.queued = 0  # slots marked since the last flush (the burst count)
        self.sent = 0  # frames the kernel has taken
        self.dropped = 0  # frames not queued: ring full of marked or in-flight slots, too big
        self.device_drops = 0  # send() refused with ENOBUFS (the kernel resends that frame)
        self.errors = 0  # send() failed otherwise (interface down or gone); frames stay marked
        self.big_sent = 0  # vnet: frames sent through the big-frame socket
        if vnet:
            self.max_frame -= VNET_HDR_LEN

    def put(
        self, header: bytes, packet: bytes | bytearray | memoryview, vnet: bytes = VNET_NONE
    ) -> bool:
        """Queue an Ethernet frame (``header`` + ``packet``, after the virtio_net_hdr ``vnet``
        on a ``vnet`` ring); False if the ring is full or the frame too big. :meth:`flush` sends
        what is queued."""
        length = len(header) + len(packet)
        slot = self.index * self.frame_size
        view = self.view
        if length > self.max_frame or (vnet is not VNET_NONE and vnet[1]):
            # Too big for a slot, or a GSO frame (gso_type, byte 1): the big-frame socket.
            if self.big is not None:
                return self._send_big(header, packet, vnet)
            self.dropped += 1
            return False
        # A full window (pending == frame_nr) puts index on head, a slot that may have been
        # taken and freed already but is not reaped yet: it must not be filled twice.
        if self.pending == self.frame_nr or _U32.unpack_from(view, slot)[0] != _TP_STATUS_AVAILABLE:
            # Flush even with nothing queued since the last flush: if the slots ahead are marked
            # ones a refused send() left behind, only a send() frees them; without it the ring
            # would stay full for good.
            self.flush()
            if (
                self.pending == self.frame_nr
                or _U32.unpack_from(view, slot)[0] != _TP_STATUS_AVAILABLE
            ):
                self.dropped += 1
                return False
        start = slot + _TX_DATA
        if self.vnet:
            if vnet is VNET_NONE:
                # hdr_len is how much of the frame tpacket_snd copies into the skb's head; the
                # rest it maps from the ring's pages, which a veth must then copy again
                # (skb_copy_ubufs, for frames crossing network namespaces) into freshly
                # allocated pages. Asking for the whole frame saves that.
                _VNET_LINEAR.pack_into(view, start, length)
            else:
                view[start : start + VNET_HDR_LEN] = vnet
            start += VNET_HDR_LEN
            length += VNET_HDR_LEN
        mid = start + len(header)
        view[start:mid] = header
        view[mid : slot + _TX_DATA + length] = packet
        # The length first, the status last: the kernel takes the slot once it sees the status.
        _U32.pack_into(view, slot + 4, length)
        _U32.pack_into(view, slot, _TP_STATUS_SEND_REQUEST)
        self.index = (self.index + 1) % self.frame_nr
        self.pending += 1
        self.queued += 1
        if self.queued >= self.burst:
            self.flush()
        return True

    def _send_big(self, header: bytes, packet: bytes | bytearray | memoryview, vnet: bytes) -> bool:
        """A frame bigger than a slot (a GSO frame): one sendmsg, after what the ring holds."""
        assert self.big is not None
        self.flush()
        try:
            self.big.sendmsg((vnet, header, packet), (), socket.MSG_DONTWAIT)
        except OSError as exc:
            # ENOBUFS (the peer's backlog is full) as a drop: TCP retransmits the segments.
            if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                self.device_drops += 1
            else:
                self.errors += 1
            return False
        self.big_sent += 1
        self.sent += 1
        return True

    def flush(self) -> None:
        """Transmit every marked frame (one system call, a few when the device refuses one)."""
        if not self.pending:
            return
        self.queued = 0
        for _attempt in range(3):
            before = self.pending
            try:
                self.sock.send(b"", socket.MSG_DONTWAIT)
            except BlockingIOError:
                break  # no send buffer left: the slots stay marked for the next flush
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    # The device dropped one frame (a veth whose peer's backlog is full, or
                    # without carrier); the kernel marked it again and stopped there. Retry
                    # while frames go out (the backlog drains between calls), not while the
                    # first one is refused again: a link without carrier refuses every one.
                    self.device_drops += 1
                    self._reap()
                    if self.pending and self.pending < before:
                        continue
                    break
                # ENETDOWN, ENXIO...: the interface is down or gone. Not raised: the caller is
                # the packet loop, which must keep serving the other interfaces; the frames
                # stay marked and go out once the interface is back.
                self.errors += 1
            break
        self._reap()

    def _reap(self) -> None:
        """Move ``head`` past the slots the kernel has taken (any status but SEND_REQUEST)."""
        view = self.view
        size = self.frame_size
        # The kernel takes slots in order: if the newest marked one is taken, all are.
        last = (self.index - 1) % self.frame_nr
        if _U32.unpack_from(view, last * size)[0] != _TP_STATUS_SEND_REQUEST:
            self.sent += self.pending
            self.head = self.index
            self.pending = 0
            return
        while self.pending and _U32.unpack_from(view, self.head * size)[0] != (
            _TP_STATUS_SEND_REQUEST
        ):
            self.head = (self.head + 1) % self.frame_nr
            self.pending -= 1
            self.sent += 1

    def close(self) -> None:
        self.view.release()
        self.map.close()
        self.sock.close()
        if self.big is not None:
            self.big.close()


# -- classic BPF ------------------------------------------------------------------------------

Bpf = tuple[int, int, int, int]  # (code, jt, jf, k), struct sock_filter

# Opcodes (include/uapi/linux/filter.h)
BPF_LD_W_ABS = 0x20
BPF_LD_H_ABS = 0x28
BPF_LD_B_ABS = 0x30
BPF_JA = 0x05
BPF_LD_H_IND = 0x48
BPF_LDX_B_MSH = 0xB1
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06
BPF_RET_A = 0x16
BPF_TAX = 0x07
BPF_ALU_XOR_X = 0xAC
BPF_ALU_MUL_K = 0x24
BPF_ALU_RSH_K = 0x74
BPF_ALU_AND_K = 0x54
BPF_LDX_IMM = 0x01
SKF_AD_PKTTYPE = -0x1000 + 4


def bpf(code: int, jt: int = 0, jf: int = 0, k: int = 0) -> Bpf:
    return (code, jt, jf, k & 0xFFFFFFFF)


def _fprog(program: Sequence[Bpf]) -> tuple[bytes, ctypes.Array[ctypes.c_char]]:
    """A struct sock_fprog for ``program``; the second value owns the instructions and must stay
    alive until the system call that takes the first has returned."""
    if not 0 < len(program) <= 4096:
        raise ValueError(f"BPF program of {len(program)} instructions")
    code = b"".join(struct.pack("<HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code, len(code))
    return struct.pack("<HxxxxxxQ", len(program), ctypes.addressof(buf)), buf


def attach_filter(sock: socket.socket, program: Sequence[Bpf]) -> None:
    """SO_ATTACH_FILTER: replace the socket filter (atomically, for a socket already bound)."""
    fprog, _keep = _fprog(program)
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


def join_fanout(sock: socket.socket, group: int, mode: int) -> None:
    """Join (or create) fanout group ``group`` of the socket's interface, ignoring outgoing."""
    flags = mode | PACKET_FANOUT_FLAG_IGNORE_OUTGOING
    sock.setsockopt(SOL_PACKET, _PACKET_FANOUT, (group & 0xFFFF) | (flags << 16))


def set_fanout_program(sock: socket.socket, program: Sequence[Bpf]) -> None:
    """PACKET_FANOUT_DATA: the CBPF program of the socket's fanout group (returns the member)."""
    fprog, _keep = _fprog(program)
    sock.setsockopt(SOL_PACKET, _PACKET_FANOUT_DATA, fprog)


def _jump_table(
    load: Bpf, values: Iterable[int], program: list[Bpf], target: str
) -> list[tuple[int, str]]:
    """Append ``load`` then one JEQ per value; returns the JEQs to patch to ``target``."""
    patches: list[tuple[int, str]] = []
    values = list(values)
    if not values:
        return patches
    program.append(load)
    for value in values:
        patches.append((len(program), target))
        program.append(bpf(BPF_JEQ_K, 0, 0, value))
    return patches


def _patch(program: list[Bpf], patches: list[tuple[int, str]], labels: dict[str, int]) -> None:
    for index, label in patches:
        code, _jt, jf, k = program[index]
        distance = labels[label] - index - 1
        if not 0 <= distance <= 255:
            raise ValueError("BPF jump too long")
        program[index] = (code, distance, jf, k)


def host_filter(
    daddrs: Iterable[int] | None,
    saddrs: Iterable[int] = (),
    daddrs6: Iterable[int] | None = (),
    saddrs6: Iterable[int] = (),
) -> list[Bpf]:
    """Socket filter (offsets from the Ethernet header): IPv4 frames addressed to this host
    (PACKET_HOST) whose destination is in ``daddrs`` or whose source is in ``saddrs``; with
    ``daddrs`` None, every such frame. IPv6 frames likewise with ``daddrs6`` / ``saddrs6``
    (128-bit addresses; ``daddrs6`` None: every IPv6 frame to this host). Without IPv6 addresses
    the program is the IPv4 one alone, so IPv4 frames take the same instructions either way."""
    daddrs6 = None if daddrs6 is None else list(daddrs6)
    saddrs6 = list(saddrs6)
    ipv6 = daddrs6 is None or bool(daddrs6) or bool(saddrs6)
    program: list[Bpf] = [
        bpf(BPF_LD_W_ABS, k=SKF_AD_PKTTYPE),
        bpf(BPF_JEQ_K, 1, 0, 0),  # PACKET_HOST; broadcasts and frames for other MACs are not ours
        bpf(BPF_RET_K, k=0),
        bpf(BPF_LD_H_ABS, k=12),
    ]
    v6_jump = -1
    if ipv6:
        program.append(bpf(BPF_JEQ_K, 2, 0, ETH_P_IP))
        v6_jump = len(program)
        program.append(bpf(BPF_JEQ_K, 0, 0, ETH_P_IPV6))  # jt patched: to the IPv6 part
    else:
        program.append(bpf(BPF_JEQ_K, 1, 0, ETH_P_IP))
    program.append(bpf(BPF_RET_K, k=0))
    if daddrs is None:
        program.append(bpf(BPF_RET_K, k=0xFFFFFFFF))
    else:
        patches = _jump_table(bpf(BPF_LD_W_ABS, k=30), daddrs, program, "accept")
        patches += _jump_table(bpf(BPF_LD_W_ABS, k=26), saddrs, program, "accept")
        program.append(bpf(BPF_RET_K, k=0))
        labels = {"accept": len(program)}
        program.append(bpf(BPF_RET_K, k=0xFFFFFFFF))
        _patch(program, patches, labels)
    if not ipv6:
        return program
    code, _jt, jf, k = program[v6_jump]
    program[v6_jump] = (code, len(program) - v6_jump - 1, jf, k)
    if daddrs6 is None:
        program.append(bpf(BPF_RET_K, k=0xFFFFFFFF))
        return program
    # The IPv6 header starts at 14: source address at 22, destination at 38.
    for addr in daddrs6:
        program += _match128(38, addr, [bpf(BPF_RET_K, k=0xFFFFFFFF)])
    for addr in saddrs6:
        program += _match128(22, addr, [bpf(BPF_RET_K, k=0xFFFFFFFF)])
    program.append(bpf(BPF_RET_K, k=0))
    return program


def _match128(offset: int, addr: int, then: list[Bpf]) -> list[Bpf]:
    """Compare the 128-bit address at ``offset`` with ``addr``, a word at a time, and run
    ``then`` when it is equal; an unequal word jumps past the block (so every jump is short and
    the number of addresses is bounded by the program size only, not by 8-bit jump offsets)."""
    block: list[Bpf] = []
    words = [(addr >> (96 - 32 * i)) & 0xFFFFFFFF for i in range(4)]
    for i, word in enumerate(words):
        block.append(bpf(BPF_LD_W_ABS, k=offset + 4 * i))
        # jf: past the remaining loads/compares of this block and past ``then``
        block.append(bpf(BPF_JEQ_K, 0, 2 * (3 - i) + len(then), word))
    return block + then


def _mask128(prefix: int | None) -> list[int]:
    """The four 32-bit words of an IPv6 netmask of ``prefix`` bits (None: no mask)."""
    if prefix is None:
        return [0xFFFFFFFF] * 4
    mask = ((1 << 128) - 1) ^ ((1 << (128 - prefix)) - 1)
    return [(mask >> (96 - 32 * i)) & 0xFFFFFFFF for i in range(4)]


def _hash128(offset: int, port: int | None, prefix: int | None) -> list[Bpf]:
    """The IPv6 fanout hash: the four words of the address at ``offset`` (masked to
    ``prefix``) XOR-folded, XOR the 16-bit port at ``port`` (None: no port), then as IPv4."""
    masks = _mask128(prefix)
    program: list[Bpf] = [bpf(BPF_LDX_IMM, k=0)]
    for i, mask in enumerate(masks):
        program.append(bpf(BPF_LD_W_ABS, k=offset + 4 * i))
        if mask != 0xFFFFFFFF:
            program.append(bpf(BPF_ALU_AND_K, k=mask))
        program += [bpf(BPF_ALU_XOR_X), bpf(BPF_TAX)]
    if port is not None:
        program += [bpf(BPF_LD_H_ABS, k=port), bpf(BPF_ALU_XOR_X)]
    program += [bpf(BPF_ALU_MUL_K, k=2654435761), bpf(BPF_ALU_RSH_K, k=16), bpf(BPF_RET_A)]
    return program


def client_hash_program6(vaddrs6: Iterable[int], prefix6: int | None, ipv4: list[Bpf]) -> list[Bpf]:
    """:func:`client_hash_program` for IPv6 as well: IPv6 packets (version 6) hash the client's
    address and port as IPv4 ones do (the client is the source of a packet to a virtual
    address, the destination of anything else; ports right after the fixed header); IPv4
    packets run ``ipv4``, the IPv4 program. ``prefix6``: the widest IPv6 persistence prefix."""
    head = [
        bpf(BPF_LD_B_ABS, k=0),
        bpf(BPF_ALU_AND_K, k=0xF0),
        bpf(BPF_JEQ_K, 0, 1, 0x60),
        bpf(BPF_JA, k=len(ipv4)),  # over the IPv4 program (JA's offset is not limited to 8 bits)
    ]
    port_in = None if prefix6 is not None else 40
    port_out = None if prefix6 is not None else 42
    inbound = _hash128(8, port_in, prefix6)
    outbound = _hash128(24, port_out, prefix6)
    program: list[Bpf] = []
    for addr in vaddrs6:
        program += _match128(24, addr, [bpf(BPF_JA, k=0)])  # k patched: to the inbound hash
    jumps = [i for i, insn in enumerate(program) if insn[0] == BPF_JA]
    program += outbound
    start = len(program)
    for i in jumps:
        program[i] = (BPF_JA, 0, 0, start - i - 1)
    return head + ipv4 + program + inbound


def client_hash_program(vaddrs: Iterable[int], prefix: int | None = None) -> list[Bpf]:
    """Fanout program (offsets from the IP header): a hash of the client's address and port.

    A packet to a virtual address comes from the client (saddr, sport); anything else is a reply
    going to it (daddr, dport). Both directions of a connection, including NAT replies that carry
    the real server's address, therefore land on the same worker. With ``prefix`` (a persistence
    netmask) the hash is of the client address masked to that prefix, without the port: all the
    connections one persistence template governs reach one worker. The kernel takes the result
    modulo the number of members (fanout_demux_bpf).
    """
    program: list[Bpf] = []
    patches = _jump_table(bpf(BPF_LD_W_ABS, k=16), vaddrs, program, "inbound")
    if prefix is None:
        # outbound: the client is the destination
        outbound = [bpf(BPF_LDX_B_MSH, k=0), bpf(BPF_LD_H_IND, k=2), bpf(BPF_TAX)]
        inbound = [bpf(BPF_LDX_B_MSH, k=0), bpf(BPF_LD_H_IND, k=0), bpf(BPF_TAX)]
        mask: list[Bpf] = []
    else:
        mask_value = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
        outbound = inbound = [bpf(BPF_LDX_IMM, k=0)]  # no port: X = 0
        mask = [bpf(BPF_ALU_AND_K, k=mask_value)]
    program += [*outbound, bpf(BPF_LD_W_ABS, k=16), *mask]
    patches.append((len(program), "hash"))
    program.append(bpf(0x05))  # BPF_JMP|BPF_JA, k patched below
    labels = {"inbound": len(program)}
    program += [*inbound, bpf(BPF_LD_W_ABS, k=12), *mask]
    labels["hash"] = len(program)
    program += [
        bpf(BPF_ALU_XOR_X),
        bpf(BPF_ALU_MUL_K, k=2654435761),  # Knuth's multiplicative hash
        bpf(BPF_ALU_RSH_K, k=16),
        bpf(BPF_RET_A),
    ]
    for index, label in patches:
        code, _jt, _jf, k = program[index]
        distance = labels[label] - index - 1
        if code == 0x05:
            program[index] = (code, 0, 0, distance)
        else:
            program[index] = (code, distance, 0, k)
    return program
