"""Packet tables for the packet layer: scapy-built input frames, the operation, expected outputs.

One :class:`Vector` is one row: a description, an input frame built with scapy, the operation
applied to it (a tuple naming a :mod:`pylvs.core.forward` function and its arguments), the kind of
result expected, and the expected output built with scapy (which computes every checksum itself).
:func:`apply` runs a row through the sans-I/O packet layer; the vector tests compare its output
with the expectation byte for byte and then check it again with :func:`verify`, which re-parses
with scapy and recomputes every checksum with scapy's own routines, never with pylvs code. The
benchmarks run the same rows.

Operations (``Vector.op``):
  ``("parse",)``                      parse only; output is the unchanged frame
  ``("nat_in", rip, rport)``          DNAT to the real server
  ``("nat_out", vip, vport)``         SNAT of a reply
  ``("nat_icmp_in", rip, rport)``     ICMP error from a client about a reply, for the real server
  ``("nat_icmp_out", vip, vport)``    ICMP error from a real server, for the client
  ``("dr", dst_mac, src_mac)``        direct routing
  ``("tun", dip, rip, ident, mtu)``   IPIP encapsulation, or frag-needed/packet-too-big
                                      (from the inner destination) when it does not fit
  ``("ttl", src)``                    TTL decrement, or time exceeded from ``src`` when it expires
  ``("port_unreach", src)``           ICMP port unreachable from ``src``

Result kinds (``Vector.expect``): ``"packet"`` (the rewritten frame, or the new IP packet for
``tun``), ``"icmp"`` (a generated ICMP error, an IP packet), ``"parse_error:<reason>"`` and
``"forward_error:<reason>"``.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert, in4_chksum
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.inet6 import in6_chksum as _scapy_in6_chksum
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

from pylvs.core.forward import (
    ForwardError,
    decrement_ttl,
    dr_rewrite,
    icmp_frag_needed,
    icmp_port_unreachable,
    icmp_time_exceeded,
    nat_icmp_in,
    nat_icmp_out,
    nat_in,
    nat_out,
    tun_encap,
    tun_needs_frag,
)
from pylvs.core.packet import ParseError, parse_frame, parse_icmp_inner

__all__ = [
    "CIP",
    "CIP6",
    "CMAC",
    "DIP",
    "DIP6",
    "DMAC",
    "RIP",
    "RIP6",
    "RMAC",
    "VIP",
    "VIP6",
    "Vector",
    "addr",
    "apply",
    "frame",
    "l4_residual",
    "mac",
    "tcp",
    "udp",
    "vectors",
    "verify",
]

# A scapy packet; scapy ships no type information.
Scapy = Any
# Untyped in scapy; seen through Any so strict mypy accepts the calls.
in6_chksum: Any = _scapy_in6_chksum

CMAC = "02:00:00:00:00:01"  # client-side router
DMAC = "02:00:00:00:00:0d"  # director
RMAC = "02:00:00:00:00:0a"  # real server
CIP, VIP, RIP, DIP = "198.51.100.7", "192.0.2.10", "10.0.0.11", "10.0.0.1"
CIP6, VIP6, RIP6, DIP6 = "2001:db8:c::7", "2001:db8:a::10", "fd00::11", "fd00::1"
ROUTER, ROUTER6 = "203.0.113.1", "2001:db8:f::1"


def addr(text: str) -> int:
    """An IPv4 or IPv6 address as the int the core uses."""
    return int(ipaddress.ip_address(text))


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _ip(src: str, dst: str, **kw: Any) -> Scapy:
    return IPv6(src=src, dst=dst, **kw) if ":" in src else IP(src=src, dst=dst, **kw)


def tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: str = "S",
    payload: bytes = b"",
    ip: dict[str, Any] | None = None,
    **kw: Any,
) -> Scapy:
    """An IPv4 or IPv6 TCP packet (the family follows ``src``)."""
    pkt = _ip(src, dst, **(ip or {})) / TCP(sport=sport, dport=dport, flags=flags, seq=1000, **kw)
    return pkt / Raw(payload) if payload else pkt


def udp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    payload: bytes = b"q",
    ip: dict[str, Any] | None = None,
) -> Scapy:
    """An IPv4 or IPv6 UDP packet (the family follows ``src``)."""
    return _ip(src, dst, **(ip or {})) / UDP(sport=sport, dport=dport) / Raw(payload)


def frame(pkt: Scapy, vlan: int | None = None, src: str = CMAC, dst: str = DMAC) -> Scapy:
    """Wrap an IP packet in Ethernet (and one 802.1Q tag when ``vlan`` is given)."""
    if vlan is not None:
        return Ether(src=src, dst=dst) / Dot1Q(vlan=vlan) / pkt
    return Ether(src=src, dst=dst) / pkt


@dataclass(frozen=True)
class Vector:
    """One row of the packet table."""

    name: str
    frame: bytes
    op: tuple[Any, ...]
    expect: str
    expected: bytes | None = None
    # The input carries a deliberately wrong checksum: the output must equal ``expected`` except
    # in that checksum, and be wrong by the same amount (see test_forward_vectors).
    bad_checksum: str = ""  # "", "ip" or "l4"


def apply(raw: bytes, op: tuple[Any, ...]) -> tuple[str, bytes | None]:
    """Run one operation on a frame through the packet layer: ``(kind, output bytes)``."""
    buf = bytearray(raw)
    name = op[0]
    try:
        p = parse_frame(buf)
        if name == "parse":
            return "packet", bytes(buf)
        if name == "nat_in":
            nat_in(buf, p, addr(op[1]), op[2])
        elif name == "nat_out":
            nat_out(buf, p, addr(op[1]), op[2])
        elif name == "nat_icmp_in":
            nat_icmp_in(buf, p, parse_icmp_inner(buf, p), addr(op[1]), op[2])
        elif name == "nat_icmp_out":
            nat_icmp_out(buf, p, parse_icmp_inner(buf, p), addr(op[1]), op[2])
        elif name == "dr":
            dr_rewrite(buf, mac(op[1]), mac(op[2]))
        elif name == "tun":
            _, dip, rip, ident, mtu = op
            outer_v6 = ":" in dip
            if tun_needs_frag(p, mtu, 40 if outer_v6 else 20):
                # ensure_mtu_is_adequate: advertise the MTU left inside the tunnel.
                reduced = mtu - (40 if outer_v6 else 20)
                return "icmp", bytes(icmp_frag_needed(buf, p, p.daddr, reduced))
            out = tun_encap(buf, p, addr(dip), addr(rip), ident, 6 if outer_v6 else 4)
            return "packet", bytes(out)
        elif name == "ttl":
            if not decrement_ttl(buf, p):
                return "icmp", bytes(icmp_time_exceeded(buf, p, addr(op[1])))
        elif name == "port_unreach":
            return "icmp", bytes(icmp_port_unreachable(buf, p, addr(op[1])))
        else:
            raise AssertionError(f"unknown operation {name}")
    except ParseError as exc:
        return f"parse_error:{exc.reason}", None
    except ForwardError as exc:
        return f"forward_error:{exc.reason}", None
    if len(buf) != len(raw):
        raise AssertionError("an in-place rewrite changed the frame length")
    return "packet", bytes(buf)


# -- independent verification (scapy only) ----------------------------------------------------


def _raw_ip(raw: bytes, ethernet: bool) -> bytes:
    if not ethernet:
        return raw
    ethertype = int.from_bytes(raw[12:14], "big")
    return raw[18:] if ethertype == 0x8100 else raw[14:]


def l4_residual(raw: bytes, ethernet: bool = True) -> tuple[int, int]:
    """scapy's (IPv4 header, TCP/UDP) checksums over the bytes as they are: (0, 0) when valid.

    Summing with the checksum field included gives 0 for a valid packet and otherwise a value
    that measures the error, so equal residuals before and after a rewrite mean "wrong by the
    same amount". IPv4 or IPv6 without extension headers, not fragmented.
    """
    data = _raw_ip(raw, ethernet)
    if data[0] >> 4 == 4:
        ihl = (data[0] & 15) * 4
        data = data[: int.from_bytes(data[2:4], "big")]
        ip_layer = IP(data)
        return int(scapy_checksum(data[:ihl])), int(in4_chksum(data[9], ip_layer, data[ihl:]))
    data = data[: 40 + int.from_bytes(data[4:6], "big")]
    ip6 = IPv6(data)
    return 0, int(in6_chksum(data[6], ip6.payload, data[40:]))


def verify(raw: bytes, ethernet: bool = True) -> list[str]:
    """Problems scapy finds in a packet: lengths and every checksum, ICMP quotes included."""
    problems: list[str] = []
    _verify_ip(_raw_ip(raw, ethernet), problems, quoted=False)
    return problems


def _verify_ip(data: bytes, problems: list[str], quoted: bool) -> None:
    version = data[0] >> 4
    if version == 4:
        ihl = (data[0] & 15) * 4
        total = int.from_bytes(data[2:4], "big")
        if scapy_checksum(data[:ihl]) != 0:
            problems.append("IPv4 header checksum" + (" (quoted)" if quoted else ""))
        if not quoted and total > len(data):
            problems.append(f"IPv4 total length {total} > {len(data)}")
        if quoted and total > len(data):
            return  # a partial quote: its L4 checksum cannot be checked
        data = data[:total]
        frag = int.from_bytes(data[6:8], "big")
        if frag & 0x3FFF:
            return  # a fragment's L4 checksum covers the reassembled datagram
        ip_layer = IP(data)
        proto = data[9]
        l4 = data[ihl:]
        if proto == 1:
            if scapy_checksum(l4) != 0:
                problems.append("ICMP checksum")
            if l4[0] in (3, 4, 5, 11, 12):
                _verify_ip(l4[8:], problems, quoted=True)
        elif proto in (6, 17):
            if proto == 17 and l4[6:8] == b"\0\0":
                return
            if in4_chksum(proto, ip_layer, l4) != 0:
                problems.append(("TCP" if proto == 6 else "UDP") + " checksum")
        elif proto in (4, 41):
            _verify_ip(l4, problems, quoted=False)
    elif version == 6:
        plen = int.from_bytes(data[4:6], "big")
        if quoted and 40 + plen > len(data):
            return
        if not quoted and 40 + plen > len(data):
            problems.append("IPv6 payload length")
        data = data[: 40 + plen]
        ip6 = IPv6(data)
        layer: Scapy = ip6
        while layer.nh in (0, 43, 60):
            layer = layer.payload
        if layer.nh == 44:
            return
        upper = layer.payload
        proto = int(layer.nh)
        l4 = bytes(upper)
        if proto in (6, 17, 58) and in6_chksum(proto, upper, l4) != 0:
            problems.append(f"IPv6 protocol {proto} checksum")
        if proto == 58 and l4[0] < 128:
            _verify_ip(l4[8:], problems, quoted=True)
        elif proto in (4, 41):
            _verify_ip(l4, problems, quoted=False)
    else:
        problems.append(f"IP version {version}")


# -- the table ---------------------------------------------------------------------------------


def _with(pkt: Scapy, **changes: Any) -> Scapy:
    """A copy of ``pkt`` with fields changed (``layer__field=value``) and checksums recomputed."""
    out = pkt.copy()
    for key, value in changes.items():
        layer_name, field = key.split("__")
        setattr(out[layer_name], field, value)
    for layer in (IP, TCP, UDP, ICMP):
        if layer in out:
            out[layer].chksum = None
    if IP in out:
        out[IP].len = None
    return out


def _padded_frame(pkt: Scapy, pad: int) -> bytes:
    return bytes(pkt) + b"\0" * pad


def _icmp4(src: str, dst: str, icmp: Scapy, quoted: bytes, **ip: Any) -> bytes:
    """An ICMP error IP packet as pylvs builds them: id 0, TTL 64, no DF (Linux icmp_send)."""
    ip.setdefault("ttl", 64)
    ip.setdefault("id", 0)
    return bytes(IP(src=src, dst=dst, **ip) / icmp / Raw(quoted))


def _icmp6(src: str, dst: str, icmp: Scapy, quoted: bytes) -> bytes:
    return bytes(IPv6(src=src, dst=dst, hlim=64) / icmp / Raw(quoted))


def _udp_zero_sum_payload() -> bytes:
    """A payload for which the NATed UDP checksum computes to 0 and must be sent as 0xFFFF."""
    # With payload 0 the checksum is c; a payload word of c adds exactly the missing sum.
    base = bytes(IP(src=CIP, dst=RIP, id=1) / UDP(sport=5353, dport=53, chksum=0) / Raw(b"\0\0"))
    payload = int(in4_chksum(17, IP(base), base[20:])).to_bytes(2, "big")
    data = bytes(IP(src=CIP, dst=RIP, id=1) / UDP(sport=5353, dport=53, chksum=0) / Raw(payload))
    if in4_chksum(17, IP(data), data[20:]) != 0:
        raise AssertionError("no zero-checksum payload found")
    return payload


@functools.cache
def vectors() -> tuple[Vector, ...]:
    """The packet table (built once; scapy is slow)."""
    rows: list[Vector] = []

    def row(
        name: str,
        inp: Scapy | bytes,
        op: tuple[Any, ...],
        expect: str,
        expected: Scapy | bytes | None = None,
        bad_checksum: str = "",
    ) -> None:
        raw_in = inp if isinstance(inp, bytes) else bytes(inp)
        raw_out = (
            None
            if expected is None
            else expected
            if isinstance(expected, bytes)
            else bytes(expected)
        )
        rows.append(Vector(name, raw_in, op, expect, raw_out, bad_checksum))

    nat_in_op = ("nat_in", RIP, 8080)
    nat_out_op = ("nat_out", VIP, 80)
    nat_in6_op = ("nat_in", RIP6, 8080)
    nat_out6_op = ("nat_out", VIP6, 80)

    # ---- NAT (masquerading) ---------------------------------------------------------------
    syn = frame(tcp(CIP, VIP, 40000, 80))
    row("nat in: TCP SYN", syn, nat_in_op, "packet", _with(syn, IP__dst=RIP, TCP__dport=8080))
    data = frame(tcp(CIP, VIP, 40000, 80, "PA", b"GET / HTTP/1.0\r\n\r\n!"))
    row(
        "nat in: TCP data, odd length",
        data,
        nat_in_op,
        "packet",
        _with(data, IP__dst=RIP, TCP__dport=8080),
    )
    opts = frame(
        tcp(CIP, VIP, 40000, 80, options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0))])
    )
    row("nat in: TCP options", opts, nat_in_op, "packet", _with(opts, IP__dst=RIP, TCP__dport=8080))
    ipopt = frame(tcp(CIP, VIP, 40000, 80, ip={"options": [IPOption_Router_Alert()]}))
    row(
        "nat in: IPv4 options (IHL 6)",
        ipopt,
        nat_in_op,
        "packet",
        _with(ipopt, IP__dst=RIP, TCP__dport=8080),
    )
    tagged = frame(tcp(CIP, VIP, 40000, 80), vlan=42)
    row(
        "nat in: 802.1Q tagged",
        tagged,
        nat_in_op,
        "packet",
        _with(tagged, IP__dst=RIP, TCP__dport=8080),
    )
    synack = frame(tcp(RIP, CIP, 8080, 40000, "SA"), src=RMAC)
    row(
        "nat out: TCP SYN-ACK",
        synack,
        nat_out_op,
        "packet",
        _with(synack, IP__src=VIP, TCP__sport=80),
    )
    fin = frame(tcp(RIP, CIP, 8080, 40000, "FA", b"bye"), src=RMAC)
    row(
        "nat out: TCP FIN with data",
        fin,
        nat_out_op,
        "packet",
        _with(fin, IP__src=VIP, TCP__sport=80),
    )
    badtcp = frame(tcp(CIP, VIP, 40000, 80, chksum=0x1234))
    row(
        "nat in: wrong TCP checksum stays wrong by the same amount",
        badtcp,
        nat_in_op,
        "packet",
        _with(badtcp, IP__dst=RIP, TCP__dport=8080),
        bad_checksum="l4",
    )
    badip = frame(tcp(CIP, VIP, 40000, 80, ip={"chksum": 0xBEEF}))
    row(
        "nat in: wrong IPv4 header checksum stays wrong by the same amount",
        badip,
        nat_in_op,
        "packet",
        _with(badip, IP__dst=RIP, TCP__dport=8080),
        bad_checksum="ip",
    )
    badudp = frame(udp(RIP, CIP, 53, 5353), src=RMAC)
    badudp[UDP].chksum = 0x0101
    row(
        "nat out: wrong UDP checksum stays wrong by the same amount",
        badudp,
        ("nat_out", VIP, 53),
        "packet",
        _with(badudp, IP__src=VIP, UDP__sport=53),
        bad_checksum="l4",
    )
    first = frame(tcp(CIP, VIP, 40000, 80, "PA", b"x" * 64, ip={"flags": "MF", "id": 77}))
    row(
        "nat in: first fragment (ports and checksum rewritten)",
        first,
        nat_in_op,
        "packet",
        _with(first, IP__dst=RIP, TCP__dport=8080),
    )
    later = frame(IP(src=CIP, dst=VIP, proto=6, frag=9, id=77) / Raw(b"y" * 40))
    row(
        "nat in: later fragment (address only)",
        later,
        nat_in_op,
        "packet",
        _with(later, IP__dst=RIP),
    )
    u = frame(udp(CIP, VIP, 5353, 53, b"\x12\x34query"))
    row("nat in: UDP", u, ("nat_in", RIP, 53), "packet", _with(u, IP__dst=RIP))
    u0 = frame(udp(CIP, VIP, 5353, 53))
    u0[UDP].chksum = 0
    exp0 = _with(u0, IP__dst=RIP, UDP__dport=5300)
    exp0[UDP].chksum = 0
    row("nat in: UDP checksum 0 (none) stays 0", u0, ("nat_in", RIP, 5300), "packet", exp0)
    zpay = _udp_zero_sum_payload()
    uz = frame(udp(CIP, VIP, 5353, 53, zpay))
    expz = _with(uz, IP__dst=RIP)
    row(
        "nat in: UDP checksum computing to 0 is sent as 0xFFFF",
        uz,
        ("nat_in", RIP, 53),
        "packet",
        expz,
    )
    uo = frame(udp(RIP, CIP, 5300, 5353, b"odd"), src=RMAC)
    row(
        "nat out: UDP, odd length",
        uo,
        ("nat_out", VIP, 53),
        "packet",
        _with(uo, IP__src=VIP, UDP__sport=53),
    )
    pad = frame(udp(CIP, VIP, 5353, 53, b"z"))
    row(
        "nat in: Ethernet padding kept, not summed",
        _padded_frame(pad, 17),
        ("nat_in", RIP, 53),
        "packet",
        _padded_frame(_with(pad, IP__dst=RIP), 17),
    )
    syn6 = frame(tcp(CIP6, VIP6, 40000, 80))
    row(
        "nat in: IPv6 TCP SYN",
        syn6,
        nat_in6_op,
        "packet",
        _with(syn6, IPv6__dst=RIP6, TCP__dport=8080),
    )
    sa6 = frame(tcp(RIP6, CIP6, 8080, 40000, "SA", b"hello"), src=RMAC)
    row("nat out: IPv6 TCP", sa6, nat_out6_op, "packet", _with(sa6, IPv6__src=VIP6, TCP__sport=80))
    u6 = frame(udp(CIP6, VIP6, 5353, 53))
    row("nat in: IPv6 UDP", u6, ("nat_in", RIP6, 53), "packet", _with(u6, IPv6__dst=RIP6))
    uo6 = frame(udp(RIP6, CIP6, 53, 5353, b"answer"), src=RMAC)
    row("nat out: IPv6 UDP", uo6, ("nat_out", VIP6, 53), "packet", _with(uo6, IPv6__src=VIP6))
    ext6 = frame(
        IPv6(src=CIP6, dst=VIP6)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / TCP(sport=40000, dport=80, flags="S", seq=1000)
    )
    row(
        "nat in: IPv6 with hop-by-hop and destination options",
        ext6,
        nat_in6_op,
        "packet",
        _with(ext6, IPv6__dst=RIP6, TCP__dport=8080),
    )
    frag6 = frame(
        IPv6(src=CIP6, dst=VIP6)
        / IPv6ExtHdrFragment(m=1, offset=0, id=99)
        / TCP(sport=40000, dport=80, flags="PA", seq=1000)
        / Raw(b"f" * 48)
    )
    row(
        "nat in: IPv6 first fragment",
        frag6,
        nat_in6_op,
        "packet",
        _with(frag6, IPv6__dst=RIP6, TCP__dport=8080),
    )
    later6 = frame(
        IPv6(src=CIP6, dst=VIP6) / IPv6ExtHdrFragment(nh=6, m=0, offset=7, id=99) / Raw(b"g" * 24)
    )
    row("nat in: IPv6 later fragment", later6, nat_in6_op, "packet", _with(later6, IPv6__dst=RIP6))
    gre = frame(IP(src=CIP, dst=VIP, proto=47) / Raw(b"\0\0\x08\0" + b"p" * 20))
    row("parse: unknown protocol (GRE) parses", gre, ("parse",), "packet", gre)
    row("nat in: unknown protocol is refused", gre, nat_in_op, "forward_error:unsupported-protocol")

    # ---- ICMP errors quoting a masqueraded connection (ip_vs_nat_icmp) -----------------------
    reply = tcp(VIP, CIP, 80, 40000, "SA")
    reply_rs = tcp(RIP, CIP, 8080, 40000, "SA")
    icmp_in = frame(IP(src=ROUTER, dst=VIP) / ICMP(type=3, code=1) / Raw(bytes(reply)))
    row(
        "nat icmp in: host unreachable, full TCP quote",
        icmp_in,
        ("nat_icmp_in", RIP, 8080),
        "packet",
        frame(IP(src=ROUTER, dst=RIP) / ICMP(type=3, code=1) / Raw(bytes(reply_rs))),
    )
    ureply = bytes(udp(VIP, CIP, 53, 5353, b"answer-data"))
    ureply_rs = bytes(udp(RIP, CIP, 5300, 5353, b"answer-data"))
    icmp_in8 = frame(
        IP(src=ROUTER, dst=VIP) / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(ureply[:28])
    )
    row(
        "nat icmp in: frag needed, UDP quote of 8 bytes (checksum in quote)",
        icmp_in8,
        ("nat_icmp_in", RIP, 5300),
        "packet",
        frame(
            IP(src=ROUTER, dst=RIP) / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(ureply_rs[:28])
        ),
    )
    treply = bytes(tcp(VIP, CIP, 80, 40000, "PA", b"z" * 100))
    treply_rs = bytes(tcp(RIP, CIP, 8080, 40000, "PA", b"z" * 100))
    icmp_in_t = frame(IP(src=ROUTER, dst=VIP) / ICMP(type=11, code=0) / Raw(treply[:28]))
    row(
        "nat icmp in: time exceeded, TCP quote of 8 bytes",
        icmp_in_t,
        ("nat_icmp_in", RIP, 8080),
        "packet",
        frame(IP(src=ROUTER, dst=RIP) / ICMP(type=11, code=0) / Raw(treply_rs[:28])),
    )
    req_rs = bytes(udp(CIP, RIP, 5353, 5300))
    req = bytes(udp(CIP, VIP, 5353, 53))
    icmp_out = frame(IP(src=RIP, dst=CIP) / ICMP(type=3, code=3) / Raw(req_rs), src=RMAC)
    row(
        "nat icmp out: port unreachable from the real server, UDP",
        icmp_out,
        ("nat_icmp_out", VIP, 53),
        "packet",
        frame(IP(src=VIP, dst=CIP) / ICMP(type=3, code=3) / Raw(req), src=RMAC),
    )
    treq_rs = bytes(tcp(CIP, RIP, 40000, 8080, "S"))
    treq = bytes(tcp(CIP, VIP, 40000, 80, "S"))
    icmp_sq = frame(IP(src=RIP, dst=CIP) / ICMP(type=4, code=0) / Raw(treq_rs), src=RMAC)
    row(
        "nat icmp out: source quench, TCP",
        icmp_sq,
        ("nat_icmp_out", VIP, 80),
        "packet",
        frame(IP(src=VIP, dst=CIP) / ICMP(type=4, code=0) / Raw(treq), src=RMAC),
    )
    reply6 = bytes(tcp(VIP6, CIP6, 80, 40000, "SA", b"v6"))
    reply6_rs = bytes(tcp(RIP6, CIP6, 8080, 40000, "SA", b"v6"))
    row(
        "nat icmp in: IPv6 destination unreachable",
        frame(IPv6(src=ROUTER6, dst=VIP6) / ICMPv6DestUnreach(code=3) / Raw(reply6)),
        ("nat_icmp_in", RIP6, 8080),
        "packet",
        frame(IPv6(src=ROUTER6, dst=RIP6) / ICMPv6DestUnreach(code=3) / Raw(reply6_rs)),
    )
    req6_rs = bytes(udp(CIP6, RIP6, 5353, 5300, b"big"))
    req6 = bytes(udp(CIP6, VIP6, 5353, 53, b"big"))
    row(
        "nat icmp out: IPv6 packet too big from the real server",
        frame(IPv6(src=RIP6, dst=CIP6) / ICMPv6PacketTooBig(mtu=1400) / Raw(req6_rs), src=RMAC),
        ("nat_icmp_out", VIP6, 53),
        "packet",
        frame(IPv6(src=VIP6, dst=CIP6) / ICMPv6PacketTooBig(mtu=1400) / Raw(req6), src=RMAC),
    )
    echo = frame(IP(src=CIP, dst=VIP) / ICMP(type=8, id=1, seq=1))
    row(
        "nat icmp in: echo request quotes nothing",
        echo,
        ("nat_icmp_in", RIP, 80),
        "parse_error:not-icmp-error",
    )
    short = frame(IP(src=ROUTER, dst=VIP) / ICMP(type=3, code=1) / Raw(bytes(reply)[:24]))
    row(
        "nat icmp in: quote shorter than IP header + 8 bytes",
        short,
        ("nat_icmp_in", RIP, 8080),
        "parse_error:truncated-inner",
    )

    # ---- DR (gatewaying) --------------------------------------------------------------------
    drmac = ("dr", RMAC, DMAC)
    d4 = frame(tcp(CIP, VIP, 40000, 80, "PA", b"payload"))
    row(
        "dr: IPv4 TCP, only MACs change",
        d4,
        drmac,
        "packet",
        frame(tcp(CIP, VIP, 40000, 80, "PA", b"payload"), src=DMAC, dst=RMAC),
    )
    d6 = frame(udp(CIP6, VIP6, 5353, 53))
    row("dr: IPv6 UDP", d6, drmac, "packet", frame(udp(CIP6, VIP6, 5353, 53), src=DMAC, dst=RMAC))
    dv = frame(tcp(CIP, VIP, 40000, 80), vlan=7)
    row(
        "dr: 802.1Q tagged",
        dv,
        drmac,
        "packet",
        frame(tcp(CIP, VIP, 40000, 80), vlan=7, src=DMAC, dst=RMAC),
    )

    # ---- TUN (IPIP) -------------------------------------------------------------------------
    t4 = tcp(CIP, VIP, 40000, 80, "PA", b"t" * 100, ip={"flags": "DF", "ttl": 57, "tos": 0x10})
    row(
        "tun: IPv4 TCP with DF, fits",
        frame(t4),
        ("tun", DIP, RIP, 0x1234, 1500),
        "packet",
        IP(src=DIP, dst=RIP, proto=4, ttl=57, tos=0x10, flags="DF", id=0x1234) / Raw(bytes(t4)),
    )
    t4big = udp(CIP, VIP, 5353, 53, b"u" * 1472, ip={"ttl": 60})
    row(
        "tun: IPv4 UDP 1500 bytes without DF (fragmenting is allowed)",
        frame(t4big),
        ("tun", DIP, RIP, 7, 1500),
        "packet",
        IP(src=DIP, dst=RIP, proto=4, ttl=60, id=7) / Raw(bytes(t4big)),
    )
    t4df = tcp(CIP, VIP, 40000, 80, "PA", b"d" * 1460, ip={"flags": "DF"})
    row(
        "tun: IPv4 DF too big -> frag needed with MTU - 20",
        frame(t4df),
        ("tun", DIP, RIP, 7, 1500),
        "icmp",
        _icmp4(VIP, CIP, ICMP(type=3, code=4, nexthopmtu=1480), bytes(t4df)[:548], tos=0xC0),
    )
    t6 = tcp(CIP6, VIP6, 40000, 80, "S", ip={"hlim": 33, "tc": 0x20})
    row(
        "tun: IPv6 inner in IPv4 (protocol 41)",
        frame(t6),
        ("tun", DIP, RIP, 9, 1500),
        "packet",
        IP(src=DIP, dst=RIP, proto=41, ttl=33, tos=0x20, id=9) / Raw(bytes(t6)),
    )
    t6big = udp(CIP6, VIP6, 5353, 53, b"6" * 1400)
    row(
        "tun: IPv6 too big -> packet too big quoting 1232 bytes",
        frame(t6big),
        ("tun", DIP6, RIP6, 0, 1480),
        "icmp",
        _icmp6(VIP6, CIP6, ICMPv6PacketTooBig(mtu=1440), bytes(t6big)[:1232]),
    )
    t6in6 = tcp(CIP6, VIP6, 40000, 80, "S", ip={"hlim": 40})
    row(
        "tun: IPv6 in IPv6",
        frame(t6in6),
        ("tun", DIP6, RIP6, 0, 1500),
        "packet",
        IPv6(src=DIP6, dst=RIP6, nh=41, hlim=40) / Raw(bytes(t6in6)),
    )
    tce = tcp(CIP, VIP, 40000, 80, ip={"tos": 0xB3})
    row(
        "tun: ECN CE inner gives ECT(0) outer (RFC 6040)",
        frame(tce),
        ("tun", DIP, RIP, 1, 1500),
        "packet",
        IP(src=DIP, dst=RIP, proto=4, ttl=64, tos=0xB2, id=1) / Raw(bytes(tce)),
    )
    tpad = udp(CIP, VIP, 5353, 53, b"p", ip={"ttl": 9})
    row(
        "tun: Ethernet padding is not encapsulated",
        _padded_frame(frame(tpad), 17),
        ("tun", DIP, RIP, 2, 1500),
        "packet",
        IP(src=DIP, dst=RIP, proto=4, ttl=9, id=2) / Raw(bytes(tpad)),
    )

    # ---- TTL --------------------------------------------------------------------------------
    ttl = frame(tcp(CIP, VIP, 40000, 80, ip={"ttl": 64}))
    row("ttl: IPv4 64 -> 63", ttl, ("ttl", DIP), "packet", _with(ttl, IP__ttl=63))
    ttl1 = tcp(CIP, VIP, 40000, 80, ip={"ttl": 1, "tos": 0x28})
    row(
        "ttl: IPv4 TTL 1 -> time exceeded",
        frame(ttl1),
        ("ttl", DIP),
        "icmp",
        _icmp4(DIP, CIP, ICMP(type=11, code=0), bytes(ttl1), tos=0xC8),
    )
    hl = frame(udp(CIP6, VIP6, 5353, 53, ip={"hlim": 2}))
    row("ttl: IPv6 hop limit 2 -> 1", hl, ("ttl", DIP6), "packet", _with(hl, IPv6__hlim=1))
    hl1 = udp(CIP6, VIP6, 5353, 53, ip={"hlim": 1})
    row(
        "ttl: IPv6 hop limit 1 -> time exceeded",
        frame(hl1),
        ("ttl", DIP6),
        "icmp",
        _icmp6(DIP6, CIP6, ICMPv6TimeExceeded(code=0), bytes(hl1)),
    )

    # ---- port unreachable (ip_vs_leave) -----------------------------------------------------
    pu = tcp(CIP, VIP, 40000, 80)
    row(
        "port unreachable: IPv4 TCP SYN, no real server",
        frame(pu),
        ("port_unreach", VIP),
        "icmp",
        _icmp4(VIP, CIP, ICMP(type=3, code=3), bytes(pu), tos=0xC0),
    )
    pu_big = udp(CIP, VIP, 5353, 53, b"B" * 1000)
    row(
        "port unreachable: quote cut at 576 bytes (RFC 1812 4.3.2.3)",
        frame(pu_big),
        ("port_unreach", VIP),
        "icmp",
        _icmp4(VIP, CIP, ICMP(type=3, code=3), bytes(pu_big)[:548], tos=0xC0),
    )
    pu6 = udp(CIP6, VIP6, 5353, 53)
    row(
        "port unreachable: IPv6 UDP",
        frame(pu6),
        ("port_unreach", VIP6),
        "icmp",
        _icmp6(VIP6, CIP6, ICMPv6DestUnreach(code=4), bytes(pu6)),
    )

    # ---- parse errors -----------------------------------------------------------------------
    good = bytes(frame(tcp(CIP, VIP, 40000, 80)))
    row("parse: frame shorter than Ethernet", good[:10], ("parse",), "parse_error:truncated")
    row("parse: IPv4 header cut at 12 bytes", good[:26], ("parse",), "parse_error:truncated")
    row(
        "parse: IPv6 header cut at 30 bytes",
        bytes(frame(udp(CIP6, VIP6, 1, 2)))[:44],
        ("parse",),
        "parse_error:truncated",
    )
    row(
        "parse: IHL 4",
        frame(IP(src=CIP, dst=VIP, ihl=4) / TCP()),
        ("parse",),
        "parse_error:bad-ihl",
    )
    row(
        "parse: total length beyond the frame",
        frame(IP(src=CIP, dst=VIP, len=200) / TCP()),
        ("parse",),
        "parse_error:bad-total-length",
    )
    row(
        "parse: total length below the header",
        frame(IP(src=CIP, dst=VIP, len=16) / TCP()),
        ("parse",),
        "parse_error:bad-total-length",
    )
    row(
        "parse: IP version 5 in an IPv4 frame",
        frame(IP(src=CIP, dst=VIP, version=5) / TCP()),
        ("parse",),
        "parse_error:bad-version",
    )
    row(
        "parse: IPv6 packet in an IPv4 ethertype",
        Ether(src=CMAC, dst=DMAC, type=0x0800) / IPv6(src=CIP6, dst=VIP6) / UDP(),
        ("parse",),
        "parse_error:bad-version",
    )
    row(
        "parse: ARP is an unknown ethertype",
        Ether(src=CMAC, dst=DMAC, type=0x0806) / Raw(b"\0" * 28),
        ("parse",),
        "parse_error:unknown-ethertype",
    )
    row(
        "parse: TCP data offset 4",
        frame(IP(src=CIP, dst=VIP) / TCP(dataofs=4)),
        ("parse",),
        "parse_error:bad-tcp-offset",
    )
    row(
        "parse: TCP data offset beyond the packet",
        frame(IP(src=CIP, dst=VIP) / TCP(dataofs=15)),
        ("parse",),
        "parse_error:bad-tcp-offset",
    )
    row(
        "parse: TCP header cut short",
        frame(IP(src=CIP, dst=VIP, proto=6) / Raw(b"\0" * 12)),
        ("parse",),
        "parse_error:truncated-l4",
    )
    row(
        "parse: UDP header cut short",
        frame(IP(src=CIP, dst=VIP, proto=17) / Raw(b"\0" * 6)),
        ("parse",),
        "parse_error:truncated-l4",
    )
    row(
        "parse: IPv6 extension header beyond the packet",
        frame(IPv6(src=CIP6, dst=VIP6, nh=0, plen=4) / Raw(b"\x06\x00\0\0")),
        ("parse",),
        "parse_error:bad-ext-header",
    )
    return tuple(rows)
