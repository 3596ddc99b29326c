"""keepalived's checker logic (pylvs.health.kakeeper) stepped by hand over the real IPVS core.

Each expectation is what keepalived 2.2.7's ipwrapper.c does with the same file and results
(update_svr_checker_state, perform_svr_state, update_quorum_state, clear_diff_services), as
``ipvsadm -L -n`` would show it.
"""

from __future__ import annotations

import logging

import pytest

from pylvs.config.keepalived import parse_keepalived
from pylvs.core.ipvs import IPVS
from pylvs.core.service import FwdMethod
from pylvs.health.kakeeper import CheckerState, KaKeeper

VIP = "10.0.0.100"
R1, R2, SS = "10.0.0.1", "10.0.0.2", "10.0.0.9"


class Effects:
    def __init__(self) -> None:
        self.scripts: list[str] = []

    def script(self, command: str, wait: float | None = None) -> None:
        self.scripts.append(command)


def _conf(vs_extra: str = "", r1: str = "", r2: str = "", checks1: str = "", reals: int = 2) -> str:
    text = f"virtual_server {VIP} 80 {{\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n{vs_extra}"
    text += f"  real_server {R1} 80 {{\n    weight 2\n{r1}    TCP_CHECK {{\n    }}\n{checks1}  }}\n"
    if reals > 1:
        text += f"  real_server {R2} 80 {{\n    weight 1\n{r2}    TCP_CHECK {{\n    }}\n  }}\n"
    return text + "}\n"


def _keeper(text: str) -> tuple[KaKeeper, IPVS, Effects]:
    table, fx = IPVS(), Effects()
    k = KaKeeper(table, fx)
    k.start(parse_keepalived(text, "keepalived.conf"))
    return k, table, fx


def _dests(table: IPVS) -> dict[str, int]:
    """The dests of the (only) service, address -> weight."""
    (svc,) = table.services()
    return {d.addr: d.weight for d in svc.dests}


def _ck(k: KaKeeper, addr: str, n: int = 0) -> CheckerState:
    return next(rs for _, rs in k.reals() if rs.model.addr == addr).checkers[n]


def test_all_up_at_start_then_a_failure_removes_the_real(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    k, table, _ = _keeper(_conf())
    assert _dests(table) == {R1: 2, R2: 1}
    # First run: one failure is enough (retry_it starts at retry).
    assert k.result(_ck(k, R1), False) == 60.0
    assert _dests(table) == {R2: 1}
    assert "TCP_CHECK on service [10.0.0.1]:tcp:80 failed." in caplog.text
    assert "Removing service [10.0.0.1]:tcp:80 from VS [10.0.0.100]:tcp:80" in caplog.text
    k.result(_ck(k, R1), True)
    assert _dests(table) == {R1: 2, R2: 1}
    assert "TCP connection to [10.0.0.1]:tcp:80 success." in caplog.text
    assert "Adding service [10.0.0.1]:tcp:80 to VS [10.0.0.100]:tcp:80" in caplog.text


def test_retry_after_a_success_uses_delay_before_retry() -> None:
    k, table, _ = _keeper(_conf("  retry 2\n  delay_before_retry 4\n"))
    ck = _ck(k, R1)
    k.result(ck, True)
    assert k.result(ck, False) == 4.0  # retry 1 of 2
    assert k.result(ck, False) == 4.0  # retry 2 of 2
    assert _dests(table) == {R1: 2, R2: 1}
    assert k.result(ck, False) == 60.0
    assert _dests(table) == {R2: 1}


def test_a_real_is_alive_only_while_all_its_checkers_are_up() -> None:
    k, table, _ = _keeper(
        _conf(checks1="    HTTP_GET {\n      url {\n        path /\n      }\n    }\n")
    )
    tcp, http = _ck(k, R1, 0), _ck(k, R1, 1)
    k.result(tcp, False)
    k.result(http, False)
    assert _dests(table) == {R2: 1}
    k.result(tcp, True)
    assert _dests(table) == {R2: 1}  # the HTTP checker still fails
    # check_http.c epilog: the failed url passing only clears failed_url; the next full pass
    # of every url brings the checker up.
    k.result(http, True)
    assert _dests(table) == {R2: 1}
    k.result(http, True)
    assert _dests(table) == {R1: 2, R2: 1}


def test_inhibit_on_failure_sets_weight_zero(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    k, table, _ = _keeper(_conf(r1="    inhibit_on_failure\n"))
    k.result(_ck(k, R1), False)
    assert _dests(table) == {R1: 0, R2: 1}
    assert "Disabling service [10.0.0.1]:tcp:80 of VS [10.0.0.100]:tcp:80" in caplog.text
    k.result(_ck(k, R1), True)
    assert _dests(table) == {R1: 2, R2: 1}
    assert "Enabling service [10.0.0.1]:tcp:80 of VS [10.0.0.100]:tcp:80" in caplog.text


def test_alpha_starts_down_until_the_first_success() -> None:
    k, table, fx = _keeper(_conf("  alpha\n", r1="    notify_down /bin/down1\n"))
    assert table.services()[0].dests == []  # nothing is added before a first success
    k.result(_ck(k, R2), True)
    assert _dests(table) == {R2: 1}
    k.result(_ck(k, R1), False)  # alpha: the first failure runs the down notifier
    assert fx.scripts == ["/bin/down1"]
    k.result(_ck(k, R1), True)
    assert _dests(table) == {R1: 2, R2: 1}


def test_alpha_with_inhibit_adds_dead_reals_with_weight_zero() -> None:
    _, table, _ = _keeper(_conf("  alpha\n  inhibit_on_failure\n"))
    assert _dests(table) == {R1: 0, R2: 0}


def test_notify_up_and_down_scripts() -> None:
    k, _, fx = _keeper(_conf(r1="    notify_up /bin/up1\n    notify_down /bin/down1\n"))
    k.result(_ck(k, R1), True)
    assert fx.scripts == []  # already up: no transition
    k.result(_ck(k, R1), False)  # after a success, retry 1 (the default) applies
    assert fx.scripts == []
    k.result(_ck(k, R1), False)
    k.result(_ck(k, R1), True)
    assert fx.scripts == ["/bin/down1", "/bin/up1"]


def test_quorum_loss_adds_the_sorry_server_and_gain_removes_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    extra = (
        f"  quorum 2\n  hysteresis 1\n  sorry_server {SS} 8080\n"
        "  quorum_up /bin/qup\n  quorum_down /bin/qdown\n"
    )
    k, table, fx = _keeper(_conf(extra))
    assert fx.scripts == ["/bin/qup"]  # "Gained quorum" at start: 3 >= 2+1
    assert "Gained quorum 2+1=3 <= 3 for VS [10.0.0.100]:tcp:80" in caplog.text
    k.result(_ck(k, R2), False)  # 2 left: above 2-1=1, still up (hysteresis)
    assert _dests(table) == {R1: 2}
    k.result(_ck(k, R1), False)  # 0: lost
    assert _dests(table) == {SS: 1}
    assert "Lost quorum 2-1=1 > 0 for VS [10.0.0.100]:tcp:80" in caplog.text
    assert "Adding sorry server [10.0.0.9]:tcp:8080 to VS [10.0.0.100]:tcp:80" in caplog.text
    assert fx.scripts == ["/bin/qup", "/bin/qdown"]
    k.result(_ck(k, R1), True)  # 2 < 2+1: not yet gained; R1 waits outside the pool
    assert _dests(table) == {SS: 1}
    k.result(_ck(k, R2), True)  # 3: gained, the alive reals come back
    assert _dests(table) == {R1: 2, R2: 1}
    assert "Removing sorry server [10.0.0.9]:tcp:8080 from VS [10.0.0.100]:tcp:80" in caplog.text
    assert fx.scripts[-1] == "/bin/qup"


def test_sorry_server_inhibit_stays_with_weight_zero() -> None:
    k, table, _ = _keeper(_conf(f"  sorry_server {SS} 80\n  sorry_server_inhibit\n"))
    assert _dests(table) == {R1: 2, R2: 1, SS: 0}
    k.result(_ck(k, R1), False)
    k.result(_ck(k, R2), False)
    assert _dests(table) == {SS: 1}
    k.result(_ck(k, R2), True)
    assert _dests(table) == {R2: 1, SS: 0}


def test_alpha_with_sorry_server_starts_on_the_sorry_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    _, table, _ = _keeper(_conf(f"  alpha\n  sorry_server {SS} 80\n"))
    assert _dests(table) == {SS: 1}
    assert "Starting with quorum down 1-0=1 > 0 for VS [10.0.0.100]:tcp:80" in caplog.text


def test_misc_dynamic_exit_code_sets_the_weight(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    text = (
        f"virtual_server {VIP} 80 {{\n  protocol TCP\n  real_server {R1} 80 {{\n    weight 5\n"
        "    MISC_CHECK {\n      misc_path /bin/check\n      misc_dynamic\n    }\n  }\n}\n"
    )
    k, table, _ = _keeper(text)
    ck = _ck(k, R1)
    k.result(ck, True, exit_code=12)
    assert _dests(table) == {R1: 10}
    assert "Changing weight from 5 to 10 for active service [10.0.0.1]:tcp:80" in caplog.text
    k.result(ck, True, exit_code=0)  # 0: the configured weight
    assert _dests(table) == {R1: 5}
    k.result(ck, True, exit_code=2)  # weight 0, still alive
    assert _dests(table) == {R1: 0}
    k.result(ck, False, exit_code=1)  # retry 0 for MISC_CHECK: down at once
    assert table.services()[0].dests == []
    k.result(ck, True, exit_code=7)
    assert _dests(table) == {R1: 5}


def test_fwmark_and_group_services_carry_the_reals() -> None:
    text = (
        "virtual_server_group G {\n  10.0.0.100 80\n  10.0.0.101 80\n  fwmark 7\n}\n"
        "virtual_server group G {\n  protocol TCP\n  lb_kind DR\n"
        f"  real_server {R1} 80 {{\n    TCP_CHECK {{\n    }}\n  }}\n}}\n"
        f"virtual_server fwmark 9 {{\n  lb_kind DR\n  real_server {R2} {{\n    PING_CHECK {{\n"
        "    }\n  }\n}\n"
    )
    k, table, _ = _keeper(text)
    assert sorted((s.fwmark, s.addr, [d.addr for d in s.dests]) for s in table.services()) == [
        (0, "10.0.0.100", [R1]),
        (0, "10.0.0.101", [R1]),
        (7, "", [R1]),
        (9, "", [R2]),
    ]
    k.result(_ck(k, R1), False)
    assert sum(len(s.dests) for s in table.services()) == 1
    k.result(_ck(k, R2), False)
    assert sum(len(s.dests) for s in table.services()) == 0


def test_reload_keeps_alive_states_and_applies_weight_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    k, table, _ = _keeper(_conf())
    k.result(_ck(k, R2), False)
    assert _dests(table) == {R1: 2}
    caplog.clear()
    k.start(parse_keepalived(_conf().replace("weight 2", "weight 7"), "keepalived.conf"))
    assert _dests(table) == {R1: 7}  # R2 still down: not re-added on reload
    assert "Changing weight from 2 to 7 for active service [10.0.0.1]:tcp:80" in caplog.text
    k.result(_ck(k, R2), True)
    assert _dests(table) == {R1: 7, R2: 1}
    # A real server removed from the file goes; a new one comes in up (no alpha).
    k.start(parse_keepalived(_conf(reals=1).replace("weight 2", "weight 7"), "keepalived.conf"))
    assert _dests(table) == {R1: 7}
    assert "service [10.0.0.2]:tcp:80 no longer exist" in caplog.text


def test_reload_removes_a_virtual_server_and_stop_with_omega_runs_down_scripts() -> None:
    omega = "  omega\n  quorum_down /bin/qdown\n"
    k, table, fx = _keeper(_conf(omega, r1="    notify_down /bin/d1\n"))
    other = "virtual_server 10.0.0.200 80 {\n  protocol TCP\n  real_server 10.0.0.3 80 {\n"
    other += "    TCP_CHECK {\n    }\n  }\n}\n"
    k.start(parse_keepalived(_conf(omega, r1="    notify_down /bin/d1\n") + other, "k.conf"))
    assert len(table.services()) == 2
    k.start(parse_keepalived(other, "k.conf"))
    assert [s.addr for s in table.services()] == ["10.0.0.200"]
    assert fx.scripts == ["/bin/d1", "/bin/qdown"]  # removal on reload runs the notifiers
    k.stop()
    assert table.services() == []
    k2, table2, fx2 = _keeper(_conf(omega, r1="    notify_down /bin/d1\n"))
    k2.stop()
    assert table2.services() == []
    assert fx2.scripts == ["/bin/d1", "/bin/qdown"]
    k3, _, fx3 = _keeper(_conf("  quorum_down /bin/qdown\n", r1="    notify_down /bin/d1\n"))
    k3.stop()
    assert fx3.scripts == []  # without omega nothing runs at shutdown


def test_sorry_server_has_its_own_forwarding_method() -> None:
    k, table, _ = _keeper(_conf(f"  sorry_server {SS} 80\n  sorry_server_lvs_method DR\n"))
    k.result(_ck(k, R1), False)
    k.result(_ck(k, R2), False)
    (svc,) = table.services()
    (sorry,) = svc.dests
    assert (sorry.addr, sorry.fwd) == (SS, int(FwdMethod.ROUTE))


def test_failed_after_retries_wording(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    k, _, _ = _keeper(_conf("  retry 1\n"))
    ck = _ck(k, R1)
    k.result(ck, True)
    k.result(ck, False)
    k.result(ck, False)
    assert "TCP_CHECK on service [10.0.0.1]:tcp:80 failed after 1 retries." in caplog.text


def test_reload_adds_and_removes_group_entries() -> None:
    def text(entries: str) -> str:
        return (
            f"virtual_server_group G {{\n{entries}}}\nvirtual_server group G {{\n  protocol TCP\n"
            f"  real_server {R1} 80 {{\n    TCP_CHECK {{\n    }}\n  }}\n}}\n"
        )

    k, table, _ = _keeper(text("  10.0.0.100 80\n"))
    k.start(parse_keepalived(text("  10.0.0.101 80\n  10.0.0.102 80\n"), "k.conf"))
    assert sorted((s.addr, [d.addr for d in s.dests]) for s in table.services()) == [
        ("10.0.0.101", [R1]),
        ("10.0.0.102", [R1]),
    ]


def test_bfd_checkers_are_refused_with_a_warning() -> None:
    text = (
        f"virtual_server {VIP} 80 {{\n  protocol TCP\n  real_server {R1} 80 {{\n"
        "    BFD_CHECK {\n      name b1\n    }\n    TCP_CHECK {\n    }\n  }\n}\n"
    )
    cfg = parse_keepalived(text, "keepalived.conf")
    assert any("BFD_CHECK is not supported by pylvs" in line for line in cfg.not_run)
    k, table, _ = _keeper(text)
    assert [ck.kind for ck in k.checkers] == ["TCP_CHECK"]
    assert _dests(table) == {R1: 1}


def test_sorry_server_that_is_a_real_server(caplog: pytest.LogCaptureFixture) -> None:
    """ipwrapper.c s_svr_duplicates_rs: the sorry server shares the real server's dest; no
    second add of it at start, no second delete at stop."""
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    vs = f"  quorum 3\n  sorry_server {R1} 80\n"
    k, table, _ = _keeper(_conf(vs))
    assert _dests(table) == {R1: 2, R2: 1}
    k.result(_ck(k, R2), False)  # 2 < 3: quorum lost, R1 alone as the sorry server
    assert _dests(table) == {R1: 1}
    assert "Adding sorry server [10.0.0.1]:tcp:80 to VS [10.0.0.100]:tcp:80" in caplog.text
    k.result(_ck(k, R2), True)
    assert _dests(table) == {R1: 2, R2: 1}
    k.stop()
    assert table.services() == []
    assert "IPVS cmd" not in caplog.text


def test_sorry_server_duplicate_takes_the_reals_inhibit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    vs = f"  quorum 3\n  sorry_server {R1} 80\n"
    k, table, _ = _keeper(_conf(vs, r1="    inhibit_on_failure\n"))
    assert "matches sorry server, but inhibit setting differs, setting on sorry server" in (
        caplog.text
    )
    assert _dests(table) == {R1: 2, R2: 1}  # not added a second time with weight 0
    k.result(_ck(k, R1), False)  # inhibited: weight 0; 1 < 3: the sorry server is R1 again
    assert _dests(table) == {R1: 1}
    k.stop()
    assert table.services() == []
    assert "IPVS cmd" not in caplog.text
