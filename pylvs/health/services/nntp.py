"""``service=nntp``: ldirectord's ``check_nntp``.

Connects to the real server's check port and reads the first bytes the server sends (at most 64,
as ldirectord's ``sysread``): the server is up when its greeting starts with ``2`` (``200`` posting
allowed, ``201`` no posting), and down on any other greeting (``400``/``502``: service not
available, no permission), on a closed connection, or when nothing comes within ``timeout``.
"""

from __future__ import annotations

from pylvs.health.check import CheckFailed, CheckTarget, Deadline, connect_tcp

__all__ = ["check"]


def check(target: CheckTarget, timeout: float) -> str:
    deadline = Deadline(timeout)
    with connect_tcp(target, deadline) as sock:
        # check_nntp waits with IO::Select->can_read, then does one sysread of 64 bytes.
        sock.settimeout(deadline.left())
        greeting = sock.recv(64)
    text = greeting.decode("latin-1").splitlines()[0] if greeting else ""
    if not greeting:
        raise CheckFailed("connection closed before a greeting")
    if not greeting.startswith(b"2"):
        raise CheckFailed(f"greeting {text!r}")
    return f"greeting {text!r}"
