"""Connection tracking costs: one lookup + state update, a whole packet of a known connection,
whole short connections from SYN to expiry, expiring 100k connections, and memory.

Disabled by default (``--benchmark-disable`` in addopts: each runs once as a plain test). Measure
on both runtimes (the data plane runs on PyPy):

    .venv/bin/python -m pytest tests/bench/test_bench_conntrack.py --benchmark-enable
    .venv-pypy/bin/python -m pytest -p no:cacheprovider tests/bench/test_bench_conntrack.py \
        --benchmark-enable
"""

from __future__ import annotations

import platform
import struct
from typing import Any

import pytest

from pylvs.core import tcpstate
from pylvs.core.checksum import checksum
from pylvs.core.conntrack import Conn, ConnTable, flow_key, split_parts
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
    # The lookup the packet path makes: the virtual part, then the client part of the key.
    vkey, ckey = split_parts(flow_key(4, IPPROTO_TCP, 0x0A000000, 1024 + 77, VADDR, 80))

    def step() -> Conn | None:
        cp = table.flows_in[vkey].get(ckey)
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


# -- the same over IPv6 ------------------------------------------------------------------------

VADDR6 = 0x20010DB8 << 96 | 0x10
_IP6 = struct.Struct("!IHBBQQQQ")
_M64 = (1 << 64) - 1


def _syn6(i: int, flags: int = 0x02) -> bytes:
    """An IPv6 TCP segment from client 2001:db8:1::<i> (port 1024 + i % 16384) to VADDR6:80,
    with a valid TCP checksum."""
    caddr, cport = 0x20010DB8_0001_0000 << 64 | (i >> 14) + 1, 1024 + (i & 0x3FFF)
    tcp = bytearray(_TCP.pack(cport, 80, 1, 1, 0x50, flags, 65535, 0, 0))
    pseudo = (
        caddr.to_bytes(16, "big")
        + VADDR6.to_bytes(16, "big")
        + (20).to_bytes(4, "big")
        + b"\0\0\0\6"
    )
    tcp[16:18] = checksum(pseudo + bytes(tcp)).to_bytes(2, "big")
    head = _IP6.pack(6 << 28, 20, 6, 64, caddr >> 64, caddr & _M64, VADDR6 >> 64, VADDR6 & _M64)
    return head + bytes(tcp)


def engine_with_conns_v6(fwd: FwdMethod, count: int) -> tuple[Engine, list[bytes]]:
    engine = Engine()
    vs = ServiceSpec(
        af=6, protocol=IPPROTO_TCP, addr="2001:db8::10", port=80, scheduler="rr", netmask=128
    )
    engine.add_service(vs)
    for i in range(1, 4):
        rip = f"2001:db8:2::{i}"
        engine.add_dest(vs, DestSpec(af=6, addr=rip, port=80, fwd=int(fwd)))
        engine.set_path(6, 0x20010DB8_0002_0000 << 64 | i, 0x20010DB8_0002_0000 << 64 | 0xFE, 1500)
    for i in range(count):
        engine.handle(_syn6(i), 0.0)
    return engine, [_syn6(i, 0x10) for i in range(count)]


@pytest.mark.parametrize(
    "fwd", [FwdMethod.ROUTE, FwdMethod.MASQ, FwdMethod.TUNNEL], ids=lambda f: f.label
)
def test_bench_packet_of_known_connection_v6(benchmark: Any, fwd: FwdMethod) -> None:
    """engine.handle for an IPv6 ACK of an established connection among 10k: the IPv6 rows
    beside test_bench_packet_of_known_connection (parse, 128-bit keys, state, rewrite)."""
    engine, acks = engine_with_conns_v6(fwd, 10_000)
    packet = acks[4242]
    action = benchmark(engine.handle, packet, 1.0)
    expected = {
        FwdMethod.ROUTE: Verdict.ROUTE,
        FwdMethod.MASQ: Verdict.REWRITE,
        FwdMethod.TUNNEL: Verdict.TUNNEL,
    }[fwd]
    assert action.verdict == expected
    assert len(engine.table) == 10_000


def test_bench_new_connection(benchmark: Any) -> None:
    """engine.handle for a SYN that creates a connection (scheduling included, rr)."""
    engine, _ = engine_with_conns(FwdMethod.ROUTE, 0)
    syns = iter(syn_packets(1_000_000, VADDR, 80))

    def one() -> Verdict:
        return engine.handle(next(syns), 0.0).verdict

    # A bounded number of calls, since each needs a new SYN (benchmark() would call it as often
    # as it likes: on PyPy more often than there are SYNs). The table grows to 300k.
    result = benchmark.pedantic(one, rounds=25_000, iterations=10, warmup_rounds=5_000)
    assert result == Verdict.ROUTE


# -- whole short connections -----------------------------------------------------------------

_IP = struct.Struct("!BBHHHBBHII")
_TCP = struct.Struct("!HHIIBBHHH")
_SYN, _SYNACK, _ACK, _PSHACK, _FINACK = 0x02, 0x12, 0x10, 0x18, 0x11
_REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
RIPS = (0xCB007101, 0xCB007102, 0xCB007103)  # 203.0.113.1-3, the dests of engine_with_conns
CONNS_PER_ROUND = 1000


def _tcp(saddr: int, sport: int, daddr: int, dport: int, flags: int, data: bytes = b"") -> bytes:
    """An IPv4 TCP segment with a valid IP header checksum (the AF_PACKET engine checks it)."""
    header = bytearray(_IP.pack(0x45, 0, 40 + len(data), 0, 0x4000, 64, 6, 0, saddr, daddr))
    header[10:12] = checksum(header).to_bytes(2, "big")
    return bytes(header) + _TCP.pack(sport, dport, 1, 1, 0x50, flags, 65535, 0, 0) + data


def short_connection(fwd: FwdMethod, i: int, rip: int) -> list[bytes]:
    """The packets the director sees for connection ``i`` (one HTTP request with Connection:
    close, the client closing first): DR sees the client's side only; NAT sees both, the real
    server's replies coming from ``rip`` (the dest the scheduler will pick)."""
    caddr, cport = 0x0A000000 | (i >> 14), 1024 + (i & 0x3FFF)

    def client(flags: int, data: bytes = b"") -> bytes:
        return _tcp(caddr, cport, VADDR, 80, flags, data)

    def server(flags: int, data: bytes = b"") -> bytes:
        return _tcp(rip, 80, caddr, cport, flags, data)

    if fwd != FwdMethod.MASQ:
        return [
            client(_SYN),
            client(_ACK),
            client(_PSHACK, _REQUEST),
            client(_FINACK),
            client(_ACK),  # of the server's FIN
        ]
    return [
        client(_SYN),
        server(_SYNACK),
        client(_ACK),
        client(_PSHACK, _REQUEST),
        server(_PSHACK, _RESPONSE),
        client(_FINACK),
        server(_FINACK),
        client(_ACK),
    ]


@pytest.mark.parametrize("sched", ["rr", "wlc", "mh"])
@pytest.mark.parametrize("fwd", [FwdMethod.ROUTE, FwdMethod.MASQ], ids=lambda f: f.label)
def test_bench_short_connections_1000(benchmark: Any, fwd: FwdMethod, sched: str) -> None:
    """1000 short connections through engine.handle, from SYN to expiry by tick, with the
    AF_PACKET engine (IP checksum checked, TTL decremented) and packets as memoryviews, as the
    rings hand them over: milliseconds per round = microseconds per connection. Covers
    scheduling, connection creation, both hashes, every TCP state change, the rewrites, the
    expiry and the unbinding."""
    vs = ServiceSpec(protocol=IPPROTO_TCP, addr="192.0.2.10", port=80, scheduler=sched)

    def make_engine() -> Engine:
        engine = Engine(kernel_forwards_nat=False, check_ip_checksum=True)
        engine.add_service(vs)
        for i in range(1, 4):
            engine.add_dest(vs, DestSpec(addr=f"203.0.113.{i}", port=80, fwd=int(fwd)))
        return engine

    # Which dest each connection gets, so that NAT replies come from it: a dry run.
    probe = make_engine()
    rips = []
    for i in range(CONNS_PER_ROUND):
        action = probe.handle(short_connection(fwd, i, 0)[0], 0.0)
        rips.append(action.next_hop)
    assert set(rips) <= set(RIPS)
    conns = [
        [memoryview(pkt) for pkt in short_connection(fwd, i, rips[i])]
        for i in range(CONNS_PER_ROUND)
    ]
    expected = Verdict.ROUTE if fwd == FwdMethod.ROUTE else Verdict.REWRITE

    def setup() -> tuple[tuple[Engine], dict[str, Any]]:
        return (make_engine(),), {}

    def run(engine: Engine) -> Engine:
        handle = engine.handle
        for packets in conns:
            for packet in packets:
                handle(packet, 1.0)
        engine.tick(1000.0)  # every state's timeout is over: all of them expire
        return engine

    # PyPy's JIT needs the warm-up rounds (pytest-benchmark's own warm-up covers benchmark()).
    warmup = 20 if platform.python_implementation() == "PyPy" else 1
    engine = benchmark.pedantic(run, setup=setup, rounds=10, warmup_rounds=warmup)
    assert len(engine.table) == 0
    stats = engine.stats.as_tuple()
    assert stats[0] == CONNS_PER_ROUND
    # Every packet forwarded: the last one of each connection still had its connection.
    assert stats[1] + stats[2] == CONNS_PER_ROUND * len(conns[0])
    last = make_engine()
    for packet in conns[0]:
        action = last.handle(packet, 1.0)
    assert action.verdict == expected


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


@pytest.mark.parametrize("fwd", [FwdMethod.ROUTE, FwdMethod.MASQ], ids=lambda f: f.label)
def test_memory_per_connection_is_within_goal(fwd: FwdMethod) -> None:
    """Bytes per connection at 20k connections (the figure at 1M is in docs/performance.md, from
    ``python -m pylvs.testing.memory``; tracemalloc on CPython, the GC's own figures on PyPy);
    the goal is at most 300 on both."""
    assert bytes_per_conn(20_000, fwd) <= 300
