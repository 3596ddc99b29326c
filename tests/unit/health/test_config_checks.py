"""The health-check settings pylvs adds to ldirectord's: ``rise`` and keepalived's MISC_CHECK."""

from __future__ import annotations

import pytest

from pylvs.config import ConfigError, parse

CF = "virtual=203.0.113.10:80\n\treal=198.51.100.11:80 masq\n\tprotocol=tcp\n"
TOML = """\
[[virtual]]
address = "203.0.113.10"
port = 80
protocol = "tcp"
{extra}
real = [{{ address = "198.51.100.11", port = 80, forward = "masq" }}]
"""


def test_rise_in_ldirectord_cf() -> None:
    assert parse(CF, "ld.cf").virtuals[0].rise == 1
    assert parse(CF + "\trise=3\n", "ld.cf").virtuals[0].rise == 3
    with pytest.raises(ConfigError, match=r"ld\.cf:4: invalid rise count"):
        parse(CF + "\trise=0\n", "ld.cf")


def test_rise_and_misc_check_in_pylvs_toml() -> None:
    extra = "rise = 2\nfailurecount = 3"
    v = parse(TOML.format(extra=extra), "p.toml").virtuals[0]
    assert (v.rise, v.failurecount) == (2, 3)
    extra = 'checktype = "misc"\nmisc_path = "/usr/local/bin/check --fast"\nmisc_dynamic = true'
    v = parse(TOML.format(extra=extra), "p.toml").virtuals[0]
    assert (v.checktype, v.checkcommand, v.misc_dynamic) == (
        "misc",
        "/usr/local/bin/check --fast",
        True,
    )


def test_misc_check_needs_its_command() -> None:
    with pytest.raises(ConfigError, match="misc_path is needed with checktype misc"):
        parse(TOML.format(extra='checktype = "misc"'), "p.toml")
