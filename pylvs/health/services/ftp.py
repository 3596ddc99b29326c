"""``service=ftp``: log in, fetch ``request`` and match its content against ``receive``.

ldirectord's ``check_ftp`` runs one Net::FTP session: ``USER``/``PASS`` with ``login``/``passwd``
(``anonymous`` and ``ldirectord@<hostname>`` when not set), ``CWD /``, ``TYPE I``, ``PASV`` and
``RETR <request>``, then ``QUIT``. It looks at none of the replies: whatever arrived over the data
connection is matched against the ``receive`` regular expression and the server is up exactly when
it matches. So a refused ``CWD`` does not matter, and a transfer cut short still counts with the
bytes that came. Here the server must also have opened the file for us (a ``RETR`` answered with a
preliminary reply), which is what an empty ``receive`` then asks for.
"""

from __future__ import annotations

import contextlib
import ftplib
import os
import re
import socket
from collections.abc import Callable

from pylvs.health.check import CheckFailed, CheckTarget, Deadline

__all__ = ["check"]

# Most of a file the check reads; receive is meant for a short status page.
MAX_CONTENT = 1 << 20


def default_credentials() -> tuple[str, str]:
    """ldirectord's FTP login when ``login``/``passwd`` are not set (read_config)."""
    hostname = os.environ.get("HOSTNAME") or socket.gethostname()
    return "anonymous", f"ldirectord@{hostname}"


def check(target: CheckTarget, timeout: float) -> str:
    try:
        pattern = re.compile(target.receive)
    except re.error as exc:
        raise CheckFailed(f"receive is not a usable regular expression: {exc}") from None
    deadline = Deadline(timeout)
    default_login, default_passwd = default_credentials()
    login = target.login or default_login
    passwd = target.passwd or default_passwd

    ftp = ftplib.FTP(timeout=deadline.left())
    errors: list[str] = []
    content = bytearray()
    try:
        welcome = ftp.connect(target.rip, target.checkport, timeout=deadline.left())
        # Net::FTP->new: the greeting must be CMD_OK (2xx); ftplib lets 1xx and 3xx through.
        if not welcome.startswith("2"):
            raise CheckFailed(f"greeting {welcome}")
        # check_ftp ignores these steps' results; a failure shows later as a failed RETR.
        steps: list[tuple[Callable[..., str], tuple[str, ...]]] = [
            (ftp.login, (login, passwd)),
            (ftp.cwd, ("/",)),
            (ftp.voidcmd, ("TYPE I",)),
        ]
        for step, args in steps:
            _rearm(ftp, deadline)
            try:
                step(*args)
            except ftplib.Error as exc:
                errors.append(str(exc))
        _rearm(ftp, deadline)
        ftp.set_pasv(True)
        try:
            # transfercmd sends PASV (EPSV over IPv6) then RETR; a refusal raises here.
            conn = ftp.transfercmd(f"RETR {target.request}")
        except ftplib.Error as exc:
            raise CheckFailed(_why(f"RETR {target.request}: {exc}", errors)) from None
        try:
            with conn:
                while len(content) < MAX_CONTENT:
                    conn.settimeout(deadline.left())
                    data = conn.recv(65536)
                    if not data:
                        break
                    content += data
            _rearm(ftp, deadline)
            ftp.voidresp()
        except (ftplib.Error, OSError, CheckFailed) as exc:
            # check_ftp's eval: a transfer that fails part way is judged on what arrived.
            errors.append(str(exc) or type(exc).__name__)
        with contextlib.suppress(ftplib.Error, OSError, CheckFailed):
            _rearm(ftp, deadline)
            ftp.quit()
    finally:
        ftp.close()

    # Perl matched the raw bytes; latin-1 maps each byte to one character.
    text = content.decode("latin-1")
    if pattern.search(text):
        return f"RETR {target.request}: {len(content)} bytes match /{target.receive}/"
    raise CheckFailed(
        _why(f"RETR {target.request}: {len(content)} bytes do not match /{target.receive}/", errors)
    )


def _rearm(ftp: ftplib.FTP, deadline: Deadline) -> None:
    left = deadline.left()
    ftp.timeout = left  # the data connection's connect timeout
    if ftp.sock is not None:
        ftp.sock.settimeout(left)


def _why(reason: str, errors: list[str]) -> str:
    return f"{reason} (after: {'; '.join(errors)})" if errors else reason
