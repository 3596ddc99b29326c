"""``service=smtp`` and ``service=submission``: greet the server, say hello, quit.

ldirectord's ``check_smtp`` is ``Net::SMTP->new`` followed by ``quit``: the real server is up when
its greeting is a 2xx reply and it accepts ``EHLO localhost.localdomain`` (or, when EHLO is refused
with a 5xx, ``HELO localhost.localdomain``). No mail is sent and no login is tried.
"""

from __future__ import annotations

import contextlib
import smtplib

from pylvs.health.check import CheckFailed, CheckTarget, Deadline

__all__ = ["check"]

# Net::SMTP::hello's default domain.
HELLO_DOMAIN = "localhost.localdomain"


def check(target: CheckTarget, timeout: float) -> str:
    deadline = Deadline(timeout)
    # local_hostname set: smtplib would otherwise look up our FQDN, which can block on DNS.
    smtp = smtplib.SMTP(local_hostname=HELLO_DOMAIN, timeout=deadline.left())
    try:
        code, banner = smtp.connect(target.rip, target.checkport)
        # Net::SMTP->new: the greeting must be CMD_OK (any 2xx), not only 220.
        if code // 100 != 2:
            raise CheckFailed(f"greeting {code} {_text(banner)}")
        _rearm(smtp, deadline)
        code, reply = smtp.ehlo(HELLO_DOMAIN)
        hello = "EHLO"
        # Net::SMTP::hello falls back on HELO only when EHLO got a permanent error (5xx).
        if code // 100 == 5:
            _rearm(smtp, deadline)
            code, reply = smtp.helo(HELLO_DOMAIN)
            hello = "HELO"
        if code // 100 != 2:
            raise CheckFailed(f"{hello} refused: {code} {_text(reply)}")
        _rearm(smtp, deadline)
        # check_smtp ignores how QUIT goes; the server has already shown it is up.
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()
        return f"{hello} accepted: {_text(banner)}"
    finally:
        smtp.close()


def _rearm(smtp: smtplib.SMTP, deadline: Deadline) -> None:
    if smtp.sock is not None:
        smtp.sock.settimeout(deadline.left())


def _text(reply: bytes) -> str:
    return reply.decode("utf-8", "replace").splitlines()[0] if reply else ""
