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
  unreachable. IPv6 services get the same chain in ``ip6tables`` (ICMPv6 errors: types 1-4).
  A packet the engine passes (ACCEPT) but the chain dropped is lost: for example a
  TCP segment of an unknown connection to a VIP, which IPVS would hand to the local stack (RST).
* Frames the host sends are not tapped (``PACKET_IGNORE_OUTGOING``), nor frames for other MACs,
  broadcasts and multicasts (socket filter on ``PACKET_HOST``). The socket filter also keeps
  everything but IPv4 or IPv6 to a VIP or from a NAT real server out of Python (neighbour
  discovery goes to multicast or to the director's own addresses: never into the ring).

Next hops: ``action.next_hop`` (real server, client, or tunnel endpoint) is looked up in the
kernel's routing table and neighbour table (:class:`pylvs.io.nexthop.NextHops`, cached; the
transmit ring of an interface is opened the first time a hop leaves by it). NAT replies thus go
to the client's next hop as the kernel would route them. An IPv6 next hop is found the same way
(IPv6 route, neighbour discovery); the family is the outgoing packet's.

ARP: pylvs does not answer ARP. The VIP is on the director's ``lo`` (the kernel answers for it, as
on an IPVS director) or routed to the director by the clients' router.

Offloads: with segmentation offloads on, tapped frames can be bigger than the MTU (a TSO frame
from a veth peer, a GRO-merged one) and carry a partial checksum (``TP_STATUS_CSUMNOTREADY``).
With ``vnet`` (``PACKET_VNET_HDR`` on every ring, see :mod:`pylvs.io.rings`) such a frame keeps
its virtio_net_hdr across the director: it is handled as one packet (the engine checks its
*segments* against the path MTU, ``Engine.gso_seg_len``), NAT updates its partial checksum as a
partial one (:func:`pylvs.core.forward.partial_csum_nat`), and it leaves as one GSO frame that
the kernel segments and checksums on transmit. Tunnel mode cannot send a GSO frame (virtio_net_hdr
has no IPIP segmentation type): such frames are dropped (``gso_dropped``). Without ``vnet`` a
flagged frame has its checksum completed in software (``csum_completed``) and a frame bigger than
the path MTU is handled as any big packet (DF set: "fragmentation needed"), so the lab turns
offloads off (``ethtool -K``). ``vnet`` also makes small frames cheaper to send: the transmit
ring's header asks the kernel to copy the whole frame into the skb (``hdr_len``) instead of
mapping the ring's pages, which a veth crossing namespaces copies again (``skb_copy_ubufs``).

Receive rings: TPACKET_V3 (:class:`RxRing`, blocks handed over when full or after 1 ms) or
TPACKET_V2 (:class:`RxRingV2`, each frame handed over at once; frames bigger than a slot are
read whole from the socket, ``PACKET_COPY_THRESH``).

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
import struct
import time
from collections.abc import Sequence
from typing import Any

from pylvs.core.checksum import L4_CHECK_OFFSET, l4_checksum
from pylvs.core.control import IPVSError, ServiceInfo, ServiceSpec, addr_from_text
from pylvs.core.engine import Engine
from pylvs.core.forward import partial_csum_nat, partial_csum_nat6
from pylvs.core.packet import ParseError, parse_ip
from pylvs.core.ratelimit import RateLimit
from pylvs.core.service import AF_INET, AF_INET6, FwdMethod, ServiceFlags
from pylvs.io import iptables, netcfg
from pylvs.io.backend import BackendError, BackendStatus
from pylvs.io.nexthop import NextHops
from pylvs.io.rings import (
    PACKET_FANOUT_CBPF,
    TP_STATUS_COPY,
    TP_STATUS_CSUMNOTREADY,
    TP_STATUS_KERNEL,
    TP_STATUS_USER,
    V2_HDR,
    V3_HDR,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VIRTIO_NET_HDR_GSO_UDP_L4,
    VNET_HDR,
    VNET_HDR_LEN,
    VNET_NONE,
    RxRing,
    RxRingV2,
    TxRing,
    attach_filter,
    client_hash_program,
    client_hash_program6,
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
# ICMPv6 errors ip_vs_in_icmp_v6 relays: destination unreachable, packet too big, time exceeded,
# parameter problem (RFC 4443).
_ICMPV6_ERRORS = ("1", "2", "3", "4")
_SEND = 2  # verdicts REWRITE, ROUTE, TUNNEL, LOCAL (>= 2) all send action.packet to next_hop
_REWRITE = 2  # Verdict.REWRITE (NAT)
_LOCAL = 5  # Verdict.LOCAL: an ICMP error the engine built
_BATCH = 4096
VNET_DEFAULT = True
RX_VERSION_DEFAULT = 2
# Receive ring of a vnet data plane: blocks that hold a 64 KiB GSO frame with its headers
# (a frame longer than a block less its header is cut, tp_snaplen < tp_len), as many bytes in
# all as the default ring.
_VNET_BLOCK = 1 << 17
_VNET_BLOCKS = 256
_ADDRS = struct.Struct("!II")
_ADDRS6 = struct.Struct("!QQQQ")
_U16 = struct.Struct("!H")
_U32LE = struct.Struct("<I")


# -- the kernel's copy: raw-table DROP rules ------------------------------------------------------


def build_ruleset(services: Sequence[ServiceInfo], family: int = AF_INET) -> str:
    """``iptables-restore --noflush`` input making ``PYLVS-AF`` drop what pylvs forwards
    (``family`` 6: the ``ip6tables-restore`` input, for the IPv6 services)."""
    lines = ["*raw", f":{CHAIN} - [0:0]"]
    seen: set[str] = set()
    if family == AF_INET6:
        host = "/128"
        icmps = [f"-p ipv6-icmp --icmpv6-type {kind}" for kind in _ICMPV6_ERRORS]
    else:
        host = "/32"
        icmps = [f"-p icmp --icmp-type {kind}" for kind in _ICMP_ERRORS]

    def add(rule: str) -> None:
        if rule not in seen:
            seen.add(rule)
            lines.append(f"-A {CHAIN} {rule} -j DROP")

    for svc in services:
        proto = _PROTO_NAMES.get(svc.protocol)
        if svc.af != family or svc.fwmark or proto is None:
            continue
        port = f" --dport {svc.port}" if svc.port else ""
        add(f"-d {svc.addr}{host} -p {proto}{port}")
        for icmp in icmps:
            add(f"-d {svc.addr}{host} {icmp}")
        for dest in svc.dests:
            if dest.fwd != FwdMethod.MASQ or dest.af != family:
                continue
            rport = dest.port or svc.port
            sport = f" --sport {rport}" if rport else ""
            # Only replies on their way to a client (iptables.NOT_LOCAL).
            add(f"-s {dest.addr}{host} -p {proto}{sport} {iptables.NOT_LOCAL}")
            for icmp in icmps:
                add(f"-s {dest.addr}{host} {icmp} {iptables.NOT_LOCAL}")
    return "\n".join([*lines, "COMMIT", ""])


def _install_jumps(ifaces: Sequence[str]) -> None:
    for family in (AF_INET, AF_INET6):
        iptables.restore(build_ruleset([], family), family)
        for name in ifaces:
            iptables.ensure_jump("raw", ["-i", name], CHAIN, first=True, family=family)


def remove_rules() -> bool:
    """Remove ``PYLVS-AF`` and the jumps to it (also a killed daemon's), from iptables and
    ip6tables; True if any existed."""
    removed = iptables.remove_chains("raw", (CHAIN,), AF_INET)
    return iptables.remove_chains("raw", (CHAIN,), AF_INET6) or removed


def filter_addrs(
    services: Sequence[ServiceInfo], family: int = AF_INET
) -> tuple[list[int], list[int]] | None:
    """(VIPs, NAT real servers) of ``family`` as ints for the socket filter; None: no address
    filter possible (too many addresses), take all of that family for this host."""
    vips: list[int] = []
    rips: list[int] = []
    for svc in services:
        if svc.af != family or svc.fwmark:
            continue
        vip = addr_from_text(svc.addr)[1]
        if vip not in vips:
            vips.append(vip)
        for dest in svc.dests:
            if dest.fwd != FwdMethod.MASQ or dest.af != family:
                continue
            rip = addr_from_text(dest.addr)[1]
            if rip not in rips:
                rips.append(rip)
    # IPv4: BPF jumps are 8 bits; beyond that the engine sorts the traffic out. IPv6: nine
    # instructions per address (rings.host_filter), within the 4096 a program may have.
    limit = 250 if family == AF_INET else 400
    if len(vips) + len(rips) > limit:
        return None
    return vips, rips


def persistence_prefix(services: Sequence[ServiceInfo], family: int = AF_INET) -> int | None:
    """The widest persistence netmask (shortest prefix) of the persistent services of
    ``family``, or None when there is none: the fanout hash then keeps a masked client network
    on one worker."""
    prefixes = [s.netmask for s in services if s.af == family and s.flags & ServiceFlags.PERSISTENT]
    return min(prefixes) if prefixes else None


# -- one process's data plane ------------------------------------------------------------------


def _transmit_ring(link: netcfg.LinkInfo, vnet: bool = False) -> TxRing:
    """The transmit ring of an output interface, its slots big enough for the MTU (with
    ``vnet``, bigger frames leave through the ring's big-frame socket)."""
    size = 2048
    while size < link.mtu + 14 + 4 + 32 + (VNET_HDR_LEN if vnet else 0):
        size *= 2
    return TxRing(link.name, frame_size=size, frame_nr=max(256, (2 << 20) // size), vnet=vnet)


def _transmit_ring_vnet(link: netcfg.LinkInfo) -> TxRing:
    return _transmit_ring(link, vnet=True)


def gso_segment_length(packet: memoryview | bytes | bytearray, gso_type: int, gso_size: int) -> int:
    """The IP length of the segments a GSO frame is cut into (its IP and TCP/UDP headers plus
    ``gso_size``); 0 for a kind of GSO frame this data plane does not forward."""
    kind = gso_type & ~VIRTIO_NET_HDR_GSO_ECN
    if packet[0] >> 4 == 6:
        # TCP or UDP right after the fixed header (a GSO frame the kernel built has no
        # extension headers; one that has them is not forwarded as such).
        if kind == VIRTIO_NET_HDR_GSO_TCPV6 and packet[6] == 6:
            return 40 + (packet[52] >> 4) * 4 + gso_size
        if kind == VIRTIO_NET_HDR_GSO_UDP_L4 and packet[6] == 17:
            return 40 + 8 + gso_size
        return 0
    ihl = (packet[0] & 0xF) * 4
    if kind == VIRTIO_NET_HDR_GSO_TCPV4:
        return ihl + (packet[ihl + 12] >> 4) * 4 + gso_size
    if kind == VIRTIO_NET_HDR_GSO_UDP_L4:
        return ihl + 8 + gso_size
    return 0  # UFO: not segmentable here


class DataPlane:
    """Receive rings on the tapped interfaces -> engine -> transmit rings.

    With ``vnet`` (PACKET_VNET_HDR on every ring, see :mod:`pylvs.io.rings`) frames keep their
    offloads across the director: a GRO-merged 64 KiB TCP frame is handled as one packet and
    leaves as one GSO frame that the kernel segments on transmit, and a partial checksum stays
    partial (NAT updates it by :func:`pylvs.core.forward.partial_csum_nat`) instead of being
    completed in software.
    """

    def __init__(
        self,
        engine: Engine,
        ifaces: Sequence[str],
        fanout: int = 0,
        vnet: bool = False,
        rx_version: int = 3,
    ) -> None:
        self.engine = engine
        self.ifaces = tuple(ifaces)
        self.fanout = fanout  # fanout group base (0: no fanout)
        self.vnet = vnet
        self.rx_version = rx_version  # TPACKET_V3 (blocks) or V2 (frames): see RxRingV2
        self.rx: list[RxRing | RxRingV2] = []
        self.hops = NextHops(attach=_transmit_ring_vnet if vnet else _transmit_ring)
        self.gso_frames = 0  # vnet: GSO frames received
        self.gso_dropped = 0  # vnet: GSO frames that could not be forwarded as such
        self.rx_truncated = 0  # frames longer than a ring block, dropped
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
                ring: RxRing | RxRingV2
                if self.rx_version == 2:
                    size = 2048
                    while size < netcfg.link_info(name).mtu + 128:
                        size *= 2
                    ring = RxRingV2(size, (64 << 20) // size, vnet=self.vnet)
                elif self.vnet:
                    ring = RxRing(_VNET_BLOCK, _VNET_BLOCKS, vnet=True)
                else:
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
        addrs6 = filter_addrs(services, AF_INET6)
        if addrs is None:
            log.warning("more than 250 addresses: tapping all IPv4 traffic to this host")
        if addrs6 is None:
            log.warning("more than 400 IPv6 addresses: tapping all IPv6 traffic to this host")
        daddrs, saddrs = (None, []) if addrs is None else addrs
        daddrs6, saddrs6 = (None, []) if addrs6 is None else addrs6
        program = host_filter(daddrs, saddrs, daddrs6, saddrs6)
        for ring in self.rx:
            attach_filter(ring.sock, program)
        if self.fanout:
            vips = [addr_from_text(s.addr)[1] for s in services if s.af == AF_INET and not s.fwmark]
            fanout = client_hash_program(vips, persistence_prefix(services))
            vips6 = [
                addr_from_text(s.addr)[1] for s in services if s.af == AF_INET6 and not s.fwmark
            ]
            if vips6:
                prefix6 = persistence_prefix(services, AF_INET6)
                fanout = client_hash_program6(vips6, prefix6, fanout)
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
            if isinstance(ring, RxRingV2):
                done += self._drain_v2(ring, budget - done)
            else:
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
        vnet = self.vnet
        done = 0
        while done < budget:
            block = ring.ready()
            if block < 0:
                break
            num, off = ring.frames(block)
            now = time.monotonic()
            try:
                for _ in range(num):
                    step, snaplen, length, status, mac, net = unpack(view, off)
                    packet = view[off + net : off + mac + snaplen]
                    frame = off + mac
                    off += step
                    try:
                        if snaplen != length:
                            self.rx_truncated += 1  # cut to fit a block: not a whole packet
                            continue
                        if status & TP_STATUS_CSUMNOTREADY or (vnet and view[frame - 9]):
                            # A partial checksum, or a GSO frame (gso_type, byte 1 of the
                            # virtio_net_hdr before the frame).
                            if vnet:
                                self._offloaded(packet, view, frame, net - mac, now)
                                continue
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

    def _drain_v2(self, ring: RxRingV2, budget: int) -> int:
        """:meth:`_drain` for a TPACKET_V2 ring: frame by frame, each slot given back as soon as
        its frame is handled; the transmit rings are flushed once at the end (and every
        ``burst`` frames by the rings themselves). The per-frame code is :meth:`_drain`'s, kept
        inline in both loops: a method call per frame is the cost of a whole engine decision
        on PyPy's short paths."""
        view = ring.view
        unpack = V2_HDR.unpack_from
        release = _U32LE.pack_into
        handle = self.engine.handle
        hops = self.hops.hops
        resolve = self.hops.resolve
        dropped = self.hops.dropped
        vnet = self.vnet
        size = ring.frame_size
        nr = ring.frame_nr
        index = ring.index
        now = time.monotonic()
        done = 0
        while done < budget:
            slot = index * size
            status, length, snaplen, mac, net = unpack(view, slot)
            if not status & TP_STATUS_USER:
                ring.index = index
                if ring.ready() < 0:  # nothing at the cursor, nor past a slot the kernel left
                    break
                index = ring.index
                continue
            try:
                packet = view[slot + net : slot + mac + snaplen]
                frame = slot + mac
                if status & TP_STATUS_COPY:
                    # Too big for a slot: the whole frame (virtio_net_hdr first) is queued. The
                    # queue holds the big frames in ring order; after a slot was stepped over
                    # (RxRingV2.ready) its frame is still queued first: read on to this one.
                    for _ in range(8):
                        n = ring.read_copy()
                        if n < 0 or (n <= len(ring.copybuf) and n - VNET_HDR_LEN == length):
                            break
                        self.rx_truncated += 1
                    if n < 0 or n > len(ring.copybuf) or n - VNET_HDR_LEN != length:
                        self.rx_truncated += 1
                        continue
                    copy = memoryview(ring.copybuf)
                    self._offloaded(copy[VNET_HDR_LEN + net - mac : n], copy, VNET_HDR_LEN,
                                    net - mac, now)  # fmt: skip
                    continue
                if snaplen != length:
                    self.rx_truncated += 1
                    continue
                if status & TP_STATUS_CSUMNOTREADY or (vnet and view[frame - 9]):
                    if vnet:
                        self._offloaded(packet, view, frame, net - mac, now)
                        continue
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
                self._failed(now)
            finally:
                # Given back at once (and the cursor moved) whatever happened: the engine and
                # the transmit ring keep copies, never the slot itself.
                release(view, slot, TP_STATUS_KERNEL)
                index = (index + 1) % nr
                done += 1
        ring.index = index
        self._flush()
        self.handled += done
        return done

    def _offloaded(
        self, packet: memoryview, view: memoryview, frame: int, l2: int, now: float
    ) -> None:
        """A frame with a partial checksum or a GSO frame, on a vnet data plane: forwarded with
        its virtio_net_hdr (``view[frame - 10:frame]``), so the kernel completes the checksum
        and cuts the segments when it transmits it."""
        vnet = bytes(view[frame - VNET_HDR_LEN : frame])
        flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack(vnet)
        check_off = -1  # where the partial checksum is, from the IP header
        old_check = old_saddr = old_daddr = 0
        if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
            check_off = csum_start + csum_offset - l2
            v = packet[0]
            proto = packet[9] if v >> 4 == 4 else packet[6]
            if (
                v >> 4 == 4
                and proto in (6, 17)
                and check_off == (v & 0xF) * 4 + L4_CHECK_OFFSET[proto]
            ):
                (old_check,) = _U16.unpack_from(packet, check_off)
                old_saddr, old_daddr = _ADDRS.unpack_from(packet, 12)
            elif v >> 4 == 6 and proto in (6, 17) and check_off == 40 + L4_CHECK_OFFSET[proto]:
                # IPv6, TCP/UDP right after the fixed header: the addresses as 128-bit ints.
                (old_check,) = _U16.unpack_from(packet, check_off)
                s_hi, s_lo, d_hi, d_lo = _ADDRS6.unpack_from(packet, 8)
                old_saddr, old_daddr = s_hi << 64 | s_lo, d_hi << 64 | d_lo
            elif gso_type == VIRTIO_NET_HDR_GSO_NONE:
                # Not a TCP/UDP checksum NAT knows how to update: complete it here instead.
                self._complete_checksum(packet)
                vnet = VNET_NONE
                check_off = -1
        engine = self.engine
        seg = 0
        if gso_type != VIRTIO_NET_HDR_GSO_NONE:
            self.gso_frames += 1
            seg = gso_segment_length(packet, gso_type, gso_size)
            if not seg:
                self.gso_dropped += 1
                return
            engine.gso_seg_len = seg
        try:
            verdict, out, next_hop = engine.handle(packet, now)
        finally:
            engine.gso_seg_len = 0
        if verdict < _SEND or out is None:
            return
        if verdict == _LOCAL:
            vnet = VNET_NONE  # an ICMP error the engine built: full checksums, one packet
        elif len(out) != len(packet):
            # Encapsulated (IPIP): the checksum moved with the inner packet. A GSO frame cannot
            # be sent so (virtio_net_hdr has no IPIP segmentation type).
            if seg:
                self.gso_dropped += 1
                return
            if check_off >= 0:
                delta = len(out) - len(packet)
                vnet = VNET_HDR.pack(flags, gso_type, 0, gso_size, csum_start + delta, csum_offset)
        elif check_off >= 0 and verdict == _REWRITE:
            # NAT: the engine updated the checksum as a full one (ports included); a partial
            # one follows the addresses only (inet_proto_csum_replace4/2, CHECKSUM_PARTIAL).
            assert isinstance(out, bytearray)
            if out[0] >> 4 == 6:
                partial_csum_nat6(out, check_off, old_check, old_saddr, old_daddr)
            else:
                partial_csum_nat(out, check_off, old_check, old_saddr, old_daddr)
        hops = self.hops
        hop = hops.hops.get(next_hop)
        if hop is None or hop.expires < now:
            hop = hops.resolve(next_hop, now)
        tx = hop.out
        if tx is None:
            hops.dropped(hop)
        else:
            tx.put(hop.header, out, vnet)

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
        """Replace a partial (pseudo-header only) TCP/UDP checksum by the full one (IPv4 or
        IPv6: l4_checksum sums the pseudo header of the packet's family)."""
        try:
            p = parse_ip(packet)
            if p.is_fragment or p.proto not in (6, 17):
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
            "rx_truncated": self.rx_truncated,
            "gso_frames": self.gso_frames,
            "gso_dropped": self.gso_dropped,
            "tx_big_frames": sum(tx.big_sent for tx in rings),
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


def default_vnet() -> bool:
    """Whether the data plane keeps segmentation offloads (PACKET_VNET_HDR); the environment
    variable ``PYLVS_AFPACKET_VNET`` (0 or 1) overrides the default."""
    value = os.environ.get("PYLVS_AFPACKET_VNET", "")
    if value in ("0", "1"):
        return value == "1"
    return VNET_DEFAULT


def default_rx_version() -> int:
    """The receive ring's TPACKET version (3: blocks, 2: frames); the environment variable
    ``PYLVS_AFPACKET_RX`` (2 or 3) overrides the default."""
    value = os.environ.get("PYLVS_AFPACKET_RX", "")
    if value in ("2", "3"):
        return int(value)
    return RX_VERSION_DEFAULT


def default_ifaces() -> list[str]:
    """Every interface but loopback: where clients and real servers can be."""
    return [name for name in netcfg.link_names() if name != "lo"]


class AfpacketBackend:
    """What pylvsd drives: the DROP rules, and either one in-process data plane or the workers of
    an :class:`EngineGroup`."""

    name = "afpacket"
    kernel_forwards = False  # pylvs sends everything itself: no ip_forward / accept_local

    def __init__(
        self,
        engine: Engine | EngineGroup,
        ifaces: Sequence[str] = (),
        vnet: bool | None = None,
        rx_version: int | None = None,
    ) -> None:
        self.engine = engine
        self.ifaces = tuple(ifaces)
        self.vnet = default_vnet() if vnet is None else vnet
        self.rx_version = default_rx_version() if rx_version is None else rx_version
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
            self.plane = DataPlane(engine, ifaces, vnet=self.vnet, rx_version=self.rx_version)
            self.plane.open()
            return
        fanout = ((os.getpid() & 0xFFF) << 4) or 16
        try:
            vnet, version = self.vnet, self.rx_version
            engine.start(
                lambda e: DataPlane(e, ifaces, fanout, vnet, version),
                close_in_children,
                (ifaces, fanout, vnet, version),
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
            for family in (AF_INET, AF_INET6):
                iptables.restore(build_ruleset(services, family), family)
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
