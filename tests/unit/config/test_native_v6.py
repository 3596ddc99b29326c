"""pylvs.toml with IPv6 services and real servers: addresses with or without brackets, the
persistence netmask as a prefix length, fwmark services with ``family = "inet6"``, mixed address
families only for tunnels, and errors naming the line."""

# ruff: noqa: E501

from __future__ import annotations

import pytest

from pylvs.config import ConfigError, parse_native
from pylvs.core.engine import Engine
from pylvs.core.service import AF_INET, AF_INET6, IPPROTO_TCP, FwdMethod

FARM = """\
[global]
fallback6 = { address = "::1", port = 80 }

[[virtual]]
address = "[2001:db8::1]"
port = 80
scheduler = "rr"
persistent = 300
netmask = 64
fallback = { address = "2001:db8::99", port = 8080, forward = "masq" }

[[virtual.real]]
address = "2001:DB8::2"
port = 80
forward = "masq"
weight = 2

[[virtual.real]]
address = "203.0.113.7"
forward = "ipip"

[[virtual]]
fwmark = 5
family = "inet6"

[[virtual.real]]
address = "2001:db8::4"
forward = "gate"
"""


def test_ipv6_farm_parses_and_applies_to_an_engine() -> None:
    cfg = parse_native(FARM, "pylvs.toml")
    web, fwm = cfg.virtuals
    assert (web.spec.af, web.spec.protocol, web.spec.addr, web.spec.netmask) == (
        AF_INET6,
        IPPROTO_TCP,
        "2001:db8::1",
        64,
    )
    assert [(r.dest.af, r.dest.addr, r.dest.port, r.dest.fwd) for r in web.reals] == [
        (AF_INET6, "2001:db8::2", 80, FwdMethod.MASQ),
        # IPVS allows a real server of the other family behind a tunnel
        (AF_INET, "203.0.113.7", 80, FwdMethod.TUNNEL),
    ]
    assert web.fallback is not None and (web.fallback.af, web.fallback.addr) == (
        AF_INET6,
        "2001:db8::99",
    )
    assert (fwm.spec.af, fwm.spec.fwmark, fwm.reals[0].dest.addr) == (AF_INET6, 5, "2001:db8::4")
    assert cfg.fallback6 is not None and cfg.fallback6.addr == "::1"
    engine = Engine()
    for v in cfg.virtuals:
        engine.add_service(v.spec)
        for r in v.reals:
            engine.add_dest(v.spec, r.dest)
    listed = {(s.af, s.addr, s.fwmark): sorted(d.addr for d in s.dests) for s in engine.services()}
    assert listed == {
        (AF_INET6, "2001:db8::1", 0): ["2001:db8::2", "203.0.113.7"],
        (AF_INET6, "", 5): ["2001:db8::4"],
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[virtual]]\naddress = "2001:db8::zz"\nport = 80\n',
            'pylvs.toml:2: virtual[0].address: cannot resolve "2001:db8::zz"',
        ),
        (
            '[[virtual]]\naddress = "2001:db8::1"\nport = 80\npersistent = 60\nnetmask = 129\n',
            "pylvs.toml:5: virtual[0].netmask must be a prefix length or an IPv4 netmask",
        ),
        (
            '[[virtual]]\naddress = "2001:db8::1"\nport = 80\npersistent = 60\nnetmask = "255.255.255.0"\n',
            "pylvs.toml:5: virtual[0].netmask must be a prefix length or an IPv4 netmask",
        ),
        (
            '[[virtual]]\naddress = "2001:db8::1"\nport = 80\n[[virtual.real]]\naddress = "2001:db8::2->2001:db8::4"\n',
            'pylvs.toml:5: virtual[0].real[0].address: invalid IPv4 range "2001:db8::2->2001:db8::4"',
        ),
        (
            '[[virtual]]\nfwmark = 3\nfamily = "inet6"\n[[virtual.real]]\naddress = "10.0.0.1"\nforward = "masq"\n',
            "pylvs.toml:5: virtual[0].real[0].address: a real server of another address family needs forward = ipip (Different address family is allowed only for tunneling servers)",
        ),
        (
            '[global]\nfallback6 = { address = "127.0.0.1", port = 80 }\n',
            "pylvs.toml:1: global.fallback6.address is not an IPv6 address",
        ),
    ],
)
def test_ipv6_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_native(text, "pylvs.toml")
    assert str(info.value) == message
