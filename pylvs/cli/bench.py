"""``pylvs bench``: the throughput benchmark (see :mod:`pylvs.bench.run`)."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_bench"]


def add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from pylvs.bench import run

    p = sub.add_parser(
        "bench",
        help="measure pylvs against kernel forwarding, nftables DNAT and HAProxy (root)",
        description=(
            "Build sender/director/receiver namespaces; search the highest lossless rate of "
            "60-byte UDP frames (evenly paced; doubling, then bisection), offer 3x that rate, "
            "read pylvsd's CPU time per packet; HTTP connections with wrk and bulk TCP with "
            "iperf3 (1 and 4 streams) against HAProxy and kernel forwarding; print the method "
            "and tables, write JSON and a PNG."
        ),
    )
    run.build_parser(p)
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from pylvs.bench import run

    if os.geteuid() != 0:
        print("pylvs bench: must be run as root (it creates network namespaces)", file=sys.stderr)
        return 1
    return run.main(args)
