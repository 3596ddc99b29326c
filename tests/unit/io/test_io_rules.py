"""The backends' rule-set builders, socket-filter address lists and fanout programs (pure code
that only root-only end-to-end tests reached before)."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from pylvs.core.control import DestInfo, ServiceInfo
from pylvs.core.service import FwdMethod, ServiceFlags
from pylvs.io import afpacket, nfqueue
from pylvs.io.rings import client_hash_program, host_filter
from pylvs.testing import bpf

NL = "-m addrtype ! --dst-type LOCAL"  # replies on their way to a client only


def _dest(addr: str, fwd: FwdMethod, port: int = 8080) -> DestInfo:
    return DestInfo(4, addr, port, int(fwd), 1, 0, 0, 0, 0, 0)


def _svc(
    addr: str, port: int, dests: list[DestInfo], proto: int = 6, fwmark: int = 0, **kw: object
) -> ServiceInfo:
    defaults: dict[str, object] = {"flags": 0, "netmask": 32}
    defaults.update(kw)
    return ServiceInfo(
        af=4,
        protocol=proto,
        addr=addr,
        port=port,
        fwmark=fwmark,
        scheduler="rr",
        timeout=0,
        dests=dests,
        **defaults,  # type: ignore[arg-type]
    )


SERVICES = [
    _svc("203.0.113.10", 80, [_dest("198.51.100.11", FwdMethod.MASQ),
                              _dest("198.51.100.12", FwdMethod.ROUTE)]),
    _svc("203.0.113.10", 53, [_dest("198.51.100.11", FwdMethod.MASQ, 0)], proto=17),
    _svc("", 0, [_dest("198.51.100.13", FwdMethod.MASQ, 0)], proto=0, fwmark=7),
]  # fmt: skip


def test_nfqueue_ruleset() -> None:
    assert nfqueue.build_ruleset(SERVICES, 3, True) == "\n".join(
        [
            "*raw",
            ":PYLVS - [0:0]",
            ":PYLVS-Q - [0:0]",
            "-A PYLVS-Q -j CT --notrack",
            "-A PYLVS-Q -j NFQUEUE --queue-num 3 --queue-bypass",
            "-A PYLVS -d 203.0.113.10/32 -p tcp --dport 80 -j PYLVS-Q",
            "-A PYLVS -d 203.0.113.10/32 -p icmp -j PYLVS-Q",
            "-A PYLVS -d 203.0.113.10/32 -p udp --dport 53 -j PYLVS-Q",
            "-A PYLVS -s 198.51.100.11/32 -p tcp --sport 8080 " + NL + " -j PYLVS-Q",
            "-A PYLVS -s 198.51.100.11/32 -p icmp " + NL + " -j PYLVS-Q",
            # port 0: replies come from the virtual port
            "-A PYLVS -s 198.51.100.11/32 -p udp --sport 53 " + NL + " -j PYLVS-Q",
            # a fwmark service's NAT replies, any protocol the mark may carry, any port
            "-A PYLVS -s 198.51.100.13/32 -p tcp " + NL + " -j PYLVS-Q",
            "-A PYLVS -s 198.51.100.13/32 -p udp " + NL + " -j PYLVS-Q",
            "-A PYLVS -s 198.51.100.13/32 -p icmp " + NL + " -j PYLVS-Q",
            "COMMIT",
            "*mangle",
            ":PYLVS-MARK - [0:0]",
            "-A PYLVS-MARK -m mark --mark 0x7 -j NFQUEUE --queue-num 3 --queue-bypass",
            "COMMIT",
            "",
        ]
    )
    assert "--queue-bypass" not in nfqueue.build_ruleset(SERVICES, 0, False)


def test_afpacket_ruleset_drops_what_pylvs_forwards() -> None:
    rules = afpacket.build_ruleset(SERVICES).splitlines()
    assert rules[:2] == ["*raw", ":PYLVS-AF - [0:0]"]
    assert "-A PYLVS-AF -d 203.0.113.10/32 -p tcp --dport 80 -j DROP" in rules
    assert "-A PYLVS-AF -s 198.51.100.11/32 -p tcp --sport 8080 " + NL + " -j DROP" in rules
    assert "-A PYLVS-AF -s 198.51.100.11/32 -p udp --sport 53 " + NL + " -j DROP" in rules
    # A DR real server's traffic never comes back through the director: nothing to drop.
    assert not any("198.51.100.12" in r for r in rules)
    # ICMP errors, each kind once per address.
    icmp = [r for r in rules if "icmp-type time-exceeded" in r]
    assert icmp == [
        "-A PYLVS-AF -d 203.0.113.10/32 -p icmp --icmp-type time-exceeded -j DROP",
        "-A PYLVS-AF -s 198.51.100.11/32 -p icmp --icmp-type time-exceeded " + NL + " -j DROP",
    ]
    # fwmark services are refused by this backend, so they add nothing.
    assert not any("198.51.100.13" in r for r in rules)
    assert rules[-1] == "COMMIT"


def test_filter_addresses() -> None:
    assert afpacket.filter_addrs(SERVICES) == ([0xCB00710A], [0xC633640B])
    many = [_svc(f"10.0.{i // 256}.{i % 256}", 80, []) for i in range(251)]
    assert afpacket.filter_addrs(many) is None


def test_persistence_prefix_is_the_widest_mask() -> None:
    assert afpacket.persistence_prefix(SERVICES) is None
    p = int(ServiceFlags.PERSISTENT)
    services = [*SERVICES, _svc("203.0.113.20", 0, [], flags=p, netmask=24),
                _svc("203.0.113.21", 0, [], flags=p, netmask=16)]  # fmt: skip
    assert afpacket.persistence_prefix(services) == 16


# -- BPF programs, run by an interpreter of classic BPF ----------------------------------------

MAC = "02:00:00:00:00:01"
VIP = 0xCB00710A  # 203.0.113.10
RIP = 0xC633640B  # 198.51.100.11


def test_host_filter_keeps_only_ipv4_to_a_vip_or_from_a_nat_real_server() -> None:
    program = host_filter([VIP], [RIP])

    def verdict(pkt: object, pkttype: int = 0) -> int:
        return bpf.run(program, bytes(pkt), pkttype)  # type: ignore[call-overload]

    to_vip = Ether(dst=MAC, src=MAC) / IP(src="192.0.2.2", dst="203.0.113.10") / TCP()
    from_rip = Ether(dst=MAC, src=MAC) / IP(src="198.51.100.11", dst="192.0.2.2") / TCP()
    other = Ether(dst=MAC, src=MAC) / IP(src="192.0.2.2", dst="203.0.113.99") / TCP()
    assert verdict(to_vip) and verdict(from_rip)
    assert not verdict(other)
    assert not verdict(to_vip, pkttype=1)  # broadcast: PACKET_BROADCAST
    assert not verdict(Ether(dst=MAC, src=MAC, type=0x86DD) / (b"\x60" * 40))
    assert verdict(other) == 0 and bpf.run(host_filter(None), bytes(other)) == 0xFFFFFFFF


def _hash(program: list[tuple[int, int, int, int]], pkt: object) -> int:
    return bpf.run(program, bytes(pkt))  # type: ignore[call-overload]


def test_fanout_hash_sends_both_directions_of_a_connection_to_one_worker() -> None:
    program = client_hash_program([VIP])
    for sport in range(1000, 1100):
        request = IP(src="192.0.2.2", dst="203.0.113.10") / TCP(sport=sport, dport=80)
        reply = IP(src="198.51.100.11", dst="192.0.2.2") / TCP(sport=8080, dport=sport)
        assert _hash(program, request) == _hash(program, reply)
    # Without persistence the client's port is hashed: its connections spread over workers.
    spread = {
        _hash(program, IP(src="192.0.2.2", dst="203.0.113.10") / TCP(sport=s, dport=80)) % 2
        for s in range(1000, 1100)
    }
    assert spread == {0, 1}


def test_fanout_hash_with_persistence_keeps_a_masked_client_network_together() -> None:
    """Before, the hash always covered the client port, so one client's connections reached
    different workers and persistence held only within one of them."""
    program = client_hash_program([VIP], prefix=24)
    members = set()
    for host in range(1, 60):
        for sport in (1000, 2000, 3000):
            client = f"192.0.2.{host}"
            request = IP(src=client, dst="203.0.113.10") / UDP(sport=sport, dport=53)
            reply = IP(src="198.51.100.11", dst=client) / UDP(sport=53, dport=sport)
            members.add(_hash(program, request))
            assert _hash(program, reply) == _hash(program, request)
    assert len(members) == 1  # one /24: one hash
    other_nets = {
        _hash(program, IP(src=f"10.{n}.0.1", dst="203.0.113.10") / UDP(sport=1, dport=53)) % 2
        for n in range(64)
    }
    assert other_nets == {0, 1}  # different networks still spread
