"""``service=pop`` and ``service=pops``: read the POP3 greeting and, with ``login=``, log in.

ldirectord's ``check_pop`` drives Mail::POP3Client (``USESSL`` for pops, where the certificate is
not verified). The greeting must be ``+OK``. With a login the client authenticates the way
Mail::POP3Client's ``AUTH_MODE => 'BEST'`` does: APOP when the greeting carries a timestamp, else
``AUTH CRAM-MD5`` when ``CAPA`` lists it, else ``USER``/``PASS``; then ``STAT`` must succeed. The
session ends with ``QUIT``.

Without a login, Mail::POP3Client's constructor never fails, so ldirectord reports every such
server up whatever it does; here the greeting has to be ``+OK`` so that a dead server is down.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import poplib
import re

from pylvs.health.check import CheckFailed, CheckTarget, Deadline, reply_text, unverified_tls

__all__ = ["check"]

# Mail::POP3Client::Connect: the APOP timestamp in the greeting, <atom(.atom)*@atom(.atom)*>.
_ATOM = r"[-_\w!#$%&'*+/=?^`{|}~]+"
_APOP_STAMP = re.compile(rf"(<{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*>)".encode())
# poplib's own bound on an answer line.
_MAXLINE = 2048


def check(target: CheckTarget, timeout: float) -> str:
    deadline = Deadline(timeout)
    pop: poplib.POP3
    # poplib reads the greeting in the constructor and raises unless it starts with "+".
    if target.service == "pops":
        pop = poplib.POP3_SSL(
            target.rip, target.checkport, context=unverified_tls(), timeout=deadline.left()
        )
    else:
        pop = poplib.POP3(target.rip, target.checkport, timeout=deadline.left())
    try:
        banner = pop.getwelcome()
        # Mail::POP3Client::Connect wants "+OK", case-insensitively.
        if not banner[:3].upper() == b"+OK":
            raise CheckFailed(f"greeting {reply_text(banner)}")
        if target.login:
            how = _login(pop, target, banner, deadline)
            seen = f"logged in as {target.login} ({how})"
        else:
            seen = f"greeting {reply_text(banner)}"
        _rearm(pop, deadline)
        # Mail::POP3Client::Close: the answer to QUIT does not change the check's result.
        with contextlib.suppress(poplib.error_proto, OSError):
            pop.quit()
        return seen
    finally:
        pop.close()


def _login(pop: poplib.POP3, target: CheckTarget, banner: bytes, deadline: Deadline) -> str:
    """Mail::POP3Client::Login in BEST mode; returns the method that worked."""
    stamp = _APOP_STAMP.search(banner)
    if stamp is not None:
        _rearm(pop, deadline)
        # Login_APOP: a refused APOP falls through to the next method.
        with contextlib.suppress(poplib.error_proto):
            digest = hashlib.md5(stamp.group(1) + target.passwd.encode()).hexdigest()
            _command(pop, f"APOP {target.login} {digest}")
            _stat(pop, deadline)
            return "APOP"
    _rearm(pop, deadline)
    try:
        capabilities = pop.capa()
    except poplib.error_proto:
        capabilities = {}
    if any("CRAM-MD5" in args for name, args in capabilities.items() if name == "SASL"):
        _rearm(pop, deadline)
        with contextlib.suppress(poplib.error_proto):
            _cram_md5(pop, target)
            _stat(pop, deadline)
            return "CRAM-MD5"
    _rearm(pop, deadline)
    try:
        pop.user(target.login)
        _rearm(pop, deadline)
        pop.pass_(target.passwd)
    except poplib.error_proto as exc:
        raise CheckFailed(f"login refused: {reply_text(exc.args[0])}") from None
    _stat(pop, deadline)
    return "USER/PASS"


def _cram_md5(pop: poplib.POP3, target: CheckTarget) -> None:
    # Login_CRAM_MD5: "+ <base64 challenge>", answered with base64("user hex(hmac_md5)").
    challenge = _command(pop, "AUTH CRAM-MD5")
    if not challenge.startswith(b"+ "):
        raise poplib.error_proto(challenge)
    secret = base64.b64decode(challenge[2:].strip())
    digest = hmac.new(target.passwd.encode(), secret, hashlib.md5).hexdigest()
    _command(pop, base64.b64encode(f"{target.login} {digest}".encode()).decode())


def _command(pop: poplib.POP3, line: str) -> bytes:
    """One command and its one-line answer, which must start with "+" (poplib's rule)."""
    pop.sock.sendall(line.encode(pop.encoding) + b"\r\n")
    answer = pop.file.readline(_MAXLINE).rstrip(b"\r\n")
    if not answer:
        raise poplib.error_proto("-ERR connection closed")
    if not answer.startswith(b"+"):
        raise poplib.error_proto(answer)
    return answer


def _stat(pop: poplib.POP3, deadline: Deadline) -> None:
    # Every Login_* ends with POPStat: the mailbox must be readable.
    _rearm(pop, deadline)
    try:
        pop.stat()
    except poplib.error_proto as exc:
        raise CheckFailed(f"STAT refused: {reply_text(exc.args[0])}") from None


def _rearm(pop: poplib.POP3, deadline: Deadline) -> None:
    pop.sock.settimeout(deadline.left())
