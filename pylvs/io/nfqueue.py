"""The NFQUEUE backend: the kernel hands pylvs exactly the virtual services' packets.

Rules (all in chains this module owns, so they can be replaced atomically and removed by name):

* ``raw`` table, chain ``PYLVS``, jumped to from the top of ``PREROUTING``: one rule per virtual
  service matching ``-p PROTO -d VIP --dport VPORT`` (port-0 services: any port), and one per NAT
  real server matching its replies ``-p PROTO -s RIP --sport RPORT``; ICMP to a VIP and from a NAT
  real server as well, for the errors IPVS relays. They all go to ``PYLVS-Q``, which marks the
  packet NOTRACK and queues it. The raw table runs before conntrack, and NOTRACK keeps kernel
  conntrack from tracking (and later "fixing") flows that pylvs rewrites (reference/machine.md).
* ``mangle`` table, chain ``PYLVS-MARK``, appended to ``PREROUTING``: fwmark services, queued by
  ``-m mark --mark M``. Marks are normally set by the administrator's own mangle ``PREROUTING``
  rules, which run after the raw table; so fwmark traffic cannot be NOTRACKed and its rules must
  come after the marking rules (pylvs appends its jump).

Every queue rule uses ``--queue-bypass``: when no process listens on the queue (pylvsd is not
running, or was killed), the kernel accepts the packets instead of dropping them (fail open).

The backend is a component of the daemon's loop: when the queue's socket is readable it handles
at most one batch of packets and returns, so control requests and timers interleave with packets.
A packet the engine or the send path fails on is dropped, counted, and logged at a limited rate.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any

from netfilterqueue import NetfilterQueue

from pylvs.core.control import ServiceInfo, ServiceSpec
from pylvs.core.engine import Engine, Verdict
from pylvs.core.ratelimit import RateLimit
from pylvs.core.service import AF_INET, FwdMethod
from pylvs.io import iptables
from pylvs.io.backend import BackendError, BackendStatus
from pylvs.io.l2 import Transmitter

__all__ = [
    "BATCH",
    "CHAIN",
    "MARK_CHAIN",
    "QUEUE_CHAIN",
    "NfqueueBackend",
    "build_ruleset",
    "remove_rules",
]

log = logging.getLogger("pylvs.nfqueue")

CHAIN = "PYLVS"
QUEUE_CHAIN = "PYLVS-Q"
MARK_CHAIN = "PYLVS-MARK"
# Packets handled per turn of the daemon's loop.
BATCH = 256

_PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}
_MAX_PACKET = 0xFFFF
# Packets the kernel may hold for pylvs before it drops (or, with bypass, accepts) new ones.
_QUEUE_LEN = 16384
_RCVBUF = 32 * 1024 * 1024
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def _queue_target(queue_num: int, bypass: bool) -> str:
    return f"-j NFQUEUE --queue-num {queue_num}" + (" --queue-bypass" if bypass else "")


def build_ruleset(services: Iterable[ServiceInfo], queue_num: int, bypass: bool) -> str:
    """The ``iptables-restore --noflush`` input that makes the pylvs chains match ``services``.

    Declaring a chain in iptables-restore flushes it, so applying the result replaces the previous
    rules in one transaction.
    """
    raw = [
        "*raw",
        f":{CHAIN} - [0:0]",
        f":{QUEUE_CHAIN} - [0:0]",
        f"-A {QUEUE_CHAIN} -j CT --notrack",
        f"-A {QUEUE_CHAIN} {_queue_target(queue_num, bypass)}",
    ]
    mangle = ["*mangle", f":{MARK_CHAIN} - [0:0]"]
    seen: set[str] = set()

    def add(lines: list[str], rule: str) -> None:
        if rule not in seen:
            seen.add(rule)
            lines.append(rule)

    services = list(services)
    for svc in services:
        if svc.af != AF_INET:
            continue
        if svc.fwmark:
            rule = f"-A {MARK_CHAIN} -m mark --mark {svc.fwmark:#x} "
            add(mangle, rule + _queue_target(queue_num, bypass))
            continue
        proto = _PROTO_NAMES.get(svc.protocol)
        if proto is None:
            continue
        port = f" --dport {svc.port}" if svc.port else ""
        add(raw, f"-A {CHAIN} -d {svc.addr}/32 -p {proto}{port} -j {QUEUE_CHAIN}")
        add(raw, f"-A {CHAIN} -d {svc.addr}/32 -p icmp -j {QUEUE_CHAIN}")
    for svc in services:
        if svc.af != AF_INET:
            continue
        for dest in svc.dests:
            if dest.fwd != FwdMethod.MASQ or dest.af != AF_INET:
                continue
            # Replies of NAT connections come from RIP:rport (rport = vport when 0) and go to a
            # client; what the real server sends to the director itself (the health checks'
            # answers, ping replies) is not a reply to forward and stays out of the queue.
            rport = dest.port or svc.port
            proto = _PROTO_NAMES.get(svc.protocol)
            sport = f" --sport {rport}" if rport else ""
            for name in ("tcp", "udp") if svc.fwmark or proto is None else (proto,):
                match = f"-s {dest.addr}/32 -p {name}{sport} {iptables.NOT_LOCAL}"
                add(raw, f"-A {CHAIN} {match} -j {QUEUE_CHAIN}")
            add(raw, f"-A {CHAIN} -s {dest.addr}/32 -p icmp {iptables.NOT_LOCAL} -j {QUEUE_CHAIN}")
    return "\n".join([*raw, "COMMIT", *mangle, "COMMIT", ""])


def _install_jumps(ifaces: Sequence[str]) -> None:
    # Our chains must exist before PREROUTING can jump to them.
    iptables.restore(build_ruleset([], 0, True))
    for match in [["-i", name] for name in ifaces] or [[]]:
        iptables.ensure_jump("raw", match, CHAIN, first=True)
        # After the administrator's own marking rules (see the module docstring).
        iptables.ensure_jump("mangle", match, MARK_CHAIN, first=False)


def remove_rules() -> bool:
    """Remove every pylvs chain and every jump to it (also leftovers of a killed daemon).

    Returns True if anything was removed.
    """
    removed = iptables.remove_chains("raw", (CHAIN, QUEUE_CHAIN))
    return iptables.remove_chains("mangle", (MARK_CHAIN,)) or removed


class _Budget:
    """A socket-like object for ``NetfilterQueue.run_socket``: at most ``left`` receives, then
    EAGAIN, so one call handles a bounded batch and returns to the caller's loop."""

    __slots__ = ("left", "sock_recv")

    def __init__(self, sock: socket.socket, left: int) -> None:
        self.sock_recv = sock.recv
        self.left = left

    def recv(self, size: int) -> bytes:
        # Called once per queued packet: the socket's bound method is looked up once.
        if self.left <= 0:
            raise BlockingIOError(errno.EAGAIN, "budget used")
        self.left -= 1
        return self.sock_recv(size)


# Verdicts as module constants: an enum member lookup per packet costs about 0.1 us.
_ACCEPT = Verdict.ACCEPT
_REWRITE = Verdict.REWRITE
_DROP = Verdict.DROP
_ROUTE = Verdict.ROUTE


class NfqueueBackend:
    """Queue -> :meth:`Engine.handle` -> verdict / transmit."""

    name = "nfqueue"
    kernel_forwards = True

    def __init__(
        self,
        engine: Engine,
        queue_num: int = 0,
        bypass: bool = True,
        ifaces: Sequence[str] = (),
    ) -> None:
        self.engine = engine
        self.queue_num = queue_num
        self.bypass = bypass
        self.ifaces = tuple(ifaces)
        self.tx: Transmitter | None = None
        self._nfq: Any = None
        self._sock: socket.socket | None = None
        self._rules_installed = False
        self.handled = 0
        self.failures = 0
        self._failure_log = RateLimit()
        # The time of the current batch: one clock read per batch instead of one per packet
        # (a batch lasts a few milliseconds; connection timeouts are seconds).
        self._now = 0.0
        # Packet marks are read only while a fwmark service exists (one call less per packet).
        self._marks = False

    def open(self, close_in_children: Sequence[int] = ()) -> None:
        """Bind the queue, open the transmit sockets and install the (empty) chains."""
        nfq = NetfilterQueue()
        try:
            nfq.bind(self.queue_num, self._on_packet, max_len=_QUEUE_LEN, range=_MAX_PACKET)
        except OSError as exc:
            raise BackendError(
                f"cannot bind NFQUEUE {self.queue_num} ({exc}); is another pylvsd or NFQUEUE "
                "user bound to it, and does this kernel have nfnetlink_queue?"
            ) from None
        self._nfq = nfq
        self._sock = socket.fromfd(nfq.get_fd(), socket.AF_NETLINK, socket.SOCK_RAW)
        self._sock.setblocking(False)
        # The kernel delivers each queued packet as a netlink message; with the default receive
        # buffer (about 200 KiB) a pause of a few milliseconds in the loop overflows it and the
        # kernel drops packets (ENOBUFS). Root may raise it past rmem_max with SO_RCVBUFFORCE.
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
        self.tx = Transmitter()
        try:
            _install_jumps(self.ifaces)
        except iptables.IptablesError as exc:
            remove_rules()
            raise BackendError(str(exc)) from None
        self._rules_installed = True

    def check_service(self, spec: ServiceSpec, op: str) -> None:
        return None  # NFQUEUE serves everything the engine does

    def set_services(self, services: Sequence[ServiceInfo]) -> None:
        """Make the queue rules match the configured services and NAT real servers."""
        try:
            iptables.restore(build_ruleset(services, self.queue_num, self.bypass))
        except iptables.IptablesError as exc:
            raise BackendError(str(exc)) from None
        self._marks = any(svc.fwmark for svc in services)

    def prepare_dest(self, addr: int) -> None:
        """A DR real server was added: resolve its MAC now rather than on its first packet."""
        if self.tx is not None:
            self.tx.prepare(addr)

    def forget_hops(self) -> None:
        if self.tx is not None:
            self.tx.hops.forget()

    # -- Component -----------------------------------------------------------------------------

    def watch(self) -> Sequence[tuple[int, int]]:
        return () if self._sock is None else ((self._sock.fileno(), selectors.EVENT_READ),)

    def deadline(self) -> float | None:
        return None

    def ready(self, fd: int, events: int, now: float) -> None:
        self.process(BATCH)

    def due(self, now: float) -> None:
        return None

    def process(self, budget: int = BATCH) -> int:
        """Handle up to ``budget`` queued packets; returns how many netlink messages were read."""
        assert self._sock is not None
        self._now = time.monotonic()
        batch = _Budget(self._sock, budget)
        self._nfq.run_socket(batch)
        return budget - batch.left

    def _on_packet(self, pkt: Any) -> None:
        # Once per packet: NAT's verdict first, one tuple unpack instead of attribute reads.
        try:
            action = self.engine.handle(
                pkt.get_payload(), self._now, pkt.get_mark() if self._marks else 0
            )
        except Exception:
            # A bug must not take the data plane down: drop the packet, keep serving.
            self._failed()
            pkt.drop()
            return
        self.handled += 1
        verdict, packet, next_hop = action
        if verdict == _REWRITE:
            assert packet is not None
            pkt.set_payload(bytes(packet))
            pkt.accept()
        elif verdict == _ACCEPT:
            pkt.accept()
        elif verdict == _DROP:
            pkt.drop()
        else:
            pkt.drop()
            assert packet is not None and self.tx is not None
            if verdict == _ROUTE:
                self.tx.send_frame(packet, next_hop)
            else:
                self.tx.send_ip(packet, next_hop)

    def _failed(self) -> None:
        """Count a packet the engine failed on; log it at a limited rate (a bug hit by every
        packet would otherwise write the log at the packet rate)."""
        self.failures += 1
        if self._failure_log.allow(self._now):
            log.exception("engine failed on a packet (%d so far); dropped", self.failures)

    def backend_status(self) -> BackendStatus:
        tx = self.tx
        status = BackendStatus(self.name, handled=self.handled, failures=self.failures)
        status.details = {"queue_num": self.queue_num, "queue_bypass": self.bypass}
        if tx is not None:
            status.sent = tx.sent_frames + tx.sent_packets
            status.dropped_unresolved = tx.hops.unresolved
            status.dropped_no_route = tx.hops.no_route
            status.send_errors = tx.errors
            status.details.update(sent_frames=tx.sent_frames, sent_packets=tx.sent_packets)
        return status

    def status(self) -> dict[str, Any]:
        return self.backend_status().as_dict()

    def close(self, keep_rules: bool = False) -> None:
        """Unbind the queue and remove the rules (``keep_rules``: leave them in place)."""
        if self._rules_installed and not keep_rules:
            remove_rules()
            self._rules_installed = False
        if self._nfq is not None:
            self._nfq.unbind()
            self._nfq = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.tx is not None:
            self.tx.close()
            self.tx = None
