"""Table-driven packet tests: every row of pylvs.testing.packets.vectors() through the packet layer.

Each output is checked twice: byte for byte against the scapy-built expectation, and again by
re-parsing with scapy and recomputing every checksum and length with scapy's own code.
"""

from __future__ import annotations

import pytest

from pylvs.testing.packets import Vector, apply, l4_residual, vectors, verify

ROWS = vectors()


def _ethernet_output(v: Vector) -> bool:
    # In-place rewrites return the whole frame; tun and ICMP generation return an IP packet.
    return v.expect == "packet" and v.op[0] != "tun"


def test_table_covers_every_operation() -> None:
    assert len(ROWS) >= 40
    ops = {v.op[0] for v in ROWS}
    assert ops >= {
        "parse",
        "nat_in",
        "nat_out",
        "nat_icmp_in",
        "nat_icmp_out",
        "dr",
        "tun",
        "ttl",
        "port_unreach",
    }
    assert len({v.name for v in ROWS}) == len(ROWS), "row names must be unique"


@pytest.mark.parametrize("v", ROWS, ids=lambda v: v.name)
def test_vector(v: Vector) -> None:
    kind, out = apply(v.frame, v.op)
    assert kind == v.expect
    if v.expected is None:
        assert out is None or v.op[0] == "parse"
        return
    assert out is not None
    ethernet = _ethernet_output(v)
    # The table itself must be sound: scapy built a valid expectation.
    assert verify(v.expected, ethernet) == []
    if v.bad_checksum:
        _check_bad_checksum_row(v, out)
        return
    assert out.hex() == v.expected.hex()
    assert verify(out, ethernet) == []


def _check_bad_checksum_row(v: Vector, out: bytes) -> None:
    """An incremental update keeps a wrong checksum wrong by the same amount (as IPVS does).

    scapy's checksum over the received bytes (field included) is 0 for a valid packet and a
    non-zero residual otherwise; the rewrite must leave that residual unchanged, and every other
    byte must match the scapy-built correct output.
    """
    assert v.expected is not None
    before = l4_residual(v.frame)
    after = l4_residual(out)
    assert before == after
    index = 0 if v.bad_checksum == "ip" else 1
    assert before[index] != 0
    assert before[1 - index] == 0
    l3 = 14
    ihl = (out[l3] & 15) * 4
    proto = out[l3 + 9]
    field = l3 + 10 if v.bad_checksum == "ip" else l3 + ihl + (16 if proto == 6 else 6)
    masked_out = out[:field] + b"\0\0" + out[field + 2 :]
    masked_exp = v.expected[:field] + b"\0\0" + v.expected[field + 2 :]
    assert masked_out.hex() == masked_exp.hex()
    assert out[field : field + 2] != v.expected[field : field + 2]


@pytest.mark.parametrize(
    "v", [v for v in ROWS if not v.expect.startswith("parse_error")], ids=lambda v: v.name
)
def test_inputs_are_what_they_claim(v: Vector) -> None:
    """Inputs of rows that parse are valid packets, except the deliberately wrong checksums."""
    problems = verify(v.frame, True)
    if v.bad_checksum:
        assert len(problems) == 1
    else:
        assert problems == []


def test_ttl_decrement_then_tunnel_carries_the_new_ttl() -> None:
    """ip_vs_tunnel_xmit decrements the TTL first and copies the result into the outer header."""
    from scapy.layers.inet import IP

    from pylvs.core.forward import decrement_ttl, tun_encap
    from pylvs.core.packet import parse_frame
    from pylvs.testing.packets import CIP, DIP, RIP, VIP, addr, frame, tcp

    buf = bytearray(bytes(frame(tcp(CIP, VIP, 1, 80, ip={"ttl": 64}))))
    p = parse_frame(buf)
    assert decrement_ttl(buf, p)
    out = bytes(tun_encap(buf, p, addr(DIP), addr(RIP), 5))
    assert verify(out, ethernet=False) == []
    outer = IP(out)
    assert (outer.ttl, outer.payload.ttl) == (63, 63)
