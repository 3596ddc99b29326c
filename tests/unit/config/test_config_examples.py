"""The sample ldirectord.cf and its pylvs.toml twin parse to the same, expected configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from pylvs.config import Config, load
from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.service import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, FwdMethod

DATA = Path(__file__).parent / "data"
ROUTE, MASQ, TUNNEL = int(FwdMethod.ROUTE), int(FwdMethod.MASQ), int(FwdMethod.TUNNEL)


def _d(addr: str, port: int, fwd: int, weight: int = 1, af: int = AF_INET, **kw: int) -> DestSpec:
    return DestSpec(af=af, addr=addr, port=port, fwd=fwd, weight=weight, **kw)


EXPECTED: list[tuple[ServiceSpec, list[DestSpec]]] = [
    (
        ServiceSpec(protocol=IPPROTO_TCP, addr="192.168.6.240", port=80, scheduler="rr"),
        [
            _d("192.168.6.2", 80, ROUTE),
            _d("192.168.6.3", 80, ROUTE, 2, l_threshold=10, u_threshold=100),
            _d("192.168.6.6", 80, ROUTE),
        ],
    ),
    (
        ServiceSpec(fwmark=1, scheduler="wlc", persistent=True, timeout=600),
        [_d("192.168.6.2", 0, ROUTE), _d("192.168.6.3", 0, ROUTE)],
    ),
    (
        ServiceSpec(protocol=IPPROTO_UDP, addr="192.168.6.240", port=53, scheduler="wlc", ops=True),
        [_d("10.0.1.4", 53, MASQ), _d("10.0.1.6", 53, MASQ)],
    ),
    (
        ServiceSpec(
            protocol=IPPROTO_TCP, addr="192.168.6.240", port=443, scheduler="wrr",
            persistent=True, timeout=600, netmask=24,
        ),
        [_d(f"10.0.0.{n}", 8443, MASQ, 5) for n in range(10, 14)],
    ),
    (
        ServiceSpec(protocol=IPPROTO_TCP, addr="192.168.6.241", port=25, scheduler="wrr"),
        [_d("172.16.1.2", 25, TUNNEL, 3), _d("172.16.1.3", 25, TUNNEL)],
    ),
    (
        ServiceSpec(
            af=AF_INET6, protocol=IPPROTO_TCP, addr="2001:db8::5", port=80, scheduler="wlc",
            persistent=True, timeout=300, netmask=64,
        ),
        [_d(f"2001:db8:0:1::{n}", 80, MASQ, af=AF_INET6) for n in (4, 6)],
    ),
]  # fmt: skip


@pytest.fixture(params=["ldirectord.cf", "pylvs.toml"])
def cfg(request: pytest.FixtureRequest) -> Config:
    return load(DATA / request.param)


def test_services(cfg: Config) -> None:
    assert cfg.services() == EXPECTED


def test_globals(cfg: Config) -> None:
    assert cfg.checktimeout == 3
    assert cfg.negotiatetimeout is None
    assert cfg.checkinterval == 1
    assert cfg.autoreload is True
    assert cfg.quiescent is False
    assert cfg.emailalert == "admin@example.com"
    assert cfg.emailalertfreq == 3600
    assert cfg.emailalertstatus == {"starting", "running"}
    assert cfg.fallback is not None and (cfg.fallback.addr, cfg.fallback.port) == ("127.0.0.1", 80)


def test_http_virtual(cfg: Config) -> None:
    v = cfg.virtuals[0]
    assert (v.checktype, v.service, v.protocol) == ("negotiate", "http", "tcp")
    assert (v.request, v.receive, v.virtualhost, v.checkport) == (
        "/index.html", "Test Page", "www.example.com", 80,
    )
    # checktimeout 3 is global; negotiatetimeout falls back on it (ld_setup).
    assert (v.checktimeout, v.negotiatetimeout) == (3, 3)
    plain, special = v.reals[0], v.reals[1]
    assert (v.request_for(plain), v.receive_for(plain)) == ("/index.html", "Test Page")
    assert (v.request_for(special), v.receive_for(special)) == ("/health.html", "OK")
    assert v.fallback == _d("127.0.0.1", 80, ROUTE)
    assert v.emailalertfreq == 3600 and v.quiescent is False


def test_fwmark_virtual(cfg: Config) -> None:
    v = cfg.virtuals[1]
    assert (v.protocol, v.service, v.checktype) == ("fwm", "http", "connect")
    assert v.ident() == "fwm:1"
    # The global fallback names port 80; a fwmark service keeps a dest port as given.
    assert v.fallback == _d("127.0.0.1", 80, ROUTE)
    assert v.check_port(v.reals[0]) == 80


def test_dns_virtual(cfg: Config) -> None:
    v = cfg.virtuals[2]
    assert (v.protocol, v.service, v.request, v.receive) == (
        "udp", "dns", "/www.example.com", "192.0.2.80",
    )
    assert (v.checktimeout, v.negotiatetimeout) == (7, 7)
    # Global fallback, gate: IPVS forces the service port.
    assert v.fallback == _d("127.0.0.1", 53, ROUTE)


def test_masq_range_virtual(cfg: Config) -> None:
    v = cfg.virtuals[3]
    assert v.quiescent is True and v.failurecount == 3
    assert v.fallback == _d("127.0.0.1", 8443, MASQ)
    assert [r.port for r in v.reals] == [8443] * 4


def test_tunnel_virtual(cfg: Config) -> None:
    v = cfg.virtuals[4]
    assert (v.checktype, v.checkcommand, v.checktimeout, v.negotiatetimeout) == (
        "external", "/usr/local/bin/check-smtp", 10, 10,
    )
    assert v.service == "smtp"  # from port 25


def test_ipv6_virtual(cfg: Config) -> None:
    v = cfg.virtuals[5]
    assert (v.checktype, v.num_connects) == ("combined", 5)
    assert v.fallback == _d("::1", 80, MASQ, af=AF_INET6)
    assert v.ident() == "tcp:[2001:db8::5]:80"


def test_formats_agree() -> None:
    cf = load(DATA / "ldirectord.cf")
    toml = load(DATA / "pylvs.toml")
    for a, b in zip(cf.virtuals, toml.virtuals, strict=True):
        assert (a.spec, a.dests(), a.fallback) == (b.spec, b.dests(), b.fallback)
        assert (a.checktype, a.service, a.request, a.receive, a.checktimeout) == (
            b.checktype, b.service, b.request, b.receive, b.checktimeout,
        )


def _doc_block(heading: str, lang: str) -> str:
    import re

    doc = (Path(__file__).parents[3] / "docs" / "configuration.md").read_text()
    m = re.search(rf"{heading}.*?```{lang}\n(.*?)```", doc, re.S)
    assert m is not None
    return m.group(1)


def test_documented_examples_parse() -> None:
    from pylvs.config import parse_ldirectord, parse_native

    native = parse_native(_doc_block("### Complete example", "toml"), "example.toml")
    assert [s.scheduler for s, _ in native.services()] == ["wrr", "sh", "rr"]
    assert native.timeouts is not None and native.timeouts.udp == 300
    cf = parse_ldirectord(_doc_block("## ldirectord.cf", ""), "example.cf")
    assert [d.addr for d in cf.virtuals[0].dests()] == [
        "192.168.6.2", "192.168.6.3", "192.168.6.4", "192.168.6.5",
    ]
