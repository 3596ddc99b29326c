"""UDP_CHECK (check_udp.c): a datagram (``payload``, default empty) to the real server on a
connected socket. An ICMP port unreachable (ECONNREFUSED on the socket) is down; no answer
within ``connect_timeout`` is up, unless ``require_reply`` is set: then an answer must come,
its length within ``min_reply_length``..``max_reply_length`` and, when ``require_reply`` has
bytes, starting with them."""

from __future__ import annotations

import socket

from pylvs.config.kamodel import UdpCheck
from pylvs.health.check import CheckFailed, Deadline
from pylvs.health.keepalived import KaFailed
from pylvs.health.keepalived.conn import Target, open_socket

__all__ = ["check"]


def check(checker: UdpCheck, target: Target) -> str:
    failed = KaFailed("no reply", f"UDP connection to {target.rs_name} failed.")
    deadline = Deadline(target.timeout)
    with open_socket(target, socket.SOCK_DGRAM, deadline) as sock:
        try:
            sock.connect((target.addr, target.port))
            sock.send(checker.payload or b"")
            sock.settimeout(deadline.left())
            data = sock.recv(65535)
        except (TimeoutError, CheckFailed):
            if checker.require_reply is not None:
                raise failed from None
            return "no reply, no ICMP error"
        except OSError as exc:  # ICMP port unreachable: ECONNREFUSED on the connected socket
            raise KaFailed(exc.strerror or str(exc), failed.line) from None
        want = checker.require_reply
        if want is not None:
            mismatch = f"UDP check to {target.rs_name} reply data mismatch."
            if not checker.min_reply_length <= len(data) <= checker.max_reply_length:
                raise KaFailed(f"reply length {len(data)} out of range", mismatch)
            if want and not data.startswith(want[: len(data)]):
                raise KaFailed("reply data mismatch", mismatch)
        return f"reply of {len(data)} bytes"
