"""scripts/bench's tables and parsers: runtimes, ratios, bulk rows, iperf3 and ethtool output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pylvs.bench import report
from pylvs.bench.bulk import parse_ethtool_features, parse_iperf3


def _pps(lossless: int, peak: int, **extra: Any) -> dict[str, Any]:
    row = {
        "lossless_pps": lossless,
        "lossy_pps": None,
        "sender_bound": False,
        "peak_pps": peak,
        "overload_offered_pps": 3 * lossless,
        "overload_pps": peak,
        "overload_of_peak": 1.0,
        "cpu_us_per_packet": None,
        "one_core_pps": None,
        "cpu_at_lossless": False,
    }
    return {**row, **extra}


def _results() -> dict[str, Any]:
    return {
        "quick": True,
        "date": "2024-01-01 00:00:00 +0000",
        "host": {"kernel": "6.18"},
        "method": {"lossless": "under 0.1% lost", "offloads": "offloads on: none"},
        "pps": {
            "kernel forward": _pps(200_000, 220_000, sender_bound=True),
            "nft dnat": _pps(100_000, 150_000, lossy_pps=110_000),
            "pylvs afpacket dr": _pps(
                50_000,
                80_000,
                lossy_pps=55_000,
                cpu_us_per_packet=10.0,
                one_core_pps=100_000,
                cpu_at_lossless=True,
                runtime="CPython 3.11.7",
                overload_of_peak=0.5,
            ),
            "pylvs afpacket dr pypy": _pps(
                150_000,
                160_000,
                lossy_pps=157_000,
                cpu_us_per_packet=4.0,
                one_core_pps=250_000,
                cpu_at_lossless=True,
                runtime="PyPy 3.9.16",
                overload_of_peak=0.95,
            ),
        },
        "http": {
            "pylvs afpacket dr": {"conn_per_s": 5000, "socket_errors": 0},
            "haproxy tcp": {"conn_per_s": 6000, "socket_errors": 0},
        },
        "bulk": {
            "kernel forward": {
                "streams_1": {"gbit_s": 4.0, "retransmits": 0},
                "streams_4": {"gbit_s": 5.0, "retransmits": 1},
            },
            "pylvs afpacket dr pypy": {"streams_1": {"gbit_s": 2.0, "retransmits": 3}},
            "haproxy tcp": {
                "streams_1": {"gbit_s": 1.0, "retransmits": 0},
                "streams_4": {"gbit_s": 2.5, "retransmits": 0},
            },
        },
        "failed": {},
    }


def test_table_shows_method_runtimes_ratios_and_cpu() -> None:
    results = _results()
    results["goals"] = report.goals(results)
    text = report.table(results)
    assert text.startswith("Method (quick run):\n  lossless: under 0.1% lost\n")
    rows: dict[str, str] = {}
    for line in text.splitlines():  # the first table's rows (the HTTP table repeats names)
        rows.setdefault(line.split(" | ")[0].lstrip("| "), line)
    assert "| kernel forward | kernel | 200000 (sender) | - | 1.00 | 2.00 |" in text
    dr = rows["pylvs afpacket dr"]
    assert "| CPython 3.11.7 | 50000 | 55000 | 0.25 | 0.50 | 80000 | 0.36 |" in dr
    assert dr.endswith("| 0.50 | 10.0 | 100000 |")
    pypy = rows["pylvs afpacket dr pypy"]
    assert "| PyPy 3.9.16 | 150000 | 157000 | 0.75 | 1.50 |" in pypy
    assert pypy.endswith("| 4.0 | 250000 |")
    # Bulk: ratios against kernel forwarding and HAProxy; a missing run is "-".
    assert "| kernel forward | kernel | 4.0 | 1.00 | 4.00 | 5.0 | 1.00 | 2.00 | 0 / 1 |" in text
    assert (
        "| pylvs afpacket dr pypy | PyPy 3.9.16 | 2.0 | 0.50 | 2.00 | - | - | - | 3 / - |" in text
    )
    # The performance goals, per runtime.
    assert "goal afpacket dr held at 3x overload / peak >= 0.9: NOT met (0.5)" in text
    assert "goal afpacket dr pypy held at 3x overload / peak >= 0.9: met (0.95)" in text
    assert "goal afpacket dr lossless / kernel forwarding lossless >= 1.0: NOT met (0.25)" in text
    assert "goal afpacket dr pypy CPU per packet <= 2.5 us: NOT met (4.0)" in text
    assert "goal HTTP conn/s through afpacket dr / HAProxy >= 1.5: NOT met (0.83)" in text
    assert "goal bulk TCP Gbit/s through afpacket dr pypy / kernel >= 0.5: met (0.5)" in text


def test_cpu_not_at_a_lossless_step_is_marked() -> None:
    results = _results()
    results["pps"]["pylvs afpacket dr"]["cpu_at_lossless"] = False
    text = report.table(results)
    assert "| 10.0* | 100000 |" in text
    assert "* no lossless step" in text


def test_ipv6_rows_are_compared_with_the_ipv6_references() -> None:
    results = _results()
    pps = results["pps"]
    pps["kernel forward ipv6"] = _pps(100_000, 120_000)
    pps["nft dnat ipv6"] = _pps(80_000, 100_000)
    pps["pylvs afpacket dr pypy ipv6"] = _pps(
        50_000, 60_000, cpu_us_per_packet=5.0, one_core_pps=200_000, cpu_at_lossless=True,
        runtime="PyPy 3.9.16",
    )  # fmt: skip
    results["goals"] = report.goals(results)
    text = report.table(results)
    assert report.references("pylvs afpacket dr pypy ipv6") == (
        "kernel forward ipv6",
        "nft dnat ipv6",
    )
    assert report.references("pylvs afpacket dr pypy") == ("kernel forward", "nft dnat")
    assert "| kernel forward ipv6 | kernel | 100000 | - | 1.00 | 1.25 | 120000 | 1.00 |" in text
    assert "| nft dnat ipv6 | kernel | 80000 | - | 0.80 | 1.00 |" in text
    # x kernel 0.50 (of 100000, not of the IPv4 200000), x nft 0.62, peak 60000 / 120000.
    assert (
        "| pylvs afpacket dr pypy ipv6 | PyPy 3.9.16 | 50000 | - | 0.50 | 0.62 | 60000 | 0.50 |"
        in text
    )
    assert text.count("| 5.0 | 200000 |") == 1
    assert "ipv6 rows: 80-byte frames; x kernel and x nft against kernel forward ipv6" in text
    # The IPv4 rows keep the IPv4 references; the goals stay the IPv4 ones.
    assert "| CPython 3.11.7 | 50000 | 55000 | 0.25 | 0.50 | 80000 | 0.36 |" in text
    assert not any("ipv6" in goal["goal"] for goal in results["goals"])


def test_chart_is_written(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    assert report.chart(_results(), tmp_path / "bench.png")
    assert (tmp_path / "bench.png").stat().st_size > 10_000


_ETHTOOL = """Features for d0:
rx-checksumming: off
tx-checksumming: on
\ttx-checksum-ipv4: off [fixed]
scatter-gather: on
tcp-segmentation-offload: off
generic-segmentation-offload: on
generic-receive-offload: off [requested on]
large-receive-offload: off [fixed]
rx-gro-list: off
"""


def test_ethtool_features_on() -> None:
    assert parse_ethtool_features(_ETHTOOL) == ["tx-csum", "gso"]
    assert parse_ethtool_features("") == []


def test_iperf3_json() -> None:
    ok = {
        "end": {
            "sum_sent": {"bits_per_second": 2.1e9, "retransmits": 7},
            "sum_received": {"bits_per_second": 2.0e9, "seconds": 2.0001},
        }
    }
    assert parse_iperf3(json.dumps(ok)) == {"gbit_s": 2.0, "retransmits": 7, "seconds": 2.0}
    with pytest.raises(ValueError, match="iperf3: unable to connect"):
        parse_iperf3(json.dumps({"error": "unable to connect to server"}))
    with pytest.raises(ValueError, match="no JSON"):
        parse_iperf3("iperf3: interrupt")
    with pytest.raises(ValueError, match="no received sum"):
        parse_iperf3(json.dumps({"end": {}}))
