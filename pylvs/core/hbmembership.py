"""Who is alive in a heartbeat cluster, and over which media: heartbeat's node and link status.

Pure code: every call takes the time (monotonic seconds) and returns what changed, so tests step
it with a fake clock and replay real captures. The sockets and timers around it belong to the
daemon.

What it follows (heartbeat 3.0.6, ``heartbeat.c``):

* A node's status is what its latest ``t=status`` message said (``init``, ``up``, ``active``,
  ...), until no status message has come from it on any medium for its deadtime: then it is
  ``dead``. Only status messages count (``check_for_timeouts``), and the deadtime is the one the
  node advertises in its ``dt`` field (heartbeat adds 2 s to it for a node's first 5 s), ha.cf's
  ``deadtime`` until it has said one. Until a node has been heard once, ``initdead`` (counted
  from the start) stands in. A status that arrives more than ``warntime`` after the previous one
  is reported as a late heartbeat.
* Each (node, medium) pair is a link, ``up`` while status messages arrive on it and ``dead``
  after the node's deadtime without any: one lost medium of two is a dead link, not a dead node.
* Every message carries the sender's generation (``hg``, raised at each start of the node) and a
  sequence number (``seq``). An older generation is a replay from an earlier life of the node and
  is refused; a newer one means the node restarted; within a generation a sequence number already
  seen (the same message on a second medium, or a replay) is a duplicate, and one more than
  ``SEQ_WINDOW`` behind the highest is refused as stale. Duplicates still prove the link alive.

The node states and what moves them are the table ``NODE_TRANSITIONS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "DEAD",
    "NEVER",
    "NODE_TRANSITIONS",
    "SEQ_WINDOW",
    "Heard",
    "LateHeartbeat",
    "LinkStatus",
    "Membership",
    "NodeRestarted",
    "NodeStatus",
    "PartitionHealed",
    "Timing",
]

NEVER = "never"  # not heard since this node started (not a status heartbeat sends)
DEAD = "dead"
# How far behind the highest sequence number a message may be and still be taken (heartbeat
# keeps a window of this order for retransmissions: hb_rexmit.c).
SEQ_WINDOW = 100

# (state, event) -> next state; "reported" is the status the message carried.
NODE_TRANSITIONS: dict[tuple[str, str], str] = {
    (NEVER, "heard"): "reported",
    (NEVER, "timeout"): DEAD,
    ("alive", "heard"): "reported",
    ("alive", "timeout"): DEAD,
    (DEAD, "heard"): "reported",
    (DEAD, "timeout"): DEAD,
}


@dataclass(frozen=True)
class Timing:
    """ha.cf's ``keepalive``, ``deadtime``, ``warntime`` and ``initdead``, in seconds."""

    keepalive: float = 1.0
    deadtime: float = 30.0
    warntime: float = 15.0
    initdead: float = 60.0


@dataclass(frozen=True)
class NodeStatus:
    """A node's status changed (heartbeat logs ``node %s: is dead`` and ``status update``)."""

    node: str
    old: str
    new: str


@dataclass(frozen=True)
class LinkStatus:
    """A link changed: heartbeat logs ``Link node:medium up.`` / ``Link node:medium dead.``"""

    node: str
    medium: str
    new: str


@dataclass(frozen=True)
class LateHeartbeat:
    """``Late heartbeat: Node %s: interval %ld ms``."""

    node: str
    interval_ms: int


@dataclass(frozen=True)
class PartitionHealed:
    """A node declared dead speaks again without having restarted (same generation): the
    cluster was partitioned (heartbeat: ``Cluster node %s returning after partition.``)."""

    node: str


@dataclass(frozen=True)
class NodeRestarted:
    """A message of a newer generation: the node started again since we last heard it."""

    node: str
    generation: int


Event = object


@dataclass(frozen=True)
class Heard:
    """What :meth:`Membership.heard` decided about one authentic message."""

    accepted: bool  # False: a duplicate or a replay; the caller must not act on it again
    reason: str  # why it was refused ("" when accepted)
    events: tuple[Event, ...]


@dataclass
class _Node:
    name: str
    state: str = NEVER
    last: float = 0.0  # when its last status message came
    deadtime: float | None = None  # as the node advertises it (dt), seconds
    links: dict[str, float] = field(default_factory=dict)  # medium -> last status on it
    link_up: dict[str, bool] = field(default_factory=dict)
    generation: int | None = None
    max_seq: int = 0
    seen: set[int] = field(default_factory=set)


class Membership:
    """The status of the other nodes of the cluster as this node sees them."""

    def __init__(self, me: str, nodes: list[str], timing: Timing, now: float) -> None:
        self.me = me
        self.timing = timing
        self.started = now
        self.nodes: dict[str, _Node] = {n: _Node(n) for n in nodes if n != me}
        self.refused = {"unknown node": 0, "old generation": 0, "duplicate": 0, "stale": 0}

    # -- messages ---------------------------------------------------------------------------

    def heard(
        self,
        node: str,
        medium: str,
        now: float,
        generation: int | None = None,
        seq: int | None = None,
        status: str | None = None,
        deadtime: float | None = None,
    ) -> Heard:
        """An authentic message from ``node`` arrived on ``medium`` (its signature already
        checked); ``status`` is its ``st`` field and ``deadtime`` its ``dt`` (in seconds) for
        ``t=status`` messages, None for the others."""
        peer = self.nodes.get(node)
        if peer is None:
            return self._refuse("unknown node", f"{node} is not a node of this cluster")
        events: list[Event] = []
        same_life = generation is not None and generation == peer.generation
        if generation is not None:
            if peer.generation is not None and generation < peer.generation:
                return self._refuse("old generation", f"generation {generation:x} is old")
            if peer.generation is not None and generation > peer.generation:
                events.append(NodeRestarted(node, generation))
            if peer.generation != generation:
                peer.generation, peer.max_seq, peer.seen = generation, 0, set()
        if status is not None:
            # Any authentic copy of a status keeps its link alive, duplicates included.
            if not peer.link_up.get(medium):
                peer.link_up[medium] = True
                events.append(LinkStatus(node, medium, "up"))
            peer.links[medium] = now
        duplicate = ""
        if seq is not None:
            if seq <= peer.max_seq - SEQ_WINDOW:
                duplicate = "stale"
            elif seq in peer.seen:
                duplicate = "duplicate"
            else:
                peer.seen.add(seq)
                peer.max_seq = max(peer.max_seq, seq)
                if len(peer.seen) > 2 * SEQ_WINDOW:
                    floor = peer.max_seq - SEQ_WINDOW
                    peer.seen = {s for s in peer.seen if s > floor}
        if duplicate:
            self.refused[duplicate] += 1
            return Heard(False, duplicate, tuple(events))
        if status is None:
            return Heard(True, "", tuple(events))
        if peer.state == DEAD and same_life:
            events.append(PartitionHealed(node))
        if peer.state != NEVER and peer.state != DEAD:
            interval = now - peer.last
            if interval > self.timing.warntime:
                events.append(LateHeartbeat(node, int(interval * 1000)))
        peer.last = now
        if deadtime is not None:
            peer.deadtime = deadtime
        events.extend(self._move(peer, "heard", status))
        return Heard(True, "", tuple(events))

    def _refuse(self, kind: str, reason: str) -> Heard:
        self.refused[kind] += 1
        return Heard(False, reason, ())

    def _move(self, peer: _Node, event: str, reported: str = "") -> list[Event]:
        key = peer.state if peer.state in (NEVER, DEAD) else "alive"
        target = NODE_TRANSITIONS[(key, event)]
        new = reported if target == "reported" else target
        if new == peer.state:
            return []
        old, peer.state = peer.state, new
        return [NodeStatus(peer.name, old, new)]

    # -- time -------------------------------------------------------------------------------

    def _deadtime(self, peer: _Node) -> float:
        return peer.deadtime if peer.deadtime is not None else self.timing.deadtime

    def _node_deadline(self, peer: _Node) -> float:
        if peer.state == NEVER:
            return self.started + self.timing.initdead
        return peer.last + self._deadtime(peer)

    def tick(self, now: float) -> list[Event]:
        """Nodes and links whose time ran out."""
        events: list[Event] = []
        for peer in self.nodes.values():
            for medium, last in peer.links.items():
                if peer.link_up.get(medium) and now >= last + self._deadtime(peer):
                    peer.link_up[medium] = False
                    events.append(LinkStatus(peer.name, medium, DEAD))
            if peer.state != DEAD and now >= self._node_deadline(peer):
                events.extend(self._move(peer, "timeout"))
        return events

    def deadline(self) -> float | None:
        """When :meth:`tick` next has something to say."""
        times = []
        for peer in self.nodes.values():
            if peer.state != DEAD:
                times.append(self._node_deadline(peer))
            for medium, last in peer.links.items():
                if peer.link_up.get(medium):
                    times.append(last + self._deadtime(peer))
        return min(times) if times else None

    # -- what status listings show ------------------------------------------------------------

    def status(self, node: str) -> str:
        """``cl_status nodestatus``-like: the node's status (``dead`` before it is heard)."""
        peer = self.nodes.get(node)
        if peer is None:
            return "unknown"
        return DEAD if peer.state == NEVER else peer.state

    def advertised_deadtime(self, node: str) -> float | None:
        """The deadtime ``node`` said in its last status (``dt``), seconds."""
        peer = self.nodes.get(node)
        return peer.deadtime if peer is not None else None

    def link(self, node: str, medium: str) -> str:
        peer = self.nodes.get(node)
        return "up" if peer is not None and peer.link_up.get(medium) else DEAD
