"""The packet path: one IP packet in, one action out (ip_vs_core.c, without the I/O).

``Engine.handle(packet, now, mark)`` decides what happens to one IPv4 or IPv6 packet that reached
the director and returns an :class:`Action`; the backend carries it out. The engine never sends,
sleeps or reads a clock: ``now`` comes with every call, and ``tick(now)`` runs the timers.

The order of decisions follows ``ip_vs_in_hook`` / ``ip_vs_out_hook``:

1. parse; malformed packets are dropped, packets pylvs does not handle (fragments, other
   protocols) are passed to the kernel untouched; each case has a counter in ``counters``;
2. a packet of a known connection (client side) is forwarded by the connection's method, after
   the TCP state machine and the counters have seen it; a new SYN on a closed connection may
   reuse the port (conn_reuse_mode);
3. a reply of a known NAT connection is source-NATed back to the virtual address;
4. otherwise, a packet to a virtual service is scheduled (TCP: only a SYN without RST, unless
   sloppy_tcp) and creates a connection, with a persistence template when the service is
   persistent; if no real server is available the client gets ICMP port unreachable;
5. ICMP errors quoting a tracked connection are forwarded with the connection, their quoted
   header rewritten for NAT (ip_vs_in_icmp / ip_vs_out_icmp).

If ``packet`` is a ``bytearray`` the engine rewrites it in place and returns it in the action;
otherwise it works on a copy.

IPv6 (ip_vs_in_hook / ip_vs_out_hook with ``af == AF_INET6``) takes the same steps with its own
entry, :meth:`Engine._handle_v6`, which ``handle`` branches to right after the parse, so that the
IPv4 path pays nothing for it. Its connections live in the same two-level indexes, under keys
with 128-bit addresses (:data:`pylvs.core.conntrack.V6_MARK`); the TCP state machine, the
schedulers, persistence (``-M`` is a prefix length, 128 by default for IPv6) and the rewrites
are shared. The differences, from ip_vs_core.c and ip_vs_xmit.c:

- extension headers (hop-by-hop, routing, destination options, AH) are walked to the upper
  layer header (ipv6_find_hdr); fragments are passed to the kernel, never scheduled;
- NAT66 rewrites addresses and ports and the L4 checksum (IPv6 has no header checksum);
- DR sends the packet to the real server's link-layer address, which the backend learns by
  neighbour discovery for the IPv6 ``next_hop`` (the same ROUTE action as IPv4);
- tunnel mode to an IPv6 real server encapsulates in IPv6 (ip_vs_tunnel_xmit_v6: next header
  41 for an IPv6 packet, 4 for an IPv4 one; hop limit and traffic class copied): the path MTU
  less the 40-byte header must be at least 1280, and a bigger IPv6 packet gets Packet Too Big
  with that MTU (__mtu_check_toobig_v6). Families mix only in tunnel mode (ip_vs_genl_set_cmd);
- ICMPv6 errors (destination unreachable, packet too big, time exceeded, parameter problem)
  quoting a tracked connection follow it, their quote rewritten for NAT (ip_vs_in_icmp_v6,
  ip_vs_out_icmp_v6); informational messages are not related;
- the hop limit is decremented where pylvs forwards (as the TTL is), with ICMPv6 time exceeded
  when it would reach 0; errors go out as ICMPv6 (port unreachable, packet too big).

``Action.next_hop`` is an IPv4 or IPv6 address: the family of the packet in the action (its
first nibble: for a tunnel the outer header's).
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import platform
import random
from collections import Counter
from typing import NamedTuple

from pylvs.core import forward, tcpstate
from pylvs.core.conntrack import (
    CF_INACTIVE,
    CF_NOOUTPUT,
    CF_ONE_PACKET,
    CF_TEMPLATE,
    V6_MARK,
    Conn,
    new_conn,
)
from pylvs.core.ipvs import IPVS
from pylvs.core.packet import (
    ICMPV6_ERROR_TYPES,
    IPPROTO_ICMPV6,
    IPV6_HLEN,
    Packet,
    ParseError,
    parse_icmp_inner,
    parse_ip,
)
from pylvs.core.ratelimit import RateLimit
from pylvs.core.service import (
    AF_INET,
    AF_INET6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    Dest,
    FwdMethod,
    RateEstimator,
    Service,
    ServiceFlags,
)

__all__ = ["Action", "Engine", "Verdict"]

_log = logging.getLogger("pylvs.engine")

# Per-packet functions bound once at import (a module attribute lookup less per call).
_decrement_ttl = forward.decrement_ttl
_may_answer = forward.may_send_icmp_error
_nat_in = forward.nat_in
_nat_out = forward.nat_out

IPPROTO_ICMP = 1
_TCP_SYN = 0x02
_TCP_RST = 0x04
# ICMP types IPVS treats as related to a connection (ip_vs_in_icmp).
_ICMP_RELATED = frozenset({3, 4, 11})
# ip_vs_in_icmp_v6 takes every ICMPv6 error (types below 128, ICMPV6_INFOMSG_MASK clear); the
# defined ones: destination unreachable, packet too big, time exceeded, parameter problem.
_ICMPV6_RELATED = ICMPV6_ERROR_TYPES
# IPV6_MIN_MTU: __ip_vs_get_out_rt_v6 drops a tunnelled packet when the path MTU less the outer
# header is below it ("mtu less than 1280").
_IPV6_MIN_MTU = 1280
_MASK32 = 0xFFFFFFFF
_MASK128 = (1 << 128) - 1
_MASQ = int(FwdMethod.MASQ)
_ROUTE = int(FwdMethod.ROUTE)
_TUNNEL = int(FwdMethod.TUNNEL)
_LOCALNODE = int(FwdMethod.LOCALNODE)
# Service flag bits tested as plain ints: Service.persistent / .onepacket go through IntFlag's
# Python-level __and__ and build a new flag object (about 0.8 µs each, timeit).
_SVC_PERSISTENT = int(ServiceFlags.PERSISTENT)
_SVC_ONEPACKET = int(ServiceFlags.ONEPACKET)
_ACTIVE = tcpstate.ACTIVE_STATES
# TCP flags that select the state-table event (tcpstate.event_of): RST, SYN, FIN, ACK.
_EVENT_FLAGS = 0x17
# next state = _NEXT_STATE[direction][tcp_flags & _EVENT_FLAGS][state]: tcpstate.next_state
# precomputed for every flag combination, one tuple index per packet instead of two calls.
_NEXT_STATE = tuple(
    tuple(
        tuple(tcpstate.next_state(direction, flags, state) for state in range(11))
        for flags in range(_EVENT_FLAGS + 1)
    )
    for direction in (tcpstate.DIR_INPUT, tcpstate.DIR_OUTPUT, tcpstate.DIR_INPUT_ONLY)
)
_NEXT_INPUT = _NEXT_STATE[tcpstate.DIR_INPUT]
_NEXT_INPUT_ONLY = _NEXT_STATE[tcpstate.DIR_INPUT_ONLY]


class Verdict(enum.IntEnum):
    """What the backend does with the packet (see :class:`Action`)."""

    ACCEPT = 0  # not for pylvs, or passed on: let the kernel have it unchanged
    DROP = 1  # drop it
    REWRITE = 2  # NAT: let it continue with ``packet`` as its new content
    ROUTE = 3  # DR: drop the original; send ``packet`` in an Ethernet frame to next_hop's MAC
    TUNNEL = 4  # TUN: drop the original; send the encapsulated ``packet`` (an IP packet)
    LOCAL = 5  # drop the original; send ``packet``, an ICMP error the director generated


class Action(NamedTuple):
    verdict: Verdict
    packet: bytes | bytearray | None = None
    # The IPv4 or IPv6 address the result is for (real server or client); its family is the
    # version of ``packet`` (for a tunnel, of the outer header).
    next_hop: int = 0


ACCEPT = Action(Verdict.ACCEPT)
DROP = Action(Verdict.DROP)
# The per-packet verdicts as module constants (an enum member lookup costs about 0.1 µs), and
# Action built by tuple.__new__ (its generated __new__ adds a Python call, about 0.15 µs).
_REWRITE = Verdict.REWRITE
_ROUTE_VERDICT = Verdict.ROUTE
_TUNNEL_VERDICT = Verdict.TUNNEL
_new_action = tuple.__new__


def _copy_via_bytes(packet: bytes | memoryview) -> bytearray:
    """``bytearray(packet)`` for PyPy: from a memoryview (the AF_PACKET ring) it copies through
    ``tobytes()``, 30 against 90 ns there (on CPython the direct copy is the faster)."""
    return bytearray(packet.tobytes() if type(packet) is memoryview else packet)


# The writable copy of a packet that is not a bytearray (see the module docstring).
_copy = _copy_via_bytes if platform.python_implementation() == "PyPy" else bytearray


class Engine(IPVS):
    """IPVS state plus the packet path.

    ``kernel_forwards_nat``: with NFQUEUE the kernel forwards a NAT-rewritten packet itself (and
    decrements its TTL); with AF_PACKET the backend sends it, and the engine decrements the TTL.
    ``check_ip_checksum``: verify IPv4 header checksums (the kernel has already done so for
    packets that come through NFQUEUE).
    """

    def __init__(
        self,
        rng: random.Random | None = None,
        *,
        kernel_forwards_nat: bool = True,
        check_ip_checksum: bool = False,
    ) -> None:
        super().__init__(rng)
        self.kernel_forwards_nat = kernel_forwards_nat
        self.check_ip_checksum = check_ip_checksum
        self.counters: Counter[str] = Counter()
        self._next_estimate = 0.0
        self._next_housekeeping = 0.0
        self._ip_id = 0
        # Set by a data plane around handle() for a GSO frame (segmentation offload, e.g. a
        # GRO-merged TCP frame of up to 64 KiB): the IP length of the segments it leaves as.
        # 0: an ordinary packet, which must fit the path MTU itself.
        self.gso_seg_len = 0
        # Per-packet log lines go through net_ratelimit's rule: a remote client must not be able
        # to write the log at the packet rate.
        self._log_limit = RateLimit()

    # -- timers --------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Expire connections and run the rate estimator (every 2 s) and scheduler upkeep."""
        self.now = now
        self.table.expire(now)
        if now >= self._next_estimate:
            if self._next_estimate:
                self.run_estimator()
            self._next_estimate = now + RateEstimator.INTERVAL
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + 1.0
            for svc in self.services_list:
                if svc.scheduler is not None:
                    svc.scheduler.expire(now)
            self.purge_trash()

    def next_deadline(self) -> float:
        deadline = self.table.next_deadline()
        soonest = min(self._next_estimate, self._next_housekeeping)
        return soonest if deadline is None else min(deadline, soonest)

    # -- the packet path -----------------------------------------------------------------------

    def handle(self, packet: bytes | bytearray | memoryview, now: float, mark: int = 0) -> Action:
        """Decide the fate of one IP packet (from its IP header) that reached the director."""
        self.now = now
        try:
            p = parse_ip(packet)
        except ParseError as exc:
            self.counters["drop_" + exc.reason] += 1
            return DROP
        if p.version != 4:
            return self._handle_v6(packet, p, now, mark)
        if p.is_fragment:
            # IPVS works on reassembled packets; pylvs passes fragments to the kernel.
            self.counters["pass_fragment"] += 1
            return ACCEPT
        if self.check_ip_checksum and not forward.ip_checksum_ok(packet, p):
            self.counters["drop_bad_ip_checksum"] += 1
            return DROP
        proto = p.proto
        if proto in (IPPROTO_TCP, IPPROTO_UDP):
            # The two halves of the flow key (conntrack.split_parts), each below 2**64: the in
            # index is flows_in[proto + destination][source], the out index
            # flows_out[proto + source][destination].
            src = p.saddr << 16 | p.sport
            dst = p.daddr << 16 | p.dport
            proto <<= 48
            conns = self.table
            flows = conns.flows_in.get(proto | dst)
            if flows is not None:
                cp = flows.get(src)
                if cp is not None:
                    # The common case of _in_existing without its call: no SYN, dest available.
                    if (not p.tcp_flags & _TCP_SYN or p.proto == IPPROTO_UDP) and cp.dest.available:
                        return self._forward_in(cp, packet, p, now)
                    return self._in_existing(cp, packet, p, now, mark)
            flows = conns.flows_out.get(proto | src)
            if flows is not None:
                cp = flows.get(dst)
                if cp is not None:
                    return self._out(cp, packet, p, now)
            return self._in_new(packet, p, now, mark)
        if proto == IPPROTO_ICMP:
            return self._icmp(packet, p, now)
        self.counters["pass_protocol"] += 1
        return ACCEPT

    def _handle_v6(
        self, packet: bytes | bytearray | memoryview, p: Packet, now: float, mark: int
    ) -> Action:
        """The IPv6 packet path: :meth:`handle`'s steps with 128-bit keys (module docstring)."""
        if p.is_fragment:
            # IPVS sees IPv6 reassembled (nf_defrag_ipv6) and schedules no later fragment
            # (frag_safe_skb_hp); pylvs passes fragments to the kernel, as for IPv4.
            self.counters["pass_fragment"] += 1
            return ACCEPT
        proto = p.proto
        if proto in (IPPROTO_TCP, IPPROTO_UDP):
            # The two halves of the flow key (conntrack.split_parts for IPv6): the in index is
            # flows_in[mark + proto + destination][source], the out index
            # flows_out[mark + proto + source][destination].
            src = p.saddr << 16 | p.sport
            dst = p.daddr << 16 | p.dport
            part = V6_MARK | proto << 144
            conns = self.table
            flows = conns.flows_in.get(part | dst)
            if flows is not None:
                cp = flows.get(src)
                if cp is not None:
                    # As in handle: the common case of _in_existing without its call.
                    if (not p.tcp_flags & _TCP_SYN or proto == IPPROTO_UDP) and cp.dest.available:
                        return self._forward_in(cp, packet, p, now)
                    return self._in_existing(cp, packet, p, now, mark)
            flows = conns.flows_out.get(part | src)
            if flows is not None:
                cp = flows.get(dst)
                if cp is not None:
                    return self._out(cp, packet, p, now, _MASK128)
            return self._in_new(packet, p, now, mark)
        if proto == IPPROTO_ICMPV6:
            if p.icmp_type not in _ICMPV6_RELATED:
                return ACCEPT
            return self._icmp_related(packet, p)
        self.counters["pass_protocol"] += 1
        return ACCEPT

    def _in_existing(
        self, cp: Conn, packet: bytes | bytearray | memoryview, p: Packet, now: float, mark: int
    ) -> Action:
        dest = cp.dest
        if p.proto == IPPROTO_TCP and p.tcp_flags & _TCP_SYN and self._reschedule_on_syn(cp):
            if not cp.n_control:
                self.table.expire_now(cp)
            self.counters["conn_reused"] += 1
            return self._in_new(packet, p, now, mark)
        if not dest.available:
            if self.sysctls.expire_nodest_conn:
                self.table.expire_now(cp)
                return self._in_new(packet, p, now, mark)
            self.counters["drop_dest_unavailable"] += 1
            return DROP
        return self._forward_in(cp, packet, p, now)

    def _reschedule_on_syn(self, cp: Conn) -> bool:
        """A new SYN on a known connection (ip_vs_in_hook with conn_reuse_mode): start afresh if
        the old connection is closed and not controlled by a template (is_new_conn_expected), or
        if its dest was quiesced and expire_nodest_conn is set."""
        sysctls = self.sysctls
        if not sysctls.conn_reuse_mode:
            return False
        if sysctls.expire_nodest_conn and cp.dest.weight == 0:
            return True
        if cp.control is not None:
            return False
        state = cp.state
        if state in (tcpstate.TCP_TIME_WAIT, tcpstate.TCP_CLOSE):
            return True
        # Bit 2 of conn_reuse_mode also reuses DR/TUN connections in FIN_WAIT.
        return bool(
            sysctls.conn_reuse_mode & 2
            and state == tcpstate.TCP_FIN_WAIT
            and cp.flags & CF_NOOUTPUT
        )

    def _in_new(
        self, packet: bytes | bytearray | memoryview, p: Packet, now: float, mark: int
    ) -> Action:
        # The address family is the IP version (AF_INET == 4, AF_INET6 == 6 in pylvs).
        svc = self.find_service(p.version, p.proto, p.daddr, p.dport, mark)
        if svc is None:
            return ACCEPT
        if p.proto == IPPROTO_TCP:
            flags = p.tcp_flags
            if flags & _TCP_RST or not (flags & _TCP_SYN or self.sysctls.sloppy_tcp):
                # tcp_conn_schedule: only a SYN starts a connection; the rest goes up the stack.
                self.counters["pass_not_syn"] += 1
                return ACCEPT
        cp = self._schedule(svc, p, now)
        if cp is None:
            # ip_vs_leave: no real server available -> ICMP port unreachable, drop.
            self.counters["no_dest"] += 1
            if not _may_answer(p):
                return self._icmp_suppressed()
            return Action(Verdict.LOCAL, forward.icmp_port_unreachable(packet, p, p.daddr), p.saddr)
        return self._forward_in(cp, packet, p, now)

    # -- scheduling (ip_vs_schedule / ip_vs_sched_persist) ---------------------------------------

    def _schedule(self, svc: Service, p: Packet, now: float) -> Conn | None:
        sched = svc.scheduler
        assert sched is not None
        if int(svc.flags) & _SVC_PERSISTENT:
            return self._schedule_persist(svc, p, now)
        if not svc.fwmark and p.dport != svc.port:
            if not svc.port and self._log_limit.allow(now):
                _log.error(
                    "Schedule: port zero only supported in persistent services, "
                    "check your ipvs configuration"
                )
            return None
        dest = sched.schedule(svc, p.saddr, p.sport, p.daddr, now)
        if dest is None:
            _log.debug("%s: no destination available", svc.sched_name.upper())
            return None
        return self._new_conn(svc, dest, p, now)

    def _schedule_persist(self, svc: Service, p: Packet, now: float) -> Conn | None:
        tkey = self.template_key(svc, p.proto, p.saddr, p.daddr, p.dport)
        ct = self.table.templates.get(tkey)
        if ct is None or not self.check_template(ct):
            assert svc.scheduler is not None
            dest = svc.scheduler.schedule(svc, p.saddr, p.sport, p.daddr, now)
            if dest is None:
                _log.debug("%s: no destination available", svc.sched_name.upper())
                return None
            ct = Conn(tkey, dest, CF_TEMPLATE | int(dest.fwd), tcpstate.TCP_NONE, svc.timeout)
            self._bind(ct)
            self.table.add(ct, now)
        else:
            dest = ct.dest
        cp = self._new_conn(svc, dest, p, now)
        cp.control = ct
        ct.n_control += 1
        # Each use of a template re-arms its timer (ip_vs_conn_put on the template).
        self.table.refresh(ct, now)
        return cp

    def _new_conn(self, svc: Service, dest: Dest, p: Packet, now: float) -> Conn:
        """ip_vs_conn_new + ip_vs_bind_dest: a new connection, counted as inactive until its
        first state transition; DR and tunnel connections never see output (NOOUTPUT)."""
        fwd = int(dest.fwd)
        flags = fwd | CF_INACTIVE
        if fwd != _MASQ:
            flags |= CF_NOOUTPUT
        if p.proto == IPPROTO_UDP and int(svc.flags) & _SVC_ONEPACKET:
            flags |= CF_ONE_PACKET
        # A new connection starts in NONE with a 3 s timeout (ip_vs_conn_new); its key in the
        # two parts the table files it under (conntrack.split_parts).
        if p.version == 4:
            vkey = p.proto << 48 | p.daddr << 16 | p.dport
        else:
            vkey = V6_MARK | p.proto << 144 | p.daddr << 16 | p.dport
        cp = new_conn(
            vkey,
            p.saddr << 16 | p.sport,
            dest,
            flags,
            tcpstate.TCP_NONE,
            3,
        )
        self._bind(cp)
        if not flags & CF_ONE_PACKET:
            self.table.add(cp, now)
        dest.stats.conns += 1
        svc.stats.conns += 1
        self.stats.conns += 1
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug(
                "%s: scheduled %s:%d -> %s:%d to %s:%d (weight %d, active %d, inactive %d)",
                svc.sched_name.upper(),
                _ip(p.saddr, p.version),
                p.sport,
                _ip(p.daddr, p.version),
                p.dport,
                _ip(dest.addr, dest.af),
                cp.dport,
                dest.weight,
                dest.activeconns,
                dest.inactconns,
            )
        return cp

    # -- forwarding ----------------------------------------------------------------------------

    def _set_tcp_state(self, cp: Conn, direction: int, tcp_flags: int) -> None:
        """set_tcp_state: move along the table and keep activeconns/inactconns right."""
        if cp.flags & CF_NOOUTPUT:
            if direction == tcpstate.DIR_OUTPUT:
                cp.flags &= ~CF_NOOUTPUT
            else:
                direction = tcpstate.DIR_INPUT_ONLY
        new = _NEXT_STATE[direction][tcp_flags & _EVENT_FLAGS][cp.state]
        if new != cp.state:
            self._change_tcp_state(cp, new)
        cp.timeout = self.tcp_timeouts[new]

    def _change_tcp_state(self, cp: Conn, new: int) -> None:
        """Enter state ``new``, moving the connection between activeconns and inactconns."""
        dest = cp.dest
        if not cp.flags & CF_INACTIVE:
            if new not in _ACTIVE:
                dest.activeconns -= 1
                dest.inactconns += 1
                cp.flags |= CF_INACTIVE
        elif new in _ACTIVE:
            dest.activeconns += 1
            dest.inactconns -= 1
            cp.flags &= ~CF_INACTIVE
        cp.state = new

    def _writable(self, packet: bytes | bytearray | memoryview) -> bytearray:
        return packet if isinstance(packet, bytearray) else _copy(packet)

    def _forward_in(
        self, cp: Conn, packet: bytes | bytearray | memoryview, p: Packet, now: float
    ) -> Action:
        dest = cp.dest
        svc = dest.svc
        length = p.total_len
        # Each Stats object loaded once for its two counters.
        stats = dest.stats
        stats.inpkts += 1
        stats.inbytes += length
        if svc is not None:
            stats = svc.stats
            stats.inpkts += 1
            stats.inbytes += length
        stats = self.stats
        stats.inpkts += 1
        stats.inbytes += length
        if p.proto == IPPROTO_TCP:
            # _set_tcp_state(cp, DIR_INPUT, ...) inlined: input on a NOOUTPUT connection uses
            # the INPUT_ONLY table; the state rarely changes, so only a change costs a call.
            state = cp.state
            if cp.flags & CF_NOOUTPUT:
                new = _NEXT_INPUT_ONLY[p.tcp_flags & _EVENT_FLAGS][state]
            else:
                new = _NEXT_INPUT[p.tcp_flags & _EVENT_FLAGS][state]
            if new != state:
                self._change_tcp_state(cp, new)
            cp.timeout = self.tcp_timeouts[new]
        else:
            cp.timeout = self.udp_timeout
        cp.in_pkts += 1
        if self.sync_master is not None:
            # ip_vs_in: a running master considers every client packet for synchronisation.
            self.sync_master.conn_in(cp, now)
        if cp.flags & CF_ONE_PACKET:
            self._unbind(cp)
        else:
            self.table.refresh(cp, now)
        return self._transmit(cp, packet, p)

    def _transmit(self, cp: Conn, packet: bytes | bytearray | memoryview, p: Packet) -> Action:
        """The connection's packet_xmit: NAT, DR or tunnel (ip_vs_xmit.c)."""
        dest = cp.dest
        fwd = cp.flags & 0x7
        # _writable inlined in each branch below (one call less per packet).
        if fwd == _MASQ:
            if not dest.path_mtu:
                return self._no_route()
            buf = packet if isinstance(packet, bytearray) else _copy(packet)
            if not self.kernel_forwards_nat and not _decrement_ttl(buf, p):
                return self._time_exceeded(packet, p)
            # cp.dport inlined: the dest's port, or the virtual port for a port-0 dest.
            _nat_in(buf, p, dest.addr, dest.port or cp.vkey & 0xFFFF)
            return _new_action(Action, (_REWRITE, buf, dest.addr))
        if fwd == _LOCALNODE:
            return ACCEPT
        if fwd == _ROUTE:
            if p.total_len > dest.path_mtu:
                if not dest.path_mtu:
                    return self._no_route()
                # A GSO frame fits when its segments do (__mtu_check in ip_vs_xmit.c:
                # skb_gso_validate_network_len).
                if p.df and not 0 < self.gso_seg_len <= dest.path_mtu:
                    return self._frag_needed(packet, p, dest.path_mtu)
            buf = packet if isinstance(packet, bytearray) else _copy(packet)
            if not _decrement_ttl(buf, p):
                return self._time_exceeded(packet, p)
            return _new_action(Action, (_ROUTE_VERDICT, buf, dest.addr))
        # Tunnel: IPIP, the inner packet's TTL decremented first (decrement_ttl in ip_vs_xmit.c).
        if not dest.path_mtu:
            return self._no_route()
        if dest.af != 4:  # AF_INET as a literal: no global lookup per tunnelled packet
            return self._tunnel_v6(dest, packet, p)
        if forward.tun_needs_frag(p, dest.path_mtu):
            return self._frag_needed(packet, p, dest.path_mtu - forward.IPIP_OVERHEAD)
        buf = packet if isinstance(packet, bytearray) else _copy(packet)
        if not _decrement_ttl(buf, p):
            return self._time_exceeded(packet, p)
        self._ip_id = ident = (self._ip_id + 1) & 0xFFFF
        outer = forward.tun_encap(buf, p, dest.path_src, dest.addr, ident)
        return _new_action(Action, (_TUNNEL_VERDICT, outer, dest.addr))

    def _tunnel_v6(self, dest: Dest, packet: bytes | bytearray | memoryview, p: Packet) -> Action:
        """ip_vs_tunnel_xmit_v6: encapsulate in IPv6 for an IPv6 real server (an IPv6 packet,
        or an IPv4 one of a mixed-family service)."""
        # __ip_vs_get_out_rt_v6 with IP_VS_RT_MODE_TUNNEL: the MTU left for the inner packet.
        mtu = dest.path_mtu - IPV6_HLEN
        if mtu < _IPV6_MIN_MTU:
            self.counters["drop_tunnel_mtu"] += 1
            return DROP
        # ensure_mtu_is_adequate for the inner family: an IPv6 packet always (Packet Too Big),
        # an IPv4 one when DF is set (fragmentation needed).
        if p.df and p.total_len > mtu:
            return self._frag_needed(packet, p, mtu)
        buf = packet if isinstance(packet, bytearray) else _copy(packet)
        if not _decrement_ttl(buf, p):
            return self._time_exceeded(packet, p)
        outer = forward.tun_encap(buf, p, dest.path_src, dest.addr, 0, outer_version=6)
        return _new_action(Action, (_TUNNEL_VERDICT, outer, dest.addr))

    def _frag_needed(self, packet: bytes | bytearray | memoryview, p: Packet, mtu: int) -> Action:
        self.counters["frag_needed"] += 1
        if not _may_answer(p):
            return self._icmp_suppressed()
        return Action(Verdict.LOCAL, forward.icmp_frag_needed(packet, p, p.daddr, mtu), p.saddr)

    def _time_exceeded(self, packet: bytes | bytearray | memoryview, p: Packet) -> Action:
        self.counters["ttl_exceeded"] += 1
        if not _may_answer(p):
            return self._icmp_suppressed()
        return Action(Verdict.LOCAL, forward.icmp_time_exceeded(packet, p, p.daddr), p.saddr)

    def _icmp_suppressed(self) -> Action:
        """The packet gets no ICMP error (RFC 1122 3.2.2, RFC 1812 4.3.2.7: never about an
        ICMP error, a non-first fragment, or a zero, broadcast or multicast source; Linux's
        icmp_send checks the same) and is dropped, as IPVS drops it after icmp_send."""
        self.counters["icmp_error_suppressed"] += 1
        return DROP

    def _out(
        self,
        cp: Conn,
        packet: bytes | bytearray | memoryview,
        p: Packet,
        now: float,
        addr_mask: int = _MASK32,
    ) -> Action:
        """handle_response: a real server's reply on a NAT connection, SNATed to the VIP.

        ``addr_mask`` covers the virtual address in the connection's ``vkey``: 32 bits, or 128
        for IPv6 (whose key carries the IPv6 mark and the protocol above it)."""
        if cp.flags & 0x7 != _MASQ:
            return ACCEPT
        dest = cp.dest
        svc = dest.svc
        length = p.total_len
        # As in _forward_in: each Stats object loaded once.
        stats = dest.stats
        stats.outpkts += 1
        stats.outbytes += length
        if svc is not None:
            stats = svc.stats
            stats.outpkts += 1
            stats.outbytes += length
        stats = self.stats
        stats.outpkts += 1
        stats.outbytes += length
        if p.proto == IPPROTO_TCP:
            self._set_tcp_state(cp, tcpstate.DIR_OUTPUT, p.tcp_flags)
        else:
            cp.timeout = self.udp_timeout
        self.table.refresh(cp, now)
        buf = packet if isinstance(packet, bytearray) else _copy(packet)
        if not self.kernel_forwards_nat and not _decrement_ttl(buf, p):
            return self._time_exceeded(packet, p)
        # The in key's parts hold vaddr:vport and caddr:cport (split_parts).
        vkey = cp.vkey
        _nat_out(buf, p, (vkey >> 16) & addr_mask, vkey & 0xFFFF)
        return _new_action(Action, (_REWRITE, buf, cp.ckey >> 16))

    def _count(self, dest: Dest, length: int, inbound: bool) -> None:
        """ip_vs_in_stats / ip_vs_out_stats for one packet (the ICMP path; the TCP/UDP path has
        these updates inlined)."""
        svc = dest.svc
        for stats in (dest.stats, svc.stats if svc is not None else None, self.stats):
            if stats is None:
                continue
            if inbound:
                stats.inpkts += 1
                stats.inbytes += length
            else:
                stats.outpkts += 1
                stats.outbytes += length

    def _no_route(self) -> Action:
        """The real server has no route (the director set its path MTU to 0): IPVS's xmit
        functions drop such a packet when the route lookup fails (tx_error)."""
        self.counters["drop_no_route"] += 1
        return DROP

    # -- ICMP errors (ip_vs_in_icmp / ip_vs_out_icmp) --------------------------------------------

    def _icmp(self, packet: bytes | bytearray | memoryview, p: Packet, now: float) -> Action:
        if p.icmp_type not in _ICMP_RELATED:
            return ACCEPT
        return self._icmp_related(packet, p)

    def _icmp_related(self, packet: bytes | bytearray | memoryview, p: Packet) -> Action:
        """An ICMP or ICMPv6 error that may quote a tracked connection (ip_vs_in_icmp[_v6],
        ip_vs_out_icmp[_v6])."""
        try:
            inner = parse_icmp_inner(packet, p)
        except ParseError:
            self.counters["pass_icmp_unparsable"] += 1
            return ACCEPT
        if (inner.proto != IPPROTO_TCP and inner.proto != IPPROTO_UDP) or inner.frag_offset:
            # A quoted later fragment has no ports: no connection can match it.
            return ACCEPT
        # The quoted packet travelled the other way, so its reversed tuple is the key: a client's
        # error quotes a reply (VIP -> client): the in key; a real server's error quotes a
        # request (client -> RIP): the out key.
        # The two halves of that key (conntrack.split_parts), read in the indexes directly.
        proto = inner.proto << 48 if p.version == 4 else V6_MARK | inner.proto << 144
        quoted_src = inner.saddr << 16 | inner.sport
        quoted_dst = inner.daddr << 16 | inner.dport
        flows = self.table.flows_in.get(proto | quoted_src)
        cp = None if flows is None else flows.get(quoted_dst)
        if cp is not None:
            dest = cp.dest
            # ip_vs_in_icmp -> ip_vs_in_stats: the real server, its service and the totals.
            self._count(dest, p.total_len, inbound=True)
            fwd = cp.flags & 0x7
            if fwd == _MASQ:
                if not dest.path_mtu:
                    return self._no_route()
                buf = self._writable(packet)
                forward.nat_icmp_in(buf, p, inner, dest.addr, cp.dport)
                return Action(Verdict.REWRITE, buf, dest.addr)
            return self._transmit(cp, packet, p)
        flows = self.table.flows_out.get(proto | quoted_dst)
        cp = None if flows is None else flows.get(quoted_src)
        if cp is not None and cp.flags & 0x7 == _MASQ:
            # ip_vs_out_icmp -> ip_vs_out_stats
            self._count(cp.dest, p.total_len, inbound=False)
            _af, _proto, caddr, _cport, vaddr, vport = cp.fields
            buf = self._writable(packet)
            forward.nat_icmp_out(buf, p, inner, vaddr, vport)
            return Action(Verdict.REWRITE, buf, caddr)
        return ACCEPT


def _ip(addr: int, af: int = AF_INET) -> str:
    if af == AF_INET6:
        return str(ipaddress.IPv6Address(addr))
    return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"
