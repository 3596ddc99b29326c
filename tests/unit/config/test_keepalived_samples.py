"""The examples keepalived ships and the hand-written corpus (tests/data/keepalived)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pylvs.config import ConfigError, file_format, load
from pylvs.config.kamodel import HttpCheck, MiscCheck, SmtpCheck, UdpCheck
from pylvs.core.service import IPPROTO_TCP, FwdMethod

DATA = Path(__file__).resolve().parents[2] / "data" / "keepalived"
# The examples Debian's keepalived package installs (scripts/setup installs it).
KEEPALIVED_SAMPLES = Path("/usr/share/doc/keepalived/samples")
SAMPLES = sorted(KEEPALIVED_SAMPLES.glob("keepalived.conf.*"))
CORPUS = sorted((DATA / "corpus").glob("*.conf"))

# keepalived -t reports these samples for what pylvs does not look at: interfaces missing on
# this machine, routes and rules (stored, not validated), scripts found on disk.
SAMPLE_WARNINGS = {
    "keepalived.conf.conditional_conf": ["No script set for vrrp_script check_VI_0"],
    "keepalived.conf.fwmark": ["protocol specified for fwmark - protocol will be ignored"],
    "keepalived.conf.vrrp.lvs_syncd": ["Unknown keyword 'VI_2'", "Unknown keyword 'VI_3'"],
    "keepalived.conf.SSL_GET": ["Initial state master is incompatible with AH"],
}


def expectation(path: Path) -> str:
    first = path.read_text().split("\n", 1)[0]
    assert first.startswith("! expect: "), path
    return first.split(": ", 1)[1].strip()


def test_the_samples_are_there() -> None:
    assert len(SAMPLES) == 25
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_loads(path: Path) -> None:
    assert file_format(path) == "keepalived.conf"
    config = load(path)
    ka = config.keepalived
    assert ka is not None
    for text in SAMPLE_WARNINGS.get(path.name, []):
        assert any(text in w for w in config.warnings), (text, config.warnings)
    # The summary --check prints is derived from these.
    assert len(config.virtuals) >= len(ka.virtual_servers)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_verdicts(path: Path) -> None:
    expect = expectation(path)
    if expect == "error":
        with pytest.raises(ConfigError) as info:
            load(path)
        assert str(info.value).startswith(f"{path}:")
        return
    config = load(path)
    if expect == "ok":
        assert config.warnings == []
    else:
        assert config.warnings != []


def test_sample_http_get() -> None:
    config = load(KEEPALIVED_SAMPLES / "keepalived.conf.sample")
    ka = config.keepalived
    assert ka is not None
    g = ka.global_defs
    assert g.router_id == "LVS_DEVEL"
    assert g.notification_email == ["acassen"]
    assert g.notification_email_from == "Alexandre.Cassen@firewall.loc"
    assert g.smtp_server == "192.168.200.1"
    assert g.smtp_connect_timeout == 30
    vi = ka.vrrp_instances[0]
    assert (vi.name, vi.state, vi.interface, vi.virtual_router_id) == ("VI_1", "BACKUP", "eth0", 50)
    assert vi.nopreempt and vi.priority == 100 and vi.advert_int == 1
    assert [a.addr for a in vi.virtual_ipaddress] == [
        "192.168.200.11",
        "192.168.200.12",
        "192.168.200.13",
    ]
    vs = ka.virtual_servers[0]
    assert (vs.addr, vs.port, vs.lvs_sched, vs.lvs_method) == ("10.10.10.2", 1358, "rr", "NAT")
    assert vs.persistence_timeout == 50 and vs.delay_loop == 6
    assert vs.sorry_server is not None and vs.sorry_server.addr == "192.168.200.200"
    check = vs.real_servers[0].checkers[0]
    assert isinstance(check, HttpCheck)
    assert check.urls[0].path == "/testurl3/test.jsp"
    assert check.urls[0].digest == "640205b7b0fc66c1ea91c463fac6334d"
    assert check.urls[0].status_code == [(200, 299)]
    assert (check.connect_timeout, check.retry, check.delay_before_retry) == (3, 3, 3)
    assert check.delay_loop == 6  # from the virtual server
    v = config.virtuals[0]
    assert v.spec.addr == "10.10.10.2" and v.spec.port == 1358 and v.spec.protocol == IPPROTO_TCP
    assert v.spec.persistent and v.spec.timeout == 50 and v.spec.scheduler == "rr"
    assert [r.dest.fwd for r in v.reals] == [int(FwdMethod.MASQ)] * len(vs.real_servers)
    assert v.fallback is not None and v.fallback.addr == "192.168.200.200"


def test_sample_virtual_server_group_expands_to_services() -> None:
    config = load(KEEPALIVED_SAMPLES / "keepalived.conf.virtual_server_group")
    ka = config.keepalived
    assert ka is not None
    group = ka.virtual_server_groups["VSG_1"]
    assert [(e.addr, e.last, e.port, e.fwmark) for e in group.entries] == [
        ("10.0.0.1", None, 8080, None),
        ("10.0.0.2", None, 80, None),
        ("192.168.200.1", None, 1358, None),
        ("192.168.200.3", "192.168.200.10", 80, None),
        (None, None, 0, 1),
        (None, None, 0, 2),
    ]
    keys = [(v.spec.addr, v.spec.port, v.spec.fwmark) for v in config.virtuals]
    # Per virtual_server: 3 addresses + 8 of the range + 2 fwmarks.
    assert keys[:13] == [
        ("10.0.0.1", 8080, 0),
        ("10.0.0.2", 80, 0),
        ("192.168.200.1", 1358, 0),
        *[(f"192.168.200.{i}", 80, 0) for i in range(3, 11)],
        ("", 0, 1),
        ("", 0, 2),
    ]


def test_sample_checkers() -> None:
    smtp = load(KEEPALIVED_SAMPLES / "keepalived.conf.SMTP_CHECK").keepalived
    assert smtp is not None
    first, second = smtp.virtual_servers[0].real_servers[:2]
    check = first.checkers[0]
    assert isinstance(check, SmtpCheck)
    assert check.helo_name == "foo.bar.com" and check.hosts == []
    assert (check.connect_timeout, check.retry, check.delay_before_retry) == (30, 2, 5)
    other = second.checkers[0]
    assert isinstance(other, SmtpCheck) and len(other.hosts) > 1
    assert all(h.connect_timeout is not None for h in other.hosts)
    misc = load(KEEPALIVED_SAMPLES / "keepalived.conf.misc_check").keepalived
    assert misc is not None
    checks = [c for rs in misc.virtual_servers[0].real_servers for c in rs.checkers]
    assert all(isinstance(c, MiscCheck) for c in checks)
    assert checks[0].misc_path == "/usr/local/bin/script.sh" and checks[0].retry == 0
    udp = load(KEEPALIVED_SAMPLES / "keepalived.conf.UDP_CHECK").keepalived
    assert udp is not None
    kinds = {type(c) for vs in udp.virtual_servers for rs in vs.real_servers for c in rs.checkers}
    assert UdpCheck in kinds


def test_sample_conditional_lines_need_a_config_id() -> None:
    ka = load(KEEPALIVED_SAMPLES / "keepalived.conf.conditional_conf").keepalived
    assert ka is not None
    # Without -i, every @-line is skipped: VI_0 keeps only its unconditional settings.
    assert [v.name for v in ka.vrrp_instances] == ["VI_0"]
