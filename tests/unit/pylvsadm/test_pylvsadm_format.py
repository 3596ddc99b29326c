"""ipvsadm 1.31 listings byte for byte: golden texts from the reference's examples and printf(1)."""

# ruff: noqa: E501  (tables of command lines and messages read best one per line)

from __future__ import annotations

from pathlib import Path

import pytest

from pylvs.cli.ipvsadm_format import (
    Fmt,
    cmp_services,
    format_conns,
    format_listing,
    format_timeout,
    inet_ntop,
    largenum,
    qsort,
)
from pylvs.core.control import ConnInfo, DestInfo, ServiceInfo, Timeouts
from pylvs.core.service import ServiceFlags

GOLDEN = Path(__file__).parent / "golden"
TCP, UDP = 6, 17
MASQ, LOCAL, TUNNEL, ROUTE = 0, 1, 2, 3
P = int(ServiceFlags.PERSISTENT)
S1, S2, S3 = int(ServiceFlags.SCHED1), int(ServiceFlags.SCHED2), int(ServiceFlags.SCHED3)
OPS = int(ServiceFlags.ONEPACKET)


def golden(name: str) -> str:
    return (GOLDEN / name).read_text()


def dest(
    addr: str,
    port: int,
    fwd: int = ROUTE,
    weight: int = 1,
    active: int = 0,
    inact: int = 0,
    **kw: object,
) -> DestInfo:
    af = 6 if ":" in addr else 4
    return DestInfo(
        af=af,
        addr=addr,
        port=port,
        fwd=fwd,
        weight=weight,
        u_threshold=int(kw.pop("u", 0)),  # type: ignore[call-overload]
        l_threshold=int(kw.pop("l", 0)),  # type: ignore[call-overload]
        activeconns=active,
        inactconns=inact,
        persistconns=int(kw.pop("persist", 0)),  # type: ignore[call-overload]
        **kw,  # type: ignore[arg-type]
    )


def service(
    proto: int,
    addr: str,
    port: int,
    sched: str,
    dests: list[DestInfo],
    flags: int = 0,
    timeout: int = 0,
    netmask: int | None = None,
    fwmark: int = 0,
    af: int | None = None,
    **kw: object,
) -> ServiceInfo:
    if af is None:
        af = 6 if ":" in addr else 4
    if netmask is None:
        netmask = 128 if af == 6 else 32
    return ServiceInfo(
        af=af,
        protocol=proto,
        addr=addr,
        port=port,
        fwmark=fwmark,
        scheduler=sched,
        flags=flags,
        timeout=timeout,
        netmask=netmask,
        dests=dests,
        **kw,  # type: ignore[arg-type]
    )


def reference_table() -> list[ServiceInfo]:
    """The rule set of the reference's ``ipvsadm -L -n`` example, listed out of order."""
    return [
        service(
            UDP,
            "192.168.6.240",
            53,
            "sh",
            [dest("10.0.1.6", 53, MASQ, 1, 0, 5), dest("10.0.1.4", 53, MASQ, 1, 0, 7)],
            flags=S1 | S2,
        ),
        service(
            TCP,
            "192.168.6.240",
            443,
            "rr",
            [dest("192.168.16.5", 443, MASQ, 2, 1, 3), dest("192.168.16.3", 443, MASQ, 1, 0, 0)],
            flags=P,
            timeout=300,
            netmask=24,
        ),
        service(
            TCP,
            "192.168.6.240",
            80,
            "wlc",
            [
                dest("192.168.6.6", 80, ROUTE, 0, 2, 40),
                dest("192.168.6.2", 80, ROUTE, 1, 12, 103),
                dest("192.168.6.3", 80, ROUTE, 1, 11, 98),
            ],
        ),
    ]


def test_list_numeric_matches_reference_example() -> None:
    assert format_listing(reference_table(), Fmt.NUMERIC) == golden("list_numeric.txt")


def test_stats_matches_reference_example() -> None:
    svc = service(
        TCP,
        "192.168.6.240",
        80,
        "wlc",
        [dest("192.168.6.2", 80, stats=(600, 30000, 0, 1800000, 0))],
        stats=(1234, 56789, 0, 3456789, 0),
    )
    assert format_listing([svc], Fmt.NUMERIC | Fmt.STATS) == golden("stats.txt")


def test_rate_matches_reference_example() -> None:
    svc = service(
        TCP, "192.168.6.240", 80, "wlc", [dest("192.168.6.2", 80)], rates=(5, 120, 0, 9000, 0)
    )
    assert format_listing([svc], Fmt.NUMERIC | Fmt.RATE) == golden("rate.txt")


def test_thresholds_matches_reference_example() -> None:
    svc = service(TCP, "192.168.6.240", 80, "wlc", [dest("192.168.6.2", 80, ROUTE, 1, 12, 103)])
    assert format_listing([svc], Fmt.NUMERIC | Fmt.THRESHOLDS) == golden("thresholds.txt")


def test_persistent_conn_matches_reference_example() -> None:
    svc = service(
        TCP,
        "192.168.6.240",
        443,
        "rr",
        [dest("192.168.16.3", 443, MASQ, 1, 0, 0, persist=1)],
        flags=P,
        timeout=300,
        netmask=24,
    )
    assert format_listing([svc], Fmt.NUMERIC | Fmt.PERSISTENTCONN) == golden("persistent_conn.txt")


def test_tun_info_matches_reference_example() -> None:
    svc = service(
        TCP,
        "207.175.44.110",
        80,
        "rr",
        [
            dest("192.168.10.2", 80, TUNNEL, tun_type=2, tun_flags=1),
            dest("192.168.10.1", 80, TUNNEL, tun_type=1, tun_port=6080, tun_flags=0),
        ],
    )
    assert format_listing([svc], Fmt.NUMERIC | Fmt.TUN_INFO) == golden("tun_info.txt")


def test_large_counters_use_k_m_g_t_suffixes() -> None:
    svc = service(
        TCP,
        "10.0.0.1",
        80,
        "wlc",
        [dest("10.0.0.2", 80, stats=(99999999, 100000000, 999999999, 1000000000, 10**14))],
        stats=(123456789, 12345678901, 0, 98765432109876, 123456789012345678),
    )
    assert format_listing([svc], Fmt.NUMERIC | Fmt.STATS) == golden("stats_large.txt")
    exact = Fmt.NUMERIC | Fmt.STATS | Fmt.EXACT
    assert format_listing([svc], exact) == golden("stats_exact.txt")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "        0"),
        (99999999, " 99999999"),
        (100000000, "  100000K"),
        (999999999, "  999999K"),
        (1000000000, "     1000M"[1:]),
        (99999999999, "   99999M"),
        (100000000000, "      100G"[1:]),
        (99999999999999, "   99999G"),
        (100000000000000, "      100T"[1:]),
    ],
)
def test_largenum_thresholds(value: int, text: str) -> None:
    assert largenum(value, Fmt.NONE) == text


def test_dest_packet_counters_keep_32_bits_as_libipvs_reads_them() -> None:
    big = (1 << 32) + 5
    svc = service(TCP, "10.0.0.1", 80, "wlc", [dest("10.0.0.2", 80, stats=(big, 0, 0, big, 0))])
    lines = format_listing([svc], Fmt.NUMERIC | Fmt.STATS | Fmt.EXACT).splitlines()
    assert lines[-1].split()[2:] == ["5", "0", "0", str(big), "0"]


def test_ipv6_names_are_bracketed_and_never_truncated() -> None:
    v6 = service(
        TCP,
        "2001:db8::1",
        80,
        "rr",
        [
            dest("2001:db8:1234:5678:9abc:def0:1:2", 8080, MASQ, 2),
            dest("2001:db8::10", 80, MASQ, 1, 3, 4),
        ],
        flags=P,
        timeout=300,
        netmask=64,
    )
    fwm6 = service(TCP, "", 0, "wlc", [dest("2001:db8::20", 0)], fwmark=2, af=6)
    assert format_listing([fwm6, v6], Fmt.NUMERIC) == golden("ipv6.txt")


def test_every_service_column() -> None:
    services = [
        service(
            0,
            "",
            0,
            "lc",
            [dest("10.0.2.1", 0, MASQ, 65535, 4294967295, 7)],
            fwmark=7,
            flags=P,
            timeout=1800,
        ),
        service(
            UDP,
            "10.0.0.1",
            53,
            "mh",
            [dest("10.0.1.1", 53, LOCAL)],
            flags=P | S1 | S2 | OPS,
            timeout=60,
            netmask=16,
        ),
        service(TCP, "10.0.0.1", 80, "wrr", [], flags=S1 | S3),
        service(TCP, "10.0.0.1", 0, "wlc", [], flags=P, timeout=360),
    ]
    assert format_listing(services, Fmt.NUMERIC) == golden("columns.txt")


def test_signed_address_comparison_order() -> None:
    services = [
        service(TCP, "10.1.1.1", 80, "rr", []),
        service(
            TCP,
            "192.168.1.1",
            80,
            "rr",
            [dest("10.0.0.5", 80), dest("192.168.1.10", 80), dest("203.0.113.5", 80)],
        ),
        service(TCP, "203.0.113.10", 80, "rr", []),
    ]
    assert format_listing(services, Fmt.NUMERIC) == golden("sort_quirk.txt")


def test_nosort_keeps_the_given_order() -> None:
    text = format_listing(reference_table(), Fmt.NUMERIC | Fmt.NOSORT)
    lines = [line for line in text.splitlines() if not line.startswith("  ->")]
    assert lines[2:] == [
        "UDP  192.168.6.240:53 sh (sh-fallback,sh-port)",
        "TCP  192.168.6.240:443 rr persistent 300 mask 255.255.255.0",
        "TCP  192.168.6.240:80 wlc",
    ]


def test_glibc_merge_sort_on_a_cyclic_comparator() -> None:
    # 10.0.0.1 < 100.0.0.1 < 200.0.0.1 < 10.0.0.1 under the wrapping comparison: the result
    # depends on the input order exactly as glibc's msort makes it (worked by hand).
    def svc(addr: str) -> ServiceInfo:
        return service(TCP, addr, 80, "rr", [])

    a, b, c = svc("10.0.0.1"), svc("100.0.0.1"), svc("200.0.0.1")
    assert cmp_services(a, b) < 0 and cmp_services(b, c) < 0 and cmp_services(c, a) < 0
    assert qsort([a, b, c], cmp_services) == [a, b, c]
    assert qsort([c, b, a], cmp_services) == [c, a, b]


class FakeNamer:
    hosts = {
        "192.168.6.240": "www.example.com",
        "192.168.6.2": "rs1.example.com",
        "192.168.6.4": "a-very-long-real-server-name.example.com",
        "10.0.0.53": "virtual-service-with-long-name.example.org",
    }
    services = {(80, TCP): "http", (53, UDP): "domain"}

    def host(self, af: int, addr: str) -> str | None:
        return self.hosts.get(addr)

    def service(self, port: int, protocol: int) -> str | None:
        return self.services.get((port, protocol))


def names_table() -> list[ServiceInfo]:
    return [
        service(
            TCP,
            "192.168.6.240",
            80,
            "wlc",
            [dest("192.168.6.4", 80), dest("192.168.6.3", 80), dest("192.168.6.2", 80)],
        ),
        service(UDP, "10.0.0.53", 53, "rr", [dest("10.0.0.9", 5353, MASQ)]),
    ]


def test_names_resolved_and_truncated() -> None:
    assert format_listing(names_table(), Fmt.NONE, FakeNamer()) == golden("names.txt")


def test_save_with_names_is_not_truncated() -> None:
    assert format_listing(names_table(), Fmt.RULE, FakeNamer()) == golden("save_names.txt")


def test_conns_match_reference_example() -> None:
    conns = [
        ConnInfo(TCP, 4, "10.1.1.5", 51234, "192.168.6.240", 80, "192.168.6.2", 80, "ESTABLISHED", 899, ROUTE),
        ConnInfo(TCP, 4, "10.1.1.6", 40000, "192.168.6.240", 80, "192.168.6.3", 80, "FIN_WAIT", 112, ROUTE),
        ConnInfo(UDP, 4, "10.1.1.8", 5353, "192.168.6.240", 53, "10.0.1.4", 53, "UDP", 299, MASQ),
        ConnInfo(TCP, 4, "10.1.1.0", 0, "192.168.6.240", 443, "192.168.16.3", 443, "NONE", 300, MASQ, template=True),
    ]  # fmt: skip
    assert format_conns(conns, Fmt.NUMERIC) == golden("conns.txt")


def test_conns_with_persistence_engine_columns() -> None:
    conns = [
        ConnInfo(TCP, 4, "10.1.1.5", 51234, "192.168.6.240", 80, "192.168.6.2", 80, "ESTABLISHED", 899, ROUTE),
        ConnInfo(UDP, 4, "10.1.1.9", 5060, "192.168.6.240", 5060, "10.0.1.4", 5060, "UDP", 58, MASQ,
                 pe_name="sip", pe_data="abc123@host"),
        ConnInfo(0, 4, "10.1.1.0", 0, "0.0.0.0", 0, "10.0.2.1", 0, "NONE", 6005, MASQ, template=True, fwmark=7),
        ConnInfo(TCP, 6, "2001:db8::99", 4000, "2001:db8::1", 80, "2001:db8::10", 80, "TIME_WAIT", 7, MASQ),
    ]  # fmt: skip
    assert format_conns(conns, Fmt.NUMERIC | Fmt.PERSISTENTCONN) == golden("conns_pe.txt")


def test_timeout_line() -> None:
    assert format_timeout(Timeouts(900, 120, 300)) == golden("timeout.txt")


@pytest.mark.parametrize(
    ("addr", "text"),
    [
        ("2001:db8::1", "2001:db8::1"),
        ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
        ("::", "::"),
        ("::1", "::1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("::192.0.2.1", "::192.0.2.1"),
        ("fe80::", "fe80::"),
    ],
)
def test_inet_ntop_matches_glibc(addr: str, text: str) -> None:
    assert inet_ntop(6, addr) == text
