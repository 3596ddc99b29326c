"""Per-packet cost of the packet layer: parse + rewrite, over rows of the packet table.

Disabled by default (``--benchmark-disable`` in addopts: each runs once as a plain test). Measure:

    .venv/bin/python -m pytest tests/bench/test_bench_packet.py --benchmark-enable

Each benchmark parses a frame and applies one rewrite, as the data path does per packet. The
in-place rewrites reuse one buffer: rewriting an already rewritten packet costs the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pylvs.core.checksum import csum
from pylvs.core.forward import dr_rewrite, nat_icmp_in, nat_in, nat_out, tun_encap
from pylvs.core.packet import parse_frame, parse_icmp_inner
from pylvs.testing.packets import apply, mac, vectors

pytestmark = pytest.mark.bench

ROWS = {v.name: v for v in vectors()}


def _op(name: str) -> tuple[bytearray, tuple[Any, ...]]:
    v = ROWS[name]
    # The benchmarked call must do what the table says it does.
    assert apply(v.frame, v.op)[0] == v.expect
    return bytearray(v.frame), v.op


def _addr(text: str) -> int:
    import ipaddress

    return int(ipaddress.ip_address(text))


def _harness() -> Callable[[], None]:
    def run() -> None:
        pass

    return run


def _parse(name: str) -> Callable[[], None]:
    buf, _ = _op(name)

    def run() -> None:
        parse_frame(buf)

    return run


def _dr(name: str) -> Callable[[], None]:
    buf, op = _op(name)
    dst, src = mac(op[1]), mac(op[2])

    def run() -> None:
        parse_frame(buf)
        dr_rewrite(buf, dst, src)

    return run


def _nat_in(name: str) -> Callable[[], None]:
    buf, op = _op(name)
    daddr, dport = _addr(op[1]), op[2]

    def run() -> None:
        nat_in(buf, parse_frame(buf), daddr, dport)

    return run


def _nat_out(name: str) -> Callable[[], None]:
    buf, op = _op(name)
    saddr, sport = _addr(op[1]), op[2]

    def run() -> None:
        nat_out(buf, parse_frame(buf), saddr, sport)

    return run


def _nat_icmp_in(name: str) -> Callable[[], None]:
    buf, op = _op(name)
    daddr, dport = _addr(op[1]), op[2]

    def run() -> None:
        p = parse_frame(buf)
        nat_icmp_in(buf, p, parse_icmp_inner(buf, p), daddr, dport)

    return run


def _tun(name: str) -> Callable[[], None]:
    buf, op = _op(name)
    saddr, daddr, ident = _addr(op[1]), _addr(op[2]), op[3]

    def run() -> None:
        tun_encap(buf, parse_frame(buf), saddr, daddr, ident)

    return run


def _csum(size: int) -> Callable[[], None]:
    data = bytes(range(256)) * (size // 256 + 1)
    view = memoryview(data)[:size]

    def run() -> None:
        csum(view)

    return run


CASES: dict[str, Callable[[], Callable[[], None]]] = {
    "harness": _harness,
    "parse ipv4 tcp": lambda: _parse("nat in: TCP SYN"),
    "parse ipv6 tcp": lambda: _parse("nat in: IPv6 TCP SYN"),
    "dr ipv4 tcp": lambda: _dr("dr: IPv4 TCP, only MACs change"),
    "dr ipv6 udp": lambda: _dr("dr: IPv6 UDP"),
    "nat_in ipv4 tcp": lambda: _nat_in("nat in: TCP SYN"),
    "nat_in ipv4 udp": lambda: _nat_in("nat in: UDP"),
    "nat_in ipv6 tcp": lambda: _nat_in("nat in: IPv6 TCP SYN"),
    "nat_out ipv4 tcp": lambda: _nat_out("nat out: TCP SYN-ACK"),
    "nat_out ipv6 tcp": lambda: _nat_out("nat out: IPv6 TCP"),
    "nat_icmp_in ipv4": lambda: _nat_icmp_in("nat icmp in: host unreachable, full TCP quote"),
    "tun ipv4 160B": lambda: _tun("tun: IPv4 TCP with DF, fits"),
    "tun ipv4 1500B": lambda: _tun("tun: IPv4 UDP 1500 bytes without DF (fragmenting is allowed)"),
    "csum 40B": lambda: _csum(40),
    "csum 1500B": lambda: _csum(1500),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bench_packet(benchmark: Any, case: str) -> None:
    benchmark(CASES[case]())
