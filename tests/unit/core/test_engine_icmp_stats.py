"""ICMP errors relayed with a connection count in the statistics (ip_vs_in_icmp / ip_vs_out_icmp
call ip_vs_in_stats / ip_vs_out_stats: the real server, its service and the totals), and a real
server with no route (path MTU 0) has its packets dropped and counted.

Each row: method, the direction the error travels, the counters expected to move by one packet
and the error's length.
"""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import ICMP, IP, UDP

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.engine import Engine, Verdict
from pylvs.core.service import IPPROTO_UDP, FwdMethod

VIP = "192.0.2.10"
CLIENT = "198.51.100.7"
RIP = "203.0.113.1"


def _ip(text: str) -> int:
    return int.from_bytes(bytes(int(x) for x in text.split(".")), "big")


def _farm(fwd: FwdMethod) -> tuple[Engine, ServiceSpec]:
    engine = Engine(random.Random(1))
    svc = ServiceSpec(protocol=IPPROTO_UDP, addr=VIP, port=53, scheduler="rr")
    engine.add_service(svc)
    engine.add_dest(svc, DestSpec(addr=RIP, port=53, fwd=int(fwd)))
    engine.set_path(4, _ip(RIP), _ip("203.0.113.254"), 1500)
    return engine, svc


def _request() -> bytes:
    return bytes(IP(src=CLIENT, dst=VIP) / UDP(sport=5353, dport=53) / b"q")


def _client_error() -> bytes:
    """The client's port unreachable quoting a reply VIP -> client (travels inbound)."""
    quoted = IP(src=VIP, dst=CLIENT) / UDP(sport=53, dport=5353) / b"r"
    return bytes(IP(src=CLIENT, dst=VIP) / ICMP(type=3, code=3) / bytes(quoted))


def _server_error() -> bytes:
    """The real server's port unreachable quoting a NAT request client -> RIP (outbound)."""
    quoted = IP(src=CLIENT, dst=RIP) / UDP(sport=5353, dport=53) / b"q"
    return bytes(IP(src=RIP, dst=CLIENT) / ICMP(type=3, code=3) / bytes(quoted))


ROWS = [
    # method, error, inbound?, verdict
    (FwdMethod.MASQ, _client_error, True, Verdict.REWRITE),
    (FwdMethod.ROUTE, _client_error, True, Verdict.ROUTE),
    (FwdMethod.TUNNEL, _client_error, True, Verdict.TUNNEL),
    (FwdMethod.MASQ, _server_error, False, Verdict.REWRITE),
]


@pytest.mark.parametrize(("fwd", "make", "inbound", "verdict"), ROWS)
def test_relayed_icmp_errors_update_dest_service_and_total_stats(
    fwd: FwdMethod, make: object, inbound: bool, verdict: Verdict
) -> None:
    engine, svc = _farm(fwd)
    engine.handle(_request(), 0.0)
    before = engine.get_service(svc)
    total_before = engine.total_stats()[0]
    error = make()  # type: ignore[operator]
    action = engine.handle(error, 0.5)
    assert action.verdict == verdict
    after = engine.get_service(svc)
    total_after = engine.total_stats()[0]
    # (conns, inpkts, outpkts, inbytes, outbytes)
    moved = (0, 1, 0, len(error), 0) if inbound else (0, 0, 1, 0, len(error))

    def delta(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(y - x for x, y in zip(a, b, strict=True))

    assert delta(before.dests[0].stats, after.dests[0].stats) == moved
    assert delta(before.stats, after.stats) == moved
    assert delta(total_before, total_after) == moved


@pytest.mark.parametrize("fwd", [FwdMethod.MASQ, FwdMethod.ROUTE, FwdMethod.TUNNEL])
def test_a_real_server_without_route_has_its_packets_dropped_and_counted(fwd: FwdMethod) -> None:
    engine, _svc = _farm(fwd)
    engine.set_path(4, _ip(RIP), 0, 0)  # what the director records when there is no route
    assert engine.handle(_request(), 0.0).verdict == Verdict.DROP
    assert engine.handle(_request(), 0.1).verdict == Verdict.DROP
    assert engine.counters["drop_no_route"] == 2
    engine.set_path(4, _ip(RIP), _ip("203.0.113.254"), 1500)  # the route appeared
    assert engine.handle(_request(), 0.2).verdict != Verdict.DROP
