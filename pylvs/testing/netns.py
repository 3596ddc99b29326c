"""Network namespace labs for tests, demos and benchmarks.

A :class:`Lab` owns every namespace it creates (names start with a per-process prefix, so parallel
runs never collide) and every process it starts inside them; :meth:`Lab.close` stops those
processes by pid and deletes the namespaces, which also removes their veths, addresses, routes and
iptables rules. Nothing is ever configured in the namespace the lab is built from.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pylvs.io import netcfg

__all__ = [
    "Lab",
    "LvsTopology",
    "TimeoutExpired",
    "build_bridged_lan",
    "build_lvs_lab",
    "wait_until",
]

T = TypeVar("T")


class TimeoutExpired(AssertionError):
    """A condition waited on did not come true in time."""


def wait_until(
    condition: Callable[[], T], timeout: float = 5.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll ``condition`` until it returns a true value, and return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutExpired(f"timed out after {timeout}s waiting for {what or condition!r}")
        time.sleep(interval)


@dataclass
class Lab:
    """A set of namespaces and the processes running in them; use as a context manager."""

    prefix: str = field(default_factory=lambda: f"pylvs-t{os.getpid()}-")
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ns(self, short: str) -> str:
        """The full name of lab namespace ``short``."""
        return self.prefix + short

    def add_netns(self, short: str) -> str:
        """Create namespace ``short`` with ``lo`` up; returns its full name."""
        name = self.ns(short)
        netcfg.remove_netns(name)  # a leftover of a killed run with the same pid
        netcfg.create_netns(name)
        self.namespaces.append(name)
        with netcfg.in_netns(name):
            netcfg.set_link_up("lo")
        return name

    def veth(
        self,
        short_a: str,
        if_a: str,
        short_b: str,
        if_b: str,
        addr_a: str | None = None,
        addr_b: str | None = None,
        offloads: bool = False,
    ) -> None:
        """Connect two lab namespaces with a veth pair, bring both ends up, optionally address them.

        Offloads are off unless asked for: with TSO/GRO on, frames seen by the data plane can be
        bigger than the MTU and carry partial checksums (reference/machine.md).
        """
        ns_a, ns_b = self.ns(short_a), self.ns(short_b)
        with netcfg.in_netns(ns_a):
            netcfg.add_veth(if_a, if_b, peer_netns=ns_b)
        for ns, ifname, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
            with netcfg.in_netns(ns):
                if not offloads:
                    netcfg.disable_offloads(ifname)
                if addr is not None:
                    netcfg.add_address(ifname, addr)
                netcfg.set_link_up(ifname)

    @contextlib.contextmanager
    def inside(self, short: str) -> Iterator[None]:
        """Run the ``with`` body (netcfg calls, socket creation) inside lab namespace ``short``."""
        with netcfg.in_netns(self.ns(short)):
            yield

    def argv(self, short: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(short), *argv]

    def run(
        self,
        short: str,
        argv: Sequence[str],
        check: bool = True,
        timeout: float = 30.0,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[Any]:
        """Run a command to completion inside a lab namespace."""
        kwargs.setdefault("capture_output", True)
        return subprocess.run(self.argv(short, argv), check=check, timeout=timeout, **kwargs)

    def popen(self, short: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process inside a lab namespace; the lab stops it on close."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self.argv(short, argv), **kwargs)
        self.processes.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], timeout: float = 5.0) -> int:
        """SIGTERM a lab process, SIGKILL it if it does not exit in time; returns its exit code."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        for stream in (proc.stdout, proc.stderr, proc.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return int(proc.returncode)

    def close(self) -> None:
        """Stop the lab's processes (by pid) and delete its namespaces."""
        for proc in reversed(self.processes):
            with contextlib.suppress(Exception):
                self.stop(proc, timeout=3.0)
        self.processes.clear()
        for name in reversed(self.namespaces):
            with contextlib.suppress(Exception):
                netcfg.remove_netns(name)
        self.namespaces.clear()


@dataclass(frozen=True)
class LvsTopology:
    """Addresses of the standard lab built by :func:`build_lvs_lab`.

    ``c`` (client) and ``d`` (director) share the front LAN 192.0.2.0/24; ``d`` and the real servers
    ``r1..rN`` share the back LAN 198.51.100.0/24; ``sw`` holds both LANs' bridges and routes
    between them (192.0.2.254, 198.51.100.254): in DR and TUN the real servers answer the client
    through ``sw``, bypassing the director, as LVS intends. The VIP sits on the director's ``lo``.
    """

    vip: str = "203.0.113.10"
    client: str = "192.0.2.2"
    director_front: str = "192.0.2.1"
    director_back: str = "198.51.100.1"
    router_front: str = "192.0.2.254"
    router_back: str = "198.51.100.254"
    reals: tuple[str, ...] = ()
    front_if: str = "d-front"
    back_if: str = "d-back"


def build_lvs_lab(lab: Lab, n_real: int = 3, nat: bool = False) -> LvsTopology:
    """Build client, director, router/switch and ``n_real`` real server namespaces.

    With ``nat`` the real servers' default route is the director (replies must return through it);
    otherwise it is the router ``sw``.
    """
    topo = LvsTopology(reals=tuple(f"198.51.100.{11 + i}" for i in range(n_real)))
    for short in ("sw", "c", "d", *(f"r{i + 1}" for i in range(n_real))):
        lab.add_netns(short)
    with lab.inside("sw"):
        for bridge in ("brf", "brb"):
            netcfg.add_bridge(bridge)
            netcfg.set_link_up(bridge)
        netcfg.add_address("brf", f"{topo.router_front}/24")
        netcfg.add_address("brb", f"{topo.router_back}/24")
        netcfg.write_sysctl("net.ipv4.ip_forward", 1)
    ports: list[tuple[str, str, str, str | None]] = [
        ("c", "c0", "brf", f"{topo.client}/24"),
        ("d", topo.front_if, "brf", f"{topo.director_front}/24"),
        ("d", topo.back_if, "brb", f"{topo.director_back}/24"),
    ]
    ports += [(f"r{i + 1}", "eth0", "brb", f"{rip}/24") for i, rip in enumerate(topo.reals)]
    for n, (short, ifname, bridge, addr) in enumerate(ports):
        sw_if = f"sw{n}"
        lab.veth("sw", sw_if, short, ifname, addr_b=addr)
        with lab.inside("sw"):
            netcfg.set_link_master(sw_if, bridge)
    with lab.inside("c"):
        netcfg.add_route(f"{topo.vip}/32", topo.director_front)
        netcfg.add_route("default", topo.router_front)
    with lab.inside("d"):
        netcfg.add_address("lo", f"{topo.vip}/32")
        netcfg.write_sysctl("net.ipv4.conf.all.send_redirects", 0)
        netcfg.write_sysctl("net.ipv4.conf.default.send_redirects", 0)
    for i in range(n_real):
        with lab.inside(f"r{i + 1}"):
            netcfg.add_route("default", topo.director_back if nat else topo.router_back)
    return topo


def build_bridged_lan(lab: Lab, addrs: dict[str, str]) -> None:
    """One LAN: a namespace per ``addrs`` key (a short name) whose ``eth0`` holds that address
    (/24), each on the bridge ``br0`` of the namespace ``sw`` by its port ``p<short>`` (the
    two-director heartbeat and VRRP labs)."""
    lab.add_netns("sw")
    with lab.inside("sw"):
        netcfg.add_bridge("br0")
        netcfg.set_link_up("br0")
    for short, addr in addrs.items():
        lab.add_netns(short)
        lab.veth(short, "eth0", "sw", f"p{short}", f"{addr}/24")
        with lab.inside("sw"):
            netcfg.set_link_master(f"p{short}", "br0")
