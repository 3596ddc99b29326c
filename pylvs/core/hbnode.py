"""What one heartbeat node puts in its messages, and when it acknowledges the others'.

Pure: the caller gives the wall-clock time and the load average, and gets the fields that
:func:`pylvs.core.hbmsg.encode` signs. Field order is heartbeat's (``add_control_msg_fields``):
the message's own fields as given (``dest`` among them where heartbeat puts it), ``destuuid``
when there is a ``dest`` whose UUID is known, then ``src``, ``srcuuid``, ``seq``, ``hg``, ``ts``,
``ld``, ``ttl``. ``NS_`` messages (acknowledgements, retransmission requests) carry no ``seq`` and
no ``ld`` and are not retransmitted. See docs/heartbeat-protocol.md.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pylvs.core.hbmsg import BINARY, STRING

__all__ = ["TTL_HOPFUDGE", "AckTracker", "Outbox"]

TTL_HOPFUDGE = 1  # ha.cf hopfudge default
Field = tuple[str, int, bytes]


def _s(name: str, value: str) -> Field:
    return (name, STRING, value.encode())


class Outbox:
    """This node's identity and sequence numbers, turned into message fields."""

    def __init__(self, me: str, uuid: bytes, generation: int, n_nodes: int) -> None:
        if len(uuid) != 16:
            raise ValueError("a node UUID has 16 bytes")
        self.me = me
        self.uuid = uuid
        self.generation = generation
        self.ttl = TTL_HOPFUDGE + n_nodes
        self.seq = 0  # the last one used
        self.uuids: dict[str, bytes] = {}  # other nodes' UUIDs, as their messages tell them

    def message(
        self,
        own: Sequence[tuple[str, str]],
        wall: float,
        load: str = "",
        dest: str | None = None,
    ) -> list[Field]:
        """A message of ``own`` fields (``t`` among them, in heartbeat's order) from this node."""
        fields = [_s(name, value) for name, value in own]
        kind = dict(own).get("t", "")
        if dest is not None and dest in self.uuids:
            fields.append(("destuuid", BINARY, self.uuids[dest]))
        fields += [_s("src", self.me), ("srcuuid", BINARY, self.uuid)]
        if not kind.startswith("NS_"):
            self.seq += 1
            fields.append(_s("seq", f"{self.seq:x}"))
        fields += [_s("hg", f"{self.generation:x}"), _s("ts", f"{int(wall):x}")]
        if not kind.startswith("NS_"):
            fields.append(_s("ld", load))
        fields.append(_s("ttl", str(self.ttl)))
        return fields

    def status(self, st: str, deadtime_ms: int, wall: float, load: str = "") -> list[Field]:
        """``t=status``: the heartbeat itself."""
        own = [("t", "status"), ("st", st), ("dt", f"{deadtime_ms:x}"), ("protocol", "1")]
        return self.message(own, wall, load)

    def ack(self, dest: str, ackseq: int, wall: float) -> list[Field]:
        """``t=NS_ackmsg``: everything from ``dest`` up to ``ackseq`` has arrived."""
        own = [("t", "NS_ackmsg"), ("dest", dest), ("ackseq", f"{ackseq:x}")]
        return self.message(own, wall, dest=dest)

    def repnodes(self, dest: str, nodes: Sequence[str], wall: float, load: str) -> list[Field]:
        """The answer to ``t=reqnodes``: the node list (each name followed by a space)."""
        own = [
            ("dest", dest),
            ("t", "repnodes"),
            ("nodelist", "".join(f"{n} " for n in nodes)),
            ("delnodelist", " "),
        ]
        return self.message(own, wall, load, dest=dest)


class AckTracker:
    """When to acknowledge a node's messages: heartbeat acknowledges an in-sequence message whose
    ``seq % 10`` is a trigger it picked at random for that node (about one in ten), so the
    sender's window moves and its clients are not paused (hb_rexmit.c, ``send_ack_if_needed``).
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.trigger: dict[str, int] = {}
        self.contiguous: dict[str, int] = {}  # highest seq with nothing missing below it

    def received(self, node: str, seq: int, restarted: bool = False) -> int | None:
        """A message ``seq`` from ``node`` was taken; the seq to acknowledge now, or None."""
        trigger = self.trigger.setdefault(node, self.rng.randrange(10))
        last = self.contiguous.get(node)
        if restarted or last is None or seq == last + 1:
            self.contiguous[node] = seq
        elif seq > last + 1:
            return None  # a gap: acknowledged once it is filled
        else:
            return None  # old or duplicate
        return seq if seq % 10 == trigger else None
