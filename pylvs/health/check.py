"""What one health check is given and what it gives back.

A :class:`CheckTarget` carries everything ldirectord hands its ``check_*`` functions for one real
server of one virtual service: the addresses, the ``checkport``, ``request``/``receive`` and the
service's login settings. A check is a plain blocking function run by the checker's thread pool
(:mod:`pylvs.health.runner`), never on the loop's thread::

    def check(target: CheckTarget, timeout: float) -> str

It returns a short description of what it saw when the server is up, and raises when it is down:
:class:`CheckFailed` with the reason, or whatever the socket or client library raised (the runner
turns any exception into a down result with that exception as the reason). Every blocking call
inside a check is bounded by ``timeout`` seconds in all (use :class:`Deadline`), so a hung real
server costs one timeout, as ldirectord's ``alarm()`` around each check does.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

from pylvs.core.service import AF_INET, AF_INET6

__all__ = [
    "CheckFailed",
    "CheckResult",
    "CheckTarget",
    "Deadline",
    "connect_tcp",
    "reply_text",
    "unverified_tls",
]


class CheckFailed(Exception):
    """The real server answered, but not as the check requires; the message says how."""


@dataclass(frozen=True)
class CheckTarget:
    """One real server as one check sees it (ldirectord's ``$v`` and ``$r`` merged)."""

    checktype: str  # connect | negotiate | ping | external | external-perl | combined | misc
    service: str  # ldirectord's service= (http, https, dns, ...)
    protocol: str  # tcp | udp | fwm
    vip: str  # the virtual address, or the fwmark as a decimal string
    vport: int  # the virtual port (0 for fwmark services)
    rip: str  # the real server's address
    rport: int  # the real server's port as the file wrote it (0 when omitted)
    checkport: int  # the port the check connects to (VirtualConfig.check_port)
    af: int = AF_INET
    request: str = "/"
    receive: str = ""
    httpmethod: str = "GET"
    virtualhost: str | None = None
    login: str = ""
    passwd: str = ""
    database: str = ""
    secret: str = ""
    checkcommand: str = "/bin/true"
    checkcount: int = 1  # ping: tries

    def host(self) -> str:
        """The real server's address as it goes into a URL (IPv6 in brackets)."""
        return f"[{self.rip}]" if self.af == AF_INET6 else self.rip

    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if self.af == AF_INET6 else socket.AF_INET


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check, as the runner hands it to the loop."""

    up: bool
    reason: str  # what was seen: the success description or the failure
    latency: float  # seconds the check took
    weight: int | None = None  # MISC_CHECK misc_dynamic: the weight the script asked for


class Deadline:
    """A budget of seconds shared by the steps of one check."""

    def __init__(self, timeout: float) -> None:
        self.end = time.monotonic() + timeout

    def left(self) -> float:
        """Seconds left; raises :class:`CheckFailed` when none are."""
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise CheckFailed("timed out")
        return remaining


def connect_tcp(target: CheckTarget, deadline: Deadline) -> socket.socket:
    """A TCP connection to the real server's check port, with the deadline's time left as the
    socket timeout (re-arm it with ``sock.settimeout(deadline.left())`` between steps)."""
    sock = socket.socket(target.family(), socket.SOCK_STREAM)
    try:
        sock.settimeout(deadline.left())
        sock.connect((target.rip, target.checkport))
    except BaseException:
        sock.close()
        raise
    return sock


def unverified_tls() -> ssl.SSLContext:
    """TLS as ldirectord's checks use it: neither the certificate chain nor the host name is
    verified (LWP's ``verify_hostname => 0``, IO::Socket::SSL defaults of its mail clients)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def reply_text(reply: object) -> str:
    """A server's answer (bytes from a client library) as text for a check's reason."""
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace").strip()
    return str(reply)
