"""keepalived.conf with IPv6 virtual and real servers (``virtual_server 2001:db8::1 80``),
``persistence_granularity`` as a prefix length, IPv6 address ranges in a virtual_server_group
(the last 16-bit group, in hex), mixed families only for TUN, and keepalived's messages."""

# ruff: noqa: E501

from __future__ import annotations

import pytest

from pylvs.config import ConfigError
from pylvs.config.keepalived import parse_keepalived
from pylvs.core.service import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, FwdMethod

CONF = """\
virtual_server 2001:db8::1 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    persistence_timeout 60
    persistence_granularity 64
    sorry_server 2001:db8::99 8080
    real_server 2001:DB8::2 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 3
        }
    }
    real_server 203.0.113.7 80 {
        lvs_method TUN
    }
}
virtual_server fwmark 5 {
    ip_family inet6
    lb_algo wlc
    lb_kind DR
    real_server 2001:db8::4 0 {
    }
}
virtual_server_group G6 {
    2001:db8::10 53
    2001:db8::2e-30 53
}
virtual_server group G6 {
    lb_algo rr
    lb_kind NAT
    protocol UDP
    real_server 2001:db8::2 53 {
    }
}
"""


def test_ipv6_virtual_servers() -> None:
    cfg = parse_keepalived(CONF, "keepalived.conf")
    web, fwm, *group = cfg.virtuals
    assert (web.spec.af, web.spec.protocol, web.spec.addr, web.spec.port) == (
        AF_INET6,
        IPPROTO_TCP,
        "2001:db8::1",
        80,
    )
    assert (web.spec.persistent, web.spec.timeout, web.spec.netmask) == (True, 60, 64)
    assert [(r.dest.af, r.dest.addr, r.dest.weight, r.dest.fwd) for r in web.reals] == [
        (AF_INET6, "2001:db8::2", 2, FwdMethod.MASQ),
        (AF_INET, "203.0.113.7", 1, FwdMethod.TUNNEL),
    ]
    assert web.fallback is not None and (web.fallback.af, web.fallback.addr, web.fallback.port) == (
        AF_INET6,
        "2001:db8::99",
        8080,
    )
    assert (fwm.spec.af, fwm.spec.fwmark, fwm.reals[0].dest.addr, fwm.reals[0].dest.fwd) == (
        AF_INET6,
        5,
        "2001:db8::4",
        FwdMethod.ROUTE,
    )
    # 2001:db8::2e-30: 0x2e, 0x2f, 0x30
    assert [(v.spec.addr, v.spec.port, v.spec.protocol) for v in group] == [
        ("2001:db8::10", 53, IPPROTO_UDP),
        ("2001:db8::2e", 53, IPPROTO_UDP),
        ("2001:db8::2f", 53, IPPROTO_UDP),
        ("2001:db8::30", 53, IPPROTO_UDP),
    ]


def vs(body: str, head: str = "2001:db8::1 80") -> str:
    return f"virtual_server {head} {{\n{body}}}\n"


RS = "  real_server 2001:db8::2 80 {\n  }\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            vs(RS, "2001:db8::zz 80"),
            "keepalived.conf:1: Invalid virtual server IP address 2001:db8::zz 80 - skipping",
        ),
        (
            vs("  lb_kind NAT\n  real_server 10.0.0.1 80 {\n  }\n"),
            "keepalived.conf:3: Address family of virtual server and real server 10.0.0.1 don't match - skipping real server.",
        ),
        (
            vs("  persistence_timeout 30\n  persistence_granularity 129\n" + RS),
            "keepalived.conf:3: Invalid IPv6 persistence_granularity specified - 129",
        ),
        (
            vs("  persistence_timeout 30\n  persistence_granularity 255.255.255.0\n" + RS),
            "keepalived.conf:3: Invalid IPv6 persistence_granularity specified - 255.255.255.0",
        ),
        (
            vs("  real_server 2001:db8::zz 80 {\n  }\n"),
            "keepalived.conf:2: Invalid real server ip address/port 2001:db8::zz/80 - skipping",
        ),
        (
            vs("  sorry_server 10.0.0.9 80\n" + RS),
            "keepalived.conf:1: Address family of virtual server and sorry server 10.0.0.9 don't match - skipping sorry server.",
        ),
        (
            "virtual_server fwmark 3 {\n  ip_family inet6\n  real_server 10.0.0.2 80 {\n  }\n}\n",
            "keepalived.conf:3: Address family of virtual server and real server 10.0.0.2 don't match - skipping real server.",
        ),
    ],
)
def test_ipv6_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_keepalived(text, "keepalived.conf")
    assert str(info.value) == message
