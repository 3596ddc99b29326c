"""The ping check of an IPv6 real server: ICMPv6 echo from a lab namespace to a real host in
another one (the kernel of that namespace answers), and no answer from an address nobody has."""

from __future__ import annotations

import time

import pytest

from pylvs.core.service import AF_INET6
from pylvs.health.check import CheckFailed, CheckTarget
from pylvs.health.checktypes import check_ping
from pylvs.io import netcfg
from pylvs.testing.netns import Lab


def _target(rip: str) -> CheckTarget:
    return CheckTarget(
        checktype="ping", service="none", protocol="tcp", vip="2001:db8::1", vport=80,
        rip=rip, rport=80, checkport=80, af=AF_INET6, checkcount=2,
    )  # fmt: skip


def test_ping_check_over_ipv6() -> None:
    with Lab() as lab:
        lab.add_netns("d")
        lab.add_netns("r")
        lab.veth("d", "eth0", "r", "eth0")
        for short, addr in (("d", "2001:db8:ff::1/64"), ("r", "2001:db8:ff::2/64")):
            with lab.inside(short):
                netcfg.add_address("eth0", addr, nodad=True)
        with lab.inside("d"):
            start = time.monotonic()
            seen = check_ping(_target("2001:db8:ff::2"), 2.0)
            print(f"echo reply after {time.monotonic() - start:.3f}s: {seen}")
            assert seen.startswith("echo reply from 2001:db8:ff::2")
            with pytest.raises(CheckFailed, match="no echo reply from 2001:db8:ff::9 in 2 tries"):
                check_ping(_target("2001:db8:ff::9"), 0.5)
