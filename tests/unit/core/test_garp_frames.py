"""Gratuitous ARP frames and timing against what heartbeat's IPaddr2 (send_arp) put on the wire."""

from __future__ import annotations

from pathlib import Path

import dpkt
import pytest
from scapy.layers.l2 import ARP, Ether

from pylvs.core.garp import arp_frames, send_arp_schedule

CAPTURE = Path(__file__).resolve().parents[2] / "data" / "heartbeat-ipaddr2-garp.pcap"
MAC = bytes.fromhex("7a0b54a0fce0")
VIP = bytes([10, 77, 0, 100])
# The first ten frames of the capture: IPaddr2 taking 10.77.0.100 over on a node with MAC
# 7a:0b:54:a0:fc:e0 (a request, then a reply, 100 ms apart, five times).
REQUEST = bytes.fromhex(
    "ffffffffffff7a0b54a0fce0080600010800060400017a0b54a0fce00a4d00640000000000000a4d0064"
)
REPLY = bytes.fromhex(
    "ffffffffffff7a0b54a0fce0080600010800060400027a0b54a0fce00a4d00647a0b54a0fce00a4d0064"
)


def test_frames_are_send_arps_byte_for_byte() -> None:
    assert arp_frames(MAC, VIP) == (REQUEST, REPLY)


def test_frames_read_as_gratuitous_arp() -> None:
    for frame, op in zip(arp_frames(MAC, VIP), (1, 2), strict=True):
        arp = Ether(frame)[ARP]
        assert (arp.op, arp.psrc, arp.pdst, arp.hwsrc) == (op, "10.77.0.100", "10.77.0.100",
                                                           "7a:0b:54:a0:fc:e0")  # fmt: skip


def test_schedule_is_send_arps() -> None:
    schedule = send_arp_schedule()
    assert [kind for _t, kind in schedule] == [0, 1] * 5
    assert [t for t, _kind in schedule] == pytest.approx([i / 10 for i in range(10)])


def test_the_real_send_arp_sent_these_frames_on_this_schedule() -> None:
    with CAPTURE.open("rb") as f:
        frames = [(ts, bytes(buf)) for ts, buf in dpkt.pcap.Reader(f)][:10]
    assert [b for _ts, b in frames] == [REQUEST, REPLY] * 5
    offsets = [ts - frames[0][0] for ts, _b in frames]
    for got, (want, _kind) in zip(offsets, send_arp_schedule(), strict=True):
        assert abs(got - want) < 0.01
