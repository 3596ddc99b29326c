"""ldirectord checks of IPv6 real servers: what a check is given and how it names the server.

ldirectord keeps an IPv6 address as ``ld_gethostbyname`` returns it, in brackets, so an external
check gets ``[2001:db8::1] 80 [2001:db8::2] 80``, a maintenance file is ``[2001:db8::2]:80`` (its
man page: "IPv6 addresses ... and a file of maintenance directory should be enclosed by
brackets"), and an http check asks for ``http://[2001:db8::2]:80/...`` with that Host header.
"""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from pylvs.config import parse_ldirectord
from pylvs.health.checktypes import check_external
from pylvs.health.monitor import _in_maintenance, target_of
from pylvs.health.services.http import url_for

CF = (
    "checktimeout=3\n"
    "virtual6=[2001:db8::1]:80\n"
    "\treal6=[2001:db8::2]:8080 masq\n"
    '\tservice=http\n\trequest="health.html"\n'
    "virtual6=7\n\treal6=[2001:db8::3]:0 gate\n\tchecktype=external\n"
)


def test_target_of_an_ipv6_real_server() -> None:
    web, fwm = parse_ldirectord(CF, "ldirectord.cf").virtuals
    target = target_of(web, 0)
    assert (target.af, target.vip, target.rip, target.rport, target.checkport) == (
        6,
        "2001:db8::1",
        "2001:db8::2",
        8080,
        8080,
    )
    assert target.family() == socket.AF_INET6
    assert target.host() == "[2001:db8::2]"
    assert url_for(target) == "http://[2001:db8::2]:8080/health.html"
    assert target_of(fwm, 0).vip == "7"


def test_external_check_gets_bracketed_addresses(tmp_path: Path) -> None:
    out = tmp_path / "args"
    script = tmp_path / "check.sh"
    script.write_text(f'#!/bin/sh\necho "$@" > {out}\nexit 0\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    web, fwm = parse_ldirectord(CF, "ldirectord.cf").virtuals
    web.checkcommand = fwm.checkcommand = str(script)
    assert "status 0" in check_external(target_of(web, 0), 5.0)
    assert out.read_text() == "[2001:db8::1] 80 [2001:db8::2] 8080\n"
    check_external(target_of(fwm, 0), 5.0)
    # a fwmark service passes its mark; the real server's port as the file wrote it
    assert out.read_text() == "7 0 [2001:db8::3] 0\n"


@pytest.mark.parametrize(
    ("name", "down"),
    [
        ("[2001:db8::2]:8080", True),
        ("[2001:db8::2]", True),
        ("2001:db8::2:8080", False),
        ("2001:db8::2", False),
    ],
)
def test_maintenance_files_of_ipv6_servers_are_bracketed(
    tmp_path: Path, name: str, down: bool
) -> None:
    (tmp_path / name).touch()
    assert _in_maintenance(str(tmp_path), "2001:db8::2", 8080) is down
