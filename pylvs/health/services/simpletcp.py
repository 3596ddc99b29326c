"""``service=simpletcp``: ldirectord's ``check_simpletcp``.

Connects to the real server's check port, sends ``request`` (without the leading ``/`` the config
adds, each two-character ``\\n`` turned into a newline), half-closes the connection and reads the
answer line by line until the server closes it: the server is up as soon as one line matches
``receive`` as a regular expression. The socket is a datagram one when the virtual service is UDP,
as ldirectord's ``ld_open_socket`` makes it; the check is bounded by ``timeout`` in all.
"""

from __future__ import annotations

import re
import socket

from pylvs.health.check import CheckFailed, CheckTarget, Deadline

__all__ = ["check", "request_bytes"]


def request_bytes(target: CheckTarget) -> bytes:
    """``substr($$r{request}, 1)`` with ``s/\\\\n/\\n/g``: what goes on the wire."""
    return target.request[1:].replace("\\n", "\n").encode("utf-8")


def _pattern(receive: str) -> re.Pattern[bytes]:
    # Perl matches /$$r{receive}/ against each line as bytes. Python's re reads the Perl syntax
    # receive strings use; Perl-only constructs (\z, \Q...\E, embedded code) do not compile.
    # An empty receive in Perl reuses the last successful pattern; here it matches any line.
    try:
        return re.compile(receive.encode("utf-8"))
    except re.error as exc:
        raise CheckFailed(f"receive {receive!r} is not a valid regular expression: {exc}") from exc


def check(target: CheckTarget, timeout: float) -> str:
    deadline = Deadline(timeout)
    pattern = _pattern(target.receive)
    kind = socket.SOCK_DGRAM if target.protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(target.family(), kind) as sock:
        sock.settimeout(deadline.left())
        sock.connect((target.rip, target.checkport))
        sock.settimeout(deadline.left())
        sock.sendall(request_bytes(target))
        sock.shutdown(socket.SHUT_WR)
        buffer = b""
        while True:
            sock.settimeout(deadline.left())
            data = sock.recv(65536)  # b"" at the end of the answer
            # while (<$sock>): each line with its newline, then a last one that may have none.
            *complete, buffer = (buffer + data).split(b"\n")
            lines = [line + b"\n" for line in complete]
            if not data and buffer:
                lines.append(buffer)
            for line in lines:
                if pattern.search(line):
                    text = line.decode("utf-8", "replace").rstrip("\r\n")
                    return f"line matched receive: {text[:80]!r}"
            if not data:
                raise CheckFailed("no line of the answer matched receive")
