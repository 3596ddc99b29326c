"""The packet path, stepped with a fake clock: scheduling, state, counters, persistence, NAT.

Packets are built with scapy and results re-dissected with scapy, independently of pylvs's own
parser.
"""

from __future__ import annotations

import random

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror
from scapy.packet import Raw

from pylvs.core.control import DestSpec, ServiceSpec, Timeouts
from pylvs.core.engine import Engine, Verdict
from pylvs.core.service import IPPROTO_TCP, IPPROTO_UDP, FwdMethod

VIP = "192.0.2.10"
CLIENT = "198.51.100.7"
RIPS = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]


def ip_int(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return a << 24 | b << 16 | c << 8 | d


def farm(
    fwd: FwdMethod = FwdMethod.MASQ, sched: str = "rr", proto: int = IPPROTO_TCP, **svc_kw: object
) -> tuple[Engine, ServiceSpec]:
    engine = Engine(random.Random(1))
    port = 80 if proto == IPPROTO_TCP else 53
    vs = ServiceSpec(protocol=proto, addr=VIP, port=port, scheduler=sched, **svc_kw)  # type: ignore[arg-type]
    engine.add_service(vs)
    for rip in RIPS:
        engine.add_dest(vs, DestSpec(addr=rip, port=port, fwd=int(fwd)))
        engine.set_path(4, ip_int(rip), ip_int("203.0.113.254"), 1500)
    return engine, vs


def tcp(
    flags: str,
    sport: int = 40000,
    src: str = CLIENT,
    dst: str = VIP,
    dport: int = 80,
    payload: bytes = b"",
) -> bytes:
    return bytes(
        IP(src=src, dst=dst, ttl=64) / TCP(sport=sport, dport=dport, flags=flags) / payload
    )


def states(engine: Engine) -> list[tuple[str, int, str]]:
    return sorted((c.state, c.cport, c.daddr) for c in engine.conns() if not c.template)


def test_nat_inbound_rewrites_destination_and_checksums() -> None:
    engine, _ = farm()
    action = engine.handle(tcp("S", payload=b"hello"), 0.0)
    assert action.verdict == Verdict.REWRITE
    out = IP(bytes(action.packet or b""))
    assert (out.src, out.dst, out[TCP].dport, out.ttl) == (CLIENT, RIPS[0], 80, 64)
    assert bytes(out[Raw]) == b"hello"
    # Checksums recomputed by scapy match what pylvs left in the packet.
    fresh = IP(bytes(action.packet or b""))
    del fresh.chksum
    del fresh[TCP].chksum
    assert IP(bytes(fresh)).chksum == out.chksum and IP(bytes(fresh))[TCP].chksum == out[TCP].chksum


def test_nat_reply_is_snated_and_states_follow_ipvs() -> None:
    engine, _ = farm()
    engine.handle(tcp("S"), 0.0)
    reply = engine.handle(tcp("SA", src=RIPS[0], dst=CLIENT, sport=80, dport=40000), 0.1)
    assert reply.verdict == Verdict.REWRITE
    out = IP(bytes(reply.packet or b""))
    assert (out.src, out[TCP].sport, out.dst) == (VIP, 80, CLIENT)
    engine.handle(tcp("A"), 0.2)
    assert states(engine) == [("ESTABLISHED", 40000, RIPS[0])]
    [svc] = engine.services()
    assert svc.dests[0].activeconns == 1 and svc.dests[0].inactconns == 0
    assert svc.stats[:3] == (1, 2, 1)
    engine.handle(tcp("FA", src=RIPS[0], dst=CLIENT, sport=80, dport=40000), 0.3)
    engine.handle(tcp("FA"), 0.4)
    assert states(engine) == [("TIME_WAIT", 40000, RIPS[0])]
    [svc] = engine.services()
    assert svc.dests[0].activeconns == 0 and svc.dests[0].inactconns == 1
    # TIME_WAIT lasts 120 s, then the connection is gone and the counters drop.
    engine.tick(120.3)
    assert states(engine) == [("TIME_WAIT", 40000, RIPS[0])]
    engine.tick(124.5)
    assert states(engine) == []
    assert engine.services()[0].dests[0].inactconns == 0


def test_round_robin_distribution_and_non_syn_passes() -> None:
    engine, _ = farm(FwdMethod.ROUTE)
    chosen = []
    for port in range(40000, 40006):
        action = engine.handle(tcp("S", sport=port), 0.0)
        assert action.verdict == Verdict.ROUTE
        chosen.append(action.next_hop)
    assert chosen == [ip_int(r) for r in RIPS] * 2
    # An ACK of an unknown connection is not scheduled: it goes to the kernel.
    assert engine.handle(tcp("A", sport=50000), 0.0).verdict == Verdict.ACCEPT
    assert engine.counters["pass_not_syn"] == 1


def test_dr_keeps_the_packet_and_decrements_ttl() -> None:
    engine, _ = farm(FwdMethod.ROUTE)
    original = tcp("S", payload=b"x" * 10)
    action = engine.handle(original, 0.0)
    out = IP(bytes(action.packet or b""))
    assert (out.src, out.dst, out.ttl) == (CLIENT, VIP, 63)
    assert out[TCP].chksum == IP(original)[TCP].chksum
    del out.chksum
    assert IP(bytes(out)).chksum == IP(bytes(action.packet or b"")).chksum
    assert states(engine) == [("SYN_RECV", 40000, RIPS[0])]
    engine.handle(tcp("A"), 1.0)
    engine.handle(tcp("FA"), 2.0)
    assert states(engine) == [("FIN_WAIT", 40000, RIPS[0])]


def test_tunnel_encapsulates_with_director_source() -> None:
    engine, _ = farm(FwdMethod.TUNNEL)
    action = engine.handle(tcp("S"), 0.0)
    assert action.verdict == Verdict.TUNNEL
    outer = IP(bytes(action.packet or b""))
    assert (outer.src, outer.dst, outer.proto, outer.ttl) == ("203.0.113.254", RIPS[0], 4, 63)
    inner = IP(bytes(outer.payload))
    assert (inner.src, inner.dst, inner[TCP].dport) == (CLIENT, VIP, 80)


def test_tunnel_df_too_big_gives_frag_needed() -> None:
    engine, _ = farm(FwdMethod.TUNNEL)
    big = bytes(
        IP(src=CLIENT, dst=VIP, flags="DF") / TCP(sport=1, dport=80, flags="S") / (b"y" * 1460)
    )
    action = engine.handle(big, 0.0)
    assert action.verdict == Verdict.LOCAL
    icmp = IP(bytes(action.packet or b""))
    assert (icmp.dst, icmp[ICMP].type, icmp[ICMP].code, icmp[ICMP].nexthopmtu) == (
        CLIENT,
        3,
        4,
        1480,
    )


def test_no_real_server_gives_icmp_port_unreachable() -> None:
    engine, vs = farm()
    for rip in RIPS:
        engine.edit_dest(vs, DestSpec(addr=rip, port=80, weight=0, fwd=int(FwdMethod.MASQ)))
    action = engine.handle(tcp("S"), 0.0)
    assert action.verdict == Verdict.LOCAL and action.next_hop == ip_int(CLIENT)
    icmp = IP(bytes(action.packet or b""))
    assert (icmp.src, icmp.dst, icmp[ICMP].type, icmp[ICMP].code) == (VIP, CLIENT, 3, 3)
    assert icmp[IPerror].dst == VIP and icmp[TCPerror].sport == 40000


def test_quiescent_server_gets_no_new_connections_but_keeps_old() -> None:
    engine, vs = farm(FwdMethod.ROUTE)
    engine.handle(tcp("S", sport=1), 0.0)  # -> RIPS[0]
    engine.edit_dest(vs, DestSpec(addr=RIPS[0], port=80, weight=0))
    for port in range(2, 8):
        assert engine.handle(tcp("S", sport=port), 0.0).next_hop != ip_int(RIPS[0])
    assert engine.handle(tcp("A", sport=1), 0.0).next_hop == ip_int(RIPS[0])


def test_persistence_template_keeps_client_and_lives_while_controlling() -> None:
    engine, _ = farm(FwdMethod.ROUTE, persistent=True, timeout=30)
    first = engine.handle(tcp("S", sport=1), 0.0).next_hop
    for port in range(2, 6):
        assert engine.handle(tcp("S", sport=port), 1.0).next_hop == first
    templates = [c for c in engine.conns() if c.template]
    assert len(templates) == 1 and templates[0].cport == 0 and templates[0].state == "NONE"
    assert engine.services()[0].dests[0].persistconns == 1
    # Connections in SYN_RECV (60 s) outlive the 30 s template timer: the template is re-armed.
    engine.tick(31.5)
    assert [c for c in engine.conns() if c.template]
    engine.tick(200.0)
    assert engine.conns() == []
    assert engine.services()[0].dests[0].persistconns == 0


def test_persistence_netmask_groups_clients() -> None:
    engine, _ = farm(FwdMethod.ROUTE, persistent=True, timeout=300, netmask=24)
    hops = {engine.handle(tcp("S", src=f"198.51.100.{i}"), 0.0).next_hop for i in range(1, 20)}
    assert len(hops) == 1


def test_udp_connections_are_inactive_and_expire_after_300s() -> None:
    engine, _ = farm(FwdMethod.MASQ, sched="rr", proto=IPPROTO_UDP)
    pkt = bytes(IP(src=CLIENT, dst=VIP) / UDP(sport=5353, dport=53) / b"q")
    action = engine.handle(pkt, 0.0)
    out = IP(bytes(action.packet or b""))
    assert out.dst == RIPS[0] and out[UDP].dport == 53
    assert [(c.state, c.expires) for c in engine.conns()] == [("UDP", 300)]
    assert engine.services()[0].dests[0].inactconns == 1
    engine.tick(300.5)
    assert engine.conns() == []


def test_udp_one_packet_scheduling() -> None:
    engine, _ = farm(FwdMethod.MASQ, proto=IPPROTO_UDP, ops=True)
    pkt = bytes(IP(src=CLIENT, dst=VIP) / UDP(sport=5353, dport=53) / b"q")
    hops = [engine.handle(pkt, 0.0).next_hop for _ in range(3)]
    assert hops == [ip_int(r) for r in RIPS]
    assert engine.conns() == []
    assert engine.services()[0].stats[0] == 3


def test_port_reuse_on_time_wait_reschedules() -> None:
    engine, _ = farm(FwdMethod.MASQ)
    engine.handle(tcp("S"), 0.0)
    engine.handle(tcp("SA", src=RIPS[0], dst=CLIENT, sport=80, dport=40000), 0.0)
    engine.handle(tcp("A"), 0.0)
    engine.handle(tcp("FA"), 0.0)
    engine.handle(tcp("FA", src=RIPS[0], dst=CLIENT, sport=80, dport=40000), 0.0)
    assert states(engine) == [("TIME_WAIT", 40000, RIPS[0])]
    again = engine.handle(tcp("S"), 1.0)
    assert again.next_hop == ip_int(RIPS[1])
    assert states(engine) == [("SYN_RECV", 40000, RIPS[1])]


def test_settable_timeouts_apply_to_states() -> None:
    engine, _ = farm(FwdMethod.ROUTE)
    engine.set_timeouts(Timeouts(tcp=100, tcpfin=0, udp=0))
    engine.handle(tcp("S"), 0.0)
    engine.handle(tcp("A"), 0.0)
    assert [c.expires for c in engine.conns()] == [100]


def test_icmp_error_from_real_server_is_snated_inside_and_out() -> None:
    engine, _ = farm(FwdMethod.MASQ, proto=IPPROTO_UDP)
    engine.handle(bytes(IP(src=CLIENT, dst=VIP) / UDP(sport=5353, dport=53) / b"q"), 0.0)
    quoted = IP(src=CLIENT, dst=RIPS[0]) / UDP(sport=5353, dport=53) / b"q"
    err = bytes(IP(src=RIPS[0], dst=CLIENT) / ICMP(type=3, code=3) / bytes(quoted))
    action = engine.handle(err, 0.5)
    assert action.verdict == Verdict.REWRITE
    out = IP(bytes(action.packet or b""))
    assert out.src == VIP and out[IPerror].dst == VIP and out[IPerror].src == CLIENT
    chk = out[ICMP].chksum
    del out[ICMP].chksum
    assert IP(bytes(out))[ICMP].chksum == chk


def test_malformed_and_foreign_packets_get_defined_verdicts() -> None:
    engine, _ = farm()
    assert engine.handle(b"", 0.0).verdict == Verdict.DROP
    assert engine.handle(b"\x45\x00\x00", 0.0).verdict == Verdict.DROP
    frag = bytes(IP(src=CLIENT, dst=VIP, flags="MF") / TCP(dport=80, flags="S"))
    assert engine.handle(frag, 0.0).verdict == Verdict.ACCEPT
    other = bytes(IP(src=CLIENT, dst=VIP, proto=47) / b"gre")
    assert engine.handle(other, 0.0).verdict == Verdict.ACCEPT
    elsewhere = tcp("S", dst="192.0.2.99")
    assert engine.handle(elsewhere, 0.0).verdict == Verdict.ACCEPT
    assert sum(v for k, v in engine.counters.items() if k.startswith("drop_")) == 2
