"""Partial (CHECKSUM_PARTIAL) TCP/UDP checksums through NAT: pylvs.core.forward.partial_csum_nat.

A frame whose checksum the device completes holds only the folded pseudo-header sum, not
complemented. After NAT the field must hold the pseudo-header sum of the new addresses (ports are
summed by the device later, so they do not enter it), so that completing the checksum then gives
the full checksum of the rewritten packet (inet_proto_csum_replace4/2 for CHECKSUM_PARTIAL).
"""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP

from pylvs.core.checksum import (
    L4_CHECK_OFFSET,
    csum,
    ip_checksum_ok,
    l4_checksum,
    pseudo_header_sum,
)
from pylvs.core.forward import nat_in, nat_out, partial_csum_nat, partial_csum_replace4
from pylvs.core.packet import parse_ip
from pylvs.testing.packets import addr

CLIENT, VIP, RIP = "192.0.2.7", "203.0.113.10", "198.51.100.11"


def _partial(pkt: IP) -> bytearray:
    """The packet as a sender with checksum offload hands it over: the L4 checksum field holds
    the folded pseudo-header sum (tcp_v4_send_check / udp4_hwcsum)."""
    buf = bytearray(bytes(pkt))
    p = parse_ip(buf)
    off = p.l4 + L4_CHECK_OFFSET[p.proto]
    struct.pack_into(
        "!H", buf, off, csum(b"", pseudo_header_sum(p.saddr, p.daddr, p.proto, p.l4_len))
    )
    return buf


def _complete(buf: bytearray) -> bytearray:
    """What the device does with a partial checksum: sum the L4 bytes (the field included) and
    store the complement (skb_checksum_help)."""
    out = bytearray(buf)
    p = parse_ip(out)
    off = p.l4 + L4_CHECK_OFFSET[p.proto]
    value = csum(memoryview(out)[p.l4 : p.end]) ^ 0xFFFF
    if p.proto == 17 and value == 0:
        value = 0xFFFF
    struct.pack_into("!H", out, off, value)
    return out


def _checksum_ok(buf: bytearray) -> bool:
    p = parse_ip(buf)
    field: int = struct.unpack_from("!H", buf, p.l4 + L4_CHECK_OFFSET[p.proto])[0]
    return field == l4_checksum(buf, p)


def test_replace4_matches_a_fresh_pseudo_header_sum() -> None:
    length = 1480
    old = csum(b"", pseudo_header_sum(addr(CLIENT), addr(VIP), 6, length))
    new = csum(b"", pseudo_header_sum(addr(CLIENT), addr(RIP), 6, length))
    got = partial_csum_replace4(old, addr(VIP), addr(RIP))
    assert got % 0xFFFF == new % 0xFFFF  # 0 and 0xFFFF are the same one's-complement value
    assert partial_csum_replace4(got, addr(RIP), addr(VIP)) % 0xFFFF == old % 0xFFFF


@pytest.mark.parametrize("vport,rport", [(80, 80), (80, 8080), (443, 1)])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_nat_in_then_partial_fix_completes_to_the_right_checksum(
    proto: str, vport: int, rport: int
) -> None:
    payload = bytes(range(256)) * 40  # a 10 KiB "GSO frame": the length does not matter
    l4 = (
        TCP(sport=40000, dport=vport, flags="A", seq=1, ack=1)
        if proto == "tcp"
        else UDP(sport=40000, dport=vport)
    )
    buf = _partial(IP(src=CLIENT, dst=VIP, ttl=64) / l4 / payload)
    p = parse_ip(buf)
    off = p.l4 + L4_CHECK_OFFSET[p.proto]
    (before,) = struct.unpack_from("!H", buf, off)
    nat_in(buf, p, addr(RIP), rport)
    partial_csum_nat(buf, off, before, p.saddr, p.daddr)
    # Still partial: exactly the pseudo-header sum of the new addresses ...
    (field,) = struct.unpack_from("!H", buf, off)
    q = parse_ip(buf)
    assert (q.daddr, q.dport) == (addr(RIP), rport)
    expect = csum(b"", pseudo_header_sum(q.saddr, q.daddr, q.proto, q.l4_len))
    assert field % 0xFFFF == expect % 0xFFFF
    # ... so the device's completion gives the correct checksum of the rewritten packet.
    assert _checksum_ok(_complete(buf))
    assert ip_checksum_ok(buf, q)


def test_nat_out_then_partial_fix() -> None:
    buf = _partial(
        IP(src=RIP, dst=CLIENT) / TCP(sport=8080, dport=40000, flags="PA") / (b"x" * 3000)
    )
    p = parse_ip(buf)
    off = p.l4 + L4_CHECK_OFFSET[p.proto]
    (before,) = struct.unpack_from("!H", buf, off)
    nat_out(buf, p, addr(VIP), 80)
    partial_csum_nat(buf, off, before, p.saddr, p.daddr)
    done = _complete(buf)
    assert _checksum_ok(done)
    scapy = IP(bytes(done))
    assert (scapy.src, scapy[TCP].sport) == (VIP, 80)
    # scapy recomputes both checksums from scratch when they are deleted: they must agree.
    fresh = IP(bytes(done))
    del fresh.chksum
    del fresh[TCP].chksum
    assert bytes(IP(bytes(fresh))) == bytes(done)


def test_without_the_fix_the_full_update_would_be_wrong() -> None:
    """The full-checksum update of nat_in (complemented arithmetic, ports included) applied to a
    partial field does not give a completable checksum when the port changes: the reason
    partial_csum_nat exists."""
    buf = _partial(IP(src=CLIENT, dst=VIP) / TCP(sport=40000, dport=80) / (b"y" * 500))
    p = parse_ip(buf)
    nat_in(buf, p, addr(RIP), 8080)
    assert not _checksum_ok(_complete(buf))
