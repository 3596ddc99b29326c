"""The IPaddr2 resource on real interfaces: the address taken over with heartbeat's placement,
broadcast and label, the LAN told by gratuitous ARP, and given back (to lo with lvs_support)."""

from __future__ import annotations

import socket

import pytest

from pylvs.config.heartbeat import parse_ipaddr_arg
from pylvs.ha.ipaddr import IPaddr2, IPaddrError
from pylvs.testing.netns import Lab, wait_until

VIP = "10.9.0.100"


def _addrs(lab: Lab, short: str, dev: str) -> str:
    return str(lab.run(short, ["ip", "-o", "-4", "addr", "show", "dev", dev], text=True).stdout)


def test_take_over_announce_and_give_back() -> None:
    with Lab() as lab:
        lab.add_netns("a")
        lab.add_netns("c")
        lab.veth("a", "a0", "c", "c0", "10.9.0.1/24", "10.9.0.2/24")
        lab.run("c", ["ip", "neigh", "replace", VIP, "lladdr", "02:00:00:00:00:99", "dev", "c0",
                      "nud", "stale"])  # fmt: skip
        rsc = IPaddr2(parse_ipaddr_arg(VIP), lvs_support=True)
        with lab.inside("a"):
            assert rsc.placement() == ("a0", 24)  # findif: the network that holds the address
            assert rsc.status() == "stopped"
            rsc.start()
            assert rsc.status() == "running"
        assert f"inet {VIP}/24 brd 10.9.0.255" in _addrs(lab, "a", "a0")
        neigh = lab.run("c", ["ip", "neigh", "show", VIP, "dev", "c0"], text=True).stdout
        assert "02:00:00:00:00:99" not in neigh
        with lab.inside("a"):
            server = socket.create_server((VIP, 7777))
        with lab.inside("c"):
            client = socket.create_connection((VIP, 7777), timeout=5)  # the VIP answers
        client.close()
        server.close()
        with lab.inside("a"):
            rsc.stop()
            assert rsc.status() == "stopped"
        assert VIP not in _addrs(lab, "a", "a0")
        assert f"inet {VIP}/32" in _addrs(lab, "a", "lo")  # lvs_support keeps it on lo
        with lab.inside("a"):
            rsc.start()
        assert VIP not in _addrs(lab, "a", "lo") and VIP in _addrs(lab, "a", "a0")
        # A written interface, prefix and label.
        labelled = IPaddr2(parse_ipaddr_arg("10.9.0.101/24/a0:web"), announce=lambda i, a: 0)
        with lab.inside("a"):
            labelled.start()
        assert wait_until(lambda: "a0:web" in _addrs(lab, "a", "a0"), 2)
        # An address no configured network holds, with no interface written.
        with lab.inside("a"), pytest.raises(IPaddrError, match="Unable to find an interface"):
            IPaddr2(parse_ipaddr_arg("172.31.9.9")).placement()
