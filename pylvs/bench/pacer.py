"""A paced UDP sender for the packet-rate sweep: ``python -m pylvs.bench.pacer`` (in the sender's
namespace).

Why not ``trafgen -b RATEpps``: trafgen 0.6.8's rate shaper sends ``RATE`` frames as fast as it
can and then sleeps out the rest of the second, so "29k pps" is a burst of 29k frames at about
190k pps once a second. A director that queues (NFQUEUE, 16384 packets) loses frames of such a
burst at any average rate; the sweep is meant to measure sustained rates. ``trafgen -t GAP``
sleeps after every frame and cannot pass about 70k pps here.

This sender keeps a TPACKET_V2 transmit ring whose 1024 slots hold the 1024 frames (one per
source port, the flows of :mod:`pylvs.bench.pps`), written once. Sending a frame is then one
status store into its slot; every ``tick`` seconds the frames due by the clock are marked and sent
with one ``send()`` per :data:`_BURST` frames. Bursts are at most ``rate * tick`` frames (300 at
300k pps and 1 ms). When the ring has no free slot (the kernel still holds earlier frames) the
frames are sent late rather than skipped, so every frame counted as due is sent.

Prints one line: ``sent N late M seconds S`` (``late``: ticks that could not send all that was
due).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import mmap
import socket
import struct
import sys
import time
from collections.abc import Sequence

from pylvs.core.checksum import checksum

__all__ = ["build_frames", "main"]

SOL_PACKET = 263
_PACKET_VERSION = 10
_PACKET_TX_RING = 13
_PACKET_QDISC_BYPASS = 20
_TPACKET_V2 = 1
_SO_SNDBUFFORCE = 32
_TP_STATUS_AVAILABLE = 0
_TP_STATUS_SEND_REQUEST = 1
_TX_DATA = 32  # TPACKET2_HDRLEN - sizeof(struct sockaddr_ll): where a V2 slot's frame starts
_FRAME_SIZE = 128  # a slot: header + 60-byte (IPv4) or 80-byte (IPv6) frame, 16-byte aligned
# Frames per send(): the veth hands each frame to its peer's per-CPU backlog (netdev_max_backlog,
# 1000 by default); the burst stays well below it.
_BURST = 64
_U32 = struct.Struct("<I")


def build_frames(
    dmac: bytes, smac: bytes, saddr: str, daddr: str, dport: int, sports: Sequence[int]
) -> list[bytes]:
    """Ethernet/IP/UDP frames (18 payload bytes of 0x41), one per source port, with correct
    checksums: 60 bytes over IPv4, 80 over IPv6 (its 40-byte header) when the addresses are IPv6
    ones."""
    ipv6 = ":" in saddr
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    src = socket.inet_pton(family, saddr)
    dst = socket.inet_pton(family, daddr)
    payload = b"A" * 18
    udp_len = 8 + len(payload)
    frames = []
    for sport in sports:
        udp = bytearray(struct.pack("!HHHH", sport, dport, udp_len, 0) + payload)
        if ipv6:
            # RFC 8200 section 3 (version 6, hop limit 64); RFC 8200 section 8.1 pseudo-header.
            ip = bytearray(struct.pack("!IHBB16s16s", 6 << 28, udp_len, 17, 64, src, dst))
            pseudo = src + dst + struct.pack("!IxxxB", udp_len, 17)
            ethertype = b"\x86\xdd"
        else:
            ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17,
                                       0, src, dst))  # fmt: skip
            struct.pack_into("!H", ip, 10, checksum(bytes(ip)))
            pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
            ethertype = b"\x08\x00"
        struct.pack_into("!H", udp, 6, checksum(pseudo + bytes(udp)) or 0xFFFF)
        frames.append(dmac + smac + ethertype + bytes(ip) + bytes(udp))
    return frames


class _Ring:
    def __init__(self, ifname: str, frames: Sequence[bytes]) -> None:
        self.nr = len(frames)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.sock.setsockopt(SOL_PACKET, _PACKET_VERSION, _TPACKET_V2)
        self.sock.setsockopt(SOL_PACKET, _PACKET_QDISC_BYPASS, 1)
        # Frames in flight count against the send buffer: let the whole ring be in flight.
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, 4 * _FRAME_SIZE * self.nr)
        block = mmap.PAGESIZE
        req = struct.pack("<4I", block, self.nr * _FRAME_SIZE // block, _FRAME_SIZE, self.nr)
        self.sock.setsockopt(SOL_PACKET, _PACKET_TX_RING, req)
        self.map = mmap.mmap(self.sock.fileno(), _FRAME_SIZE * self.nr)
        self.sock.bind((ifname, 0))
        self.view = memoryview(self.map)
        # Each slot keeps its frame: the kernel reads a slot but never writes its data.
        for i, frame in enumerate(frames):
            base = i * _FRAME_SIZE
            self.view[base + _TX_DATA : base + _TX_DATA + len(frame)] = frame
            _U32.pack_into(self.view, base + 4, len(frame))
            _U32.pack_into(self.view, base + 8, len(frame))
        self.index = 0

    def send(self, count: int) -> int:
        """Mark up to ``count`` slots and transmit them; returns how many were marked."""
        view, nr, index = self.view, self.nr, self.index
        marked = 0
        while marked < count:
            batch = 0
            while batch < _BURST and marked < count:
                slot = index * _FRAME_SIZE
                if _U32.unpack_from(view, slot)[0] != _TP_STATUS_AVAILABLE:
                    break
                _U32.pack_into(view, slot, _TP_STATUS_SEND_REQUEST)
                index = index + 1 if index + 1 < nr else 0
                batch += 1
                marked += 1
            if batch:
                self.flush()
            if batch < _BURST and marked < count:
                break  # no free slot: the kernel still holds earlier frames
        self.index = index
        return marked

    def flush(self) -> None:
        for _attempt in range(100):
            try:
                self.sock.send(b"")
                return
            except OSError as exc:
                # ENOBUFS: the peer's backlog was full for one frame; the kernel stopped there
                # and the rest are still marked: send them again.
                if exc.errno != errno.ENOBUFS:
                    raise

    def pending(self) -> bool:
        return any(
            _U32.unpack_from(self.view, i * _FRAME_SIZE)[0] == _TP_STATUS_SEND_REQUEST
            for i in range(self.nr)
        )

    def close(self) -> None:
        self.view.release()
        self.map.close()
        self.sock.close()


def pace(ring: _Ring, rate: int, count: int, tick: float) -> tuple[int, int, float]:
    """Send ``count`` frames at ``rate`` per second; returns (sent, late ticks, seconds)."""
    start = time.monotonic()
    sent = 0
    late = 0
    while sent < count:
        now = time.monotonic()
        due = min(count, int((now - start) * rate) + 1)
        if due > sent:
            done = ring.send(due - sent)
            sent += done
            if sent < due:
                late += 1
        # Sleep until the next tick: at most ``rate * tick`` frames come due meanwhile.
        time.sleep(max(0.0, tick - (time.monotonic() - now)))
    for _wait in range(100):
        if not ring.pending():
            break
        ring.flush()
        time.sleep(0.001)
    return sent, late, time.monotonic() - start


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pylvs.bench.pacer", description=__doc__)
    p.add_argument("--iface", required=True)
    p.add_argument("--dmac", required=True)
    p.add_argument("--smac", required=True)
    p.add_argument("--saddr", required=True)
    p.add_argument("--daddr", required=True)
    p.add_argument("--dport", type=int, required=True)
    p.add_argument("--sport", type=int, default=1024, help="first source port")
    p.add_argument("--flows", type=int, default=1024, help="source ports (ring slots)")
    p.add_argument("--rate", type=int, required=True, help="frames per second")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--tick", type=float, default=0.001)
    args = p.parse_args(argv)
    frames = build_frames(
        bytes.fromhex(args.dmac.replace(":", "")),
        bytes.fromhex(args.smac.replace(":", "")),
        args.saddr,
        args.daddr,
        args.dport,
        range(args.sport, args.sport + args.flows),
    )
    ring = _Ring(args.iface, frames)
    try:
        sent, late, seconds = pace(ring, args.rate, args.count, args.tick)
    finally:
        ring.close()
    print(f"sent {sent} late {late} seconds {seconds:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
