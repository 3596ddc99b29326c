"""`pylvs lab trace` on IPv6: frames built with scapy, decoded and explained hop by hop (NAT66,
DR's MAC rewrite, the four IP-in-IP tunnels, ICMPv6 errors)."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import Ether

from pylvs.lab.trace import (
    Seen,
    TraceResult,
    changes,
    decode_frame,
    format_trace,
    icmp_errors,
    pick_stages,
)

CLIENT, VIP, RIP, DIP = "2001:db8:1::10", "2001:db8:2::100", "2001:db8:3::11", "2001:db8:2::2"
MAC = {
    "client1.eth0": "02:00:00:00:00:0a",
    "router.eth1": "02:00:00:00:01:01",
    "director1.eth0": "02:00:00:00:00:02",
    "director1.eth1": "02:00:00:00:00:03",
    "rs1.eth0": "02:00:00:00:00:11",
}
NAMES = {mac: name for name, mac in MAC.items()}


def _frame(pkt: object, src: str, dst: str) -> bytes:
    return bytes(Ether(src=MAC[src], dst=MAC[dst]) / pkt)


def _decode(frame: bytes, at: str, t: float = 1.0) -> Seen:
    node, iface = at.split(".")
    seen = decode_frame(frame, node, iface, MAC[at], t)
    assert seen is not None
    return seen


def _syn(dst: str = VIP, hlim: int = 63) -> IPv6:
    return IPv6(src=CLIENT, dst=dst, hlim=hlim) / TCP(sport=40000, dport=80, flags="S")


def test_an_ipv6_tcp_frame_is_decoded() -> None:
    seen = _decode(_frame(_syn(), "router.eth1", "director1.eth0"), "director1.eth0")
    assert (seen.version, seen.proto, seen.flags, seen.direction) == (6, "TCP", "S", "recv")
    assert (seen.src, seen.dst, seen.sport, seen.dport, seen.ttl) == (CLIENT, VIP, 40000, 80, 63)
    assert seen.outer is None and seen.quoted is None


def test_nat66_rewrites_are_named() -> None:
    before = _decode(_frame(_syn(), "router.eth1", "director1.eth0"), "director1.eth0", 1.0)
    after = _decode(_frame(_syn(RIP, 62), "director1.eth1", "rs1.eth0"), "director1.eth1", 1.1)
    notes = changes(before, after, NAMES, "nat")
    assert f"IP dst {VIP} -> {RIP} (DNAT, NAT66)" in notes
    assert "hop limit 63 -> 62" in notes
    assert not any(n.startswith("new Ethernet header") for n in notes)


def test_dr_over_ipv6_changes_only_the_mac() -> None:
    before = _decode(_frame(_syn(), "router.eth1", "director1.eth0"), "director1.eth0", 1.0)
    after = _decode(_frame(_syn(VIP, 62), "director1.eth0", "rs1.eth0"), "director1.eth0", 1.1)
    assert after.direction == "sent"
    assert changes(before, after, NAMES, "dr") == [
        "hop limit 63 -> 62",
        "new Ethernet header: to rs1.eth0",
    ]


def test_the_four_tunnels_are_recognised() -> None:
    inner6 = _syn(VIP, 62)
    inner4 = IP(src="198.51.100.10", dst="192.0.2.100", ttl=62) / TCP(sport=40000, dport=80)
    cases = [
        (IPv6(src=DIP, dst=RIP, hlim=64, nh=41) / inner6, "IP6IP6", (DIP, RIP, 64)),
        (IPv6(src=DIP, dst=RIP, hlim=64, nh=4) / inner4, "IPIP6", (DIP, RIP, 64)),
        (IP(src="192.0.2.2", dst="203.0.113.11", proto=41) / inner6, "SIT", None),
        (IP(src="192.0.2.2", dst="203.0.113.11", proto=4) / inner4, "IPIP", None),
    ]
    for pkt, tunnel, outer in cases:
        seen = _decode(_frame(pkt, "director1.eth0", "rs1.eth0"), "rs1.eth0")
        assert seen.tunnel == tunnel
        assert seen.outer is not None
        if outer is not None:
            assert seen.outer == outer
        assert (seen.sport, seen.dport) == (40000, 80)
        assert seen.version == (6 if tunnel in ("IP6IP6", "SIT") else 4)


def test_ip6ip6_added_and_removed_and_shown() -> None:
    plain = _decode(_frame(_syn(), "router.eth1", "director1.eth0"), "director1.eth0", 1.0)
    wrapped_pkt = IPv6(src=DIP, dst=RIP, hlim=64, nh=41) / _syn(VIP, 62)
    wrapped = _decode(_frame(wrapped_pkt, "director1.eth0", "rs1.eth0"), "director1.eth0", 1.1)
    notes = changes(plain, wrapped, NAMES, "tun")
    assert notes[0] == f"IP6IP6 header added: {DIP} > {RIP}, packet inside unchanged"
    inside = decode_frame(bytes(_syn(VIP, 62)), "rs1", "pylvs-tun0", None, 1.2, raw=True)
    assert inside is not None and inside.direction == "recv" and inside.eth_src is None
    assert changes(wrapped, inside, NAMES, "tun")[0] == "IP6IP6 header removed"
    result = TraceResult("tun6", "tun", VIP, "client1", "rs1", [], NAMES)
    result.stages = pick_stages([plain, wrapped, inside], CLIENT, 40000, "TCP")
    text = format_trace(result)
    assert f"[IP6IP6 {DIP} > {RIP} hlim 64] [{CLIENT}]:40000 > [{VIP}]:80 [S] hlim 62" in text
    assert "IP6IP6 header removed" in text


def test_icmpv6_errors_quote_the_connection() -> None:
    # Packet Too Big from the router about the real server's answer (RFC 4443 3.2).
    answer = IPv6(src=VIP, dst=CLIENT) / TCP(sport=80, dport=40000, flags="A")
    ptb = IPv6(src="2001:db8:2::1", dst=VIP) / ICMPv6PacketTooBig(mtu=1280) / answer
    seen = _decode(_frame(ptb, "router.eth1", "director1.eth0"), "director1.eth0")
    assert (seen.proto, seen.flags, seen.sport) == ("ICMPv6", "packet-too-big", 2)
    assert seen.quoted == (VIP, CLIENT, 80, 40000)
    other = IPv6(src=VIP, dst=CLIENT) / UDP(sport=7, dport=50000)
    unrelated = IPv6(src="2001:db8:2::1", dst=VIP) / ICMPv6PacketTooBig(mtu=1280) / other
    noise = _decode(_frame(unrelated, "router.eth1", "director1.eth0"), "director1.eth0")
    assert icmp_errors([seen, noise], CLIENT, 40000) == [seen]
    stages = pick_stages([seen, noise], CLIENT, 40000, "TCP")
    assert stages[-1].title == "ICMP errors about this connection"
    result = TraceResult("nat6", "nat", VIP, "client1", "rs1", stages, NAMES)
    assert f"ICMPv6 packet-too-big about [{VIP}]:80 > [{CLIENT}]:40000" in format_trace(result)


def test_neighbour_discovery_and_echo_are_not_errors() -> None:
    ns = IPv6(src=DIP, dst="ff02::1:ff00:11", hlim=255) / ICMPv6ND_NS(tgt=RIP)
    echo = IPv6(src=CLIENT, dst=VIP) / ICMPv6EchoRequest()
    for pkt, name in ((ns, "neighbor-solicitation"), (echo, "echo-request")):
        seen = _decode(_frame(pkt, "director1.eth0", "rs1.eth0"), "rs1.eth0")
        assert (seen.proto, seen.flags, seen.quoted) == ("ICMPv6", name, None)
    assert pick_stages([seen], CLIENT, 40000, "TCP")[0].seen == []


def test_not_ip_is_ignored() -> None:
    arp_like = bytes(Ether(src=MAC["rs1.eth0"], dst="ff:ff:ff:ff:ff:ff", type=0x0806) / (b"x" * 28))
    assert decode_frame(arp_like, "rs1", "eth0", MAC["rs1.eth0"], 1.0) is None
    assert decode_frame(b"\x60\x00", "rs1", "pylvs-tun0", None, 1.0, raw=True) is None
