"""keepalived's ``conn_opts`` (check_api.c): where a checker connects and from where.

``connect_ip``/``connect_port`` default to the real server's address and port; ``bindto`` and
``bind_port`` set the source; ``bind_if`` binds to an interface (SO_BINDTODEVICE); ``fwmark``
marks the checker's packets (SO_MARK), so policy routing can send them another way. Every
blocking step is bounded by ``connect_timeout`` (keepalived's ``connection_to``).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

from pylvs.config.kamodel import Checker
from pylvs.health.check import CheckFailed, Deadline
from pylvs.health.checktypes import failure_words

__all__ = ["ConnectFailed", "Target", "connect_state", "connect_tcp", "open_socket", "target_of"]

_SO_MARK = getattr(socket, "SO_MARK", 36)
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


@dataclass(frozen=True)
class Target:
    """Where one checker goes: the resolved ``conn_opts``."""

    addr: str
    port: int
    timeout: float
    bindto: str | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    fwmark: int | None = None
    vs_name: str = ""  # FMT_VS, for messages
    rs_name: str = ""  # FMT_RS
    virtualhost: str | None = None  # HTTP: the real server's, else the virtual server's

    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ipaddress.ip_address(self.addr).version == 6 else socket.AF_INET

    def host(self) -> str:
        return f"[{self.addr}]" if self.family() == socket.AF_INET6 else self.addr


def target_of(
    c: Checker,
    rs_addr: str,
    rs_port: int,
    vs_name: str = "",
    rs_name: str = "",
    virtualhost: str | None = None,
) -> Target:
    """queue_checker: ``co->dst`` is the real server unless ``connect_ip``/``connect_port``."""
    return Target(
        addr=c.connect_ip or rs_addr,
        port=c.connect_port if c.connect_port is not None else rs_port,
        timeout=c.connect_timeout,
        bindto=c.bindto,
        bind_port=c.bind_port,
        bind_if=c.bind_if,
        fwmark=c.fwmark,
        vs_name=vs_name,
        rs_name=rs_name,
        virtualhost=virtualhost,
    )


def open_socket(
    t: Target, kind: socket.SocketKind, deadline: Deadline, proto: int = 0
) -> socket.socket:
    """A socket with the target's source options (``tcp_bind_connect``/``udp_bind_connect``),
    its timeout set to the deadline's time left; not connected yet."""
    sock = socket.socket(t.family(), kind, proto)
    try:
        if t.fwmark:
            sock.setsockopt(socket.SOL_SOCKET, _SO_MARK, t.fwmark)
        if t.bind_if:
            sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, t.bind_if.encode())
        if t.bindto or t.bind_port:
            default = "::" if t.family() == socket.AF_INET6 else "0.0.0.0"
            sock.bind((t.bindto or default, t.bind_port or 0))
        sock.settimeout(deadline.left())
    except BaseException:
        sock.close()
        raise
    return sock


# layer4.c socket_bind_connect: these errors are a failure to connect (connect_fail); any other
# is an error of the check (connect_error).
_CONNECT_FAIL = frozenset(
    {
        errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.EHOSTDOWN,
        errno.ENETDOWN, errno.ECONNRESET, errno.ECONNABORTED,
    }
)  # fmt: skip


class ConnectFailed(CheckFailed):
    """The connection did not open; ``state`` is layer4.c's ``socket_state`` result:
    ``timeout``, ``fail`` (refused, unreachable, reset) or ``error`` (anything else)."""

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(detail)
        self.state = state


def connect_state(exc: BaseException) -> str:
    """layer4.c's name for why a socket operation failed: timeout, fail or error."""
    if isinstance(exc, (TimeoutError, CheckFailed)):
        return "timeout"  # CheckFailed: the Deadline ran out
    if isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT:
        return "timeout"
    if isinstance(exc, OSError) and exc.errno in _CONNECT_FAIL:
        return "fail"
    return "error"


def connect_tcp(t: Target, deadline: Deadline) -> socket.socket:
    """A connected TCP socket, or :class:`ConnectFailed`."""
    try:
        sock = open_socket(t, socket.SOCK_STREAM, deadline)
    except (OSError, CheckFailed) as exc:
        raise ConnectFailed("error", failure_words(exc)) from None
    try:
        sock.connect((t.addr, t.port))
    except (OSError, CheckFailed) as exc:
        sock.close()
        raise ConnectFailed(connect_state(exc), failure_words(exc)) from None
    except BaseException:
        sock.close()
        raise
    return sock
