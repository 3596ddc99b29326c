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
kernel's routing table and neighbour table (pyroute2), and the result cached for
:data:`HOP_TTL` seconds. A missing neighbour is resolved by the kernel (one UDP datagram to the
discard port, :func:`netcfg.neigh_probe`) and the packet is dropped; the sender retransmits.
NAT replies thus go to the client's next hop as the kernel would route them.

ARP: pylvs does not answer ARP. The VIP is on the director's ``lo`` (the kernel answers for it, as
on an IPVS director) or routed to the director by the clients' router.

Offloads: with segmentation offloads on, tapped frames can be bigger than the MTU, and locally
made or veth frames can carry a partial checksum (``TP_STATUS_CSUMNOTREADY``). Frames flagged so
have their TCP/UDP checksum completed in software before the engine sees them (counted as
``csum_completed``); GRO-merged frames larger than the path MTU are handled as any big packet
(DF set: "fragmentation needed"). The lab turns offloads off (``ethtool -K``).

Fwmark services are not served by this backend: the mark is set by netfilter, after the tap.

Workers: with ``workers > 1`` the backend forks that many processes. Each opens its own rings,
joined per interface to a ``PACKET_FANOUT_CBPF`` group whose program hashes the *client's*
address and port (:func:`rings.client_hash_program`): both directions of a connection, including
NAT replies that carry the real server's address, land on the same worker. Every worker owns an
Engine holding the connections of its share of the clients; the control plane
(:class:`EngineGroup`) applies each control operation to a local Engine first (validation, same
errno as a single engine) and then to every worker, and merges listings: counters, rates and
connection counts are summed, connection lists concatenated. A scheduler runs per worker, so rr
or wrr go round per worker and the overall order interleaves. Persistence templates are per
worker too, and a client's connections from different ports can hash to different workers, so
persistence holds within a worker only: serve persistent services with one worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import logging
import os
import selectors
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any

from pylvs.core.checksum import L4_CHECK_OFFSET, l4_checksum
from pylvs.core.control import (
    ConnInfo,
    DestInfo,
    DestSpec,
    IPVSError,
    ServiceInfo,
    ServiceSpec,
    Timeouts,
    addr_from_text,
)
from pylvs.core.engine import Engine
from pylvs.core.packet import ParseError, parse_ip
from pylvs.core.service import AF_INET, FwdMethod
from pylvs.io import netcfg
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

__all__ = [
    "CHAIN",
    "HOP_TTL",
    "AfpacketBackend",
    "AfpacketError",
    "DataPlane",
    "EngineGroup",
    "build_ruleset",
    "remove_rules",
]

log = logging.getLogger("pylvs.afpacket")

CHAIN = "PYLVS-AF"
HOP_TTL = 5.0
_PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}
_ICMP_ERRORS = ("destination-unreachable", "source-quench", "time-exceeded")
_NUD_STALE = 0x04
_PR_SET_PDEATHSIG = 1
_SEND = 2  # verdicts REWRITE, ROUTE, TUNNEL, LOCAL (>= 2) all send action.packet to next_hop


class AfpacketError(Exception):
    """The backend cannot start (no interface, no AF_PACKET rings, no iptables)."""


# -- the kernel's copy: raw-table DROP rules ------------------------------------------------------


def _iptables(*args: str, stdin: str | None = None, check: bool = True) -> bool:
    cmd = ["iptables-restore", "-w", *args] if stdin is not None else ["iptables", "-w", *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AfpacketError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}")
    return proc.returncode == 0


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
            add(f"-s {dest.addr}/32 -p {proto}{sport}")
            for kind in _ICMP_ERRORS:
                add(f"-s {dest.addr}/32 -p icmp --icmp-type {kind}")
    return "\n".join([*lines, "COMMIT", ""])


def _install_jumps(ifaces: Sequence[str]) -> None:
    _iptables("--noflush", stdin=build_ruleset([]))
    for name in ifaces:
        jump = ["-i", name, "-j", CHAIN]
        if not _iptables("-t", "raw", "-C", "PREROUTING", *jump, check=False):
            _iptables("-t", "raw", "-I", "PREROUTING", "1", *jump)


def remove_rules() -> bool:
    """Remove ``PYLVS-AF`` and the jumps to it (also a killed daemon's); True if any existed."""
    listing = subprocess.run(
        ["iptables", "-w", "-t", "raw", "-S", "PREROUTING"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    removed = False
    for line in listing:
        words = line.split()
        if words[:2] == ["-A", "PREROUTING"] and words[-2:] == ["-j", CHAIN]:
            _iptables("-t", "raw", "-D", *words[1:], check=False)
            removed = True
    if _iptables("-t", "raw", "-F", CHAIN, check=False):
        removed = True
        _iptables("-t", "raw", "-X", CHAIN, check=False)
    return removed


def _filter_addrs(services: Sequence[ServiceInfo]) -> tuple[list[int], list[int]] | None:
    """(VIPs, NAT real servers) as ints for the socket filter; None: no address filter possible
    (a fwmark service), take all IPv4 for this host."""
    vips: list[int] = []
    rips: list[int] = []
    for svc in services:
        if svc.af != AF_INET:
            continue
        if svc.fwmark:
            return None
        vip = addr_from_text(svc.addr)[1]
        if vip not in vips:
            vips.append(vip)
        for dest in svc.dests:
            rip = addr_from_text(dest.addr)[1]
            if dest.fwd == FwdMethod.MASQ and dest.af == AF_INET and rip not in rips:
                rips.append(rip)
    if len(vips) + len(rips) > 250:
        return None  # BPF jumps are 8 bits; beyond that the engine sorts the traffic out
    return vips, rips


# -- next hops -------------------------------------------------------------------------------


@dataclasses.dataclass
class _Hop:
    tx: TxRing | None  # None: unresolved, drop
    header: bytes  # dst MAC + src MAC + EtherType
    expires: float
    probed: float = 0.0


def _ip_text(addr: int) -> str:
    return socket.inet_ntoa(addr.to_bytes(4, "big"))


class _NextHops:
    """IPv4 next hop -> (transmit ring of the outgoing interface, Ethernet header), cached."""

    def __init__(self) -> None:
        self.hops: dict[int, _Hop] = {}
        self.rings: dict[int, TxRing] = {}
        self.unresolved = 0
        self.errors = 0

    def ring(self, ifindex: int, name: str, mtu: int) -> TxRing:
        tx = self.rings.get(ifindex)
        if tx is None:
            size = 2048
            while size < mtu + 14 + 4 + 32:
                size *= 2
            tx = TxRing(name, frame_size=size, frame_nr=max(256, (2 << 20) // size))
            self.rings[ifindex] = tx
        return tx

    def resolve(self, addr: int, now: float) -> _Hop:
        old = self.hops.get(addr)
        probed = old.probed if old is not None else 0.0
        text = _ip_text(addr)
        try:
            route = netcfg.route_get(text)
            if route.local or not route.oif:
                raise netcfg.NetcfgError(f"{text} is a local address")
            link = netcfg.link_info(route.oif)
            mac, state = netcfg.neigh_lookup(route.oif, route.next_hop)
            tx = self.ring(route.oif, link.name, link.mtu)
        except Exception as exc:
            # NetcfgError, OSError, or a netlink error of pyroute2 (not an OSError) when an
            # interface goes away mid-query: the packet loop calls this and must go on.
            self.errors += 1
            log.warning("no way to send to %s: %s", text, exc)
            hop = _Hop(None, b"", now + 1.0, probed)
            self.hops[addr] = hop
            return hop
        if (mac is None or state & _NUD_STALE) and now - probed > 1.0:
            # No entry, or one the kernel no longer vouches for: have the kernel (re)resolve it.
            probed = now
            netcfg.neigh_probe(route.next_hop)
        if mac is None:
            hop = _Hop(None, b"", now + 0.05, probed)
        else:
            hop = _Hop(tx, mac + link.mac + b"\x08\x00", now + HOP_TTL, probed)
        self.hops[addr] = hop
        return hop

    def flush(self) -> None:
        for tx in self.rings.values():
            if tx.pending:
                tx.flush()

    def close(self) -> None:
        for tx in self.rings.values():
            tx.close()
        self.rings.clear()
        self.hops.clear()


# -- one process's data plane ------------------------------------------------------------------


class DataPlane:
    """Receive rings on the tapped interfaces -> engine -> transmit rings."""

    def __init__(self, engine: Engine, ifaces: Sequence[str], fanout: int = 0) -> None:
        self.engine = engine
        self.ifaces = tuple(ifaces)
        self.fanout = fanout  # fanout group base (0: no fanout)
        self.rx: list[RxRing] = []
        self.hops = _NextHops()
        self.handled = 0
        self.failures = 0
        self.failure_logged = 0.0  # when a failure was last logged (one a second at most)
        self.csum_completed = 0
        self.rx_drops = 0
        # Readable while a ring has a block ready that the last process() call left for later:
        # see process().
        self.wake_fd = -1
        self.wake_set = False

    def open(self) -> None:
        try:
            self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
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
        except OSError as exc:
            self.close()
            raise AfpacketError(f"cannot open AF_PACKET rings: {exc}") from None

    def filenos(self) -> list[int]:
        """Descriptors to wait on (readable: call :meth:`process`)."""
        return [ring.fileno() for ring in self.rx] + [self.wake_fd]

    def set_services(self, services: Sequence[ServiceInfo]) -> None:
        """Narrow the socket filters (and fanout programs) to the configured services."""
        addrs = _filter_addrs(services)
        vips = [addr_from_text(s.addr)[1] for s in services if s.af == AF_INET and not s.fwmark]
        if addrs is None:
            log.warning("fwmark service or many addresses: tapping all IPv4 traffic to this host")
            program = host_filter(None)
        else:
            program = host_filter(*addrs)
        for ring in self.rx:
            attach_filter(ring.sock, program)
        if self.fanout:
            for ring in self.rx:
                set_fanout_program(ring.sock, client_hash_program(vips))

    def prepare(self, addr: int) -> None:
        """Resolve a real server's next hop before its first packet."""
        self.hops.resolve(addr, time.monotonic())

    def process(self, budget: int = 4096) -> int:
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
                os.eventfd_write(self.wake_fd, 1)
            else:
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self.wake_fd)
            self.wake_set = left
        return done

    def _drain(self, ring: RxRing, budget: int) -> int:
        view = ring.view
        unpack = V3_HDR.unpack_from
        handle = self.engine.handle
        hops = self.hops.hops
        resolve = self.hops.resolve
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
                            tx = hop.tx
                            if tx is None:
                                self.hops.unresolved += 1
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
            self.hops.flush()
        self.handled += done
        return done

    def _failed(self, now: float) -> None:
        """Count a packet the engine or the send path failed on; log it, once a second at most
        (a bug hit by every packet would otherwise write the log at the packet rate)."""
        self.failures += 1
        if now - self.failure_logged >= 1.0:
            self.failure_logged = now
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
        return {
            "rx_ring_full": self.rx_drops,
            "rx_blocks_skipped": sum(ring.skipped for ring in self.rx),
            "handled": self.handled,
            "failures": self.failures,
            "csum_completed": self.csum_completed,
            "sent_frames": sum(tx.sent for tx in self.hops.rings.values()),
            "tx_ring_full": sum(tx.dropped for tx in self.hops.rings.values()),
            "tx_device_drops": sum(tx.device_drops for tx in self.hops.rings.values()),
            "tx_errors": sum(tx.errors for tx in self.hops.rings.values()),
            "tx_pending": sum(tx.pending for tx in self.hops.rings.values()),
            "dropped_unresolved": self.hops.unresolved,
        }

    def close(self) -> None:
        for ring in self.rx:
            ring.close()
        self.rx.clear()
        self.hops.close()
        if self.wake_fd >= 0:
            os.close(self.wake_fd)
            self.wake_fd = -1


# -- workers ---------------------------------------------------------------------------------

# Control operations that change the configuration: applied to the local engine, then every worker.
_MUTATING = frozenset(
    {
        "add_service",
        "edit_service",
        "del_service",
        "add_dest",
        "edit_dest",
        "del_dest",
        "flush",
        "zero",
        "set_timeouts",
        "set_path",
    }
)


def _worker_apply(engine: Engine, plane: DataPlane, op: str, args: tuple[Any, ...]) -> Any:
    if op == "stats":
        return plane.stats(), Counter(engine.counters)
    result = getattr(engine, op)(*args)
    if op in _MUTATING and op not in ("zero", "set_timeouts", "set_path"):
        plane.set_services(engine.services())
        if op in ("add_dest", "edit_dest"):
            dest = args[1]
            if dest.af == AF_INET and dest.fwd == FwdMethod.ROUTE:
                plane.prepare(addr_from_text(dest.addr)[1])
    return result


def _worker_main(conn: Connection, ifaces: Sequence[str], fanout: int) -> None:
    """A worker process: its own engine and rings; control operations arrive on ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # die with the daemon
    engine = Engine(kernel_forwards_nat=False, check_ip_checksum=True)
    plane = DataPlane(engine, ifaces, fanout)
    try:
        plane.open()
    except AfpacketError as exc:
        conn.send((False, str(exc)))
        return
    conn.send((True, None))
    sel = selectors.DefaultSelector()
    for fd in plane.filenos():
        sel.register(fd, selectors.EVENT_READ, "rx")
    sel.register(conn.fileno(), selectors.EVENT_READ, "ctl")
    next_tick = 0.0
    try:
        while True:
            now = time.monotonic()
            if now >= next_tick:
                engine.tick(now)
                next_tick = now + 1.0
            for key, _ in sel.select(max(0.0, next_tick - now)):
                if key.data == "rx":
                    plane.process()
                    continue
                try:
                    op, args = conn.recv()
                except EOFError:
                    return
                try:
                    conn.send((True, _worker_apply(engine, plane, op, args)))
                except IPVSError as exc:
                    conn.send((False, f"{exc.errno}:{exc}"))
    finally:
        plane.close()


def _merge_services(lists: Sequence[Sequence[ServiceInfo]]) -> list[ServiceInfo]:
    """Sum the counters of the same services (and real servers) seen by every worker."""

    def add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, int, int, int, int]:
        s = tuple(x + y for x, y in zip(a, b, strict=True))
        return (s[0], s[1], s[2], s[3], s[4])

    merged = [dataclasses.replace(s, dests=list(s.dests)) for s in lists[0]]
    for other in lists[1:]:
        for i, svc in enumerate(other):
            m = merged[i]
            m.stats = add(m.stats, svc.stats)
            m.rates = add(m.rates, svc.rates)
            dests: list[DestInfo] = []
            for md, d in zip(m.dests, svc.dests, strict=True):
                dests.append(
                    dataclasses.replace(
                        md,
                        activeconns=md.activeconns + d.activeconns,
                        inactconns=md.inactconns + d.inactconns,
                        persistconns=md.persistconns + d.persistconns,
                        stats=add(md.stats, d.stats),
                        rates=add(md.rates, d.rates),
                    )
                )
            m.dests = dests
    return merged


class EngineGroup:
    """The control plane's view of several worker engines, with the engine's control methods."""

    def __init__(self) -> None:
        self.local = Engine(kernel_forwards_nat=False, check_ip_checksum=True)
        self.conns_to_workers: list[Connection] = []

    def _call(self, op: str, *args: Any) -> list[Any]:
        results = []
        for conn in self.conns_to_workers:
            conn.send((op, args))
        for conn in self.conns_to_workers:
            try:
                ok, value = conn.recv()
            except EOFError:
                raise IPVSError(errno.EIO, op, "a data-plane worker has exited") from None
            if not ok:
                raise IPVSError(errno.EIO, op, f"worker refused {op}: {value}")
            results.append(value)
        return results

    def _mutate(self, op: str, *args: Any) -> None:
        getattr(self.local, op)(*args)  # raises IPVSError with IPVS's errno, before any worker
        self._call(op, *args)

    def add_service(self, spec: ServiceSpec) -> None:
        self._mutate("add_service", spec)

    def edit_service(self, spec: ServiceSpec) -> None:
        self._mutate("edit_service", spec)

    def del_service(self, spec: ServiceSpec) -> None:
        self._mutate("del_service", spec)

    def add_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self._mutate("add_dest", svc, dest)

    def edit_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self._mutate("edit_dest", svc, dest)

    def del_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self._mutate("del_dest", svc, dest)

    def flush(self) -> None:
        self._mutate("flush")

    def zero(self, svc: ServiceSpec | None = None) -> None:
        self._mutate("zero", svc)

    def set_timeouts(self, timeouts: Timeouts) -> None:
        self._mutate("set_timeouts", timeouts)

    def set_path(self, af: int, daddr: int, src: int, mtu: int) -> None:
        self._mutate("set_path", af, daddr, src, mtu)

    def get_timeouts(self) -> Timeouts:
        return self.local.get_timeouts()

    def services(self) -> list[ServiceInfo]:
        if not self.conns_to_workers:
            return self.local.services()
        return _merge_services(self._call("services"))

    def get_service(self, spec: ServiceSpec) -> ServiceInfo:
        self.local.get_service(spec)  # the errno for an unknown service
        return _merge_services([[info] for info in self._call("get_service", spec)])[0]

    def conns(self) -> list[ConnInfo]:
        return [c for part in self._call("conns") for c in part]

    def total_stats(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        parts = self._call("total_stats")
        stats = tuple(sum(col) for col in zip(*(p[0] for p in parts), strict=True))
        rates = tuple(sum(col) for col in zip(*(p[1] for p in parts), strict=True))
        return stats, rates

    def tick(self, now: float) -> None:
        self.local.tick(now)  # workers run their own timers

    @property
    def counters(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for _stats, counters in self._call("stats"):
            total.update(counters)
        return total

    def worker_stats(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for stats, _counters in self._call("stats"):
            total.update(stats)
        return dict(total)


# -- the daemon's backend ----------------------------------------------------------------------


def default_ifaces() -> list[str]:
    """Every interface but loopback: where clients and real servers can be."""
    return [name for name in netcfg.link_names() if name != "lo"]


class AfpacketBackend:
    """What pylvsd drives: the DROP rules, and either one in-process data plane or N workers."""

    name = "afpacket"
    kernel_forwards = False  # pylvs sends everything itself: no ip_forward / accept_local

    def __init__(self, engine: Engine, ifaces: Sequence[str] = (), workers: int = 1) -> None:
        self.workers = max(1, workers)
        self.group: EngineGroup | None = EngineGroup() if self.workers > 1 else None
        self.engine: Engine | EngineGroup = self.group if self.group is not None else engine
        self.ifaces = tuple(ifaces)
        self.plane: DataPlane | None = None
        self.pids: list[int] = []
        self._rules_installed = False

    def open(self, close_in_workers: Sequence[int] = ()) -> None:
        """Install the (empty) DROP chain, then open the rings here or start the workers.

        ``close_in_workers``: descriptors of the parent (control socket...) a worker must not keep.
        """
        ifaces = self.ifaces or tuple(default_ifaces())
        if not ifaces:
            log.warning("afpacket: no interface to tap besides lo; no traffic will be served")
        for name in ifaces:
            if not netcfg.link_exists(name):
                raise AfpacketError(f"unknown interface {name!r}")
        self.ifaces = ifaces
        try:
            _install_jumps(ifaces)
        except AfpacketError:
            remove_rules()
            raise
        self._rules_installed = True
        if self.group is None:
            assert isinstance(self.engine, Engine)
            self.plane = DataPlane(self.engine, ifaces)
            self.plane.open()
            return
        fanout = ((os.getpid() & 0xFFF) << 4) or 16
        for _ in range(self.workers):
            parent, child = Pipe()
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    parent.close()
                    for fd in close_in_workers:
                        with contextlib.suppress(OSError):
                            os.close(fd)
                    _worker_main(child, ifaces, fanout)
                except BaseException:
                    log.exception("worker failed")
                    code = 1
                finally:
                    os._exit(code)
            child.close()
            self.pids.append(pid)
            ok, message = parent.recv()
            if not ok:
                raise AfpacketError(str(message))
            self.group.conns_to_workers.append(parent)
        log.info("afpacket: %d workers (pids %s) on %s", self.workers, self.pids, ", ".join(ifaces))

    def filenos(self) -> list[int]:
        return self.plane.filenos() if self.plane is not None else []

    def set_services(self, services: list[ServiceInfo]) -> None:
        _iptables("--noflush", stdin=build_ruleset(services))
        if self.plane is not None:
            self.plane.set_services(services)
        # Workers narrow their own filters when they apply the operation (_worker_apply).

    def prepare_dest(self, addr: int) -> None:
        if self.plane is not None:
            self.plane.prepare(addr)

    def process(self, budget: int = 4096) -> int:
        return self.plane.process(budget) if self.plane is not None else 0

    def status(self) -> dict[str, Any]:
        if self.plane is not None:
            stats = self.plane.stats()
        elif self.group is not None and self.group.conns_to_workers:
            stats = self.group.worker_stats()
        else:
            stats = {}
        return {"workers": self.workers, "worker_pids": list(self.pids), **stats}

    def close(self, keep_rules: bool = False) -> None:
        if self.group is not None:
            for conn in self.group.conns_to_workers:
                conn.close()  # EOF: the worker leaves its loop
            self.group.conns_to_workers.clear()
        for pid in self.pids:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                done, _status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.02)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        self.pids.clear()
        if self.plane is not None:
            self.plane.close()
            self.plane = None
        if self._rules_installed and not keep_rules:
            remove_rules()
            self._rules_installed = False
