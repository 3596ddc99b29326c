"""The throughput benchmark: pylvs against the kernel on the same namespaces, in one run.

For each target (kernel forwarding, nftables DNAT with ``numgen``, pylvs per backend, forwarding
method and data-plane runtime) a lossless-rate search (:mod:`pylvs.bench.pps`,
:mod:`pylvs.bench.search`); through pylvs DR and NAT, HTTP connections per second
(:mod:`pylvs.bench.http`) and bulk TCP with iperf3 (:mod:`pylvs.bench.bulk`), against HAProxy
(and, for bulk TCP, kernel forwarding). The full run (or ``--ipv6``) adds the same packet-rate
rows for IPv6 frames: kernel IPv6 forwarding, nftables ``ip6`` DNAT and pylvs per backend,
method and runtime (names ending in ``ipv6``; no HTTP or bulk runs). Writes
``<out>/bench.json`` and ``<out>/bench.png`` and prints the method and the tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pylvs.bench import report
from pylvs.bench.bulk import IPERF_PORT, iperf3, offloads, start_haproxy_tcp
from pylvs.bench.http import start_haproxy, start_nginx, wrk
from pylvs.bench.lab import BenchLab, Topology
from pylvs.bench.pps import FLOWS, sweep, trafgen_config
from pylvs.bench.search import SENDER_SHORTFALL, SearchPlan
from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.service import IPPROTO_TCP, IPPROTO_UDP, FwdMethod
from pylvs.ctl import ControlClient
from pylvs.daemon import pypy_runtime
from pylvs.testing.netns import wait_until

__all__ = ["FULL", "QUICK", "Profile", "PylvsTarget", "build_parser", "main", "run"]

FWD = {"nat": FwdMethod.MASQ, "dr": FwdMethod.ROUTE}
BULK_STREAMS = (1, 4)


@dataclass(frozen=True)
class Profile:
    """How long and how finely one run measures."""

    plan: SearchPlan
    step_seconds: float
    http_seconds: float
    bulk_seconds: int  # iperf3 -t (whole seconds)


# The quick run: under three minutes on the 2-core VM (every row, bulk included).
QUICK = Profile(
    SearchPlan(start=100_000, resolution_pps=10_000, resolution_fraction=0.05),
    step_seconds=1.0,
    http_seconds=2.0,
    bulk_seconds=2,
)
FULL = Profile(
    SearchPlan(start=50_000, resolution_pps=5_000, resolution_fraction=0.025, confirm=True),
    step_seconds=2.5,
    http_seconds=5.0,
    bulk_seconds=5,
)


@dataclass(frozen=True)
class PylvsTarget:
    backend: str
    method: str
    workers: int = 1
    data_plane: str = "cpython"  # pylvsd --data-plane
    family: str = "ipv4"  # the frames (and the UDP service): "ipv4" or "ipv6"

    @property
    def name(self) -> str:
        extra = f" x{self.workers}" if self.workers > 1 else ""
        runtime = " pypy" if self.data_plane == "pypy" else ""
        family = " ipv6" if self.family == "ipv6" else ""
        return f"pylvs {self.backend} {self.method}{extra}{runtime}{family}"


def _topo(lab: BenchLab, family: str) -> Topology:
    return lab.topo.ipv6() if family == "ipv6" else lab.topo


class _Daemon:
    """pylvsd in the director namespace, configured with the UDP, HTTP and bulk TCP services
    (for an IPv6 target, the IPv6 UDP service alone)."""

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
            # One core for pylvsd (and its worker), the other for the sender (pinned to CPU 0).
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
        services = [
            (IPPROTO_UDP, t.udp_port),
            (IPPROTO_TCP, t.http_port),
            (IPPROTO_TCP, IPERF_PORT),
        ]
        if target.family == "ipv6":
            t = t.ipv6()
            services = services[:1]
        for proto, port in services:
            svc = ServiceSpec(protocol=proto, addr=t.vip, port=port, scheduler="rr")
            self.ctl.add_service(svc)
            for rip in t.reals:
                dest = DestSpec(addr=rip, port=port, fwd=int(FWD[target.method]))
                self.ctl.add_dest(svc, dest)
        status = self.ctl.status()
        self.runtime = str(status.get("runtime", ""))
        self.details = dict(status.get("details", {}))
        workers = self.details.get("worker_pids", [])
        # pylvsd itself; its children (the workers) are found again at every step.
        self.pids = [int(status["pid"]), *(int(p) for p in workers)]

    def current_pids(self) -> list[int]:
        return self.pids

    def handled(self) -> int | None:
        """Packets the engine(s) decided on so far (the status' ``handled`` counter)."""
        value = self.ctl.status().get("handled")
        return int(value) if isinstance(value, int) else None

    def close(self) -> None:
        self.ctl.close()
        self.lab.stop(self.proc, timeout=10)


@contextmanager
def _nft_dnat(lab: BenchLab, t: Topology) -> Iterator[None]:
    """The nftables DNAT reference: the VIP's UDP port to the real servers in turn (``numgen``);
    for an IPv6 topology in an ``ip6`` table."""
    table = "pylvs_bench"
    family = "ip6" if t.family == "ipv6" else "ip"  # the table family and the address match
    rips = ", ".join(f"{i} : {rip}" for i, rip in enumerate(t.reals))
    rules = (
        f"table {family} {table} {{\n chain pre {{ type nat hook prerouting priority dstnat;\n"
        f"  {family} daddr {t.vip} udp dport {t.udp_port} dnat to numgen inc mod {len(t.reals)} "
        f"map {{ {rips} }}\n }}\n}}\n"
    )
    lab.run("d", ["nft", "-f", "-"], input=rules.encode())
    try:
        yield
    finally:
        lab.run("d", ["nft", "delete", "table", family, table], check=False)


def _targets(quick: bool, ipv6: bool = False) -> list[PylvsTarget]:
    """The pylvs rows: IPv4 (every backend, method and runtime; two workers in the full run),
    then with ``ipv6`` the same single-worker rows for IPv6 frames."""
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
        targets[6:6] = [
            PylvsTarget("nfqueue", "nat", data_plane="pypy"),
            PylvsTarget("nfqueue", "dr", data_plane="pypy"),
        ]
    if not quick:
        targets.append(PylvsTarget("afpacket", "dr", workers=2))
    if ipv6:
        targets += [dataclasses.replace(t, family="ipv6") for t in list(targets) if t.workers == 1]
    return targets


def _reason(exc: BaseException) -> str:
    """One line saying why a step failed."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


@functools.cache
def _python_of(executable: str) -> str:
    """``CPython 3.11.2`` / ``PyPy 3.9.16``: the implementation an interpreter runs."""
    code = "import platform; print(platform.python_implementation(), platform.python_version())"
    try:
        res = subprocess.run([executable, "-c", code], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return executable
    return res.stdout.decode().strip() or executable


def _runtime(target: PylvsTarget, daemon_runtime: str) -> str:
    """The Python the target's packets are handled on."""
    if target.data_plane == "pypy":
        pypy = pypy_runtime()
        return _python_of(pypy) if pypy else "PyPy"
    return daemon_runtime or f"{platform.python_implementation()} {platform.python_version()}"


def method(profile: Profile, lab_offloads: dict[str, list[str]] | None) -> dict[str, str]:
    """What was measured and how, printed above the tables and kept in bench.json."""
    plan = profile.plan
    on = {ifname: feats for ifname, feats in (lab_offloads or {}).items() if feats}
    offload_text = (
        "; ".join(f"{ifname}: {' '.join(feats)}" for ifname, feats in on.items()) if on else "none"
    )
    return {
        "frames": f"60-byte UDP frames (18 payload bytes; 80 bytes for the ipv6 rows), {FLOWS} "
        "flows (source ports), paced evenly in 1 ms ticks by pylvs.bench.pacer on CPU 0; the "
        "director process on CPU 1",
        "step": f"{profile.step_seconds:g} s per step; sent = s0 tx, delivered = r0 rx "
        "(counted until it settles after the sender stops)",
        "lossless": plan.describe() + "; lossless pps = delivered rate of the highest lossless "
        f"step; 'sender' = lossless as fast as the sender went (under {SENDER_SHORTFALL:.0%} of "
        "the offered rate), so the director's own limit is higher",
        "overload": "3x the lossless rate (or trafgen at full speed when the pacer cannot send "
        "that); held = delivered at that step, held/peak against the best delivered rate",
        "cpu": "utime+stime of pylvsd and every process below it (its workers) over the highest "
        "lossless step, divided by the packets its engine handled (status 'handled'); "
        "1-core pps = 1e6 / (CPU us per packet)",
        "http": f"wrk, 2 threads, 32 connections, Connection: close, {profile.http_seconds:g} s, "
        "to nginx (1 worker) on the receiver",
        "bulk": f"iperf3 -t {profile.bulk_seconds} with 1 and 4 streams (-P) from the sender to "
        "the receiver, both ends on CPU 0; Gbit/s received; HAProxy in TCP mode, 1 thread, "
        "on CPU 1",
        "offloads": f"offloads on: {offload_text}",
    }


def run(
    out: Path,
    quick: bool,
    progress: Callable[[str], None] = print,
    profile: Profile | None = None,
    only: list[str] | None = None,
    bulk: bool = True,
    lab_offloads: bool = False,
    ipv6: bool | None = None,
) -> dict[str, Any]:
    """Every step runs even if an earlier one failed; a failed step is reported in one line and
    recorded under ``failed`` (its figures are missing from the tables). ``only``: substrings of
    the target names to measure (all when empty). ``ipv6``: add the IPv6 rows (default: in the
    full run, not in the quick one)."""
    with_ipv6 = not quick if ipv6 is None else ipv6
    # nginx and haproxy are given these paths and resolve relative ones against their own prefix.
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    prof = profile or (QUICK if quick else FULL)
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "host": {"kernel": platform.release(), "python": platform.python_version()},
        "quick": quick,
        "frame_bytes": 60,
        "step_seconds": prof.step_seconds,
        "loss_threshold": prof.plan.threshold,
        "pps": {},
        "http": {},
        "bulk": {},
        "failed": {},
    }

    def wanted(name: str) -> bool:
        return not only or any(part in name for part in only)

    def stage(name: str) -> None:
        progress(f"== {name} (at {time.monotonic() - started:.0f} s)")

    def step(kind: str, name: str, measure: Callable[[], Any]) -> None:
        try:
            results[kind][name] = measure()
        except Exception as exc:
            results["failed"][f"{kind} {name}"] = reason = _reason(exc)
            progress(f"  {name}: failed: {reason}")

    def bulk_runs(name: str, addr: str) -> None:
        if not bulk:
            return
        runs: dict[str, Any] = {}
        for streams in BULK_STREAMS:
            try:
                runs[f"streams_{streams}"] = r = iperf3(lab, addr, prof.bulk_seconds, streams)
                progress(f"  bulk {streams} stream(s): {r['gbit_s']} Gbit/s "
                         f"({r['retransmits']} retransmits)")  # fmt: skip
            except Exception as exc:
                results["failed"][f"bulk {name} -P {streams}"] = reason = _reason(exc)
                progress(f"  bulk {streams} stream(s): failed: {reason}")
        if runs:
            results["bulk"][name] = runs

    with BenchLab(offloads=lab_offloads) as lab:
        lab.build()
        results["offloads"] = offloads(lab)
        results["method"] = method(prof, results["offloads"])
        progress(f"  {results['method']['offloads']}")
        configs = {"ipv4": trafgen_config(lab, out / "trafgen.cfg")}
        if with_ipv6:
            configs["ipv6"] = trafgen_config(lab, out / "trafgen6.cfg", lab.topo.ipv6())
        seconds = prof.step_seconds

        def kernel_rows(family: str) -> None:
            """Kernel forwarding and nftables DNAT: the references for the family's rows."""
            topo = _topo(lab, family)
            config = configs[family]
            suffix = " ipv6" if family == "ipv6" else ""
            if wanted(f"kernel forward{suffix}"):
                stage(f"kernel forwarding{suffix}")
                step(
                    "pps",
                    f"kernel forward{suffix}",
                    lambda: sweep(
                        lab, config, prof.plan, seconds, progress=progress, topo=topo
                    ).summary(),
                )
                if not suffix:
                    bulk_runs("kernel forward", lab.topo.vip)
            if wanted(f"nft dnat{suffix}"):
                stage(f"nftables DNAT (numgen){suffix}")

                def nft() -> dict[str, Any]:
                    with _nft_dnat(lab, topo):
                        res = sweep(lab, config, prof.plan, seconds, progress=progress, topo=topo)
                        return res.summary()

                step("pps", f"nft dnat{suffix}", nft)

        targets = _targets(quick, with_ipv6)
        for family in configs:  # IPv4 rows first, then the IPv6 ones, each after its references
            kernel_rows(family)
            for target in targets:
                if target.family != family or not wanted(target.name):
                    continue
                stage(target.name)
                step(
                    "pps",
                    target.name,
                    functools.partial(
                        _pylvs_target,
                        lab,
                        target,
                        out,
                        results,
                        configs[family],
                        prof,
                        progress,
                        bulk_runs,
                    ),
                )
        if wanted("haproxy"):
            stage("haproxy (tcp mode)")
            step("http", "haproxy tcp", lambda: _haproxy(lab, out, prof.http_seconds))
            if "haproxy tcp" in results["http"]:
                progress(f"  {results['http']['haproxy tcp']}")
            if bulk:
                try:
                    haproxy = start_haproxy_tcp(lab, out)
                except Exception as exc:
                    results["failed"]["bulk haproxy tcp"] = reason = _reason(exc)
                    progress(f"  bulk: failed: {reason}")
                else:
                    try:
                        bulk_runs("haproxy tcp", lab.topo.director_front)
                    finally:
                        lab.stop(haproxy)
    results["duration_s"] = round(time.monotonic() - started)
    results["goals"] = report.goals(results)
    (out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    report.chart(results, out / "bench.png")
    return results


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _pylvs_target(
    lab: BenchLab,
    target: PylvsTarget,
    out: Path,
    results: dict[str, Any],
    config: Path,
    prof: Profile,
    progress: Callable[[str], None],
    bulk_runs: Callable[[str, str], None],
) -> dict[str, Any]:
    daemon = _Daemon(lab, target, out / f"{_slug(target.name)}.log")
    try:
        res = sweep(lab, config, prof.plan, prof.step_seconds, daemon.current_pids, progress,
                    daemon.handled, _topo(lab, target.family))  # fmt: skip
        summary = res.summary()
        summary["runtime"] = _runtime(target, daemon.runtime)
        summary["status"] = {k: v for k, v in daemon.ctl.status().items() if k != "engine"}
        # HTTP and bulk TCP through the IPv4 rows (the IPv6 rows measure packet rates only).
        if target.workers == 1 and target.method in ("dr", "nat") and target.family == "ipv4":
            progress("  http")
            nginx = start_nginx(lab, out / "nginx")
            try:
                results["http"][target.name] = wrk(lab, lab.topo.vip, prof.http_seconds)
            except Exception as exc:
                results["failed"][f"http {target.name}"] = reason = _reason(exc)
                progress(f"  http: failed: {reason}")
            finally:
                lab.stop(nginx)
            if target.name in results["http"]:
                progress(f"  {results['http'][target.name]}")
            bulk_runs(target.name, lab.topo.vip)
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
    p.add_argument("--quick", action="store_true", help="shorter steps, coarser search (< 3 min)")
    p.add_argument("--out", type=Path, default=Path("bench-results"), help="output directory")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="measure only the rows whose name contains NAME (repeatable; e.g. 'pypy', 'kernel')",
    )
    p.add_argument("--no-bulk", action="store_true", help="skip the iperf3 bulk TCP runs")
    p.add_argument(
        "--ipv6",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the IPv6 packet-rate rows (default: in the full run, not with --quick)",
    )
    p.add_argument(
        "--bulk-seconds", type=int, metavar="S", help="iperf3 -t (default: 2 quick, 5 full)"
    )
    p.add_argument(
        "--offloads",
        choices=("off", "on"),
        default="off",
        help="lab veth offloads: off (ethtool -K ... off, the default) or on (the veth defaults)",
    )
    return p


def main(args: argparse.Namespace) -> int:
    profile = QUICK if args.quick else FULL
    if getattr(args, "bulk_seconds", None):
        profile = Profile(profile.plan, profile.step_seconds, profile.http_seconds,
                          args.bulk_seconds)  # fmt: skip
    try:
        results = run(
            args.out,
            args.quick,
            profile=profile,
            only=getattr(args, "only", None),
            bulk=not getattr(args, "no_bulk", False),
            lab_offloads=getattr(args, "offloads", "off") == "on",
            ipv6=getattr(args, "ipv6", None),
        )
    except Exception as exc:  # the lab itself could not be built: nothing was measured
        print(f"pylvs bench: {_reason(exc)}", file=sys.stderr)
        return 1
    print(report.table(results))
    for step, reason in results["failed"].items():
        print(f"failed: {step}: {reason}")
    print(f"took {results['duration_s']} s; wrote {args.out / 'bench.json'} and "
          f"{args.out / 'bench.png'}")  # fmt: skip
    return 1 if results["failed"] else 0
