"""The farmka lab end to end: two directors running pylvsd with a keepalived.conf each elect a
VRRP master; director1 (priority 150) killed with SIGKILL in the middle of a download through
the VIP, director2 becomes MASTER, takes the VIP (the router's neighbour entry follows its
gratuitous ARP) and the download completes byte-exact (its connection was learned by director2's
backup sync daemon, which became the master); director1 comes back and preempts; a second
download across a SIGTERM of the master (priority-0 advertisement) completes too; `pylvs lab
down` leaves nothing. The failover times are printed (run with -s), not asserted."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from labfarm import gone, lab_cli, mac_of, router_entry, scenario_up, synced

from pylvs.lab import client, runner
from pylvs.lab.servers import data_sha256
from pylvs.lab.state import lab_run_dir, load_state
from pylvs.lab.topology import load_scenario
from pylvs.testing.netns import wait_until

PREFIX = f"lvs-k{os.getpid() % 100000}-"
VIP = "192.0.2.100"
SIZE = 16 << 20
RATE = 2 << 20


@pytest.fixture
def farmka() -> Iterator[None]:
    with scenario_up("farmka", PREFIX):
        yield


def views() -> dict[str, runner.DirectorView]:
    return {v.node: v for v in runner.cluster_view(PREFIX, load_scenario("farmka"))}


@dataclass
class Watch:
    """Samples, every 10 ms from a thread of its own, when the router's entry for the VIP first
    holds ``mac`` (monotonic time, 0.0 until then)."""

    mac: bytes
    seen_at: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            if router_entry(PREFIX, VIP) == self.mac:
                self.seen_at = time.monotonic()
                return
            time.sleep(0.01)

    def start(self) -> Watch:
        threading.Thread(target=self.run, daemon=True).start()
        return self


def test_vrrp_failover_keeps_downloads_going(farmka: None) -> None:
    scenario = load_scenario("farmka")
    state = load_state(PREFIX)
    assert state is not None and state.ready
    pids = [rec.pid for rec in state.processes]
    assert runner.vip_holders(PREFIX, scenario) == ["director1"]
    seen = views()
    assert (seen["director1"].vrrp_state, seen["director2"].vrrp_state) == ("MASTER", "BACKUP")
    assert seen["director2"].master == "192.0.2.2"
    # lvs_sync_daemon eth1 VI_1: the syncid is the VRID, the role follows the VRRP state.
    assert seen["director1"].daemons == [("master", "eth1", 51)]
    assert seen["director2"].daemons == [("backup", "eth1", 51)]
    status = lab_cli(PREFIX, "status")
    assert "MASTER; holds VIP 192.0.2.100" in status, status
    assert "BACKUP; VIP not held" in status, status
    assert "eth0 192.0.2.100 (VIP, virtual_ipaddress of VI_1)" in status, status
    mac1, mac2 = mac_of(PREFIX, "director1"), mac_of(PREFIX, "director2")

    # A long download through the VIP; its connection reaches director2 by the sync daemons.
    download = client.start_download(PREFIX + "client1", VIP, 80, SIZE, RATE)
    assert download.cport and not download.error
    assert router_entry(PREFIX, VIP) == mac1
    wait_until(lambda: synced(PREFIX, "director2", download.cport), timeout=10, what="synchronised")
    assert not download.done.is_set()

    # kill -9 of director1's pylvsd: director2 hears no advertisement for its master down
    # interval (3 x 0.5 s + skew), becomes MASTER, adds the VIP and sends gratuitous ARP.
    watch = Watch(mac2).start()
    result = runner.fail(PREFIX, "director1", "kill")
    assert isinstance(result, runner.FailResult)
    at_kill = download.received
    assert 0 < at_kill < SIZE, "the kill must come in the middle of the download"
    assert result.holder == "director2" and result.takeover_s is not None
    # Nothing removed the VIP from the killed director, as with a killed keepalived.
    assert result.holders == ["director1", "director2"]
    wait_until(lambda: watch.seen_at > 0, timeout=10, what="the router to follow the GARP")
    arp_s = watch.seen_at - result.failed_at
    assert "FAILED: pylvsd killed (kill -9)" in lab_cli(PREFIX, "status")

    assert download.wait(60), "the download did not finish"
    assert download.error == "" and download.received == SIZE
    assert download.sha256 == data_sha256(SIZE) and download.ok
    kill_stall = download.longest_stall
    d2 = views()["director2"]
    assert d2.vrrp_state == "MASTER" and d2.daemons == [("master", "eth1", 51)]

    # director1 back (a reboot: the stale VIP removed first): as BACKUP it hears director2's
    # lower priority and preempts; the router follows its gratuitous ARP.
    watch = Watch(mac1).start()
    healed = runner.heal(PREFIX, "director1")
    assert isinstance(healed, runner.HealResult)
    assert healed.holder == "director1" and healed.removed == [f"{VIP}/32 from eth0"]
    assert runner.vip_holders(PREFIX, scenario) == ["director1"]
    wait_until(lambda: watch.seen_at > 0, timeout=10, what="the router to follow the preemption")
    seen = views()
    assert seen["director2"].vrrp_state == "BACKUP"
    assert seen["director2"].daemons == [("backup", "eth1", 51)]
    body = lab_cli(PREFIX, "exec", "client1", "--", "curl", "-s", "-m", "5", f"http://{VIP}/")
    assert body.strip().startswith("rs"), body

    # A clean stop of the master: its priority-0 advertisement makes director2 take over
    # after the skew time alone, and it removes the VIP on its way out.
    download = client.start_download(PREFIX + "client2", VIP, 80, SIZE, RATE)
    assert download.cport and not download.error
    wait_until(lambda: synced(PREFIX, "director2", download.cport), timeout=10, what="synchronised")
    watch = Watch(mac2).start()
    term = runner.fail(PREFIX, "director1", "term")
    assert isinstance(term, runner.FailResult)
    assert 0 < download.received < SIZE, "the stop must come in the middle of the download"
    assert term.holder == "director2" and term.takeover_s is not None
    assert term.holders == ["director2"]
    wait_until(lambda: watch.seen_at > 0, timeout=10, what="the router to follow the GARP")
    term_arp_s = watch.seen_at - term.failed_at
    assert download.wait(60), "the second download did not finish"
    assert download.ok, (download.error, download.received)
    term_stall = download.longest_stall
    out = lab_cli(PREFIX, "heal", "director1")
    assert "VIP on director1" in out, out
    assert runner.vip_holders(PREFIX, scenario) == ["director1"]

    print(
        f"\nfarmka failover: kill -9 -> VIP on director2 {result.takeover_s:.2f} s, router's "
        f"entry {arp_s:.2f} s, download stalled {kill_stall:.2f} s; director1 back -> "
        f"VIP again {healed.seconds:.2f} s after its start; SIGTERM -> VIP on director2 "
        f"{term.takeover_s:.2f} s, router's entry {term_arp_s:.2f} s, download stalled "
        f"{term_stall:.2f} s"
    )

    state = load_state(PREFIX)
    assert state is not None
    pids += [rec.pid for rec in state.processes]
    out = lab_cli(PREFIX, "down")
    assert "namespaces removed" in out, out
    assert runner.lab_namespaces(PREFIX) == []
    assert runner.lab_pids(PREFIX) == {}
    assert not lab_run_dir(PREFIX).exists()
    for pid in pids:
        assert gone(pid), f"process {pid} of the lab still runs"
