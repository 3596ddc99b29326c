"""Invariants of the packet layer, checked with hypothesis.

1. Any bytes given to the parsers yield a Packet or raise ParseError, never anything else.
2. NAT rewrites are exact inverses: rewriting and rewriting back restores the original bytes.
3. After rewriting a valid packet every checksum still verifies (checked by scapy, not by pylvs).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from pylvs.core.checksum import ip_checksum_ok, l4_checksum_ok
from pylvs.core.forward import nat_in, nat_out
from pylvs.core.packet import Packet, ParseError, parse_frame, parse_icmp_inner, parse_ip
from pylvs.testing.packets import vectors, verify

SEEDS = [v.frame for v in vectors()]


def _parse_everything(data: bytes) -> None:
    for parse in (parse_frame, parse_ip):
        try:
            p = parse(data)
        except ParseError:
            continue
        assert isinstance(p, Packet)
        assert p.l3 <= p.l4 <= p.end <= len(data)
        try:
            inner = parse_icmp_inner(data, p)
        except ParseError:
            continue
        assert p.l4 < inner.l3 <= inner.end <= p.end


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    _parse_everything(data)


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6),
    st.integers(0, 2000),
)
def test_mutated_packets_parse_or_raise_parse_error(
    seed: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(seed)
    for pos, value in flips:
        if data:
            data[pos % len(data)] = value
    _parse_everything(bytes(data[: max(cut, len(data) // 2)]))


v4 = st.integers(1, (1 << 32) - 1)
v6 = st.integers(1, (1 << 128) - 1)
port = st.integers(0, 65535)


@st.composite
def l4_packets(draw: st.DrawFn) -> bytes:
    """A valid TCP or UDP packet over IPv4 or IPv6 with random addresses, ports and payload."""
    version = draw(st.sampled_from([4, 6]))
    addrs = v4 if version == 4 else v6
    width = 32 if version == 4 else 128
    src, dst = (draw(addrs).to_bytes(width // 8, "big") for _ in range(2))
    if version == 4:
        ip = IP(src=_text(src), dst=_text(dst), ttl=draw(st.integers(1, 255)), id=draw(port))
    else:
        ip = IPv6(src=_text(src), dst=_text(dst))
    payload = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        l4 = TCP(sport=draw(port), dport=draw(port), seq=draw(st.integers(0, 2**32 - 1)))
    else:
        l4 = UDP(sport=draw(port), dport=draw(port))
        if version == 4 and draw(st.booleans()):
            l4.chksum = 0
    return bytes(ip / l4 / Raw(payload))


def _text(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.ip_address(raw))


@settings(max_examples=300, deadline=None)
@given(l4_packets(), st.data())
def test_nat_round_trip_restores_bytes_and_checksums_verify(
    raw: bytes, data: st.DataObject
) -> None:
    p = parse_ip(raw)
    addrs = v4 if p.version == 4 else v6
    rip, rport = data.draw(addrs), data.draw(port)
    vip, vport = data.draw(addrs), data.draw(port)
    buf = bytearray(raw)
    nat_in(buf, p, rip, rport)
    nat_out(buf, p, vip, vport)
    assert verify(bytes(buf), ethernet=False) == []
    q = parse_ip(buf)
    assert (q.daddr, q.dport, q.saddr, q.sport) == (rip, rport, vip, vport)
    assert ip_checksum_ok(buf, q) and l4_checksum_ok(buf, q)
    # Undo both rewrites: every byte, checksums included, comes back.
    nat_in(buf, q, p.daddr, p.dport)
    nat_out(buf, parse_ip(buf), p.saddr, p.sport)
    assert bytes(buf) == raw
