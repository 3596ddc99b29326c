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

import ipaddress
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

__all__ = [
    "check_connect",
    "check_external",
    "check_ping",
    "failure_words",
    "run_check",
    "run_command",
    "system_timeout",
]

_ICMP_ECHO_REQUEST = 8
_ICMP_ECHO_REPLY = 0
_ICMPV6_ECHO_REQUEST = 128
_ICMPV6_ECHO_REPLY = 129
_IPPROTO_ICMPV6 = 58


def check_connect(target: CheckTarget, timeout: float) -> str:
    """``check_connect``: a TCP connection that opens within ``checktimeout``."""
    if target.protocol == "udp":
        return check_ping(target, timeout)
    sock = connect_tcp(target, Deadline(timeout))
    sock.close()
    return f"connected to {target.host()}:{target.checkport}"


def check_ping(target: CheckTarget, timeout: float) -> str:
    """``check_ping``: Net::Ping "icmp" with ``checkcount`` tries of ``timeout`` seconds.

    An IPv6 real server gets ICMPv6 echo requests (keepalived's PING_CHECK does so; ldirectord
    lists ping among the checks it cannot do over IPv6). A raw ICMPv6 socket has the kernel fill
    in the checksum and hands back the ICMPv6 message without the IPv6 header (RFC 3542 3.1).
    """
    v6 = target.family() == socket.AF_INET6
    family, proto = (
        (socket.AF_INET6, _IPPROTO_ICMPV6) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP)
    )
    request, reply = (
        (_ICMPV6_ECHO_REQUEST, _ICMPV6_ECHO_REPLY) if v6 else (_ICMP_ECHO_REQUEST, _ICMP_ECHO_REPLY)
    )
    peer = ipaddress.ip_address(target.rip)
    ident = random.randrange(1, 0xFFFF)
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        for attempt in range(max(1, target.checkcount)):
            payload = struct.pack("!d", time.monotonic()) + b"pylvs-health"
            header = struct.pack("!BBHHH", request, 0, 0, ident, attempt)
            csum = 0 if v6 else checksum(header + payload)
            packet = struct.pack("!BBHHH", request, 0, csum, ident, attempt) + payload
            sock.sendto(packet, (target.rip, 0))
            end = time.monotonic() + timeout
            while (left := end - time.monotonic()) > 0:
                readable, _, _ = select.select([sock], [], [], left)
                if not readable:
                    break
                data, address = sock.recvfrom(2048)
                offset = 0 if v6 else (data[0] & 0x0F) * 4
                if len(data) < offset + 8 or ipaddress.ip_address(address[0]) != peer:
                    continue
                kind, _, _, rid, seq = struct.unpack_from("!BBHHH", data, offset)
                if kind == reply and rid == ident and seq == attempt:
                    return f"echo reply from {target.rip} (try {attempt + 1})"
    raise CheckFailed(f"no echo reply from {target.rip} in {target.checkcount} tries")


def system_timeout(
    argv: list[str], timeout: float, user: int | None = None, group: int | str | None = None
) -> int | None:
    """Run a check command in a process group of its own, as ``user``/``group`` when given;
    its exit status (negative: the signal that killed it), or None when ``timeout`` passed and
    the whole group was killed (ldirectord's ``system_timeout``, keepalived's
    ``misc_check_thread``). A command that cannot be started raises :class:`CheckFailed`."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            user=user,
            group=group,
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
        return None


def run_command(argv: list[str], timeout: float) -> int:
    """:func:`system_timeout`, a timeout raising :class:`CheckFailed`."""
    status = system_timeout(argv, timeout)
    if status is None:
        raise CheckFailed(f"{argv[0]} did not finish within {timeout:g}s")
    return status


def _external_argv(target: CheckTarget) -> list[str]:
    """``checkcommand <vip|fwmark> <vport> <rip> <rport>``: ldirectord keeps IPv6 addresses as
    ``ld_gethostbyname`` returns them, in brackets (``[2001:db8::2]``), so the command gets that."""
    vip = f"[{target.vip}]" if ":" in target.vip else target.vip
    return [vip, str(target.vport), target.host(), str(target.rport)]


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


def failure_words(exc: BaseException) -> str:
    """The reason a failed check gives: an OS error's ``strerror`` (``Connection refused``),
    else the exception's message, else its type's name."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


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
        return CheckResult(False, failure_words(exc), time.monotonic() - start)
    return CheckResult(True, seen, time.monotonic() - start, weight)
