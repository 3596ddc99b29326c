"""A long TCP transfer through the VIP survives kill -9 of the active director, in DR and NAT.

Two directors run pylvsd with the same service, heartbeat on two media (ucast on the front and
the back LAN) and connection sync: haresources gives nodea the VIP (front), in NAT also the real
servers' gateway address (back), and ``LVSSyncDaemonSwap::master``, so the holder sends its
connections and the other director, with a backup sync daemon, learns them. When nodea is
killed, nodeb takes the addresses over, its gratuitous ARP moves the client's (and in NAT the
real servers') neighbour entries, and it forwards the synchronised connection to the same real
server: the client receives every byte.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from lvslab import REPO, Daemon, pylvs_argv, read_line, start_daemon
from servers import pattern

from pylvs.core.control import DaemonSpec
from pylvs.testing.netns import Lab, wait_until

VIP = "10.80.1.100"
GATEWAY = "10.80.2.254"  # NAT: the real servers' default route, held with the VIP
ROUTER = {"brf": "10.80.1.1", "brb": "10.80.2.1"}
FRONT = {"a": "10.80.1.2", "b": "10.80.1.3", "c": "10.80.1.10"}
BACK = {"a": "10.80.2.2", "b": "10.80.2.3", "r1": "10.80.2.11", "r2": "10.80.2.12"}
PORT = 5000
SIZE = 48 * 1024 * 1024  # about 8 s at the source's pace
SECRET = "pylvs-sync-failover"


def _lab(lab: Lab, mode: str) -> None:
    for short in ("sw", "c", "a", "b", "r1", "r2"):
        lab.add_netns(short)
    for bridge, addr in ROUTER.items():
        lab.run("sw", ["ip", "link", "add", bridge, "type", "bridge"])
        lab.run("sw", ["ip", "link", "set", bridge, "up"])
        lab.run("sw", ["ip", "addr", "add", f"{addr}/24", "dev", bridge])
    lab.run("sw", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    ports = [(s, "eth0", "brf", a) for s, a in FRONT.items()]
    ports += [(s, "eth1" if s in ("a", "b") else "eth0", "brb", a) for s, a in BACK.items()]
    for n, (short, ifname, bridge, addr) in enumerate(ports):
        lab.veth("sw", f"s{n}", short, ifname, addr_b=f"{addr}/24")
        lab.run("sw", ["ip", "link", "set", f"s{n}", "master", bridge])
    for short in ("r1", "r2"):
        gateway = GATEWAY if mode == "nat" else ROUTER["brb"]
        lab.run(short, ["ip", "route", "add", "default", "via", gateway, "dev", "eth0", "onlink"])
    for short in ("a", "b"):
        lab.run(short, ["sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0"])


def _config(tmp: Path, mode: str) -> Path:
    forward = "masq" if mode == "nat" else "gate"
    reals = ",\n".join(
        f'    {{ address = "{BACK[r]}", port = {PORT}, forward = "{forward}" }}'
        for r in ("r1", "r2")
    )
    path = tmp / f"pylvs-{mode}.toml"
    path.write_text(
        "[global]\ncheckinterval = 1\n\n[[virtual]]\n"
        f'address = "{VIP}"\nport = {PORT}\nprotocol = "tcp"\nscheduler = "rr"\n'
        f'checktype = "on"\nreal = [\n{reals}\n]\n'
    )
    return path


def _ha(tmp: Path, short: str, mode: str) -> Path:
    d = tmp / f"ha-{short}"
    d.mkdir()
    (d / "ha.cf").write_text(
        "keepalive 100ms\nwarntime 300ms\ndeadtime 500ms\ninitdead 2\nudpport 694\n"
        f"ucast eth0 {FRONT['a']}\nucast eth0 {FRONT['b']}\n"
        f"ucast eth1 {BACK['a']}\nucast eth1 {BACK['b']}\n"
        "auto_failback on\nnode nodea\nnode nodeb\ncrm no\n"
    )
    (d / "authkeys").write_text(f"auth 1\n1 sha1 {SECRET}\n")
    os.chmod(d / "authkeys", 0o600)
    gateway = f" IPaddr2::{GATEWAY}/24/eth1" if mode == "nat" else ""
    (d / "haresources").write_text(
        f"nodea IPaddr2::{VIP}/24/eth0{gateway} LVSSyncDaemonSwap::master\n"
    )
    return d


def _director(lab: Lab, tmp: Path, short: str, mode: str) -> Daemon:
    daemon = start_daemon(
        lab,
        tmp / f"pylvsd-{short}.log",
        "nfqueue",
        "--config",
        str(_config(tmp, mode)),
        "--ha",
        str(_ha(tmp, short, mode)),
        "--ha-state",
        str(tmp / f"state-{short}"),
        "--ha-node",
        f"node{short}",
        short=short,
    )
    # the connection sync daemon every director runs at boot; LVSSyncDaemonSwap makes the
    # VIP's holder the master
    daemon.ctl.start_daemon(DaemonSpec(state="backup", mcast_ifn="eth1", syncid=1))
    return daemon


def _has(lab: Lab, short: str, addr: str) -> bool:
    out = lab.run(short, ["ip", "-o", "-4", "addr", "show"], text=True).stdout
    return f"inet {addr}/" in str(out)


def _synced(lab: Lab) -> bool:
    """nodeb, the backup, lists the client's connection."""
    argv = pylvs_argv("pylvs.cli.pylvsadm", "-L", "-n", "-c")
    out = lab.run("b", argv, cwd=REPO, text=True).stdout
    return f"ESTABLISHED {FRONT['c']}:" in str(out)


def _daemons(daemon: Daemon) -> set[str]:
    return {d.state for d in daemon.ctl.daemons()}


@pytest.mark.parametrize("mode", ["dr", "nat"])
def test_transfer_survives_kill9_of_the_active_director(tmp_path: Path, mode: str) -> None:
    with Lab() as lab:
        _lab(lab, mode)
        servers = []
        for short in ("r1", "r2"):
            args = ["realserver", "--vip", VIP, "--mode", mode]
            if mode == "nat":
                args += ["--director", GATEWAY]
            lab.run(short, pylvs_argv("pylvs.cli.pylvs", *args), cwd=REPO)
            proc = lab.popen(
                short,
                [sys.executable, str(REPO / "tests/e2e/servers.py"), "source", short, str(PORT)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert read_line(proc).strip() == "ready"
            servers.append(proc)
        try:
            a = _director(lab, tmp_path, "a", mode)
            wait_until(lambda: _has(lab, "a", VIP), timeout=10, what="VIP on nodea")
            b = _director(lab, tmp_path, "b", mode)
            wait_until(lambda: "master" in _daemons(a), timeout=5, what="master sync on nodea")
            wait_until(
                lambda: b.ctl.request("ha-status")["nodes"]["nodea"]["status"] == "active",
                timeout=10,
            )
            assert _daemons(b) == {"backup"}

            received = hashlib.sha256()
            count = [0]
            error: list[BaseException] = []

            def download() -> None:
                try:
                    with lab.inside("c"):
                        sock = socket.create_connection((VIP, PORT), timeout=20)
                    with sock:
                        sock.sendall(struct.pack("!Q", SIZE))
                        while True:
                            data = sock.recv(1 << 16)
                            if not data:
                                break
                            received.update(data)
                            count[0] += len(data)
                except BaseException as exc:  # reported by the test below
                    error.append(exc)

            client = threading.Thread(target=download, daemon=True)
            client.start()
            wait_until(lambda: count[0] > 0 or error, timeout=15, what="transfer going")
            assert not error, error
            # nodea advertises deadtime + 2 s for its first 5 s: wait for its real deadtime
            wait_until(
                lambda: b.ctl.request("ha-status")["nodes"]["nodea"]["deadtime_ms"] == 500,
                timeout=10,
            )
            # the master flushes its sync buffer within 2 s (IPVS_SYNC_FLUSH_TIME)
            wait_until(lambda: _synced(lab), timeout=6, interval=0.1, what="connection synced")
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(timeout=5)
            killed = time.monotonic()
            at_kill = count[0]
            wait_until(lambda: _has(lab, "b", VIP), timeout=5, what="VIP on nodeb")
            took = time.monotonic() - killed
            client.join(timeout=60)
            assert not client.is_alive(), f"transfer stuck at {count[0]} of {SIZE} bytes"
            assert not error, error
            assert count[0] == SIZE
            assert received.hexdigest() == hashlib.sha256(pattern(SIZE)).hexdigest()
            assert at_kill < SIZE, "the transfer ended before the failover"
            assert "master" in _daemons(b)  # LVSSyncDaemonSwap::master moved with the VIP
            if mode == "nat":
                assert _has(lab, "b", GATEWAY)
            print(f"{mode}: kill -9 at {at_kill} of {SIZE} bytes, VIP on nodeb {took:.3f} s later")
        finally:
            for short in ("r1", "r2"):
                lab.run(
                    short,
                    pylvs_argv("pylvs.cli.pylvs", "realserver", "--undo"),
                    cwd=REPO,
                    check=False,
                )
