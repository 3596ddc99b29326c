"""heartbeat with an IPv6 address resource: two pylvsd heartbeat nodes on one LAN with a
client; ``IPaddr2::<IPv6>/64/eth0`` (and the ``IPv6addr`` form) goes on with nodad, the holder
sends send_ua's unsolicited neighbour advertisements and the client's ``ip -6 neigh`` entry
follows a kill -9 failover and the failback."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from lvslab import Daemon, start_daemon

from pylvs.testing.netns import Lab, wait_until

VIP6 = "2001:db8:78::100"
# heartbeat's ResourceManager splits resource arguments at every "::": write the address in full
VIP6_FULL = "2001:db8:78:0:0:0:0:100"
ADDRS = {"a": "10.78.0.1", "b": "10.78.0.2", "c": "10.78.0.10"}
ADDR6 = {"a": "2001:db8:78::1", "b": "2001:db8:78::2", "c": "2001:db8:78::10"}
# GNU inetutils has ping6; iputils has only ping -6 (both take -c and -w)
PING6 = [*(["ping6"] if shutil.which("ping6") else ["ping", "-6"]), "-c", "1", "-w", "2", VIP6]
SECRET = "pylvs-v6-test"


def ha_files(directory: Path, resource: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ha.cf").write_text(
        "keepalive 100ms\nwarntime 300ms\ndeadtime 500ms\ninitdead 2\nudpport 694\n"
        f"ucast eth0 {ADDRS['a']}\nucast eth0 {ADDRS['b']}\n"
        "auto_failback on\nnode nodea\nnode nodeb\ncrm no\n"
    )
    auth = directory / "authkeys"
    auth.write_text(f"auth 1\n1 sha1 {SECRET}\n")
    os.chmod(auth, 0o600)
    (directory / "haresources").write_text(f"nodea {resource}\n")
    return directory


def build_lan(lab: Lab) -> None:
    lab.add_netns("sw")
    lab.run("sw", ["ip", "link", "add", "br0", "type", "bridge"])
    lab.run("sw", ["ip", "link", "set", "br0", "up"])
    for short, addr in ADDRS.items():
        lab.add_netns(short)
        lab.veth(short, "eth0", "sw", f"p{short}", f"{addr}/24")
        lab.run("sw", ["ip", "link", "set", f"p{short}", "master", "br0"])
        lab.run(short, ["ip", "-6", "addr", "add", f"{ADDR6[short]}/64", "dev", "eth0", "nodad"])
    for short in ADDRS:
        wait_until(functools.partial(ready6, lab, short), timeout=10, what=f"{short}: IPv6 ready")


def ready6(lab: Lab, short: str) -> bool:
    out = str(lab.run(short, ["ip", "-o", "-6", "addr", "show", "dev", "eth0"], text=True).stdout)
    return "scope link" in out and "tentative" not in out


def vip_line(lab: Lab, short: str) -> str:
    out = str(lab.run(short, ["ip", "-o", "-6", "addr", "show", "dev", "eth0"], text=True).stdout)
    return next((line for line in out.splitlines() if f"inet6 {VIP6}/" in line), "")


def mac(lab: Lab, short: str) -> str:
    return str(lab.run(short, ["cat", "/sys/class/net/eth0/address"], text=True).stdout).strip()


def client_neigh(lab: Lab) -> str:
    argv = ["ip", "-6", "neigh", "show", VIP6, "dev", "eth0"]
    return str(lab.run("c", argv, text=True).stdout)


def start_node(lab: Lab, tmp: Path, short: str, resource: str) -> Daemon:
    ha = ha_files(tmp / f"ha-{short}", resource)
    return start_daemon(
        lab,
        tmp / f"pylvsd-{short}-{time.monotonic_ns()}.log",
        "nfqueue",
        "--ha",
        str(ha),
        "--ha-state",
        str(tmp / f"state-{short}"),
        "--ha-node",
        f"node{short}",
        short=short,
    )


@pytest.mark.parametrize("resource", ["IPaddr2::{}/64/eth0", "IPv6addr::{}/64/eth0"])
def test_ipv6_address_fails_over_with_unsolicited_na(tmp_path: Path, resource: str) -> None:
    res = resource.format(VIP6_FULL)
    with Lab() as lab:
        build_lan(lab)
        a = start_node(lab, tmp_path, "a", res)
        wait_until(lambda: bool(vip_line(lab, "a")), timeout=10, what="VIP on nodea")
        assert "nodad" in vip_line(lab, "a")
        b = start_node(lab, tmp_path, "b", res)
        wait_until(
            lambda: b.ctl.request("ha-status")["nodes"]["nodea"]["status"] == "active",
            timeout=10,
            what="nodeb sees nodea",
        )
        wait_until(lambda: b.ctl.request("ha-status")["nodes"]["nodea"]["deadtime_ms"] == 500,
                   timeout=10)  # fmt: skip
        assert not vip_line(lab, "b")
        lab.run("c", PING6)
        assert mac(lab, "a") in client_neigh(lab)

        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(timeout=5)
        killed = time.monotonic()
        wait_until(lambda: bool(vip_line(lab, "b")), timeout=5, what="VIP on nodeb")
        took = time.monotonic() - killed
        wait_until(lambda: mac(lab, "b") in client_neigh(lab), timeout=3, what="client neigh -> b")
        print(f"\n[{res}] kill -9 to VIP on nodeb: {took:.3f} s")
        assert "nodad" in vip_line(lab, "b")
        lab.run("c", PING6)

        # nodea returns (its VIP gone, as after a reboot): auto_failback hands the VIP back
        lab.run("a", ["ip", "-6", "addr", "del", f"{VIP6}/64", "dev", "eth0"])
        back = time.monotonic()
        a = start_node(lab, tmp_path, "a", res)
        wait_until(lambda: bool(vip_line(lab, "a")) and not vip_line(lab, "b"), timeout=20,
                   what="VIP back on nodea only")  # fmt: skip
        print(f"[{res}] nodea back -> VIP on nodea: {time.monotonic() - back:.2f} s")
        wait_until(lambda: mac(lab, "a") in client_neigh(lab), timeout=3, what="client neigh -> a")
        lab.run("c", PING6)
        for d in (a, b):
            d.proc.send_signal(signal.SIGTERM)
        for d in (a, b):
            d.proc.wait(timeout=15)
