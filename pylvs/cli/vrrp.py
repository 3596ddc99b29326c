"""``pylvs vrrp status``: the VRRP instances of a pylvsd started with a keepalived.conf
(what keepalived's ``-d`` data dump and its SNMP ``vrrpInstanceTable`` tell: each instance's
state, priorities, current master, virtual addresses and trackers)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from pylvs.cli.client import add_pylvsd_options, reach_pylvsd, write_status
from pylvs.core.control import IPVSError

__all__ = ["add_vrrp", "format_status"]


def format_status(st: dict[str, Any]) -> str:
    lines = []
    for name, inst in st.get("instances", {}).items():
        lines.append(
            f"{name}: {inst['state']}  vrid {inst['vrid']} on {inst['interface']}"
            f"  priority {inst['priority']} (effective {inst['effective_priority']})"
            f"  master {inst['master'] or '-'}"
        )
        lines.append(
            f"    v{inst['version']} advert {inst['advert_int']} s, for {inst['since']:.1f} s;"
            f" VIPs {' '.join(inst['vips'])}{' (set here)' if inst['vips_set'] else ''}"
        )
        if inst["trackers"]:
            lines.append(
                "    tracking: "
                + ", ".join(
                    f"{t} {'up' if up else 'down' if up is False else 'pending'}"
                    for t, up in inst["trackers"].items()
                )
            )
    for name, g in st.get("groups", {}).items():
        lines.append(f"sync group {name}: {g['state']} ({', '.join(g['members'])})")
    sync = st.get("sync_daemon")
    if sync:
        lines.append(
            f"lvs_sync_daemon {sync['interface']} follows {sync['instance']}: {sync['role']}"
        )
    return "\n".join(lines) + "\n"


def add_vrrp(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "vrrp",
        help="the VRRP instances of pylvsd --config keepalived.conf",
        description="VRRP instance states of a pylvsd running a keepalived.conf.",
    )
    add_pylvsd_options(p)
    cmds = p.add_subparsers(dest="vrrp_command", required=True, metavar="COMMAND")
    status = cmds.add_parser("status", help="each instance's state, priority and master")
    status.add_argument("--json", action="store_true", help="print pylvsd's answer as JSON")
    p.set_defaults(func=_cmd_vrrp)


def _cmd_vrrp(args: argparse.Namespace, out: TextIO | None = None) -> int:
    ctl = reach_pylvsd("vrrp", args.netns, args.socket)
    if ctl is None:
        return 1
    try:
        with ctl:
            st = ctl.request("vrrp-status")
    except IPVSError as exc:
        print(f"pylvs vrrp: {exc}", file=sys.stderr)
        return 1
    write_status(st, args.json, format_status, out or sys.stdout)
    return 0
