"""The benchmark's namespaces: sender ``s`` -> director ``d`` -> receiver ``r``, offloads off
(``ethtool -K ... tso gso gro tx rx off``) unless built with ``offloads=True`` (the veth defaults).

```
  s (192.0.2.2) s0 ──── d0 (192.0.2.1)  d  d1 (198.51.100.1) ──── r0 (198.51.100.11-13) r
                                                                    lo: VIP 203.0.113.10
```

The receiver holds the three real-server addresses and the VIP on ``lo`` (``arp_ignore=1``,
``arp_announce=2``, ``rp_filter=0``: an LVS-DR real server), its default route is the director
(NAT replies return through it), and its raw table drops the benchmark's UDP port, so a frame is
counted on ``r0`` and then discarded without an ICMP answer. The director routes the VIP to the
first real server (the plain-forwarding reference) and forwards (``ip_forward=1``), which also
carries the direct-routing replies of the HTTP test back to the sender.

Everything lives in namespaces named ``pylvs-b<pid>-*``, removed by :meth:`BenchLab.close`.
"""

from __future__ import annotations

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
        off = self.offloads
        self.veth("s", t.sender_if, "d", t.front_if, f"{t.sender}/24", f"{t.director_front}/24",
                  offloads=off)  # fmt: skip
        self.veth("d", t.back_if, "r", t.receiver_if, f"{t.director_back}/24", f"{t.reals[0]}/24",
                  offloads=off)  # fmt: skip
        with self.inside("s"):
            netcfg.add_route(f"{t.vip}/32", t.director_front)
            netcfg.add_route("198.51.100.0/24", t.director_front)
            netcfg.write_sysctl("net.ipv4.ip_local_port_range", "1024 65000")
            netcfg.write_sysctl("net.ipv4.tcp_tw_reuse", 1)
        with self.inside("d"):
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
            for key, value in (("arp_ignore", 1), ("arp_announce", 2), ("rp_filter", 0)):
                netcfg.write_sysctl(f"net.ipv4.conf.all.{key}", value)
                netcfg.write_sysctl(f"net.ipv4.conf.{t.receiver_if}.{key}", value)
            netcfg.write_sysctl("net.ipv4.tcp_tw_reuse", 1)
        port = str(t.udp_port)
        rule = ["-t", "raw", "-A", "PREROUTING", "-p", "udp", "--dport", port, "-j", "DROP"]
        self.run("r", ["iptables", "-w", *rule])
        # Warm the neighbour tables both ways, so the first measured frames are not lost to ARP.
        self.run("s", ["ping", "-c", "1", "-W", "2", t.director_front], check=False)
        for rip in t.reals:
            self.run("d", ["ping", "-c", "1", "-W", "2", rip], check=False)
        return t

    def mac(self, short: str, ifname: str) -> str:
        with self.inside(short):
            return netcfg.link_info(ifname).mac.hex(":")

    def packets(self, short: str, ifname: str, key: str) -> int:
        with self.inside(short):
            return netcfg.link_stats(ifname)[key]
