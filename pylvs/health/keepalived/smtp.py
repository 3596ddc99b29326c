"""SMTP_CHECK (check_smtp.c): the server greets with 220, answers ``HELO <helo_name>`` with 250;
the check then says ``QUIT``. ``helo_name`` defaults to keepalived's
``smtpchecker.keepalived.org``. (``host`` sub-blocks, deprecated in keepalived, are checked one
after the other with their own connection options.)

A failure gives ``smtp_final``'s line, ``SMTP_CHECK <what> [addr]:port`` (``Bad greeting banner
from server``, ``Bad HELO response from server``, ``Connection timeout to server``, ``Could not
connect to server``, ``Read timeout from server``, ...), logged when it counts."""

from __future__ import annotations

import dataclasses
import socket

from pylvs.config.kamodel import SmtpCheck
from pylvs.health.check import CheckFailed, Deadline
from pylvs.health.keepalived import KaFailed
from pylvs.health.keepalived.conn import ConnectFailed, Target, connect_state, connect_tcp

__all__ = ["DEFAULT_HELO", "check"]

DEFAULT_HELO = "smtpchecker.keepalived.org"


def _fail(t: Target, what: str, detail: str) -> KaFailed:
    """smtp_final: ``SMTP_CHECK <what> [addr]:port`` (FMT_SMTP_RS, inet_sockaddrtopair)."""
    line = f"SMTP_CHECK {what} [{t.addr}]:{t.port}"
    return KaFailed(f"{line}: {detail}", line)


def _reply(sock: socket.socket, deadline: Deadline, t: Target) -> tuple[int, str]:
    """One SMTP reply (its last line ends a multi-line reply: ``NNN `` not ``NNN-``)."""
    data = b""
    while True:
        try:
            sock.settimeout(deadline.left())
            chunk = sock.recv(4096)
        except (OSError, CheckFailed) as exc:
            if connect_state(exc) == "timeout":
                raise _fail(t, "Read timeout from server", "timed out") from None
            raise _fail(t, "Read failure from server", str(exc)) from None
        if not chunk:
            # smtp_read_thread: EOF is a read failure
            raise _fail(t, "Read failure from server", "connection closed")
        data += chunk
        lines = data.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) >= 3 and line[:3].isdigit() and (len(line) == 3 or line[3:4] == b" "):
                return int(line[:3]), line.decode("utf-8", "replace")
        if len(data) > 65536:
            raise KaFailed(
                "SMTP reply too long",
                f"SMTP_CHECK Buffer overflow reading from server [{t.addr}]:{t.port}. "
                "Increase SMTP_BUFF_MAX in check_smtp.h",
            )


_CONNECT_WORDS = {
    "timeout": "Connection timeout to server",
    "fail": "Could not connect to server",
    "error": "Error connecting to server",
}


def _send(sock: socket.socket, deadline: Deadline, t: Target, data: bytes) -> None:
    try:
        sock.settimeout(deadline.left())
        sock.sendall(data)
    except (OSError, CheckFailed) as exc:
        if connect_state(exc) == "timeout":
            raise _fail(t, "Write timeout to server", "timed out") from None
        raise _fail(t, "Write failure to server", str(exc)) from None


def _one(c: SmtpCheck, target: Target) -> str:
    deadline = Deadline(target.timeout)
    try:
        sock = connect_tcp(target, deadline)
    except ConnectFailed as exc:
        raise _fail(target, _CONNECT_WORDS[exc.state], str(exc)) from None
    with sock:
        code, line = _reply(sock, deadline, target)
        if code != 220:
            raise _fail(target, "Bad greeting banner from server", line)
        _send(sock, deadline, target, f"HELO {c.helo_name or DEFAULT_HELO}\r\n".encode())
        code, line = _reply(sock, deadline, target)
        if code != 250:
            raise _fail(target, "Bad HELO response from server", line)
        _send(sock, deadline, target, b"QUIT\r\n")
        return f"{target.host()}:{target.port} HELO {line}"


def check(checker: SmtpCheck, target: Target) -> str:
    if not checker.hosts:
        return _one(checker, target)
    seen = []
    for h in checker.hosts:
        t = dataclasses.replace(
            target,
            addr=h.connect_ip or target.addr,
            port=h.connect_port if h.connect_port is not None else target.port,
            timeout=h.connect_timeout or target.timeout,
            bindto=h.bindto or target.bindto,
            bind_port=h.bind_port or target.bind_port,
            fwmark=h.fwmark or target.fwmark,
        )
        seen.append(_one(checker, t))
    return "; ".join(seen)
