"""Failover figures of pylvsd's heartbeat: ``python -m pylvs.bench.failover`` (as root).

Two pylvsd heartbeat nodes (``keepalive 100ms``, ``deadtime 500ms``, two media: the LAN and a
direct link) and a client on one LAN, in namespaces this program creates and removes. It
measures, and prints as tables:

* **kill -9**: the time from killing the holder's pylvsd to the VIP on the other node, and to
  the client's neighbour entry for the VIP naming the new node's MAC (the gratuitous ARP);
* **graceful stop** (SIGTERM) and **hb_standby** (``pylvs ha standby``): the hand-over time, and
  the client's probes lost meanwhile (a UDP probe to the VIP every 10 ms, answered by whichever
  node holds it);
* **soak**: random loss on one of the two media (iptables ``statistic``, this kernel has no
  netem) for some minutes; the number of failovers (none is the goal).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pylvs.ctl import ControlClient
from pylvs.testing.netns import Lab, wait_until

__all__ = ["main"]

VIP = "10.82.0.100"
LAN = {"a": "10.82.0.2", "b": "10.82.0.3", "c": "10.82.0.10"}
LINK = {"a": "10.82.9.1", "b": "10.82.9.2"}
PROBE_PORT = 7007


def _ha_dir(work: Path, short: str) -> Path:
    d = work / f"ha-{short}"
    d.mkdir(exist_ok=True)
    (d / "ha.cf").write_text(
        "keepalive 100ms\nwarntime 300ms\ndeadtime 500ms\ninitdead 2\nudpport 694\n"
        f"ucast eth0 {LAN['a']}\nucast eth0 {LAN['b']}\n"
        f"ucast eth1 {LINK['a']}\nucast eth1 {LINK['b']}\n"
        "auto_failback on\nnode nodea\nnode nodeb\n"
    )
    (d / "authkeys").write_text("auth 1\n1 sha1 pylvs-failover-bench\n")
    os.chmod(d / "authkeys", 0o600)
    (d / "haresources").write_text(f"nodea IPaddr2::{VIP}/24/eth0\n")
    return d


class Farm:
    def __init__(self, lab: Lab, work: Path) -> None:
        self.lab, self.work = lab, work
        self.procs: dict[str, subprocess.Popen[Any]] = {}
        lab.add_netns("sw")
        lab.run("sw", ["ip", "link", "add", "br0", "type", "bridge"])
        lab.run("sw", ["ip", "link", "set", "br0", "up"])
        for short, addr in LAN.items():
            lab.add_netns(short)
            lab.veth(short, "eth0", "sw", f"p{short}", f"{addr}/24")
            lab.run("sw", ["ip", "link", "set", f"p{short}", "master", "br0"])
        lab.veth("a", "eth1", "b", "eth1", f"{LINK['a']}/24", f"{LINK['b']}/24")
        self.responders = {s: self._responder(s) for s in ("a", "b")}

    def _responder(self, short: str) -> subprocess.Popen[Any]:
        """A UDP echo on the VIP's port: whichever node holds the VIP answers the probes."""
        code = (
            "import socket\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "s.setsockopt(socket.SOL_IP,15,1)\n"  # IP_FREEBIND: the VIP comes and goes
            f"s.bind(('{VIP}',{PROBE_PORT}))\n"
            "while True:\n d,a=s.recvfrom(64); s.sendto(d,a)\n"
        )
        return self.lab.popen(short, [sys.executable, "-c", code])

    def start(self, short: str) -> None:
        log = (self.work / f"pylvsd-{short}.log").open("a")
        argv = [sys.executable, "-m", "pylvs.cli.pylvsd", "--foreground", "--socket", "pylvsd"]
        argv += ["--ha", str(_ha_dir(self.work, short)), "--ha-node", f"node{short}"]
        argv += ["--ha-state", str(self.work / f"state-{short}")]
        self.procs[short] = self.lab.popen(short, argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(lambda: self.status(short) is not None, timeout=15, what=f"pylvsd {short}")

    def status(self, short: str) -> dict[str, Any] | None:
        try:
            with self.lab.inside(short), ControlClient(timeout=2.0) as ctl:
                result: dict[str, Any] = ctl.request("ha-status")
                return result
        except (OSError, ConnectionError):
            return None

    def holds(self, short: str) -> bool:
        out = self.lab.run(short, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"], text=True)
        return f"inet {VIP}/" in str(out.stdout)

    def holders(self) -> list[str]:
        return [s for s in ("a", "b") if self.holds(s)]

    def mac(self, short: str) -> str:
        out = self.lab.run(short, ["cat", "/sys/class/net/eth0/address"], text=True).stdout
        return str(out).strip()

    def client_entry(self) -> str:
        out = self.lab.run("c", ["ip", "neigh", "show", VIP, "dev", "eth0"], text=True).stdout
        return str(out)

    def steady(self) -> None:
        wait_until(lambda: self.holders() == ["a"], timeout=30, what="VIP on nodea")
        for me, peer in (("a", "nodeb"), ("b", "nodea")):

            def ok(me: str = me, peer: str = peer) -> bool:
                st = self.status(me)
                return bool(
                    st
                    and st["nodes"][peer]["status"] == "active"
                    and st["nodes"][peer]["deadtime_ms"] == 500
                    and st["resources"]["state"] != "transition"
                )

            wait_until(ok, timeout=30, what=f"node{me} steady")
        self.lab.run("c", ["ping", "-c", "1", "-W", "2", VIP])
        mac = self.mac(self.holders()[0])
        wait_until(lambda: mac in self.client_entry(), timeout=5, what="client entry")
        # The kernel ignores a new address for a neighbour entry changed less than locktime
        # (1 s) ago: hand-overs in quick succession would measure that, not pylvs.
        time.sleep(1.1)

    def kill(self, short: str) -> float:
        proc = self.procs.pop(short)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        return time.monotonic()

    def stop(self, short: str) -> float:
        """SIGTERM; the caller waits for the hand-over, then :meth:`reap`."""
        at = time.monotonic()
        self.procs[short].send_signal(signal.SIGTERM)
        return at

    def reap(self, short: str) -> None:
        self.procs.pop(short).wait(timeout=30)


class Prober:
    """A UDP probe to the VIP every 10 ms from the client; counts the unanswered ones."""

    def __init__(self, lab: Lab) -> None:
        with lab.inside("c"):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.01)
        self.sent = self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            seq += 1
            self.sock.sendto(seq.to_bytes(8, "big"), (VIP, PROBE_PORT))
            self.sent += 1
            end = time.monotonic() + 0.01
            while time.monotonic() < end:
                try:
                    self.sock.recv(64)
                    self.answered += 1
                except OSError:
                    break

    @contextmanager
    def running(self) -> Iterator[Prober]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=2)
            self.sock.close()

    @property
    def lost(self) -> int:
        return self.sent - self.answered


def _row(name: str, values: list[float], unit: str = "s") -> str:
    if not values:
        return f"{name:<44} -"
    return (
        f"{name:<44} median {statistics.median(values):6.3f} {unit}  "
        f"min {min(values):6.3f}  max {max(values):6.3f}  (n={len(values)})"
    )


def measure(runs: int, soak_minutes: float, loss: float) -> list[str]:
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pylvs-failover-") as tmp, Lab() as lab:
        farm = Farm(lab, Path(tmp))
        farm.start("a")
        wait_until(lambda: farm.holds("a"), timeout=15)
        farm.start("b")
        kill_vip, kill_arp = [], []
        for _ in range(runs):
            farm.steady()
            at = farm.kill("a")
            wait_until(lambda: farm.holds("b"), timeout=10, interval=0.005)
            kill_vip.append(time.monotonic() - at)
            mac_b = farm.mac("b")

            def moved(mac: str = mac_b) -> bool:
                return mac in farm.client_entry()

            wait_until(moved, timeout=5, interval=0.005)
            kill_arp.append(time.monotonic() - at)
            lab.run("a", ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])  # as a reboot
            farm.start("a")
        lines.append(_row("kill -9: VIP on the other node", kill_vip))
        lines.append(_row("kill -9: client's neighbour entry moved", kill_arp))

        stop_times, stop_lost, standby_times, standby_lost = [], [], [], []
        for _ in range(runs):
            farm.steady()
            with Prober(lab).running() as probe:
                time.sleep(0.3)  # probes flowing before the hand-over
                at = farm.stop("a")
                wait_until(lambda: farm.holds("b"), timeout=10, interval=0.005)
                stop_times.append(time.monotonic() - at)
                farm.reap("a")
                time.sleep(0.3)  # probes flowing after it
            stop_lost.append(float(probe.lost))
            farm.start("a")
            farm.steady()
            with Prober(lab).running() as probe:
                time.sleep(0.3)
                at = time.monotonic()
                with lab.inside("a"), ControlClient(timeout=5.0) as ctl:
                    ctl.request("ha-standby", what="all")
                wait_until(lambda: farm.holders() == ["b"], timeout=10, interval=0.005)
                standby_times.append(time.monotonic() - at)
                time.sleep(0.3)
            standby_lost.append(float(probe.lost))
            with lab.inside("a"), ControlClient(timeout=5.0) as ctl:
                ctl.request("ha-takeover", what="all")
        lines.append(_row("SIGTERM: VIP on the other node", stop_times))
        lines.append(_row("SIGTERM: probes lost (10 ms apart)", stop_lost, "  "))
        lines.append(_row("pylvs ha standby: VIP on the other node", standby_times))
        lines.append(_row("pylvs ha standby: probes lost (10 ms apart)", standby_lost, "  "))

        if soak_minutes > 0:
            farm.steady()
            rule = ["INPUT", "-i", "eth0", "-p", "udp", "--dport", "694", "-m", "statistic"]
            rule += ["--mode", "random", "--probability", str(loss), "-j", "DROP"]
            for short in ("a", "b"):
                lab.run(short, ["iptables", "-A", *rule])
            end = time.monotonic() + soak_minutes * 60
            failovers = 0
            while time.monotonic() < end:
                if farm.holders() != ["a"]:
                    failovers += 1
                    wait_until(lambda: farm.holders() == ["a"], timeout=60)
                time.sleep(0.05)  # sampling period
            st = farm.status("b") or {}
            counters = st.get("counters", {})
            lines.append(
                f"soak: {loss:.0%} loss on eth0 for {soak_minutes:g} min: {failovers} failovers, "
                f"{counters.get('sent NS_rexmit', 0)} retransmission requests from nodeb"
            )
        for proc in list(farm.procs.values()):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pylvs.bench.failover", description=__doc__)
    p.add_argument("--runs", type=int, default=5, help="repetitions of each failover (5)")
    p.add_argument("--soak-minutes", type=float, default=0.0, help="loss soak duration (0: none)")
    p.add_argument("--loss", type=float, default=0.3, help="soak loss probability (0.3)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("failover bench: must be run as root (network namespaces)", file=sys.stderr)
        return 1
    for line in measure(args.runs, args.soak_minutes, args.loss):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
