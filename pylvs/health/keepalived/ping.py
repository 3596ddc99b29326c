"""PING_CHECK (check_ping.c): one ICMP echo request to the real server (or ``connect_ip``); an
echo reply within ``connect_timeout`` is up. The echo itself is ldirectord's ping
(:func:`pylvs.health.checktypes.check_ping`, a raw socket)."""

from __future__ import annotations

from pylvs.config.kamodel import PingCheck
from pylvs.core.service import AF_INET, AF_INET6
from pylvs.health.check import CheckFailed, CheckTarget
from pylvs.health.checktypes import check_ping
from pylvs.health.keepalived import KaFailed
from pylvs.health.keepalived.conn import Target

__all__ = ["check"]


def check(checker: PingCheck, target: Target) -> str:
    af = AF_INET6 if ":" in target.addr else AF_INET
    echo = CheckTarget(
        checktype="ping", service="none", protocol="tcp", vip="", vport=0,
        rip=target.addr, rport=0, checkport=0, af=af, checkcount=1,
    )  # fmt: skip
    try:
        return check_ping(echo, target.timeout)
    except CheckFailed as exc:  # no echo reply in time: icmp_check_thread's read timeout
        line = f"ICMP connection to address {target.rs_name} timeout."
        raise KaFailed(str(exc), line) from None
    except OSError as exc:
        line = f"ICMP connection to {target.rs_name} of {target.vs_name} failed."
        raise KaFailed(exc.strerror or str(exc), line) from None
