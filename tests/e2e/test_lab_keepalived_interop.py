"""The farmka lab with Debian's keepalived 2.2.7 as director2's VRRP speaker, against pylvsd on
director1: the lab's VRRP instance interoperates. This kernel has no IPVS, so keepalived runs
VRRP only (``-P``) with a VRRP-only copy of director2's instance: its checkers, its IPVS table
and ``lvs_sync_daemon`` cannot run here (keepalived's VRRP process initialises IPVS for
lvs_sync_daemon and crashes without it), and director2 forwards nothing while keepalived holds
the VIP. What is checked: keepalived stays BACKUP under pylvsd's MASTER, takes the VIP over when
director1's pylvsd is killed (the router's neighbour entry follows keepalived's gratuitous ARP),
and gives it back when director1 returns and preempts. Times are printed (-s), not asserted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labfarm import mac_of, router_entry, scenario_up

from pylvs.io import netcfg
from pylvs.lab import runner
from pylvs.lab.topology import load_scenario
from pylvs.testing.netns import Lab, wait_until

KEEPALIVED = shutil.which("keepalived") or "/usr/sbin/keepalived"
PREFIX = f"lvs-i{os.getpid() % 100000}-"
VIP = "192.0.2.100"

pytestmark = pytest.mark.skipif(not os.path.exists(KEEPALIVED), reason="keepalived not installed")


def vrrp_only_conf() -> str:
    """director2's vrrp_instance of farmka, without lvs_sync_daemon and virtual_server."""
    scenario = load_scenario("farmka")
    vrrp = scenario.vrrp
    assert vrrp is not None
    return f"""! VRRP only: director2 of farmka, for keepalived -P
global_defs {{
    router_id director2
    vrrp_version {vrrp.version}
}}
vrrp_instance {vrrp.instance} {{
    state BACKUP
    interface eth0
    virtual_router_id {vrrp.vrid}
    priority {vrrp.priorities["director2"]}
    advert_int {vrrp.advert_int:g}
    virtual_ipaddress {{
        {VIP}/32 dev eth0
    }}
}}
"""


@pytest.fixture
def farmka() -> Iterator[None]:
    with scenario_up("farmka", PREFIX):
        yield


def test_keepalived_backup_against_pylvsd_master(farmka: None, tmp_path: Path) -> None:
    scenario = load_scenario("farmka")
    mac1, mac2 = mac_of(PREFIX, "director1"), mac_of(PREFIX, "director2")
    # director2's pylvsd stops (SIGTERM, it is BACKUP: nothing moves); keepalived replaces it.
    stopped = runner.fail(PREFIX, "director2", "term")
    assert isinstance(stopped, runner.FailResult) and not stopped.had_vip
    conf = tmp_path / "director2-vrrp.conf"
    conf.write_text(vrrp_only_conf())
    log_path = tmp_path / "keepalived.log"
    argv = [KEEPALIVED, "-f", str(conf), "-P", "--dont-fork", "--log-console"]
    argv += ["-p", str(tmp_path / "k.pid"), "-r", str(tmp_path / "v.pid")]
    argv += ["-c", str(tmp_path / "c.pid")]
    with log_path.open("w") as out:
        keepalived = Lab(prefix=PREFIX).popen(
            "director2",
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def logged(text: str, count: int = 1) -> bool:
        if keepalived.poll() is not None:
            raise AssertionError(f"keepalived exited: {log_path.read_text()[-2000:]}")
        return log_path.read_text().count(text) >= count

    try:
        wait_until(lambda: logged("(VI_1) Entering BACKUP STATE"), timeout=10, what="BACKUP")
        assert runner.vip_holders(PREFIX, scenario) == ["director1"]
        (d1,) = runner.cluster_view(PREFIX, scenario, only=["director1"])
        assert d1.vrrp_state == "MASTER"
        # Make the router resolve the VIP (director1's MAC) so that there is an entry to move.
        with netcfg.in_netns(PREFIX + "router"):
            netcfg.neigh_probe(VIP)
        wait_until(lambda: router_entry(PREFIX, VIP) == mac1, timeout=5, what="the router's entry")

        # pylvsd killed on the master: keepalived's master down timer expires.
        result = runner.fail(PREFIX, "director1", "kill")
        assert isinstance(result, runner.FailResult)
        assert result.holder == "director2" and result.takeover_s is not None
        assert logged("(VI_1) Entering MASTER STATE")
        wait_until(lambda: router_entry(PREFIX, VIP) == mac2, timeout=10, what="keepalived's GARP")
        arp_s = time.monotonic() - result.failed_at

        # director1 back: BACKUP at start, it hears priority 100 < 150 and preempts; keepalived
        # steps down and removes the VIP.
        healed = runner.heal(PREFIX, "director1")
        assert isinstance(healed, runner.HealResult) and healed.holder == "director1"
        wait_until(
            lambda: logged("(VI_1) Entering BACKUP STATE", 2), timeout=10, what="keepalived BACKUP"
        )
        assert "Master received advert from 192.0.2.2 with higher priority 150, ours 100" in (
            log_path.read_text()
        )
        wait_until(
            lambda: runner.vip_holders(PREFIX, scenario) == ["director1"],
            timeout=10,
            what="the VIP on director1 alone",
        )
        wait_until(lambda: router_entry(PREFIX, VIP) == mac1, timeout=10, what="pylvsd's GARP")
        print(
            f"\nfarmka interop: pylvsd master killed -> VIP on keepalived {result.takeover_s:.2f} "
            f"s, router's entry {arp_s:.2f} s; pylvsd back -> MASTER again {healed.seconds:.2f} s "
            "after its start"
        )
    finally:
        if keepalived.poll() is None:
            os.kill(keepalived.pid, signal.SIGTERM)
        keepalived.wait(15)
    assert keepalived.returncode == 0, log_path.read_text()[-2000:]
