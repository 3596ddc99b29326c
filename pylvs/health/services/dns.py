"""``service=dns``: resolve ``request`` on the real server and match the answer with ``receive``.

ldirectord's ``check_dns`` asks the real server alone, through Net::DNS::Resolver's ``search``, for
``request`` (one leading ``/`` removed): an address, IPv4 or IPv6, becomes a PTR question for its
reverse name, anything else an A question. The question goes over UDP, or over TCP when the
virtual service's protocol is tcp (a truncated UDP answer is asked again over TCP, as Net::DNS
does). The first reply with a non-empty answer section is judged: the server is up when one of its
A records' address or PTR records' name (no final dot) matches the ``receive`` regular expression.
An empty ``receive`` matches nothing, so such a check is always down, as in ldirectord.

Net::DNS's search rules are kept: a name with a dot is asked as it is; a name without one is asked
with each ``search``/``domain`` suffix of /etc/resolv.conf in turn, and not bare.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename

from pylvs.health.check import CheckFailed, CheckTarget, Deadline

__all__ = ["check", "questions"]

RESOLV_CONF = "/etc/resolv.conf"
# Net::DNS::Resolver's first UDP wait (retrans), doubled on each retransmission.
RETRANS = 5.0
# Read buffer for one UDP answer (the query offers no EDNS, so a server sends at most 512 bytes).
UDP_MAX = 65535
# Net::DNS::Question::_dns_addr: dotted digits are an IPv4 address, or the start of one.
_MAYBE_IPV4 = re.compile(r"^\d+(?:\.\d+){0,3}$")


def check(target: CheckTarget, timeout: float) -> str:
    deadline = Deadline(timeout)
    try:
        pattern = re.compile(target.receive)
    except re.error as exc:
        raise CheckFailed(f"receive is not a usable regular expression: {exc}") from None
    request = target.request[1:] if target.request.startswith("/") else target.request
    asked = questions(request, _search_domains())
    if not asked:
        raise CheckFailed(f"no name to ask for {request!r}: no search domains")
    tcp = target.protocol == "tcp"
    rcodes: list[str] = []
    for qname, rdtype in asked:
        query = dns.message.make_query(qname, rdtype, dns.rdataclass.IN)
        reply = _tcp(query, target, deadline) if tcp else _udp(query, target, deadline)
        # Net::DNS::Resolver::search: take the first reply that has an answer.
        if not reply.answer:
            rcodes.append(f"{qname} {dns.rcode.to_text(reply.rcode())}")
            continue
        seen: list[str] = []
        for rrset in reply.answer:
            for rdata in rrset:
                if rrset.rdtype == dns.rdatatype.A:
                    value = str(rdata.address)
                elif rrset.rdtype == dns.rdatatype.PTR:
                    value = rdata.target.to_text(omit_final_dot=True)
                else:
                    continue
                seen.append(value)
                # check_dns: "length($recstr) and ... =~ /$recstr/".
                if target.receive and pattern.search(value):
                    rtype = dns.rdatatype.to_text(rrset.rdtype)
                    return f"{qname} {rtype} {value} matches /{target.receive}/"
        raise CheckFailed(
            f"response mismatch: {qname} answered {', '.join(seen) or 'no A/PTR record'}"
        )
    raise CheckFailed(f"no answer: {', '.join(rcodes)}")


def questions(
    request: str, search: list[str]
) -> list[tuple[dns.name.Name, dns.rdatatype.RdataType]]:
    """The questions Net::DNS::Resolver::search asks for ``request``, in order."""
    reverse = _reverse_name(request)
    if reverse is not None:
        return [(reverse, dns.rdatatype.PTR)]
    name = request or "."
    # Net::DNS::Resolver::search with ndots 1: a name with a dot (or a colon) is asked as it is,
    # a bare name only with each search suffix.
    if name.count(".") >= 1 or ":" in name:
        names = [name]
    else:
        names = [f"{name}.{suffix}" for suffix in search]
    return [(dns.name.from_text(n), dns.rdatatype.A) for n in names]


def _reverse_name(request: str) -> dns.name.Name | None:
    """Net::DNS::Question::_dns_addr: the reverse name when ``request`` is an address."""
    text = request.split("%", 1)[0]  # an RFC 4007 scope
    if _MAYBE_IPV4.match(text):
        # A partial address (192.0.2) names its in-addr.arpa zone, as _dns_addr does.
        octets = text.split(".")
        if len(octets) == 4:
            return dns.reversename.from_address(text)
        return dns.name.from_text(".".join([*reversed(octets), "in-addr.arpa."]))
    if ":" in text:
        try:
            address = ipaddress.IPv6Address(text)
        except ValueError:
            return None
        if address.ipv4_mapped is not None:
            return dns.reversename.from_address(str(address.ipv4_mapped))
        return dns.reversename.from_address(str(address))
    return None


def _search_domains(path: str = RESOLV_CONF) -> list[str]:
    """The resolver's search list: the last ``search`` or ``domain`` line of resolv.conf."""
    domains: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as conf:
            for line in conf:
                words = line.split()
                if words and words[0] in ("search", "domain"):
                    domains = words[1:] if words[0] == "search" else words[1:2]
    except OSError:
        return []
    return [d.rstrip(".") for d in domains if d.rstrip(".")]


def _udp(
    query: dns.message.Message, target: CheckTarget, deadline: Deadline
) -> dns.message.Message:
    wire = query.to_wire()
    with socket.socket(target.family(), socket.SOCK_DGRAM) as sock:
        # Connected, so an ICMP port unreachable ends the check at once instead of at the timeout.
        sock.connect((target.rip, target.checkport))
        wait = RETRANS
        while True:
            sock.send(wire)
            end = min(deadline.end, time.monotonic() + wait)
            wait *= 2
            while (left := end - time.monotonic()) > 0:
                sock.settimeout(min(left, deadline.left()))
                try:
                    data = sock.recv(UDP_MAX)
                except TimeoutError:
                    break
                try:
                    reply = dns.message.from_wire(data)
                except dns.exception.DNSException:
                    continue  # not an answer to us; keep waiting
                if not query.is_response(reply):
                    continue
                if reply.flags & dns.flags.TC:
                    return _tcp(query, target, deadline)
                return reply
            deadline.left()  # raises once the whole check's time is spent


def _tcp(
    query: dns.message.Message, target: CheckTarget, deadline: Deadline
) -> dns.message.Message:
    try:
        return dns.query.tcp(query, target.rip, timeout=deadline.left(), port=target.checkport)
    except dns.exception.Timeout:
        raise CheckFailed("timed out") from None
