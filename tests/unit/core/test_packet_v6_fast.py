"""The IPv6 fast parse (TCP or UDP right after the fixed header) gives exactly what the general
parser gives, and leaves everything else to it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.core.packet import Packet, ParseError, _parse_ip, _parse_ipv6_fast, parse_ip

_SLOTS = Packet.__slots__


def _fields(p: Packet) -> dict[str, object]:
    return {name: getattr(p, name) for name in _SLOTS}


def _ipv6(proto: int, l4: bytes, plen: int | None = None, tc: int = 0, hop: int = 64) -> bytes:
    plen = len(l4) if plen is None else plen
    head = ((6 << 28) | (tc << 20)).to_bytes(4, "big") + plen.to_bytes(2, "big")
    addrs = (0x20010DB8 << 96 | 7).to_bytes(16, "big") + (0x20010DB8 << 96 | 0x10).to_bytes(
        16, "big"
    )
    return head + bytes([proto, hop]) + addrs + l4


@settings(max_examples=400, deadline=None)
@given(
    proto=st.sampled_from([6, 17, 0, 58, 44]),
    l4=st.binary(min_size=0, max_size=80),
    plen_delta=st.integers(-10, 10),
    tc=st.integers(0, 255),
    hop=st.integers(0, 255),
    pad=st.binary(max_size=6),
)
def test_fast_parse_agrees_with_the_general_parser(
    proto: int, l4: bytes, plen_delta: int, tc: int, hop: int, pad: bytes
) -> None:
    plen = max(0, min(0xFFFF, len(l4) + plen_delta))
    data = _ipv6(proto, l4, plen, tc, hop) + pad
    try:
        general: Packet | None = _parse_ip(data, 0, len(data), False)
    except ParseError:
        general = None
    fast = _parse_ipv6_fast(data, 0, len(data)) if len(data) >= 48 else None
    if fast is not None:
        assert general is not None
        assert _fields(fast) == _fields(general)
        assert proto in (6, 17)
    # parse_ip answers as the general parser does, through whichever path.
    try:
        got: Packet | None = parse_ip(data)
    except ParseError:
        got = None
    assert (got is None) == (general is None)
    if got is not None and general is not None:
        assert _fields(got) == _fields(general)


def test_fast_parse_takes_the_common_cases() -> None:
    tcp = (
        (1).to_bytes(2, "big") + (80).to_bytes(2, "big") + bytes(8) + bytes([0x50, 0x02]) + bytes(6)
    )
    p = _parse_ipv6_fast(_ipv6(6, tcp), 0, 60)
    assert p is not None and (p.proto, p.dport, p.tcp_flags, p.total_len) == (6, 80, 2, 60)
    udp = bytes([0, 1, 0, 53, 0, 8, 0, 0])
    p = _parse_ipv6_fast(_ipv6(17, udp), 0, 48)
    assert p is not None and (p.proto, p.dport, p.tcp_flags, p.l4_len) == (17, 53, 0, 8)
    assert _parse_ipv6_fast(_ipv6(0, bytes(8) + udp), 0, 56) is None  # hop-by-hop first
