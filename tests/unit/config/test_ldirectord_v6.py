"""ldirectord.cf with IPv6: ``virtual6=``/``real6=``/``fallback6=`` as ldirectord 4.12's
``ld_read_config`` reads them (``[addr]:port``, netmask as a prefix length, no IPv6 ranges), and
its messages for what it refuses."""

# ruff: noqa: E501  (tables of config lines and messages read best one per line)

from __future__ import annotations

import pytest

from pylvs.config import ConfigError, parse_ldirectord
from pylvs.core.service import AF_INET6, IPPROTO_TCP, IPPROTO_UDP, FwdMethod

HEAD = "checktimeout=3\n"
V6 = "virtual6=[2001:db8::1]:80\n"


def test_ipv6_farm() -> None:
    cfg = parse_ldirectord(
        HEAD
        + "fallback6=[::1]:80 masq\n"
        + V6
        + "\treal6=[2001:db8::2]:80 masq 2\n"
        + "\treal6=[2001:DB8::3] gate\n"
        + "\tservice=http\n\tpersistent=300\n\tnetmask=64\n"
        + "\tfallback6=[2001:db8::99]:8080 masq\n"
        + "virtual6=[2001:db8::1]:53\n\treal6=[2001:db8::2]:53 masq\n"
        + "virtual6=9\n\treal6=[2001:db8::2]:0 gate\n",
        "ldirectord.cf",
    )
    web, dns, fwm = cfg.virtuals
    assert (web.spec.af, web.spec.protocol, web.spec.addr, web.spec.port) == (
        AF_INET6,
        IPPROTO_TCP,
        "2001:db8::1",
        80,
    )
    assert (web.spec.persistent, web.spec.timeout, web.spec.netmask) == (True, 300, 64)
    assert [
        (r.dest.af, r.dest.addr, r.dest.port, r.dest.weight, r.dest.fwd) for r in web.reals
    ] == [
        (AF_INET6, "2001:db8::2", 80, 2, FwdMethod.MASQ),
        # the address as inet_ntop writes it; a gate real server takes the virtual port
        (AF_INET6, "2001:db8::3", 80, 1, FwdMethod.ROUTE),
    ]
    assert web.fallback is not None and (web.fallback.af, web.fallback.addr, web.fallback.port) == (
        AF_INET6,
        "2001:db8::99",
        8080,
    )
    # port 53: udp by default, as for IPv4
    assert (dns.spec.protocol, dns.protocol, dns.service) == (IPPROTO_UDP, "udp", "dns")
    assert (fwm.spec.af, fwm.spec.fwmark, fwm.protocol, fwm.spec.netmask) == (
        AF_INET6,
        9,
        "fwm",
        128,
    )
    assert cfg.fallback6 is not None and (
        cfg.fallback6.addr,
        cfg.fallback6.port,
        cfg.fallback6.fwd,
    ) == ("::1", 80, FwdMethod.MASQ)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "virtual=[2001:db8::1]:80\n",
            'ldirectord.cf:2: cannot specify an IPv6 address here. please use "virtual6" instead.',
        ),
        ("virtual6=[2001:db8::zz]:80\n", "ldirectord.cf:2: invalid address for virtual server"),
        (
            "virtual6=[2001:db8:::1]:80\n",
            "ldirectord.cf:2: invalid ipv6 address for virtual server",
        ),
        ("virtual6=[2001:db8::1]\n", "ldirectord.cf:2: invalid address for virtual server"),
        (
            V6 + "\treal=[2001:db8::2]:80 gate\n",
            'ldirectord.cf:3: cannot specify "real" here.  please use "real6" instead',
        ),
        (
            "virtual=192.0.2.1:80\n\treal6=[2001:db8::2]:80 gate\n",
            'ldirectord.cf:3: cannot specify "real6" here.  please use "real" instead',
        ),
        (
            V6 + "\treal6=192.0.2.5:80 gate\n",
            "ldirectord.cf:3: invalid address (192.0.2.5) for real server (could not resolve host)",
        ),
        (
            V6 + "\treal6=[2001:db8::2:80 gate\n",
            "ldirectord.cf:3: invalid address for real server (wrong format)",
        ),
        (
            V6 + "\treal6=[2001:db8::2]->[2001:db8::5]:80 gate\n",
            "ldirectord.cf:3: Address range for IPv6 is not supported yet",
        ),
        (
            V6 + "\treal6=[2001:db8::2]:80 gate\n\tnetmask=255.255.255.0\n",
            "ldirectord.cf:4: invalid netmask: a prefix length between 1 and 128 is required",
        ),
        (
            V6 + "\treal6=[2001:db8::2]:80 gate\n\tnetmask=129\n",
            "ldirectord.cf:4: invalid netmask: a prefix length between 1 and 128 is required",
        ),
        (
            V6 + "\treal6=[2001:db8::2]:80 gate\n\tfallback=127.0.0.1:80\n",
            'ldirectord.cf:4: cannot specify "fallback" here.  please use "fallback6" instead',
        ),
        (
            "fallback6=127.0.0.1:80\n",
            "ldirectord.cf:2: invalid IPv6 address or could not resolve for fallback server: 127.0.0.1",
        ),
    ],
)
def test_ipv6_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_ldirectord(HEAD + text, "ldirectord.cf")
    assert str(info.value) == message
