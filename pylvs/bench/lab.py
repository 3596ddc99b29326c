"""The benchmark's namespaces: sender ``s`` -> director ``d`` -> receiver ``r``, offloads off
(``ethtool -K ... tso gso gro tx rx off``) unless built with ``offloads=True`` (the veth defaults).

```
  s (192.0.2.2) s0 ──── d0 (192.0.2.1)  d  d1 (198.51.100.1) ──── r0 (198.51.100.11-13) r
                                                                    lo: VIP 203.0.113.10
```

The same links also carry IPv6 (documentation addresses, duplicate address detection off):
sender ``2001:db8:1::2``, director ``2001:db8:1::1`` / ``2001:db8:2::1``, real servers
``2001:db8:2::11-13``, VIP ``2001:db8:3::10`` on the receiver's ``lo``; :meth:`Topology.ipv6`
gives that view of the topology (the same field names), for the IPv6 rows.

The receiver holds the three real-server addresses and the VIP on ``lo`` (``arp_ignore=1``,
``arp_announce=2``, ``rp_filter=0``: an LVS-DR real server), its default route is the director
(NAT replies return through it), and its raw table drops the benchmark's UDP port, so a frame is
counted on ``r0`` and then discarded without an ICMP answer. The director routes the VIP to the
first real server (the plain-forwarding reference) and forwards (``ip_forward=1``), which also
carries the direct-routing replies of the HTTP test back to the sender.

IPv6 has no ``arp_ignore``: the director (kernel forwarding, or pylvs in DR) sends the VIP's
frames straight to a real server's MAC, so nothing resolves the VIP itself.

Everything lives in namespaces named ``pylvs-b<pid>-*``, removed by :meth:`BenchLab.close`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from pylvs.io import netcfg
from pylvs.testing.netns import Lab

__all__ = ["BenchLab", "Topology"]


@dataclass(frozen=True)
class Topology:
    sender: str = "192.0.2.2"
    director_front: str = "192.0.2.1"
    director_back: str = "198.51.100.1"
    reals: tuple[str, ...] = ("198.51.100.11", "198.51.100.12", "198.51.100.13")
    vip: str = "203.0.113.10"
    udp_port: int = 9000
    http_port: int = 80
    sender_if: str = "s0"
    front_if: str = "d0"
    back_if: str = "d1"
    receiver_if: str = "r0"
    family: str = "ipv4"
    # The IPv6 addresses of the same hosts (see ipv6()).
    sender6: str = "2001:db8:1::2"
    director_front6: str = "2001:db8:1::1"
    director_back6: str = "2001:db8:2::1"
    reals6: tuple[str, ...] = ("2001:db8:2::11", "2001:db8:2::12", "2001:db8:2::13")
    vip6: str = "2001:db8:3::10"

    def ipv6(self) -> Topology:
        """The topology with its IPv6 addresses in the IPv4 fields (``sender``, ``vip``, ...)."""
        return dataclasses.replace(
            self,
            family="ipv6",
            sender=self.sender6,
            director_front=self.director_front6,
            director_back=self.director_back6,
            reals=self.reals6,
            vip=self.vip6,
        )


class BenchLab(Lab):
    """A :class:`Lab` holding the three benchmark namespaces."""

    def __init__(self, offloads: bool = False) -> None:
        super().__init__(prefix=f"pylvs-b{os.getpid()}-")
        self.topo = Topology()
        self.offloads = offloads

    def __enter__(self) -> BenchLab:
        return self

    def build(self) -> Topology:
        t = self.topo
        for short in ("s", "d", "r"):
            self.add_netns(short)
            with self.inside(short):  # before the links exist: their addresses usable at once
                for conf in ("all", "default"):
                    netcfg.write_sysctl(f"net.ipv6.conf.{conf}.accept_dad", 0)
        off = self.offloads
        self.veth("s", t.sender_if, "d", t.front_if, f"{t.sender}/24", f"{t.director_front}/24",
                  offloads=off)  # fmt: skip
        self.veth("d", t.back_if, "r", t.receiver_if, f"{t.director_back}/24", f"{t.reals[0]}/24",
                  offloads=off)  # fmt: skip
        with self.inside("s"):
            netcfg.add_address(t.sender_if, f"{t.sender6}/64", nodad=True)
            netcfg.add_route(f"{t.vip6}/128", t.director_front6)
            netcfg.add_route("2001:db8:2::/64", t.director_front6)
            netcfg.add_route(f"{t.vip}/32", t.director_front)
            netcfg.add_route("198.51.100.0/24", t.director_front)
            netcfg.write_sysctl("net.ipv4.ip_local_port_range", "1024 65000")
            netcfg.write_sysctl("net.ipv4.tcp_tw_reuse", 1)
        with self.inside("d"):
            netcfg.add_address(t.front_if, f"{t.director_front6}/64", nodad=True)
            netcfg.add_address(t.back_if, f"{t.director_back6}/64", nodad=True)
            netcfg.add_route(f"{t.vip6}/128", t.reals6[0])
            netcfg.write_sysctl("net.ipv6.conf.all.forwarding", 1)
            netcfg.add_route(f"{t.vip}/32", t.reals[0])
            netcfg.write_sysctl("net.ipv4.ip_forward", 1)
            for key in ("all", "default", t.front_if, t.back_if):
                netcfg.write_sysctl(f"net.ipv4.conf.{key}.rp_filter", 0)
                netcfg.write_sysctl(f"net.ipv4.conf.{key}.send_redirects", 0)
        with self.inside("r"):
            for rip in t.reals[1:]:
                netcfg.add_address(t.receiver_if, f"{rip}/24")
            netcfg.add_address("lo", f"{t.vip}/32")
            netcfg.add_route("default", t.director_back)
            for rip in t.reals6:
                netcfg.add_address(t.receiver_if, f"{rip}/64", nodad=True)
            netcfg.add_address("lo", f"{t.vip6}/128", nodad=True)
            netcfg.add_route("::/0", t.director_back6)
            for key, value in (("arp_ignore", 1), ("arp_announce", 2), ("rp_filter", 0)):
                netcfg.write_sysctl(f"net.ipv4.conf.all.{key}", value)
                netcfg.write_sysctl(f"net.ipv4.conf.{t.receiver_if}.{key}", value)
            netcfg.write_sysctl("net.ipv4.tcp_tw_reuse", 1)
        port = str(t.udp_port)
        rule = ["-t", "raw", "-A", "PREROUTING", "-p", "udp", "--dport", port, "-j", "DROP"]
        self.run("r", ["iptables", "-w", *rule])
        self.run("r", ["ip6tables", "-w", *rule])
        # Warm the neighbour tables both ways, so the first measured frames are not lost to ARP
        # (or neighbour discovery).
        for front, reals in ((t.director_front, t.reals), (t.director_front6, t.reals6)):
            self.run("s", ["ping", "-c", "1", "-W", "2", front], check=False)
            for rip in reals:
                self.run("d", ["ping", "-c", "1", "-W", "2", rip], check=False)
        return t

    def mac(self, short: str, ifname: str) -> str:
        with self.inside(short):
            return netcfg.link_info(ifname).mac.hex(":")

    def packets(self, short: str, ifname: str, key: str) -> int:
        with self.inside(short):
            return netcfg.link_stats(ifname)[key]
