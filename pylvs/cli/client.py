"""What the ``pylvs`` commands that ask a running pylvsd (``ha``, ``vrrp``) share: reaching its
control socket, with one clear line when it cannot be reached, and printing a status answer."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from pylvs.ctl import ControlClient
from pylvs.io import netcfg

__all__ = ["add_pylvsd_options", "reach_pylvsd", "write_status"]


def add_pylvsd_options(p: argparse.ArgumentParser) -> None:
    """``--netns`` and ``--socket``: which pylvsd :func:`reach_pylvsd` asks."""
    p.add_argument("--netns", metavar="NAME", help="the network namespace of the pylvsd")
    p.add_argument("--socket", default="pylvsd", help="control socket name (default pylvsd)")


def reach_pylvsd(command: str, netns: str | None, socket: str) -> ControlClient | None:
    """A client of the pylvsd of ``--netns`` (a namespace or a lab node) and ``--socket``; None
    after saying why on stderr (``pylvs <command>: cannot reach pylvsd @<socket> ...``)."""
    from pylvs.cli.top import connect, resolve_netns  # top loads rich: only when a command runs

    netns = resolve_netns(netns)
    try:
        return connect(netns, socket)
    except (OSError, netcfg.NetcfgError) as exc:
        where = f" in netns {netns}" if netns else ""
        print(f"pylvs {command}: cannot reach pylvsd @{socket}{where}: {exc}", file=sys.stderr)
        return None


def write_status(
    st: dict[str, Any], as_json: bool, format_status: Callable[[dict[str, Any]], str], out: TextIO
) -> None:
    """pylvsd's status answer: as JSON (``--json``), or as ``format_status`` words it."""
    if as_json:
        json.dump(st, out, indent=2)
        out.write("\n")
    else:
        out.write(format_status(st))
