"""``pylvs``: the project's helper tool. Subcommands: ``realserver`` (later: lab, top, bench).

Each subcommand is a function ``_cmd_<name>(args) -> int`` registered by
``_add_<name>(subparsers)``; ``main`` only parses and dispatches.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from pylvs import __version__, realserver
from pylvs.cli import aliases
from pylvs.cli.bench import add_bench
from pylvs.cli.ha import add_ha
from pylvs.cli.health import add_health
from pylvs.cli.lab import add_lab
from pylvs.cli.top import add_top
from pylvs.cli.vrrp import add_vrrp
from pylvs.io import netcfg
from pylvs.io.ipipdecap import DEFAULT_TUN_NAME, IpipDecapsulator

__all__ = ["build_parser", "main"]

log = logging.getLogger("pylvs")


def _add_realserver(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "realserver",
        help="prepare this host (network namespace) as an LVS real server",
        description=(
            "Put the VIP on lo with ARP suppressed and rp_filter off (dr, tun), route replies via "
            "the director (nat). In tun mode on a kernel without tunl0, run a userspace IPIP "
            "decapsulator until stopped (SIGTERM/SIGINT). --undo reverts the changes."
        ),
    )
    p.add_argument("--vip", help="virtual IP address (IPv4 or IPv6)")
    p.add_argument("--mode", choices=realserver.MODES, help="forwarding method of the director")
    p.add_argument("--director", metavar="ADDR", help="director address (nat: default gateway)")
    p.add_argument("--tun-name", default=DEFAULT_TUN_NAME, help="TUN device of the decapsulator")
    p.add_argument("--undo", action="store_true", help="revert a previous setup")
    p.set_defaults(func=_cmd_realserver)


def _cmd_realserver(args: argparse.Namespace) -> int:
    if args.undo:
        state = realserver.undo()
        if state is None:
            print("pylvs realserver: nothing to undo", file=sys.stderr)
        return 0
    if not args.vip or not args.mode:
        print("pylvs realserver: --vip and --mode are required", file=sys.stderr)
        return 2
    try:
        state = realserver.setup(args.vip, args.mode, args.director)
    except (realserver.RealServerError, netcfg.NetcfgError) as exc:
        print(f"pylvs realserver: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"pylvs realserver: {exc} (must be run as root)", file=sys.stderr)
        return 1
    if not realserver.needs_decapsulator(state):
        print(f"pylvs realserver: {realserver.describe(state)}; --undo reverts it")
        return 0
    decap = IpipDecapsulator(args.tun_name)
    try:
        decap.open()
    except OSError as exc:
        realserver.undo()
        print(f"pylvs realserver: cannot start the IPIP decapsulator: {exc}", file=sys.stderr)
        return 1

    def _stop(signum: int, frame: FrameType | None) -> None:
        decap.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # Readiness line: tests and scripts wait for it before sending traffic.
    print(
        f"pylvs realserver: {realserver.describe(state)}; decapsulating IPIP for {state.vip} on "
        f"{args.tun_name} until stopped",
        flush=True,
    )
    try:
        decap.run()
    finally:
        decap.close()
    return 0


_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_realserver,
    aliases.add_parser,
    add_lab,
    add_top,
    add_health,
    add_ha,
    add_vrrp,
    add_bench,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pylvs", description="pylvs helper tool")
    parser.add_argument("--version", action="version", version=f"pylvs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
