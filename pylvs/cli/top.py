"""``pylvs top``: a live view of pylvsd's virtual services and real servers.

It polls the control socket of the pylvsd of this network namespace (or of ``--netns NAME``) and
shows, per service and real server, the weight, active and inactive connections and the rate
estimator's CPS, PPS and BPS (``ipvsadm -Ln --rate`` in one screen, refreshed), plus a log of the
changes between two polls: services and real servers added or removed, weights changed (weight 0:
quiesced), schedulers changed. ``--once`` prints one frame and exits; ``q`` (or Ctrl-C) quits the
live view. ``--netns`` takes a namespace name, or a lab node's name (``director1``).
"""

from __future__ import annotations

import argparse
import contextlib
import select
import sys
import termios
import time
import tty
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pylvs.core.control import IPVSError, ServiceInfo
from pylvs.core.service import FwdMethod
from pylvs.ctl import DEFAULT_SOCKET, ControlClient
from pylvs.io import netcfg

__all__ = ["Snapshot", "add_top", "build_view", "diff", "main", "snapshot"]

_PROTO = {6: "TCP", 17: "UDP", 132: "SCTP"}


@dataclass(frozen=True)
class Snapshot:
    """What the change log compares between two polls: service -> (scheduler, {dest: weight})."""

    services: dict[str, tuple[str, dict[str, int]]]


def _service_name(info: ServiceInfo) -> str:
    if info.fwmark:
        return f"FWM {info.fwmark}"
    addr = f"[{info.addr}]" if ":" in info.addr else info.addr
    return f"{_PROTO.get(info.protocol, info.protocol)} {addr}:{info.port}"


def _dest_name(addr: str, port: int) -> str:
    return f"{f'[{addr}]' if ':' in addr else addr}:{port}"


def snapshot(services: list[ServiceInfo]) -> Snapshot:
    return Snapshot(
        {
            _service_name(s): (s.scheduler, {_dest_name(d.addr, d.port): d.weight for d in s.dests})
            for s in services
        }
    )


def diff(prev: Snapshot | None, cur: Snapshot) -> list[str]:
    """The changes from ``prev`` to ``cur``, one sentence each (nothing on the first poll)."""
    if prev is None:
        return []
    events = []
    for name in sorted(set(prev.services) - set(cur.services)):
        events.append(f"service {name} removed")
    for name, (sched, dests) in sorted(cur.services.items()):
        if name not in prev.services:
            events.append(f"service {name} added ({sched}, {len(dests)} real servers)")
            continue
        old_sched, old_dests = prev.services[name]
        if sched != old_sched:
            events.append(f"{name}: scheduler {old_sched} -> {sched}")
        for dest in sorted(set(old_dests) - set(dests)):
            events.append(f"{name}: real server {dest} removed")
        for dest, weight in sorted(dests.items()):
            if dest not in old_dests:
                events.append(f"{name}: real server {dest} added, weight {weight}")
            elif weight != old_dests[dest]:
                what = " (quiesced: no new connections)" if weight == 0 else ""
                if old_dests[dest] == 0 and weight:
                    what = " (back in service)"
                events.append(f"{name}: {dest} weight {old_dests[dest]} -> {weight}{what}")
    return events


def _rate(value: int, unit: str = "") -> str:
    for scale, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "K")):
        if value >= scale:
            return f"{value / scale:.1f}{suffix}{unit}"
    return f"{value}{unit}"


def _health_of(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """(address, port) -> what the health column shows: state and last check latency."""
    out: dict[tuple[str, int], str] = {}
    for row in rows:
        addr, _, port = str(row["real"]).rpartition(":")
        cell = f"{row['state']} {float(row['latency']) * 1000:.0f}ms"
        out[(addr.strip("[]"), int(port))] = cell
        out.setdefault((addr.strip("[]"), -1), cell)  # a real written without its port
    return out


def build_view(
    services: list[ServiceInfo],
    events: Sequence[str],
    title: str,
    health: Sequence[dict[str, Any]] = (),
) -> Group:
    """One frame: the table of services and real servers (with their health checks' state when
    pylvsd checks them), then the recent changes."""
    checked = _health_of(health)
    table = Table(title=title, title_justify="left", expand=False)
    for column, justify in (
        ("Service / real server", "left"),
        ("Fwd", "left"),
        ("Health", "left"),
        ("Weight", "right"),
        ("ActConn", "right"),
        ("InActConn", "right"),
        ("Conns", "right"),
        ("CPS", "right"),
        ("InPPS", "right"),
        ("OutPPS", "right"),
        ("InBPS", "right"),
        ("OutBPS", "right"),
    ):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for svc in sorted(services, key=_service_name):
        cps, inpps, outpps, inbps, outbps = svc.rates
        active = sum(d.activeconns for d in svc.dests)
        inactive = sum(d.inactconns for d in svc.dests)
        persist = f" persistent {svc.timeout}" if svc.flags & 0x0001 else ""
        table.add_row(
            Text(f"{_service_name(svc)} {svc.scheduler}{persist}", style="bold"),
            "",
            "",
            "",
            str(active),
            str(inactive),
            str(svc.stats[0]),
            str(cps),
            _rate(inpps),
            _rate(outpps),
            _rate(inbps, "B"),
            _rate(outbps, "B"),
        )
        for d in sorted(svc.dests, key=lambda d: (d.addr, d.port)):
            cps, inpps, outpps, inbps, outbps = d.rates
            style = "dim" if d.weight == 0 else ""
            cell = checked.get((d.addr, d.port)) or checked.get((d.addr, -1), "")
            table.add_row(
                Text(f"  -> {_dest_name(d.addr, d.port)}", style=style),
                FwdMethod(d.fwd).label,
                Text(cell, style="green" if cell.startswith("up") else "red"),
                Text(str(d.weight), style="yellow" if d.weight == 0 else ""),
                str(d.activeconns),
                str(d.inactconns),
                str(d.stats[0]),
                str(cps),
                _rate(inpps),
                _rate(outpps),
                _rate(inbps, "B"),
                _rate(outbps, "B"),
            )
    changes = Text("\n".join(events) if events else "(no changes seen yet)")
    return Group(table, Text("recent changes:", style="bold"), changes)


def add_top(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "top",
        help="live view of pylvsd's services, real servers, connections and rates",
        description=(
            "Poll pylvsd's control socket and show services and real servers with weights, "
            "active/inactive connections, CPS, PPS and BPS, and the changes as they happen."
        ),
    )
    p.add_argument(
        "--netns",
        metavar="NAME",
        help="the network namespace of the pylvsd to watch (or a lab node: director1)",
    )
    p.add_argument("--socket", default=DEFAULT_SOCKET, help="control socket name (default pylvsd)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.set_defaults(func=_cmd_top)


def resolve_netns(netns: str | None) -> str | None:
    """A namespace name, or the name of a lab node (``director1``) as ``pylvs lab exec`` takes
    it: the lab's prefix (``$PYLVS_LAB_PREFIX``, default ``lvs-``) is added when that is what
    exists."""
    if netns is None or netcfg.netns_exists(netns):
        return netns
    from pylvs.lab.state import default_prefix

    in_lab = default_prefix() + netns
    return in_lab if netcfg.netns_exists(in_lab) else netns


def connect(netns: str | None, name: str) -> ControlClient:
    """A client of the pylvsd of namespace ``netns`` (None: this one)."""
    # The abstract socket belongs to the namespace the socket is created in; it stays there.
    with netcfg.in_netns(netns):
        return ControlClient(name, timeout=5.0)


def _wait_for_quit(seconds: float) -> bool:
    """Sleep ``seconds``; True if ``q`` was typed meanwhile (stdin a terminal in cbreak mode)."""
    if not sys.stdin.isatty():
        time.sleep(seconds)
        return False
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _w, _x = select.select([sys.stdin], [], [], left)
        if ready and sys.stdin.read(1) in ("q", "Q"):
            return True
    return False


@contextlib.contextmanager
def _keys() -> Iterator[None]:
    """Single keys reach the program (cbreak mode) while the live view runs."""
    if not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _title(netns: str | None, status: dict[str, Any], live: bool = False) -> str:
    from pylvs.cli.ha import summary

    where = f"netns {netns}" if netns else "this namespace"
    ha = summary(status.get("components", {}).get("heartbeat", {}))
    return (
        f"pylvsd pid {status.get('pid')} ({where}), backend {status.get('backend')}, "
        f"{time.strftime('%H:%M:%S')}" + (f"\n{ha}" if ha else "") + ("  (q quits)" if live else "")
    )


def _health(ctl: ControlClient) -> list[dict[str, Any]]:
    """The health rows of a pylvsd that has them (an older one answers with an error)."""
    try:
        rows: list[dict[str, Any]] = ctl.request("health")
    except IPVSError:
        return []
    return rows


def _cmd_top(args: argparse.Namespace, out: TextIO | None = None) -> int:
    args.netns = resolve_netns(args.netns)
    try:
        ctl = connect(args.netns, args.socket)
    except (OSError, netcfg.NetcfgError) as exc:
        where = f" in netns {args.netns}" if args.netns else ""
        print(f"pylvs top: cannot reach pylvsd @{args.socket}{where}: {exc}", file=sys.stderr)
        return 1
    stream = out or sys.stdout
    # Not a terminal (a pipe, a test): wide enough for every column instead of rich's 80.
    console = Console(file=stream, width=None if stream.isatty() else 140)
    events: deque[str] = deque(maxlen=12)
    with ctl:
        services = ctl.services()
        prev = snapshot(services)
        if args.once:
            console.print(build_view(services, [], _title(args.netns, ctl.status()), _health(ctl)))
            return 0
        try:
            with _keys(), Live(console=console, auto_refresh=False) as live:
                while True:
                    cur = snapshot(services)
                    stamp = time.strftime("%H:%M:%S")
                    events.extend(f"{stamp} {e}" for e in diff(prev, cur))
                    prev = cur
                    view = build_view(
                        services,
                        list(events),
                        _title(args.netns, ctl.status(), True),
                        _health(ctl),
                    )
                    live.update(view, refresh=True)
                    if _wait_for_quit(args.interval):
                        return 0
                    services = ctl.services()
        except KeyboardInterrupt:
            return 0
        except (OSError, ConnectionError) as exc:
            print(f"pylvs top: lost pylvsd: {exc}", file=sys.stderr)
            return 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pylvs.cli.top``: the same as ``pylvs top``."""
    parser = argparse.ArgumentParser(prog="pylvs")
    add_top(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["top", *(sys.argv[1:] if argv is None else argv)])
    return _cmd_top(args)


if __name__ == "__main__":
    sys.exit(main())
