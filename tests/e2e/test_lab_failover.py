"""The farm lab's heartbeat cluster end to end: director1 killed with SIGKILL in the middle of a
download through the VIP, director2 takes the VIP over, the download completes byte-exact (its
connection was synchronised), director1 comes back and gets the VIP back (auto_failback); then a
partition (director1's cables pulled) and its healing; `pylvs lab down` leaves nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from labfarm import gone, lab_cli, scenario_up, synced

from pylvs.ctl import ControlClient
from pylvs.io import netcfg
from pylvs.lab import client, runner
from pylvs.lab.servers import data_sha256
from pylvs.lab.state import lab_run_dir, load_state
from pylvs.lab.topology import load_scenario
from pylvs.testing.netns import wait_until

PREFIX = f"lvs-f{os.getpid() % 100000}-"
VIP = "192.0.2.100"
SIZE = 8 << 20
RATE = 2 << 20


@pytest.fixture
def farm() -> Iterator[None]:
    with scenario_up("farm", PREFIX):
        yield


def ha_status(node: str) -> dict[str, object]:
    with netcfg.in_netns(PREFIX + node), ControlClient(timeout=5) as ctl:
        result: dict[str, object] = ctl.request("ha-status")
        return result


def test_director_failover_keeps_a_download_going(farm: None) -> None:
    scenario = load_scenario("farm")
    assert runner.vip_holders(PREFIX, scenario) == ["director1"]
    state = load_state(PREFIX)
    assert state is not None and state.ha_dir
    assert os.stat(os.path.join(state.ha_dir, "authkeys")).st_mode & 0o777 == 0o600
    assert set(state.sync_daemons) == {"director1", "director2"}
    pids = [rec.pid for rec in state.processes]

    # A long download through the VIP; its connection reaches director2 by the sync daemons.
    download = client.start_download(PREFIX + "client1", VIP, 80, SIZE, RATE)
    assert download.cport and not download.error
    wait_until(lambda: synced(PREFIX, "director2", download.cport), timeout=10, what="synchronised")
    assert not download.done.is_set()

    result = runner.fail(PREFIX, "director1", "kill")
    assert isinstance(result, runner.FailResult)
    at_kill = download.received
    assert 0 < at_kill < SIZE, "the kill must come in the middle of the download"
    assert result.holder == "director2" and result.takeover_s is not None
    assert result.takeover_s < 5.0, result
    # kill -9 leaves the VIP on the killed director, as a crashed heartbeat does.
    assert result.holders == ["director1", "director2"]
    status = lab_cli(PREFIX, "status")
    assert "FAILED: pylvsd killed (kill -9)" in status and "pylvsd-killed pid" in status

    assert download.wait(30), "the download did not finish"
    assert download.error == "" and download.received == SIZE
    assert download.sha256 == data_sha256(SIZE) and download.ok
    st = ha_status("director2")
    nodes = st["nodes"]
    assert isinstance(nodes, dict) and nodes["director1"]["status"] == "dead"
    daemons = lab_cli(PREFIX, "exec", "director2", "--", "pylvsadm", "-L", "--daemon")
    assert daemons.startswith("master sync daemon (mcast=eth0, syncid=1"), daemons

    # heal: the stale VIP removed, pylvsd started again; auto_failback gives director1 the VIP.
    healed = runner.heal(PREFIX, "director1")
    assert isinstance(healed, runner.HealResult)
    assert healed.holder == "director1" and healed.removed == [f"{VIP}/24 from eth0"]
    assert runner.vip_holders(PREFIX, scenario) == ["director1"]
    body = lab_cli(PREFIX, "exec", "client1", "--", "curl", "-s", "-m", "5", f"http://{VIP}/")
    assert body.strip().startswith("rs")

    # A partition: director1's cables pulled; both hold the VIP until the cables are back.
    out = lab_cli(PREFIX, "fail", "director1", "--how", "link")
    assert "cables pulled (switch ports director1-eth0, director1-eth1 down)" in out, out
    assert "director2 took the VIP 192.0.2.100 over" in out and "split brain" in out, out
    assert runner.vip_holders(PREFIX, scenario) == ["director1", "director2"]
    before = {v.node: v.generation for v in runner.cluster_view(PREFIX, scenario)}
    out = lab_cli(PREFIX, "heal", "director1")
    assert "both sides restarted heartbeat" in out and "VIP on director1" in out, out
    assert runner.vip_holders(PREFIX, scenario) == ["director1"]
    after = {v.node: v.generation for v in runner.cluster_view(PREFIX, scenario)}
    assert all(after[n] > before[n] for n in before), (before, after)

    assert "namespaces removed" in lab_cli(PREFIX, "down")
    assert runner.lab_namespaces(PREFIX) == []
    assert runner.lab_pids(PREFIX) == {}
    assert not lab_run_dir(PREFIX).exists()
    for pid in pids:
        assert gone(pid), f"process {pid} of the lab still runs"
