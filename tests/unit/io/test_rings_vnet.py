"""PACKET_VNET_HDR in the AF_PACKET data plane: virtio_net_hdr layout, and what the data plane
does with a partial-checksum or GSO frame (pylvs.io.afpacket.DataPlane._offloaded), on crafted
frames with a real engine and a fake transmit ring."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

from pylvs.core.checksum import L4_CHECK_OFFSET, csum, l4_checksum, pseudo_header_sum
from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.engine import Engine
from pylvs.core.packet import parse_ip
from pylvs.core.service import IPPROTO_TCP, FwdMethod
from pylvs.io import afpacket
from pylvs.io.nexthop import Hop
from pylvs.io.rings import (
    V2_HDR,
    V3_HDR,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VIRTIO_NET_HDR_GSO_UDP_L4,
    VNET_HDR_LEN,
    VNET_NONE,
    VnetHdr,
    parse_vnet,
    vnet_header,
)

CLIENT, VIP, RIP = "192.0.2.7", "203.0.113.10", "198.51.100.11"
ETH = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"


def _int(text: str) -> int:
    return int.from_bytes(bytes(int(x) for x in text.split(".")), "big")


# -- the header itself -----------------------------------------------------------------------


def test_vnet_header_layout_is_little_endian_virtio_net_hdr() -> None:
    raw = vnet_header(VIRTIO_NET_HDR_GSO_TCPV4, gso_size=1448, hdr_len=66, csum_start=34,
                      csum_offset=16)  # fmt: skip
    assert len(raw) == VNET_HDR_LEN == 10
    # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset (include/uapi/linux/virtio_net.h)
    assert raw == bytes([1, 1, 66, 0, 0xA8, 0x05, 34, 0, 16, 0])
    assert parse_vnet(raw) == VnetHdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 1, 66, 1448, 34, 16)
    assert parse_vnet(b"xx" + raw, 2) == parse_vnet(raw)
    assert vnet_header() == VNET_NONE == bytes(10)
    assert parse_vnet(VNET_NONE) == VnetHdr(0, VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0, 0)


def test_v3_frame_header_gives_snaplen_and_len() -> None:
    # tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status, mac, net
    raw = struct.pack("<IIIIIIHH", 2048, 1, 2, 1400, 65000, 9, 82, 96)
    assert V3_HDR.unpack_from(raw) == (2048, 1400, 65000, 9, 82, 96)


def test_v2_frame_header() -> None:
    # tpacket2_hdr: status, len, snaplen, mac, net (then sec, nsec, vlan tci/tpid, padding)
    raw = struct.pack("<IIIHHIIHH4x", 1 | 2, 65000, 1966, 82, 96, 1, 2, 0, 0)
    assert len(raw) == 32
    assert V2_HDR.unpack_from(raw) == (3, 65000, 1966, 82, 96)


def test_gso_segment_length() -> None:
    tcp = bytes(IP(src=CLIENT, dst=VIP) / TCP(options=[("NOP", None)] * 12) / (b"x" * 100))
    assert afpacket.gso_segment_length(tcp, VIRTIO_NET_HDR_GSO_TCPV4, 1448) == 20 + 32 + 1448
    ecn = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN
    assert afpacket.gso_segment_length(tcp, ecn, 1448) == 20 + 32 + 1448
    udp = bytes(IP(src=CLIENT, dst=VIP) / UDP() / (b"x" * 100))
    assert afpacket.gso_segment_length(udp, VIRTIO_NET_HDR_GSO_UDP_L4, 1472) == 1500
    assert afpacket.gso_segment_length(tcp, VIRTIO_NET_HDR_GSO_TCPV6, 1448) == 0


# -- the data plane ------------------------------------------------------------------------


class FakeTx:
    def __init__(self) -> None:
        self.frames: list[tuple[bytes, bytes, bytes]] = []

    def put(self, header: bytes, packet: Any, vnet: bytes = VNET_NONE) -> bool:
        self.frames.append((bytes(header), bytes(packet), bytes(vnet)))
        return True


class FakeHops:
    def __init__(self, tx: FakeTx) -> None:
        self.hops: dict[int, Hop] = {}
        self.tx = tx

    def resolve(self, addr: int, now: float) -> Hop:
        hop = Hop(self.tx, ETH, "eth0", now + 60, 0.0, True)
        self.hops[addr] = hop
        return hop

    def dropped(self, hop: Hop) -> None:
        raise AssertionError("dropped")


def _plane(fwd: FwdMethod) -> tuple[afpacket.DataPlane, FakeTx]:
    engine = Engine(random.Random(1), kernel_forwards_nat=False, check_ip_checksum=True)
    svc = ServiceSpec(protocol=IPPROTO_TCP, addr=VIP, port=80, scheduler="rr")
    engine.add_service(svc)
    engine.add_dest(svc, DestSpec(addr=RIP, port=8080, fwd=int(fwd)))
    engine.set_path(4, _int(RIP), _int("198.51.100.1"), 1500)
    plane = afpacket.DataPlane(engine, [], vnet=True)
    tx = FakeTx()
    plane.hops = FakeHops(tx)  # type: ignore[assignment]
    return plane, tx


def _offload_frame(pkt: IP, gso_type: int = VIRTIO_NET_HDR_GSO_NONE, gso_size: int = 0
                   ) -> tuple[memoryview, int]:  # fmt: skip
    """A received frame as the ring holds it: virtio_net_hdr, Ethernet header, IP packet with
    a partial TCP checksum (the folded pseudo-header sum). Returns the ring view and where the
    Ethernet header starts."""
    ip = bytearray(bytes(pkt))
    p = parse_ip(ip)
    off = p.l4 + L4_CHECK_OFFSET[p.proto]
    pseudo = csum(b"", pseudo_header_sum(p.saddr, p.daddr, p.proto, p.l4_len))
    struct.pack_into("!H", ip, off, pseudo)
    vnet = vnet_header(gso_type, gso_size, 14 + p.l4 + 20, 14 + p.l4, L4_CHECK_OFFSET[p.proto])
    ring = bytearray(b"\0" * 6 + vnet + ETH + ip)
    return memoryview(ring), 16


def _complete(ip: bytes) -> bytes:
    """skb_checksum_help on the transmitted frame's IP packet."""
    out = bytearray(ip)
    p = parse_ip(out)
    off = p.l4 + L4_CHECK_OFFSET[p.proto]
    struct.pack_into("!H", out, off, csum(memoryview(out)[p.l4 : p.end]) ^ 0xFFFF)
    return bytes(out)


def _handle(plane: afpacket.DataPlane, pkt: IP, **kw: int) -> None:
    view, frame = _offload_frame(pkt, **kw)
    plane._offloaded(view[frame + 14 :], view, frame, 14, 0.0)


def test_nat_keeps_the_checksum_partial_and_right() -> None:
    plane, tx = _plane(FwdMethod.MASQ)
    _handle(plane, IP(src=CLIENT, dst=VIP, ttl=64) / TCP(sport=40000, dport=80, flags="S"))
    payload = b"z" * 30000
    big = IP(src=CLIENT, dst=VIP, ttl=64) / TCP(sport=40000, dport=80, flags="A") / payload
    _handle(plane, big, gso_type=VIRTIO_NET_HDR_GSO_TCPV4, gso_size=1448)
    assert len(tx.frames) == 2
    header, ip, vnet = tx.frames[1]
    assert header == ETH
    v = parse_vnet(vnet)
    assert v.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM and v.gso_type == VIRTIO_NET_HDR_GSO_TCPV4
    assert v.gso_size == 1448 and v.csum_start == 34 and v.csum_offset == 16
    p = parse_ip(ip)
    assert (p.daddr, p.dport, p.total_len) == (_int(RIP), 8080, 20 + 20 + len(payload))
    done = _complete(ip)
    q = parse_ip(done)
    (field,) = struct.unpack_from("!H", done, q.l4 + 16)
    assert field == l4_checksum(done, q)
    assert plane.gso_frames == 1 and plane.gso_dropped == 0
    assert plane.engine.gso_seg_len == 0  # reset after the frame


def test_dr_forwards_a_gso_frame_bigger_than_the_mtu() -> None:
    plane, tx = _plane(FwdMethod.ROUTE)
    _handle(plane, IP(src=CLIENT, dst=VIP, ttl=64) / TCP(sport=40000, dport=80, flags="S"))
    big = IP(src=CLIENT, dst=VIP, ttl=64, flags="DF") / TCP(sport=40000, dport=80, flags="A")
    _handle(plane, big / (b"q" * 20000), gso_type=VIRTIO_NET_HDR_GSO_TCPV4, gso_size=1448)
    _header, ip, vnet = tx.frames[1]
    v = parse_vnet(vnet)
    assert v.gso_type == VIRTIO_NET_HDR_GSO_TCPV4 and v.gso_size == 1448
    p = parse_ip(ip)
    assert p.daddr == _int(VIP) and p.total_len == 20040 and p.ttl == 63
    done = _complete(ip)
    q = parse_ip(done)
    assert struct.unpack_from("!H", done, q.l4 + 16)[0] == l4_checksum(done, q)


def test_gso_frame_whose_segments_exceed_the_mtu_gets_frag_needed() -> None:
    plane, tx = _plane(FwdMethod.ROUTE)
    _handle(plane, IP(src=CLIENT, dst=VIP, ttl=64) / TCP(sport=40000, dport=80, flags="S"))
    big = IP(src=CLIENT, dst=VIP, ttl=64, flags="DF") / TCP(sport=40000, dport=80, flags="A")
    _handle(plane, big / (b"q" * 20000), gso_type=VIRTIO_NET_HDR_GSO_TCPV4, gso_size=4000)
    _header, ip, vnet = tx.frames[1]
    assert vnet == VNET_NONE
    icmp = IP(ip)
    assert icmp.dst == CLIENT and icmp[ICMP].type == 3 and icmp[ICMP].code == 4
    assert icmp[ICMP].nexthopmtu == 1500


def test_tunnel_drops_gso_frames_and_moves_a_partial_checksum() -> None:
    plane, tx = _plane(FwdMethod.TUNNEL)
    _handle(plane, IP(src=CLIENT, dst=VIP, ttl=64) / TCP(sport=40000, dport=80, flags="S"))
    _header, outer, vnet = tx.frames[0]
    v = parse_vnet(vnet)
    assert len(outer) == 60 and v.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM
    assert v.csum_start == 14 + 20 + 20  # Ethernet, outer IP, inner IP
    inner = _complete(outer[20:])
    q = parse_ip(inner)
    assert struct.unpack_from("!H", inner, q.l4 + 16)[0] == l4_checksum(inner, q)
    big = IP(src=CLIENT, dst=VIP, ttl=64) / TCP(sport=40000, dport=80, flags="A")
    _handle(plane, big / (b"q" * 1400), gso_type=VIRTIO_NET_HDR_GSO_TCPV4, gso_size=700)
    assert len(tx.frames) == 1 and plane.gso_dropped == 1


@pytest.mark.parametrize("gso_type", [VIRTIO_NET_HDR_GSO_TCPV6])
def test_gso_kinds_not_forwarded_are_dropped(gso_type: int) -> None:
    plane, tx = _plane(FwdMethod.ROUTE)
    _handle(plane, IP(src=CLIENT, dst=VIP) / TCP(dport=80, flags="S"), gso_type=gso_type,
            gso_size=1000)  # fmt: skip
    assert tx.frames == [] and plane.gso_dropped == 1
