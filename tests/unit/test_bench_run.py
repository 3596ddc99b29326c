"""scripts/bench's run: paths handed to servers are absolute, and a failing step is one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pylvs.bench import run as bench_run


class _FakeLab:
    topo = type("T", (), {"vip": "203.0.113.10", "director_front": "192.0.2.1"})()

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
    monkeypatch.setattr(bench_run, "trafgen_config", lambda lab, path: path)
    monkeypatch.setattr(bench_run, "sweep", sweep)
    monkeypatch.setattr(bench_run, "start_nginx", start_nginx)
    monkeypatch.setattr(bench_run, "_targets", lambda quick: [])
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
    assert "failed: http haproxy tcp: OSError: nginx: [emerg] open() failed" in out
    assert "failed: bulk kernel forward -P 4: ValueError: iperf3: unable to connect" in out
    assert "failed: bulk haproxy tcp: OSError: haproxy: cannot bind" in out
    assert "offloads on: none" in out
    assert "Traceback" not in out
    assert (tmp_path / "bench-results" / "bench.json").exists()
