"""MISC_CHECK (check_misc.c): ``misc_path`` run as its words (no shell), in a process group of its
own, killed when ``misc_timeout`` (default: the checker's ``delay_loop``) passes. Exit 0 is up;
with ``misc_dynamic`` 2..255 is up too and sets the real server's weight to status - 2 (the
keeper does that); anything else, a signal or the timeout is down. ``user``/``group`` run it as
that user."""

from __future__ import annotations

import pwd
import shlex
from dataclasses import dataclass

from pylvs.config.kamodel import MiscCheck
from pylvs.health.check import CheckFailed
from pylvs.health.checktypes import system_timeout
from pylvs.health.keepalived.conn import Target

__all__ = ["MiscEnd", "run"]


@dataclass(frozen=True)
class MiscEnd:
    """How the script ended: its exit ``status`` (1 when it did not exit: keepalived counts
    that failed), or the ``signal`` that killed it, or ``timed_out`` (pylvs killed it)."""

    seen: str
    status: int
    signal: int | None = None
    timed_out: bool = False


def _user(c: MiscCheck) -> tuple[int | None, int | str | None]:
    if not c.user:
        return None, None
    try:
        pw = pwd.getpwnam(c.user)
    except KeyError:
        raise CheckFailed(f"unknown user {c.user} for misc_path") from None
    return pw.pw_uid, c.group or pw.pw_gid


def run(c: MiscCheck, target: Target) -> MiscEnd:
    """Run the script once and say how it ended."""
    argv = shlex.split(c.misc_path)
    if not argv:
        raise CheckFailed("empty misc_path")
    timeout = c.misc_timeout if c.misc_timeout is not None else c.delay_loop
    user, group = _user(c)
    status = system_timeout(argv, timeout, user, group)
    if status is None:
        return MiscEnd(f"{argv[0]} timed out", 1, timed_out=True)
    if status < 0:
        return MiscEnd(f"{argv[0]} failed due to signal {-status}", 1, signal=-status)
    return MiscEnd(f"{argv[0]} exited with status {status}", status)
