"""The AF_PACKET backend: pylvs taps the interfaces and forwards every packet itself.

Data path (per process): a TPACKET_V3 receive ring per tapped interface (:class:`RxRing`) ->
``Engine.handle`` -> an Ethernet frame written into the TPACKET_V2 transmit ring of the outgoing
interface (:class:`TxRing`, ``PACKET_QDISC_BYPASS``). Frames are handled a ring block at a time and
each transmit ring is flushed with one ``send()`` per block, so the system calls per packet fall
with the load (reference/machine.md: system calls dominate a Python data plane).

What the kernel must not do, and how it is kept from doing it:

* The kernel still sees every frame pylvs taps. A ``raw`` table chain (``PYLVS-AF``, jumped to
  from ``PREROUTING`` for each tapped interface) DROPs exactly the traffic pylvs forwards: per
  virtual service ``-d VIP -p PROTO --dport VPORT``, per NAT real server its replies
  ``-s RIP -p PROTO --sport RPORT``, and ICMP errors (types 3, 4, 11) to a VIP or from a NAT real
  server. Without it the kernel would forward a second copy or answer with RST / port
  unreachable. A packet the engine passes (ACCEPT) but the chain dropped is lost: for example a
  TCP segment of an unknown connection to a VIP, which IPVS would hand to the local stack (RST).
* Frames the host sends are not tapped (``PACKET_IGNORE_OUTGOING``), nor frames for other MACs,
  broadcasts and multicasts (socket filter on ``PACKET_HOST``). The socket filter also keeps
  everything but IPv4 to a VIP or from a NAT real server out of Python.

Next hops: ``action.next_hop`` (real server, client, or tunnel endpoint) is looked up in the
kernel's routing table and neighbour table (:class:`pylvs.io.nexthop.NextHops`, cached; the
transmit ring of an interface is opened the first time a hop leaves by it). NAT replies thus go
to the client's next hop as the kernel would route them.

ARP: pylvs does not answer ARP. The VIP is on the director's ``lo`` (the kernel answers for it, as
on an IPVS director) or routed to the director by the clients' router.

Offloads: with segmentation offloads on, tapped frames can be bigger than the MTU, and locally
made or veth frames can carry a partial checksum (``TP_STATUS_CSUMNOTREADY``). Frames flagged so
have their TCP/UDP checksum completed in software before the engine sees them (counted as
``csum_completed``); GRO-merged frames larger than the path MTU are handled as any big packet
(DF set: "fragmentation needed"). The lab turns offloads off (``ethtool -K``).

Fwmark services are refused by this backend (``limit`` errors naming it): the mark is set by
netfilter, after the tap, so the engine would never see it.

Workers: with ``workers > 1`` the daemon gives the backend a
:class:`pylvs.io.workers.EngineGroup`, which forks that many processes. Each opens its own rings,
joined per interface to a ``PACKET_FANOUT_CBPF`` group whose program hashes the *client's*
address (:func:`rings.client_hash_program`): both directions of a connection, including NAT
replies that carry the real server's address, land on the same worker. While a persistent service
exists the hash covers only the client address masked by the widest persistence netmask and no
port, so every connection a persistence template must see reaches the worker that holds it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import time
from collections.abc import Sequence
from typing import Any

from pylvs.core.checksum import L4_CHECK_OFFSET, l4_checksum
from pylvs.core.control import IPVSError, ServiceInfo, ServiceSpec, addr_from_text
from pylvs.core.engine import Engine
from pylvs.core.packet import ParseError, parse_ip
from pylvs.core.ratelimit import RateLimit
from pylvs.core.service import AF_INET, FwdMethod, ServiceFlags
from pylvs.io import iptables, netcfg
from pylvs.io.backend import BackendError, BackendStatus
from pylvs.io.nexthop import NextHops
from pylvs.io.rings import (
    PACKET_FANOUT_CBPF,
    TP_STATUS_CSUMNOTREADY,
    V3_HDR,
    RxRing,
    TxRing,
    attach_filter,
    client_hash_program,
    host_filter,
    join_fanout,
    set_fanout_program,
)
from pylvs.io.workers import EngineGroup

__all__ = [
    "CHAIN",
    "AfpacketBackend",
    "DataPlane",
    "build_ruleset",
    "filter_addrs",
    "persistence_prefix",
    "remove_rules",
]

log = logging.getLogger("pylvs.afpacket")

CHAIN = "PYLVS-AF"
_PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}
_ICMP_ERRORS = ("destination-unreachable", "source-quench", "time-exceeded")
_SEND = 2  # verdicts REWRITE, ROUTE, TUNNEL, LOCAL (>= 2) all send action.packet to next_hop
_BATCH = 4096


# -- the kernel's copy: raw-table DROP rules ------------------------------------------------------


def build_ruleset(services: Sequence[ServiceInfo]) -> str:
    """``iptables-restore --noflush`` input making ``PYLVS-AF`` drop what pylvs forwards."""
    lines = ["*raw", f":{CHAIN} - [0:0]"]
    seen: set[str] = set()

    def add(rule: str) -> None:
        if rule not in seen:
            seen.add(rule)
            lines.append(f"-A {CHAIN} {rule} -j DROP")

    for svc in services:
        proto = _PROTO_NAMES.get(svc.protocol)
        if svc.af != AF_INET or svc.fwmark or proto is None:
            continue
        port = f" --dport {svc.port}" if svc.port else ""
        add(f"-d {svc.addr}/32 -p {proto}{port}")
        for kind in _ICMP_ERRORS:
            add(f"-d {svc.addr}/32 -p icmp --icmp-type {kind}")
        for dest in svc.dests:
            if dest.fwd != FwdMethod.MASQ or dest.af != AF_INET:
                continue
            rport = dest.port or svc.port
            sport = f" --sport {rport}" if rport else ""
            # Only replies on their way to a client (iptables.NOT_LOCAL).
            add(f"-s {dest.addr}/32 -p {proto}{sport} {iptables.NOT_LOCAL}")
            for kind in _ICMP_ERRORS:
                add(f"-s {dest.addr}/32 -p icmp --icmp-type {kind} {iptables.NOT_LOCAL}")
    return "\n".join([*lines, "COMMIT", ""])


def _install_jumps(ifaces: Sequence[str]) -> None:
    iptables.restore(build_ruleset([]))
    for name in ifaces:
        iptables.ensure_jump("raw", ["-i", name], CHAIN, first=True)


def remove_rules() -> bool:
    """Remove ``PYLVS-AF`` and the jumps to it (also a killed daemon's); True if any existed."""
    return iptables.remove_chains("raw", (CHAIN,))


def filter_addrs(services: Sequence[ServiceInfo]) -> tuple[list[int], list[int]] | None:
    """(VIPs, NAT real servers) as ints for the socket filter; None: no address filter possible
    (too many addresses), take all IPv4 for this host."""
    vips: list[int] = []
    rips: list[int] = []
    for svc in services:
        if svc.af != AF_INET or svc.fwmark:
            continue
        vip = addr_from_text(svc.addr)[1]
        if vip not in vips:
            vips.append(vip)
        for dest in svc.dests:
            if dest.fwd != FwdMethod.MASQ or dest.af != AF_INET:
                continue
            rip = addr_from_text(dest.addr)[1]
            if rip not in rips:
                rips.append(rip)
    if len(vips) + len(rips) > 250:
        return None  # BPF jumps are 8 bits; beyond that the engine sorts the traffic out
    return vips, rips


def persistence_prefix(services: Sequence[ServiceInfo]) -> int | None:
    """The widest persistence netmask (shortest prefix) of the IPv4 persistent services, or None
    when there is none: the fanout hash then keeps a masked client network on one worker."""
    prefixes = [
        s.netmask for s in services if s.af == AF_INET and s.flags & ServiceFlags.PERSISTENT
    ]
    return min(prefixes) if prefixes else None


# -- one process's data plane ------------------------------------------------------------------


def _transmit_ring(link: netcfg.LinkInfo) -> TxRing:
    """The transmit ring of an output interface, its slots big enough for the MTU."""
    size = 2048
    while size < link.mtu + 14 + 4 + 32:
        size *= 2
    return TxRing(link.name, frame_size=size, frame_nr=max(256, (2 << 20) // size))


class DataPlane:
    """Receive rings on the tapped interfaces -> engine -> transmit rings."""

    def __init__(self, engine: Engine, ifaces: Sequence[str], fanout: int = 0) -> None:
        self.engine = engine
        self.ifaces = tuple(ifaces)
        self.fanout = fanout  # fanout group base (0: no fanout)
        self.rx: list[RxRing] = []
        self.hops = NextHops(attach=_transmit_ring)
        self.handled = 0
        self.failures = 0
        self._failure_log = RateLimit()
        self.csum_completed = 0
        self.rx_drops = 0
        # Readable while a ring has a block ready that the last process() call left for later:
        # see process().
        # A pipe, not an eventfd (3.10+; the data plane also runs on Python 3.9): one byte in it
        # while set, as only the changes are written.
        self.wake_fd = -1
        self._wake_w = -1
        self.wake_set = False

    def open(self) -> None:
        try:
            self.wake_fd, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            for name in self.ifaces:
                ring = RxRing()
                self.rx.append(ring)
                # Filter before binding: nothing unfiltered ever enters the ring.
                attach_filter(ring.sock, host_filter([], []))
                ring.bind(name)
                if self.fanout:
                    index = netcfg.link_info(name).index
                    join_fanout(ring.sock, self.fanout + index, PACKET_FANOUT_CBPF)
                    set_fanout_program(ring.sock, client_hash_program([]))
        except (OSError, netcfg.NetcfgError) as exc:
            self.close()
            raise BackendError(f"cannot open AF_PACKET rings: {exc}") from None

    def filenos(self) -> list[int]:
        """Descriptors to wait on (readable: call :meth:`process`)."""
        return [ring.fileno() for ring in self.rx] + [self.wake_fd]

    def set_services(self, services: Sequence[ServiceInfo]) -> None:
        """Narrow the socket filters (and fanout programs) to the configured services."""
        addrs = filter_addrs(services)
        if addrs is None:
            log.warning("more than 250 addresses: tapping all IPv4 traffic to this host")
            program = host_filter(None)
        else:
            program = host_filter(*addrs)
        for ring in self.rx:
            attach_filter(ring.sock, program)
        if self.fanout:
            vips = [addr_from_text(s.addr)[1] for s in services if s.af == AF_INET and not s.fwmark]
            fanout = client_hash_program(vips, persistence_prefix(services))
            for ring in self.rx:
                set_fanout_program(ring.sock, fanout)

    def prepare(self, addr: int) -> None:
        """Resolve a real server's next hop before its first packet."""
        self.hops.prepare(addr)

    def forget_hops(self) -> None:
        self.hops.forget()

    def process(self, budget: int = _BATCH) -> int:
        """Handle ready blocks of every ring until ``budget`` frames are done; returns the count."""
        done = 0
        for ring in self.rx:
            done += self._drain(ring, budget - done)
            if done >= budget:
                break
        # A ring's socket is readable when the block before the kernel's current one belongs to
        # user space (packet_poll), not when the block at our cursor does. Under overload the two
        # can disagree (seen on Linux 6.18 after a few floods): the kernel froze on the block at
        # our cursor (it waits for us to free it) while the block before it is one we have
        # already freed, so poll reports nothing and, the ring being frozen, no block is closed
        # again to wake us; from then on every frame was counted in rx_ring_full. So the plane
        # keeps its own "work left" signal: an eventfd, readable exactly while a ring has a
        # ready block at its cursor when process() returns.
        left = False
        for ring in self.rx:
            if ring.ready() >= 0:
                left = True
                break
        if left != self.wake_set:
            if left:
                os.write(self._wake_w, b"w")
            else:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_fd, 64)
            self.wake_set = left
        return done

    def _drain(self, ring: RxRing, budget: int) -> int:
        view = ring.view
        unpack = V3_HDR.unpack_from
        handle = self.engine.handle
        hops = self.hops.hops
        resolve = self.hops.resolve
        dropped = self.hops.dropped
        done = 0
        while done < budget:
            block = ring.ready()
            if block < 0:
                break
            num, off = ring.frames(block)
            now = time.monotonic()
            try:
                for _ in range(num):
                    step, snaplen, status, mac, net = unpack(view, off)
                    packet = view[off + net : off + mac + snaplen]
                    off += step
                    try:
                        if status & TP_STATUS_CSUMNOTREADY:
                            self._complete_checksum(packet)
                        verdict, out, next_hop = handle(packet, now)
                        if verdict >= _SEND and out is not None:
                            hop = hops.get(next_hop)
                            if hop is None or hop.expires < now:
                                hop = resolve(next_hop, now)
                            tx = hop.out
                            if tx is None:
                                dropped(hop)
                            else:
                                tx.put(hop.header, out)
                    except Exception:
                        # A bug must not take the data plane down: drop the packet, keep serving.
                        self._failed(now)
            finally:
                # Whatever happened, the block goes back to the kernel and the cursor moves on
                # with the kernel's: a block left at TP_STATUS_USER is one the kernel never
                # fills again (the ring freezes on it), and re-reading it sends its frames twice.
                ring.release(block)
            done += num
            self._flush()
        self.handled += done
        return done

    def _flush(self) -> None:
        for tx in self.hops.outs.values():
            if tx.pending:
                tx.flush()

    def _failed(self, now: float) -> None:
        """Count a packet the engine or the send path failed on; log it at a limited rate (a
        bug hit by every packet would otherwise write the log at the packet rate)."""
        self.failures += 1
        if self._failure_log.allow(now):
            log.exception("packet handling failed (%d failures so far); dropped", self.failures)

    def _complete_checksum(self, packet: memoryview) -> None:
        """Replace a partial (pseudo-header only) TCP/UDP checksum by the full one."""
        try:
            p = parse_ip(packet)
            if p.version != 4 or p.is_fragment or p.proto not in (6, 17):
                return
            value = l4_checksum(packet, p)
        except (ParseError, ValueError):
            return
        off = p.l4 + L4_CHECK_OFFSET[p.proto]
        packet[off] = value >> 8
        packet[off + 1] = value & 0xFF
        self.csum_completed += 1

    def stats(self) -> dict[str, int]:
        for ring in self.rx:
            self.rx_drops += ring.statistics()[1]
        rings: list[TxRing] = list(self.hops.outs.values())
        return {
            "handled": self.handled,
            "failures": self.failures,
            "sent": sum(tx.sent for tx in rings),
            "dropped_unresolved": self.hops.unresolved,
            "dropped_no_route": self.hops.no_route,
            "send_errors": sum(tx.errors for tx in rings),
            "rx_ring_full": self.rx_drops,
            "rx_blocks_skipped": sum(ring.skipped for ring in self.rx),
            "csum_completed": self.csum_completed,
            "tx_ring_full": sum(tx.dropped for tx in rings),
            "tx_device_drops": sum(tx.device_drops for tx in rings),
            "tx_pending": sum(tx.pending for tx in rings),
        }

    def close(self) -> None:
        for ring in self.rx:
            ring.close()
        self.rx.clear()
        for tx in self.hops.outs.values():
            tx.close()
        self.hops.clear()
        if self.wake_fd >= 0:
            os.close(self.wake_fd)
            os.close(self._wake_w)
            self.wake_fd = self._wake_w = -1


# -- the daemon's backend ----------------------------------------------------------------------

# BackendStatus fields; the rest of DataPlane.stats() goes to its details.
_COMMON = ("handled", "failures", "sent", "dropped_unresolved", "dropped_no_route", "send_errors")


def default_ifaces() -> list[str]:
    """Every interface but loopback: where clients and real servers can be."""
    return [name for name in netcfg.link_names() if name != "lo"]


class AfpacketBackend:
    """What pylvsd drives: the DROP rules, and either one in-process data plane or the workers of
    an :class:`EngineGroup`."""

    name = "afpacket"
    kernel_forwards = False  # pylvs sends everything itself: no ip_forward / accept_local

    def __init__(self, engine: Engine | EngineGroup, ifaces: Sequence[str] = ()) -> None:
        self.engine = engine
        self.ifaces = tuple(ifaces)
        self.plane: DataPlane | None = None
        self._rules_installed = False

    @property
    def workers(self) -> int:
        return self.engine.workers if isinstance(self.engine, EngineGroup) else 1

    def open(self, close_in_children: Sequence[int] = ()) -> None:
        """Install the (empty) DROP chain, then open the rings here or start the workers."""
        ifaces = self.ifaces or tuple(default_ifaces())
        if not ifaces:
            log.warning("afpacket: no interface to tap besides lo; no traffic will be served")
        for name in ifaces:
            if not netcfg.link_exists(name):
                raise BackendError(f"unknown interface {name!r}")
        self.ifaces = ifaces
        try:
            _install_jumps(ifaces)
        except iptables.IptablesError as exc:
            remove_rules()
            raise BackendError(str(exc)) from None
        self._rules_installed = True
        engine = self.engine
        if isinstance(engine, Engine):
            self.plane = DataPlane(engine, ifaces)
            self.plane.open()
            return
        fanout = ((os.getpid() & 0xFFF) << 4) or 16
        try:
            engine.start(
                lambda e: DataPlane(e, ifaces, fanout), close_in_children, (ifaces, fanout)
            )
        except OSError as exc:
            raise BackendError(str(exc.strerror or exc)) from None
        log.info(
            "afpacket: %d workers (pids %s) on %s, running on %s",
            engine.workers,
            engine.pids,
            ", ".join(ifaces),
            engine.runtime or "this interpreter (forked)",
        )

    def check_service(self, spec: ServiceSpec, op: str) -> None:
        if spec.fwmark:
            raise IPVSError(
                errno.EOPNOTSUPP,
                op,
                "the afpacket backend cannot serve fwmark services (the mark is set after the "
                "tap): run pylvsd --backend nfqueue",
                limit=True,
            )

    def set_services(self, services: Sequence[ServiceInfo]) -> None:
        try:
            iptables.restore(build_ruleset(services))
        except iptables.IptablesError as exc:
            raise BackendError(str(exc)) from None
        if self.plane is not None:
            self.plane.set_services(services)
        # Workers narrow their own filters when they apply the operation (pylvs.io.workers).

    def prepare_dest(self, addr: int) -> None:
        if self.plane is not None:
            self.plane.prepare(addr)

    def forget_hops(self) -> None:
        if self.plane is not None:
            self.plane.forget_hops()
        elif isinstance(self.engine, EngineGroup) and self.engine.conns_to_workers:
            self.engine.forget_hops()

    # -- Component -----------------------------------------------------------------------------

    def watch(self) -> Sequence[tuple[int, int]]:
        if self.plane is None:
            return ()
        return [(fd, selectors.EVENT_READ) for fd in self.plane.filenos()]

    def deadline(self) -> float | None:
        return None

    def ready(self, fd: int, events: int, now: float) -> None:
        if self.plane is not None:
            self.plane.process()

    def due(self, now: float) -> None:
        return None

    def backend_status(self) -> BackendStatus:
        stats: dict[str, int] = {}
        if self.plane is not None:
            stats = self.plane.stats()
        elif isinstance(self.engine, EngineGroup) and self.engine.conns_to_workers:
            stats = self.engine.worker_stats()
        status = BackendStatus(
            self.name,
            handled=stats.get("handled", 0),
            failures=stats.get("failures", 0),
            sent=stats.get("sent", 0),
            dropped_unresolved=stats.get("dropped_unresolved", 0),
            dropped_no_route=stats.get("dropped_no_route", 0),
            send_errors=stats.get("send_errors", 0),
        )
        pids = self.engine.pids if isinstance(self.engine, EngineGroup) else []
        runtime = self.engine.runtime if isinstance(self.engine, EngineGroup) else None
        status.details = {
            "workers": self.workers,
            "worker_pids": list(pids),
            "worker_runtime": runtime or "forked",
            **{k: v for k, v in stats.items() if k not in _COMMON},
        }
        return status

    def status(self) -> dict[str, Any]:
        return self.backend_status().as_dict()

    def close(self, keep_rules: bool = False) -> None:
        if isinstance(self.engine, EngineGroup):
            self.engine.stop()
        if self.plane is not None:
            self.plane.close()
            self.plane = None
        if self._rules_installed and not keep_rules:
            remove_rules()
            self._rules_installed = False
