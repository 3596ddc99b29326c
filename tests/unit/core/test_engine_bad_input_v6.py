"""Malformed and hostile IPv6 input reaching the engine: each gets a defined verdict and a
counter, never an exception (design guide habit 5: any bytes parse or are refused)."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.engine import Engine, Verdict
from pylvs.core.service import AF_INET6, IPPROTO_TCP, IPPROTO_UDP, FwdMethod

VIP = "2001:db8::10"
CLIENT = "2001:db8:1::7"
VERDICTS = set(Verdict)


def _engine() -> Engine:
    """IPv6 services of every forwarding method, persistent and not, a port-0 service, a
    mixed-family tunnel and a fwmark service: every branch of the IPv6 path is reachable."""
    engine = Engine(random.Random(3), kernel_forwards_nat=False)
    for port, proto, persistent in ((80, IPPROTO_TCP, False), (53, IPPROTO_UDP, True)):
        svc = ServiceSpec(
            af=AF_INET6,
            protocol=proto,
            addr=VIP,
            port=port,
            scheduler="rr",
            persistent=persistent,
            netmask=64,
        )
        engine.add_service(svc)
        for fwd in (FwdMethod.MASQ, FwdMethod.TUNNEL, FwdMethod.ROUTE):
            rip = f"2001:db8:2::{int(fwd) + 1}"
            engine.add_dest(svc, DestSpec(af=AF_INET6, addr=rip, port=port, fwd=int(fwd)))
            engine.set_path(AF_INET6, int(_ip6(rip)), int(_ip6("2001:db8:2::fe")), 1400)
        engine.add_dest(svc, DestSpec(addr="203.0.113.9", port=port, fwd=int(FwdMethod.TUNNEL)))
    zero = ServiceSpec(af=AF_INET6, protocol=IPPROTO_TCP, addr=VIP, port=0, persistent=True)
    engine.add_service(zero)
    engine.add_dest(zero, DestSpec(af=AF_INET6, addr="2001:db8:2::9", fwd=int(FwdMethod.ROUTE)))
    return engine


def _ip6(text: str) -> int:
    import ipaddress

    return int(ipaddress.IPv6Address(text))


def _seeds() -> list[bytes]:
    syn = TCP(sport=40000, dport=80, flags="S")
    reply = IPv6(src=VIP, dst=CLIENT) / TCP(sport=80, dport=40000, flags="SA")
    return [
        bytes(IPv6(src=CLIENT, dst=VIP) / syn / b"data"),
        bytes(IPv6(src=CLIENT, dst=VIP) / TCP(sport=40000, dport=80, flags="A")),
        bytes(IPv6(src="2001:db8:2::1", dst=CLIENT) / TCP(sport=80, dport=40000, flags="SA")),
        bytes(IPv6(src=CLIENT, dst=VIP) / UDP(sport=5353, dport=53) / b"query"),
        bytes(IPv6(src=CLIENT, dst=VIP) / UDP(sport=5353, dport=53) / (b"x" * 1400)),
        bytes(IPv6(src=CLIENT, dst=VIP) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / syn),
        bytes(IPv6(src=CLIENT, dst=VIP) / IPv6ExtHdrFragment(m=1) / UDP(dport=53)),
        bytes(IPv6(src=CLIENT, dst=VIP, hlim=1) / syn),
        bytes(IPv6(src=CLIENT, dst=VIP) / TCP(sport=1, dport=22, flags="S")),
        bytes(IPv6(src=CLIENT, dst=VIP) / ICMPv6PacketTooBig(mtu=1280) / bytes(reply)),
        bytes(IPv6(src=CLIENT, dst=VIP) / ICMPv6DestUnreach() / bytes(reply)[:44]),
    ]


@pytest.mark.parametrize(
    ("data", "verdict", "counter"),
    [
        (bytes(IPv6(src=CLIENT, dst=VIP))[:30], Verdict.DROP, "drop_truncated"),
        (bytes(IPv6(src=CLIENT, dst=VIP, plen=100) / UDP(dport=53)), Verdict.DROP,
         "drop_bad-total-length"),
        # A hop-by-hop header whose length runs past the packet.
        (bytes(IPv6(src=CLIENT, dst=VIP, nh=0, plen=8) / bytes([17, 4, 1, 4, 0, 0, 0, 0])),
         Verdict.DROP, "drop_bad-ext-header"),
        # AH (51) claiming 64 bytes in a 16-byte payload.
        (bytes(IPv6(src=CLIENT, dst=VIP, nh=51, plen=16) / (bytes([17, 14]) + b"\0" * 14)),
         Verdict.DROP, "drop_bad-ext-header"),
        (bytes(IPv6(src=CLIENT, dst=VIP, nh=6) / (b"\0" * 12)), Verdict.DROP,
         "drop_truncated-l4"),
        (bytes(IPv6(src=CLIENT, dst=VIP, nh=6) / bytes(TCP(dport=80, dataofs=15))),
         Verdict.DROP, "drop_bad-tcp-offset"),
        # A quote too short for its ports, and a quote of the other IP version.
        (bytes(IPv6(src=CLIENT, dst=VIP) / ICMPv6DestUnreach() / (b"\x60" + b"\0" * 20)),
         Verdict.ACCEPT, "pass_icmp_unparsable"),
        (bytes(IPv6(src=CLIENT, dst=VIP) / ICMPv6DestUnreach() / bytes(IP() / UDP())),
         Verdict.ACCEPT, "pass_icmp_unparsable"),
        (bytes(IPv6(src=CLIENT, dst=VIP, nh=50) / (b"\0" * 16)), Verdict.ACCEPT,
         "pass_protocol"),
        # Jumbogram marker (payload length 0, RFC 2675) without the option: nothing to parse.
        (bytes(IPv6(src=CLIENT, dst=VIP, nh=6, plen=0)) + bytes(TCP(dport=80)), Verdict.DROP,
         "drop_truncated-l4"),
    ],
    ids=[
        "truncated header",
        "payload length past the end",
        "hop-by-hop runs past",
        "AH runs past",
        "TCP header truncated",
        "TCP data offset past the end",
        "ICMPv6 quote too short",
        "ICMPv6 quoting IPv4",
        "ESP",
        "jumbogram without option",
    ],
)  # fmt: skip
def test_malformed_ipv6_gets_a_defined_verdict(data: bytes, verdict: Verdict, counter: str) -> None:
    engine = _engine()
    action = engine.handle(data, 0.0)
    assert action.verdict == verdict
    assert engine.counters[counter] == 1
    assert engine.conns() == []


def test_no_packet_too_big_to_a_multicast_source() -> None:
    """RFC 4443 2.4(e): a packet from a multicast source that does not fit the path draws no
    Packet Too Big; it is dropped, as IPVS drops it after icmpv6_send declines."""
    engine = _engine()
    big = bytes(IPv6(src="ff02::1", dst=VIP) / UDP(sport=5353, dport=53) / (b"x" * 1400))
    # The rr scheduler gives the first UDP client the NAT dest; the second the tunnel one.
    engine.handle(bytes(IPv6(src=CLIENT, dst=VIP) / UDP(sport=5353, dport=53)), 0.0)
    action = engine.handle(big, 0.1)
    assert action.verdict == Verdict.DROP
    assert engine.counters["icmp_error_suppressed"] == 1


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(min_size=0, max_size=120))
def test_any_bytes_with_version_6_get_a_verdict(tail: bytes) -> None:
    engine = _ENGINE
    action = engine.handle(b"\x60" + tail, 0.0)
    assert action.verdict in VERDICTS


_ENGINE = _engine()


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(_seeds()), st.lists(st.tuples(st.integers(0, 1500), st.integers(0, 255))))
def test_mutated_ipv6_packets_get_a_verdict(seed: bytes, changes: list[tuple[int, int]]) -> None:
    data = bytearray(seed)
    for pos, value in changes:
        if data:
            data[pos % len(data)] = value
    action = _ENGINE.handle(bytes(data), 0.0)
    assert action.verdict in VERDICTS


def test_many_mutated_packets_keep_the_counters_sound() -> None:
    rng = random.Random(6_600_000)
    engine = _engine()
    seeds = _seeds()
    for n in range(20000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(0, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.1:
            data = data[: rng.randrange(len(data) + 1)]
        action = engine.handle(bytes(data), n * 0.001)
        assert action.verdict in VERDICTS
        if n % 5000 == 0:
            engine.tick(n * 0.001)
    engine.tick(10_000.0)
    assert engine.conns() == []
    for svc in engine.services_list:
        for dest in svc.dests:
            assert (dest.activeconns, dest.inactconns, dest.persistconns) == (0, 0, 0)
