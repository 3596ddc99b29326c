"""The heartbeat message codec against every packet two real heartbeat 3.0.6 nodes sent.

``tests/data/heartbeat-3.0.6-ucast-sha1.pcap``: nodes ``nodea`` and ``nodeb``, ucast, ``auth 1`` /
``1 sha1 hbpeer-test-key``; start-up, resource acquisition, kill -9 failovers and failbacks.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import dpkt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pylvs.core.hbmsg import BINARY, STRING, AuthKey, HBMessageError, decode, encode

CAPTURE = Path(__file__).resolve().parents[2] / "data" / "heartbeat-3.0.6-ucast-sha1.pcap"
KEYS = {1: AuthKey(1, "sha1", b"hbpeer-test-key")}


def _datagrams() -> list[bytes]:
    out = []
    with CAPTURE.open("rb") as f:
        for _ts, frame in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(frame).data
            if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP):
                out.append(bytes(ip.data.data))
    return out


DATAGRAMS = _datagrams()


def test_every_real_message_decodes_verifies_and_reencodes_byte_for_byte() -> None:
    kinds: Counter[str] = Counter()
    for data in DATAGRAMS:
        msg = decode(data, KEYS)
        kinds[msg.get("t") or "?"] += 1
        assert encode(msg.fields, KEYS[1]) == data
    assert sum(kinds.values()) == 3107
    assert kinds["status"] == 2440 and kinds["NS_ackmsg"] == 477 and kinds["resource"] == 107


def test_fields_of_a_status_message() -> None:
    msg = decode(DATAGRAMS[0], KEYS)
    assert (msg.get("t"), msg.get("st"), msg.get("src")) == ("status", "init", "nodea")
    assert (msg.hex("dt"), msg.hex("seq"), msg.get("protocol")) == (3000, 1, "1")
    uuid = msg.raw("srcuuid")
    assert uuid is not None and len(uuid) == 16
    assert msg.get("srcuuid") is None  # binary, not a string


def test_a_changed_field_or_another_key_is_refused() -> None:
    data = DATAGRAMS[0]
    forged = data.replace(b"st=init", b"st=dead")
    with pytest.raises(HBMessageError, match="auth field signature does not match"):
        decode(forged, KEYS)
    with pytest.raises(HBMessageError, match="does not match"):
        decode(data, {1: AuthKey(1, "sha1", b"another key")})
    with pytest.raises(HBMessageError, match="key 1, which authkeys lacks"):
        decode(data, {2: AuthKey(2, "sha1", b"hbpeer-test-key")})
    # Re-signed auth field but the old trailer: the trailer covers every byte.
    msg = decode(data, KEYS)
    resigned = encode([*msg.fields, ("x", STRING, b"1")], KEYS[1])
    tampered = resigned[: resigned.index(b"%%%\n") + 4] + data[data.index(b"%%%\n") + 4 :]
    with pytest.raises(HBMessageError, match="trailer signature does not match"):
        decode(tampered, KEYS)


def test_md5_messages_round_trip() -> None:
    key = AuthKey(3, "md5", b"s3cret")
    fields = [("t", STRING, b"status"), ("st", STRING, b"active")]
    fields.append(("srcuuid", BINARY, b"\x00" * 16))
    data = encode(fields, key)
    msg = decode(data, {3: key})
    assert msg.get("st") == "active" and msg.raw("srcuuid") == b"\x00" * 16
    assert b"(0)auth=3 " in data


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "no ###"),
        (b"###\n", "bad netstring length"),
        (b"###\n999:(0)t=status,%%%\n2:1 ,", "overruns"),
        (b"###\n8:t=status,%%%\n3:1 x,", "has no type"),
        (b"###\n11:(7)t=status,%%%\n3:1 x,", "has type 7"),
        (b"###\n6:(0)tst,%%%\n3:1 x,", "no name=value"),
        (b"###\n11:(0)t=status,%%%\n3:1 x,extra", "after the trailer"),
        (b"###\n11:(0)t=status,%%%\n3:1 x,", "unsigned message"),
    ],
)
def test_malformed_datagrams_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(HBMessageError, match=reason):
        decode(data, KEYS)


@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    try:
        decode(b"###\n" + data, KEYS)
    except HBMessageError:
        pass


@given(st.integers(0, len(DATAGRAMS[0]) - 1), st.integers(0, 255))
def test_any_flipped_byte_of_a_real_message_is_refused(pos: int, value: int) -> None:
    data = bytearray(DATAGRAMS[0])
    if data[pos] == value:
        return
    data[pos] = value
    with pytest.raises(HBMessageError):
        decode(bytes(data), KEYS)
