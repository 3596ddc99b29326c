"""Next hops: where a frame for an IP address goes (interface, MACs), from the kernel's tables.

Both backends send frames pylvs addresses itself (DR with NFQUEUE; everything with AF_PACKET): the
kernel's routing table gives the output interface and the next hop (the address itself, or its
gateway), the neighbour table gives the next hop's MAC. A missing or stale neighbour entry is
resolved by the kernel (one UDP datagram to the discard port, :func:`netcfg.neigh_probe`, at most
once a second) and the packet is dropped; the sender retransmits, as after any loss.

IPv6 (a 128-bit ``next_hop``, from an IPv6 packet) takes the same steps: the kernel's IPv6 route
(its gateway is often a router's link-local ``fe80::`` address, scoped to the output interface),
its neighbour table (filled by neighbour discovery, RFC 4861), and a UDP datagram to have it send
a Neighbor Solicitation when the entry is missing or stale (RFC 4861 section 7.2.2, 7.3.3). The
frame's EtherType is then 0x86DD. The family is the one of the packet being sent
(:meth:`NextHops.resolve` ``version``); where the caller does not know it, an address above
2**32 is IPv6: so an IPv6 next hop inside ``::/96`` (the deprecated IPv4-compatible addresses,
RFC 4291 section 2.5.5.1) shares its cache entry with the IPv4 address of the same value.

Results are cached: a resolved hop for :data:`HOP_TTL` seconds, an unresolved one for 50 ms, an
address with no route for a second. Route and neighbour changes (:mod:`pylvs.routes`) empty the
cache at once. A lookup never raises: a pyroute2 error (an interface that goes away mid-query
raises netlink errors that are no OSError) is a hop with no route, counted and logged at a
limited rate, so the packet loop goes on.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from pylvs.core.ratelimit import RateLimit
from pylvs.io import netcfg

__all__ = ["HOP_TTL", "Hop", "NextHops"]

log = logging.getLogger("pylvs.nexthop")

HOP_TTL = 5.0
_UNRESOLVED_TTL = 0.05
_NO_ROUTE_TTL = 1.0
_PROBE_INTERVAL = 1.0
_NUD_STALE = 0x04
_ETH_P_IP = b"\x08\x00"
_ETH_P_IPV6 = b"\x86\xdd"


class Hop:
    """One cached next hop. ``out`` is the backend's handle for the output interface (a transmit
    ring) and ``header`` the Ethernet header (dst MAC, src MAC, EtherType); both None/empty when
    the hop cannot be used: ``routed`` tells an unresolved neighbour from a missing route."""

    __slots__ = ("expires", "header", "ifname", "out", "probed", "routed")

    def __init__(
        self,
        out: Any,
        header: bytes,
        ifname: str,
        expires: float,
        probed: float,
        routed: bool,
    ) -> None:
        self.out = out
        self.header = header
        self.ifname = ifname
        self.expires = expires
        self.probed = probed
        self.routed = routed


def _ip_text(addr: int, version: int = 4) -> str:
    if version == 6:
        return socket.inet_ntop(socket.AF_INET6, addr.to_bytes(16, "big"))
    return socket.inet_ntoa(addr.to_bytes(4, "big"))


class NextHops:
    """IPv4 or IPv6 address -> :class:`Hop`, cached.

    ``attach(link)`` gives the backend's handle for an output interface (called once per
    interface); without it ``Hop.out`` is the interface's name.
    """

    def __init__(self, attach: Callable[[netcfg.LinkInfo], Any] | None = None) -> None:
        self.hops: dict[int, Hop] = {}
        self.attach = attach
        self.outs: dict[int, Any] = {}
        self.unresolved = 0
        self.no_route = 0
        self.errors = 0
        self._log_limit = RateLimit()

    def lookup(self, addr: int, now: float, version: int = 0) -> Hop:
        """The hop for ``addr`` (from the cache while it is fresh); ``version``: see
        :meth:`resolve`."""
        hop = self.hops.get(addr)
        if hop is not None and hop.expires >= now:
            return hop
        return self.resolve(addr, now, version)

    def dropped(self, hop: Hop) -> None:
        """Count a packet dropped because ``hop`` cannot be used."""
        if hop.routed:
            self.unresolved += 1
        else:
            self.no_route += 1

    def resolve(self, addr: int, now: float, version: int = 0) -> Hop:
        """Look ``addr`` up in the kernel's tables (and cache it). ``version`` is the IP version
        of the packet to send (4 or 6); 0: IPv6 when ``addr`` does not fit 32 bits."""
        old = self.hops.get(addr)
        probed = old.probed if old is not None else 0.0
        if not version:
            version = 6 if addr > 0xFFFFFFFF else 4
        text = _ip_text(addr, version)
        try:
            route = netcfg.route_get(text)
            if route.local or not route.oif:
                raise netcfg.NoRouteError(f"{text} is a local address")
            link = netcfg.link_info(route.oif)
            mac, state = netcfg.neigh_lookup(route.oif, route.next_hop)
            out = self._out(link)
        except Exception as exc:
            # NetcfgError, OSError, or a netlink error of pyroute2 (not an OSError) when an
            # interface goes away mid-query: the packet loop calls this and must go on.
            if not isinstance(exc, netcfg.NoRouteError):
                self.errors += 1
            if self._log_limit.allow(now):
                log.warning("no way to send to %s: %s", text, exc)
            hop = Hop(None, b"", "", now + _NO_ROUTE_TTL, probed, False)
            self.hops[addr] = hop
            return hop
        if (mac is None or state & _NUD_STALE) and now - probed > _PROBE_INTERVAL:
            # No entry, or one the kernel no longer vouches for: have the kernel (re)resolve it.
            probed = now
            netcfg.neigh_probe(route.next_hop, route.oif)
        if mac is None:
            hop = Hop(None, b"", link.name, now + _UNRESOLVED_TTL, probed, True)
        else:
            ethertype = _ETH_P_IPV6 if version == 6 else _ETH_P_IP
            hop = Hop(out, mac + link.mac + ethertype, link.name, now + HOP_TTL, probed, True)
        self.hops[addr] = hop
        return hop

    def _out(self, link: netcfg.LinkInfo) -> Any:
        if self.attach is None:
            return link.name
        out = self.outs.get(link.index)
        if out is None:
            out = self.outs[link.index] = self.attach(link)
        return out

    def prepare(self, addr: int, version: int = 0) -> None:
        """Resolve an address before its first packet (a real server just added)."""
        self.resolve(addr, time.monotonic(), version)

    def forget(self) -> None:
        """Empty the cache (routes, addresses or neighbours changed); the next packet resolves
        again. Probe times are kept, so a flapping table cannot make pylvs probe faster."""
        for hop in self.hops.values():
            hop.expires = 0.0

    def clear(self) -> None:
        self.hops.clear()
        self.outs.clear()
