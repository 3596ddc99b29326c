"""The lab scenario loader: the shipped scenarios load, broken files fail with clear messages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pylvs.lab import show
from pylvs.lab.topology import LabConfigError, list_scenarios, load_scenario, parse_scenario

CONFIG = """
[[virtual]]
address = "192.0.2.100"
port = 80
protocol = "tcp"
scheduler = "rr"
real = [{ address = "192.0.2.11", port = 80, forward = "gate" }]
"""

GOOD = """
name = "mini"
method = "dr"
vip = "192.0.2.100"
config = "mini.pylvs.toml"

[[lan]]
name = "outside"
subnet = "198.51.100.0/24"

[[lan]]
name = "inside"
subnet = "192.0.2.0/24"

[[node]]
name = "client1"
role = "client"
interfaces = [{ lan = "outside", address = "198.51.100.10/24" }]
gateway = "198.51.100.1"

[[node]]
name = "router"
role = "router"
interfaces = [
    { lan = "outside", address = "198.51.100.1/24" },
    { lan = "inside", address = "192.0.2.1/24" },
]

[[node]]
name = "director1"
role = "director"
interfaces = [{ lan = "inside", address = "192.0.2.2/24" }]
gateway = "192.0.2.1"

[[node]]
name = "rs1"
role = "realserver"
interfaces = [{ lan = "inside", address = "192.0.2.11/24" }]
gateway = "192.0.2.1"
http = [80]
"""


def _parse(tmp_path: Path, text: str, config: str = CONFIG) -> object:
    (tmp_path / "mini.pylvs.toml").write_text(config)
    path = tmp_path / "mini.toml"
    path.write_text(text)
    return parse_scenario(text, path)


@pytest.mark.parametrize("name", ["dr", "nat", "tun", "farm", "farmka"])
def test_shipped_scenarios_load(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.active_director.role == "director"
    assert scenario.services, "every scenario configures pylvsd"
    assert len(scenario.by_role("realserver")) >= 3
    assert name in list_scenarios()


def test_farm_has_an_active_and_a_standby_director() -> None:
    farm = load_scenario("farm")
    directors = farm.by_role("director")
    assert [d.standby for d in directors] == [False, True]
    assert farm.vip_interface.name == "eth0"
    assert len(farm.by_role("realserver")) == 4


def test_good_minimal_scenario(tmp_path: Path) -> None:
    scenario = _parse(tmp_path, GOOD)
    assert scenario.node("rs1").http == (80,)  # type: ignore[attr-defined]
    assert scenario.owner_of("192.0.2.2")[0].name == "director1"  # type: ignore[attr-defined]


BROKEN = [
    (GOOD.replace('method = "dr"', 'method = "fast"'), "method 'fast' is not one of nat, dr, tun"),
    (GOOD.replace('role = "router"', 'role = "switch"'), "role 'switch' is not one of"),
    (
        GOOD.replace(
            'lan = "inside", address = "192.0.2.2/24"', 'lan = "dmz", address = "192.0.2.2/24"'
        ),
        "node 'director1': interfaces[0].lan 'dmz' is not defined",
    ),
    (GOOD.replace('"192.0.2.11/24"', '"203.0.113.11/24"'), "is not in LAN 'inside'"),
    (GOOD.replace('"192.0.2.11/24"', '"192.0.2.11"'), "needs a prefix length"),
    (GOOD.replace('"192.0.2.11/24"', '"192.0.2.2/24"'), "address 192.0.2.2 is on both"),
    (GOOD.replace('name = "rs1"', 'name = "client1"'), "node 'client1' is defined twice"),
    (GOOD.replace('name = "rs1"', 'name = "RealServer-One"'), "use a-z and digits"),
    (
        GOOD.replace('vip = "192.0.2.100"', 'vip = "203.0.113.5"'),
        "not in a subnet of the active director",
    ),
    (GOOD.replace('vip = "192.0.2.100"', 'vip = "300.1.1.1"'), "vip:"),
    (GOOD.replace("http = [80]", "http = [80000]"), "http: 80000 is not a port number"),
    (GOOD.replace("http = [80]", 'http = "80"'), "http must be list, not str"),
    (
        GOOD.replace('gateway = "192.0.2.1"\nhttp', 'gateway = "10.0.0.1"\nhttp'),
        "gateway 10.0.0.1 is not on any of the node's LANs",
    ),
    (
        GOOD.replace('role = "director"', 'role = "director"\nstandby = true'),
        "exactly one director must be active",
    ),
    (
        GOOD.replace('role = "client"', 'role = "client"\nstandby = true'),
        "only a director can be a standby",
    ),
    (GOOD.replace('name = "mini"', 'name = "mini"\ncolour = "blue"'), "unknown key 'colour'"),
    (GOOD.replace('config = "mini.pylvs.toml"', 'config = "missing.toml"'), "config:"),
    (GOOD + "[[node]\n", "not valid TOML"),
    (GOOD.replace('subnet = "192.0.2.0/24"', 'subnet = "198.51.100.128/25"'), "overlaps LAN"),
]


@pytest.mark.parametrize(("text", "message"), BROKEN)
def test_broken_scenarios_are_refused_with_a_clear_message(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(LabConfigError) as info:
        _parse(tmp_path, text)
    assert message in str(info.value)
    assert str(info.value).startswith("mini.toml: ")


def test_config_must_match_the_scenario(tmp_path: Path) -> None:
    with pytest.raises(LabConfigError, match=r"virtual 192\.0\.2\.99:80 is not the vip"):
        _parse(tmp_path, GOOD, CONFIG.replace('"192.0.2.100"', '"192.0.2.99"'))
    with pytest.raises(LabConfigError, match=r"real 192\.0\.2\.50 is not a realserver"):
        _parse(tmp_path, GOOD, CONFIG.replace('"192.0.2.11"', '"192.0.2.50"'))
    with pytest.raises(LabConfigError, match="does not use the scenario's method dr"):
        _parse(tmp_path, GOOD, CONFIG.replace('"gate"', '"masq"'))


def test_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(
        LabConfigError,
        match=r"no such scenario \(known: dr, dr6, farm, farmka, nat, nat6, tun, tun6\)",
    ):
        load_scenario("nosuch")


def test_topology_text_and_dot() -> None:
    farm = load_scenario("farm")
    text = show.topology_text(farm)
    assert "director1 (director, active): eth0 192.0.2.2 + VIP 192.0.2.100" in text
    assert "director2 (director, standby)" in text
    assert "-> 192.0.2.11:80 (rs1) Route weight 3" in text
    dot = show.to_dot(farm)
    assert dot.startswith('graph "farm" {')
    # Read top-down: clients above the outside LAN, the LAN above the router.
    assert '"node:client1" -- "lan:outside"' in dot
    assert '"lan:outside" -- "node:router"' in dot
    assert '"lan:inside" -- "node:rs4"' in dot
    assert 'style="filled,dashed"' in dot  # the standby


def test_render_refuses_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(show.ShowError, match=r"use a \.svg, \.png or \.pdf"):
        show.render(load_scenario("dr"), tmp_path / "x.gif")


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz dot not installed")
def test_render_svg(tmp_path: Path) -> None:
    out = tmp_path / "farm.svg"
    show.render(load_scenario("farm"), out)
    assert "<svg" in out.read_text()


# -- the heartbeat key ---------------------------------------------------------------------

HA_SCENARIO = (
    GOOD.replace('config = "mini.pylvs.toml"', 'config = "mini.pylvs.toml"\nheartbeat = "mini.ha"')
    + """
[[node]]
name = "director2"
role = "director"
standby = true
interfaces = [{ lan = "inside", address = "192.0.2.3/24" }]
gateway = "192.0.2.1"
"""
)

HA_CF = """keepalive 100ms
deadtime 500ms
initdead 2
udpport 694
ucast eth0 192.0.2.2
ucast eth0 192.0.2.3
auto_failback on
node director1
node director2
crm no
"""
AUTHKEYS = "auth 1\n1 sha1 secret\n"
HARESOURCES = "director1 IPaddr2::192.0.2.100/24/eth0 LVSSyncDaemonSwap::master\n"


def _parse_ha(
    tmp_path: Path,
    text: str = HA_SCENARIO,
    ha_cf: str = HA_CF,
    authkeys: str = AUTHKEYS,
    haresources: str | None = HARESOURCES,
) -> object:
    ha = tmp_path / "mini.ha"
    ha.mkdir()
    (ha / "ha.cf").write_text(ha_cf)
    (ha / "authkeys").write_text(authkeys)  # mode 644: the lab's copy gets 600, not this file
    if haresources is not None:
        (ha / "haresources").write_text(haresources)
    return _parse(tmp_path, text)


def test_farm_is_a_heartbeat_cluster_with_its_own_link() -> None:
    farm = load_scenario("farm")
    assert farm.heartbeat is not None and farm.heartbeat.name == "farm.ha"
    assert sorted(p.name for p in farm.heartbeat.iterdir()) == ["authkeys", "ha.cf", "haresources"]
    assert farm.auto_failback == "on"
    assert farm.lan("hb").subnet.exploded == "10.255.0.0/24"
    for director in farm.by_role("director"):
        assert [(i.name, i.lan) for i in director.interfaces] == [
            ("eth0", "inside"),
            ("eth1", "hb"),
        ]
        iface = farm.vip_interface_of(director)
        assert iface is not None and iface.name == "eth0"
    text = show.topology_text(farm)
    assert "heartbeat: farm.ha/ (ha.cf, authkeys, haresources)" in text
    assert "auto_failback on" in text
    assert "pylvs lab fail director1" in show.hints(farm, "lvs-")


def test_the_other_scenarios_have_no_heartbeat() -> None:
    for name in ("dr", "nat", "tun"):
        assert load_scenario(name).heartbeat is None


def test_a_good_heartbeat_directory(tmp_path: Path) -> None:
    scenario = _parse_ha(tmp_path)
    assert scenario.heartbeat == tmp_path / "mini.ha"  # type: ignore[attr-defined]
    assert scenario.auto_failback == "on"  # type: ignore[attr-defined]


HA_BROKEN = [
    ({"haresources": None}, "heartbeat mini.ha/haresources: No such file or directory"),
    (
        {"ha_cf": HA_CF.replace("node director2\n", "node director3\n")},
        "Current node [director2] not in configuration!",
    ),
    (
        {"ha_cf": HA_CF + "node director3\n"},
        "nodes director1 director2 director3 are not the directors director1 director2",
    ),
    ({"ha_cf": HA_CF.replace("deadtime 500ms", "deadtime 200ms")}, "Dead time [200] is too small"),
    (
        {"ha_cf": HA_CF.replace("ucast eth0 192.0.2.3", "ucast eth0 192.0.2.11")},
        "ucast eth0 192.0.2.11 is not a director's address on its eth0",
    ),
    (
        {"ha_cf": HA_CF.replace("ucast eth0 192.0.2.3", "ucast eth1 192.0.2.3")},
        "ucast eth1 192.0.2.3 is not a director's address on its eth1",
    ),
    ({"authkeys": "auth 2\n1 sha1 secret\n"}, "Auth Key [2] not found"),
    (
        {"haresources": HARESOURCES.replace("director1", "director2")},
        "the vip's group prefers director2, but the active (not standby) director is director1",
    ),
    (
        {"haresources": HARESOURCES.replace("192.0.2.100", "192.0.2.99")},
        "one resource group must hold the vip 192.0.2.100, found 0",
    ),
    (
        {"haresources": HARESOURCES.replace("/eth0", "/eth1")},
        "does not fit director1, whose interface on the vip's LAN is eth0",
    ),
    ({"haresources": "nodex IPaddr2::192.0.2.100\n"}, "Bad nodename"),
]


@pytest.mark.parametrize(("files", "message"), HA_BROKEN)
def test_broken_heartbeat_directories_are_refused(
    tmp_path: Path, files: dict[str, str | None], message: str
) -> None:
    with pytest.raises(LabConfigError) as info:
        _parse_ha(tmp_path, **files)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert str(info.value).startswith("mini.toml: heartbeat ")


def test_heartbeat_must_be_a_string(tmp_path: Path) -> None:
    with pytest.raises(LabConfigError, match="heartbeat must be str, not int"):
        _parse_ha(tmp_path, HA_SCENARIO.replace('heartbeat = "mini.ha"', "heartbeat = 1"))
