"""keepalived's checkers (``keepalived/check/check_*.c``), one module per checker type.

Each module has ``check(checker, target) -> str | Passed``: it blocks (it runs in the health
component's worker threads), returns what it saw when the real server passes, and raises
:class:`KaFailed` (or any ``OSError``) when it fails. :func:`run_checker` runs one and always
returns a :class:`KaResult`: besides ``up`` and a ``reason`` for ``pylvs health``, its ``lines``
are what keepalived 2.2.7 logs of that attempt in the same situation, word for word (the
keeper logs them under keepalived's conditions: mostly only with ``log_all_failures``).

======================  =====================================================================
TCP_CHECK               :mod:`.tcp`: a TCP connection opens
HTTP_GET / SSL_GET      :mod:`.http`: every ``url`` answers with a status in ``status_code``,
                        the body's MD5 ``digest`` (genhash's) and ``regex``
SMTP_CHECK              :mod:`.smtp`: 220 greeting, ``HELO`` answered 250, ``QUIT``
DNS_CHECK               :mod:`.dns`: a reply with the query's id and RCODE NOERROR
MISC_CHECK              :mod:`.misc`: ``misc_path``'s exit status (``misc_dynamic``: weight)
UDP_CHECK               :mod:`.udp`: no ICMP unreachable (or the ``require_reply`` answer)
PING_CHECK              :mod:`.ping`: an ICMP echo reply
FILE_CHECK              not run: the track_file's value (:mod:`.file` watches it)
======================  =====================================================================
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from pylvs.config.kamodel import Checker, MiscCheck
from pylvs.health.check import CheckFailed, CheckResult
from pylvs.health.checktypes import failure_words
from pylvs.health.keepalived.conn import Target

__all__ = ["MODULES", "KaFailed", "KaResult", "Passed", "Target", "run_checker"]

MODULES = {
    "TCP_CHECK": "tcp",
    "HTTP_GET": "http",
    "SSL_GET": "http",
    "SMTP_CHECK": "smtp",
    "DNS_CHECK": "dns",
    "MISC_CHECK": "misc",
    "UDP_CHECK": "udp",
    "PING_CHECK": "ping",
}


@dataclass(frozen=True)
class KaResult(CheckResult):
    """A :class:`CheckResult` with keepalived's log lines of the attempt; MISC_CHECK: the
    signal that ended the script, or ``timed_out``."""

    lines: tuple[str, ...] = ()
    signal: int | None = None
    timed_out: bool = False


class KaFailed(CheckFailed):
    """A failed check: ``reason`` for the status listing, ``line`` keepalived's log line."""

    def __init__(self, reason: str, line: str = "") -> None:
        super().__init__(reason)
        self.line = line


@dataclass(frozen=True)
class Passed:
    """A passed check and keepalived's lines of it (HTTP_GET's "... success to ... url(...)")."""

    seen: str
    lines: tuple[str, ...] = ()


Check = Callable[[Checker, Target], "str | Passed"]


def _load(kind: str) -> Check:
    module = importlib.import_module(f"pylvs.health.keepalived.{MODULES[kind]}")
    check: Check = module.check
    return check


def run_checker(checker: Checker, target: Target) -> KaResult:
    """Run ``checker`` once against ``target``; never raises. MISC_CHECK results carry the
    script's exit status as ``weight`` (the keeper reads it as keepalived's exit code)."""
    start = time.monotonic()
    try:
        if checker.kind == "MISC_CHECK":
            from pylvs.health.keepalived import misc

            assert isinstance(checker, MiscCheck)
            end = misc.run(checker, target)
            return KaResult(
                end.status == 0 and end.signal is None and not end.timed_out,
                end.seen,
                time.monotonic() - start,
                end.status,
                signal=end.signal,
                timed_out=end.timed_out,
            )
        if checker.kind not in MODULES:
            raise CheckFailed(f"{checker.kind} is not supported by pylvs")
        passed = _load(checker.kind)(checker, target)
    except KaFailed as exc:
        lines = (exc.line,) if exc.line else ()
        return KaResult(False, str(exc), time.monotonic() - start, lines=lines)
    except TimeoutError:
        return KaResult(False, "timed out", time.monotonic() - start)
    except Exception as exc:  # any failure of any library is a failed check, with its words
        return KaResult(False, failure_words(exc), time.monotonic() - start)
    if isinstance(passed, Passed):
        return KaResult(True, passed.seen, time.monotonic() - start, lines=passed.lines)
    return KaResult(True, passed, time.monotonic() - start)
