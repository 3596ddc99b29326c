"""vrrp_sync_group: members change state together (keepalived 2.2.7 vrrp_sync.c)."""

from __future__ import annotations

from dataclasses import replace

from pylvs.core import vrrpmsg
from pylvs.core.vrrp import (
    BACKUP,
    FAULT,
    MASTER,
    InstanceConfig,
    Log,
    Notify,
    Send,
    VRRPInstance,
)
from pylvs.core.vrrpgroup import SyncGroup
from pylvs.core.vrrpmsg import Advert

A_IP, B_IP = "10.78.0.1", "10.78.0.2"


def member(name: str, vrid: int, vip: str, priority: int = 150, **kw: object) -> VRRPInstance:
    cfg = InstanceConfig(name, vrid, A_IP, (vip,), priority=priority, version=3)
    return VRRPInstance(replace(cfg, **kw))  # type: ignore[arg-type]


def group() -> SyncGroup:
    return SyncGroup(
        "G1",
        [member("VI_1", 51, "10.78.0.100", interface="eth0"), member("VI_2", 52, "10.79.0.100")],
    )


def advert(vrid: int, vip: str, priority: int) -> bytes:
    message = vrrpmsg.encode(Advert(3, vrid, priority, 100, (vip,)), B_IP, "224.0.0.18")
    return vrrpmsg.build_ipv4(message, B_IP, "224.0.0.18", 1)


def run_until(g: SyncGroup, until: float) -> list[object]:
    out: list[object] = []
    while (d := g.deadline()) is not None and d <= until:
        out += g.tick(d)
    return out


def states(g: SyncGroup) -> list[str]:
    return [m.state for m in g.members]


def test_group_goes_master_together() -> None:
    g = group()
    out = g.start(0.0)
    assert states(g) == [BACKUP, BACKUP] and g.state == BACKUP
    assert Notify("G1", BACKUP, 0, group=True) in out
    out = run_until(g, 5.0)
    assert states(g) == [MASTER, MASTER] and g.state == MASTER
    assert Notify("G1", MASTER, 0, group=True) in out


def test_one_member_held_back_until_all_want_master() -> None:
    g = group()
    g.start(0.0)
    t = 0.0
    # VI_2's master keeps advertising; VI_1's does not: VI_1 must wait in BACKUP
    while t < 10.0:
        t += 1.0
        g.receive("VI_2", advert(52, "10.79.0.100", 200), t)
        run_until(g, t)
    assert states(g) == [BACKUP, BACKUP]
    assert g.members[0].wantstate == MASTER
    # VI_2's master dies: both go master
    run_until(g, 15.0)
    assert states(g) == [MASTER, MASTER]


def test_backup_of_one_member_takes_all_to_backup() -> None:
    g = group()
    g.start(0.0)
    run_until(g, 5.0)
    out = g.receive("VI_1", advert(51, "10.78.0.100", 200), 5.5)
    assert states(g) == [BACKUP, BACKUP] and g.state == BACKUP
    assert "VRRP_Group(G1) Syncing instances to BACKUP state" in [
        a.text for a in out if isinstance(a, Log)
    ]
    assert not any(isinstance(a, Send) for a in out)  # neither sends priority 0 to go backup


def test_fault_of_one_member_takes_all_to_fault_and_back() -> None:
    g = group()
    g.start(0.0)
    run_until(g, 5.0)
    out = g.set_track("VI_1", "eth0", False, 6.0)
    assert states(g) == [FAULT, FAULT] and g.state == FAULT
    assert [a.priority for a in out if isinstance(a, Send)] == [0, 0, 0]  # 2 + 1 (VI_2)
    assert Notify("G1", FAULT, 0, group=True) in out
    out = g.set_track("VI_1", "eth0", True, 7.0)
    assert states(g) == [BACKUP, BACKUP] and g.state == BACKUP
    run_until(g, 12.0)
    assert states(g) == [MASTER, MASTER]


def test_group_shutdown() -> None:
    g = group()
    g.start(0.0)
    run_until(g, 5.0)
    out = g.shutdown(6.0)
    assert [a.priority for a in out if isinstance(a, Send)] == [0, 0]
    assert Notify("G1", "STOP", 0, group=True) in out
