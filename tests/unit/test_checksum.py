"""RFC 1071 sums and RFC 1624 incremental updates against a plain reference implementation."""

from __future__ import annotations

import random
import struct
from types import SimpleNamespace
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6

from pylvs.core.checksum import (
    _csum_int,
    _csum_words,
    checksum,
    csum,
    csum_replace,
    fold,
    ip_checksum_ok,
    ipv4_header_checksum,
    l4_checksum,
    l4_checksum_ok,
    pseudo_header_sum,
    update16,
    update32,
    update128,
)
from pylvs.core.packet import Packet, parse_ip
from pylvs.testing.packets import CIP, CIP6, RIP, VIP, VIP6, addr, tcp, udp


def reference_csum(data: bytes) -> int:
    """RFC 1071 section 4.1, word by word with end-around carry."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_rfc1071_example() -> None:
    # RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
    assert csum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


@pytest.mark.parametrize("length", [0, 1, 2, 3, 20, 41, 1500])
def test_csum_matches_reference(length: int) -> None:
    rng = random.Random(length)
    for _ in range(50):
        data = rng.randbytes(length)
        assert csum(data) == reference_csum(data)
    assert csum(b"\xff\xff" * 8) == 0xFFFF
    assert csum(b"\0" * length) == 0


def test_csum_initial_and_fold() -> None:
    assert csum(b"\x00\x01", 0xFFFF) == 1
    assert fold(0) == 0 and fold(0xFFFF) == 0xFFFF and fold(0x1FFFE) == 0xFFFF


def test_incremental_update_equals_recompute() -> None:
    rng = random.Random(1)
    for _ in range(500):
        words = [rng.randrange(1 << 16) for _ in range(10)]
        data = struct.pack("!10H", *words)
        check = checksum(data)
        i = rng.randrange(10)
        new = rng.randrange(1 << 16)
        old = words[i]
        words[i] = new
        assert update16(check, old, new) == checksum(struct.pack("!10H", *words))


def test_update32_and_update128_on_addresses() -> None:
    rng = random.Random(2)
    for width, update in ((32, update32), (128, update128)):
        for _ in range(200):
            other = rng.randbytes(12)
            old = rng.getrandbits(width)
            new = rng.getrandbits(width)
            before = other + old.to_bytes(width // 8, "big")
            after = other + new.to_bytes(width // 8, "big")
            assert update(checksum(before), old, new) == checksum(after)


def test_incremental_update_preserves_an_error() -> None:
    data = bytes(range(40))
    good = checksum(data)
    bad = good ^ 0x0F0F
    new = data[:10] + b"\xab\xcd" + data[12:]
    fixed = checksum(new)
    updated = csum_replace(bad, 0x0A0B, 0xABCD)
    # Wrong by the same one's-complement amount before and after.
    assert (bad - good) % 0xFFFF == (updated - fixed) % 0xFFFF
    assert updated != fixed


def test_ipv4_header_checksum_and_verify() -> None:
    raw = bytes(IP(src=CIP, dst=VIP, ttl=3) / UDP())
    p = parse_ip(raw)
    assert ipv4_header_checksum(raw, 0, 20) == int.from_bytes(raw[10:12], "big")
    assert ip_checksum_ok(raw, p)
    broken = raw[:10] + b"\0\0" + raw[12:]
    assert not ip_checksum_ok(broken, parse_ip(broken))


@pytest.mark.parametrize(
    "pkt",
    [
        tcp(CIP, VIP, 1, 2, "PA", b"abc"),
        udp(CIP, VIP, 1, 2, b"abcd"),
        tcp(CIP6, VIP6, 1, 2, "S", b"x"),
        udp(CIP6, VIP6, 1, 2, b"xyz"),
        IP(src=CIP, dst=VIP) / ICMP(type=8) / b"ping",
        IPv6(src=CIP6, dst=VIP6) / ICMPv6EchoRequest(data=b"ping6"),
    ],
    ids=["tcp4", "udp4", "tcp6", "udp6", "icmp", "icmpv6"],
)
def test_l4_checksum_matches_scapy(pkt: object) -> None:
    raw = bytes(pkt)  # type: ignore[call-overload]
    p = parse_ip(raw)
    field = p.l4 + {6: 16, 17: 6, 1: 2, 58: 2}[p.proto]
    assert l4_checksum(raw, p) == int.from_bytes(raw[field : field + 2], "big")
    assert l4_checksum_ok(raw, p)
    broken = bytearray(raw)
    broken[-1] ^= 1
    assert not l4_checksum_ok(broken, parse_ip(broken))


def test_udp_zero_checksum() -> None:
    raw = bytes(IP(src=CIP, dst=RIP) / UDP(chksum=0) / b"data")
    assert l4_checksum_ok(raw, parse_ip(raw))  # RFC 768: no checksum
    raw6 = bytes(IPv6(src=CIP6, dst=VIP6) / UDP(chksum=0) / b"data")
    assert not l4_checksum_ok(raw6, parse_ip(raw6))  # RFC 8200 8.1: mandatory


def test_pseudo_header_sum_for_both_families() -> None:
    raw = bytes(tcp(CIP, VIP, 1, 2))
    p = parse_ip(raw)
    layout = (
        addr(CIP).to_bytes(4, "big") + addr(VIP).to_bytes(4, "big") + struct.pack("!xBH", 6, 20)
    )
    assert fold(pseudo_header_sum(p.saddr, p.daddr, 6, 20)) == reference_csum(layout)
    s6, d6 = addr(CIP6), addr(VIP6)
    layout6 = s6.to_bytes(16, "big") + d6.to_bytes(16, "big") + struct.pack("!I3xB", 20, 6)
    assert fold(pseudo_header_sum(s6, d6, 6, 20)) == reference_csum(layout6)


def test_fragment_checksum_refused() -> None:
    raw = bytes(IP(src=CIP, dst=VIP, flags="MF") / TCP())
    with pytest.raises(ValueError):
        l4_checksum(raw, parse_ip(raw))


# -- the two implementations of csum (the PyPy one sums machine words) -------------------------


@pytest.mark.parametrize("length", [*range(41), 1499, 1500, 9001])
def test_word_sum_equals_the_integer_sum(length: int) -> None:
    rng = random.Random(length)
    for _ in range(10):
        data = rng.randbytes(length + 3)
        buffers = (data[:length], bytearray(data[:length]), memoryview(data)[3 : 3 + length])
        for buf in buffers:
            for initial in (0, 1, 0xFFFF, rng.getrandbits(130)):
                assert _csum_words(buf, initial) == _csum_int(buf, initial)
    # The cases where only the representation of zero tells them apart.
    for data in (bytes(length), b"\xff" * length, b"\xff\xff" * (length // 2)):
        assert _csum_words(data) == _csum_int(data) == reference_csum(data)


@given(st.binary(max_size=200), st.integers(0, 2**140))
def test_word_sum_property(data: bytes, initial: int) -> None:
    assert _csum_words(data, initial) == _csum_int(data, initial)
    assert _csum_words(memoryview(data)[1:], initial) == _csum_int(data[1:], initial)


def test_ip_checksum_ok_reads_the_five_words_as_csum_would() -> None:
    rng = random.Random(5)
    headers = [bytes(20), b"\xff" * 20, b"\x45" + bytes(19)]
    for _ in range(300):
        header = bytearray(rng.randbytes(20))
        header[0] = 0x45
        if rng.random() < 0.5:
            header[10:12] = b"\0\0"
            header[10:12] = checksum(header).to_bytes(2, "big")
        headers.append(bytes(header))
    for header in headers:
        framed = memoryview(b"\xaa" * 14 + header + b"payload")
        p = cast(Packet, SimpleNamespace(version=4, l3=14, hlen=20))
        assert ip_checksum_ok(framed, p) == (csum(header) == 0xFFFF), header.hex()
