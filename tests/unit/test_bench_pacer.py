"""The paced sender's frames: what trafgen sent before, with valid checksums."""

from __future__ import annotations

import socket
import struct

from pylvs.bench.pacer import build_frames
from pylvs.core.checksum import checksum


def test_frames_are_valid_udp_with_cycling_source_ports() -> None:
    dmac, smac = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    frames = build_frames(dmac, smac, "192.0.2.2", "203.0.113.10", 9000, range(1024, 1028))
    assert len(frames) == 4
    for sport, frame in zip(range(1024, 1028), frames, strict=True):
        assert len(frame) == 60
        assert frame[:12] == dmac + smac and frame[12:14] == b"\x08\x00"
        ip, udp = frame[14:34], frame[34:]
        assert checksum(ip) == 0
        assert ip[12:16] == socket.inet_aton("192.0.2.2")
        assert ip[16:20] == socket.inet_aton("203.0.113.10")
        assert struct.unpack("!HHH", udp[:6]) == (sport, 9000, 26)
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
        assert checksum(pseudo + udp) == 0
        assert udp[8:] == b"A" * 18


def test_ipv6_frames_are_valid_udp_over_ipv6() -> None:
    dmac, smac = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    frames = build_frames(dmac, smac, "2001:db8:1::2", "2001:db8:3::10", 9000, range(1024, 1027))
    assert len(frames) == 3
    src = socket.inet_pton(socket.AF_INET6, "2001:db8:1::2")
    dst = socket.inet_pton(socket.AF_INET6, "2001:db8:3::10")
    for sport, frame in zip(range(1024, 1027), frames, strict=True):
        assert len(frame) == 80  # 14 + 40 + 8 + 18
        assert frame[:12] == dmac + smac and frame[12:14] == b"\x86\xdd"
        ip, udp = frame[14:54], frame[54:]
        # version 6, payload length 26, next header UDP, hop limit 64
        assert struct.unpack("!IHBB", ip[:8]) == (6 << 28, 26, 17, 64)
        assert ip[8:24] == src and ip[24:40] == dst
        assert struct.unpack("!HHH", udp[:6]) == (sport, 9000, 26)
        pseudo = src + dst + struct.pack("!IxxxB", len(udp), 17)  # RFC 8200 section 8.1
        assert checksum(pseudo + udp) == 0
        assert udp[8:] == b"A" * 18
