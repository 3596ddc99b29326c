"""The IPv6 packet path, stepped with a fake clock: NAT66, DR, IPv6 tunnels, mixed-family
tunnels, ICMPv6 errors, extension headers, fragments, hop limit, persistence, fwmark, port 0
and every scheduler.

Packets are built with scapy and results re-dissected with scapy, independently of pylvs's own
parser; checksums are checked by scapy recomputing them (pylvs.testing.packets.verify).
"""

from __future__ import annotations

import errno
import io
import ipaddress
import random

import pytest
from scapy.layers.inet import IP, TCP, UDP, TCPerror, UDPerror
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPerror6,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH
from scapy.packet import Packet as Scapy
from scapy.packet import Raw

from pylvs.core.control import DaemonSpec, DestSpec, IPVSError, ServiceSpec
from pylvs.core.engine import Engine, Verdict
from pylvs.core.schedulers import available
from pylvs.core.service import AF_INET6, IPPROTO_TCP, IPPROTO_UDP, FwdMethod, ServiceFlags
from pylvs.testing.packets import verify

VIP = "2001:db8::10"
CLIENT = "2001:db8:1::7"
DIRECTOR = "2001:db8:2::fe"
RIPS = ["2001:db8:2::1", "2001:db8:2::2", "2001:db8:2::3"]


def ip6(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


def farm(
    fwd: FwdMethod = FwdMethod.MASQ,
    sched: str = "rr",
    proto: int = IPPROTO_TCP,
    mtu: int = 1500,
    engine: Engine | None = None,
    **svc_kw: object,
) -> tuple[Engine, ServiceSpec]:
    engine = engine if engine is not None else Engine(random.Random(1))
    port = svc_kw.pop("port", 80 if proto == IPPROTO_TCP else 53)
    vs = ServiceSpec(
        af=AF_INET6,
        protocol=proto,
        addr=VIP,
        port=port,  # type: ignore[arg-type]
        scheduler=sched,
        netmask=128,
        **svc_kw,  # type: ignore[arg-type]
    )
    engine.add_service(vs)
    for rip in RIPS:
        engine.add_dest(vs, DestSpec(af=AF_INET6, addr=rip, port=port, fwd=int(fwd)))  # type: ignore[arg-type]
        engine.set_path(AF_INET6, ip6(rip), ip6(DIRECTOR), mtu)
    return engine, vs


def tcp(
    flags: str,
    sport: int = 40000,
    src: str = CLIENT,
    dst: str = VIP,
    dport: int = 80,
    payload: bytes = b"",
    hlim: int = 64,
) -> bytes:
    return bytes(
        IPv6(src=src, dst=dst, hlim=hlim) / TCP(sport=sport, dport=dport, flags=flags) / payload
    )


def udp(sport: int = 5353, src: str = CLIENT, dst: str = VIP, dport: int = 53, n: int = 8) -> bytes:
    return bytes(IPv6(src=src, dst=dst) / UDP(sport=sport, dport=dport) / (b"q" * n))


def states(engine: Engine) -> list[tuple[str, int, str]]:
    return sorted((c.state, c.cport, c.daddr) for c in engine.conns() if not c.template)


def out6(action: object) -> IPv6:
    packet = action.packet  # type: ignore[attr-defined]
    assert packet is not None
    return IPv6(bytes(packet))


def assert_valid(action: object) -> None:
    assert verify(bytes(action.packet), ethernet=False) == []  # type: ignore[attr-defined]


# -- NAT66 -------------------------------------------------------------------------------------


def test_nat66_inbound_rewrites_destination_and_l4_checksum() -> None:
    engine, _ = farm()
    action = engine.handle(tcp("S", payload=b"hello"), 0.0)
    assert action.verdict == Verdict.REWRITE
    assert action.next_hop == ip6(RIPS[0])
    out = out6(action)
    assert (out.src, out.dst, out[TCP].dport, out.hlim) == (CLIENT, RIPS[0], 80, 64)
    assert bytes(out[Raw]) == b"hello"
    assert_valid(action)
    assert engine.counters["pass_ipv6"] == 0


def test_nat66_reply_is_snated_and_tcp_states_follow_ipvs() -> None:
    engine, _ = farm()
    engine.handle(tcp("S"), 0.0)
    assert states(engine) == [("SYN_RECV", 40000, RIPS[0])]
    reply = engine.handle(tcp("SA", src=RIPS[0], dst=CLIENT, sport=80, dport=40000), 0.1)
    assert reply.verdict == Verdict.REWRITE
    assert reply.next_hop == ip6(CLIENT)
    out = out6(reply)
    assert (out.src, out[TCP].sport, out.dst, out[TCP].dport) == (VIP, 80, CLIENT, 40000)
    assert_valid(reply)
    engine.handle(tcp("A"), 0.2)
    assert states(engine) == [("ESTABLISHED", 40000, RIPS[0])]
    info = engine.services()[0]
    dest = info.dests[0]
    assert (dest.activeconns, dest.inactconns) == (1, 0)
    # conns, inpkts, outpkts: two packets in, one out
    assert dest.stats[:3] == (1, 2, 1)
    engine.handle(tcp("FA"), 0.3)
    engine.handle(tcp("FA", src=RIPS[0], dst=CLIENT, sport=80, dport=40000), 0.4)
    engine.handle(tcp("A"), 0.5)
    assert states(engine)[0][0] in ("TIME_WAIT", "CLOSE")
    engine.tick(1000.0)
    assert engine.conns() == []
    assert engine.services()[0].dests[0].inactconns == 0


def test_nat66_udp_round_trip_and_listing() -> None:
    engine, _ = farm(proto=IPPROTO_UDP)
    action = engine.handle(udp(), 0.0)
    assert action.verdict == Verdict.REWRITE
    assert out6(action).dst == RIPS[0]
    assert_valid(action)
    reply = engine.handle(udp(sport=53, dport=5353, src=RIPS[0], dst=CLIENT), 0.1)
    assert reply.verdict == Verdict.REWRITE
    assert (out6(reply).src, out6(reply)[UDP].sport) == (VIP, 53)
    assert_valid(reply)
    (conn,) = engine.conns()
    assert (conn.af, conn.caddr, conn.vaddr, conn.daddr, conn.state) == (
        AF_INET6,
        CLIENT,
        VIP,
        RIPS[0],
        "UDP",
    )


def test_nat66_udp_zero_checksum_stays_zero() -> None:
    """RFC 8200 forbids a zero UDP checksum over IPv6 except for tunnels (RFC 6935); IPVS's
    udp_dnat_handler leaves 0 alone, as pylvs does for IPv4."""
    engine, _ = farm(proto=IPPROTO_UDP)
    pkt = IPv6(src=CLIENT, dst=VIP) / UDP(sport=5353, dport=53, chksum=0) / b"abc"
    action = engine.handle(bytes(pkt), 0.0)
    assert action.verdict == Verdict.REWRITE
    assert out6(action)[UDP].chksum == 0


def test_nat66_hop_limit_is_decremented_when_pylvs_forwards() -> None:
    engine, _ = farm(engine=Engine(random.Random(1), kernel_forwards_nat=False))
    action = engine.handle(tcp("S", hlim=9), 0.0)
    assert out6(action).hlim == 8
    assert_valid(action)
    reply = engine.handle(tcp("SA", src=RIPS[0], dst=CLIENT, sport=80, dport=40000, hlim=5), 0.1)
    assert out6(reply).hlim == 4


def test_nat66_hop_limit_1_gets_icmpv6_time_exceeded() -> None:
    engine, _ = farm(engine=Engine(random.Random(1), kernel_forwards_nat=False))
    action = engine.handle(tcp("S", hlim=1), 0.0)
    assert action.verdict == Verdict.LOCAL
    assert action.next_hop == ip6(CLIENT)
    out = out6(action)
    assert (out.src, out.dst) == (VIP, CLIENT)
    assert (out[ICMPv6TimeExceeded].type, out[ICMPv6TimeExceeded].code) == (3, 0)
    assert out[IPerror6].dst == VIP and out[TCPerror].dport == 80
    assert_valid(action)
    assert engine.counters["ttl_exceeded"] == 1


def test_nat66_with_the_kernel_forwarding_leaves_the_hop_limit() -> None:
    engine, _ = farm()  # NFQUEUE: the kernel forwards and decrements
    action = engine.handle(tcp("S", hlim=1), 0.0)
    assert action.verdict == Verdict.REWRITE and out6(action).hlim == 1


# -- DR and tunnels ----------------------------------------------------------------------------


def test_dr6_sends_the_unchanged_packet_to_the_real_server() -> None:
    engine, _ = farm(FwdMethod.ROUTE)
    pkt = tcp("S", payload=b"x" * 100)
    action = engine.handle(pkt, 0.0)
    assert action.verdict == Verdict.ROUTE
    assert action.next_hop == ip6(RIPS[0])
    out = bytes(action.packet or b"")
    # Only the hop limit (byte 7) changed; the destination is still the VIP.
    assert out[:7] == pkt[:7] and out[8:] == pkt[8:] and out[7] == pkt[7] - 1
    engine.handle(tcp("A"), 0.1)
    engine.handle(tcp("FA"), 0.2)
    assert states(engine) == [("FIN_WAIT", 40000, RIPS[0])]  # the INPUT-ONLY table


def test_dr6_hop_limit_1_gets_time_exceeded() -> None:
    engine, _ = farm(FwdMethod.ROUTE)
    action = engine.handle(tcp("S", hlim=1), 0.0)
    assert action.verdict == Verdict.LOCAL
    assert out6(action)[ICMPv6TimeExceeded].type == 3


def test_dr6_packet_too_big() -> None:
    engine, _ = farm(FwdMethod.ROUTE, proto=IPPROTO_UDP, mtu=1280)
    action = engine.handle(udp(n=1300), 0.0)
    assert action.verdict == Verdict.LOCAL
    out = out6(action)
    assert (out[ICMPv6PacketTooBig].type, out[ICMPv6PacketTooBig].mtu) == (2, 1280)
    assert out.src == VIP and out.dst == CLIENT
    assert len(bytes(out)) <= 1280  # RFC 4443 2.4(c)
    assert_valid(action)
    assert engine.counters["frag_needed"] == 1


def test_tun6_encapsulates_ipv6_in_ipv6() -> None:
    engine, _ = farm(FwdMethod.TUNNEL, proto=IPPROTO_UDP)
    pkt = udp()
    action = engine.handle(pkt, 0.0)
    assert action.verdict == Verdict.TUNNEL
    assert action.next_hop == ip6(RIPS[0])
    out = out6(action)
    assert (out.src, out.dst, out.nh, out.hlim) == (DIRECTOR, RIPS[0], 41, 63)
    inner = bytes(out.payload)
    assert inner[7] == 63 and inner[:7] == pkt[:7] and inner[8:] == pkt[8:]
    assert_valid(action)


def test_tun6_packet_too_big_carries_the_mtu_less_the_outer_header() -> None:
    engine, _ = farm(FwdMethod.TUNNEL, proto=IPPROTO_UDP)
    action = engine.handle(udp(n=1500 - 40 - 8 - 40 + 1), 0.0)
    assert action.verdict == Verdict.LOCAL
    assert out6(action)[ICMPv6PacketTooBig].mtu == 1460
    assert_valid(action)
    fits = engine.handle(udp(n=1500 - 40 - 8 - 40, sport=9), 0.0)
    assert fits.verdict == Verdict.TUNNEL and len(fits.packet or b"") == 1500


def test_tun6_refuses_a_path_below_the_ipv6_minimum_mtu() -> None:
    engine, _ = farm(FwdMethod.TUNNEL, proto=IPPROTO_UDP, mtu=1300)
    assert engine.handle(udp(), 0.0).verdict == Verdict.DROP
    assert engine.counters["drop_tunnel_mtu"] == 1


def test_no_route_to_an_ipv6_real_server_drops() -> None:
    engine, _ = farm(FwdMethod.ROUTE, mtu=0)
    assert engine.handle(tcp("S"), 0.0).verdict == Verdict.DROP
    assert engine.counters["drop_no_route"] == 1


def test_no_real_server_gets_icmpv6_port_unreachable() -> None:
    engine = Engine(random.Random(1))
    engine.add_service(ServiceSpec(af=AF_INET6, protocol=IPPROTO_UDP, addr=VIP, port=53))
    action = engine.handle(udp(), 0.0)
    assert action.verdict == Verdict.LOCAL
    out = out6(action)
    assert (out[ICMPv6DestUnreach].type, out[ICMPv6DestUnreach].code) == (1, 4)
    assert (out.src, out.dst, out[UDPerror].sport) == (VIP, CLIENT, 5353)
    assert_valid(action)
    # Never to a multicast source (RFC 4443 2.4(e)).
    bad = engine.handle(udp(src="ff02::1"), 0.0)
    assert bad.verdict == Verdict.DROP


# -- mixed families (tunnel mode only) --------------------------------------------------------


def test_ipv4_service_with_an_ipv6_tunnel_real_server() -> None:
    engine = Engine(random.Random(1))
    vs = ServiceSpec(protocol=IPPROTO_TCP, addr="192.0.2.10", port=80, scheduler="mh")
    engine.add_service(vs)
    engine.add_dest(vs, DestSpec(af=AF_INET6, addr=RIPS[0], port=80, fwd=int(FwdMethod.TUNNEL)))
    engine.set_path(AF_INET6, ip6(RIPS[0]), ip6(DIRECTOR), 1500)
    pkt = bytes(IP(src="198.51.100.7", dst="192.0.2.10", ttl=64) / TCP(sport=1, dport=80))
    action = engine.handle(pkt, 0.0)
    assert action.verdict == Verdict.TUNNEL and action.next_hop == ip6(RIPS[0])
    out = out6(action)
    assert (out.src, out.dst, out.nh, out.hlim) == (DIRECTOR, RIPS[0], 4, 63)
    assert IP(bytes(out.payload)).ttl == 63
    assert_valid(action)
    # An IPv4 packet with DF that does not fit the 1460 bytes left: fragmentation needed.
    big = IP(src="198.51.100.7", dst="192.0.2.10", flags="DF") / TCP(sport=1, dport=80)
    action = engine.handle(bytes(big / (b"x" * 1500)), 0.1)
    assert action.verdict == Verdict.LOCAL
    reply = IP(bytes(action.packet or b""))
    assert (reply.proto, reply.payload.type, reply.payload.code, reply.payload.nexthopmtu) == (
        1,
        3,
        4,
        1460,
    )


def test_ipv6_service_with_an_ipv4_tunnel_real_server() -> None:
    engine = Engine(random.Random(1))
    vs = ServiceSpec(af=AF_INET6, protocol=IPPROTO_UDP, addr=VIP, port=53, netmask=128)
    engine.add_service(vs)
    engine.add_dest(vs, DestSpec(addr="203.0.113.1", port=53, fwd=int(FwdMethod.TUNNEL)))
    engine.set_path(4, 0xCB007101, 0xCB0071FE, 1500)
    action = engine.handle(udp(), 0.0)
    assert action.verdict == Verdict.TUNNEL and action.next_hop == 0xCB007101
    out = IP(bytes(action.packet or b""))
    assert (out.src, out.dst, out.proto, out.ttl, out.flags) == (
        "203.0.113.254",
        "203.0.113.1",
        41,
        63,
        0,
    )
    assert IPv6(bytes(out.payload)).hlim == 63
    assert_valid(action)
    too_big = engine.handle(udp(n=1500), 0.0)
    assert too_big.verdict == Verdict.LOCAL
    assert out6(too_big)[ICMPv6PacketTooBig].mtu == 1480


@pytest.mark.parametrize("fwd", [FwdMethod.MASQ, FwdMethod.ROUTE, FwdMethod.LOCALNODE])
def test_mixed_families_need_tunnel_mode(fwd: FwdMethod) -> None:
    engine, vs = farm()
    with pytest.raises(IPVSError) as exc:
        engine.add_dest(vs, DestSpec(addr="203.0.113.1", port=80, fwd=int(fwd)))
    assert exc.value.errno == errno.EINVAL
    engine.add_dest(vs, DestSpec(addr="203.0.113.1", port=80, fwd=int(FwdMethod.TUNNEL)))
    with pytest.raises(IPVSError) as exc:
        engine.edit_dest(vs, DestSpec(addr="203.0.113.1", port=80, fwd=int(fwd)))
    assert exc.value.errno == errno.EINVAL
    engine.del_dest(vs, DestSpec(addr="203.0.113.1", port=80))
    assert len(engine.services()[0].dests) == 3


def test_mixed_families_are_refused_while_a_sync_daemon_runs() -> None:
    engine, vs = farm()
    engine.start_daemon(DaemonSpec(state="master", mcast_ifn="eth0"))
    with pytest.raises(IPVSError) as exc:
        engine.add_dest(vs, DestSpec(addr="203.0.113.1", port=80, fwd=int(FwdMethod.TUNNEL)))
    assert exc.value.errno == errno.EINVAL


# -- ICMPv6 errors ------------------------------------------------------------------------------


def _icmp6(src: str, dst: str, icmp: Scapy, quoted: bytes) -> bytes:
    return bytes(IPv6(src=src, dst=dst) / icmp / quoted)


def test_icmpv6_packet_too_big_from_the_client_side_reaches_the_nat_real_server() -> None:
    engine, _ = farm()
    engine.handle(tcp("S"), 0.0)
    engine.handle(tcp("SA", src=RIPS[0], dst=CLIENT, sport=80, dport=40000), 0.1)
    # A router towards the client quotes the director's reply (VIP:80 -> client).
    quoted = tcp("A", src=VIP, dst=CLIENT, sport=80, dport=40000, payload=b"y" * 64)
    err = _icmp6("2001:db8:9::1", VIP, ICMPv6PacketTooBig(mtu=1280), quoted)
    action = engine.handle(err, 1.0)
    assert action.verdict == Verdict.REWRITE and action.next_hop == ip6(RIPS[0])
    out = out6(action)
    assert out.dst == RIPS[0] and out[ICMPv6PacketTooBig].mtu == 1280
    assert (out[IPerror6].src, out[TCPerror].sport) == (RIPS[0], 80)
    assert_valid(action)
    assert engine.services()[0].dests[0].stats[1] == 2  # counted as an incoming packet


def test_icmpv6_error_from_the_nat_real_server_reaches_the_client() -> None:
    engine, _ = farm(proto=IPPROTO_UDP)
    engine.handle(udp(), 0.0)
    quoted = bytes(IPv6(src=CLIENT, dst=RIPS[0]) / UDP(sport=5353, dport=53) / (b"q" * 8))
    err = _icmp6(RIPS[0], CLIENT, ICMPv6DestUnreach(code=4), quoted)
    action = engine.handle(err, 1.0)
    assert action.verdict == Verdict.REWRITE and action.next_hop == ip6(CLIENT)
    out = out6(action)
    assert (out.src, out.dst) == (VIP, CLIENT)
    assert (out[IPerror6].dst, out[UDPerror].dport) == (VIP, 53)
    assert_valid(action)


@pytest.mark.parametrize(
    "icmp",
    [ICMPv6TimeExceeded(), ICMPv6ParamProblem(ptr=6), ICMPv6DestUnreach(code=1)],
    ids=["time-exceeded", "param-problem", "dest-unreach"],
)
def test_icmpv6_error_types_follow_a_dr_connection(icmp: Scapy) -> None:
    engine, _ = farm(FwdMethod.ROUTE)
    engine.handle(tcp("S"), 0.0)
    quoted = tcp("SA", src=VIP, dst=CLIENT, sport=80, dport=40000)
    err = _icmp6("2001:db8:9::1", VIP, icmp, quoted)
    action = engine.handle(err, 1.0)
    assert action.verdict == Verdict.ROUTE and action.next_hop == ip6(RIPS[0])


def test_icmpv6_unrelated_messages_are_accepted() -> None:
    engine, _ = farm()
    engine.handle(tcp("S"), 0.0)
    echo = bytes(IPv6(src=CLIENT, dst=VIP) / ICMPv6EchoRequest())
    assert engine.handle(echo, 1.0).verdict == Verdict.ACCEPT
    # An error about a flow nobody tracks goes to the kernel as well.
    quoted = tcp("SA", src=VIP, dst=CLIENT, sport=80, dport=1)
    err = _icmp6("2001:db8:9::1", VIP, ICMPv6DestUnreach(), quoted)
    assert engine.handle(err, 1.0).verdict == Verdict.ACCEPT
    # A quote too short to parse.
    short = _icmp6("2001:db8:9::1", VIP, ICMPv6DestUnreach(), quoted[:30])
    assert engine.handle(short, 1.0).verdict == Verdict.ACCEPT
    assert engine.counters["pass_icmp_unparsable"] == 1


# -- extension headers, fragments ----------------------------------------------------------------


def test_extension_headers_are_walked_to_tcp() -> None:
    engine, _ = farm()
    pkt = (
        IPv6(src=CLIENT, dst=VIP)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrRouting(addresses=[], segleft=0)
        / TCP(sport=40000, dport=80, flags="S")
        / b"data"
    )
    action = engine.handle(bytes(pkt), 0.0)
    assert action.verdict == Verdict.REWRITE
    out = out6(action)
    assert out.dst == RIPS[0] and out[TCP].dport == 80
    assert_valid(action)
    assert states(engine) == [("SYN_RECV", 40000, RIPS[0])]


def test_ah_header_is_walked_to_udp() -> None:
    engine, _ = farm(FwdMethod.ROUTE, proto=IPPROTO_UDP)
    pkt = (
        IPv6(src=CLIENT, dst=VIP)
        / AH(nh=17, payloadlen=4, spi=1, icv=b"\0" * 12)
        / UDP(sport=7, dport=53)
    )
    action = engine.handle(bytes(pkt), 0.0)
    assert action.verdict == Verdict.ROUTE
    assert states(engine) == [("UDP", 7, RIPS[0])]


def test_fragments_are_passed_and_never_scheduled() -> None:
    engine, _ = farm(proto=IPPROTO_UDP)
    first = IPv6(src=CLIENT, dst=VIP) / IPv6ExtHdrFragment(m=1, id=7) / UDP(sport=1, dport=53)
    later = IPv6(src=CLIENT, dst=VIP) / IPv6ExtHdrFragment(offset=2, nh=17, id=7) / (b"z" * 16)
    assert engine.handle(bytes(first / (b"x" * 8)), 0.0).verdict == Verdict.ACCEPT
    assert engine.handle(bytes(later), 0.0).verdict == Verdict.ACCEPT
    assert engine.counters["pass_fragment"] == 2
    assert engine.conns() == []


def test_other_protocols_are_passed() -> None:
    engine, _ = farm()
    pkt = bytes(IPv6(src=CLIENT, dst=VIP, nh=59))  # no next header
    assert engine.handle(pkt, 0.0).verdict == Verdict.ACCEPT
    assert engine.counters["pass_protocol"] == 1


# -- services: persistence, fwmark, port 0, schedulers ----------------------------------------


def test_persistence_with_a_64_bit_prefix() -> None:
    engine, _ = farm(persistent=True, timeout=300, port=80)
    engine.edit_service(
        ServiceSpec(
            af=AF_INET6,
            protocol=IPPROTO_TCP,
            addr=VIP,
            port=80,
            scheduler="rr",
            persistent=True,
            timeout=300,
            netmask=64,
        )
    )
    first = engine.handle(tcp("S", src="2001:db8:1::7"), 0.0)
    same_net = engine.handle(tcp("S", src="2001:db8:1::8:9"), 0.1)
    other_net = engine.handle(tcp("S", src="2001:db8:5::7"), 0.2)
    assert first.next_hop == same_net.next_hop == ip6(RIPS[0])
    assert other_net.next_hop == ip6(RIPS[1])
    templates = [c for c in engine.conns() if c.template]
    assert sorted(t.caddr for t in templates) == ["2001:db8:1::", "2001:db8:5::"]
    assert {t.vport for t in templates} == {80} and {t.cport for t in templates} == {0}


def test_persistence_default_prefix_128_keeps_each_client_apart() -> None:
    engine, _ = farm(persistent=True, timeout=300)
    hops = [engine.handle(tcp("S", src=f"2001:db8:1::{i}"), 0.0).next_hop for i in (1, 2, 3)]
    assert hops == [ip6(r) for r in RIPS]
    again = engine.handle(tcp("S", src="2001:db8:1::2", sport=999), 1.0)
    assert again.next_hop == ip6(RIPS[1])


def test_fwmark_ipv6_service() -> None:
    engine = Engine(random.Random(1))
    vs = ServiceSpec(af=AF_INET6, fwmark=7, scheduler="rr", netmask=128)
    engine.add_service(vs)
    for rip in RIPS[:2]:
        engine.add_dest(vs, DestSpec(af=AF_INET6, addr=rip, port=0, fwd=int(FwdMethod.ROUTE)))
    assert engine.handle(tcp("S"), 0.0, mark=0).verdict == Verdict.ACCEPT  # no mark
    a = engine.handle(tcp("S", dport=443), 0.0, mark=7)
    b = engine.handle(udp(dport=5000), 0.0, mark=7)
    assert (a.verdict, b.verdict) == (Verdict.ROUTE, Verdict.ROUTE)
    assert {a.next_hop, b.next_hop} == {ip6(RIPS[0]), ip6(RIPS[1])}
    # Later packets of the connection need no mark: the connection table knows them.
    assert engine.handle(tcp("A", dport=443), 0.1).next_hop == a.next_hop


def test_fwmark_ipv6_persistence_template_holds_the_mark() -> None:
    engine = Engine(random.Random(1))
    vs = ServiceSpec(af=AF_INET6, fwmark=7, persistent=True, timeout=60, netmask=128)
    engine.add_service(vs)
    engine.add_dest(vs, DestSpec(af=AF_INET6, addr=RIPS[0], fwd=int(FwdMethod.ROUTE)))
    engine.handle(tcp("S", dport=443), 0.0, mark=7)
    engine.handle(udp(dport=5000), 0.0, mark=7)
    templates = [c for c in engine.conns() if c.template]
    assert len(templates) == 1 and templates[0].fwmark == 7 and templates[0].caddr == CLIENT


def test_port_zero_persistent_ipv6_service() -> None:
    engine, _ = farm(FwdMethod.ROUTE, port=0, persistent=True, timeout=60)
    a = engine.handle(tcp("S", dport=22), 0.0)
    b = engine.handle(tcp("S", dport=8080, sport=2), 0.1)
    assert a.verdict == b.verdict == Verdict.ROUTE
    assert a.next_hop == b.next_hop
    assert sorted(c.vport for c in engine.conns() if not c.template) == [22, 8080]


@pytest.mark.parametrize("sched", available())
def test_every_scheduler_balances_ipv6(sched: str) -> None:
    engine, _ = farm(FwdMethod.MASQ, sched=sched, proto=IPPROTO_UDP)
    hops = set()
    for i in range(60):
        action = engine.handle(udp(src=f"2001:db8:1::{i + 1:x}", sport=1000 + i), float(i))
        assert action.verdict == Verdict.REWRITE, sched
        hops.add(action.next_hop)
    assert hops <= {ip6(r) for r in RIPS}
    # UDP connections are never active, so sed and nq (which count only active ones) tie.
    if sched in ("rr", "wrr", "lc", "wlc", "sh", "mh", "twos"):
        assert len(hops) > 1, sched


def test_sh_port_flag_on_ipv6() -> None:
    engine, _ = farm(sched="sh", proto=IPPROTO_UDP, sched_flags=int(ServiceFlags.SCHED2))
    hops = {engine.handle(udp(sport=p), 0.0).next_hop for p in range(2000, 2040)}
    assert len(hops) > 1  # the port is hashed too: one client spreads


def test_conn_reuse_on_a_new_syn_after_close() -> None:
    engine, _ = farm(FwdMethod.ROUTE)
    engine.handle(tcp("S"), 0.0)
    engine.handle(tcp("A"), 0.1)
    engine.handle(tcp("R"), 0.1)
    assert states(engine) == [("CLOSE", 40000, RIPS[0])]
    action = engine.handle(tcp("S"), 0.2)
    assert action.next_hop == ip6(RIPS[1])  # rescheduled
    assert engine.counters["conn_reused"] == 1


def test_ipv4_and_ipv6_services_on_one_engine_do_not_mix() -> None:
    engine, _ = farm(FwdMethod.ROUTE)
    vs4 = ServiceSpec(protocol=IPPROTO_TCP, addr="192.0.2.10", port=80, scheduler="rr")
    engine.add_service(vs4)
    engine.add_dest(vs4, DestSpec(addr="203.0.113.1", port=80, fwd=int(FwdMethod.ROUTE)))
    a6 = engine.handle(tcp("S"), 0.0)
    a4 = engine.handle(bytes(IP(src="198.51.100.7", dst="192.0.2.10") / TCP(dport=80)), 0.0)
    assert (a6.next_hop, a4.next_hop) == (ip6(RIPS[0]), 0xCB007101)
    assert sorted(c.af for c in engine.conns()) == [4, 6]


def test_pylvsadm_ipv6_commands_reach_a_balancing_engine() -> None:
    from pylvs.cli.pylvsadm import main

    engine = Engine(random.Random(1))
    for line in (
        "-A -t [2001:db8::10]:80 -s rr",
        "-a -t [2001:db8::10]:80 -r [2001:db8:2::1]:8080 -m",
        "-a -t [2001:db8::10]:80 -r [2001:db8:2::2]:8080 -m",
    ):
        out, err = io.StringIO(), io.StringIO()
        rc = main(line.split(), control=engine, stdout=out, stderr=err, prog="ipvsadm")
        assert (rc, err.getvalue()) == (0, ""), line
    engine.set_path(AF_INET6, ip6("2001:db8:2::1"), ip6(DIRECTOR), 1500)
    engine.set_path(AF_INET6, ip6("2001:db8:2::2"), ip6(DIRECTOR), 1500)
    hops = []
    for sport in (1, 2):
        action = engine.handle(tcp("S", sport=sport), 0.0)
        assert action.verdict == Verdict.REWRITE
        assert out6(action)[TCP].dport == 8080
        hops.append(action.next_hop)
    assert hops == [ip6("2001:db8:2::1"), ip6("2001:db8:2::2")]


def test_sync_master_takes_ipv6_connections() -> None:
    """ip_vs_sync_conn: IPv6 connections are synchronised as IPv6 records (type bit 0)."""
    from pylvs.core.sync import decode_message

    engine, _ = farm(FwdMethod.ROUTE)
    engine.start_daemon(DaemonSpec(state="master", mcast_ifn="eth0"))
    engine.handle(tcp("S"), 0.0)
    for i in range(3):
        engine.handle(tcp("A"), 0.1 + i)
    assert engine.sync_master is not None
    sent = engine.sync_master.datagrams_to_send(10.0)
    assert sent
    records = [rec for data in sent for rec in decode_message(data).conns]
    assert {(r.af, r.caddr, r.vaddr, r.daddr) for r in records} == {
        (AF_INET6, ip6(CLIENT), ip6(VIP), ip6(RIPS[0]))
    }


@pytest.mark.parametrize("addr", ["::", "ff02::1", "fe80::1", "febf::1", "::ffff:192.0.2.1"])
def test_ipv6_real_server_must_be_global_unicast(addr: str) -> None:
    """ip_vs_new_dest refuses a real server that is not unicast, or link-local (EINVAL)."""
    engine, vs = farm()
    with pytest.raises(IPVSError) as exc:
        engine.add_dest(vs, DestSpec(af=AF_INET6, addr=addr, port=80, fwd=int(FwdMethod.MASQ)))
    assert exc.value.errno == errno.EINVAL
    engine.add_dest(vs, DestSpec(af=AF_INET6, addr="fec0::1", port=80, fwd=int(FwdMethod.MASQ)))
    engine.add_dest(vs, DestSpec(af=AF_INET6, addr="::1", port=80, fwd=int(FwdMethod.MASQ)))
