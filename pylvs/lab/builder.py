"""Build a scenario's network: namespaces, LAN bridges, veths, addresses, routes, sysctls.

Every node is a namespace ``<prefix><node>``; the LANs are bridges ``br-<lan>`` in one more
namespace, ``<prefix>switch``, and each node interface is a veth whose other end (named
``<node>-<iface>``) is a port of its LAN's bridge. Each veth is created inside the switch
namespace and its peer moved straight into the node's namespace, so nothing ever appears in the
namespace the lab is built from. All host changes go through :mod:`pylvs.io.netcfg`, via the
namespace helpers of :mod:`pylvs.testing.netns`.
"""

from __future__ import annotations

from pylvs.io import netcfg
from pylvs.lab.topology import Node, Scenario
from pylvs.testing.netns import Lab

__all__ = ["SWITCH", "bridge_name", "build_network", "namespaces"]

SWITCH = "switch"


def bridge_name(lan: str) -> str:
    return f"br-{lan}"


def namespaces(scenario: Scenario, prefix: str) -> list[str]:
    """The namespace names of a scenario, the switch first."""
    return [prefix + SWITCH, *(prefix + node.name for node in scenario.nodes)]


def _quiet(lab: Lab, short: str, family: int = 4) -> None:
    # Set before the interfaces exist so they inherit it. An IPv4 scenario turns IPv6 off: no
    # IPv6 autoconfiguration, router solicitations or MLD reports cluttering the captures of
    # `pylvs lab trace`. An IPv6 scenario (and the switch, which only bridges) keeps IPv6 on a
    # node's interfaces but without duplicate address detection (RFC 4862 5.4: an address is
    # "tentative", unusable, until DAD has waited a second; on a lab LAN no one else has it) and
    # without router advertisements or autoconfiguration: the scenario's addresses and routes
    # are all there is.
    with lab.inside(short):
        for conf in ("all", "default"):
            if family == 4:
                netcfg.write_sysctl(f"net.ipv6.conf.{conf}.disable_ipv6", 1)
                continue
            netcfg.write_sysctl(f"net.ipv6.conf.{conf}.accept_dad", 0)
            netcfg.write_sysctl(f"net.ipv6.conf.{conf}.accept_ra", 0)
            netcfg.write_sysctl(f"net.ipv6.conf.{conf}.autoconf", 0)


def _node_sysctls(lab: Lab, scenario: Scenario, node: Node) -> None:
    with lab.inside(node.name):
        if node.role == "router" and scenario.family == 6:
            # IPv6 has no rp_filter: forwarding is all a router needs.
            netcfg.write_sysctl("net.ipv6.conf.all.forwarding", 1)
        if node.role == "router":
            netcfg.write_sysctl("net.ipv4.ip_forward", 1)
            # Replies from DR and TUN real servers carry the VIP as source and arrive from the
            # real servers' side, where no route to the VIP points: strict reverse-path filtering
            # would drop them (LVS-HOWTO, rp_filter).
            for conf in ("all", "default", *(i.name for i in node.interfaces)):
                netcfg.write_sysctl(f"net/ipv4/conf/{conf}/rp_filter", 0)
        if node.role == "director":
            # In NAT the director routes replies back out of the interface they came in on for
            # single-LAN set-ups; ICMP redirects would teach the real servers to bypass it.
            for conf in ("all", "default"):
                netcfg.write_sysctl(f"net.ipv4.conf.{conf}.send_redirects", 0)


def build_network(lab: Lab, scenario: Scenario) -> None:
    """Create and wire every namespace of ``scenario`` in ``lab`` (its prefix names them)."""
    lab.add_netns(SWITCH)
    _quiet(lab, SWITCH)
    with lab.inside(SWITCH):
        for lan in scenario.lans:
            netcfg.add_bridge(bridge_name(lan.name))
            netcfg.set_link_up(bridge_name(lan.name))
    for node in scenario.nodes:
        lab.add_netns(node.name)
        _quiet(lab, node.name, scenario.family)
        for iface in node.interfaces:
            port = node.port(iface)
            lab.veth(SWITCH, port, node.name, iface.name, addr_b=str(iface.address))
            with lab.inside(SWITCH):
                netcfg.set_link_master(port, bridge_name(iface.lan))
        _node_sysctls(lab, scenario, node)
        if node.gateway is not None:
            with lab.inside(node.name):
                # netcfg's "default" is the IPv4 one; "::/0" is IPv6's.
                netcfg.add_route("::/0" if scenario.family == 6 else "default", node.gateway)
    # The active director holds the VIP on its interface in the VIP's LAN and so answers the
    # router's ARP requests for it (heartbeat's IPaddr does the same on takeover). The standby
    # does not: two ARP answers would split the traffic between the directors. With heartbeat
    # the VIP is a resource of the cluster, with keepalived the virtual_ipaddress of a VRRP
    # instance: heartbeat or VRRP puts it on a director, not the builder.
    if scenario.vip_by_ha:
        return
    director = scenario.active_director
    with lab.inside(director.name):
        netcfg.add_address(
            scenario.vip_interface.name,
            f"{scenario.vip}/{scenario.vip_prefixlen}",
            nodad=scenario.family == 6,
            # A /128 beats the interface's /64 in source address selection (RFC 6724 rule 8,
            # longest matching prefix), so the director's own connections (health checks, the
            # tunnel's outer header) would leave from the VIP, which the DR and TUN real servers
            # hold on lo: their answers would never leave them. A deprecated VIP still receives
            # the clients' packets but is not chosen as a source (rule 3).
            deprecated=scenario.family == 6,
        )
