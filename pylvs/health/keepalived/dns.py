"""DNS_CHECK (check_dns.c): one UDP query for ``name`` (default ``.``) of ``type`` (default SOA),
recursion desired; the server is up when a reply with the query's id arrives, is a response
(QR set) and has RCODE NOERROR. keepalived looks no further: an empty answer section passes.
A failure gives ``dns_final``'s words (``read timeout from socket``, ``read error occurred.
(rcode = 2)``, ...): the keeper logs them as ``DNS_CHECK ([rs]:udp:53) <words>``."""

from __future__ import annotations

import socket

import dns.flags
import dns.message

from pylvs.config.kamodel import DnsCheck
from pylvs.health.check import CheckFailed, Deadline
from pylvs.health.keepalived import KaFailed
from pylvs.health.keepalived.conn import Target, connect_state, open_socket

__all__ = ["check"]


def check(checker: DnsCheck, target: Target) -> str:
    deadline = Deadline(target.timeout)
    query = dns.message.make_query(checker.name or ".", checker.type, use_edns=False)
    query.flags |= dns.flags.RD
    wire = query.to_wire()
    with open_socket(target, socket.SOCK_DGRAM, deadline) as sock:
        try:
            sock.connect((target.addr, target.port))
            sock.send(wire)
        except OSError as exc:
            words = (
                "connection failure." if connect_state(exc) == "fail" else "failed to write socket."
            )
            raise KaFailed(words, words) from None
        while True:
            try:
                sock.settimeout(deadline.left())
                data = sock.recv(65535)
            except (OSError, CheckFailed) as exc:
                if connect_state(exc) == "timeout":
                    raise KaFailed("read timeout from socket", "read timeout from socket") from None
                num = exc.errno if isinstance(exc, OSError) and exc.errno else 0
                text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                words = f"failed to read socket; errno {num} ({text})"
                raise KaFailed(words, words) from None
            if len(data) < 12 or data[:2] != wire[:2] or not data[2] & 0x80:
                continue  # too small, another id, or a query: keep waiting (dns_recv_thread)
            rcode = data[3] & 0x0F
            if rcode != 0:
                words = f"read error occurred. (rcode = {rcode})"
                raise KaFailed(words, words)
            return f"{checker.type} {checker.name} answered (NOERROR)"
