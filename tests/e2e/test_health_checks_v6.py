"""Checks of IPv6 real servers: the ping check (ICMPv6 echo from a lab namespace to a real host in
another one, whose kernel answers, and no answer from an address nobody has), and the connect
and HTTP negotiate checks against nginx listening on IPv6 only."""

from __future__ import annotations

import time
from pathlib import Path

import nginx
import pytest

from pylvs.core.service import AF_INET6
from pylvs.health.check import CheckFailed, CheckTarget
from pylvs.health.checktypes import check_ping, run_check
from pylvs.io import netcfg
from pylvs.testing.netns import Lab, wait_until


def _target(
    rip: str, checktype: str = "ping", service: str = "none", port: int = 80
) -> CheckTarget:
    return CheckTarget(
        checktype=checktype, service=service, protocol="tcp", vip="2001:db8::1", vport=80,
        rip=rip, rport=port, checkport=port, af=AF_INET6, checkcount=2,
        request="/health", receive="healthy",
    )  # fmt: skip


def _pair(lab: Lab) -> None:
    lab.add_netns("d")
    lab.add_netns("r")
    lab.veth("d", "eth0", "r", "eth0")
    for short, addr in (("d", "2001:db8:ff::1/64"), ("r", "2001:db8:ff::2/64")):
        with lab.inside(short):
            netcfg.add_address("eth0", addr, nodad=True)


def test_ping_check_over_ipv6() -> None:
    with Lab() as lab:
        _pair(lab)
        with lab.inside("d"):
            start = time.monotonic()
            seen = check_ping(_target("2001:db8:ff::2"), 2.0)
            print(f"echo reply after {time.monotonic() - start:.3f}s: {seen}")
            assert seen.startswith("echo reply from 2001:db8:ff::2")
            with pytest.raises(CheckFailed, match="no echo reply from 2001:db8:ff::9 in 2 tries"):
                check_ping(_target("2001:db8:ff::9"), 0.5)


def test_connect_and_http_negotiate_checks_over_ipv6(tmp_path: Path) -> None:
    """ldirectord's connect check and its http negotiate check (GET of ``request``, ``receive``
    in the answer) reach an IPv6 real server at ``[rip]:port``, with the Host header in brackets."""
    with Lab() as lab:
        _pair(lab)
        servers = """
    server {
        listen [::]:8080 ipv6only=on;
        location = /health { return 200 "healthy\\n"; }
        location / { return 404; }
    }
"""
        nginx.start(lab, "r", tmp_path / "nginx", servers)
        rip = "2001:db8:ff::2"
        with lab.inside("d"):
            up = wait_until(
                lambda: (
                    (r := run_check("connect", _target(rip, "connect", port=8080), 2.0)).up and r
                ),
                timeout=10,
                what="nginx listening on [2001:db8:ff::2]:8080",
            )
            print("connect:", up)
            negotiated = run_check("negotiate", _target(rip, "negotiate", "http", 8080), 2.0)
            print("negotiate:", negotiated)
            assert negotiated.up, negotiated.reason
            refused = run_check("connect", _target(rip, "connect", port=8081), 2.0)
            assert not refused.up and "refused" in refused.reason.lower(), refused
            wrong = _target(rip, "negotiate", "http", 8080)
            wrong = CheckTarget(**{**wrong.__dict__, "request": "/other"})
            missed = run_check("negotiate", wrong, 2.0)
            assert not missed.up, missed
