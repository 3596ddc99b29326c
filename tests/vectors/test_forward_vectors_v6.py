"""Table-driven IPv6 packet tests through the whole engine: input packet, expected verdict,
expected output packet (IP packets, as ``Engine.handle`` takes and returns them).

Every expected output is built independently with scapy (which computes its checksums and
lengths); each row checks the engine's output byte for byte against it, and checks again with
scapy recomputing every checksum (pylvs.testing.packets.verify). Rows may first feed packets
that set up state (a connection, a persistence template); those must be forwarded.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.packet import Packet as Scapy

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.engine import Engine, Verdict
from pylvs.core.service import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, FwdMethod
from pylvs.testing.packets import verify

VIP = "2001:db8::10"
CLIENT = "2001:db8:1::7"
ROUTER = "2001:db8:9::1"
DIRECTOR = "2001:db8:2::fe"
RIP = "2001:db8:2::1"
RIP4 = "203.0.113.1"
DIRECTOR4 = "203.0.113.254"
VIP4 = "192.0.2.10"
CLIENT4 = "198.51.100.7"
PAYLOAD = b"GET / HTTP/1.1\r\n\r\n"


def _int(text: str) -> int:
    return int(ipaddress.ip_address(text))


@dataclass
class Farm:
    """One service with one real server (RIP, or RIP4 for a mixed-family tunnel)."""

    fwd: FwdMethod = FwdMethod.MASQ
    proto: int = IPPROTO_TCP
    port: int = 80
    rport: int = 80
    mtu: int = 1500
    kernel_forwards_nat: bool = True
    persistent: bool = False
    netmask: int = 128
    af: int = AF_INET6  # the service's family
    dest_af: int = AF_INET6

    def build(self) -> Engine:
        engine = Engine(random.Random(1), kernel_forwards_nat=self.kernel_forwards_nat)
        vs = ServiceSpec(
            af=self.af,
            protocol=self.proto,
            addr=VIP if self.af == AF_INET6 else VIP4,
            port=self.port,
            scheduler="rr",
            persistent=self.persistent,
            timeout=300,
            netmask=self.netmask if self.af == AF_INET6 else 32,
        )
        engine.add_service(vs)
        rip, src = (RIP, DIRECTOR) if self.dest_af == AF_INET6 else (RIP4, DIRECTOR4)
        engine.add_dest(vs, DestSpec(af=self.dest_af, addr=rip, port=self.rport, fwd=int(self.fwd)))
        engine.set_path(self.dest_af, _int(rip), _int(src), self.mtu)
        return engine


@dataclass
class Row:
    name: str
    farm: Farm
    packet: Scapy
    verdict: Verdict
    expected: Scapy | None = None
    next_hop: str = ""
    before: list[Scapy] = field(default_factory=list)


def _tcp(
    src: str = CLIENT, dst: str = VIP, sport: int = 40000, dport: int = 80, **kw: object
) -> Scapy:
    hlim = kw.pop("hlim", 64)
    flags = kw.pop("flags", "S")
    payload = kw.pop("payload", b"")
    ip = IPv6(src=src, dst=dst, hlim=hlim)
    return ip / TCP(sport=sport, dport=dport, flags=flags, seq=1000, ack=0, window=64240) / payload


def _udp(
    src: str = CLIENT, dst: str = VIP, sport: int = 5353, dport: int = 53, **kw: object
) -> Scapy:
    hlim = kw.pop("hlim", 64)
    payload = kw.pop("payload", b"query")
    return IPv6(src=src, dst=dst, hlim=hlim) / UDP(sport=sport, dport=dport) / payload


def _hlim(pkt: Scapy, hlim: int) -> Scapy:
    out = pkt.copy()
    out[IPv6].hlim = hlim
    return out


def _error(src: str, dst: str, icmp: Scapy, quoted: Scapy, limit: int = 1280 - 48) -> Scapy:
    return IPv6(src=src, dst=dst, hlim=64) / icmp / bytes(quoted)[:limit]


_NAT = Farm()
_NAT_UDP = Farm(proto=IPPROTO_UDP, port=53, rport=5300)
_NAT_HOPS = Farm(kernel_forwards_nat=False)
_DR = Farm(FwdMethod.ROUTE)
_DR_UDP_1280 = Farm(FwdMethod.ROUTE, proto=IPPROTO_UDP, port=53, rport=53, mtu=1280)
_TUN = Farm(FwdMethod.TUNNEL)
_TUN_UDP = Farm(FwdMethod.TUNNEL, proto=IPPROTO_UDP, port=53, rport=53)
_PERSIST_64 = Farm(FwdMethod.MASQ, persistent=True, netmask=64)
_V4_OVER_V6 = Farm(FwdMethod.TUNNEL, af=AF_INET)
_V6_OVER_V4 = Farm(FwdMethod.TUNNEL, proto=IPPROTO_UDP, port=53, rport=53, dest_af=AF_INET)

_REPLY = _tcp(RIP, CLIENT, 80, 40000, flags="SA", payload=b"ok")
_REPLY_SEEN = _tcp(VIP, CLIENT, 80, 40000, flags="SA", payload=b"ok")
_EXT = IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(addresses=[], segleft=0)
_BIG_UDP = _udp(payload=b"u" * 1300)
_TUN_BIG = _udp(payload=b"u" * (1460 - 48 + 1))


def _rows() -> list[Row]:
    syn = _tcp(payload=PAYLOAD)
    return [
        # -- NAT66 --
        Row(
            "nat: TCP SYN to the VIP",
            _NAT,
            syn,
            Verdict.REWRITE,
            _tcp(CLIENT, RIP, payload=PAYLOAD),
            RIP,
        ),
        Row(
            "nat: TCP SYN to another real server port",
            Farm(rport=8080),
            syn,
            Verdict.REWRITE,
            _tcp(CLIENT, RIP, dport=8080, payload=PAYLOAD),
            RIP,
        ),
        Row(
            "nat: TCP reply SNATed to the VIP",
            _NAT,
            _REPLY,
            Verdict.REWRITE,
            _REPLY_SEEN,
            CLIENT,
            before=[syn],
        ),
        Row(
            "nat: UDP with port change",
            _NAT_UDP,
            _udp(),
            Verdict.REWRITE,
            _udp(CLIENT, RIP, dport=5300),
            RIP,
        ),
        Row(
            "nat: UDP reply",
            _NAT_UDP,
            _udp(RIP, CLIENT, 5300, 5353, payload=b"answer"),
            Verdict.REWRITE,
            _udp(VIP, CLIENT, 53, 5353, payload=b"answer"),
            CLIENT,
            before=[_udp()],
        ),
        Row(
            "nat: hop limit decremented when pylvs forwards",
            _NAT_HOPS,
            _tcp(hlim=10),
            Verdict.REWRITE,
            _tcp(CLIENT, RIP, hlim=9),
            RIP,
        ),
        Row(
            "nat: hop limit 1 gets time exceeded",
            _NAT_HOPS,
            _tcp(hlim=1),
            Verdict.LOCAL,
            _error(VIP, CLIENT, ICMPv6TimeExceeded(code=0), _tcp(hlim=1)),
            CLIENT,
        ),
        Row(
            "nat: extension headers before TCP",
            _NAT,
            IPv6(src=CLIENT, dst=VIP) / _EXT / TCP(sport=1, dport=80, flags="S"),
            Verdict.REWRITE,
            IPv6(src=CLIENT, dst=RIP) / _EXT / TCP(sport=1, dport=80, flags="S"),
            RIP,
        ),
        Row(
            "nat: persistence groups a /64",
            _PERSIST_64,
            _tcp("2001:db8:1::99", sport=5),
            Verdict.REWRITE,
            _tcp("2001:db8:1::99", RIP, sport=5),
            RIP,
            before=[_tcp()],
        ),
        # -- DR --
        Row("dr: TCP SYN, hop limit only", _DR, syn, Verdict.ROUTE, _hlim(syn, 63), RIP),
        Row(
            "dr: extension headers kept",
            _DR,
            IPv6(src=CLIENT, dst=VIP, hlim=5) / _EXT / TCP(sport=1, dport=80, flags="S"),
            Verdict.ROUTE,
            IPv6(src=CLIENT, dst=VIP, hlim=4) / _EXT / TCP(sport=1, dport=80, flags="S"),
            RIP,
        ),
        Row(
            "dr: packet too big",
            _DR_UDP_1280,
            _BIG_UDP,
            Verdict.LOCAL,
            _error(VIP, CLIENT, ICMPv6PacketTooBig(mtu=1280), _BIG_UDP),
            CLIENT,
        ),
        Row(
            "dr: hop limit 1 gets time exceeded",
            _DR,
            _tcp(hlim=1),
            Verdict.LOCAL,
            _error(VIP, CLIENT, ICMPv6TimeExceeded(code=0), _tcp(hlim=1)),
            CLIENT,
        ),
        # -- tunnels --
        Row(
            "tun: IPv6 in IPv6",
            _TUN,
            syn,
            Verdict.TUNNEL,
            IPv6(src=DIRECTOR, dst=RIP, nh=41, hlim=63) / _hlim(syn, 63),
            RIP,
        ),
        Row(
            "tun: UDP IPv6 in IPv6",
            _TUN_UDP,
            _udp(),
            Verdict.TUNNEL,
            IPv6(src=DIRECTOR, dst=RIP, nh=41, hlim=63) / _hlim(_udp(), 63),
            RIP,
        ),
        Row(
            "tun: packet too big, MTU less the outer header",
            _TUN_UDP,
            _TUN_BIG,
            Verdict.LOCAL,
            _error(VIP, CLIENT, ICMPv6PacketTooBig(mtu=1460), _TUN_BIG),
            CLIENT,
        ),
        Row(
            "tun: path MTU below 1280 after the outer header",
            Farm(FwdMethod.TUNNEL, mtu=1300),
            syn,
            Verdict.DROP,
        ),
        Row(
            "tun: IPv4 service, IPv6 real server (IPv4 in IPv6)",
            _V4_OVER_V6,
            IP(src=CLIENT4, dst=VIP4, ttl=64, id=1) / TCP(sport=1, dport=80, flags="S"),
            Verdict.TUNNEL,
            IPv6(src=DIRECTOR, dst=RIP, nh=4, hlim=63)
            / IP(src=CLIENT4, dst=VIP4, ttl=63, id=1)
            / TCP(sport=1, dport=80, flags="S"),
            RIP,
        ),
        Row(
            "tun: IPv6 service, IPv4 real server (IPv6 in IPv4)",
            _V6_OVER_V4,
            _udp(),
            Verdict.TUNNEL,
            IP(src=DIRECTOR4, dst=RIP4, proto=41, ttl=63, id=1, flags=0) / _hlim(_udp(), 63),
            RIP4,
        ),
        # -- ICMPv6 errors --
        Row(
            "icmp in: packet too big about a NAT reply, quote rewritten",
            _NAT,
            _error(ROUTER, VIP, ICMPv6PacketTooBig(mtu=1280), _REPLY_SEEN),
            Verdict.REWRITE,
            _error(ROUTER, RIP, ICMPv6PacketTooBig(mtu=1280), _REPLY),
            RIP,
            before=[syn],
        ),
        Row(
            "icmp in: time exceeded, partial quote",
            _NAT,
            _error(ROUTER, VIP, ICMPv6TimeExceeded(), _REPLY_SEEN, limit=48),
            Verdict.REWRITE,
            _error(ROUTER, RIP, ICMPv6TimeExceeded(), _REPLY, limit=48),
            RIP,
            before=[syn],
        ),
        Row(
            "icmp out: port unreachable from the NAT real server",
            _NAT_UDP,
            _error(RIP, CLIENT, ICMPv6DestUnreach(code=4), _udp(CLIENT, RIP, dport=5300)),
            Verdict.REWRITE,
            _error(VIP, CLIENT, ICMPv6DestUnreach(code=4), _udp()),
            CLIENT,
            before=[_udp()],
        ),
        Row(
            "icmp in: DR connection, forwarded unchanged but the hop limit",
            _DR,
            _error(ROUTER, VIP, ICMPv6DestUnreach(code=3), _REPLY_SEEN),
            Verdict.ROUTE,
            _hlim(_error(ROUTER, VIP, ICMPv6DestUnreach(code=3), _REPLY_SEEN), 63),
            RIP,
            before=[syn],
        ),
        Row(
            "icmp: no tracked connection",
            _NAT,
            _error(ROUTER, VIP, ICMPv6DestUnreach(), _REPLY_SEEN),
            Verdict.ACCEPT,
        ),
        # -- no real server, fragments, malformed --
        Row(
            "no service on the port: passed to the kernel",
            Farm(port=81),
            syn,
            Verdict.ACCEPT,
        ),
        Row(
            "fragment: passed to the kernel",
            _NAT_UDP,
            IPv6(src=CLIENT, dst=VIP) / IPv6ExtHdrFragment(m=1, id=9) / UDP(sport=1, dport=53),
            Verdict.ACCEPT,
        ),
        Row(
            "malformed: payload length beyond the packet",
            _NAT,
            IPv6(src=CLIENT, dst=VIP, plen=200) / TCP(sport=1, dport=80),
            Verdict.DROP,
        ),
    ]


ROWS = _rows()


def test_table_covers_the_ipv6_operations() -> None:
    names = " ".join(r.name for r in ROWS)
    for op in ("nat:", "dr:", "tun:", "icmp in:", "icmp out:", "persistence", "hop limit"):
        assert op in names
    assert len({r.name for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_vector_v6(row: Row) -> None:
    engine = row.farm.build()
    for pkt in row.before:
        assert engine.handle(bytes(pkt), 0.0).verdict in (Verdict.REWRITE, Verdict.ROUTE)
    action = engine.handle(bytes(row.packet), 1.0)
    assert action.verdict == row.verdict
    if row.farm.persistent:
        # Both clients of the /64 share one template.
        assert len([c for c in engine.conns() if c.template]) == 1
    if row.expected is None:
        assert action.packet is None
        return
    expected = bytes(row.expected)
    # The table itself must be sound: scapy built a valid expectation.
    assert verify(expected, ethernet=False) == []
    assert action.packet is not None
    assert bytes(action.packet).hex() == expected.hex()
    assert verify(bytes(action.packet), ethernet=False) == []
    assert action.next_hop == _int(row.next_hop)


@pytest.mark.parametrize(
    "row", [r for r in ROWS if r.verdict != Verdict.DROP], ids=lambda r: r.name
)
def test_inputs_are_valid_packets(row: Row) -> None:
    assert verify(bytes(row.packet), ethernet=False) == []


def test_no_real_server_answers_port_unreachable() -> None:
    """With a service but no real server the director answers (ip_vs_leave)."""
    engine = Engine(random.Random(1))
    engine.add_service(ServiceSpec(af=AF_INET6, protocol=IPPROTO_TCP, addr=VIP, port=80))
    syn = _tcp()
    action = engine.handle(bytes(syn), 0.0)
    assert action.verdict == Verdict.LOCAL
    expected = bytes(_error(VIP, CLIENT, ICMPv6DestUnreach(code=4), syn))
    assert bytes(action.packet or b"").hex() == expected.hex()
    assert verify(expected, ethernet=False) == []
