"""``service=radius``: ldirectord's ``check_radius``.

ldirectord sends one Access-Request with Authen::Radius ``check_pwd(login, passwd)``: User-Name,
the User-Password hidden with ``secret`` (RFC 2865 section 5.2) and the director's address as
NAS-IP-Address. ``check_pwd`` is true only for an Access-Accept, so the server is up only then: an
Access-Reject (a wrong password, an unknown user) or an Access-Challenge counts as down, although
the server answered, and so does silence (a wrong secret makes a server drop the request).

The packets are built and verified with pyrad; the request also carries a Message-Authenticator
(RFC 3579, the BlastRADIUS countermeasure that current servers may require), and a reply is only
taken when its Response Authenticator (and Message-Authenticator, if any) proves the secret. Like
Authen::Radius the UDP socket is connected, so a port without a server fails at once with
"connection refused" instead of waiting out the timeout.
"""

from __future__ import annotations

import io
import socket
from typing import Any

from pylvs.core.service import AF_INET6
from pylvs.health.check import CheckFailed, CheckTarget, Deadline

__all__ = ["check"]

# The attributes the check sends or reads (RFC 2865, RFC 2869, RFC 3162), as a pyrad dictionary:
# the check does not depend on a dictionary file being installed.
DICTIONARY = """\
ATTRIBUTE	User-Name		1	string
ATTRIBUTE	User-Password		2	string	encrypt=1
ATTRIBUTE	NAS-IP-Address		4	ipaddr
ATTRIBUTE	Reply-Message		18	string
ATTRIBUTE	Message-Authenticator	80	octets
ATTRIBUTE	NAS-IPv6-Address	95	ipv6addr
"""

ACCESS_ACCEPT = 2
ACCESS_REJECT = 3
ACCESS_CHALLENGE = 11
CODES = {
    ACCESS_ACCEPT: "Access-Accept",
    ACCESS_REJECT: "Access-Reject",
    ACCESS_CHALLENGE: "Access-Challenge",
}


def _reply_message(reply: Any) -> str:
    messages = reply.get("Reply-Message") or []
    return "; ".join(str(m) for m in messages)


def check(target: CheckTarget, timeout: float) -> str:
    try:
        from pyrad import packet  # type: ignore[import-untyped]
        from pyrad.dictionary import Dictionary  # type: ignore[import-untyped]
    except ImportError:
        raise CheckFailed("service radius needs the pyrad library") from None
    deadline = Deadline(timeout)
    with socket.socket(target.family(), socket.SOCK_DGRAM) as sock:
        sock.connect((target.rip, target.checkport))
        nas = sock.getsockname()[0]  # Authen::Radius: NAS-IP-Address is the socket's sockhost
        request = packet.AuthPacket(
            code=packet.AccessRequest,
            secret=target.secret.encode(),
            dict=Dictionary(io.StringIO(DICTIONARY)),
            message_authenticator=True,
        )
        request["User-Name"] = target.login
        request["User-Password"] = request.PwCrypt(target.passwd)
        if target.af == AF_INET6:
            request["NAS-IPv6-Address"] = nas
        else:
            request["NAS-IP-Address"] = nas
        sock.settimeout(deadline.left())
        sock.send(request.RequestPacket())
        while True:
            try:
                sock.settimeout(deadline.left())
                raw = sock.recv(4096)
            except (CheckFailed, TimeoutError):
                raise CheckFailed("timed out: no valid reply (is the secret right?)") from None
            # Authen::Radius gives up on the first reply with a bad authenticator; a reply that
            # does not prove the secret may be forged, so it is skipped and the wait goes on.
            try:
                reply = request.CreateReply(packet=raw)
            except packet.PacketError:
                continue
            if request.VerifyReply(reply, raw):
                break
    name = CODES.get(reply.code, f"code {reply.code}")
    message = _reply_message(reply)
    said = f" ({message})" if message else ""
    if reply.code != ACCESS_ACCEPT:
        # check_pwd returns true only for ACCESS_ACCEPT: ldirectord takes any other answer as down.
        raise CheckFailed(f"{name} for {target.login!r}{said}")
    return f"radius: {name} for {target.login!r}{said}"
