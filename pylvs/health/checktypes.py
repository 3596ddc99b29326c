"""ldirectord's checktypes other than ``negotiate`` (whose services live in
:mod:`pylvs.health.services`), and :func:`run_check`, which runs any of them and always returns.

==================  ==========================================================================
connect             a TCP connection to the check port (``check_connect``); UDP virtuals ping
ping                ICMP echo, ``checkcount`` tries of ``checktimeout`` each (``check_ping``)
external            ``checkcommand VIP VPORT RIP RPORT``; exit status 0 = up (``check_external``)
external-perl       the same file run by perl (ldirectord evaluates it in its own perl)
misc                keepalived's MISC_CHECK: the command alone; exit 0 up, 1 down, and with
                    ``misc_dynamic`` 2..255 up with weight status-2
==================  ==========================================================================
"""

from __future__ import annotations

import os
import random
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import time

from pylvs.core.checksum import checksum
from pylvs.health.check import CheckFailed, CheckResult, CheckTarget, Deadline, connect_tcp
from pylvs.health.services import negotiate

__all__ = ["check_connect", "check_external", "check_ping", "run_check", "run_command"]

_ICMP_ECHO_REQUEST = 8
_ICMP_ECHO_REPLY = 0


def check_connect(target: CheckTarget, timeout: float) -> str:
    """``check_connect``: a TCP connection that opens within ``checktimeout``."""
    if target.protocol == "udp":
        return check_ping(target, timeout)
    sock = connect_tcp(target, Deadline(timeout))
    sock.close()
    return f"connected to {target.host()}:{target.checkport}"


def check_ping(target: CheckTarget, timeout: float) -> str:
    """``check_ping``: Net::Ping "icmp" with ``checkcount`` tries of ``timeout`` seconds."""
    if target.family() == socket.AF_INET6:
        raise CheckFailed("ping checks of IPv6 real servers are not supported yet")
    ident = random.randrange(1, 0xFFFF)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        for attempt in range(max(1, target.checkcount)):
            payload = struct.pack("!d", time.monotonic()) + b"pylvs-health"
            header = struct.pack("!BBHHH", _ICMP_ECHO_REQUEST, 0, 0, ident, attempt)
            csum = checksum(header + payload)
            packet = struct.pack("!BBHHH", _ICMP_ECHO_REQUEST, 0, csum, ident, attempt) + payload
            sock.sendto(packet, (target.rip, 0))
            end = time.monotonic() + timeout
            while (left := end - time.monotonic()) > 0:
                readable, _, _ = select.select([sock], [], [], left)
                if not readable:
                    break
                data, (source, _) = sock.recvfrom(2048)
                ihl = (data[0] & 0x0F) * 4
                if len(data) < ihl + 8 or source != target.rip:
                    continue
                kind, _, _, rid, seq = struct.unpack_from("!BBHHH", data, ihl)
                if kind == _ICMP_ECHO_REPLY and rid == ident and seq == attempt:
                    return f"echo reply from {target.rip} (try {attempt + 1})"
    raise CheckFailed(f"no echo reply from {target.rip} in {target.checkcount} tries")


def run_command(argv: list[str], timeout: float) -> int:
    """Run a check command in a process group of its own; on timeout the whole group is killed
    (ldirectord's ``system_timeout``) and :class:`CheckFailed` raised."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise CheckFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise CheckFailed(f"{argv[0]} did not finish within {timeout:g}s") from None


def _external_argv(target: CheckTarget) -> list[str]:
    return [target.vip, str(target.vport), target.rip, str(target.rport)]


def check_external(target: CheckTarget, timeout: float) -> str:
    """``check_external``: ``checkcommand VIP VPORT RIP RPORT`` (fwmark for VIP), exit 0 = up."""
    status = run_command([target.checkcommand, *_external_argv(target)], timeout)
    if status != 0:
        raise CheckFailed(f"{target.checkcommand} exited with status {status}")
    return f"{target.checkcommand} exited with status 0"


def check_external_perl(target: CheckTarget, timeout: float) -> str:
    """``check_external_perl``: the checkcommand file is perl, run with the same arguments."""
    perl = shutil.which("perl")
    if perl is None:
        raise CheckFailed("checktype external-perl needs perl, which is not installed")
    status = run_command([perl, target.checkcommand, *_external_argv(target)], timeout)
    if status != 0:
        raise CheckFailed(f"{target.checkcommand} (perl) exited with status {status}")
    return f"{target.checkcommand} (perl) exited with status 0"


def check_misc(target: CheckTarget, timeout: float, dynamic: bool) -> tuple[str, int | None]:
    """keepalived's MISC_CHECK: ``misc_path`` run as written (no arguments added)."""
    argv = shlex.split(target.checkcommand)
    if not argv:
        raise CheckFailed("empty misc_path")
    status = run_command(argv, timeout)
    if status == 0:
        return f"{argv[0]} exited with status 0", None
    if dynamic and status >= 2:
        return f"{argv[0]} exited with status {status}: weight {status - 2}", status - 2
    raise CheckFailed(f"{argv[0]} exited with status {status}")


def run_check(
    kind: str, target: CheckTarget, timeout: float, misc_dynamic: bool = False
) -> CheckResult:
    """Run check ``kind`` (``connect``, ``negotiate``, ``ping``, ``external``, ``external-perl``,
    ``misc``) and return its result; never raises."""
    start = time.monotonic()
    weight: int | None = None
    try:
        if kind == "connect":
            seen = check_connect(target, timeout)
        elif kind == "negotiate":
            seen = negotiate(target, timeout)
        elif kind == "ping":
            seen = check_ping(target, timeout)
        elif kind == "external":
            seen = check_external(target, timeout)
        elif kind == "external-perl":
            seen = check_external_perl(target, timeout)
        elif kind == "misc":
            seen, weight = check_misc(target, timeout, misc_dynamic)
        else:
            raise CheckFailed(f"unknown check {kind!r}")
    except TimeoutError:
        return CheckResult(False, "timed out", time.monotonic() - start)
    except Exception as exc:  # any failure of any library is a down server, with its words
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        return CheckResult(False, reason, time.monotonic() - start)
    return CheckResult(True, seen, time.monotonic() - start, weight)
