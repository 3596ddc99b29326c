"""Packets per second through the director: 60-byte UDP frames offered at rising rates.

For one director configuration (a :class:`Target`), :func:`sweep` offers each rate of a list for
``seconds`` and counts the frames the sender put on the wire (``s0`` tx) and the frames that
reached the receiver (``r0`` rx). A step is lossless when under 0.1% of the frames are missing.
The sweep stops after two steps that lost over 20% (past the peak), then offers 3x the highest
lossless rate (or as much as trafgen can, when the pacer cannot send that fast) to see how the
director holds up under overload. CPU time per forwarded packet is read from ``/proc/<pid>/stat``
(utime + stime of pylvsd and its worker processes) over each step.

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

from pylvs.bench.lab import BenchLab

__all__ = ["LOSSLESS", "Step", "SweepResult", "cpu_seconds", "sweep", "trafgen_config"]

LOSSLESS = 0.001
_CLK_TCK = os.sysconf("SC_CLK_TCK")
FLOWS = 1024  # distinct source ports: the connection table holds this many UDP entries


@dataclass
class Step:
    offered_pps: int  # asked of trafgen (0: as fast as it can)
    sent: int
    received: int
    seconds: float
    cpu_seconds: float  # pylvsd (and workers) during the step; 0 for kernel targets

    @property
    def loss(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0

    @property
    def sent_pps(self) -> float:
        return self.sent / self.seconds

    @property
    def delivered_pps(self) -> float:
        return self.received / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "loss": round(self.loss, 5),
            "sent_pps": round(self.sent_pps),
            "delivered_pps": round(self.delivered_pps),
        }


@dataclass
class SweepResult:
    steps: list[Step] = field(default_factory=list)
    overload: Step | None = None

    @property
    def lossless(self) -> Step | None:
        ok = [s for s in self.steps if s.loss < LOSSLESS]
        return max(ok, key=lambda s: s.delivered_pps) if ok else None

    @property
    def peak_pps(self) -> float:
        every = [*self.steps, *([self.overload] if self.overload else [])]
        return max((s.delivered_pps for s in every), default=0.0)

    def summary(self) -> dict[str, Any]:
        best = self.lossless
        cpu_us = None
        if best is not None and best.cpu_seconds and best.received:
            cpu_us = round(best.cpu_seconds / best.received * 1e6, 2)
        over = self.overload
        return {
            "lossless_pps": round(best.delivered_pps) if best else 0,
            "peak_pps": round(self.peak_pps),
            "overload_offered_pps": round(over.sent_pps) if over else 0,
            "overload_pps": round(over.delivered_pps) if over else 0,
            "overload_of_peak": (
                round(over.delivered_pps / self.peak_pps, 3) if over and self.peak_pps else 0.0
            ),
            "cpu_us_per_packet": cpu_us,
            "steps": [s.as_dict() for s in self.steps],
            "overload": over.as_dict() if over else None,
        }


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


def trafgen_config(lab: BenchLab, path: Path) -> Path:
    """A trafgen packet: sender -> VIP:udp_port, source port cycling over FLOWS values, 60 bytes
    (14 Ethernet + 20 IPv4 + 8 UDP + 18 payload); trafgen computes the checksums. The same frames
    as :mod:`pylvs.bench.pacer` sends."""
    t = lab.topo
    dmac = lab.mac("d", t.front_if)
    smac = lab.mac("s", t.sender_if)
    path.write_text(
        "{\n"
        f"  eth(da={dmac}, sa={smac}, type=0x0800),\n"
        f"  ipv4(saddr={t.sender}, daddr={t.vip}, ttl=64),\n"
        f"  udp(sport=dinc(1024, {1024 + FLOWS - 1}), dport={t.udp_port}),\n"
        "  fill(0x41, 18)\n"
        "}\n"
    )
    return path


def _pacer_argv(lab: BenchLab, rate: int, count: int) -> list[str]:
    t = lab.topo
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
    lab: BenchLab, config: Path, rate: int, seconds: float, pids: Callable[[], Sequence[int]]
) -> Step:
    t = lab.topo
    count = int(rate * seconds) if rate else int(2_000_000 * seconds)
    if rate:
        argv = _pacer_argv(lab, rate, count)
    else:
        # As fast as it can: trafgen's transmit ring (one process, pinned to CPU 0).
        argv = ["trafgen", "-o", t.sender_if, "-i", str(config), "-P", "1", "-q", "-n", str(count)]
    sent0 = lab.packets("s", t.sender_if, "tx_packets")
    recv0 = lab.packets("r", t.receiver_if, "rx_packets")
    cpu0 = cpu_seconds(pids())
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
    received = lab.packets("r", t.receiver_if, "rx_packets")
    for _wait in range(30):
        time.sleep(0.1)
        now = lab.packets("r", t.receiver_if, "rx_packets")
        if now == received:
            break
        received = now
    received -= recv0
    cpu = cpu_seconds(pids()) - cpu0
    sent = lab.packets("s", t.sender_if, "tx_packets") - sent0
    return Step(rate, sent, received, elapsed, cpu)


def sweep(
    lab: BenchLab,
    config: Path,
    rates: Sequence[int],
    seconds: float,
    pids: Callable[[], Sequence[int]] = lambda: [],
    progress: Callable[[str], None] = lambda line: None,
) -> SweepResult:
    result = SweepResult()
    bad = 0
    for rate in rates:
        step = _step(lab, config, rate, seconds, pids)
        result.steps.append(step)
        progress(
            f"  offered {rate or 'max':>7} sent {step.sent_pps:9.0f}/s "
            f"delivered {step.delivered_pps:9.0f}/s loss {step.loss:7.3%}"
        )
        if step.sent_pps < rate * 0.8:
            break  # the sender cannot go faster
        bad = bad + 1 if step.loss > 0.2 else 0
        if bad >= 2:
            break
    best = result.lossless
    overload_rate = 3 * round(best.delivered_pps) if best else 0
    if overload_rate and overload_rate > max(s.sent_pps for s in result.steps) * 1.2:
        overload_rate = 0  # beyond trafgen: offer what it can
    result.overload = _step(lab, config, overload_rate, seconds, pids)
    over = result.overload
    progress(
        f"  overload {over.sent_pps:9.0f}/s offered, {over.delivered_pps:9.0f}/s delivered "
        f"(loss {over.loss:.1%})"
    )
    return result
