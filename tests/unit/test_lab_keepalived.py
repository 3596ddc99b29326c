"""Lab scenarios whose directors run keepalived.conf files (``keepalived = "DIR"``): the shipped
farmka loads, and directories that do not fit the scenario fail with clear messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pylvs.lab import show
from pylvs.lab.runner import DirectorView, _fill_vrrp, _settled
from pylvs.lab.topology import LabConfigError, load_scenario, parse_scenario

SCENARIO = """
name = "mini"
method = "dr"
vip = "192.0.2.100"
keepalived = "mini.keepalived"

[[lan]]
name = "outside"
subnet = "198.51.100.0/24"

[[lan]]
name = "inside"
subnet = "192.0.2.0/24"

[[lan]]
name = "sync"
subnet = "10.255.0.0/24"

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
interfaces = [
    { lan = "inside", address = "192.0.2.2/24" },
    { lan = "sync", address = "10.255.0.2/24" },
]

[[node]]
name = "director2"
role = "director"
standby = true
interfaces = [
    { lan = "inside", address = "192.0.2.3/24" },
    { lan = "sync", address = "10.255.0.3/24" },
]

[[node]]
name = "rs1"
role = "realserver"
interfaces = [{ lan = "inside", address = "192.0.2.11/24" }]
gateway = "192.0.2.1"
http = [80]
"""


def keepalived_conf(
    priority: int,
    *,
    interface: str = "eth0",
    vip: str = "192.0.2.100/32 dev eth0",
    vrid: int = 51,
    sync: str = "lvs_sync_daemon eth1 VI_1",
    real: str = "192.0.2.11",
    lb_kind: str = "DR",
    weight: int = 1,
    extra: str = "",
) -> str:
    return f"""! a director of the mini lab
global_defs {{
    vrrp_version 3
    {sync}
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface {interface}
    virtual_router_id {vrid}
    priority {priority}
    advert_int 0.5
    {extra}
    virtual_ipaddress {{
        {vip}
    }}
}}
virtual_server 192.0.2.100 80 {{
    protocol TCP
    lb_algo wlc
    lb_kind {lb_kind}
    real_server {real} 80 {{
        weight {weight}
        TCP_CHECK {{
            connect_timeout 1
        }}
    }}
}}
"""


def write_lab(
    tmp_path: Path, scenario: str = SCENARIO, d1: str | None = None, d2: str | None = None
) -> Path:
    ka = tmp_path / "mini.keepalived"
    ka.mkdir(exist_ok=True)
    (ka / "director1.conf").write_text(keepalived_conf(150) if d1 is None else d1)
    (ka / "director2.conf").write_text(keepalived_conf(100) if d2 is None else d2)
    path = tmp_path / "mini.toml"
    path.write_text(scenario)
    return path


def test_farmka_is_a_vrrp_pair_with_connection_sync() -> None:
    scenario = load_scenario("farmka")
    assert scenario.keepalived is not None and scenario.keepalived.name == "farmka.keepalived"
    assert scenario.heartbeat is None and scenario.vip_by_ha
    assert {n: p.name for n, p in scenario.configs.items()} == {
        "director1": "director1.conf",
        "director2": "director2.conf",
    }
    assert scenario.config_of(scenario.node("director2")).name == "director2.conf"
    vrrp = scenario.vrrp
    assert vrrp is not None
    assert (vrrp.instance, vrrp.vrid, vrrp.version, vrrp.advert_int) == ("VI_1", 51, 3, 0.5)
    assert vrrp.priorities == {"director1": 150, "director2": 100}
    # lvs_sync_daemon eth1 VI_1 without `id`: keepalived uses the VRID as syncid.
    assert (vrrp.sync_interface, vrrp.syncid, vrrp.preempt) == ("eth1", 51, True)
    assert scenario.active_director.name == "director1"
    ((spec, dests),) = scenario.services
    assert (spec.addr, spec.port, spec.scheduler, spec.persistent) == (
        "192.0.2.100", 80, "wlc", False,
    )  # fmt: skip
    assert [d.addr for d in dests] == ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
    assert [n.name for n in scenario.by_role("realserver")] == ["rs1", "rs2", "rs3"]


def test_farmka_text_names_the_keepalived_files() -> None:
    scenario = load_scenario("farmka")
    text = show.topology_text(scenario)
    assert "keepalived: farmka.keepalived/ (director1.conf, director2.conf)" in text
    assert "vrrp_instance VI_1, virtual_router_id 51, VRRPv3, advert_int 0.5 s" in text
    assert "lvs_sync_daemon on eth1 (syncid 51)" in text
    assert "director1 (director, VRRP priority 150): eth0 192.0.2.2 + VIP" in text
    assert "director2 takes the VIP on eth0 when it becomes MASTER" in text
    assert "pylvs vrrp --netns lvs-director1 status" in show.hints(scenario, "lvs-")
    assert "(VRRP MASTER)" in show.to_dot(scenario)


def test_a_good_keepalived_directory(tmp_path: Path) -> None:
    d1 = keepalived_conf(200, sync="lvs_sync_daemon eth1 VI_1 id 7")
    d2 = keepalived_conf(100, sync="lvs_sync_daemon eth1 VI_1 id 7", extra="nopreempt")
    scenario = parse_scenario(SCENARIO, write_lab(tmp_path, d1=d1, d2=d2))
    assert scenario.vrrp is not None
    assert scenario.vrrp.syncid == 7 and scenario.vrrp.priorities["director1"] == 200
    # nopreempt on the backup does not matter: the preferred node preempts.
    assert scenario.vrrp.preempt
    assert scenario.config_path == tmp_path / "mini.keepalived" / "director1.conf"


def test_no_sync_daemon_and_nopreempt(tmp_path: Path) -> None:
    d1 = keepalived_conf(150, sync="", extra="nopreempt")
    d2 = keepalived_conf(100, sync="")
    scenario = parse_scenario(SCENARIO, write_lab(tmp_path, d1=d1, d2=d2))
    assert scenario.vrrp is not None
    assert scenario.vrrp.sync_interface is None and scenario.vrrp.syncid is None
    assert not scenario.vrrp.preempt
    assert "no lvs_sync_daemon" in show.topology_text(scenario)


Mutation = Callable[[Path], None]


def _conf(name: str, text: str) -> Mutation:
    def mutate(tmp_path: Path) -> None:
        (tmp_path / "mini.keepalived" / name).write_text(text)

    return mutate


def _remove(name: str) -> Mutation:
    def mutate(tmp_path: Path) -> None:
        (tmp_path / "mini.keepalived" / name).unlink()

    return mutate


def _scenario(old: str, new: str) -> Mutation:
    def mutate(tmp_path: Path) -> None:
        path = tmp_path / "mini.toml"
        path.write_text(path.read_text().replace(old, new))

    return mutate


BROKEN: list[tuple[str, Mutation, str]] = [
    (
        "missing file",
        _remove("director2.conf"),
        "keepalived mini.keepalived/director2.conf: No such file or directory (every director",
    ),
    (
        "not a keepalived.conf",
        _conf("director1.conf", "[[virtual]]\naddress = '192.0.2.100'\n"),
        "mini.keepalived/director1.conf: not a keepalived.conf",
    ),
    (
        "syntax error",
        _conf("director1.conf", keepalived_conf(150).replace("virtual_router_id 51", "")),
        "mini.keepalived/director1.conf",
    ),
    (
        "interface not on the director",
        _conf("director1.conf", keepalived_conf(150, interface="eth3")),
        "vrrp_instance VI_1: interface eth3 is not an interface of director1 (eth0, eth1)",
    ),
    (
        "vip on the wrong interface",
        _conf("director2.conf", keepalived_conf(100, vip="192.0.2.100/32 dev eth1")),
        "the vip would go on eth1, but director2's interface on the vip's LAN is eth0",
    ),
    (
        "no instance holds the vip",
        _conf("director2.conf", keepalived_conf(100, vip="192.0.2.200/32 dev eth0")),
        "director2.conf: one vrrp_instance must have the vip 192.0.2.100 in its "
        "virtual_ipaddress, found 0",
    ),
    (
        "the standby has the higher priority",
        _conf("director2.conf", keepalived_conf(200)),
        "the active (not standby) director director1 must have the highest priority in VI_1, "
        "alone (priorities: director1 150, director2 200)",
    ),
    (
        "equal priorities",
        _conf("director2.conf", keepalived_conf(150)),
        "must have the highest priority in VI_1, alone",
    ),
    (
        "another virtual router",
        _conf("director2.conf", keepalived_conf(100, vrid=52)),
        "virtual_router_id is 51 in director1.conf but 52 in director2.conf",
    ),
    (
        "sync daemon on a missing interface",
        _conf("director1.conf", keepalived_conf(150, sync="lvs_sync_daemon eth9 VI_1")),
        "lvs_sync_daemon interface eth9 is not an interface of director1",
    ),
    (
        "sync daemon on one director only",
        _conf("director2.conf", keepalived_conf(100, sync="")),
        "lvs_sync_daemon interface is eth1 in director1.conf but none in director2.conf",
    ),
    (
        "different virtual servers",
        _conf("director2.conf", keepalived_conf(100, weight=3)),
        "director2.conf: its virtual servers are not those of director1.conf",
    ),
    (
        "a real that is no real server",
        _conf("director1.conf", keepalived_conf(150, real="192.0.2.99")),
        "director1.conf: real 192.0.2.99 is not a realserver node's address",
    ),
    (
        "another forwarding method",
        _conf("director1.conf", keepalived_conf(150, lb_kind="NAT")),
        "does not use the scenario's method dr",
    ),
    (
        "unicast peer that is no other director",
        _conf("director1.conf", keepalived_conf(150, extra="unicast_peer {\n192.0.2.2\n}")),
        "unicast_peer 192.0.2.2 is not another director's address",
    ),
    (
        "config and keepalived",
        _scenario('keepalived = "mini.keepalived"', 'keepalived = "mini.keepalived"\nconfig = "x"'),
        "config and keepalived exclude each other",
    ),
    (
        "heartbeat and keepalived",
        _scenario(
            'keepalived = "mini.keepalived"', 'keepalived = "mini.keepalived"\nheartbeat = "h"'
        ),
        "heartbeat and keepalived exclude each other",
    ),
    (
        "no such directory",
        _scenario('keepalived = "mini.keepalived"', 'keepalived = "nowhere"'),
        "keepalived nowhere: no such directory beside mini.toml",
    ),
    (
        "not a string",
        _scenario('keepalived = "mini.keepalived"', "keepalived = 1"),
        "keepalived must be str, not int",
    ),
]


@pytest.mark.parametrize(("mutate", "message"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_keepalived_directories_are_refused(
    tmp_path: Path, mutate: Mutation, message: str
) -> None:
    path = write_lab(tmp_path)
    mutate(tmp_path)
    with pytest.raises(LabConfigError) as info:
        parse_scenario(path.read_text(), path)
    assert str(info.value).startswith("mini.toml: "), info.value
    assert message in str(info.value), info.value


def _view(
    node: str, state: str, vip: bool, sync: str | None, master: str = "192.0.2.2"
) -> DirectorView:
    daemons = [(sync, "eth1", 51)] if sync else []
    return DirectorView(
        node, answering=True, vrrp_state=state, master=master, holds_vip=vip, daemons=daemons
    )


def test_a_vrrp_cluster_is_settled_when_the_sync_daemons_follow_the_master() -> None:
    scenario = load_scenario("farmka")
    settled = _settled(scenario)
    to_director1 = _settled(scenario, "director1")
    good = [
        _view("director1", "MASTER", True, "master"),
        _view("director2", "BACKUP", False, "backup"),
    ]
    assert settled(good) and to_director1(good)
    swapped = [
        _view("director1", "BACKUP", False, "backup", master="192.0.2.3"),
        _view("director2", "MASTER", True, "master"),
    ]
    assert settled(swapped) and not to_director1(swapped)
    cases = {
        "two masters": [good[0], _view("director2", "MASTER", True, "master")],
        "master without the VIP": [_view("director1", "MASTER", False, "master"), good[1]],
        "backup still holding it": [good[0], _view("director2", "BACKUP", True, "backup")],
        "sync daemon not swapped": [_view("director1", "MASTER", True, "backup"), good[1]],
        "no sync daemon": [good[0], _view("director2", "BACKUP", False, None)],
        "backup that heard nothing yet": [
            good[0],
            _view("director2", "BACKUP", False, "backup", master=""),
        ],
        "a FAULT": [good[0], _view("director2", "FAULT", False, "backup")],
    }
    for what, views in cases.items():
        assert not settled(views), what


def test_vrrp_status_answers_fill_the_view() -> None:
    view = DirectorView("director2", answering=True)
    status = {
        "instances": {
            "VI_1": {"state": "BACKUP", "priority": 100, "effective_priority": 90,
                     "master": "192.0.2.2"},
        }
    }  # fmt: skip
    _fill_vrrp(view, status, "VI_1")
    assert (view.vrrp_state, view.priority, view.effective_priority, view.master) == (
        "BACKUP", 100, 90, "192.0.2.2",
    )  # fmt: skip
    assert "VRRP BACKUP (priority 100, effective 90, master 192.0.2.2)" in view.describe()
    missing = DirectorView("director2", answering=True)
    _fill_vrrp(missing, {"instances": {}}, "VI_1")
    assert missing.describe() == "director2: pylvsd runs no vrrp_instance VI_1"
