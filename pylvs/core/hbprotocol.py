"""One heartbeat 3.0.6 node, sans I/O: datagrams and time in, datagrams, resource jobs and log
lines out.

It ties together the pieces of the protocol (docs/heartbeat-protocol.md):

* :class:`pylvs.core.hbnode.Outbox` numbers and fills this node's messages, signed with
  :func:`pylvs.core.hbmsg.encode`;
* :class:`pylvs.core.hbmembership.Membership` decides who is alive on which medium, and which
  messages are duplicates or replays;
* :class:`pylvs.core.hbnode.AckTracker`, :class:`pylvs.core.hbrexmit.History` and
  :class:`pylvs.core.hbrexmit.GapTracker` acknowledge, keep and ask again for messages;
* :class:`pylvs.core.hbresource.ResourceManager` decides who holds which resource group.

What it does itself is heartbeat.c's node life: ``init`` then ``up`` status messages, one every
``keepalive`` (``dt`` 2 s longer for the first 5 s), communications up once every node was
heard or declared dead (``check_comm_isup``), the ``reqnodes``/``repnodes`` exchange, ``active``
(``comm_now_up``), and handing each message to the part that wants it. Its own messages come
back to it, as heartbeat's do.

The caller (the daemon's heartbeat component) owns the sockets and the clock: it sends each
:class:`Transmit` on every medium, runs each :class:`pylvs.core.hbresource.Job` and reports it
with :meth:`HeartbeatNode.job_done`, and calls :meth:`HeartbeatNode.tick` at
:meth:`HeartbeatNode.deadline`.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from pylvs.core import hbmsg, hbrexmit
from pylvs.core.hbmembership import (
    DEAD,
    LateHeartbeat,
    LinkStatus,
    Membership,
    NodeRestarted,
    NodeStatus,
    PartitionHealed,
    Timing,
)
from pylvs.core.hbnode import AckTracker, Outbox
from pylvs.core.hbping import PingEvent, PingTracker
from pylvs.core.hbresource import NONE, Log, ResourceManager, Send

__all__ = ["HeartbeatNode", "NodeConfig", "Probe", "Stopped", "Transmit"]

INITIAL_EXTRA_DEADTIME = 2.0  # heartbeat advertises deadtime + 2 s ...
INITIAL_PERIOD = 5.0  # ... for its first 5 s
REQNODES_INTERVAL = 1.0  # send_reqnodes_msg: again every second until answered
PARTITION_RESTART_DELAY = 2.0  # should_drop_message: CauseShutdownRestart two seconds later
PING_COUNT = "pylvs-ping"  # pylvs's message: how many ping nodes the sender reaches


@dataclass(frozen=True)
class Transmit:
    """A signed datagram to send on every medium."""

    data: bytes
    kind: str  # its ``t``, for counters and logs


@dataclass(frozen=True)
class Stopped:
    """The graceful stop is complete (our own ``shutdone`` came back): the node may exit, or,
    with ``restart``, start again with a new generation (after a healed partition)."""

    restart: bool = False


@dataclass(frozen=True)
class Probe:
    """Send an ICMP echo request to a ping node's host."""

    host: str


@dataclass(frozen=True)
class NodeConfig:
    """What the protocol needs from ha.cf, authkeys and haresources."""

    me: str
    nodes: tuple[str, ...]  # every ``node`` of ha.cf, this one included, lower-cased
    timing: Timing
    key: hbmsg.AuthKey  # the key authkeys' ``auth N`` selects, used to sign
    keys: dict[int, hbmsg.AuthKey]  # every key, to check what arrives
    groups: tuple[tuple[str, str], ...] = ()  # haresources: (group key, preferred node)
    auto_failback: str = "legacy"
    ping_nodes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # ping / ping_group: (name, hosts)
    deadping: float = 30.0


@dataclass
class _Peer:
    anypacketsyet: bool = False
    has_resources: bool = False


@dataclass
class HeartbeatNode:
    cfg: NodeConfig
    uuid: bytes
    generation: int
    rng: random.Random = field(default_factory=random.Random)
    load: str = ""  # the ``ld`` field (heartbeat sends /proc/loadavg; never read)

    def __post_init__(self) -> None:
        cfg = self.cfg
        peers = [n for n in cfg.nodes if n != cfg.me]
        if len(peers) != 1:
            raise ValueError(
                "pylvs's heartbeat resource manager is release 1's: a cluster of two nodes"
            )
        self.peer = peers[0]
        self.outbox = Outbox(cfg.me, self.uuid, self.generation, len(cfg.nodes))
        self.membership: Membership | None = None
        self.acks = AckTracker(self.rng)
        self.history = hbrexmit.History()
        self.gaps = hbrexmit.GapTracker(rng=self.rng)
        self.rm = ResourceManager(
            cfg.me,
            self.peer,
            cfg.groups,
            cfg.auto_failback,
            peer_active=lambda: self.node_status(self.peer) == "active",
            may_take_over=self._may_take_over,
        )
        self.ping = PingTracker(cfg.ping_nodes, cfg.deadping)
        self.peer_ping_up: int | None = None  # what the peer last said it reaches
        self._ping_standby_done = False
        self.takeover_pending = False  # a dead peer's resources wait for a fresh echo reply
        self._now = 0.0
        self.restart_at: float | None = None
        self.restart_after_shutdown = False
        self.peers = {self.peer: _Peer()}
        self.status = "init"
        self.started = 0.0
        self.next_status = 0.0
        self.initial_dt = True
        self.comm_state = "starting"  # "linksup" after check_comm_isup, "up" after comm_now_up
        self.reqnodes_at: float | None = None
        self.counters: Counter[str] = Counter()
        self.acked: dict[str, int] = {}  # the highest ackseq each peer sent us
        self.log: deque[tuple[float, str, str]] = deque(maxlen=200)
        self._local: deque[tuple[dict[str, str], bool]] = deque()
        self._out: list[object] = []
        self.stopped = False
        self.wall = 0.0  # the wall-clock time of the current input, for the ts field

    # -- what the node shows ---------------------------------------------------------------

    def node_status(self, node: str) -> str:
        """``cl_status nodestatus``: this node's own status, or a peer's as last heard."""
        if node == self.cfg.me:
            return self.status
        return self.membership.status(node) if self.membership is not None else DEAD

    def link_status(self, node: str, medium: str) -> str:
        return self.membership.link(node, medium) if self.membership is not None else DEAD

    def deadtime_advertised(self) -> float:
        extra = INITIAL_EXTRA_DEADTIME if self.initial_dt else 0.0
        return self.cfg.timing.deadtime + extra

    # -- inputs -----------------------------------------------------------------------------

    def start(self, now: float, wall: float) -> list[object]:
        """The node starts: ``st=init``, then ``up`` at once."""
        self.wall = wall
        self.started = now
        self.ping.started = now
        self.membership = Membership(self.cfg.me, list(self.cfg.nodes), self.cfg.timing, now)
        self._send_status(now, wall)
        self.status = "up"
        self._send_status(now, wall)
        return self._flush(now, wall)

    def receive(self, data: bytes, medium: str, now: float, wall: float) -> list[object]:
        """A datagram arrived on ``medium`` (an interface name, heartbeat's link name)."""
        self.wall = wall
        if self.membership is None or self.stopped:
            return []
        try:
            msg = hbmsg.decode(data, self.cfg.keys)
        except hbmsg.HBMessageError as exc:
            self._refuse("bad message", str(exc), now)
            return self._flush(now, wall)
        src = msg.get("src")
        kind = msg.get("t")
        if not src or not kind:
            self._refuse("bad message", "no src or t field", now)
            return self._flush(now, wall)
        if src == self.cfg.me:
            return []  # our own broadcast or multicast copy: handled when we sent it
        ts = msg.hex("ts")
        if not ts:
            self._refuse("bad message", f"message from {src} without a timestamp", now)
            return self._flush(now, wall)
        # Acknowledgements and retransmission requests skip sequence tracking in heartbeat
        # (they never reach should_drop_message): their generation must not count as the
        # node's, or a node's first status after being declared dead would look like a
        # healed partition.
        generation = None if kind.startswith("NS_") else msg.hex("hg")
        seq = msg.hex("seq")
        if not kind.startswith("NS_") and seq is None:
            self._refuse("bad message", f"{kind} from {src} without seq", now)
            return self._flush(now, wall)
        status = deadtime = None
        if kind == "status":
            status = msg.get("st") or "unknown"
            dt = msg.hex("dt")
            deadtime = dt / 1000.0 if dt else None
        heard = self.membership.heard(src, medium, now, generation, seq, status, deadtime)
        if heard.reason and not heard.accepted and heard.reason not in ("duplicate", "stale"):
            self._refuse("refused", f"{kind} from {src}: {heard.reason}", now)
        peer = self.peers.get(src)
        uuid = msg.raw("srcuuid")
        if peer is not None and uuid is not None:
            self.outbox.uuids[src] = uuid
        restarted = any(isinstance(e, NodeRestarted) for e in heard.events)
        if peer is not None and (heard.accepted or heard.reason in ("duplicate", "stale")):
            peer.anypacketsyet = True
        self._events(heard.events, now)
        if not heard.accepted:
            if heard.reason in ("duplicate", "stale"):
                self.counters[heard.reason] += 1
            return self._flush(now, wall)
        self.counters["accepted"] += 1
        if seq is not None:
            self.gaps.received(src, seq, now, restarted=restarted)
            ackseq = self.acks.received(src, seq, restarted)
            if ackseq is not None:
                self._transmit(self.outbox.ack(src, ackseq, self.wall), "NS_ackmsg")
        if self._for_me(msg):
            self._dispatch(msg, kind, src, now, wall)
        self._check_comm(now, wall)
        return self._flush(now, wall)

    def tick(self, now: float, wall: float) -> list[object]:
        """Timers: status messages, deaths, the node list request, retransmissions, resources."""
        self.wall = wall
        if self.membership is None or self.stopped:
            return []
        if self.initial_dt and now >= self.started + INITIAL_PERIOD:
            self.initial_dt = False
            self._send_status(now, wall)
        if now >= self.next_status:
            self._send_status(now, wall)
        self._events(self.membership.tick(now), now)
        self._ping_events(self.ping.tick(now), now)
        if self.restart_at is not None and now >= self.restart_at:
            self.restart_at = None
            self.restart_after_shutdown = True
            self._note(now, "info", "Giving up resources and restarting (healed partition).")
            self._actions(self.rm.shutdown(now), now)
        self._check_comm(now, wall)
        if self.reqnodes_at is not None and now >= self.reqnodes_at:
            self._send_reqnodes(now, wall)
        for node, first, last in self.gaps.due(now):
            self._transmit(
                hbrexmit.rexmit_request(self.outbox, node, first, last, wall), "NS_rexmit"
            )
        self._actions(self.rm.tick(now), now)
        return self._flush(now, wall)

    def deadline(self) -> float | None:
        if self.membership is None or self.stopped:
            return None
        times = [self.next_status]
        if self.initial_dt:
            times.append(self.started + INITIAL_PERIOD)
        for t in (
            self.membership.deadline(),
            self.ping.deadline(),
            self.restart_at,
            self.reqnodes_at,
            self.gaps.deadline(),
            self.rm.deadline(),
        ):
            if t is not None:
                times.append(t)
        return min(times)

    def job_done(
        self, job_id: int, running_before: dict[str, bool], now: float, wall: float
    ) -> list[object]:
        """A :class:`~pylvs.core.hbresource.Job` finished; ``running_before`` per group key."""
        self.wall = wall
        self._actions(self.rm.job_done(job_id, running_before, now), now)
        return self._flush(now, wall)

    def standby(self, what: str, now: float, wall: float) -> list[object]:
        """``hb_standby``."""
        self.wall = wall
        self._actions(self.rm.standby(what, now), now)
        return self._flush(now, wall)

    def takeover(self, what: str, now: float, wall: float) -> list[object]:
        """``hb_takeover``."""
        self.wall = wall
        self._actions(self.rm.takeover(what, now), now)
        return self._flush(now, wall)

    def shutdown(self, now: float, wall: float) -> list[object]:
        """A graceful stop: give every group up, send ``shutdone``, then :class:`Stopped`."""
        self.wall = wall
        self._actions(self.rm.shutdown(now), now)
        return self._flush(now, wall)

    # -- the node's own life ---------------------------------------------------------------

    def _send_status(self, now: float, wall: float) -> None:
        dt_ms = round(self.deadtime_advertised() * 1000)
        self._transmit(self.outbox.status(self.status, dt_ms, self.wall, self.load), "status")
        self.next_status = now + self.cfg.timing.keepalive
        for host in self.ping.hosts():  # the ping plugin: an echo request every keepalive
            self._out.append(Probe(host))

    def _set_status(self, status: str, now: float, wall: float) -> None:
        """set_local_status(): a change is sent at once."""
        if status != self.status:
            self.status = status
            self._send_status(now, wall)

    def _check_comm(self, now: float, wall: float) -> None:
        """check_comm_isup(): every node heard from or declared dead."""
        if self.comm_state != "starting" or self.membership is None:
            return
        for name, peer in self.peers.items():
            if not peer.anypacketsyet and self.membership.nodes[name].state != DEAD:
                return
        self.comm_state = "linksup"
        self._send_reqnodes(now, wall)

    def _send_reqnodes(self, now: float, wall: float) -> None:
        """send_reqnodes_msg(): ask a live peer for the node list, or go on alone."""
        assert self.membership is not None
        if self.comm_state == "up":
            self.reqnodes_at = None
            return
        if self.membership.status(self.peer) == DEAD:
            self.reqnodes_at = None
            self._comm_now_up(now, wall)
            return
        self._send([("t", "reqnodes"), ("dest", self.peer)], now, dest=self.peer)
        self.reqnodes_at = now + REQNODES_INTERVAL

    def _comm_now_up(self, now: float, wall: float) -> None:
        if self.comm_state == "up":
            return
        self.comm_state = "up"
        self.reqnodes_at = None
        self._note(now, "info", "Comm_now_up(): updating status to active")
        self._set_status("active", now, wall)
        peer_dead = self.membership is not None and self.membership.status(self.peer) == DEAD
        self._actions(self.rm.comm_up(now, peer_dead), now)
        self._send_ping_count(now)

    def _events(self, events: Sequence[object], now: float) -> None:
        for event in events:
            if isinstance(event, NodeStatus):
                if event.new == DEAD:
                    self._note(now, "warn", f"node {event.node}: is dead")
                    self._node_dead(event.node, now)
                else:
                    self._note(
                        now, "info", f"Status update for node {event.node}: status {event.new}"
                    )
                    if event.new == "active":
                        self._send_ping_count(now)
            elif isinstance(event, LinkStatus):
                self._note(now, "info", f"Link {event.node}:{event.medium} {event.new}.")
            elif isinstance(event, LateHeartbeat):
                self._note(
                    now,
                    "warn",
                    f"Late heartbeat: Node {event.node}: interval {event.interval_ms} ms",
                )
            elif isinstance(event, PartitionHealed):
                self._note(now, "crit", f"Cluster node {event.node} returning after partition.")
                self._note(now, "warn", "Deadtime value may be too small.")
                if self.restart_at is None and not self.rm.st.shutdown_in_progress:
                    self.restart_at = now + PARTITION_RESTART_DELAY
            elif isinstance(event, NodeRestarted):
                self._note(now, "info", f"Heartbeat restart on node {event.node}")
                peer = self.peers.get(event.node)
                if peer is not None:
                    peer.has_resources = True

    def _node_dead(self, node: str, now: float) -> None:
        """mark_node_dead()."""
        self._now = now
        peer = self.peers.get(node)
        if peer is None:
            return
        self._actions(self.rm.node_dead(now, peer.anypacketsyet, peer.has_resources), now)
        peer.anypacketsyet = False
        self.gaps.forget(node)

    # -- ping nodes (pylvs's partition guard) -------------------------------------------------

    def ping_reply(self, host: str, now: float, wall: float) -> list[object]:
        """An echo reply from ``host`` arrived."""
        self.wall = wall
        if self.membership is None or self.stopped:
            return []
        self._ping_events(self.ping.reply(host, now), now)
        if self.takeover_pending and self.comm_state == "up":
            assert self.membership is not None
            if self.membership.status(self.peer) == DEAD:
                # the network answers while the peer is still silent: take over now
                self._note(now, "info", f"ping node reachable again: taking over from {self.peer}")
                self._now = now
                peer = self.peers[self.peer]
                self._actions(self.rm.node_dead(now, peer.anypacketsyet, peer.has_resources), now)
            else:
                self.takeover_pending = False
        return self._flush(now, wall)

    def _ping_events(self, events: Sequence[PingEvent], now: float) -> None:
        if not events:
            return
        for event in events:
            if event.status == "dead":
                self._note(now, "warn", f"node {event.node}: is dead")
            else:
                self._note(now, "info", f"Status update for node {event.node}: status ping")
        self._ping_standby_done = False
        self._send_ping_count(now)
        self._ping_policy(now)

    def _send_ping_count(self, now: float) -> None:
        """Tell the peer how many ping nodes answer here: at each change, when communications
        come up and when the peer becomes active."""
        if self.ping.configured and self.comm_state == "up":
            self._send([("t", PING_COUNT), ("up", str(self.ping.up()))], now)

    def _may_take_over(self) -> bool:
        """pylvs's partition guard: with ping nodes, one must have answered within two
        keepalives (a ping node dies only after deadping, as late as the peer; a node cut off
        from everything must not count on the ping node's last word). A refusal is kept and
        tried again at the next echo reply."""
        if not self.ping.configured:
            return True
        last = self.ping.last_reply()
        fresh = last is not None and self._now - last <= 2 * self.cfg.timing.keepalive
        self.takeover_pending = not fresh
        return fresh

    def _ping_policy(self, now: float) -> None:
        """ipfail's rule: the node that reaches fewer ping nodes gives its resources away."""
        if not self.ping.configured or self.peer_ping_up is None or self._ping_standby_done:
            return
        if self.comm_state != "up" or self.node_status(self.peer) != "active":
            return
        mine = self.ping.up()
        if mine < self.peer_ping_up and self.rm.st.i_hold != NONE and self.rm.is_stable():
            self._ping_standby_done = True
            self._note(
                now,
                "info",
                f"{self.peer} reaches {self.peer_ping_up} ping nodes, this node {mine}: "
                "giving up resources",
            )
            self._actions(self.rm.standby("all", now), now)

    def _for_me(self, msg: hbmsg.HBMessage) -> bool:
        destuuid = msg.raw("destuuid")
        if destuuid is not None:
            return destuuid == self.uuid
        dest = msg.get("dest")
        return dest is None or dest == self.cfg.me

    def _dispatch(self, msg: hbmsg.HBMessage, kind: str, src: str, now: float, wall: float) -> None:
        if kind == "status":
            return
        if kind == "NS_ackmsg":
            ackseq = msg.hex("ackseq")
            if ackseq is not None:
                self.acked[src] = max(self.acked.get(src, 0), ackseq)
            return
        if kind == "NS_rexmit":
            request = hbrexmit.parse_rexmit(msg)
            if request is None:
                self._refuse("bad message", f"NS_rexmit from {src} with bad numbers", now)
                return
            first, last = request
            for answer in self.history.answer(first, last, now, self.acked.get(src, 0)):
                if isinstance(answer, hbrexmit.Resend):
                    self.counters["retransmitted"] += 1
                    self._out.append(Transmit(answer.data, "rexmit"))
                else:
                    fields = hbrexmit.nak(self.outbox, src, answer.seq, answer.info, wall)
                    self._transmit(fields, "NS_nak_rexmit")
            return
        if kind == "NS_nak_rexmit":
            nak = hbrexmit.parse_nak(msg)
            if nak is not None:
                self.gaps.nak_received(src, nak[0])
            return
        if kind == "reqnodes":
            # Our answer brings the asker's communications up, and heartbeat then counts the
            # active nodes at once (req_our_resources' upcount: alone, it takes its groups
            # without an ip-request). Our acknowledgement of its first messages may have been
            # all it heard from us: our status goes first, so that it counts us.
            self._send_status(now, wall)
            fields = self.outbox.repnodes(src, self.cfg.nodes, self.wall, self.load)
            self._transmit(fields, "repnodes")
            return
        if kind == "repnodes":
            self._comm_now_up(now, wall)
            return
        if kind == PING_COUNT:
            try:
                self.peer_ping_up = int(msg.get("up") or "")
            except ValueError:
                self._refuse("bad message", f"{PING_COUNT} from {src} without a count", now)
                return
            self._ping_policy(now)
            return
        self._actions(self.rm.message(msg.as_dict(), False, now), now)

    # -- actions ----------------------------------------------------------------------------

    def _transmit(self, fields: list[tuple[str, int, bytes]], kind: str) -> bytes:
        data = hbmsg.encode(fields, self.cfg.key)
        if not kind.startswith("NS_"):
            self.history.add(self.outbox.seq, data)
        self.counters[f"sent {kind}"] += 1
        self._out.append(Transmit(data, kind))
        return data

    def _send(self, own: Sequence[tuple[str, str]], now: float, dest: str | None = None) -> None:
        kind = dict(own).get("t", "")
        self._transmit(self.outbox.message(own, self.wall, self.load, dest=dest), kind)
        if kind not in ("status",) and not kind.startswith("NS_"):
            local = {name: value for name, value in own}
            local["src"] = self.cfg.me
            self._local.append((local, True))

    def _actions(self, actions: Sequence[object], now: float) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._send(action.fields, now, dest=action.dest)
            elif isinstance(action, Log):
                self._note(now, action.level, action.text)
            else:
                self._out.append(action)

    def _flush(self, now: float, wall: float) -> list[object]:
        """Hand our own messages back to us (they may cause more), then return every action."""
        while self._local:
            fields, from_me = self._local.popleft()
            if fields.get("t") in ("reqnodes", "repnodes"):
                continue
            self._actions(self.rm.message(fields, from_me, now), now)
        if self.rm.st.stopped and not self.stopped:
            self.stopped = True
            self._out.append(Stopped(self.restart_after_shutdown))
        out, self._out = self._out, []
        return out

    def _note(self, now: float, level: str, text: str) -> None:
        self.log.append((now, level, text))
        self._out.append(Log(level, text))

    def _refuse(self, counter: str, reason: str, now: float) -> None:
        self.counters[counter] += 1
        self._note(now, "warn", reason)
