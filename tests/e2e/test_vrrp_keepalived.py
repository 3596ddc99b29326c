"""pylvsd's VRRP against Debian's keepalived 2.2.7 on one LAN, in both roles: election by
priority and by address, kill -9 and SIGTERM of the master, preemption, nopreempt, tracked
scripts (weight and FAULT), unicast peers with sub-second VRRPv3 adverts, VRRPv2 with PASS
authentication, and the client's neighbour entry following the gratuitous ARP. A pylvsd pair
too. Failover times are printed (``-s``), never asserted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vrrplab import ADDR, VIP, VrrpLan, instance_conf, keepalived_conf, needs_vrrp_peers, vrrp_lan

from pylvs.testing.netns import wait_until

pytestmark = needs_vrrp_peers


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[VrrpLan]:
    with vrrp_lan(tmp_path) as lan:
        yield lan


def start(lan: VrrpLan, short: str, kind: str, conf: str) -> None:
    if kind == "pylvs":
        lan.start_pylvs(short, conf)
    else:
        lan.start_keepalived(short, conf)


def is_backup(lan: VrrpLan, short: str) -> bool:
    peer = lan.peers[short]
    if peer.kind == "pylvs":
        return bool(lan.pylvs_state(short)["state"] == "BACKUP")
    return "(VI_1) Entering BACKUP STATE" in peer.log.read_text(errors="replace")


def only_one_holder(lan: VrrpLan, short: str, samples: int = 5) -> None:
    """The VIP is on ``short`` and nowhere else, sampled a few times."""
    for _ in range(samples):
        assert lan.holders() == [short]
        time.sleep(0.1)


def other(kind: str) -> str:
    return "keepalived" if kind == "pylvs" else "pylvs"


@pytest.mark.parametrize("master_kind", ["pylvs", "keepalived"])
def test_election_kill_preempt_term(lan: VrrpLan, master_kind: str) -> None:
    """a (priority 150) is master, b (100) backup; kill -9 of a, a returns and preempts,
    SIGTERM of a: b takes over after the skew time. The client's neighbour entry follows."""
    backup_kind = other(master_kind)
    hi = keepalived_conf(instance_conf(150))
    lo = keepalived_conf(instance_conf(100))
    t0 = time.monotonic()
    start(lan, "a", master_kind, hi)
    first = lan.wait_holder("a", what="the first master")
    print(f"\n[{master_kind} master] first election: {first - t0:.2f} s after start")
    start(lan, "b", backup_kind, lo)
    wait_until(lambda: is_backup(lan, "b"), timeout=10, what="b BACKUP")
    only_one_holder(lan, "a")
    if master_kind == "pylvs":
        st = lan.pylvs_state("a")
        assert (st["state"], st["priority"], st["effective_priority"]) == ("MASTER", 150, 150)
    else:
        # BACKUP (init) comes before the first advert is heard: wait for it
        wait_until(lambda: lan.pylvs_state("b")["master"] == ADDR["a"], timeout=5, what="b hears a")

    # The client learns the VIP's MAC (a), then must follow the GARP alone.
    lan.lab.run("c", ["ping", "-c", "1", "-W", "2", VIP])
    assert lan.mac("a") in lan.client_neigh()

    killed = lan.kill9("a")
    took = lan.wait_vip("b", timeout=10, what="VIP on b after kill -9 of a") - killed
    print(f"[{master_kind} master] kill -9 -> VIP on the {backup_kind} backup: {took:.3f} s")
    wait_until(lambda: lan.mac("b") in lan.client_neigh(), timeout=3, what="client neigh -> b")

    # a comes back (the address a killed node left is gone, as after a reboot) and preempts.
    lan.forget_vip("a")
    back = time.monotonic()
    start(lan, "a", master_kind, hi)
    took = lan.wait_holder("a", timeout=15, what="a preempts") - back
    print(f"[{master_kind} master] restart -> preempted: {took:.2f} s")
    wait_until(lambda: lan.mac("a") in lan.client_neigh(), timeout=3, what="client neigh -> a")
    only_one_holder(lan, "a")

    termed = lan.term("a", wait=False)
    took = lan.wait_vip("b", timeout=10, what="VIP on b after SIGTERM of a") - termed
    print(f"[{master_kind} master] SIGTERM -> VIP on the {backup_kind} backup: {took:.3f} s")
    assert lan.wait_exit("a") == 0
    lan.wait_holder("b", timeout=5, what="VIP on b only once a has stopped")
    wait_until(lambda: lan.mac("b") in lan.client_neigh(), timeout=3, what="client neigh -> b")


@pytest.mark.parametrize("pylvs_on", ["a", "b"])
def test_equal_priority_higher_address_wins(lan: VrrpLan, pylvs_on: str) -> None:
    """Two masters of equal priority (started apart: b's bridge port detached) meet: the one
    with the lower address (a) steps down. (A BACKUP never preempts an equal-priority master:
    it accepts its adverts, RFC 5798 6.4.2 and keepalived's vrrp_state_backup.)"""
    conf = keepalived_conf(instance_conf(100))
    lan.lab.run("sw", ["ip", "link", "set", "pb", "nomaster"])
    for short in ("a", "b"):
        start(lan, short, "pylvs" if short == pylvs_on else "keepalived", conf)
    wait_until(lambda: lan.holders() == ["a", "b"], timeout=20, what="both master, apart")
    lan.lab.run("sw", ["ip", "link", "set", "pb", "master", "br0"])
    lan.wait_holder("b", timeout=10, what="the higher address (b) stays master")
    wait_until(lambda: is_backup(lan, "a"), timeout=10, what="a BACKUP")
    only_one_holder(lan, "b")


@pytest.mark.parametrize("nopreempt_kind", ["pylvs", "keepalived"])
def test_nopreempt(lan: VrrpLan, nopreempt_kind: str) -> None:
    """b (100) is master alone; a (150, nopreempt) joins and stays BACKUP; when b stops,
    a takes over."""
    start(lan, "b", other(nopreempt_kind), keepalived_conf(instance_conf(100)))
    lan.wait_holder("b")
    start(lan, "a", nopreempt_kind, keepalived_conf(instance_conf(150, extra="nopreempt")))
    wait_until(lambda: is_backup(lan, "a"), timeout=10, what="a BACKUP")
    time.sleep(4.0)  # longer than a's master down interval (3.4 s): a must not preempt
    only_one_holder(lan, "b")
    lan.term("b")
    lan.wait_holder("a", timeout=10, what="a master once b is gone")


SCRIPT = """vrrp_script chk_flag {{
    script "/usr/bin/test -e {flag}"
    interval 1
    weight {weight}
    fall 1
    rise 1
}}
"""


@pytest.mark.parametrize("tracker_kind", ["pylvs", "keepalived"])
def test_track_script_weight_then_fault(lan: VrrpLan, tracker_kind: str) -> None:
    """a (150) tracks a script with weight -60: when it fails, 90 < 100 and b takes over; when
    it succeeds again a preempts. With weight 0 a failing script is FAULT."""
    flag = lan.tmp / "flag"
    flag.write_text("up\n")
    inst = instance_conf(150, extra="track_script {\n    chk_flag\n}")
    conf = keepalived_conf(
        inst,
        top=SCRIPT.format(flag=flag, weight=-60),
        global_defs="    enable_script_security\n    script_user root\n",
    )
    start(lan, "a", tracker_kind, conf)
    lan.wait_holder("a")
    start(lan, "b", other(tracker_kind), keepalived_conf(instance_conf(100)))
    wait_until(lambda: is_backup(lan, "b"), timeout=10, what="b BACKUP")
    flag.unlink()
    lan.wait_holder("b", timeout=10, what="b master after a's script failed")
    if tracker_kind == "pylvs":
        st = lan.pylvs_state("a")
        assert (st["state"], st["effective_priority"]) == ("BACKUP", 90)
    flag.write_text("up\n")
    lan.wait_holder("a", timeout=10, what="a preempts when its script succeeds again")
    lan.term("a")
    lan.wait_holder("b", timeout=10)

    # weight 0: a failing script is FAULT
    conf0 = keepalived_conf(
        inst,
        top=SCRIPT.format(flag=flag, weight=0),
        global_defs="    enable_script_security\n    script_user root\n",
    )
    start(lan, "a", tracker_kind, conf0)
    lan.wait_holder("a", timeout=15, what="a master again")
    flag.unlink()
    lan.wait_holder("b", timeout=10, what="b master while a is FAULT")
    peer = lan.peers["a"]
    if tracker_kind == "pylvs":
        wait_until(lambda: lan.pylvs_state("a")["state"] == "FAULT", timeout=5)
    else:
        wait_until(lambda: "Entering FAULT STATE" in peer.log.read_text(), timeout=5)


@pytest.mark.parametrize("master_kind", ["pylvs", "keepalived"])
def test_unicast_v3_subsecond(lan: VrrpLan, master_kind: str) -> None:
    """Unicast peers, VRRPv3 with advert_int 0.1: kill -9 and SIGTERM failovers."""

    def conf(short: str, prio: int) -> str:
        peer = ADDR["b" if short == "a" else "a"]
        return keepalived_conf(
            instance_conf(
                prio, advert_int="0.1", unicast_peer=peer, extra=f"unicast_src_ip {ADDR[short]}"
            )
        )

    start(lan, "a", master_kind, conf("a", 150))
    lan.wait_holder("a")
    start(lan, "b", other(master_kind), conf("b", 100))
    wait_until(lambda: is_backup(lan, "b"), timeout=10, what="b BACKUP")
    only_one_holder(lan, "a")
    killed = lan.kill9("a")
    took = lan.wait_vip("b", timeout=5) - killed
    print(f"\n[{master_kind} master, unicast 0.1 s] kill -9 -> VIP on b: {took:.3f} s")
    lan.forget_vip("a")
    start(lan, "a", master_kind, conf("a", 150))
    lan.wait_holder("a", timeout=10, what="a preempts")
    termed = lan.term("a", wait=False)
    took = lan.wait_holder("b", timeout=5) - termed
    print(f"[{master_kind} master, unicast 0.1 s] SIGTERM -> VIP on b: {took:.3f} s")
    assert lan.wait_exit("a") == 0


@pytest.mark.parametrize("master_kind", ["pylvs", "keepalived"])
def test_v2_auth_pass(lan: VrrpLan, master_kind: str) -> None:
    """VRRPv2 with auth_type PASS: the two agree; a backup with the wrong password does not
    accept the master's adverts (it becomes master too) and logs it."""

    def v2_pass(priority: int, password: str) -> str:
        return keepalived_conf(instance_conf(priority, version=2, auth_pass=password))

    start(lan, "a", master_kind, v2_pass(150, "s3cret"))
    lan.wait_holder("a")
    start(lan, "b", other(master_kind), v2_pass(100, "s3cret"))
    wait_until(lambda: is_backup(lan, "b"), timeout=10, what="b BACKUP")
    only_one_holder(lan, "a")
    termed = lan.term("a", wait=False)
    took = lan.wait_holder("b", timeout=5) - termed
    print(f"\n[{master_kind} master, v2 PASS] SIGTERM -> VIP on b: {took:.3f} s")
    assert lan.wait_exit("a") == 0
    lan.term("b")
    # wrong password: both end up master
    start(lan, "a", master_kind, v2_pass(150, "s3cret"))
    lan.wait_holder("a")
    start(lan, "b", other(master_kind), v2_pass(100, "other"))
    wait_until(lambda: lan.holders() == ["a", "b"], timeout=10, what="both master")


def test_pylvs_pair(lan: VrrpLan) -> None:
    """Two pylvsd: election, kill -9, preemption, SIGTERM."""
    start(lan, "a", "pylvs", keepalived_conf(instance_conf(150)))
    lan.wait_holder("a")
    start(lan, "b", "pylvs", keepalived_conf(instance_conf(100)))
    wait_until(lambda: is_backup(lan, "b"), timeout=10, what="b BACKUP")
    wait_until(lambda: lan.pylvs_state("b")["master"] == ADDR["a"], timeout=5, what="b hears a")
    only_one_holder(lan, "a")
    killed = lan.kill9("a")
    took = lan.wait_vip("b", timeout=10) - killed
    print(f"\n[pylvs pair] kill -9 -> VIP on b: {took:.3f} s")
    lan.forget_vip("a")
    start(lan, "a", "pylvs", keepalived_conf(instance_conf(150)))
    lan.wait_holder("a", timeout=15, what="a preempts")
    termed = lan.term("a", wait=False)
    took = lan.wait_holder("b", timeout=10) - termed
    print(f"[pylvs pair] SIGTERM -> VIP on b: {took:.3f} s")
    assert lan.wait_exit("a") == 0
    st = lan.pylvs_state("b")
    assert (st["state"], st["master"]) == ("MASTER", ADDR["b"])
