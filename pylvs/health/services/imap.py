"""``service=imap`` and ``service=imaps``: read the IMAP greeting and, with ``login=``, log in.

ldirectord's ``check_imap``/``check_imaps`` use Net::IMAP::Simple (its ``::SSL`` subclass for imaps,
which does not verify the certificate). The server is up when its greeting is ``* OK`` or
``* PREAUTH`` and, when a login is configured, ``LOGIN <login> <passwd>`` is answered ``OK``. The
session ends with ``LOGOUT``.
"""

from __future__ import annotations

import contextlib
import imaplib

from pylvs.health.check import CheckFailed, CheckTarget, Deadline, reply_text, unverified_tls

__all__ = ["check"]


def check(target: CheckTarget, timeout: float) -> str:
    deadline = Deadline(timeout)
    imap: imaplib.IMAP4
    # imaplib reads the greeting in the constructor and raises unless it is OK or PREAUTH, the
    # two Net::IMAP::Simple->new accepts (a BYE greeting raises imaplib.IMAP4.abort).
    if target.service == "imaps":
        imap = imaplib.IMAP4_SSL(
            target.rip, target.checkport, ssl_context=unverified_tls(), timeout=deadline.left()
        )
    else:
        imap = imaplib.IMAP4(target.rip, target.checkport, timeout=deadline.left())
    try:
        greeting = reply_text(imap.welcome)
        if target.login:
            imap.sock.settimeout(deadline.left())
            try:
                imap.login(target.login, target.passwd)
            except imaplib.IMAP4.error as exc:
                raise CheckFailed(f"login refused: {reply_text(exc.args[0])}") from None
            seen = f"logged in as {target.login}"
        else:
            seen = f"greeting {greeting}"
        imap.sock.settimeout(deadline.left())
        # Net::IMAP::Simple::quit: LOGOUT's answer does not change the check's result.
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()
        return seen
    finally:
        with contextlib.suppress(OSError):
            imap.shutdown()
