"""Heartbeat's retransmissions: the history of sent messages, the gaps in each peer's sequence
numbers, and the ``NS_rexmit`` / ``NS_nak_rexmit`` messages between them.

Pure code in the style of :mod:`pylvs.core.hbmembership`: no sockets, no timers, no clock. Every
call that depends on time takes it (monotonic seconds) and what is to be sent is returned. What it
follows (heartbeat 3.0.6, ``heartbeat.c`` and ``hb_rexmit.c``):

* :class:`History` is ``msghist``: the last ``MAXMSGHIST`` (500) messages this node sent that
  carry a ``seq``, kept as the bytes that went out (``add2_xmit_hist``), so that a retransmission
  is the very same datagram, same ``seq`` and ``ts``. It answers a request as ``process_rexmit``
  does: the stored bytes again, or a NAK ``seqno too low`` / ``seqno not found``.
* :class:`GapTracker` is each node's ``struct seqtrack`` as ``should_drop_message`` keeps it: the
  sequence numbers missing from a peer and, for each, the retransmission timer of
  ``request_msg_rexmit`` / ``schedule_rexmit_request`` / ``send_rexmit_request``.
* :func:`rexmit_request` and :func:`nak` build the two messages with an
  :class:`pylvs.core.hbnode.Outbox`, fields in heartbeat's order; :func:`parse_rexmit` and
  :func:`parse_nak` read them.

See docs/heartbeat-protocol.md, "Acknowledgements and retransmissions".
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Union

from pylvs.core.hbmsg import HBMessage
from pylvs.core.hbnode import Outbox

__all__ = [
    "ACCEPT_REXMIT_REQ_MS",
    "DUPLICATE",
    "FILLED",
    "FLOWCONTROL_LIMIT",
    "GAP",
    "IN_SEQUENCE",
    "MAXMISSING",
    "MAXMSGHIST",
    "MAX_NAK_BATCH",
    "MAX_REXMIT_BATCH",
    "MAX_REXMIT_DELAY_MS",
    "OLD",
    "SEQNO_NOT_FOUND",
    "SEQNO_TOO_LOW",
    "STARTED_OVER",
    "T_NAKREXMIT",
    "T_REXMIT",
    "Answer",
    "GapTracker",
    "History",
    "Nak",
    "Resend",
    "nak",
    "parse_nak",
    "parse_rexmit",
    "rexmit_request",
]

T_REXMIT = "NS_rexmit"  # ha_msg.h
T_NAKREXMIT = "NS_nak_rexmit"  # ha_msg.h

# heartbeat.h: the transmit history, and how many missing numbers a node's seqtrack holds.
MAXMSGHIST = 500
MAXMISSING = MAXMSGHIST
# heartbeat.c: MAXMSGHIST/2. A gap wider than this is not asked for: the tracking starts over
# (should_drop_message, "lost a lot of packets!").
FLOWCONTROL_LIMIT = MAXMSGHIST // 2
# hb_rexmit.c ``max_rexmit_delay`` (ha.cf ``max_rexmit_delay``, default 250 ms): the first request
# for a missing message goes out at random 50..250 ms after the gap is seen, then one every 250 ms.
MAX_REXMIT_DELAY_MS = 250
# heartbeat.c: a message retransmitted less than REXMIT_MS - 10 ms ago is not sent again
# (process_rexmit, ``ACCEPT_REXMIT_REQ_MS``), and at most 50 are sent for one request
# (``MAX_REXMIT_BATCH``).
ACCEPT_REXMIT_REQ_MS = MAX_REXMIT_DELAY_MS - 10
MAX_REXMIT_BATCH = 50
# Ours, not heartbeat's: at most this many NAKs for one request. Heartbeat 3.0.6 asks for one
# message per request (firstseq == lastseq), so a real peer never reaches it; it only keeps a
# request for a huge range from making a huge answer.
MAX_NAK_BATCH = 50

# nak_rexmit's ``info`` strings, as process_rexmit chooses them.
SEQNO_TOO_LOW = "seqno too low"
SEQNO_NOT_FOUND = "seqno not found"

# What GapTracker.received made of a sequence number (should_drop_message). Heartbeat goes on
# with the message (KEEPIT) for all but DUPLICATE and OLD.
IN_SEQUENCE = "in-sequence"  # the next one expected (or the first heard)
GAP = "gap"  # newer, with numbers missing before it: those are now asked for
STARTED_OVER = "started-over"  # newer, more than FLOWCONTROL_LIMIT missing: tracking restarted
FILLED = "filled"  # one of the missing numbers: no longer asked for
DUPLICATE = "duplicate"  # the same as the last one
OLD = "old"  # older and not missing: a duplicate, or too old to be tracked


@dataclass(frozen=True)
class Resend:
    """Send ``data`` again: the exact bytes of message ``seq`` as they first went out."""

    seq: int
    data: bytes


@dataclass(frozen=True)
class Nak:
    """Answer with ``t=NS_nak_rexmit``: message ``seq`` cannot be retransmitted (``info``)."""

    seq: int
    info: str


# Union, not |: this module runs on Python 3.9, where a runtime ``X | Y`` of classes fails.
Answer = Union[Resend, Nak]  # noqa: UP007


class _Slot:
    __slots__ = ("data", "lastrexmit", "seq")

    def __init__(self, seq: int, data: bytes) -> None:
        self.seq = seq
        self.data = data
        self.lastrexmit: float | None = None  # when last retransmitted


class History:
    """The last ``size`` messages this node sent with a ``seq``, to answer ``NS_rexmit``.

    Heartbeat's ``struct msg_xmit_hist`` (``add2_xmit_hist``): a ring of ``MAXMSGHIST`` slots;
    ``hiseq`` is the last number added and ``lowseq`` the number of the last message pushed out
    of the ring (``free_one_hist_slot``), 0 while none was. Heartbeat also frees messages every
    live peer has acknowledged; here a request's ``acked`` stands for that (see :meth:`answer`).
    """

    def __init__(
        self, size: int = MAXMSGHIST, max_rexmit_delay_ms: int = MAX_REXMIT_DELAY_MS
    ) -> None:
        if size <= 0:
            raise ValueError("a history holds at least one message")
        self.size = size
        self.accept_gap = (max_rexmit_delay_ms - 10) / 1000.0  # ACCEPT_REXMIT_REQ_MS
        self.hiseq = 0
        self.lowseq = 0
        self._ring: list[_Slot | None] = [None] * size
        self._last = size - 1  # hist->lastmsg: the slot last written
        self._index: dict[int, int] = {}  # seq -> slot of its latest copy

    def __len__(self) -> int:
        return len(self._index)

    def add(self, seq: int, data: bytes) -> None:
        """Keep message ``seq`` as sent (``add2_xmit_hist``); the oldest one may make room."""
        slot = (self._last + 1) % self.size
        old = self._ring[slot]
        if old is not None:  # free_one_hist_slot
            self.lowseq = old.seq
            if self._index.get(old.seq) == slot:
                del self._index[old.seq]
        self.hiseq = seq
        self._ring[slot] = _Slot(seq, data)
        self._index[seq] = slot
        self._last = slot

    def get(self, seq: int) -> bytes | None:
        """The stored bytes of message ``seq``, or None."""
        slot = self._index.get(seq)
        if slot is None:
            return None
        stored = self._ring[slot]
        return stored.data if stored is not None else None

    def answer(
        self, firstseq: int, lastseq: int, now: float | None = None, acked: int = 0
    ) -> list[Answer]:
        """What to send for a request for ``firstseq..lastseq``, in order (``process_rexmit``).

        * a number the requester has acknowledged (``<= acked``, its last ``NS_ackmsg`` to us)
          gets nothing, nor does one above ``hiseq`` (heartbeat only logs "Rexmit of seq %lu
          requested. %lu is max.");
        * one at or below ``lowseq`` gets a NAK ``seqno too low``;
        * a stored one is sent again, unless it was already retransmitted less than
          ``ACCEPT_REXMIT_REQ_MS`` (240 ms) before ``now`` (then nothing; without ``now`` this
          rate limit is not applied); after ``MAX_REXMIT_BATCH`` (50) retransmissions the rest
          of the request is dropped, as heartbeat does;
        * any other gets a NAK ``seqno not found``.

        After ``MAX_NAK_BATCH`` NAKs the rest is dropped too (our limit; a heartbeat peer asks
        for one message at a time). Heartbeat's ring search starts one slot below the newest and
        so never finds the newest message first in a request; that cannot be reached by a real
        peer (it only asks for numbers below one it received) and is not copied.
        """
        out: list[Answer] = []
        resent = naks = 0
        seq = max(firstseq, acked + 1, 1)
        end = min(lastseq, self.hiseq)
        while seq <= end:
            if seq <= self.lowseq:
                info = SEQNO_TOO_LOW
            else:
                slot = self._index.get(seq)
                stored = self._ring[slot] if slot is not None else None
                if stored is None:
                    info = SEQNO_NOT_FOUND
                else:
                    last = stored.lastrexmit
                    if now is not None and last is not None and now - last < self.accept_gap:
                        seq += 1
                        continue
                    resent += 1
                    if resent > MAX_REXMIT_BATCH:
                        break
                    if now is not None:
                        stored.lastrexmit = now
                    out.append(Resend(seq, stored.data))
                    seq += 1
                    continue
            naks += 1
            if naks > MAX_NAK_BATCH:
                break
            out.append(Nak(seq, info))
            seq += 1
        return out


class _Peer:
    __slots__ = ("last", "missing")

    def __init__(self) -> None:
        self.last: int | None = None  # t->last_seq; None is NOSEQUENCE
        self.missing: dict[int, float] = {}  # missing seq -> when to ask for it next


class GapTracker:
    """The sequence numbers missing from each peer, and when to ask for them again.

    ``should_drop_message`` records the numbers skipped when a newer message arrives and calls
    ``request_msg_rexmit`` for them; ``schedule_rexmit_request`` gives each missing number its
    own timer, ``a..b`` ms at random (``cl_rand_from_interval``; ``a`` is 50, or 0 when
    ``max_rexmit_delay`` is under 100, ``b`` is ``max_rexmit_delay``); ``send_rexmit_request``
    then asks (``firstseq == lastseq``: heartbeat 3.0.6 never groups numbers into a range; the
    grouping ``check_rexmit_reqs`` is compiled out) and asks again every ``max_rexmit_delay``
    ms, with no limit on the number of times, until the message arrives (``is_lost_packet``), a
    NAK says it is lost, or the tracking is reset. Heartbeat stops asking a node that is not
    ``up`` or ``active``; here the caller says so with :meth:`forget`.

    At most ``MAXMISSING - 1`` numbers are kept per node; past that a new one replaces the
    lowest (heartbeat keeps asking for the replaced one forever; here it stops).
    """

    def __init__(
        self,
        rng: random.Random | None = None,
        max_rexmit_delay_ms: int = MAX_REXMIT_DELAY_MS,
    ) -> None:
        if max_rexmit_delay_ms <= 0:
            raise ValueError("max_rexmit_delay must be positive")  # hb_set_max_rexmit_delay
        self.rng = rng or random.Random()
        self.max_delay_ms = max_rexmit_delay_ms
        self.min_delay_ms = 0 if max_rexmit_delay_ms < 100 else 50
        self._peers: dict[str, _Peer] = {}

    def _first_delay(self) -> float:
        return self.rng.randint(self.min_delay_ms, self.max_delay_ms) / 1000.0

    def received(self, node: str, seq: int, now: float, restarted: bool = False) -> str:
        """Message ``seq`` came from ``node``; what it was (``IN_SEQUENCE``, ``GAP``, ...).

        ``restarted``: it is the first of a newer generation of the node (heartbeat resets the
        node's tracking, ``reset_seqtrack``, before taking it as the first).
        """
        peer = self._peers.get(node)
        if peer is None or restarted:
            peer = self._peers[node] = _Peer()
        last = peer.last
        if last is None or seq == last + 1:
            peer.last = seq
            return IN_SEQUENCE
        if seq == last:
            return DUPLICATE
        if seq > last:
            if seq - (last + 1) > FLOWCONTROL_LIMIT:
                peer = self._peers[node] = _Peer()
                peer.last = seq
                return STARTED_OVER
            for k in range(last + 1, seq):
                if len(peer.missing) >= MAXMISSING - 1:
                    del peer.missing[min(peer.missing)]
                peer.missing[k] = now + self._first_delay()
            peer.last = seq
            return GAP
        if peer.missing.pop(seq, None) is not None:
            return FILLED
        return OLD

    def nak_received(self, node: str, seq: int) -> bool:
        """``node`` answered ``NS_nak_rexmit`` for ``seq``: it is lost, stop asking for it.

        ``should_drop_message`` passes every NAK to ``is_lost_packet``, whoever it is for.
        True if ``seq`` was missing.
        """
        peer = self._peers.get(node)
        return peer is not None and peer.missing.pop(seq, None) is not None

    def due(self, now: float) -> list[tuple[str, int, int]]:
        """The requests to send now, ``(node, firstseq, lastseq)``, each asked again later."""
        out: list[tuple[str, int, int]] = []
        again = now + self.max_delay_ms / 1000.0
        for node, peer in self._peers.items():
            for seq in sorted(peer.missing):
                if peer.missing[seq] <= now:
                    out.append((node, seq, seq))
                    peer.missing[seq] = again
        return out

    def deadline(self) -> float | None:
        """When :meth:`due` next has something to send, or None if nothing is missing."""
        times = [t for peer in self._peers.values() for t in peer.missing.values()]
        return min(times) if times else None

    def missing(self, node: str) -> list[int]:
        """The numbers missing from ``node``, lowest first."""
        peer = self._peers.get(node)
        return sorted(peer.missing) if peer is not None else []

    def last_seq(self, node: str) -> int | None:
        """The highest number taken from ``node``, or None."""
        peer = self._peers.get(node)
        return peer.last if peer is not None else None

    def forget(self, node: str) -> None:
        """``node`` is dead: stop asking it for anything and drop what was known of it."""
        self._peers.pop(node, None)


def rexmit_request(
    outbox: Outbox, dest: str, firstseq: int, lastseq: int, wall: float
) -> list[tuple[str, int, bytes]]:
    """``t=NS_rexmit``: ask ``dest`` for ``firstseq..lastseq`` again (``send_rexmit_request``).

    Fields in heartbeat's order: ``t``, ``dest``, ``firstseq``, ``lastseq`` (both decimal,
    ``ha_msg_add_int``), then what the outbox adds (``destuuid``, ``src``, ...; no ``seq``).
    """
    own = [
        ("t", T_REXMIT),
        ("dest", dest),
        ("firstseq", str(firstseq)),
        ("lastseq", str(lastseq)),
    ]
    return outbox.message(own, wall, dest=dest)


def nak(
    outbox: Outbox, dest: str, seq: int, info: str, wall: float
) -> list[tuple[str, int, bytes]]:
    """``t=NS_nak_rexmit``: message ``seq`` cannot be sent again to ``dest`` (``nak_rexmit``).

    Fields in heartbeat's order: ``t``, ``firstseq`` (hexadecimal), ``dest``, ``info``, then what
    the outbox adds.
    """
    own = [("t", T_NAKREXMIT), ("firstseq", f"{seq:x}"), ("dest", dest), ("info", info)]
    return outbox.message(own, wall, dest=dest)


def _decimal(text: str | None) -> int | None:
    if text is None or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value > 0 else None


def parse_rexmit(msg: HBMessage) -> tuple[int, int] | None:
    """A received ``NS_rexmit``'s ``(firstseq, lastseq)``, or None if not a valid request.

    ``process_rexmit`` reads both with ``atoi`` and calls them invalid when either is not
    positive or ``firstseq > lastseq``; here anything but plain positive decimals is invalid.
    """
    if msg.get("t") != T_REXMIT:
        return None
    first = _decimal(msg.get("firstseq"))
    last = _decimal(msg.get("lastseq"))
    if first is None or last is None or first > last:
        return None
    return first, last


def parse_nak(msg: HBMessage) -> tuple[int, str] | None:
    """A received ``NS_nak_rexmit``'s ``(seq, info)``, or None if its number is bad.

    ``should_drop_message``: ``firstseq`` is hexadecimal and must be positive.
    """
    if msg.get("t") != T_NAKREXMIT:
        return None
    text = msg.get("firstseq")
    if text is None or not text or not all(c in "0123456789abcdefABCDEF" for c in text):
        return None
    seq = int(text, 16)
    if seq <= 0:
        return None
    return seq, msg.get("info") or ""
