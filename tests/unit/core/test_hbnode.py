"""Messages built by pylvs.core.hbnode are the bytes real heartbeat 3.0.6 nodes sent: every
status, acknowledgement and node-list answer of the capture, rebuilt from its values."""

from __future__ import annotations

import random
from pathlib import Path

import dpkt

from pylvs.core.hbmsg import AuthKey, HBMessage, decode, encode
from pylvs.core.hbnode import AckTracker, Outbox

CAPTURE = Path(__file__).resolve().parents[2] / "data" / "heartbeat-3.0.6-ucast-sha1.pcap"
KEY = AuthKey(1, "sha1", b"hbpeer-test-key")


def _messages() -> list[tuple[bytes, HBMessage]]:
    out = []
    with CAPTURE.open("rb") as f:
        for _ts, frame in dpkt.pcap.Reader(f):
            data = bytes(dpkt.ethernet.Ethernet(frame).data.data.data)
            out.append((data, decode(data, {1: KEY})))
    return out


def _outbox(msg: HBMessage) -> Outbox:
    uuid = msg.raw("srcuuid")
    generation = msg.hex("hg")
    assert uuid is not None and generation is not None
    box = Outbox(str(msg.get("src")), uuid, generation, n_nodes=2)
    seq = msg.hex("seq")
    box.seq = seq - 1 if seq is not None else 0
    return box


def test_every_status_ack_and_repnodes_is_rebuilt_byte_for_byte() -> None:
    uuids = {}
    for _data, msg in _messages():
        uuids[str(msg.get("src"))] = msg.raw("srcuuid")
    rebuilt = {"status": 0, "NS_ackmsg": 0, "repnodes": 0}
    for data, msg in _messages():
        kind = msg.get("t")
        if kind not in rebuilt:
            continue
        box = _outbox(msg)
        box.uuids = {k: v for k, v in uuids.items() if v is not None}
        wall = float(msg.hex("ts") or 0)
        if kind == "status":
            dt = msg.hex("dt")
            assert dt is not None
            fields = box.status(str(msg.get("st")), dt, wall, str(msg.get("ld")))
        elif kind == "NS_ackmsg":
            ackseq = msg.hex("ackseq")
            assert ackseq is not None
            fields = box.ack(str(msg.get("dest")), ackseq, wall)
        else:
            nodes = str(msg.get("nodelist")).split()
            fields = box.repnodes(str(msg.get("dest")), nodes, wall, str(msg.get("ld")))
        assert encode(fields, KEY) == data, msg
        rebuilt[str(kind)] += 1
    assert rebuilt == {"status": 2440, "NS_ackmsg": 477, "repnodes": 11}


def test_sequence_numbers_are_shared_by_all_but_ns_messages() -> None:
    box = Outbox("nodea", b"u" * 16, 0x10, 2)
    assert dict((n, v) for n, _t, v in box.status("init", 3000, 1.0))["seq"] == b"1"
    assert "seq" not in {n for n, _t, _v in box.ack("nodeb", 7, 1.0)}
    assert dict((n, v) for n, _t, v in box.repnodes("nodeb", ["a"], 1.0, ""))["seq"] == b"2"


def test_acknowledgements_about_one_in_ten_and_not_across_a_gap() -> None:
    acks = AckTracker(random.Random(4))
    got = [acks.received("nodeb", seq) for seq in range(1, 31)]
    sent = [a for a in got if a is not None]
    assert len(sent) == 3 and len({a % 10 for a in sent}) == 1
    trigger = sent[0] % 10
    assert acks.received("nodeb", 40 + trigger) is None  # after a gap: nothing yet
    assert acks.received("nodeb", 1, restarted=True) == (1 if trigger == 1 else None)
