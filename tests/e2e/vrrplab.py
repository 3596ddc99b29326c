"""Helpers for the VRRP interoperability tests: a LAN of two directors and a client in
namespaces, keepalived 2.2.7 and pylvsd run on it with a keepalived.conf each."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lvslab import Daemon, start_daemon

from pylvs.testing.netns import Lab, build_bridged_lan, wait_until

KEEPALIVED = "/usr/sbin/keepalived"
VIP = "10.81.0.100"
ADDR = {"a": "10.81.0.1", "b": "10.81.0.2", "c": "10.81.0.10"}
VRID = 51


def available() -> bool:
    return os.path.exists(KEEPALIVED) and shutil.which("tcpdump") is not None


needs_vrrp_peers = pytest.mark.skipif(
    not available(), reason="keepalived or tcpdump not installed (scripts/setup installs them)"
)


def instance_conf(
    priority: int,
    state: str = "BACKUP",
    version: int = 3,
    advert_int: str = "1",
    unicast_peer: str | None = None,
    auth_pass: str | None = None,
    extra: str = "",
    name: str = "VI_1",
) -> str:
    """One vrrp_instance on eth0 with the lab's VIP."""
    lines = [
        f"vrrp_instance {name} {{",
        f"    state {state}",
        "    interface eth0",
        f"    virtual_router_id {VRID}",
        f"    priority {priority}",
        f"    advert_int {advert_int}",
        f"    version {version}",
    ]
    if unicast_peer is not None:
        lines += ["    unicast_peer {", f"        {unicast_peer}", "    }"]
    if auth_pass is not None:
        lines += [
            "    authentication {",
            "        auth_type PASS",
            f"        auth_pass {auth_pass}",
            "    }",
        ]
    lines += ["    virtual_ipaddress {", f"        {VIP}/24 dev eth0", "    }"]
    if extra:
        lines += [f"    {line}" for line in extra.strip().splitlines()]
    lines.append("}")
    return "\n".join(lines) + "\n"


def keepalived_conf(instance: str, top: str = "", global_defs: str = "") -> str:
    return (
        "global_defs {\n    router_id lab\n    vrrp_garp_master_delay 1\n"
        + global_defs
        + "}\n"
        + top
        + instance
    )


@dataclass
class Peer:
    """One director: pylvsd or keepalived."""

    short: str
    kind: str  # "pylvs" | "keepalived"
    proc: subprocess.Popen[Any]
    log: Path
    daemon: Daemon | None = None
    vrrp_pid_file: Path | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class VrrpLan:
    lab: Lab
    tmp: Path
    peers: dict[str, Peer] = field(default_factory=dict)

    def start_pylvs(self, short: str, conf: str) -> Peer:
        path = self.tmp / f"pylvs-{short}.conf"
        path.write_text(conf)
        log = self.tmp / f"pylvsd-{short}-{len(self.peers)}-{time.monotonic_ns()}.log"
        d = start_daemon(self.lab, log, "nfqueue", "--config", str(path), short=short)
        peer = Peer(short, "pylvs", d.proc, log, daemon=d)
        self.peers[short] = peer
        return peer

    def start_keepalived(self, short: str, conf: str) -> Peer:
        path = self.tmp / f"keepalived-{short}.conf"
        path.write_text(conf)
        stamp = time.monotonic_ns()
        pids = [self.tmp / f"ka-{short}-{stamp}.{k}.pid" for k in ("main", "vrrp", "chk")]
        log = self.tmp / f"keepalived-{short}-{stamp}.log"
        with log.open("w") as out:
            proc = self.lab.popen(
                short,
                [
                    KEEPALIVED,
                    "-f",
                    str(path),
                    "-p",
                    str(pids[0]),
                    "-r",
                    str(pids[1]),
                    "-c",
                    str(pids[2]),
                    "-P",
                    "-R",
                    "--dont-fork",
                    "--log-console",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        peer = Peer(short, "keepalived", proc, log, vrrp_pid_file=pids[1])
        self.peers[short] = peer
        wait_until(
            lambda: _pid(pids[1]) is not None or proc.poll() is not None,
            timeout=10,
            what="keepalived's VRRP process",
        )
        assert proc.poll() is None, log.read_text()
        return peer

    # -- looking -----------------------------------------------------------------------------

    def vip(self, short: str, addr: str = VIP) -> bool:
        out = self.lab.run(short, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"], text=True)
        return f"inet {addr}/" in str(out.stdout)

    def holders(self) -> list[str]:
        return [s for s in ("a", "b") if self.vip(s)]

    def mac(self, short: str) -> str:
        out = self.lab.run(short, ["cat", "/sys/class/net/eth0/address"], text=True)
        return str(out.stdout).strip()

    def client_neigh(self) -> str:
        out = self.lab.run("c", ["ip", "neigh", "show", VIP, "dev", "eth0"], text=True).stdout
        return str(out)

    def pylvs_state(self, short: str, name: str = "VI_1") -> dict[str, Any]:
        peer = self.peers[short]
        assert peer.daemon is not None
        st: dict[str, Any] = peer.daemon.ctl.request("vrrp-status")["instances"][name]
        return st

    def wait_holder(self, short: str, timeout: float = 15.0, what: str = "") -> float:
        """Wait until the VIP is on ``short`` only; returns when (monotonic)."""
        wait_until(
            lambda: self.holders() == [short], timeout=timeout, what=what or f"VIP on {short} only"
        )
        return time.monotonic()

    def wait_vip(self, short: str, timeout: float = 15.0, what: str = "") -> float:
        """Wait until the VIP is on ``short`` (a killed peer may hold it still)."""
        wait_until(lambda: self.vip(short), timeout=timeout, what=what or f"VIP on {short}")
        return time.monotonic()

    # -- stopping ------------------------------------------------------------------------------

    def kill9(self, short: str) -> float:
        """SIGKILL the VRRP process (keepalived's VRRP child, or pylvsd); returns when."""
        peer = self.peers[short]
        if peer.kind == "keepalived":
            assert peer.vrrp_pid_file is not None
            child = _pid(peer.vrrp_pid_file)
            assert child is not None
            os.kill(child, signal.SIGKILL)
            at = time.monotonic()
            os.kill(peer.proc.pid, signal.SIGKILL)  # -R: the parent would not respawn it
        else:
            os.kill(peer.proc.pid, signal.SIGKILL)
            at = time.monotonic()
        peer.proc.wait(10)
        return at

    def term(self, short: str, wait: bool = True) -> float:
        """SIGTERM; returns when it was sent (``wait``: after the process has exited)."""
        peer = self.peers[short]
        peer.proc.send_signal(signal.SIGTERM)
        at = time.monotonic()
        if wait:
            peer.proc.wait(15)
        return at

    def wait_exit(self, short: str) -> int:
        return int(self.peers[short].proc.wait(15))

    def forget_vip(self, short: str) -> None:
        """What a reboot does to an address a killed node left."""
        self.lab.run(short, ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"], check=False)


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def build_lan(lab: Lab) -> None:
    """Two directors a, b and a client c on one bridge."""
    build_bridged_lan(lab, ADDR)


@contextlib.contextmanager
def vrrp_lan(tmp_path: Path) -> Iterator[VrrpLan]:
    """The LAN of :func:`build_lan`, removed after."""
    with Lab() as lab:
        build_lan(lab)
        yield VrrpLan(lab, tmp_path)
