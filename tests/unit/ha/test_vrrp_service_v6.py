"""IPv6 vrrp_instances in pylvs.ha.vrrp: keepalived.conf -> InstanceConfig (family, group,
keepalived's family rules) and the virtual addresses' placement."""

from __future__ import annotations

import logging

import pytest

from pylvs.config.keepalived import parse_keepalived, parse_keepalived_model
from pylvs.ha.vrrp import Placement, VRRPConfigError, instance_config, placements

LL = "fe80::1"


def _conf(vips: str, extra: str = "", top: str = "") -> str:
    return (
        top
        + "vrrp_instance V6 {\n interface eth0\n virtual_router_id 9\n priority 150\n"
        + extra
        + " virtual_ipaddress {\n"
        + vips
        + " }\n}\n"
    )


def test_ipv6_instance_is_v3_on_ff02_12() -> None:
    ka = parse_keepalived_model(_conf("  fe80::9/64\n  2001:db8::100/64\n"))
    cfg = instance_config(ka.vrrp_instances[0], ka, LL)
    assert (cfg.family, cfg.vips, cfg.mcast_group, cfg.src) == (
        6, ("fe80::9", "2001:db8::100"), "", LL)  # fmt: skip


def test_vrrp_mcast_group6_is_used() -> None:
    top = "global_defs {\n vrrp_mcast_group6 ff02::99\n}\n"
    ka = parse_keepalived_model(_conf("  fe80::9/64\n", top=top))
    assert instance_config(ka.vrrp_instances[0], ka, LL).mcast_group == "ff02::99"


def test_first_vip_not_link_local_is_logged_or_refused_in_strict_mode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ka = parse_keepalived_model(_conf("  2001:db8::100/64\n"))
    with caplog.at_level(logging.INFO, logger="pylvs.vrrp"):
        instance_config(ka.vrrp_instances[0], ka, LL)
    assert "(V6) the first IPv6 VIP address should be link local" in caplog.text
    strict = parse_keepalived_model(
        _conf("  2001:db8::100/64\n", top="global_defs {\n vrrp_strict\n}\n")
    )
    with pytest.raises(VRRPConfigError, match="must be link local"):
        instance_config(strict.vrrp_instances[0], strict, LL)


def test_mixed_families_are_refused() -> None:
    ka = parse_keepalived_model(_conf("  fe80::9/64\n", " unicast_src_ip 10.0.0.1\n"))
    with pytest.raises(VRRPConfigError, match="not an IPv6 address"):
        instance_config(ka.vrrp_instances[0], ka, LL)


def test_ipv6_placement_default_prefix_128_and_no_broadcast() -> None:
    ka = parse_keepalived_model(_conf("  2001:db8::100\n  2001:db8::101/64 brd + dev eth1\n"))
    assert placements(ka.vrrp_instances[0], "eth0") == (
        Placement("2001:db8::100", 128, "eth0"),
        Placement("2001:db8::101", 64, "eth1"),
    )


def test_ipv6_instances_are_no_longer_listed_as_not_run() -> None:
    cfg = parse_keepalived(_conf("  fe80::9/64\n  2001:db8::100/64\n"))
    assert not [n for n in cfg.not_run if "IPv6" in n]
