"""pylvs.core.hbrexmit: the sent-message history, the gaps in the peers' sequence numbers, and the
NS_rexmit / NS_nak_rexmit messages, as heartbeat 3.0.6 handles them (heartbeat.c, hb_rexmit.c).
Time is stepped with a fake clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pylvs.core.hbmsg import AuthKey, HBMessage, decode, encode
from pylvs.core.hbnode import Outbox
from pylvs.core.hbrexmit import (
    DUPLICATE,
    FILLED,
    FLOWCONTROL_LIMIT,
    GAP,
    IN_SEQUENCE,
    MAX_NAK_BATCH,
    MAX_REXMIT_BATCH,
    MAXMISSING,
    MAXMSGHIST,
    OLD,
    SEQNO_NOT_FOUND,
    SEQNO_TOO_LOW,
    STARTED_OVER,
    GapTracker,
    History,
    Nak,
    Resend,
    nak,
    parse_nak,
    parse_rexmit,
    rexmit_request,
)

KEY = AuthKey(1, "sha1", b"hbrexmit-test-key")
UUID_A = bytes(range(16))
UUID_B = bytes(range(16, 32))


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def step(self, seconds: float) -> float:
        self.t += seconds
        return self.t


def _outbox() -> Outbox:
    box = Outbox("nodea", UUID_A, 0x5F00AA01, n_nodes=2)
    box.uuids = {"nodeb": UUID_B}
    return box


def _datagram(box: Outbox, wall: float) -> tuple[int, bytes]:
    data = encode(box.status("active", 3000, wall, "0.00 0.01 0.05 1/80 1234"), KEY)
    return box.seq, data


def _filled(n: int) -> History:
    hist = History()
    for seq in range(1, n + 1):
        hist.add(seq, b"msg %d" % seq)
    return hist


# --- History ------------------------------------------------------------------------------


def test_history_keeps_the_last_500_exact_datagrams() -> None:
    box = _outbox()
    hist = History()
    sent = {}
    for i in range(MAXMSGHIST + 20):
        seq, data = _datagram(box, 1_700_000_000.0 + i)
        hist.add(seq, data)
        sent[seq] = data
    assert len(hist) == MAXMSGHIST
    assert (hist.lowseq, hist.hiseq) == (20, 520)
    for seq in range(21, 521):
        assert hist.get(seq) == sent[seq]
    again = hist.answer(300, 300)
    assert again == [Resend(300, sent[300])]
    msg = decode(again[0].data, {1: KEY})  # the same message: same seq, same ts
    assert (msg.hex("seq"), msg.hex("ts")) == (300, 1_700_000_000 + 299)


@pytest.mark.parametrize(
    "added, first, last, acked, want",
    [
        # nothing lost yet: everything stored is sent again
        (10, 3, 5, 0, [Resend(3, b"msg 3"), Resend(4, b"msg 4"), Resend(5, b"msg 5")]),
        # above hiseq: nothing (heartbeat only logs "Rexmit of seq ... requested")
        (10, 9, 14, 0, [Resend(9, b"msg 9"), Resend(10, b"msg 10")]),
        (10, 11, 11, 0, []),
        # already acknowledged by the requester: nothing
        (10, 3, 5, 4, [Resend(5, b"msg 5")]),
        # pushed out of the ring: too low (lowseq is 100 after 600 messages)
        (
            600,
            99,
            102,
            0,
            [
                Nak(99, SEQNO_TOO_LOW),
                Nak(100, SEQNO_TOO_LOW),
                Resend(101, b"msg 101"),
                Resend(102, b"msg 102"),
            ],
        ),
        (600, 100, 100, 0, [Nak(100, SEQNO_TOO_LOW)]),
        (600, 101, 101, 0, [Resend(101, b"msg 101")]),
        (600, 600, 600, 0, [Resend(600, b"msg 600")]),
        (600, 5, 5, 5, []),
    ],
)
def test_history_answers_as_process_rexmit(
    added: int, first: int, last: int, acked: int, want: list[object]
) -> None:
    assert _filled(added).answer(first, last, acked=acked) == want


def test_a_number_never_kept_is_not_found() -> None:
    hist = History()
    for seq in (1, 2, 4, 5):
        hist.add(seq, b"msg %d" % seq)
    assert hist.answer(2, 4) == [
        Resend(2, b"msg 2"),
        Nak(3, SEQNO_NOT_FOUND),
        Resend(4, b"msg 4"),
    ]


def test_history_sends_at_most_50_per_request() -> None:
    hist = _filled(MAXMSGHIST)
    got = hist.answer(1, MAXMSGHIST)
    assert got == [Resend(s, b"msg %d" % s) for s in range(1, MAX_REXMIT_BATCH + 1)]


def test_history_naks_are_bounded_for_a_huge_range() -> None:
    hist = _filled(5000)
    got = hist.answer(1, 2**31 - 1)
    assert got == [Nak(s, SEQNO_TOO_LOW) for s in range(1, MAX_NAK_BATCH + 1)]


def test_a_message_is_not_resent_twice_within_240_ms() -> None:
    clock = Clock()
    hist = _filled(20)
    assert hist.answer(7, 8, now=clock.t) == [Resend(7, b"msg 7"), Resend(8, b"msg 8")]
    assert hist.answer(7, 9, now=clock.step(0.239)) == [Resend(9, b"msg 9")]
    assert hist.answer(7, 9, now=clock.step(0.001)) == [Resend(7, b"msg 7"), Resend(8, b"msg 8")]
    # without a time there is no rate limit
    assert hist.answer(9, 9) == [Resend(9, b"msg 9")]


@given(st.lists(st.binary(max_size=8), max_size=1200), st.integers(1, 1300))
def test_history_keeps_exactly_the_last_500(payloads: list[bytes], probe: int) -> None:
    hist = History()
    for seq, data in enumerate(payloads, start=1):
        hist.add(seq, data)
    n = len(payloads)
    low = max(0, n - MAXMSGHIST)
    assert len(hist) == min(n, MAXMSGHIST)
    assert (hist.lowseq, hist.hiseq) == (low, n)
    got = hist.answer(probe, probe)
    if probe > n:
        assert got == []
    elif probe <= low:
        assert got == [Nak(probe, SEQNO_TOO_LOW)]
    else:
        assert got == [Resend(probe, payloads[probe - 1])]


# --- GapTracker ---------------------------------------------------------------------------


def test_sequence_verdicts() -> None:
    gaps = GapTracker(random.Random(1))
    now = 10.0
    assert gaps.received("nodeb", 5, now) == IN_SEQUENCE  # first heard
    assert gaps.received("nodeb", 6, now) == IN_SEQUENCE
    assert gaps.received("nodeb", 6, now) == DUPLICATE
    assert gaps.received("nodeb", 9, now) == GAP
    assert gaps.missing("nodeb") == [7, 8]
    assert gaps.received("nodeb", 8, now) == FILLED
    assert gaps.received("nodeb", 8, now) == OLD
    assert gaps.received("nodeb", 3, now) == OLD
    assert gaps.missing("nodeb") == [7]
    assert gaps.last_seq("nodeb") == 9


def test_a_gap_is_asked_for_within_50_to_250_ms_then_every_250_ms() -> None:
    clock = Clock()
    gaps = GapTracker(random.Random(7))
    gaps.received("nodeb", 1, clock.t)
    start = clock.t
    assert gaps.received("nodeb", 5, clock.t) == GAP
    assert gaps.deadline() is not None
    first: dict[int, float] = {}
    while len(first) < 3:
        clock.step(0.001)
        for node, lo, hi in gaps.due(clock.t):
            assert node == "nodeb" and lo == hi  # one number per request, as heartbeat asks
            first.setdefault(lo, clock.t)
    assert sorted(first) == [2, 3, 4]
    for t in first.values():
        assert 0.050 - 1e-9 <= t - start <= 0.250 + 0.001 + 1e-9
    # and again every 250 ms, for as long as the gap lasts (heartbeat has no limit)
    asked: list[tuple[float, int]] = []
    for _ in range(3000):
        clock.step(0.001)
        asked += [(clock.t, lo) for _node, lo, _hi in gaps.due(clock.t)]
    for seq in (2, 3, 4):
        times = [t for t, s in asked if s == seq]
        assert len(times) >= 11
        gaps_between = [times[i + 1] - times[i] for i in range(len(times) - 1)]
        assert all(0.250 <= d <= 0.2511 for d in gaps_between)


def test_a_filled_gap_is_no_longer_asked_for() -> None:
    clock = Clock()
    gaps = GapTracker(random.Random(3))
    gaps.received("nodeb", 1, clock.t)
    gaps.received("nodeb", 4, clock.t)
    assert gaps.received("nodeb", 2, clock.t) == FILLED
    assert gaps.nak_received("nodeb", 3)  # irretrievably lost: also no longer asked for
    assert not gaps.nak_received("nodeb", 3)
    assert gaps.missing("nodeb") == []
    assert gaps.deadline() is None
    assert gaps.due(clock.step(1.0)) == []


def test_deadline_is_the_next_request() -> None:
    clock = Clock()
    gaps = GapTracker(random.Random(11))
    assert gaps.deadline() is None
    gaps.received("nodeb", 1, clock.t)
    gaps.received("nodeb", 3, clock.t)
    deadline = gaps.deadline()
    assert deadline is not None and clock.t + 0.050 <= deadline <= clock.t + 0.250
    assert gaps.due(deadline - 0.0001) == []
    assert gaps.due(deadline) == [("nodeb", 2, 2)]
    assert gaps.deadline() == pytest.approx(deadline + 0.250)


def test_a_restart_resets_the_tracking() -> None:
    clock = Clock()
    gaps = GapTracker(random.Random(5))
    gaps.received("nodeb", 10, clock.t)
    gaps.received("nodeb", 20, clock.t)
    assert gaps.missing("nodeb") == list(range(11, 20))
    assert gaps.received("nodeb", 1, clock.t, restarted=True) == IN_SEQUENCE
    assert gaps.missing("nodeb") == []
    assert gaps.due(clock.step(1.0)) == []
    assert gaps.received("nodeb", 2, clock.t) == IN_SEQUENCE


def test_too_wide_a_gap_starts_over_and_forget_drops_a_node() -> None:
    clock = Clock()
    gaps = GapTracker(random.Random(5))
    gaps.received("nodeb", 1, clock.t)
    assert gaps.received("nodeb", 2 + FLOWCONTROL_LIMIT, clock.t) == GAP  # 250 missing: asked
    assert len(gaps.missing("nodeb")) == FLOWCONTROL_LIMIT
    assert gaps.received("nodeb", 2 * FLOWCONTROL_LIMIT + 4, clock.t) == STARTED_OVER
    assert gaps.missing("nodeb") == []
    gaps.received("nodec", 1, clock.t)
    gaps.received("nodec", 3, clock.t)
    gaps.forget("nodec")
    assert gaps.missing("nodec") == [] and gaps.last_seq("nodec") is None
    assert gaps.due(clock.step(1.0)) == []


def test_at_most_499_missing_numbers_are_kept_per_node() -> None:
    gaps = GapTracker(random.Random(2))
    seq = 1
    gaps.received("nodeb", seq, 0.0)
    for _ in range(3):  # three gaps of 200: 600 missing, the lowest replaced
        seq += 201
        assert gaps.received("nodeb", seq, 0.0) == GAP
    missing = gaps.missing("nodeb")
    assert len(missing) == MAXMISSING - 1
    assert missing[-1] == seq - 1


def test_short_max_rexmit_delay_starts_at_zero() -> None:
    rng = random.Random(9)
    delays = set()
    for _ in range(400):
        gaps = GapTracker(rng, max_rexmit_delay_ms=80)
        gaps.received("nodeb", 1, 0.0)
        gaps.received("nodeb", 3, 0.0)
        deadline = gaps.deadline()
        assert deadline is not None
        delays.add(round(deadline * 1000))
    assert min(delays) == 0 and max(delays) == 80


@given(
    st.lists(st.integers(1, 60), min_size=1, max_size=80),
    st.integers(0, 2**32 - 1),
)
def test_missing_is_exactly_the_numbers_not_yet_seen(seqs: list[int], seed: int) -> None:
    clock = Clock()
    gaps = GapTracker(random.Random(seed))
    for seq in seqs:
        gaps.received("nodeb", seq, clock.step(0.01))
    first, high = seqs[0], max(seqs)
    expected = sorted(set(range(first, high + 1)) - set(seqs))
    assert gaps.missing("nodeb") == expected
    # every missing number is asked for within 250 ms, one number per request
    asked = {lo for _node, lo, hi in gaps.due(clock.step(0.251)) if lo == hi}
    assert asked == set(expected)


# --- Messages -----------------------------------------------------------------------------


def _names(fields: list[tuple[str, int, bytes]]) -> list[str]:
    return [name for name, _t, _v in fields]


def test_rexmit_request_fields_in_heartbeats_order() -> None:
    box = _outbox()
    fields = rexmit_request(box, "nodeb", 1234, 1234, 1_700_000_000.0)
    assert _names(fields) == [
        "t",
        "dest",
        "firstseq",
        "lastseq",
        "destuuid",
        "src",
        "srcuuid",
        "hg",
        "ts",
        "ttl",
    ]
    values = {n: v for n, _t, v in fields}
    assert values["t"] == b"NS_rexmit"
    assert (values["firstseq"], values["lastseq"]) == (b"1234", b"1234")  # decimal
    assert box.seq == 0  # no sequence number used


def test_nak_fields_in_heartbeats_order() -> None:
    box = _outbox()
    fields = nak(box, "nodeb", 0x1234, SEQNO_TOO_LOW, 1_700_000_000.0)
    assert _names(fields) == [
        "t",
        "firstseq",
        "dest",
        "info",
        "destuuid",
        "src",
        "srcuuid",
        "hg",
        "ts",
        "ttl",
    ]
    msg = decode(encode(fields, KEY), {1: KEY})
    assert msg.get("firstseq") == "1234"  # hexadecimal
    assert parse_nak(msg) == (0x1234, SEQNO_TOO_LOW)


@given(st.integers(1, 2**31 - 1), st.integers(0, 1000), st.floats(0, 2**31))
def test_rexmit_request_round_trips(first: int, span: int, wall: float) -> None:
    last = first + span
    data = encode(rexmit_request(_outbox(), "nodeb", first, last, wall), KEY)
    msg = decode(data, {1: KEY})
    assert msg.get("t") == "NS_rexmit" and msg.get("dest") == "nodeb"
    assert msg.get("src") == "nodea" and msg.get("seq") is None
    assert parse_rexmit(msg) == (first, last)


@pytest.mark.parametrize(
    "firstseq, lastseq",
    [
        (None, "5"),
        ("5", None),
        ("0", "5"),
        ("-1", "5"),
        ("6", "5"),
        ("x", "5"),
        ("5", "1f"),
        ("", ""),
        (" 5", "6"),
        ("٣", "5"),  # a digit, but not an ASCII one
    ],
)
def test_bad_rexmit_requests_give_none(firstseq: str | None, lastseq: str | None) -> None:
    fields = [("t", 0, b"NS_rexmit")]
    if firstseq is not None:
        fields.append(("firstseq", 0, firstseq.encode()))
    if lastseq is not None:
        fields.append(("lastseq", 0, lastseq.encode()))
    assert parse_rexmit(HBMessage(fields)) is None


@given(st.dictionaries(st.sampled_from(["t", "firstseq", "lastseq", "info"]), st.binary()))
def test_parsers_never_raise(values: dict[str, bytes]) -> None:
    fields = [(name, 0, value) for name, value in values.items()]
    for kind in (b"NS_rexmit", b"NS_nak_rexmit"):
        msg = HBMessage([("t", 0, kind), *fields])
        parse_rexmit(msg)
        parse_nak(msg)


@pytest.mark.parametrize("text", ["0", "", "xyz", "-5", "0x10"])
def test_bad_nak_numbers_give_none(text: str) -> None:
    msg = HBMessage([("t", 0, b"NS_nak_rexmit"), ("firstseq", 0, text.encode())])
    assert parse_nak(msg) is None


def test_a_request_answered_end_to_end() -> None:
    """nodeb misses one of nodea's messages, asks for it, and gets the same datagram."""
    clock = Clock()
    a, b = _outbox(), Outbox("nodeb", UUID_B, 0x5F00BB01, n_nodes=2)
    b.uuids = {"nodea": UUID_A}
    hist = History()
    gaps = GapTracker(random.Random(0))
    sent = []
    for i in range(5):
        seq, data = _datagram(a, 1_700_000_000.0 + i)
        hist.add(seq, data)
        sent.append(data)
    for data in sent[:2] + sent[3:]:  # the third is lost
        gaps.received("nodea", int(str(decode(data).get("seq")), 16), clock.t)
    requests = gaps.due(clock.step(0.25))
    assert requests == [("nodea", 3, 3)]
    node, lo, hi = requests[0]
    request = decode(encode(rexmit_request(b, node, lo, hi, 1_700_000_005.0), KEY), {1: KEY})
    assert request.get("destuuid") is None  # binary field: only raw() reads it
    assert request.raw("destuuid") == UUID_A
    asked = parse_rexmit(request)
    assert asked is not None
    answers = hist.answer(*asked, now=clock.t)
    assert answers == [Resend(3, sent[2])]
    assert gaps.received("nodea", 3, clock.t) == FILLED
    assert gaps.due(clock.step(1.0)) == []
