"""IPv6 lab scenarios: the loader reads IPv6 LANs, addresses, gateways and VIPs, and refuses a
scenario that mixes the families, with an error naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from pylvs.lab.topology import LabConfigError, Scenario, lab_dir, load_scenario, parse_scenario

NAT6 = lab_dir() / "nat6.toml"


def _parse(text: str) -> Scenario:
    return parse_scenario(text, NAT6)


@pytest.mark.parametrize("name", ["nat6", "dr6", "tun6"])
def test_the_ipv6_scenarios_load(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.family == 6 and scenario.vip_prefixlen == 128
    assert scenario.vip == "2001:db8:2::100"
    assert scenario.vip_interface.ip == "2001:db8:2::2"
    reals = {a for n in scenario.by_role("realserver") for a in n.addresses}
    assert {d.addr for _spec, dests in scenario.services for d in dests} == reals
    assert all(n.gateway and ":" in n.gateway for n in scenario.by_role("realserver"))


def test_ipv4_scenarios_stay_ipv4() -> None:
    scenario = load_scenario("nat")
    assert (scenario.family, scenario.vip_prefixlen) == (4, 32)


def _nat6_with(old: str, new: str) -> str:
    text = NAT6.read_text()
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ('vip = "2001:db8:2::100"', 'vip = "192.0.2.100"', "vip 192.0.2.100 is IPv4 but the LANs"),
        ('subnet = "2001:db8:3::/64"', 'subnet = "203.0.113.0/24"', "is IPv4 but LAN 'outside'"),
        ('"2001:db8:1::10/64"', '"198.51.100.10/24"', "is IPv4 but LAN 'outside' is IPv6"),
        ('"2001:db8:1::10/64"', '"2001:db8:1::10"', "needs a prefix length (e.g. /24, /64)"),
        ('"2001:db8:1::10/64"', '"2001:db8:9::10/64"', "is not in LAN 'outside'"),
        ('"2001:db8:1::10/64"', '"2001:db8:1::zz/64"', "address: "),
        ('gateway = "2001:db8:1::1"', 'gateway = "2001:db8:7::1"', "not on any of the node's"),
        ('vip = "2001:db8:2::100"', 'vip = "2001:db8:2::10000"', "vip: "),
        ('vip = "2001:db8:2::100"', 'vip = "2001:db8:5::100"', "is not in a subnet of the active"),
    ],
)
def test_bad_ipv6_scenarios_are_refused_clearly(old: str, new: str, error: str) -> None:
    with pytest.raises(LabConfigError) as info:
        _parse(_nat6_with(old, new))
    assert str(info.value).startswith("nat6.toml: ")
    assert error in str(info.value)


def test_the_config_must_be_on_the_ipv6_vip(tmp_path: Path) -> None:
    (tmp_path / "nat6.pylvs.toml").write_text(
        (lab_dir() / "nat6.pylvs.toml").read_text().replace("2001:db8:2::100", "2001:db8:2::101")
    )
    with pytest.raises(LabConfigError, match=r"virtual 2001:db8:2::101:80 is not the vip"):
        parse_scenario(NAT6.read_text(), tmp_path / "nat6.toml")


def test_a_gateway_is_kept_in_canonical_form() -> None:
    scenario = _parse(_nat6_with('gateway = "2001:db8:1::1"', 'gateway = "2001:DB8:1:0::1"'))
    assert scenario.node("client1").gateway == "2001:db8:1::1"
