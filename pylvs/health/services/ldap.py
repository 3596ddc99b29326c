"""``service=ldap`` and ``service=ldaps``: ldirectord's ``check_ldap``.

Bind (simple bind as ``login`` with ``passwd`` when both are set, else an anonymous bind), then
search the DN in ``request`` (less its leading ``/``) with scope ``base`` and filter
``(objectClass=*)``. The server is up iff exactly one entry comes back and, when ``receive`` is
set, its DN matches the ``receive`` regular expression. ``ldaps`` speaks TLS from the first byte
and, like Net::LDAP's default, does not verify the server's certificate.
"""

from __future__ import annotations

import re
import ssl
from typing import Any

from pylvs.health.check import CheckFailed, CheckTarget, Deadline

__all__ = ["check"]


def _base(target: CheckTarget) -> str:
    # ldirectord searches substr($$r{request}, 1): its parser always prefixes request with "/".
    return target.request[1:] if target.request.startswith("/") else target.request


def _result(conn: Any) -> str:
    """The last operation's result code and message, as ldap3 keeps them."""
    result = conn.result or {}
    description = result.get("description") or conn.last_error or "no result"
    message = result.get("message")
    return f"{description}: {message}" if message else str(description)


def check(target: CheckTarget, timeout: float) -> str:
    try:
        import ldap3  # type: ignore[import-untyped]
    except ImportError:
        raise CheckFailed(f"service {target.service} needs the ldap3 library") from None
    deadline = Deadline(timeout)
    base = _base(target)
    try:
        pattern = re.compile(target.receive) if target.receive else None
    except re.error as exc:
        raise CheckFailed(f"receive {target.receive!r} is not a regular expression: {exc}") from exc
    tls = ldap3.Tls(validate=ssl.CERT_NONE) if target.service == "ldaps" else None
    server = ldap3.Server(
        target.rip,
        port=target.checkport,
        use_ssl=target.service == "ldaps",
        tls=tls,
        get_info=ldap3.NONE,
        # Bounds the TCP connect and, for ldaps, the TLS handshake: ldap3 leaves this timeout on
        # the socket when no receive_timeout is given (its receive_timeout must be a whole number
        # on Linux, so each later step re-arms the socket from the deadline instead).
        connect_timeout=deadline.left(),
    )
    # check_ldap binds with the login only when both login and passwd are set.
    if target.login and target.passwd:
        conn = ldap3.Connection(
            server,
            user=target.login,
            password=target.passwd,
            authentication=ldap3.SIMPLE,
            raise_exceptions=False,
        )
        who = target.login
    else:
        conn = ldap3.Connection(server, authentication=ldap3.ANONYMOUS, raise_exceptions=False)
        who = "anonymous"
    try:
        conn.open()
        conn.socket.settimeout(deadline.left())
        if not conn.bind():
            raise CheckFailed(f"bind as {who} failed: {_result(conn)}")
        conn.socket.settimeout(deadline.left())
        conn.search(
            base,
            "(objectClass=*)",
            search_scope=ldap3.BASE,
            attributes=ldap3.NO_ATTRIBUTES,
        )
        entries = [item for item in conn.response or () if item.get("type") == "searchResEntry"]
        if len(entries) != 1:
            raise CheckFailed(
                f"search of {base!r} found {len(entries)} entries, not 1 ({_result(conn)})"
            )
        dn = str(entries[0].get("dn", ""))
        # Perl's $dn =~ /$recstr/: an unanchored match anywhere in the DN.
        if pattern is not None and not pattern.search(dn):
            raise CheckFailed(f"DN {dn!r} does not match receive {target.receive!r}")
    finally:
        conn.unbind()
    return f"{target.service}: bound as {who}, found {dn!r}"
