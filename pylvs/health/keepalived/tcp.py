"""TCP_CHECK (check_tcp.c): the real server is up when a TCP connection to it opens within
``connect_timeout``; the connection is closed at once. keepalived's words of a failed attempt
(``tcp_check_thread``, logged with log_all_failures): ``TCP connection to [rs]:tcp:80
timeout.`` or ``... failed.``"""

from __future__ import annotations

from pylvs.config.kamodel import Checker
from pylvs.health.check import Deadline
from pylvs.health.keepalived import KaFailed
from pylvs.health.keepalived.conn import ConnectFailed, Target, connect_tcp

__all__ = ["check"]


def check(checker: Checker, target: Target) -> str:
    try:
        connect_tcp(target, Deadline(target.timeout)).close()
    except ConnectFailed as exc:
        how = "timeout" if exc.state == "timeout" else "failed"
        raise KaFailed(str(exc), f"TCP connection to {target.rs_name} {how}.") from None
    return f"connected to {target.host()}:{target.port}"
