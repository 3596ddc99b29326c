"""Two real heartbeat 3.0.6 nodes in namespaces fail a VIP over: the sanity test of the hbpeer
harness, and a record of what real heartbeat does (reference/ha-peers.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hbpeer import HEARTBEAT, RealHeartbeat, authkeys_sha1, available, log_path, typical_ha_cf

from pylvs.testing.netns import Lab, wait_until

VIP = "10.77.0.100"
# short namespace, interface, address, node name
SIDES = (("rhpa", "rhpa0", "10.77.0.1", "nodea"), ("rhpb", "rhpb0", "10.77.0.2", "nodeb"))


def _vip_on(lab: Lab, short: str, iface: str) -> bool:
    out = lab.run(short, ["ip", "-o", "-4", "addr", "show", "dev", iface], text=True).stdout
    return f"inet {VIP}/24" in out


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Lab, RealHeartbeat, RealHeartbeat]]:
    if not available():
        pytest.skip(f"Debian's heartbeat is not installed ({HEARTBEAT}); scripts/setup installs it")
    with Lab() as lab:
        (ns_a, if_a, ip_a, _), (ns_b, if_b, ip_b, _) = SIDES
        lab.add_netns(ns_a)
        lab.add_netns(ns_b)
        lab.veth(ns_a, if_a, ns_b, if_b, f"{ip_a}/24", f"{ip_b}/24")
        nodes: list[RealHeartbeat] = []
        try:
            for (short, iface, _, node), (_, _, peer, _) in zip(
                SIDES, reversed(SIDES), strict=True
            ):
                ha_cf = typical_ha_cf(
                    ucast=[(iface, peer)],
                    nodes=["nodea", "nodeb"],
                    logfile=log_path(tmp_path, node),
                )
                # Both name nodea the preferred owner; each its own interface.
                haresources = f"nodea IPaddr2::{VIP}/24/{iface}\n"
                nodes.append(
                    RealHeartbeat(
                        lab, short, node, ha_cf, authkeys_sha1("SECRET"), haresources, tmp_path
                    )
                )
            yield lab, nodes[0], nodes[1]
        finally:
            # Processes first, by pid; the Lab then deletes the namespaces (veth, VIP with them).
            for hb in nodes:
                hb.close()


def test_kill9_of_master_moves_vip(pair: tuple[Lab, RealHeartbeat, RealHeartbeat]) -> None:
    lab, a, b = pair
    (ns_a, if_a, _, _), (ns_b, if_b, _, _) = SIDES
    started = time.monotonic()
    # start() waits for the client API, which answers after initdead: nodea comes up alone and
    # takes the VIP at once (started at the same moment, real nodes settle ~10 s later).
    a.start()
    b.start()
    # The master forks its FIFO reader and a reader and a writer per medium.
    wait_until(lambda: len(a.children()) >= 3, 5, what="nodea's child processes")
    wait_until(lambda: a.node_status("nodeb") == "active", 15, 0.1, "nodea sees nodeb active")
    wait_until(lambda: b.node_status("nodea") == "active", 15, 0.1, "nodeb sees nodea active")
    wait_until(lambda: _vip_on(lab, ns_a, if_a), 30, 0.05, "VIP on nodea")
    acquired = time.monotonic() - started
    assert not _vip_on(lab, ns_b, if_b)
    # nodea holds its own resources: "transition" until the hand-over negotiation with the
    # joining nodeb completes, about 10 s after nodeb came up (release-1 resource manager).
    wait_until(lambda: a.cl_status("rscstatus").strip() == "local", 15, 0.1, "nodea rscstatus")

    killed = a.kill9()
    wait_until(lambda: _vip_on(lab, ns_b, if_b), 15, 0.02, "VIP on nodeb")
    failover = time.monotonic() - killed
    print(f"VIP on nodea {acquired:.1f}s after start; on nodeb {failover:.2f}s after kill -9")
    assert b.node_status("nodea") == "dead"
    assert _vip_on(lab, ns_a, if_a), "kill -9 leaves the VIP on the killed node"
    assert failover < 10
    # The killed master's children log "Emergency Shutdown: Master Control process died" and
    # kill themselves soon after; close() kills whatever is still there (by pid).
    print(f"nodea left behind after kill -9: {sorted(a.children())}")

    # A graceful stop releases the resources: nodeb's IPaddr2 stop removes the VIP.
    b.stop()
    assert not b.instance_pids()
    assert not _vip_on(lab, ns_b, if_b)
