"""What the e2e tests of the lab's two-director scenarios (``farm`` with heartbeat, ``farmka``
with keepalived.conf) share: the ``pylvs lab`` command, a scenario up for one test and down
after it, and looks into the lab's namespaces (a node's MAC, the router's entry for the VIP, a
connection synchronised to a director). ``prefix`` is each test module's own namespace prefix."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

from pylvs.ctl import ControlClient
from pylvs.io import netcfg
from pylvs.lab import runner


def lab_cli(prefix: str, *args: str) -> str:
    """What ``pylvs lab --prefix PREFIX ARGS`` prints; a failure raises with its output."""
    argv = [sys.executable, "-m", "pylvs.cli.pylvs", "lab", "--prefix", prefix, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)
    if proc.returncode != 0:
        raise AssertionError(
            f"pylvs lab {' '.join(args)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


@contextlib.contextmanager
def scenario_up(name: str, prefix: str) -> Iterator[None]:
    """The lab scenario ``name`` up (after removing what an earlier run left); down after, and
    no namespace of ``prefix`` left."""
    runner.down(prefix)
    try:
        runner.up(name, prefix)
        yield
    finally:
        runner.down(prefix)
    assert runner.lab_namespaces(prefix) == []


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts: its parent, not the lab, reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def mac_of(prefix: str, node: str, ifname: str = "eth0") -> bytes:
    with netcfg.in_netns(prefix + node):
        return netcfg.link_info(ifname).mac


def router_entry(prefix: str, vip: str, ifname: str = "eth1") -> bytes | None:
    """The MAC the router's neighbour table holds for the VIP (``eth1``: the router's interface
    on inside, the VIP's LAN; the router is the VIP's only neighbour there, the clients are
    behind it)."""
    with netcfg.in_netns(prefix + "router"):
        return netcfg.neigh_lookup(netcfg.link_info(ifname).index, vip)[0]


def synced(prefix: str, node: str, cport: int) -> bool:
    """The pylvsd of ``node`` holds the client's connection (from client port ``cport``)."""
    with netcfg.in_netns(prefix + node), ControlClient(timeout=5) as ctl:
        return any(c.cport == cport and c.daddr for c in ctl.conns())
