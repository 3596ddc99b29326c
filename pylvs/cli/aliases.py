"""``pylvs ipvsadm-alias``: install ``ipvsadm``, ``ipvsadm-save`` and ``ipvsadm-restore`` commands
that run pylvsadm, so scripts that call ipvsadm by name work unchanged.

They go into the virtual environment's ``bin`` directory by default (the one holding the running
Python), never into a system directory unless ``--bindir`` names one. ``ipvsadm-save`` is
``ipvsadm -S``; ``ipvsadm-restore`` drops comment lines, clears the table and restores what it
reads (the helper scripts shipped with ipvsadm).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["ALIASES", "add_parser", "install", "remove"]

_MARK = "# installed by pylvs ipvsadm-alias"

ALIASES: dict[str, str] = {
    "ipvsadm": 'exec "{pylvsadm}" "$@"',
    "ipvsadm-save": 'exec "{pylvsadm}" -S "$@"',
    "ipvsadm-restore": 'grep -v "^#" | {{ "{pylvsadm}" -C </dev/null && "{pylvsadm}" -R "$@"; }}',
}


def _default_bindir() -> Path:
    return Path(sys.executable).parent


def install(bindir: Path, pylvsadm: Path) -> list[Path]:
    """Write the alias scripts into ``bindir``; refuse to replace files pylvs did not write."""
    written = []
    for name, body in ALIASES.items():
        path = bindir / name
        if path.exists() and _MARK not in path.read_text(errors="replace"):
            raise FileExistsError(f"{path} exists and was not installed by pylvs")
        path.write_text(f"#!/bin/sh\n{_MARK}\n{body.format(pylvsadm=pylvsadm)}\n")
        path.chmod(0o755)
        written.append(path)
    return written


def remove(bindir: Path) -> list[Path]:
    """Delete the alias scripts pylvs installed in ``bindir``."""
    removed = []
    for name in ALIASES:
        path = bindir / name
        if path.exists() and _MARK in path.read_text(errors="replace"):
            path.unlink()
            removed.append(path)
    return removed


def _cmd(args: argparse.Namespace) -> int:
    bindir = Path(args.bindir) if args.bindir else _default_bindir()
    pylvsadm = bindir / "pylvsadm"
    if not args.undo and not os.access(pylvsadm, os.X_OK):
        pylvsadm = _default_bindir() / "pylvsadm"
    try:
        if args.undo:
            paths = remove(bindir)
            verb = "removed"
        else:
            paths = install(bindir, pylvsadm)
            verb = "installed"
    except OSError as exc:
        print(f"pylvs ipvsadm-alias: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"{verb} {path}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ipvsadm-alias",
        help="install ipvsadm, ipvsadm-save and ipvsadm-restore commands that run pylvsadm",
        description=__doc__,
    )
    p.add_argument("--bindir", help="directory for the commands (default: the venv's bin)")
    p.add_argument("--undo", action="store_true", help="remove the commands again")
    p.set_defaults(func=_cmd)
