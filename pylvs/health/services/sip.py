"""``service=sip``: ldirectord's ``check_sip``.

Sends one SIP ``OPTIONS sip:<login>`` to the real server's check port, over UDP when the virtual
service is UDP and over TCP otherwise (``ld_open_socket``), with the headers ldirectord writes
(its ``Via`` names UDP on both transports, with the socket's own address and port). The server is
up when the first line of its answer starts with ``SIP/2.0 200 OK``; any other status line (a
``404``, a ``100 Trying`` first, ...), an answer with no status line, a refused connection (an ICMP
port unreachable on UDP) or no answer within ``timeout`` is down.
"""

from __future__ import annotations

import secrets
import socket

from pylvs.health.check import CheckFailed, CheckTarget, Deadline

__all__ = ["check", "options_request"]

OK_PREFIX = "SIP/2.0 200 OK"


def options_request(login: str, local_addr: str, local_port: int, call_id: str) -> bytes:
    """The OPTIONS request exactly as check_sip builds it."""
    return (
        f"OPTIONS sip:{login} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local_addr}:{local_port};branch=z9hG4bKhjhs8ass877\r\n"
        "Max-Forwards: 70\r\n"
        f"To: <sip:{login}>\r\n"
        f"From: <sip:{login}>;tag=1928301774\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 63104 OPTIONS\r\n"
        f"Contact: <sip:{login}>\r\n"
        "Accept: application/sdp\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _local(sock: socket.socket) -> tuple[str, int]:
    # ld_get_addrport: the address in brackets for IPv6.
    addr, port = sock.getsockname()[:2]
    return (f"[{addr}]" if sock.family == socket.AF_INET6 else str(addr)), int(port)


def check(target: CheckTarget, timeout: float) -> str:
    deadline = Deadline(timeout)
    kind = socket.SOCK_DGRAM if target.protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(target.family(), kind) as sock:
        sock.settimeout(deadline.left())
        sock.connect((target.rip, target.checkport))
        # Call-ID: 8 random bytes in hex, as check_sip's join/map/unpack.
        request = options_request(target.login, *_local(sock), secrets.token_hex(8))
        sock.settimeout(deadline.left())
        sock.sendall(request)
        status = _read_answer(sock, deadline)
    return f"answer {status!r}"


def _read_answer(sock: socket.socket, deadline: Deadline) -> str:
    """check_sip's read loop: the status line must be ``SIP/2.0 200 OK``, then the headers are read
    up to the empty line that ends them (or the end of the connection), within the deadline."""
    status: str | None = None
    buffer = b""
    while True:
        sock.settimeout(deadline.left())
        data = sock.recv(65536)  # one datagram on UDP; b"" when a TCP server closes
        *complete, buffer = (buffer + data).split(b"\n")
        if not data and buffer:
            complete.append(buffer)  # <$sock> returns a last line without its newline
        for raw in complete:
            # chomp with $/ = "\n", then with $/ = "\r".
            line = raw.removesuffix(b"\r").decode("utf-8", "replace")
            if not line:
                return _ok(status)
            if status is None:
                if not line.startswith(OK_PREFIX):
                    raise CheckFailed(f"answer {line!r}")
                status = line
        if not data:
            return _ok(status)


def _ok(status: str | None) -> str:
    if status is None:
        raise CheckFailed("no status line in the answer")  # check_sip: "No OK"
    return status
