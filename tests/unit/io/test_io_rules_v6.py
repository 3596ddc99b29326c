"""IPv6 in the backends' pure code: ip6tables rule sets, the socket filter and fanout hash for
IPv6 frames, the IPv6 decapsulator and the IPv6 partial checksum under NAT."""

from __future__ import annotations

import ipaddress

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from pylvs.core.checksum import l4_checksum
from pylvs.core.control import DestInfo, ServiceInfo
from pylvs.core.forward import partial_csum_nat6
from pylvs.core.packet import parse_ip
from pylvs.core.service import FwdMethod
from pylvs.io import afpacket, nfqueue
from pylvs.io.ipipdecap import decapsulate, decapsulate6
from pylvs.io.rings import client_hash_program, client_hash_program6, host_filter
from pylvs.testing import bpf

VIP6 = "2001:db8:10::10"
RIP6 = "2001:db8:2::11"
NL = "-m addrtype ! --dst-type LOCAL"


def _n(addr: str) -> int:
    return int(ipaddress.ip_address(addr))


SERVICES6 = [
    ServiceInfo(af=6, protocol=6, addr=VIP6, port=80, fwmark=0, scheduler="rr", timeout=0,
                dests=[DestInfo(6, RIP6, 8080, int(FwdMethod.MASQ), 1, 0, 0, 0, 0, 0)],
                flags=0, netmask=128),
]  # fmt: skip


def test_nfqueue_ip6tables_ruleset_queues_only_icmpv6_errors() -> None:
    rules = nfqueue.build_ruleset(SERVICES6, 0, True, 6).splitlines()
    assert f"-A PYLVS -d {VIP6}/128 -p tcp --dport 80 -j PYLVS-Q" in rules
    assert f"-A PYLVS -s {RIP6}/128 -p tcp --sport 8080 {NL} -j PYLVS-Q" in rules
    icmp = [r for r in rules if "ipv6-icmp" in r]
    assert len(icmp) == 8 and all("--icmpv6-type" in r for r in icmp)
    # The IPv4 rule set does not carry the IPv6 service, nor the IPv6 one an IPv4 service.
    assert VIP6 not in nfqueue.build_ruleset(SERVICES6, 0, True)


def test_afpacket_ip6tables_ruleset_drops_the_kernel_copy() -> None:
    rules = afpacket.build_ruleset(SERVICES6, 6).splitlines()
    assert f"-A PYLVS-AF -d {VIP6}/128 -p tcp --dport 80 -j DROP" in rules
    assert f"-A PYLVS-AF -s {RIP6}/128 -p tcp --sport 8080 {NL} -j DROP" in rules
    assert afpacket.filter_addrs(SERVICES6, 6) == ([_n(VIP6)], [_n(RIP6)])
    assert afpacket.filter_addrs(SERVICES6) == ([], [])


def test_host_filter_takes_ipv6_to_a_vip_or_from_a_nat_real_server() -> None:
    vip4 = _n("203.0.113.10")
    program = host_filter([vip4], [], [_n(VIP6)], [_n(RIP6)])
    mac = "02:00:00:00:00:01"

    def verdict(pkt: object, pkttype: int = 0) -> int:
        return bpf.run(program, bytes(pkt), pkttype)  # type: ignore[call-overload]

    eth = Ether(dst=mac, src=mac)
    assert verdict(eth / IPv6(src="2001:db8:1::2", dst=VIP6) / TCP())
    assert verdict(eth / IPv6(src=RIP6, dst="2001:db8:1::2") / TCP())
    assert not verdict(eth / IPv6(src="2001:db8:1::2", dst="2001:db8:10::11") / TCP())
    assert not verdict(eth / IPv6(src="2001:db8:1::2", dst=VIP6) / TCP(), pkttype=2)
    # IPv4 still as before.
    assert verdict(eth / IP(src="192.0.2.2", dst="203.0.113.10") / TCP())
    assert not verdict(eth / IP(src="192.0.2.2", dst="203.0.113.11") / TCP())
    # Without IPv6 addresses the program is the IPv4 one and IPv6 is rejected.
    assert host_filter([vip4], []) == host_filter([vip4], [], [], [])
    assert not bpf.run(host_filter([vip4], []), bytes(eth / IPv6(dst=VIP6) / TCP()))


def test_fanout_hash_keeps_both_directions_of_an_ipv6_connection_together() -> None:
    program = client_hash_program6([_n(VIP6)], None, client_hash_program([]))
    spread = set()
    for sport in range(1000, 1100):
        request = IPv6(src="2001:db8:1::2", dst=VIP6) / TCP(sport=sport, dport=80)
        reply = IPv6(src=RIP6, dst="2001:db8:1::2") / TCP(sport=8080, dport=sport)
        h = bpf.run(program, bytes(request))
        assert h == bpf.run(program, bytes(reply))
        spread.add(h % 2)
    assert spread == {0, 1}
    # Persistence: one /64 of clients on one worker, whatever the host part and port.
    program = client_hash_program6([_n(VIP6)], 64, client_hash_program([]))
    hashes = {
        bpf.run(program, bytes(IPv6(src=f"2001:db8:1::{h:x}", dst=VIP6) / UDP(sport=s)))
        for h in range(1, 40)
        for s in (1000, 2000)
    }
    assert len(hashes) == 1


def test_decapsulators_take_all_four_tunnel_kinds() -> None:
    inner6 = bytes(IPv6(src="2001:db8:1::2", dst=VIP6) / UDP() / b"x")
    inner4 = bytes(IP(src="192.0.2.2", dst="203.0.113.10") / UDP() / b"x")
    assert decapsulate(bytes(IP(proto=41) / inner6)) == inner6  # IPv6 in IPv4
    assert decapsulate(bytes(IP(proto=4) / inner4)) == inner4
    assert decapsulate(bytes(IP(proto=4) / inner6)) is None  # version and protocol disagree
    assert decapsulate6(inner6, 41) == inner6  # the payload of an IPv6 raw socket
    assert decapsulate6(inner4, 4) == inner4
    assert decapsulate6(inner4, 41) is None and decapsulate6(inner6, 17) is None


def test_partial_checksum_follows_nat66_addresses() -> None:
    """A partial (pseudo-header) IPv6 checksum rewritten for new addresses equals the partial
    sum computed afresh for them (what the device completes on transmit)."""
    from pylvs.core.checksum import fold

    def pseudo_partial(pkt: bytearray) -> int:
        words = [int.from_bytes(pkt[i : i + 2], "big") for i in range(8, 40, 2)]
        total = sum(words) + (len(pkt) - 40) + 6
        return fold(total)

    pkt = bytearray(bytes(IPv6(src="2001:db8:1::2", dst=VIP6) / TCP(sport=1, dport=80)))
    off = 40 + 16
    pkt[off : off + 2] = pseudo_partial(pkt).to_bytes(2, "big")
    old = pkt[off] << 8 | pkt[off + 1]
    old_s, old_d = _n("2001:db8:1::2"), _n(VIP6)
    pkt[24:40] = ipaddress.ip_address(RIP6).packed
    partial_csum_nat6(pkt, off, old, old_s, old_d)
    assert pkt[off] << 8 | pkt[off + 1] == pseudo_partial(pkt)
    # And the full checksum of the rewritten packet is still computable by l4_checksum.
    assert 0 <= l4_checksum(pkt, parse_ip(bytes(pkt))) <= 0xFFFF
