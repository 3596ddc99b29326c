"""``pylvs health``: the health of every real server pylvsd checks.

One line per distinct real server (ldirectord checks a real server once per cycle however many
virtual services it is in): its state (up, down, maintenance, or unchecked before its first
check), for how long, the check, the last result and its reason, the last check's latency, and
the counts of checks and failures. ``--json`` prints the rows as pylvsd sends them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pylvs.ctl import DEFAULT_SOCKET
from pylvs.io import netcfg

__all__ = ["add_health", "build_table"]

_STYLE = {"up": "green", "down": "red", "maintenance": "yellow", "unchecked": "dim"}


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def build_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="real server health", title_justify="left")
    for column, justify in (
        ("Real server", "left"),
        ("Virtual services", "left"),
        ("Check", "left"),
        ("State", "left"),
        ("For", "right"),
        ("Latency", "right"),
        ("Checks", "right"),
        ("Failures", "right"),
        ("Last result", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in sorted(rows, key=lambda r: (r["real"], r["check"])):
        state = str(row["state"])
        result = "" if row["ok"] is None else ("ok: " if row["ok"] else "failed: ")
        table.add_row(
            str(row["real"]),
            ", ".join(row["virtuals"]),
            str(row["check"]),
            Text(state, style=_STYLE.get(state, "")),
            _duration(float(row["for"])),
            f"{float(row['latency']) * 1000:.1f} ms",
            str(row["checks"]),
            str(row["failures"]),
            result + str(row["reason"]),
        )
    return table


def add_health(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "health",
        help="the health of the real servers pylvsd checks",
        description="List each checked real server's state, last result, reason and latency.",
    )
    p.add_argument("--netns", metavar="NAME", help="the network namespace of the pylvsd")
    p.add_argument("--socket", default=DEFAULT_SOCKET, help="control socket name (default pylvsd)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=_cmd_health)


def _cmd_health(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from pylvs.cli.top import connect, resolve_netns

    netns = resolve_netns(args.netns)
    try:
        ctl = connect(netns, args.socket)
    except (OSError, netcfg.NetcfgError) as exc:
        where = f" in netns {netns}" if netns else ""
        print(f"pylvs health: cannot reach pylvsd @{args.socket}{where}: {exc}", file=sys.stderr)
        return 1
    with ctl:
        rows: list[dict[str, Any]] = ctl.request("health")
    stream = out or sys.stdout
    if args.json:
        json.dump(rows, stream, indent=2)
        stream.write("\n")
        return 0
    if not rows:
        print("pylvsd checks no real servers (no configuration, or checktype=off)", file=stream)
        return 0
    Console(file=stream, width=None if stream.isatty() else 160).print(build_table(rows))
    return 0
