"""``pylvs ha``: the heartbeat of a pylvsd started with ``--ha DIR``.

* ``pylvs ha status`` shows what heartbeat's ``cl_status`` tells (``hbstatus``, ``nodestatus``,
  ``listnodes``, ``rscstatus``, ``linkstatus``): this node's status, each node's status, each
  link's status per medium, the resources this node holds (``all``, ``local``, ``foreign``,
  ``none``, or ``transition`` while they move) and, per haresources group, who holds it;
* ``pylvs ha standby [all|foreign|local|failback]`` offers this node's resources to the other
  node, as ``hb_standby``;
* ``pylvs ha takeover [all|foreign|local|failback]`` asks the other node for its resources, as
  ``hb_takeover``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from pylvs.cli.client import add_pylvsd_options, reach_pylvsd, write_status
from pylvs.core.control import IPVSError

__all__ = ["add_ha", "format_status", "summary"]

WHAT = ("all", "foreign", "local", "failback")


def summary(st: dict[str, Any]) -> str:
    """One line for ``pylvs top``: this node, what it holds, the other nodes."""
    if not st:
        return ""
    others = ", ".join(
        f"{name} {node['status']}" for name, node in st["nodes"].items() if name != st["node"]
    )
    return f"heartbeat {st['node']} {st['status']}, holds {st['resources']['state']}" + (
        f"; {others}" if others else ""
    )


def format_status(st: dict[str, Any]) -> str:
    lines = [
        f"heartbeat node {st['node']}: {st['status']}"
        f" (generation {st['generation']}, auto_failback {st['auto_failback']})",
        f"resources held here: {st['resources']['state']}",
        "nodes:",
    ]
    for name, node in st["nodes"].items():
        me = " (this node)" if name == st["node"] else ""
        lines.append(f"  {name}{me}: {node['status']}")
        for medium, link in node["links"].items():
            lines.append(f"    link {medium}: {link}")
    groups = st["resources"]["groups"]
    if groups:
        lines.append("resource groups (haresources):")
        for g in groups:
            where = "held here" if g["running"] else "not held here"
            lines.append(f"  {g['key']}  preferred node {g['node']}: {where}")
            lines.append(f"    {' '.join(g['resources'])}")
    pings = st.get("ping_nodes") or {}
    if pings:
        lines.append("ping nodes: " + ", ".join(f"{n} {s}" for n, s in pings.items()))
    media = ", ".join(
        f"{m['kind']} {m['name']} (sent {m['sent']}, received {m['received']})" for m in st["media"]
    )
    lines.append(f"media: {media}")
    counters = st.get("counters", {})
    refused = {k: v for k, v in counters.items() if k in ("bad message", "refused", "duplicate")}
    if refused:
        lines.append("refused: " + ", ".join(f"{k} {v}" for k, v in sorted(refused.items())))
    return "\n".join(lines) + "\n"


def add_ha(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ha",
        help="the heartbeat of pylvsd --ha: status, standby, takeover",
        description="Heartbeat status (as cl_status), hb_standby and hb_takeover for pylvsd.",
    )
    add_pylvsd_options(p)
    cmds = p.add_subparsers(dest="ha_command", required=True, metavar="COMMAND")
    status = cmds.add_parser("status", help="this node, the nodes, links and resources")
    status.add_argument("--json", action="store_true", help="print pylvsd's answer as JSON")
    for name, helptext in (
        ("standby", "give resources to the other node (hb_standby)"),
        ("takeover", "take resources from the other node (hb_takeover)"),
    ):
        c = cmds.add_parser(name, help=helptext)
        c.add_argument("what", nargs="?", default="all", choices=WHAT)
    p.set_defaults(func=_cmd_ha)


def _cmd_ha(args: argparse.Namespace, out: TextIO | None = None) -> int:
    ctl = reach_pylvsd("ha", args.netns, args.socket)
    if ctl is None:
        return 1
    stream = out or sys.stdout
    try:
        with ctl:
            if args.ha_command == "status":
                write_status(ctl.request("ha-status"), args.json, format_status, stream)
            else:
                answer = ctl.request(f"ha-{args.ha_command}", what=args.what)
                print(answer, file=stream)
    except IPVSError as exc:
        print(f"pylvs ha: {exc}", file=sys.stderr)
        return 1
    return 0
