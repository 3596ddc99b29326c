"""scripts/bench's run: paths handed to servers are absolute, and a failing step is one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pylvs.bench import run as bench_run
from pylvs.bench.lab import Topology
from pylvs.bench.pps import trafgen_config


class _FakeLab:
    topo = Topology()

    def __init__(self, offloads: bool = False) -> None:
        self.offloads = offloads

    def __enter__(self) -> _FakeLab:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def build(self) -> None:
        return None

    def stop(self, proc: Any, timeout: float = 5.0) -> int:
        return 0

    nft: list[tuple[list[str], bytes]] = []

    def run(self, short: str, argv: list[str], input: bytes = b"", check: bool = True) -> None:
        self.nft.append((argv, input))


def test_default_out_reaches_nginx_as_an_absolute_path_and_failures_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, the default --out (bench-results, relative) was handed to nginx, which looked for
    it under its own prefix, and the run ended in a traceback."""
    seen: list[Path] = []

    def start_nginx(lab: Any, workdir: Path) -> object:
        seen.append(workdir)
        raise OSError("nginx: [emerg] open() failed")

    def sweep(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("trafgen exited with status 1\nmore detail")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench_run, "BenchLab", _FakeLab)
    monkeypatch.setattr(bench_run, "trafgen_config", lambda lab, path, topo=None: path)
    monkeypatch.setattr(bench_run, "sweep", sweep)
    monkeypatch.setattr(bench_run, "start_nginx", start_nginx)
    monkeypatch.setattr(bench_run, "_targets", lambda quick, ipv6=False: [])
    monkeypatch.setattr(bench_run, "offloads", lambda lab: {"s0": []})

    def iperf3(lab: Any, addr: str, seconds: int, streams: int) -> Any:
        raise ValueError("iperf3: unable to connect to server")

    def start_haproxy_tcp(lab: Any, workdir: Path) -> Any:
        raise OSError("haproxy: cannot bind")

    monkeypatch.setattr(bench_run, "iperf3", iperf3)
    monkeypatch.setattr(bench_run, "start_haproxy_tcp", start_haproxy_tcp)
    args = bench_run.build_parser().parse_args([])
    assert bench_run.main(args) == 1
    assert seen and all(os.path.isabs(p) for p in seen)
    out = capsys.readouterr().out
    assert "kernel forward: failed: RuntimeError: trafgen exited with status 1\n" in out
    # The full run (the default) has the IPv6 references too, each failing in its own line.
    assert "kernel forward ipv6: failed: RuntimeError: trafgen exited with status 1\n" in out
    assert "failed: pps nft dnat ipv6: RuntimeError: trafgen exited" in out
    # nftables DNAT: an ip table, then an ip6 one for the IPv6 reference, each deleted after.
    rules = [rule.decode() for argv, rule in _FakeLab.nft if argv[:2] == ["nft", "-f"]]
    assert "ip daddr 203.0.113.10 udp dport 9000 dnat to numgen inc mod 3" in rules[0]
    assert rules[1].startswith("table ip6 pylvs_bench {")
    assert (
        "ip6 daddr 2001:db8:3::10 udp dport 9000 dnat to numgen inc mod 3 map "
        "{ 0 : 2001:db8:2::11, 1 : 2001:db8:2::12, 2 : 2001:db8:2::13 }" in rules[1]
    )
    deleted = [argv[2:] for argv, _rule in _FakeLab.nft if argv[1] == "delete"]
    assert deleted == [["table", "ip", "pylvs_bench"], ["table", "ip6", "pylvs_bench"]]
    assert "failed: http haproxy tcp: OSError: nginx: [emerg] open() failed" in out
    assert "failed: bulk kernel forward -P 4: ValueError: iperf3: unable to connect" in out
    assert "failed: bulk haproxy tcp: OSError: haproxy: cannot bind" in out
    assert "offloads on: none" in out
    assert "Traceback" not in out
    assert (tmp_path / "bench-results" / "bench.json").exists()


def test_ipv6_rows_mirror_the_single_worker_ipv4_rows_in_the_full_run() -> None:
    quick = [t.name for t in bench_run._targets(quick=True)]
    assert quick and not any(name.endswith("ipv6") for name in quick)
    full = bench_run._targets(quick=False, ipv6=True)
    ipv4 = [t for t in full if t.family == "ipv4"]
    ipv6 = [t for t in full if t.family == "ipv6"]
    assert [t.name + " ipv6" for t in ipv4 if t.workers == 1] == [t.name for t in ipv6]
    assert "pylvs afpacket dr ipv6" in [t.name for t in ipv6]
    assert not any(t.workers > 1 for t in ipv6)
    parser = bench_run.build_parser()
    assert parser.parse_args([]).ipv6 is None  # decided by --quick
    assert parser.parse_args(["--quick", "--ipv6"]).ipv6 is True
    assert parser.parse_args(["--no-ipv6"]).ipv6 is False


class _MacLab:
    topo = Topology()

    def mac(self, short: str, ifname: str) -> str:
        return {"d": "02:00:00:00:00:01", "s": "02:00:00:00:00:02"}[short]


def test_topology_ipv6_view_and_trafgen_frames(tmp_path: Path) -> None:
    t6 = Topology().ipv6()
    assert (t6.family, t6.sender, t6.vip) == ("ipv6", "2001:db8:1::2", "2001:db8:3::10")
    assert t6.reals == ("2001:db8:2::11", "2001:db8:2::12", "2001:db8:2::13")
    assert t6.front_if == "d0" and t6.udp_port == 9000
    lab: Any = _MacLab()
    v4 = trafgen_config(lab, tmp_path / "v4.cfg").read_text()
    assert "type=0x0800" in v4 and "ipv4(saddr=192.0.2.2, daddr=203.0.113.10, ttl=64)" in v4
    v6 = trafgen_config(lab, tmp_path / "v6.cfg", t6).read_text()
    assert "eth(da=02:00:00:00:00:01, sa=02:00:00:00:00:02, type=0x86dd)" in v6
    assert "ipv6(saddr=2001:db8:1::2, daddr=2001:db8:3::10, hl=64)" in v6
    assert "udp(sport=dinc(1024, 2047), dport=9000)" in v6
