"""The throughput benchmark: pylvs against the kernel on the same namespaces, in one run.

For each target (kernel forwarding, nftables DNAT with ``numgen``, pylvs per backend and
forwarding method) a packet-rate sweep (:mod:`pylvs.bench.pps`); then HTTP connections per second
(:mod:`pylvs.bench.http`) through pylvs DR and NAT and through HAProxy. Writes
``<out>/bench.json`` and ``<out>/bench.png`` and prints the tables.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pylvs.bench import report
from pylvs.bench.http import start_haproxy, start_nginx, wrk
from pylvs.bench.lab import BenchLab
from pylvs.bench.pps import sweep, trafgen_config
from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.service import IPPROTO_TCP, IPPROTO_UDP, FwdMethod
from pylvs.ctl import ControlClient
from pylvs.daemon import pypy_runtime
from pylvs.testing.netns import wait_until

__all__ = ["PylvsTarget", "build_parser", "main", "run"]

QUICK_RATES = [50_000, 100_000, 150_000, 200_000, 250_000]
FULL_RATES = [25_000, 50_000, 75_000, 100_000, 125_000, 150_000, 175_000, 200_000, 225_000,
              250_000, 275_000, 300_000]  # fmt: skip
FWD = {"nat": FwdMethod.MASQ, "dr": FwdMethod.ROUTE}


@dataclass(frozen=True)
class PylvsTarget:
    backend: str
    method: str
    workers: int = 1
    data_plane: str = "cpython"  # afpacket: pylvsd --data-plane

    @property
    def name(self) -> str:
        extra = f" x{self.workers}" if self.workers > 1 else ""
        runtime = " pypy" if self.data_plane == "pypy" else ""
        return f"pylvs {self.backend} {self.method}{extra}{runtime}"


class _Daemon:
    """pylvsd in the director namespace, configured with the UDP and HTTP services."""

    def __init__(self, lab: BenchLab, target: PylvsTarget, log: Path) -> None:
        self.lab = lab
        t = lab.topo
        argv = [
            sys.executable,
            "-m",
            "pylvs.cli.pylvsd",
            "--foreground",
            "--backend",
            target.backend,
        ]
        if target.backend == "afpacket":
            argv += ["--iface", t.front_if, "--iface", t.back_if, "--workers", str(target.workers)]
            argv += ["--data-plane", target.data_plane]
        if target.workers == 1:
            # One core for pylvsd, the other for trafgen (which pins itself to the first).
            argv = ["taskset", "-c", "1", *argv]
        with log.open("w") as out:
            self.proc = lab.popen("d", argv, stdout=out, stderr=subprocess.STDOUT)

        def ready() -> ControlClient | None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pylvsd exited: {log.read_text()}")
            try:
                with lab.inside("d"):
                    return ControlClient(timeout=10.0)
            except OSError:
                return None

        ctl = wait_until(ready, timeout=20, what="pylvsd")
        assert ctl is not None
        self.ctl = ctl
        for proto, port in ((IPPROTO_UDP, t.udp_port), (IPPROTO_TCP, t.http_port)):
            svc = ServiceSpec(protocol=proto, addr=t.vip, port=port, scheduler="rr")
            self.ctl.add_service(svc)
            for rip in t.reals:
                dest = DestSpec(addr=rip, port=port, fwd=int(FWD[target.method]))
                self.ctl.add_dest(svc, dest)
        status = self.ctl.status()
        workers = status.get("details", {}).get("worker_pids", [])
        self.pids = [int(status["pid"]), *(int(p) for p in workers)]

    def current_pids(self) -> list[int]:
        return self.pids

    def close(self) -> None:
        self.ctl.close()
        self.lab.stop(self.proc, timeout=10)


@contextmanager
def _nft_dnat(lab: BenchLab) -> Iterator[None]:
    t = lab.topo
    table = "pylvs_bench"
    rips = ", ".join(f"{i} : {rip}" for i, rip in enumerate(t.reals))
    rules = (
        f"table ip {table} {{\n chain pre {{ type nat hook prerouting priority dstnat;\n"
        f"  ip daddr {t.vip} udp dport {t.udp_port} dnat to numgen inc mod {len(t.reals)} "
        f"map {{ {rips} }}\n }}\n}}\n"
    )
    lab.run("d", ["nft", "-f", "-"], input=rules.encode())
    try:
        yield
    finally:
        lab.run("d", ["nft", "delete", "table", "ip", table], check=False)


def _targets(quick: bool) -> list[PylvsTarget]:
    targets = [
        PylvsTarget("afpacket", "dr"),
        PylvsTarget("afpacket", "nat"),
        PylvsTarget("nfqueue", "nat"),
        PylvsTarget("nfqueue", "dr"),
    ]
    if pypy_runtime() is not None:  # the data plane on PyPy, beside the same rows on CPython
        targets[2:2] = [
            PylvsTarget("afpacket", "dr", data_plane="pypy"),
            PylvsTarget("afpacket", "nat", data_plane="pypy"),
        ]
    if not quick:
        targets.append(PylvsTarget("afpacket", "dr", workers=2))
    return targets


def _reason(exc: BaseException) -> str:
    """One line saying why a step failed."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def run(out: Path, quick: bool, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Every step runs even if an earlier one failed; a failed step is reported in one line and
    recorded under ``failed`` (its figures are missing from the tables)."""
    # nginx and haproxy are given these paths and resolve relative ones against their own prefix.
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    rates = QUICK_RATES if quick else FULL_RATES
    seconds = 1.5 if quick else 2.5
    http_seconds = 3.0 if quick else 5.0
    started = time.time()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "host": {"kernel": platform.release(), "python": platform.python_version()},
        "quick": quick,
        "frame_bytes": 60,
        "step_seconds": seconds,
        "pps": {},
        "http": {},
        "failed": {},
    }

    def step(kind: str, name: str, measure: Callable[[], Any]) -> None:
        try:
            results[kind][name] = measure()
        except Exception as exc:
            results["failed"][f"{kind} {name}"] = reason = _reason(exc)
            progress(f"  {name}: failed: {reason}")

    with BenchLab() as lab:
        lab.build()
        config = trafgen_config(lab, out / "trafgen.cfg")
        progress("== kernel forwarding")
        step(
            "pps",
            "kernel forward",
            lambda: sweep(lab, config, rates, seconds, progress=progress).summary(),
        )
        progress("== nftables DNAT (numgen)")

        def nft() -> dict[str, Any]:
            with _nft_dnat(lab):
                return sweep(lab, config, rates, seconds, progress=progress).summary()

        step("pps", "nft dnat", nft)
        for target in _targets(quick):
            progress(f"== {target.name}")
            step(
                "pps",
                target.name,
                functools.partial(
                    _pylvs_target, lab, target, out, results, config, rates, seconds,
                    http_seconds, progress,
                ),
            )  # fmt: skip
        progress("== haproxy (tcp mode)")
        step("http", "haproxy tcp", lambda: _haproxy(lab, out, http_seconds))
        if "haproxy tcp" in results["http"]:
            progress(f"  {results['http']['haproxy tcp']}")
    results["duration_s"] = round(time.time() - started)
    results["goals"] = report.goals(results)
    (out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    report.chart(results, out / "bench.png")
    return results


def _pylvs_target(
    lab: BenchLab,
    target: PylvsTarget,
    out: Path,
    results: dict[str, Any],
    config: Path,
    rates: list[int],
    seconds: float,
    http_seconds: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    daemon = _Daemon(lab, target, out / f"pylvsd-{target.backend}-{target.method}.log")
    try:
        res = sweep(lab, config, rates, seconds, daemon.current_pids, progress)
        summary = res.summary()
        summary["status"] = {k: v for k, v in daemon.ctl.status().items() if k != "engine"}
        if target.workers == 1 and target.method in ("dr", "nat"):
            progress("  http")
            nginx = start_nginx(lab, out / "nginx")
            try:
                results["http"][target.name] = wrk(lab, lab.topo.vip, http_seconds)
            except Exception as exc:
                results["failed"][f"http {target.name}"] = reason = _reason(exc)
                progress(f"  http: failed: {reason}")
            finally:
                lab.stop(nginx)
            if target.name in results["http"]:
                progress(f"  {results['http'][target.name]}")
        return summary
    finally:
        daemon.close()


def _haproxy(lab: BenchLab, out: Path, http_seconds: float) -> dict[str, Any]:
    nginx = start_nginx(lab, out / "nginx")
    try:
        haproxy = start_haproxy(lab, out)
        try:
            return wrk(lab, lab.topo.director_front, http_seconds)
        finally:
            lab.stop(haproxy)
    finally:
        lab.stop(nginx)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="pylvs bench", description="throughput of pylvs against the kernel, in namespaces"
    )
    p.add_argument("--quick", action="store_true", help="fewer, shorter steps (about 3 minutes)")
    p.add_argument("--out", type=Path, default=Path("bench-results"), help="output directory")
    return p


def main(args: argparse.Namespace) -> int:
    try:
        results = run(args.out, args.quick)
    except Exception as exc:  # the lab itself could not be built: nothing was measured
        print(f"pylvs bench: {_reason(exc)}", file=sys.stderr)
        return 1
    print(report.table(results))
    for step, reason in results["failed"].items():
        print(f"failed: {step}: {reason}")
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.png'}")
    return 1 if results["failed"] else 0
