"""Measure the memory one tracked connection costs, through the real packet path.

Run ``python -m pylvs.testing.memory --conns 1000000`` to print bytes per connection for NAT and
DR services. Each connection is created by a SYN from a distinct client address and port, handled
by :meth:`pylvs.core.engine.Engine.handle` exactly as live traffic is; the figure is what
tracemalloc sees allocated for the table (connection objects, keys, dictionary slots, timer
wheel), divided by the number of connections. PyPy has no tracemalloc: there the figure is the
growth of the memory its GC holds after a full collection (``gc.get_stats()``), which counts the
same live objects, in PyPy's layout.
"""

from __future__ import annotations

import argparse
import gc
import platform
import struct

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.engine import Engine
from pylvs.core.service import IPPROTO_TCP, FwdMethod

__all__ = ["bytes_per_conn", "main", "syn_packets"]

_VIP = "192.0.2.10"
_HDR = struct.Struct("!BBHHHBBHII HHIIBBHHH")


def syn_packets(count: int, vaddr: int, vport: int) -> list[bytes]:
    """``count`` 40-byte TCP SYNs from distinct (client address, port) pairs to vaddr:vport.

    Checksums are left zero: the engine neither needs nor verifies them for this measurement.
    """
    packets = []
    for i in range(count):
        caddr = 0x0A000000 | (i >> 14)  # 10.x.y.z, 16384 ports per address
        cport = 1024 + (i & 0x3FFF)
        packets.append(
            _HDR.pack(
                0x45, 0, 40, 0, 0, 64, IPPROTO_TCP, 0, caddr, vaddr,
                cport, vport, 1, 0, 0x50, 0x02, 65535, 0, 0,
            )
        )  # fmt: skip
    return packets


def bytes_per_conn(count: int, fwd: FwdMethod) -> float:
    """Allocated bytes per connection after ``count`` connections through a ``fwd`` service."""
    engine = Engine()
    vs = ServiceSpec(protocol=IPPROTO_TCP, addr=_VIP, port=80, scheduler="rr")
    engine.add_service(vs)
    for i in range(1, 4):
        engine.add_dest(vs, DestSpec(addr=f"203.0.113.{i}", port=80, fwd=int(fwd)))
    packets = syn_packets(count, 0xC000020A, 80)
    handle = engine.handle
    if platform.python_implementation() == "PyPy":
        before = _gc_memory()
        for pkt in packets:
            handle(pkt, 0.0)
        after = _gc_memory()
    else:
        import tracemalloc  # CPython only

        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for pkt in packets:
            handle(pkt, 0.0)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    if len(engine.table.conn_in) != count:
        raise RuntimeError(f"expected {count} connections, have {len(engine.table.conn_in)}")
    # The Action objects handed back are garbage by now; what remains is the table.
    return (after - before) / count


def _gc_memory() -> int:
    """PyPy: the bytes its GC holds (arenas, large objects, nursery) after a full collection.

    ``gc.get_stats()`` shows its figures as text ("425.5MB"); ``_s`` holds them as numbers.
    """
    gc.collect()
    return int(getattr(gc.get_stats(), "_s").total_gc_memory)  # noqa: B009 (not in typeshed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--conns", type=int, default=1_000_000, help="connections to create")
    args = parser.parse_args(argv)
    print(f"{'method':<8} {'connections':>12} {'bytes/conn':>11}")
    for fwd in (FwdMethod.MASQ, FwdMethod.ROUTE):
        print(f"{fwd.label:<8} {args.conns:>12} {bytes_per_conn(args.conns, fwd):>11.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
