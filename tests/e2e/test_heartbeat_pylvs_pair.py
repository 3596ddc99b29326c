"""Two pylvsd heartbeat nodes on one LAN with a client: start-up, kill -9 failover with the
gratuitous ARP moving the client's neighbour entry, auto_failback, hb_standby/hb_takeover
through ``pylvs ha`` and a graceful stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lvslab import REPO, Daemon, start_daemon

from pylvs.testing.netns import Lab, wait_until

VIP = "10.78.0.100"
ADDRS = {"a": "10.78.0.1", "b": "10.78.0.2", "c": "10.78.0.10"}
SECRET = "pylvs-pair-test"


UCAST = f"ucast eth0 {ADDRS['a']}\nucast eth0 {ADDRS['b']}\n"


def ha_files(directory: Path, auto_failback: str = "on", media: str = UCAST) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ha.cf").write_text(
        "keepalive 100ms\nwarntime 300ms\ndeadtime 500ms\ninitdead 2\nudpport 694\n"
        f"{media}auto_failback {auto_failback}\nnode nodea\nnode nodeb\ncrm no\n"
    )
    auth = directory / "authkeys"
    auth.write_text(f"auth 1\n1 sha1 {SECRET}\n")
    os.chmod(auth, 0o600)
    # the director's services move with the VIP: ldirectord::lb.cf loads them into the holder
    (directory / "lb.cf").write_text(
        f"checkinterval=1\nvirtual={VIP}:80\n\treal={ADDRS['c']}:80 gate\n"
        "\tscheduler=rr\n\tprotocol=tcp\n\tchecktype=on\n"
    )
    (directory / "haresources").write_text(f"nodea IPaddr2::{VIP}/24/eth0 ldirectord::lb.cf\n")
    return directory


def services(lab: Lab, short: str) -> str:
    argv = [sys.executable, "-m", "pylvs.cli.pylvsadm", "-L", "-n"]
    return str(lab.run(short, argv, text=True, cwd=REPO).stdout)


def build_lan(lab: Lab) -> None:
    lab.add_netns("sw")
    lab.run("sw", ["ip", "link", "add", "br0", "type", "bridge"])
    lab.run("sw", ["ip", "link", "set", "br0", "up"])
    for short, addr in ADDRS.items():
        lab.add_netns(short)
        lab.veth(short, "eth0", "sw", f"p{short}", f"{addr}/24")
        lab.run("sw", ["ip", "link", "set", f"p{short}", "master", "br0"])


def has_vip(lab: Lab, short: str) -> bool:
    out = lab.run(short, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"], text=True).stdout
    return f"inet {VIP}/" in str(out)


def mac(lab: Lab, short: str) -> str:
    out = lab.run(short, ["cat", "/sys/class/net/eth0/address"], text=True).stdout
    return str(out).strip()


def client_neigh(lab: Lab) -> str:
    return str(lab.run("c", ["ip", "neigh", "show", VIP, "dev", "eth0"], text=True).stdout)


def start_node(
    lab: Lab, tmp: Path, short: str, auto_failback: str = "on", media: str = UCAST
) -> Daemon:
    ha = ha_files(tmp / f"ha-{short}", auto_failback, media)
    return start_daemon(
        lab,
        tmp / f"pylvsd-{short}.log",
        "nfqueue",
        "--ha",
        str(ha),
        "--ha-state",
        str(tmp / f"state-{short}"),
        "--ha-node",
        f"node{short}",
        short=short,
    )


def ha_status(daemon: Daemon) -> dict[str, Any]:
    result: dict[str, Any] = daemon.ctl.request("ha-status")
    return result


def pylvs_ha(lab: Lab, short: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pylvs.cli.pylvs", "ha", "--netns", lab.ns(short), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_two_pylvs_nodes_fail_over_and_back(tmp_path: Path) -> None:
    with Lab() as lab:
        build_lan(lab)
        a = start_node(lab, tmp_path, "a")
        # nodea alone: takes its group once initdead (2 s) passed
        wait_until(lambda: has_vip(lab, "a"), timeout=10, what="VIP on nodea")
        b = start_node(lab, tmp_path, "b")
        wait_until(
            lambda: (
                ha_status(a)["nodes"]["nodeb"]["status"] == "active"
                and ha_status(b)["nodes"]["nodea"]["status"] == "active"
            ),
            timeout=10,
            what="both nodes active",
        )
        wait_until(lambda: ha_status(b)["resources"]["state"] != "transition", timeout=15)
        text = pylvs_ha(lab, "a", "status")
        assert "heartbeat node nodea: active" in text and "link eth0: up" in text
        top = subprocess.run(
            [sys.executable, "-m", "pylvs.cli.pylvs", "top", "--netns", lab.ns("b"), "--once"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
            check=True,
        ).stdout
        assert "heartbeat nodeb active, holds " in top and "nodea active" in top
        assert not has_vip(lab, "b")
        assert f"TCP  {VIP}:80 rr" in services(lab, "a")
        assert VIP not in services(lab, "b")
        lab.run("c", ["ping", "-c", "1", "-W", "2", VIP])
        assert mac(lab, "a") in client_neigh(lab)

        # kill -9 of nodea: nodeb owns the VIP within deadtime + the takeover (nodea's deadtime
        # is 2 s longer for its first 5 s)
        wait_until(lambda: ha_status(b)["nodes"]["nodea"]["deadtime_ms"] == 500, timeout=10)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(timeout=5)
        killed = time.monotonic()
        wait_until(lambda: has_vip(lab, "b"), timeout=5, what="VIP on nodeb")
        took = time.monotonic() - killed
        wait_until(lambda: mac(lab, "b") in client_neigh(lab), timeout=3, what="client ARP")
        print(f"kill -9 to VIP on nodeb: {took:.3f} s")
        assert took < 3.0
        wait_until(lambda: f"TCP  {VIP}:80 rr" in services(lab, "b"), timeout=5)
        st = ha_status(b)
        assert st["nodes"]["nodea"]["status"] == "dead"
        assert st["nodes"]["nodea"]["links"]["eth0"] == "dead"

        # nodea comes back (as after a reboot: its VIP gone); auto_failback on hands it back
        lab.run("a", ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
        a = start_node(lab, tmp_path, "a")
        wait_until(lambda: has_vip(lab, "a") and not has_vip(lab, "b"), timeout=20)
        wait_until(lambda: mac(lab, "a") in client_neigh(lab), timeout=3, what="client ARP back")

        # hb_standby on nodea, then hb_takeover
        wait_until(lambda: ha_status(a)["resources"]["state"] == "local", timeout=15)
        wait_until(lambda: ha_status(b)["resources"]["state"] != "transition", timeout=15)
        assert "Going standby [all]." in pylvs_ha(lab, "a", "standby")
        wait_until(lambda: has_vip(lab, "b") and not has_vip(lab, "a"), timeout=5)
        wait_until(lambda: ha_status(a)["resources"]["state"] == "none", timeout=5)
        pylvs_ha(lab, "a", "takeover", "all")
        wait_until(lambda: has_vip(lab, "a") and not has_vip(lab, "b"), timeout=5)

        # graceful stop of nodea: everything handed over before pylvsd exits
        wait_until(lambda: ha_status(b)["resources"]["state"] != "transition", timeout=15)
        stopping = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: has_vip(lab, "b"), timeout=5, what="VIP on nodeb after SIGTERM")
        handover = time.monotonic() - stopping
        assert a.proc.wait(timeout=10) == 0
        assert not has_vip(lab, "a")
        print(f"graceful stop to VIP on nodeb: {handover:.3f} s")
        log = a.log.read_text()
        assert "all HA resources relinquished" in log
        b.ctl.close()


def test_bcast_and_mcast_media(tmp_path: Path) -> None:
    media = "bcast eth0\nmcast eth1 225.0.0.7 694 1 0\n"
    with Lab() as lab:
        build_lan(lab)
        lab.veth("a", "eth1", "b", "eth1", "10.78.9.1/24", "10.78.9.2/24")
        a = start_node(lab, tmp_path, "a", media=media)
        wait_until(lambda: has_vip(lab, "a"), timeout=10, what="VIP on nodea")
        b = start_node(lab, tmp_path, "b", media=media)
        wait_until(
            lambda: ha_status(b)["nodes"]["nodea"]["links"] == {"eth0": "up", "eth1": "up"},
            timeout=10,
            what="both links up",
        )
        kinds = {m["name"]: m["kind"] for m in ha_status(b)["media"]}
        assert kinds == {"eth0": "bcast", "eth1": "mcast"}
        wait_until(lambda: ha_status(b)["nodes"]["nodea"]["deadtime_ms"] == 500, timeout=10)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(timeout=5)
        wait_until(lambda: has_vip(lab, "b"), timeout=5, what="VIP on nodeb")
        # our own broadcast and multicast copies come back and are not taken for a peer's
        assert ha_status(b)["counters"].get("refused", 0) == 0
