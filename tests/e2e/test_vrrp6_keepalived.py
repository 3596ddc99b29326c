"""VRRPv3 over IPv6: pylvsd against Debian's keepalived 2.2.7 on one LAN, in both roles:
election by priority, kill -9 and SIGTERM of the master, preemption; the client's IPv6
neighbour entry for the VIP follows the new master's unsolicited neighbour advertisements.
A pylvsd pair too. Failover times are printed (``-s``), never asserted."""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vrrplab import VRID, VrrpLan, available, build_lan, keepalived_conf

from pylvs.testing.netns import Lab, wait_until

pytestmark = pytest.mark.skipif(
    not available(), reason="keepalived or tcpdump not installed (scripts/setup installs them)"
)

VIP6 = "2001:db8:81::100"
# GNU inetutils has ping6; iputils has only ping -6 (both take -c and -w)
PING6 = [*(["ping6"] if shutil.which("ping6") else ["ping", "-6"]), "-c", "1", "-w", "2", VIP6]
ADDR6 = {"a": "2001:db8:81::1", "b": "2001:db8:81::2", "c": "2001:db8:81::10"}


def instance6(priority: int, advert_int: str = "1", extra: str = "") -> str:
    """One IPv6 vrrp_instance on eth0 (VRRPv3 is implied by the family)."""
    lines = [
        "vrrp_instance VI_6 {",
        "    state BACKUP",
        "    interface eth0",
        f"    virtual_router_id {VRID}",
        f"    priority {priority}",
        f"    advert_int {advert_int}",
        "    virtual_ipaddress {",
        f"        {VIP6}/64 dev eth0",
        "    }",
    ]
    lines += [f"    {line}" for line in extra.strip().splitlines() if line]
    return "\n".join(lines) + "\n}\n"


class Lan6(VrrpLan):
    """The IPv4 lab LAN with IPv6 looked at instead."""

    def vip(self, short: str, addr: str = VIP6) -> bool:
        out = self.lab.run(short, ["ip", "-o", "-6", "addr", "show", "dev", "eth0"], text=True)
        return f"inet6 {addr}/" in str(out.stdout)

    def client_neigh(self) -> str:
        argv = ["ip", "-6", "neigh", "show", VIP6, "dev", "eth0"]
        return str(self.lab.run("c", argv, text=True).stdout)

    def forget_vip(self, short: str) -> None:
        self.lab.run(short, ["ip", "-6", "addr", "del", f"{VIP6}/64", "dev", "eth0"], check=False)

    def linklocal(self, short: str) -> str:
        argv = ["ip", "-o", "-6", "addr", "show", "dev", "eth0", "scope", "link"]
        out = self.lab.run(short, argv, text=True)
        return str(out.stdout).split("inet6 ")[1].split("/")[0]

    def ready6(self, short: str) -> bool:
        """Link-local address there and no longer tentative (DAD done)."""
        out = self.lab.run(short, ["ip", "-o", "-6", "addr", "show", "dev", "eth0"], text=True)
        text = str(out.stdout)
        return "scope link" in text and "tentative" not in text

    def state(self, short: str) -> str:
        peer = self.peers[short]
        if peer.kind == "pylvs":
            return str(self.pylvs_state(short, "VI_6")["state"])
        text = peer.log.read_text(errors="replace")
        marks = {"MASTER": "(VI_6) Entering MASTER STATE", "BACKUP": "(VI_6) Entering BACKUP"}
        last = max(marks, key=lambda k: text.rfind(marks[k]))
        return last if marks[last] in text else ""


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[Lan6]:
    with Lab() as lab:
        build_lan(lab)
        for short, addr in ADDR6.items():
            lab.run(short, ["ip", "-6", "addr", "add", f"{addr}/64", "dev", "eth0", "nodad"])
        lan = Lan6(lab, tmp_path)
        for short in ADDR6:
            wait_until(
                functools.partial(lan.ready6, short), timeout=10, what=f"{short}: IPv6 ready"
            )
        yield lan


def start(lan: Lan6, short: str, kind: str, conf: str) -> None:
    if kind == "pylvs":
        lan.start_pylvs(short, conf)
    else:
        lan.start_keepalived(short, conf)


def other(kind: str) -> str:
    return "keepalived" if kind == "pylvs" else "pylvs"


def only_one_holder(lan: Lan6, short: str, samples: int = 5) -> None:
    for _ in range(samples):
        assert lan.holders() == [short]
        time.sleep(0.1)


def client_follows(lan: Lan6, short: str) -> None:
    wait_until(lambda: lan.mac(short) in lan.client_neigh(), timeout=3,
               what=f"client's IPv6 neighbour entry -> {short}")  # fmt: skip


@pytest.mark.parametrize("master_kind", ["pylvs", "keepalived"])
def test_v6_election_kill_preempt_term(lan: Lan6, master_kind: str) -> None:
    """a (150) master, b (100) backup, over IPv6; kill -9 of a, a returns and preempts,
    SIGTERM of a. The client's neighbour entry follows each new master."""
    backup_kind = other(master_kind)
    hi, lo = keepalived_conf(instance6(150)), keepalived_conf(instance6(100))
    t0 = time.monotonic()
    start(lan, "a", master_kind, hi)
    first = lan.wait_holder("a", what="the first master")
    print(f"\n[v6, {master_kind} master] first election: {first - t0:.2f} s after start")
    start(lan, "b", backup_kind, lo)
    wait_until(lambda: lan.state("b") == "BACKUP", timeout=10, what="b BACKUP")
    only_one_holder(lan, "a")
    pylvs = "a" if master_kind == "pylvs" else "b"
    if master_kind == "pylvs":
        st = lan.pylvs_state("a", "VI_6")
        assert (st["state"], st["version"], st["src"]) == ("MASTER", 3, lan.linklocal("a"))
    # pylvsd hears the other's adverts (from its link-local address), or is heard by it
    want = lan.linklocal("a")
    wait_until(lambda: lan.pylvs_state(pylvs, "VI_6")["master"] == want, timeout=5,
               what="pylvsd knows a as master")  # fmt: skip

    lan.lab.run("c", PING6)
    assert lan.mac("a") in lan.client_neigh()

    killed = lan.kill9("a")
    took = lan.wait_vip("b", timeout=10, what="VIP on b after kill -9 of a") - killed
    print(f"[v6, {master_kind} master] kill -9 -> VIP on the {backup_kind} backup: {took:.3f} s")
    client_follows(lan, "b")
    lan.lab.run("c", PING6)

    lan.forget_vip("a")
    back = time.monotonic()
    start(lan, "a", master_kind, hi)
    took = lan.wait_holder("a", timeout=15, what="a preempts") - back
    print(f"[v6, {master_kind} master] restart -> preempted: {took:.2f} s")
    client_follows(lan, "a")
    only_one_holder(lan, "a")

    termed = lan.term("a", wait=False)
    took = lan.wait_vip("b", timeout=10, what="VIP on b after SIGTERM of a") - termed
    print(f"[v6, {master_kind} master] SIGTERM -> VIP on the {backup_kind} backup: {took:.3f} s")
    assert lan.wait_exit("a") == 0
    lan.wait_holder("b", timeout=5, what="VIP on b only once a has stopped")
    client_follows(lan, "b")
    lan.lab.run("c", PING6)


def test_v6_pylvs_pair_subsecond(lan: Lan6) -> None:
    """Two pylvsd, advert_int 0.1: election, kill -9, preemption, SIGTERM; the addresses go
    on with nodad."""
    hi, lo = keepalived_conf(instance6(150, "0.1")), keepalived_conf(instance6(100, "0.1"))
    start(lan, "a", "pylvs", hi)
    lan.wait_holder("a")
    out = lan.lab.run("a", ["ip", "-o", "-6", "addr", "show", "dev", "eth0"], text=True).stdout
    assert f"inet6 {VIP6}/64" in out and "nodad" in str(out).split(VIP6)[1].splitlines()[0]
    start(lan, "b", "pylvs", lo)
    wait_until(lambda: lan.state("b") == "BACKUP", timeout=10, what="b BACKUP")
    want = lan.linklocal("a")
    wait_until(lambda: lan.pylvs_state("b", "VI_6")["master"] == want, timeout=5)
    lan.lab.run("c", PING6)
    killed = lan.kill9("a")
    took = lan.wait_vip("b", timeout=5) - killed
    print(f"\n[v6 pylvs pair, 0.1 s] kill -9 -> VIP on b: {took:.3f} s")
    client_follows(lan, "b")
    lan.forget_vip("a")
    start(lan, "a", "pylvs", hi)
    lan.wait_holder("a", timeout=10, what="a preempts")
    client_follows(lan, "a")
    termed = lan.term("a", wait=False)
    took = lan.wait_holder("b", timeout=5) - termed
    print(f"[v6 pylvs pair, 0.1 s] SIGTERM -> VIP on b: {took:.3f} s")
    assert lan.wait_exit("a") == 0
    st = lan.pylvs_state("b", "VI_6")
    assert (st["state"], st["master"]) == ("MASTER", lan.linklocal("b"))
