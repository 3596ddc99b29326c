"""Field-by-field checks of pylvs.core.packet against scapy-built packets."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrRouting
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from pylvs.core.packet import (
    ICMP_DEST_UNREACH,
    IPPROTO_ICMP,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TCP_ACK,
    TCP_PSH,
    TCP_SYN,
    ParseError,
    Reason,
    parse_frame,
    parse_icmp_inner,
    parse_ip,
)
from pylvs.testing.packets import CIP, CIP6, RIP, VIP, VIP6, addr, frame, tcp, udp


def test_ipv4_tcp_fields() -> None:
    pkt = tcp(CIP, VIP, 40000, 80, "PA", b"hello", ip={"ttl": 17, "tos": 0x10, "flags": "DF"})
    raw = bytes(frame(pkt))
    p = parse_frame(raw)
    assert (p.eth, p.vlan, p.l3, p.version, p.hlen) == (0, -1, 14, 4, 20)
    assert (p.saddr, p.daddr) == (addr(CIP), addr(VIP))
    assert (p.proto, p.sport, p.dport) == (IPPROTO_TCP, 40000, 80)
    assert p.tcp_flags == TCP_PSH | TCP_ACK
    assert (p.ttl, p.tos, p.df, p.is_fragment) == (17, 0x10, True, False)
    assert (p.icmp_type, p.icmp_code) == (-1, -1)
    assert p.total_len == len(raw) - 14
    assert p.l4 == 34 and p.l4_len == 20 + 5
    assert p.end == len(raw)
    assert p.has_l4


def test_ipv4_options_move_l4() -> None:
    raw = bytes(tcp(CIP, VIP, 1, 2, ip={"options": [IPOption_Router_Alert()]}))
    p = parse_ip(raw)
    assert p.hlen == 24 and p.l4 == 24
    assert (p.sport, p.dport, p.tcp_flags) == (1, 2, TCP_SYN)


def test_parse_ip_at_offset_and_memoryview() -> None:
    raw = b"\xff" * 7 + bytes(udp(CIP, VIP, 5353, 53))
    p = parse_ip(memoryview(raw), 7)
    assert (p.l3, p.l4, p.proto, p.sport, p.dport) == (7, 27, IPPROTO_UDP, 5353, 53)


def test_vlan_frame() -> None:
    raw = bytes(frame(udp(CIP, VIP, 1, 2), vlan=42))
    p = parse_frame(raw)
    assert p.vlan & 0x0FFF == 42
    assert p.l3 == 18


def test_trailing_padding_is_ignored() -> None:
    raw = bytes(frame(udp(CIP, VIP, 1, 2, b"x"))) + b"\0" * 17
    p = parse_frame(raw)
    assert p.end == 14 + 29 and p.l4_len == 9


def test_ipv6_fields_and_extension_headers() -> None:
    pkt = IPv6(src=CIP6, dst=VIP6, hlim=9, tc=0x28) / IPv6ExtHdrRouting() / UDP(sport=7, dport=8)
    p = parse_ip(bytes(pkt))
    assert (p.version, p.hlen, p.proto, p.sport, p.dport) == (6, 48, IPPROTO_UDP, 7, 8)
    assert (p.saddr, p.daddr, p.ttl, p.tos) == (addr(CIP6), addr(VIP6), 9, 0x28)
    assert p.df  # IPv6 is never fragmented by routers


def test_ipv4_fragments() -> None:
    first = parse_ip(bytes(tcp(CIP, VIP, 1, 2, ip={"flags": "MF", "id": 5})))
    assert first.is_fragment and first.more_fragments and first.frag_offset == 0
    assert first.sport == 1 and first.ident == 5 and first.has_l4
    later = parse_ip(bytes(IP(src=CIP, dst=VIP, proto=6, frag=3) / Raw(b"\xaa" * 20)))
    assert later.is_fragment and later.frag_offset == 3 and not later.more_fragments
    assert (later.sport, later.dport, later.tcp_flags) == (0, 0, 0)
    assert not later.has_l4


def test_ipv6_fragments() -> None:
    later = IPv6(src=CIP6, dst=VIP6) / IPv6ExtHdrFragment(nh=6, offset=2, id=9) / Raw(b"\0" * 8)
    p = parse_ip(bytes(later))
    assert p.is_fragment and p.frag_offset == 2 and p.ident == 9 and p.proto == IPPROTO_TCP
    assert p.sport == 0 and p.hlen == 48


def test_unknown_protocol_parses_without_ports() -> None:
    p = parse_ip(bytes(IP(src=CIP, dst=VIP, proto=99) / Raw(b"abc")))
    assert (p.proto, p.sport, p.dport, p.l4_len) == (99, 0, 0, 3)
    assert not p.has_l4


def test_sctp_ports() -> None:
    raw = bytes(IP(src=CIP, dst=VIP, proto=IPPROTO_SCTP) / Raw(b"\x0b\xb8\x00\x50" + b"\0" * 8))
    p = parse_ip(raw)
    assert (p.sport, p.dport) == (3000, 80)


def test_icmp_inner_partial_quote() -> None:
    quoted = bytes(tcp(VIP, CIP, 80, 40000, "SA", b"z" * 200))[:28]
    raw = bytes(IP(src=RIP, dst=VIP) / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(quoted))
    p = parse_ip(raw)
    assert (p.proto, p.icmp_type, p.icmp_code) == (IPPROTO_ICMP, ICMP_DEST_UNREACH, 4)
    inner = parse_icmp_inner(raw, p)
    assert (inner.l3, inner.saddr, inner.daddr) == (28, addr(VIP), addr(CIP))
    assert (inner.sport, inner.dport, inner.tcp_flags) == (80, 40000, 0)
    assert inner.total_len == 240 and inner.end == len(raw)


def test_icmpv6_inner() -> None:
    from scapy.layers.inet6 import ICMPv6DestUnreach

    quoted = bytes(udp(VIP6, CIP6, 53, 5353))
    raw = bytes(IPv6(src=CIP6, dst=VIP6) / ICMPv6DestUnreach(code=4) / Raw(quoted))
    inner = parse_icmp_inner(raw, parse_ip(raw))
    assert (inner.version, inner.sport, inner.dport) == (6, 53, 5353)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", Reason.TRUNCATED),
        (b"\x45" + b"\0" * 10, Reason.TRUNCATED),
        (bytes(IP(version=7) / TCP()), Reason.BAD_VERSION),
        (bytes(IP(ihl=2) / TCP()), Reason.BAD_IHL),
        (bytes(IP(len=1000) / TCP()), Reason.BAD_TOTAL_LENGTH),
        (bytes(IP(len=10) / TCP()), Reason.BAD_TOTAL_LENGTH),
        (bytes(IP() / TCP(dataofs=2)), Reason.BAD_TCP_OFFSET),
        (bytes(IP(proto=6) / Raw(b"\0" * 19)), Reason.TRUNCATED_L4),
        (bytes(IP(proto=1) / Raw(b"\0" * 4)), Reason.TRUNCATED_L4),
        (bytes(IP(proto=132) / Raw(b"\0" * 11)), Reason.TRUNCATED_L4),
        (bytes(IP(proto=6, flags="MF") / Raw(b"\0" * 8)), Reason.TRUNCATED_L4),
        (bytes(IPv6(src=CIP6, dst=VIP6))[:39], Reason.TRUNCATED),
    ],
)
def test_parse_errors(raw: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_ip(raw)
    assert info.value.reason == reason


def test_parse_frame_errors() -> None:
    with pytest.raises(ParseError) as info:
        parse_frame(bytes(Ether(type=0x88CC) / Raw(b"\0" * 46)))
    assert info.value.reason == Reason.UNKNOWN_ETHERTYPE
    with pytest.raises(ParseError) as info:
        parse_frame(bytes(Ether() / Dot1Q())[:16])
    assert info.value.reason == Reason.TRUNCATED


def test_parse_icmp_inner_refuses_non_errors() -> None:
    raw = bytes(IP() / ICMP(type=8))
    with pytest.raises(ParseError) as info:
        parse_icmp_inner(raw, parse_ip(raw))
    assert info.value.reason == Reason.NOT_ICMP_ERROR
    raw = bytes(IP() / UDP())
    with pytest.raises(ParseError):
        parse_icmp_inner(raw, parse_ip(raw))


def test_repr_names_fields() -> None:
    assert "dport=80" in repr(parse_ip(bytes(tcp(CIP, VIP, 1, 80))))
