"""ldirectord.cf parsing rules beyond the sample file."""

from __future__ import annotations

from pylvs.config import parse_ldirectord
from pylvs.core.service import IPPROTO_UDP, FwdMethod


def _names(name: str, af: int) -> str | None:
    return {"web1": "10.0.0.1", "web3": "10.0.0.3", "vip": "192.0.2.1"}.get(name)


def test_spaces_tabs_and_comments() -> None:
    cfg = parse_ldirectord(
        "virtual = 192.0.2.1:80   # web\n"
        "    real = 10.0.0.1:80 gate\n"
        "# a comment line keeps the section open\n"
        "\treal=10.0.0.2:80 gate # trailing comment\n"
        "checkinterval = 4\n"
    )
    assert [r.dest.addr for r in cfg.virtuals[0].reals] == ["10.0.0.1", "10.0.0.2"]
    assert cfg.checkinterval == 4


def test_service_names_and_host_names() -> None:
    cfg = parse_ldirectord(
        "virtual=vip:domain\n\treal=web1->web3:domain masq\n", resolve_host=_names
    )
    v = cfg.virtuals[0]
    assert (v.spec.addr, v.spec.port, v.spec.protocol, v.protocol) == (
        "192.0.2.1", 53, IPPROTO_UDP, "udp",
    )
    assert [r.dest.addr for r in v.reals] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert v.service == "dns"


def test_port_forced_for_gate_kept_for_masq() -> None:
    v = parse_ldirectord(
        "virtual=192.0.2.1:80\n\treal=10.0.0.1:8080 gate\n\treal=10.0.0.2:8080 masq\n"
        "\treal=10.0.0.3 masq\n"
    ).virtuals[0]
    assert [(r.port, r.dest.port) for r in v.reals] == [(8080, 80), (8080, 8080), (0, 80)]
    # Checks still go to the written port (ldirectord ld_checkport).
    assert v.check_port(v.reals[0]) == 8080
    assert v.check_port(v.reals[2]) == 80


def test_timeout_fallback_chain() -> None:
    head = "negotiatetimeout=20\nvirtual=192.0.2.1:80\n"
    v = parse_ldirectord(head + "\tchecktimeout=2\n").virtuals[0]
    assert (v.checktimeout, v.negotiatetimeout) == (2, 2)
    v = parse_ldirectord(head + "\treal=10.0.0.1 gate\n").virtuals[0]
    assert (v.checktimeout, v.negotiatetimeout) == (20, 20)
    v = parse_ldirectord("virtual=192.0.2.1:80\n\treal=10.0.0.1 gate\n").virtuals[0]
    assert (v.checktimeout, v.negotiatetimeout) == (5, 30)


def test_defaults() -> None:
    cfg = parse_ldirectord("virtual=192.0.2.1:8000\n\treal=10.0.0.1 gate\n")
    v = cfg.virtuals[0]
    assert (v.checktype, v.service, v.request, v.receive, v.httpmethod) == (
        "negotiate", "none", "/", "", "GET",
    )
    assert (v.spec.scheduler, v.quiescent, v.cleanstop, v.checkcommand) == (
        "wrr", False, True, "/bin/true",
    )
    assert cfg.quiescent is False  # the code's default, not the man page's


def test_ftp_defaults_and_ops() -> None:
    v = parse_ldirectord(
        "virtual=192.0.2.1:21\n\treal=10.0.0.1 masq\n\tservice=ftp\n\tops=yes\n"
    ).virtuals[0]
    assert v.login == "anonymous" and v.passwd.startswith("ldirectord@")
    assert v.spec.ops is False  # ldirectord passes -o for udp services only


def test_warnings() -> None:
    cfg = parse_ldirectord(
        "supervised\ncheckcount=2\nvirtual=192.0.2.1:80\n\treal=10.0.0.1 gate\n\tcheckinterval=3\n"
    )
    assert cfg.supervised is True and cfg.checkcount == 2
    assert len(cfg.warnings) == 3
    assert cfg.warnings[-1] == (
        "checkinterval in virtual service tcp:192.0.2.1:80 ignored when fork=no"
    )


def test_schedflags_and_fallback6() -> None:
    cfg = parse_ldirectord(
        "fallback6=[::1]:80\n"
        "virtual6=[2001:db8::1]:80\n\treal6=[2001:db8::2]:80 ipip\n"
        "\tschedflags=sh-fallback,sh-port\n"
        "\tscheduler=sh\n"
    )
    v = cfg.virtuals[0]
    assert v.spec.sched_flags == 0x18
    assert v.fallback is not None and v.fallback.addr == "::1"
    assert v.reals[0].dest.fwd == FwdMethod.TUNNEL
