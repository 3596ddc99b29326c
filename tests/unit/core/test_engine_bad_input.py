"""Regression rows for bad input reaching the engine: ICMP errors it must not send (RFC 1122
3.2.2, RFC 1812 4.3.2.7), real servers it cannot serve, and per-packet logging."""

from __future__ import annotations

import errno
import logging
import random

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror

from pylvs.core.control import DestSpec, IPVSError, ServiceSpec
from pylvs.core.engine import Engine, Verdict
from pylvs.core.service import IPPROTO_UDP, FwdMethod

VIP = "192.0.2.10"
CLIENT = "198.51.100.7"
RIP = "203.0.113.1"


def _ip(text: str) -> int:
    return int.from_bytes(bytes(int(x) for x in text.split(".")), "big")


def _engine(fwd: FwdMethod | None = FwdMethod.ROUTE, mtu: int = 1500) -> Engine:
    engine = Engine(random.Random(1))
    svc = ServiceSpec(protocol=IPPROTO_UDP, addr=VIP, port=53, scheduler="rr")
    engine.add_service(svc)
    if fwd is not None:
        engine.add_dest(svc, DestSpec(addr=RIP, port=53, fwd=int(fwd)))
        engine.set_path(4, _ip(RIP), _ip("203.0.113.254"), mtu)
    return engine


@pytest.mark.parametrize("source", ["255.255.255.255", "224.0.0.1", "0.0.0.0", "240.0.0.1"])
def test_no_port_unreachable_to_a_broadcast_multicast_or_zero_source(source: str) -> None:
    """Before, the director sent port unreachable to these sources."""
    engine = _engine(fwd=None)  # no real server: ip_vs_leave would answer
    action = engine.handle(bytes(IP(src=source, dst=VIP) / UDP(sport=1, dport=53) / b"x"), 0.0)
    assert action.verdict == Verdict.DROP
    assert engine.counters["icmp_error_suppressed"] == 1


def test_an_ordinary_client_still_gets_port_unreachable() -> None:
    engine = _engine(fwd=None)
    action = engine.handle(bytes(IP(src=CLIENT, dst=VIP) / UDP(sport=1, dport=53) / b"x"), 0.0)
    assert action.verdict == Verdict.LOCAL
    assert IP(bytes(action.packet or b""))[ICMP].type == 3


def _client_error(ttl: int = 64, size: int = 0) -> bytes:
    quoted = IP(src=VIP, dst=CLIENT) / UDP(sport=53, dport=5353) / (b"r" * size)
    outer = IP(src=CLIENT, dst=VIP, ttl=ttl, flags="DF") / ICMP(type=3, code=3)
    return bytes(outer / bytes(quoted))


def test_no_icmp_error_about_a_relayed_icmp_error() -> None:
    """Before, an ICMP error relayed to a DR real server with a small MTU drew a frag-needed
    quoting it, and with TTL 1 a time-exceeded."""
    engine = _engine(FwdMethod.ROUTE, mtu=576)
    engine.handle(bytes(IP(src=CLIENT, dst=VIP) / UDP(sport=5353, dport=53) / b"q"), 0.0)
    big = engine.handle(_client_error(size=1000), 0.1)
    assert big.verdict == Verdict.DROP
    expired = engine.handle(_client_error(ttl=1), 0.2)
    assert expired.verdict == Verdict.DROP
    assert engine.counters["icmp_error_suppressed"] == 2
    # The same sizes and TTL on a datagram of the connection do get their ICMP error.
    data = IP(src=CLIENT, dst=VIP, flags="DF") / UDP(sport=5353, dport=53) / (b"q" * 1000)
    action = engine.handle(bytes(data), 0.3)
    assert action.verdict == Verdict.LOCAL
    reply = IP(bytes(action.packet or b""))
    assert (reply[ICMP].type, reply[ICMP].code) == (3, 4) and reply[UDPerror].sport == 5353
    assert reply[IPerror].src == CLIENT


def test_a_real_server_of_another_family_needs_tunnel_mode() -> None:
    """Before, an IPv6 tunnel real server on an IPv4 service was accepted, then every packet
    failed in the IPIP encapsulation (struct.error), logged with a traceback. IPVS allows the
    mixed family in tunnel mode only (ip_vs_genl_set_cmd: EINVAL otherwise); such a tunnel now
    encapsulates in IPv6 (test_engine_v6.py has the packet checks)."""
    engine = _engine(fwd=None)
    svc = ServiceSpec(protocol=IPPROTO_UDP, addr=VIP, port=53)
    with pytest.raises(IPVSError) as exc:
        engine.add_dest(svc, DestSpec(af=6, addr="2001:db8::7", port=53, fwd=int(FwdMethod.MASQ)))
    assert exc.value.errno == errno.EINVAL
    assert engine.services()[0].dests == []
    engine.add_dest(svc, DestSpec(af=6, addr="2001:db8::7", port=53, fwd=int(FwdMethod.TUNNEL)))
    engine.set_path(6, 0x20010DB8 << 96 | 7, 0x20010DB8 << 96 | 1, 1500)
    action = engine.handle(bytes(IP(src=CLIENT, dst=VIP) / UDP(sport=1, dport=53) / b"x"), 0.0)
    assert action.verdict == Verdict.TUNNEL
    assert action.packet is not None and action.packet[0] >> 4 == 6  # an IPv6 outer header


def test_port_zero_errors_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    """A non-persistent port-0 service logged one error per packet."""
    engine = Engine(random.Random(1))
    engine.add_service(ServiceSpec(protocol=IPPROTO_UDP, addr=VIP, port=0, scheduler="rr"))
    engine.add_dest(ServiceSpec(protocol=IPPROTO_UDP, addr=VIP, port=0), DestSpec(addr=RIP))
    with caplog.at_level(logging.ERROR, logger="pylvs.engine"):
        for i in range(200):
            engine.handle(bytes(IP(src=CLIENT, dst=VIP) / UDP(sport=1000 + i, dport=99)), i * 0.01)
    lines = [r for r in caplog.records if "port zero" in r.getMessage()]
    assert 1 <= len(lines) <= 10
