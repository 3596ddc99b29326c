"""Packets per second through the director: 60-byte UDP frames (80-byte over IPv6) offered at
paced rates.

For one director configuration, :func:`sweep` searches the highest lossless rate
(:func:`pylvs.bench.search.find_lossless`: doubling, then bisection, to a stated resolution).
Each step offers one rate for ``seconds`` and counts the frames the sender put on the wire
(``s0`` tx) and the frames that reached the receiver (``r0`` rx); a step is lossless when under
0.1% of the frames are missing (:data:`~pylvs.bench.search.LOSS_THRESHOLD`) and the director had
kept up (no more than :data:`~pylvs.bench.search.MAX_BACKLOG_SECONDS` of frames still arrived
after the sender stopped: a deep buffer hides a rate it cannot sustain). Then it offers 3x
the highest lossless rate (or as much as trafgen can, when the pacer cannot send that fast) to
see how the director holds up under overload.

CPU time per packet is read from ``/proc/<pid>/stat`` (utime + stime) of pylvsd and every
process below it (its data-plane workers: forked, or started on PyPy with ``subprocess``) over
each step, and divided by the packets pylvsd's engine handled in the step (its status'
``handled`` counter; the delivered frames when there is none). It is given for the highest
lossless step: there the director is busy but not yet dropping.

Rated steps are sent by :mod:`pylvs.bench.pacer` (evenly, in 1 ms ticks), not by ``trafgen -b``,
whose shaper sends a second's frames in one burst at full speed: a rate step then measured how
big a burst the director can buffer, not the rate it sustains. The "as fast as it can" step
(rate 0) still uses trafgen, the faster sender.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pylvs.bench.lab import BenchLab, Topology
from pylvs.bench.search import (
    LOSS_THRESHOLD,
    SearchPlan,
    cpu_us_per_packet,
    find_lossless,
    one_core_pps,
    tree_of,
)

__all__ = [
    "FLOWS",
    "LOSSLESS",
    "Step",
    "SweepResult",
    "cpu_seconds",
    "process_tree",
    "sweep",
    "trafgen_config",
]

LOSSLESS = LOSS_THRESHOLD
_CLK_TCK = os.sysconf("SC_CLK_TCK")
FLOWS = 1024  # distinct source ports: the connection table holds this many UDP entries
_SETTLE_POLL = 0.05
_SETTLE_POLLS = 3
_SETTLE_MAX = 5.0


@dataclass
class Step:
    offered_pps: int  # asked of the pacer (0: trafgen as fast as it can)
    sent: int
    received: int
    seconds: float
    cpu_seconds: float  # pylvsd (and workers) during the step; 0 for kernel targets
    handled: int | None = None  # packets pylvsd's engine handled in the step (None: not pylvs)
    backlog: int = 0  # frames that reached the receiver after the sender had stopped

    @property
    def loss(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0

    @property
    def sent_pps(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def delivered_pps(self) -> float:
        return self.received / self.seconds if self.seconds else 0.0

    @property
    def backlog_seconds(self) -> float:
        """How far behind the director was when the sender stopped, at the step's rate."""
        return self.backlog / self.sent_pps if self.sent_pps else 0.0

    @property
    def cpu_us_per_packet(self) -> float | None:
        packets = self.handled if self.handled else self.received
        return cpu_us_per_packet(self.cpu_seconds, packets)

    def as_dict(self) -> dict[str, Any]:
        cpu_us = self.cpu_us_per_packet
        return {
            **asdict(self),
            "loss": round(self.loss, 5),
            "sent_pps": round(self.sent_pps),
            "delivered_pps": round(self.delivered_pps),
            "cpu_us_per_packet": round(cpu_us, 2) if cpu_us is not None else None,
        }


@dataclass
class SweepResult:
    steps: list[Step] = field(default_factory=list)
    overload: Step | None = None
    best: Step | None = None  # the highest lossless step of the search
    lossy_pps: float | None = None  # the lowest sent rate found lossy
    sender_bound: bool = False
    contradictions: int = 0  # steps the search set aside (see pylvs.bench.search)

    @property
    def lossless(self) -> Step | None:
        return self.best

    @property
    def peak_pps(self) -> float:
        every = [*self.steps, *([self.overload] if self.overload else [])]
        return max((s.delivered_pps for s in every), default=0.0)

    def cpu_step(self) -> Step | None:
        """The step whose CPU cost is reported: the highest lossless one, else (the director lost
        frames at every rate) the one that delivered most."""
        if self.best is not None and self.best.cpu_us_per_packet is not None:
            return self.best
        measured = [s for s in self.steps if s.cpu_us_per_packet is not None]
        return max(measured, key=lambda s: s.delivered_pps) if measured else None

    def summary(self) -> dict[str, Any]:
        best = self.best
        over = self.overload
        cpu = self.cpu_step()
        cpu_us = cpu.cpu_us_per_packet if cpu is not None else None
        return {
            "lossless_pps": round(best.delivered_pps) if best else 0,
            "lossy_pps": round(self.lossy_pps) if self.lossy_pps is not None else None,
            "sender_bound": self.sender_bound,
            "contradictions": self.contradictions,
            "peak_pps": round(self.peak_pps),
            "overload_offered_pps": round(over.sent_pps) if over else 0,
            "overload_pps": round(over.delivered_pps) if over else 0,
            "overload_of_peak": (
                round(over.delivered_pps / self.peak_pps, 3) if over and self.peak_pps else 0.0
            ),
            "cpu_us_per_packet": round(cpu_us, 2) if cpu_us is not None else None,
            "one_core_pps": one_core_pps(cpu_us),
            "cpu_at_pps": round(cpu.delivered_pps) if cpu is not None else None,
            "cpu_at_lossless": cpu is not None and cpu is best,
            "steps": [s.as_dict() for s in self.steps],
            "overload": over.as_dict() if over else None,
        }


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (field 4 of /proc/<pid>/stat)."""
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(name)] = int(fields[1])
    return out


def process_tree(pids: Sequence[int]) -> list[int]:
    """``pids`` and all their descendants, now."""
    return tree_of(pids, _parents()) if pids else []


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes (fields 14 and 15 of /proc/<pid>/stat), in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _CLK_TCK


def trafgen_config(lab: BenchLab, path: Path, topo: Topology | None = None) -> Path:
    """A trafgen packet: sender -> VIP:udp_port, source port cycling over FLOWS values, 60 bytes
    (14 Ethernet + 20 IPv4 + 8 UDP + 18 payload) or, for an IPv6 ``topo``, 80 bytes (40-byte
    IPv6 header); trafgen computes the checksums. The same frames as :mod:`pylvs.bench.pacer`
    sends."""
    t = topo or lab.topo
    dmac = lab.mac("d", t.front_if)
    smac = lab.mac("s", t.sender_if)
    if t.family == "ipv6":
        ethertype, l3 = "0x86dd", f"ipv6(saddr={t.sender}, daddr={t.vip}, hl=64)"
    else:
        ethertype, l3 = "0x0800", f"ipv4(saddr={t.sender}, daddr={t.vip}, ttl=64)"
    path.write_text(
        "{\n"
        f"  eth(da={dmac}, sa={smac}, type={ethertype}),\n"
        f"  {l3},\n"
        f"  udp(sport=dinc(1024, {1024 + FLOWS - 1}), dport={t.udp_port}),\n"
        "  fill(0x41, 18)\n"
        "}\n"
    )
    return path


def _pacer_argv(lab: BenchLab, t: Topology, rate: int, count: int) -> list[str]:
    return [
        "taskset", "-c", "0", sys.executable, "-m", "pylvs.bench.pacer", "--iface", t.sender_if,
        "--dmac", lab.mac("d", t.front_if), "--smac", lab.mac("s", t.sender_if),
        "--saddr", t.sender, "--daddr", t.vip, "--dport", str(t.udp_port),
        "--sport", "1024", "--flows", str(FLOWS), "--rate", str(rate), "--count", str(count),
    ]  # fmt: skip


def _stop_group(proc: subprocess.Popen[Any]) -> None:
    """SIGINT (trafgen's own stop), then SIGKILL, to the process group ``proc`` leads."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=3)
            return
        except subprocess.TimeoutExpired:
            continue


def _step(
    lab: BenchLab,
    config: Path,
    rate: int,
    seconds: float,
    pids: Callable[[], Sequence[int]],
    handled: Callable[[], int | None],
    t: Topology,
) -> Step:
    count = int(rate * seconds) if rate else int(2_000_000 * seconds)
    if rate:
        argv = _pacer_argv(lab, t, rate, count)
    else:
        # As fast as it can: trafgen's transmit ring (one process, pinned to CPU 0).
        argv = ["trafgen", "-o", t.sender_if, "-i", str(config), "-P", "1", "-q", "-n", str(count)]
    # The processes are listed once per step: workers started (or restarted) since are counted
    # from the next step on; a process that exits during the step loses its part (its CPU time
    # goes to its parent's cutime, which is not read).
    procs = process_tree(pids())
    sent0 = lab.packets("s", t.sender_if, "tx_packets")
    recv0 = lab.packets("r", t.receiver_if, "rx_packets")
    handled0 = handled()
    cpu0 = cpu_seconds(procs)
    start = time.monotonic()
    # trafgen forks its senders (-P): its own session, so stopping it stops its whole group.
    proc = lab.popen(
        "s", argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        # Without a rate, -n is a generous upper bound: stop trafgen after ``seconds``.
        out, _err = proc.communicate(timeout=seconds * 3 + 5 if rate else seconds)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        out = b""
    lab.stop(proc)
    elapsed = time.monotonic() - start
    # The pacer reports how long it sent (without its start-up): the rate's denominator.
    words = out.decode(errors="replace").split()
    if rate and "seconds" in words:
        elapsed = float(words[words.index("seconds") + 1])
    # Frames still queued in the director (up to 16384 with NFQUEUE) arrive after the sender
    # stopped: wait until the receiver's count settles, so they are not counted in the next step.
    # Settled: no new frame for _SETTLE_POLLS polls in a row (a busy machine can pause the
    # director for longer than one poll), or _SETTLE_MAX seconds.
    received = at_stop = lab.packets("r", t.receiver_if, "rx_packets")
    quiet = 0
    deadline = time.monotonic() + _SETTLE_MAX
    while quiet < _SETTLE_POLLS and time.monotonic() < deadline:
        time.sleep(_SETTLE_POLL)
        now = lab.packets("r", t.receiver_if, "rx_packets")
        quiet = quiet + 1 if now == received else 0
        received = now
    received -= recv0
    cpu = cpu_seconds(procs) - cpu0
    handled1 = handled()
    sent = lab.packets("s", t.sender_if, "tx_packets") - sent0
    count_handled = handled1 - handled0 if handled0 is not None and handled1 is not None else None
    backlog = recv0 + received - at_stop
    return Step(rate, sent, received, elapsed, cpu, count_handled, backlog)


def _no_count() -> int | None:
    return None


def sweep(
    lab: BenchLab,
    config: Path,
    plan: SearchPlan,
    seconds: float,
    pids: Callable[[], Sequence[int]] = lambda: [],
    progress: Callable[[str], None] = lambda line: None,
    handled: Callable[[], int | None] = _no_count,
    topo: Topology | None = None,
) -> SweepResult:
    """Search the lossless rate (``plan``), then offer 3x that rate; ``topo``: the addresses the
    frames carry (``lab.topo``, IPv4, by default; ``lab.topo.ipv6()`` for IPv6 frames, with a
    matching trafgen ``config``)."""
    t = topo or lab.topo

    def measure(rate: int) -> Step:
        step = _step(lab, config, rate, seconds, pids, handled, t)
        cpu = step.cpu_us_per_packet
        progress(
            f"  offered {rate:>7} sent {step.sent_pps:9.0f}/s "
            f"delivered {step.delivered_pps:9.0f}/s loss {step.loss:7.3%}"
            + f" backlog {step.backlog:6d}"
            + (f" cpu {cpu:6.2f} us/pkt" if cpu is not None else "")
        )
        return step

    search = find_lossless(measure, plan)
    result = SweepResult(
        steps=search.steps,
        best=search.lossless,
        lossy_pps=search.lossy_pps,
        sender_bound=search.sender_bound,
        contradictions=search.contradictions,
    )
    best = result.best
    overload_rate = 3 * round(best.delivered_pps) if best else 0
    if overload_rate and overload_rate > max(s.sent_pps for s in result.steps) * 1.2:
        overload_rate = 0  # beyond the pacer: trafgen offers what it can
    result.overload = _step(lab, config, overload_rate, seconds, pids, handled, t)
    over = result.overload
    progress(
        f"  overload {over.sent_pps:9.0f}/s offered, {over.delivered_pps:9.0f}/s delivered "
        f"(loss {over.loss:.1%})"
    )
    return result
