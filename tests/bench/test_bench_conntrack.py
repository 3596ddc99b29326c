"""Connection tracking costs: one lookup + state update, a whole packet of a known connection,
and expiring 100k connections.

Disabled by default (``--benchmark-disable`` in addopts: each runs once as a plain test). Measure:

    .venv/bin/python -m pytest tests/bench/test_bench_conntrack.py --benchmark-enable
"""

from __future__ import annotations

from typing import Any

import pytest

from pylvs.core import tcpstate
from pylvs.core.conntrack import Conn, ConnTable, flow_key
from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.engine import Engine, Verdict
from pylvs.core.service import IPPROTO_TCP, Dest, FwdMethod
from pylvs.testing.memory import bytes_per_conn, syn_packets

pytestmark = pytest.mark.bench

VADDR = 0xC000020A
_ACK_FLAGS_OFFSET = 33  # byte of the TCP flags in a 20-byte IPv4 header + TCP header


def engine_with_conns(fwd: FwdMethod, count: int) -> tuple[Engine, list[bytes]]:
    engine = Engine()
    vs = ServiceSpec(protocol=IPPROTO_TCP, addr="192.0.2.10", port=80, scheduler="rr")
    engine.add_service(vs)
    for i in range(1, 4):
        engine.add_dest(vs, DestSpec(addr=f"203.0.113.{i}", port=80, fwd=int(fwd)))
    syns = syn_packets(count, VADDR, 80)
    for pkt in syns:
        engine.handle(pkt, 0.0)
    acks = []
    for pkt in syns:
        ack = bytearray(pkt)
        ack[_ACK_FLAGS_OFFSET] = 0x10
        acks.append(bytes(ack))
    return engine, acks


def test_bench_lookup_and_state_update(benchmark: Any) -> None:
    """Find the connection of a client packet among 10k and step its TCP state and timer."""
    engine, _ = engine_with_conns(FwdMethod.ROUTE, 10_000)
    table = engine.table
    key = flow_key(4, IPPROTO_TCP, 0x0A000000, 1024 + 77, VADDR, 80)

    def step() -> Conn | None:
        cp = table.conn_in.get(key)
        if cp is not None:
            engine._set_tcp_state(cp, tcpstate.DIR_INPUT, 0x10)
            table.refresh(cp, 1.0)
        return cp

    cp = benchmark(step)
    assert cp is not None and cp.state == tcpstate.TCP_ESTABLISHED


@pytest.mark.parametrize(
    "fwd", [FwdMethod.ROUTE, FwdMethod.MASQ, FwdMethod.TUNNEL], ids=lambda f: f.label
)
def test_bench_packet_of_known_connection(benchmark: Any, fwd: FwdMethod) -> None:
    """engine.handle for an ACK of an established connection: parse, lookup, state, rewrite."""
    engine, acks = engine_with_conns(fwd, 10_000)
    packet = acks[4242]
    action = benchmark(engine.handle, packet, 1.0)
    expected = {
        FwdMethod.ROUTE: Verdict.ROUTE,
        FwdMethod.MASQ: Verdict.REWRITE,
        FwdMethod.TUNNEL: Verdict.TUNNEL,
    }[fwd]
    assert action.verdict == expected


def test_bench_new_connection(benchmark: Any) -> None:
    """engine.handle for a SYN that creates a connection (scheduling included, rr)."""
    engine, _ = engine_with_conns(FwdMethod.ROUTE, 0)
    syns = iter(syn_packets(2_000_000, VADDR, 80))

    def one() -> Verdict:
        return engine.handle(next(syns), 0.0).verdict

    assert benchmark(one) == Verdict.ROUTE


def test_bench_expire_100k(benchmark: Any) -> None:
    """Expire 100k connections that all came due, out of a table of 200k."""
    dest = Dest(af=4, addr=0xCB007101, port=80)

    def setup() -> tuple[tuple[ConnTable, float], dict[str, Any]]:
        table = ConnTable(lambda cp: None)
        for i in range(200_000):
            key = flow_key(4, IPPROTO_TCP, 0x0A000000 + i, 1024, VADDR, 80)
            timeout = 60 if i % 2 else 900
            table.add(Conn(key, dest, 0, tcpstate.TCP_ESTABLISHED, timeout), float(i % 50))
        return (table, 120.0), {}

    def expire(table: ConnTable, now: float) -> int:
        return table.expire(now)

    expired = benchmark.pedantic(expire, setup=setup, rounds=5, iterations=1)
    assert expired == 100_000


def test_memory_per_connection_is_within_goal() -> None:
    """Bytes per NAT connection at 20k connections (the figure at 1M is in docs/performance.md,
    from ``python -m pylvs.testing.memory``); the goal is at most 350."""
    assert bytes_per_conn(20_000, FwdMethod.MASQ) <= 350
