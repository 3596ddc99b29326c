"""A pylvsd heartbeat node and a real Linux-HA heartbeat 3.0.6 node form one cluster, in both
roles: each sees the other active (``cl_status`` on the real node, ``pylvs ha status`` on
pylvs), resources are negotiated and handed over between them (auto_failback, hb_takeover,
graceful stops), and either can be killed with the other taking the VIP over."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hbpeer import HEARTBEAT, RealHeartbeat, authkeys_sha1, available, log_path, typical_ha_cf
from lvslab import Daemon, start_daemon

from pylvs.testing.netns import Lab, build_bridged_lan, wait_until

VIP = "10.79.0.100"
ADDR = {"a": "10.79.0.1", "b": "10.79.0.2", "c": "10.79.0.10"}
NAMES = {"a": "nodea", "b": "nodeb"}
SECRET = "pylvs-interop"


@dataclass
class Cluster:
    lab: Lab
    tmp: Path
    real_short: str
    pylvs_short: str
    real: RealHeartbeat
    daemon: Daemon | None = None
    authkeys: str = authkeys_sha1(SECRET)
    auto_failback: str = "on"

    def ha_cf(self, short: str) -> str:
        peer = ADDR["b" if short == "a" else "a"]
        return typical_ha_cf(
            ucast=[("eth0", peer)],
            nodes=["nodea", "nodeb"],
            logfile=log_path(self.tmp, NAMES[short]),
            keepalive="100ms",
            warntime="300ms",
            deadtime="500ms",
            initdead="2",
            auto_failback=self.auto_failback,
        )

    def start_pylvs(self) -> Daemon:
        short = self.pylvs_short
        d = self.tmp / f"ha-{short}"
        d.mkdir(exist_ok=True)
        (d / "ha.cf").write_text(self.ha_cf(short))
        (d / "authkeys").write_text(self.authkeys)
        (d / "authkeys").chmod(0o600)
        (d / "haresources").write_text(HARESOURCES)
        log_path(self.tmp, NAMES[short]).parent.mkdir(parents=True, exist_ok=True)
        self.daemon = start_daemon(
            self.lab,
            self.tmp / f"pylvsd-{short}.log",
            "nfqueue",
            "--ha",
            str(d),
            "--ha-state",
            str(self.tmp / f"state-{short}"),
            "--ha-node",
            NAMES[short],
            short=short,
        )
        return self.daemon

    def pylvs_status(self) -> dict[str, Any]:
        assert self.daemon is not None
        result: dict[str, Any] = self.daemon.ctl.request("ha-status")
        return result

    def vip(self, short: str) -> bool:
        out = self.lab.run(short, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"], text=True)
        return f"inet {VIP}/" in str(out.stdout)

    def holder(self) -> list[str]:
        return [s for s in ("a", "b") if self.vip(s)]

    def real_sees_pylvs_active(self) -> bool:
        if not self.real.running():
            return False
        return self.real.node_status(NAMES[self.pylvs_short]) == "active"

    def pylvs_sees_real(self) -> str:
        return str(self.pylvs_status()["nodes"][NAMES[self.real_short]]["status"])

    def client_mac(self) -> str:
        out = self.lab.run("c", ["ip", "neigh", "show", VIP, "dev", "eth0"], text=True).stdout
        return str(out)

    def mac(self, short: str) -> str:
        return str(self.lab.run(short, ["cat", "/sys/class/net/eth0/address"], text=True).stdout)


HARESOURCES = f"nodea IPaddr2::{VIP}/24/eth0\n"


@contextmanager
def cluster(
    tmp_path: Path, real_short: str, authkeys: str | None = None, auto_failback: str = "on"
) -> Iterator[Cluster]:
    """The LAN, and the real node on ``real_short`` (``a`` is nodea, the preferred node)."""
    if not available():
        pytest.skip(f"Debian's heartbeat is not installed ({HEARTBEAT}); scripts/setup installs it")
    pylvs_short = "b" if real_short == "a" else "a"
    with Lab() as lab:
        build_bridged_lan(lab, ADDR)
        cl = Cluster(lab, tmp_path, real_short, pylvs_short, None)  # type: ignore[arg-type]
        if authkeys is not None:
            cl.authkeys = authkeys
        cl.auto_failback = auto_failback
        cl.real = RealHeartbeat(
            lab,
            real_short,
            NAMES[real_short],
            cl.ha_cf(real_short),
            cl.authkeys,
            HARESOURCES,
            tmp_path,
        )
        try:
            yield cl
        finally:
            cl.real.close()


def test_real_heartbeat_holds_pylvs_joins_and_takes_over(tmp_path: Path) -> None:
    with cluster(tmp_path, "a") as cl:
        _real_preferred(cl)


def _real_preferred(cl: Cluster) -> None:
    cl.real.start()
    wait_until(lambda: cl.vip("a"), timeout=15, what="VIP on the real nodea")
    cl.start_pylvs()
    wait_until(cl.real_sees_pylvs_active, timeout=15, what="cl_status: nodeb active")
    wait_until(lambda: cl.pylvs_sees_real() == "active", timeout=5, what="pylvs: nodea active")
    wait_until(lambda: cl.real.cl_status("rscstatus").strip() == "local", timeout=20)
    wait_until(lambda: cl.pylvs_status()["resources"]["state"] != "transition", timeout=20)
    assert cl.holder() == ["a"]
    assert cl.pylvs_status()["nodes"]["nodea"]["links"]["eth0"] == "up"
    assert "nodea" in cl.real.cl_status("listnodes") and "nodeb" in cl.real.cl_status("listnodes")

    # hb_takeover from pylvs: the real node gives its group away (it is the giver)
    assert cl.daemon is not None
    cl.daemon.ctl.request("ha-takeover", what="all")
    wait_until(lambda: cl.holder() == ["b"], timeout=10, what="VIP moved to pylvs nodeb")
    wait_until(lambda: cl.real.cl_status("rscstatus").strip() == "none", timeout=10)
    # hb_standby from pylvs: back to the real node (pylvs gives)
    wait_until(lambda: cl.pylvs_status()["resources"]["state"] == "all", timeout=10)
    cl.daemon.ctl.request("ha-standby", what="all")
    wait_until(lambda: cl.holder() == ["a"], timeout=10, what="VIP back on the real nodea")

    # kill -9 of the real node: pylvs takes the VIP over
    wait_until(lambda: cl.pylvs_status()["resources"]["state"] != "transition", timeout=10)
    cl.lab.run("c", ["ping", "-c", "1", "-W", "2", VIP])  # the client knows the VIP's MAC
    assert cl.mac("a").strip() in cl.client_mac()
    killed = cl.real.kill9()
    wait_until(lambda: cl.vip("b"), timeout=10, what="VIP on pylvs after kill -9")
    took = time.monotonic() - killed
    print(f"real heartbeat killed -> VIP on pylvs: {took:.3f} s")
    assert cl.pylvs_sees_real() == "dead"
    wait_until(lambda: cl.mac("b").strip() in cl.client_mac(), timeout=3, what="client ARP")

    # the real node comes back (rebooted: no VIP); auto_failback on gives it back
    cl.lab.run("a", ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
    cl.real.close()
    cl.real = RealHeartbeat(
        cl.lab, "a", "nodea", cl.ha_cf("a"), authkeys_sha1(SECRET), HARESOURCES, cl.tmp / "again"
    )
    cl.real.start()
    wait_until(lambda: cl.holder() == ["a"], timeout=20, what="auto_failback to the real node")
    assert cl.real_sees_pylvs_active()

    # graceful stop of pylvs while the real node holds the VIP: the real node sees it leave
    cl.daemon.proc.send_signal(signal.SIGTERM)
    assert cl.daemon.proc.wait(timeout=15) == 0
    wait_until(lambda: cl.real.node_status("nodeb") == "dead", timeout=10)
    assert cl.holder() == ["a"]


def test_pylvs_holds_real_joins_and_takes_over(tmp_path: Path) -> None:
    with cluster(tmp_path, "b") as cl:
        _pylvs_preferred(cl)


def _pylvs_preferred(cl: Cluster) -> None:
    cl.start_pylvs()
    wait_until(lambda: cl.vip("a"), timeout=15, what="VIP on pylvs nodea")
    cl.real.start()
    wait_until(cl.real_sees_pylvs_active, timeout=15, what="cl_status: nodea active")
    wait_until(lambda: cl.pylvs_sees_real() == "active", timeout=5)
    # ha.cf's logfile: pylvs writes heartbeat's lines there
    own_log = log_path(cl.tmp, "nodea").read_text()
    assert (
        "nodea heartbeat: [" in own_log
        and "info: Comm_now_up(): updating status to active" in own_log
    )
    # pylvs took both sets at initdead, then (RQSTDELAY, 10 s) hands nodeb its own, empty, set
    # back with the standby exchange, as in the capture of two real nodes
    wait_until(lambda: cl.real.cl_status("rscstatus").strip() == "local", timeout=25)
    wait_until(lambda: cl.pylvs_status()["resources"]["state"] == "local", timeout=5)
    assert cl.holder() == ["a"]

    # graceful stop of pylvs: the real node takes the VIP at once
    assert cl.daemon is not None
    stopping = time.monotonic()
    cl.daemon.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: cl.vip("b"), timeout=10, what="VIP on the real nodeb")
    print(f"pylvs SIGTERM -> VIP on the real node: {time.monotonic() - stopping:.3f} s")
    assert cl.daemon.proc.wait(timeout=15) == 0
    assert not cl.vip("a")
    cl.real.wait_log(r"Received shutdown notice from 'nodea'", timeout=5)

    # pylvs starts again: auto_failback on, the real node hands the VIP back
    cl.start_pylvs()
    wait_until(lambda: cl.holder() == ["a"], timeout=20, what="VIP back on pylvs")

    # kill -9 of pylvs: the real node takes over
    wait_until(lambda: cl.real.cl_status("rscstatus").strip() == "local", timeout=25)
    cl.daemon.proc.send_signal(signal.SIGKILL)
    cl.daemon.proc.wait(timeout=5)
    killed = time.monotonic()
    wait_until(lambda: cl.vip("b"), timeout=10, what="VIP on the real node after kill -9")
    print(f"pylvs killed -> VIP on the real node: {time.monotonic() - killed:.3f} s")
    assert cl.real.node_status("nodea") == "dead"


@pytest.mark.parametrize(
    "authkeys", ["auth 1\n1 crc\n", f"auth 3\n1 sha1 other\n3 md5 {SECRET}\n"], ids=["crc", "md5"]
)
def test_crc_and_md5_authkeys_with_a_real_node(tmp_path: Path, authkeys: str) -> None:
    with cluster(tmp_path, "a", authkeys) as cl:
        cl.real.start()
        cl.start_pylvs()
        wait_until(cl.real_sees_pylvs_active, timeout=15, what="cl_status: nodeb active")
        wait_until(lambda: cl.pylvs_sees_real() == "active", timeout=5)
        assert cl.pylvs_status()["counters"].get("bad message", 0) == 0


def test_auto_failback_legacy_with_a_real_node(tmp_path: Path) -> None:
    """auto_failback legacy: no starting/resource exchange; a node asks for its groups with
    ip-request and the holder gives them up."""
    with cluster(tmp_path, "a", auto_failback="legacy") as cl:
        cl.start_pylvs()  # pylvs is nodeb; alone, it takes nodea's group at initdead
        wait_until(lambda: cl.vip("b"), timeout=15, what="VIP on pylvs nodeb alone")
        cl.real.start()
        # the real nodea asks for its group (ip-request), pylvs gives it up and says so
        wait_until(lambda: cl.holder() == ["a"], timeout=20, what="VIP handed to the real nodea")
        assert cl.real_sees_pylvs_active()
        cl.lab.run("c", ["ping", "-c", "1", "-W", "2", VIP])
        killed = cl.real.kill9()
        wait_until(lambda: cl.vip("b"), timeout=10, what="VIP on pylvs after kill -9")
        print(f"legacy: real node killed -> VIP on pylvs: {time.monotonic() - killed:.3f} s")
