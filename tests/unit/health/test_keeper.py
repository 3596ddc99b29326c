"""ldirectord's table logic (pylvs.health.keeper) stepped by hand, over the real IPVS core.

Every expectation is what ldirectord 4.12.0 does with the same file and results (``ld_start``,
``service_set`` and the functions behind it), as ``ipvsadm -L -n`` would show it.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pylvs.config import parse
from pylvs.config.model import VirtualConfig
from pylvs.core.control import DestSpec, ServiceInfo, ServiceSpec
from pylvs.core.ipvs import IPVS
from pylvs.core.service import IPPROTO_TCP
from pylvs.health.keeper import Keeper, real_id

VIP = "203.0.113.10"


class Effects:
    def __init__(self) -> None:
        self.alerts: list[str] = []
        self.commands: list[str] = []

    def alert(self, virtual: VirtualConfig, subject: str) -> None:
        self.alerts.append(subject)

    def command(self, argv: str) -> None:
        self.commands.append(argv)


class CountingIPVS(IPVS):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_service(self, spec: ServiceSpec) -> ServiceInfo:
        self.reads += 1
        return super().get_service(spec)


def _cf(body: str, glob: str = "") -> str:
    return glob + f"virtual={VIP}:80\n" + body + "\tprotocol=tcp\n\tchecktype=connect\n"


REALS = "\treal=198.51.100.11:80 masq 2\n\treal=198.51.100.12:80 masq 1\n"


def _keeper(text: str, clock: list[float] | None = None) -> tuple[Keeper, CountingIPVS, Effects]:
    t = CountingIPVS()
    fx = Effects()
    now = clock if clock is not None else [1000.0]
    k = Keeper(t, fx, clock=lambda: now[0])
    k.start(parse(text, "ldirectord.cf"))
    return k, t, fx


def _table(t: IPVS) -> dict[str, int]:
    return {f"{d.addr}:{d.port}": d.weight for s in t.services() for d in s.dests}


def _rid(k: Keeper, addr: str) -> str:
    for rid, (v, i) in k.checks().items():
        if v.reals[i].dest.addr == addr:
            return rid
    raise KeyError(addr)


@pytest.fixture
def ldlog(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO, logger="pylvs.ldirectord")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "pylvs.ldirectord"]

    return lines


def test_start_adds_then_takes_down_every_real_not_already_up(ldlog: Any) -> None:
    k, t, _ = _keeper(_cf(REALS))
    assert _table(t) == {}  # quiescent=no (the code's default): deleted until a check passes
    assert ldlog() == [
        f"Added virtual server: {VIP}:80",
        f"Added real server: 198.51.100.11:80 ({VIP}:80) (Weight set to 2)",
        f"Deleted real server: 198.51.100.11:80 ({VIP}:80)",
        f"Added real server: 198.51.100.12:80 ({VIP}:80) (Weight set to 1)",
        f"Deleted real server: 198.51.100.12:80 ({VIP}:80)",
    ]
    k.result(_rid(k, "198.51.100.11"), True)
    assert _table(t) == {"198.51.100.11:80": 2}
    assert ldlog()[-2:] == [
        f"Resetting soft failure count: 198.51.100.11:80 (tcp:{VIP}:80)",
        f"Added real server: 198.51.100.11:80 ({VIP}:80) (Weight set to 2)",
    ]


def test_quiescent_down_is_weight_zero_and_up_restores(ldlog: Any) -> None:
    k, t, _ = _keeper(_cf(REALS + "\tquiescent=yes\n"))
    assert _table(t) == {"198.51.100.11:80": 0, "198.51.100.12:80": 0}
    rid = _rid(k, "198.51.100.12")
    k.result(rid, True)
    assert _table(t)["198.51.100.12:80"] == 1
    assert ldlog()[-1] == f"Restored real server: 198.51.100.12:80 ({VIP}:80) (Weight set to 1)"
    k.result(rid, False, "refused")
    assert _table(t)["198.51.100.12:80"] == 0
    assert ldlog()[-1] == (f"Quiescent real server: 198.51.100.12:80 ({VIP}:80) (Weight set to 0)")
    k.result(rid, False)  # already down: nothing more happens
    assert ldlog()[-1].startswith("Quiescent real server: 198.51.100.12:80")


def test_failurecount_soft_failures_then_down_and_success_resets(ldlog: Any) -> None:
    k, t, _ = _keeper(_cf(REALS + "\tfailurecount=3\n"))
    rid = _rid(k, "198.51.100.11")
    k.result(rid, True)
    k.result(rid, False)
    k.result(rid, False)
    assert _table(t) == {"198.51.100.11:80": 2}
    assert ldlog()[-2:] == [
        f"Soft failure real server: 198.51.100.11:80 (tcp:{VIP}:80) failure 1/3",
        f"Soft failure real server: 198.51.100.11:80 (tcp:{VIP}:80) failure 2/3",
    ]
    k.result(rid, True)
    assert ldlog()[-1] == f"Resetting soft failure count: 198.51.100.11:80 (tcp:{VIP}:80)"
    for _ in range(3):
        k.result(rid, False)
    assert _table(t) == {}
    assert ldlog()[-1] == f"Deleted real server: 198.51.100.11:80 ({VIP}:80)"


def test_rise_holds_a_recovering_server_back(ldlog: Any) -> None:
    k, t, _ = _keeper(_cf(REALS + "\trise=3\n"))
    rid = _rid(k, "198.51.100.11")
    k.result(rid, True)
    k.result(rid, True)
    assert _table(t) == {}
    assert ldlog()[-1].endswith("success 2/3")
    k.result(rid, False)  # a failure starts the count again
    k.result(rid, True)
    k.result(rid, True)
    assert _table(t) == {}
    k.result(rid, True)
    assert _table(t) == {"198.51.100.11:80": 2}


def test_fallback_only_while_no_real_is_up_and_fallbackcommand_once_per_state(
    ldlog: Any,
) -> None:
    glob = "fallback=127.0.0.1:80 gate\nfallbackcommand=/usr/local/bin/sorry\n"
    k, t, fx = _keeper(_cf(REALS, glob))
    assert _table(t) == {"127.0.0.1:80": 1}
    start, stop = (f"/usr/local/bin/sorry {s} {VIP}:80 tcp" for s in ("start", "stop"))
    # ld_start adds each real and takes it down again: the command follows every change.
    assert fx.commands == [start, stop, start, stop, start]
    fx.commands.clear()
    a, b = _rid(k, "198.51.100.11"), _rid(k, "198.51.100.12")
    k.result(a, True)
    assert _table(t) == {"198.51.100.11:80": 2}
    assert ldlog()[-1] == f"Deleted fallback server: 127.0.0.1:80 ({VIP}:80)"
    k.result(b, True)
    k.result(a, False)
    assert _table(t) == {"198.51.100.12:80": 1}
    k.result(b, False)
    assert _table(t) == {"127.0.0.1:80": 1}
    assert ldlog()[-1] == f"Added fallback server: 127.0.0.1:80 ({VIP}:80) (Weight set to 1)"
    assert fx.commands == [stop, start]  # once per state, not once per real


def test_fallback_is_deleted_even_with_quiescent() -> None:
    k, t, _ = _keeper(_cf(REALS + "\tquiescent=yes\n", "fallback=127.0.0.1:80\n"))
    assert _table(t) == {"198.51.100.11:80": 0, "198.51.100.12:80": 0, "127.0.0.1:80": 1}
    k.result(_rid(k, "198.51.100.11"), True)
    assert _table(t) == {"198.51.100.11:80": 2, "198.51.100.12:80": 0}


def test_readdquiescent_adds_a_missing_server_at_weight_zero() -> None:
    k, t, _ = _keeper(_cf(REALS + "\tquiescent=yes\n", "readdquiescent=yes\n"))
    assert _table(t) == {"198.51.100.11:80": 0, "198.51.100.12:80": 0}
    assert k.virtuals[0].real_status == set()


def test_reload_keeps_up_servers_up_and_down_servers_down(ldlog: Any) -> None:
    k, t, _ = _keeper(_cf(REALS))
    k.result(_rid(k, "198.51.100.11"), True)
    assert _table(t) == {"198.51.100.11:80": 2}
    k.start(parse(_cf(REALS.replace("masq 2", "masq 5")), "ldirectord.cf"))
    # .11 was up: kept up with the new weight; .12 was down: added and taken down again.
    assert _table(t) == {"198.51.100.11:80": 5}
    assert f"Changed virtual server: {VIP}:80" in ldlog()
    assert f"Restored real server: 198.51.100.11:80 ({VIP}:80) (Weight set to 5)" in ldlog()
    assert k.is_up(_rid(k, "198.51.100.11"))
    k.start(parse(f"virtual={VIP}:81\n\treal=198.51.100.13:81 masq\n\tchecktype=on\n", "x"))
    assert [s.port for s in t.services()] == [81]
    assert ldlog()[-1] == f"Purged virtual server (start): {VIP}:80"


def test_unknown_reals_of_a_managed_virtual_are_purged_at_start(ldlog: Any) -> None:
    t = IPVS()
    spec = ServiceSpec(protocol=IPPROTO_TCP, addr=VIP, port=80, scheduler="wrr")
    t.add_service(spec)
    t.add_dest(spec, DestSpec(addr="198.51.100.99", port=80, weight=1, fwd=0))
    t.add_dest(spec, DestSpec(addr="198.51.100.11", port=80, weight=2, fwd=0))
    k = Keeper(t, Effects())
    k.start(parse(_cf(REALS), "ldirectord.cf"))
    assert _table(t) == {"198.51.100.11:80": 2}  # already up in the table: kept up
    assert f"Purged real server (start): 198.51.100.99:80 ({VIP}:80)" in ldlog()


def test_a_real_in_two_virtuals_is_checked_once_and_changes_both() -> None:
    text = _cf(REALS) + f"virtual={VIP}:8080\n{REALS}\tprotocol=tcp\n\tchecktype=connect\n"
    k, t, _ = _keeper(text)
    assert len(k.checks()) == 2  # four reals, two distinct
    k.result(_rid(k, "198.51.100.11"), True)
    ports = sorted((s.port, [d.addr for d in s.dests]) for s in t.services())
    assert ports == [(80, ["198.51.100.11"]), (8080, ["198.51.100.11"])]


def test_maintenance_forces_down() -> None:
    k, t, _ = _keeper(_cf(REALS + "\tquiescent=yes\n"))
    rid = _rid(k, "198.51.100.11")
    k.result(rid, True)
    k.maintenance(rid)
    assert _table(t)["198.51.100.11:80"] == 0


def test_stop_with_and_without_cleanstop() -> None:
    k, t, _ = _keeper(_cf(REALS))
    k.result(_rid(k, "198.51.100.11"), True)
    k.stop()
    assert t.services() == []
    k, t, _ = _keeper(_cf(REALS + "\tcleanstop=no\n"))
    k.result(_rid(k, "198.51.100.11"), True)
    k.stop()
    assert _table(t) == {"198.51.100.11:80": 2}


def test_a_check_weight_sets_the_real_weight() -> None:
    k, t, _ = _keeper(_cf(REALS))
    rid = _rid(k, "198.51.100.11")
    k.result(rid, True, weight=7)
    assert _table(t) == {"198.51.100.11:80": 7}
    k.result(rid, True, weight=3)
    assert _table(t) == {"198.51.100.11:80": 3}


def test_email_alerts_and_resends_every_emailalertfreq(ldlog: Any) -> None:
    now = [1000.0]
    glob = "emailalert=ops@example.org\nemailalertfreq=60\n"
    k, _, fx = _keeper(_cf(REALS, glob), now)
    k.status = "running"
    rid = _rid(k, "198.51.100.11")
    k.result(rid, True)
    fx.alerts.clear()
    k.result(rid, False)
    assert fx.alerts == [f"Deleted real server: 198.51.100.11:80 ({VIP}:80)"]
    now[0] += 30
    k.resend_alerts()
    assert len(fx.alerts) == 1
    now[0] += 31
    k.resend_alerts()
    assert fx.alerts[-1] == f"Inaccessible real server: 198.51.100.11:80 ({VIP}:80)"
    k.result(rid, True)  # back: no more resends for it (.12, down since the start, goes on)
    fx.alerts.clear()
    now[0] += 120
    k.resend_alerts()
    assert fx.alerts == [f"Inaccessible real server: 198.51.100.12:80 ({VIP}:80)"]


def test_emailalertstatus_filters_by_daemon_status() -> None:
    glob = "emailalert=ops@example.org\nemailalertstatus=running\n"
    k, _, fx = _keeper(_cf(REALS, glob))
    assert fx.alerts == []  # the start's changes happen while 'starting'
    k.status = "running"
    k.result(_rid(k, "198.51.100.11"), True)
    assert len(fx.alerts) == 1


def test_real_id_is_ldirectords() -> None:
    cfg = parse(_cf('\treal=198.51.100.11:80 masq 2 "/a.html", "ok"\n'), "x")
    v = cfg.virtuals[0]
    assert real_id(v, 0) == r"connect:tcp:198.51.100.11:80:::2:masq:\/a\.html:ok"


def test_start_of_thousands_of_reals_reads_each_service_once() -> None:
    reals = "".join(f"\treal=10.{i >> 8}.{i & 255}.1:80 masq\n" for i in range(4096))
    _, t, _ = _keeper(_cf(reals + "\tquiescent=yes\n"))
    assert t.reads == 1
    assert len(t.services()[0].dests) == 4096
