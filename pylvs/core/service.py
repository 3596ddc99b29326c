"""Virtual services, real servers (dests), their counters and the IPVS rate estimator.

Names follow IPVS (`include/net/ip_vs.h`): a *service* is keyed by ``(protocol, vaddr, vport)``
or by a firewall mark; a *dest* is one real server of a service. Addresses are plain ``int``
values (32 bits for IPv4, 128 bits for IPv6) with an address family beside them, so masking and
hashing stay cheap.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pylvs.core.compat import slotted_dataclass

if TYPE_CHECKING:
    from pylvs.core.schedulers.base import Scheduler

__all__ = [
    "AF_INET",
    "AF_INET6",
    "DEFAULT_PERSISTENT_TIMEOUT",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "Dest",
    "FwdMethod",
    "RateEstimator",
    "Service",
    "ServiceFlags",
    "Stats",
    "TunType",
]

AF_INET = 4
AF_INET6 = 6
IPPROTO_TCP = 6
IPPROTO_UDP = 17

# libipvs.h IPVS_SVC_PERSISTENT_TIMEOUT (6*60); the ipvsadm man page's "300" is wrong.
DEFAULT_PERSISTENT_TIMEOUT = 360


class FwdMethod(enum.IntEnum):
    """Forwarding method, the values of IP_VS_CONN_F_FWD_MASK (include/uapi/linux/ip_vs.h)."""

    MASQ = 0
    LOCALNODE = 1
    TUNNEL = 2
    ROUTE = 3
    BYPASS = 4

    @property
    def label(self) -> str:
        """The name ipvsadm -L prints in the Forward column."""
        return _FWD_LABELS[self]


_FWD_LABELS = {
    FwdMethod.MASQ: "Masq",
    FwdMethod.LOCALNODE: "Local",
    FwdMethod.TUNNEL: "Tunnel",
    FwdMethod.ROUTE: "Route",
    FwdMethod.BYPASS: "Bypass",
}


class TunType(enum.IntEnum):
    """Tunnel encapsulation of a tunnel-mode dest (IP_VS_CONN_F_TUNNEL_TYPE_*)."""

    IPIP = 0
    GUE = 1
    GRE = 2


class ServiceFlags(enum.IntFlag):
    """IP_VS_SVC_F_* (include/uapi/linux/ip_vs.h)."""

    PERSISTENT = 0x1
    HASHED = 0x2
    ONEPACKET = 0x4
    SCHED1 = 0x8  # sh-fallback / mh-fallback
    SCHED2 = 0x10  # sh-port / mh-port
    SCHED3 = 0x20


_NO_FLAGS = ServiceFlags(0)


@slotted_dataclass()
class Stats:
    """The five IPVS counters (struct ip_vs_kstats) plus the snapshot -Z takes."""

    conns: int = 0
    inpkts: int = 0
    outpkts: int = 0
    inbytes: int = 0
    outbytes: int = 0

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.conns, self.inpkts, self.outpkts, self.inbytes, self.outbytes)

    def add(self, other: Stats) -> None:
        self.conns += other.conns
        self.inpkts += other.inpkts
        self.outpkts += other.outpkts
        self.inbytes += other.inbytes
        self.outbytes += other.outbytes

    def zero(self) -> None:
        self.conns = self.inpkts = self.outpkts = self.inbytes = self.outbytes = 0


@slotted_dataclass()
class RateEstimator:
    """The IPVS rate estimator (net/netfilter/ipvs/ip_vs_est.c).

    Every 2 seconds: ``rate = (cur - last) << 9`` for conns and packets (scaled by 2**10 over
    2 s) and ``<< 4`` for bytes (scaled by 2**5); ``avg += (rate - avg) >> 2`` (an EWMA with
    W = 1/4). Read-out rounds: ``(avg + 0x1FF) >> 10`` and ``(avg + 0xF) >> 5``.
    """

    INTERVAL = 2.0

    last: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    cps: int = 0
    inpps: int = 0
    outpps: int = 0
    inbps: int = 0
    outbps: int = 0

    def sample(self, stats: Stats) -> None:
        cur = stats.as_tuple()
        last = self.last
        self.last = cur
        rate = ((cur[0] - last[0]) << 9, (cur[1] - last[1]) << 9, (cur[2] - last[2]) << 9)
        self.cps += (rate[0] - self.cps) >> 2
        self.inpps += (rate[1] - self.inpps) >> 2
        self.outpps += (rate[2] - self.outpps) >> 2
        self.inbps += (((cur[3] - last[3]) << 4) - self.inbps) >> 2
        self.outbps += (((cur[4] - last[4]) << 4) - self.outbps) >> 2

    def rates(self) -> tuple[int, int, int, int, int]:
        """(CPS, InPPS, OutPPS, InBPS, OutBPS) as ipvsadm --rate prints them."""
        return (
            (self.cps + 0x1FF) >> 10,
            (self.inpps + 0x1FF) >> 10,
            (self.outpps + 0x1FF) >> 10,
            (self.inbps + 0xF) >> 5,
            (self.outbps + 0xF) >> 5,
        )

    def reset(self, stats: Stats) -> None:
        """Zero the averages and restart from the current counters (ip_vs_zero_estimator)."""
        self.last = stats.as_tuple()
        self.cps = self.inpps = self.outpps = self.inbps = self.outbps = 0


@dataclass(eq=False)
class Dest:
    """One real server of a virtual service (struct ip_vs_dest).

    ``weight`` 0 means quiescent: schedulers never pick it, existing connections continue.
    ``overloaded`` is IP_VS_DEST_F_OVERLOAD, set and cleared by the threshold rule (see
    :meth:`update_overload`). ``available`` is IP_VS_DEST_F_AVAILABLE: false once the dest has been
    deleted from its service while connections still refer to it (the kernel's "trash" list).
    """

    af: int
    addr: int
    port: int
    weight: int = 1
    fwd: FwdMethod = FwdMethod.ROUTE
    u_threshold: int = 0
    l_threshold: int = 0
    tun_type: TunType = TunType.IPIP
    tun_port: int = 0
    tun_flags: int = 0
    activeconns: int = 0
    inactconns: int = 0
    persistconns: int = 0
    last_weight: int = 0
    overloaded: bool = False
    available: bool = True
    stats: Stats = field(default_factory=Stats)
    stats0: Stats = field(default_factory=Stats)
    est: RateEstimator = field(default_factory=RateEstimator)
    # Path facts the director fills in (route source address and MTU towards the dest); the core
    # uses them for the outer header of tunnel mode and for the PMTU check. An MTU of 0 means
    # there is no route: packets for the dest are dropped and counted (drop_no_route).
    path_src: int = 0
    path_mtu: int = 1500
    # The service this dest belongs to (set when it is added).
    svc: Service | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.weight > 0:
            self.last_weight = self.weight

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.af, self.addr, self.port)

    @property
    def overhead(self) -> int:
        """The load measure of the least-connection family (ip_vs_dest_conn_overhead, mainline).

        Active connections weigh 256 times an inactive one, as in mainline IPVS up to 6.1.
        """
        return (self.activeconns << 8) + self.inactconns

    @property
    def totalconns(self) -> int:
        return self.activeconns + self.inactconns

    def set_weight(self, weight: int) -> None:
        self.weight = weight
        if weight > 0:
            self.last_weight = weight

    def update_overload(self) -> None:
        """Apply the IPVS threshold rule after a connection was bound or unbound.

        Set when active+inactive reaches ``u_threshold``; cleared when the count falls below
        ``l_threshold``, or below 3/4 of ``u_threshold`` when no lower threshold is set
        (ip_vs_bind_dest / ip_vs_unbind_dest). Templates do not count.
        """
        if self.u_threshold == 0:
            self.overloaded = False
            return
        total = self.activeconns + self.inactconns
        if total >= self.u_threshold:
            self.overloaded = True
        elif self.overloaded:
            if self.l_threshold:
                if total < self.l_threshold:
                    self.overloaded = False
            elif total * 4 < self.u_threshold * 3:
                self.overloaded = False

    def shown_stats(self) -> Stats:
        """Counters as listed: current minus the snapshot taken by the last -Z."""
        s, z = self.stats, self.stats0
        return Stats(
            s.conns - z.conns,
            s.inpkts - z.inpkts,
            s.outpkts - z.outpkts,
            s.inbytes - z.inbytes,
            s.outbytes - z.outbytes,
        )


@dataclass(eq=False)
class Service:
    """A virtual service (struct ip_vs_service).

    Either ``fwmark`` is non-zero (a firewall-mark service; protocol, addr and port are 0) or it is
    keyed by ``(protocol, addr, port)``. ``timeout`` is the persistence timeout in seconds, used
    only when ``flags`` has PERSISTENT. ``netmask`` is a prefix length (32 = one client per
    template).
    """

    af: int
    protocol: int
    addr: int
    port: int
    fwmark: int = 0
    sched_name: str = "wlc"
    flags: ServiceFlags = _NO_FLAGS
    timeout: int = 0
    netmask: int = 32
    pe_name: str = ""
    dests: list[Dest] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    stats0: Stats = field(default_factory=Stats)
    est: RateEstimator = field(default_factory=RateEstimator)
    scheduler: Scheduler | None = None
    # (af, addr, port) -> dest, the index of ``dests``: finding a dest is one lookup, so a
    # table of many real servers is built in time linear in its size.
    dest_index: dict[tuple[int, int, int], Dest] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> tuple[int, int, int, int, int]:
        """(fwmark, af, protocol, addr, port): the identity of a service."""
        return (self.fwmark, self.af, self.protocol, self.addr, self.port)

    @property
    def persistent(self) -> bool:
        return bool(self.flags & ServiceFlags.PERSISTENT)

    @property
    def onepacket(self) -> bool:
        return bool(self.flags & ServiceFlags.ONEPACKET)

    @property
    def addr_bits(self) -> int:
        return 32 if self.af == AF_INET else 128

    def mask_client(self, caddr: int) -> int:
        """The client address as a persistence template sees it (caddr & netmask)."""
        bits = self.addr_bits
        if self.netmask >= bits:
            return caddr
        return caddr & (((1 << self.netmask) - 1) << (bits - self.netmask))

    def find_dest(self, af: int, addr: int, port: int) -> Dest | None:
        return self.dest_index.get((af, addr, port))

    def shown_stats(self) -> Stats:
        s, z = self.stats, self.stats0
        return Stats(
            s.conns - z.conns,
            s.inpkts - z.inpkts,
            s.outpkts - z.outpkts,
            s.inbytes - z.inbytes,
            s.outbytes - z.outbytes,
        )
