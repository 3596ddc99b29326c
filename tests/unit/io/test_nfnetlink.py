"""NFQUEUE's netlink messages, built and parsed against bytes written out by hand here from the
kernel's structures (nfnetlink_queue.h), and the queue plane's batch loop on crafted messages."""

from __future__ import annotations

import errno
import random
import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.engine import Engine
from pylvs.core.service import IPPROTO_UDP, FwdMethod
from pylvs.io import nfnetlink as nl
from pylvs.io.nfqueue import NfqueuePlane

QUEUE = 5


def nlattr(kind: int, value: bytes) -> bytes:
    """struct nlattr: u16 length (header included, padding not), u16 type; value padded to 4."""
    return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


def packet_message(
    ident: int, payload: bytes, mark: int | None = None, queue: int = QUEUE
) -> bytes:
    """An NFQNL_MSG_PACKET laid out as nfqnl_build_packet_message writes it."""
    attrs = nlattr(1, struct.pack("!IHB", ident, 0x0800, 0))  # NFQA_PACKET_HDR, hook PREROUTING
    attrs += nlattr(5, struct.pack("!I", 2))  # NFQA_IFINDEX_INDEV
    if mark is not None:
        attrs += nlattr(3, struct.pack("!I", mark))  # NFQA_MARK
    attrs += nlattr(9, struct.pack("!HH8s", 6, 0, b"\x02\0\0\0\0\x01"))  # NFQA_HWADDR
    attrs += nlattr(4, struct.pack("!QQ", 1, 2))  # NFQA_TIMESTAMP
    # NFQA_PAYLOAD, last; its length unpadded (nla_attr_size) and the message not padded either.
    attrs += struct.pack("=HH", 4 + len(payload), 10) + payload
    body = struct.pack("!BBH", 2, 0, queue) + attrs
    return struct.pack("=IHHII", 16 + len(body), 0x300, 0, 0, 0) + body


def test_packet_message_fields() -> None:
    payload = bytes(range(41))  # not a multiple of 4
    msg = packet_message(77, payload, mark=0x2A)
    kind, handle, mark, start, end = nl.parse_packet(msg, 0)
    assert kind == 0x300
    assert nl.packet_id(handle) == 77 and handle == nl.handle_of(77)
    assert mark == 0x2A
    assert msg[start:end] == payload


def test_packet_message_at_an_offset_without_mark_or_payload() -> None:
    msg = packet_message(0xDEADBEEF, b"")
    data = b"\xff" * 100 + msg + b"\xee" * 7
    _kind, handle, mark, start, end = nl.parse_packet(data, 100)
    assert nl.packet_id(handle) == 0xDEADBEEF and mark == 0
    assert start == end


def test_attribute_flags_are_ignored_and_a_bad_length_stops() -> None:
    # NLA_F_NET_BYTEORDER set on the mark's type; then a zero-length attribute: parsing stops.
    attrs = nlattr(1, struct.pack("!IHB", 9, 0x0800, 0)) + nlattr(0x4003, struct.pack("!I", 7))
    attrs += struct.pack("=HH", 0, 10)
    body = struct.pack("!BBH", 2, 0, QUEUE) + attrs
    msg = struct.pack("=IHHII", 16 + len(body), 0x300, 0, 0, 0) + body
    _kind, handle, mark, start, end = nl.parse_packet(msg, 0)
    assert (nl.packet_id(handle), mark, start, end) == (9, 7, len(msg), len(msg))


def test_truncated_message_raises_struct_error() -> None:
    with pytest.raises(struct.error):
        nl.parse_packet(packet_message(1, b"x")[:22], 0)


def test_other_messages_are_only_typed() -> None:
    error = struct.pack("=IHHII", 36, 2, 0, 0, 0) + bytes(20)
    assert nl.parse_packet(error, 0) == (2, 0, 0, 0, 0)


def verdict_bytes(ident: int, verdict: int, payload: bytes | None = None, kind: int = 1) -> bytes:
    attrs = nlattr(2, struct.pack("!II", verdict, ident))  # NFQA_VERDICT_HDR
    if payload is not None:
        attrs += nlattr(10, payload)
    body = struct.pack("!BBH", 0, 0, QUEUE) + attrs
    # nlmsg_len covers the payload attribute's padding (NLMSG_ALIGN'd attributes).
    return struct.pack("=IHHII", 16 + len(body), 0x300 | kind, 1, 0, 0) + body


@pytest.mark.parametrize("payload", [None, b"", b"abc", b"abcd", bytes(1501)])
def test_verdict_message(payload: bytes | None) -> None:
    handle = nl.handle_of(1234)
    got = nl.verdict_message(QUEUE, handle, nl.NF_ACCEPT, payload)
    assert got == verdict_bytes(1234, 1, payload)


def test_verdict_batch_message() -> None:
    got = nl.verdict_batch_message(QUEUE, nl.handle_of(99), nl.NF_DROP)
    assert got == verdict_bytes(99, 0, kind=3)


def test_verdict_batch_runs_become_one_batch_verdict() -> None:
    batch = nl.VerdictBatch(QUEUE)
    for ident in (10, 11, 12):
        batch.add(nl.handle_of(ident), nl.NF_DROP)
    batch.rewrite(nl.handle_of(13), b"new!x")
    batch.add(nl.handle_of(14), nl.NF_ACCEPT)
    batch.add(nl.handle_of(15), nl.NF_DROP)
    batch.add(nl.handle_of(16), nl.NF_DROP)
    assert batch.size > 0
    assert batch.take() == b"".join(
        [
            verdict_bytes(12, 0, kind=3),  # 10..12 dropped
            verdict_bytes(13, 1, b"new!x"),
            verdict_bytes(14, 1),  # a run of one: a plain verdict
            verdict_bytes(16, 0, kind=3),
        ]
    )
    assert batch.take() == b"" and batch.size == 0


def test_verdict_batch_without_runs() -> None:
    batch = nl.VerdictBatch(QUEUE, batch_runs=False)
    batch.add(nl.handle_of(1), nl.NF_ACCEPT)
    batch.add(nl.handle_of(2), nl.NF_ACCEPT)
    assert batch.take() == verdict_bytes(1, 1) + verdict_bytes(2, 1)


def test_config_messages() -> None:
    msgs = nl.config_messages(QUEUE, 0xFFFF, 16384, nl.F_FAIL_OPEN, nl.F_FAIL_OPEN | nl.F_GSO, 40)
    req_ack = 1 | 4

    def config(seq: int, queue: int, attrs: bytes) -> bytes:
        body = struct.pack("!BBH", 0, 0, queue) + attrs
        return struct.pack("=IHHII", 16 + len(body), 0x302, req_ack, seq, 0) + body

    assert msgs == [
        config(40, 0, nlattr(1, struct.pack("!BBH", 3, 0, 2))),  # PF_BIND AF_INET
        config(41, QUEUE, nlattr(1, struct.pack("!BBH", 1, 0, 0))),  # BIND
        config(42, QUEUE, nlattr(2, struct.pack("!IB", 0xFFFF, 2))),  # 5 bytes, COPY_PACKET
        config(43, QUEUE, nlattr(3, struct.pack("!I", 16384))),
        config(44, QUEUE, nlattr(5, struct.pack("!I", 1)) + nlattr(4, struct.pack("!I", 5))),
    ]
    unbind = nl.unbind_message(QUEUE, 7)
    assert unbind[4:8] == struct.pack("=HH", 0x302, 1) and unbind[20:] == nlattr(1, b"\x02\0\0\0")


def test_error_message() -> None:
    request = struct.pack("=IHHII", 36, 0x301, 1, 4242, 0)
    msg = struct.pack("=IHHII", 36, 2, 0, 4242, 0) + struct.pack("=i", -errno.ENOENT) + request
    assert nl.parse_error(msg, 0) == (errno.ENOENT, 4242)
    ack = struct.pack("=IHHII", 36, 2, 0, 7, 0) + struct.pack("=i", 0) + request[:4] + request[4:]
    assert nl.parse_error(ack, 0)[0] == 0


# -- the plane's batch loop on crafted messages ---------------------------------------------


VIP, CLIENT, RIP = "192.0.2.10", "198.51.100.7", "203.0.113.1"


class FakeQueue:
    """What NfqueuePlane uses of QueueSocket: slots of received messages, sent datagrams."""

    def __init__(self, messages: list[bytes]) -> None:
        self.buf = bytearray(nl.SLOT * len(messages))
        for i, msg in enumerate(messages):
            self.buf[i * nl.SLOT : i * nl.SLOT + len(msg)] = msg
        self.view = memoryview(self.buf)
        self.pending = len(messages)
        self.sent: list[bytes] = []
        self.receives = self.enobufs = 0

    def receive(self) -> int:
        n, self.pending = self.pending, 0
        return n

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def queue_stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


def split_messages(data: bytes) -> list[tuple[int, bytes]]:
    """(type, message) of each netlink message of a datagram."""
    out = []
    off = 0
    while off < len(data):
        length, kind = struct.unpack_from("=IH", data, off)
        out.append((kind, data[off : off + length]))
        off += (length + 3) & ~3
    return out


def nat_plane(messages: list[bytes]) -> tuple[NfqueuePlane, FakeQueue]:
    engine = Engine(random.Random(1), kernel_forwards_nat=False, check_ip_checksum=True)
    svc = ServiceSpec(protocol=IPPROTO_UDP, addr=VIP, port=53, scheduler="rr")
    engine.add_service(svc)
    engine.add_dest(svc, DestSpec(addr=RIP, port=5353, fwd=int(FwdMethod.MASQ)))
    engine.set_path(4, int.from_bytes(bytes(map(int, RIP.split("."))), "big"), 0, 1500)
    plane = NfqueuePlane(engine, QUEUE)
    fake = FakeQueue(messages)
    plane.queue = fake  # type: ignore[assignment]
    return plane, fake


def test_plane_rewrites_accepts_and_drops_in_one_send() -> None:
    request = bytes(IP(src=CLIENT, dst=VIP, ttl=64) / UDP(sport=4000, dport=53) / Raw(b"q" * 30))
    other = bytes(IP(src=CLIENT, dst="192.0.2.99") / UDP(sport=4000, dport=53) / Raw(b"x"))
    error = struct.pack("=IHHII", 36, 2, 0, 0, 0) + struct.pack("=i", -errno.ENOENT)
    error += struct.pack("=IHHII", 32, 0x301, 1, 0, 0)
    messages = [
        packet_message(1, request),
        packet_message(2, other),
        packet_message(3, b"\x45garbage"),
        error,
        packet_message(4, request),
    ]
    plane, fake = nat_plane(messages)
    # The plane gives the kernel the forwarding: no TTL decrement, no checksum check.
    assert plane.engine.kernel_forwards_nat and not plane.engine.check_ip_checksum
    assert plane.process() == 5
    assert len(fake.sent) == 1  # every verdict of the batch in one datagram
    verdicts = split_messages(fake.sent[0])
    kinds = [kind for kind, _ in verdicts]
    assert kinds == [0x301, 0x301, 0x301, 0x301]
    first = verdicts[0][1]
    vhdr = struct.unpack_from("!II", first, 24)
    assert vhdr == (nl.NF_ACCEPT, 1)
    out = IP(first[36 : 36 + struct.unpack_from("=H", first, 32)[0] - 4])
    assert (out.dst, out[UDP].dport, out.ttl) == (RIP, 5353, 64)
    assert bytes(out[UDP].payload) == b"q" * 30  # (not out[Raw]: scapy may dissect 5353 as mDNS)
    # Not a virtual service's packet: accepted unchanged; garbage: dropped.
    assert verdicts[1][1] == verdict_bytes(2, nl.NF_ACCEPT)
    assert verdicts[2][1] == verdict_bytes(3, nl.NF_DROP)
    assert struct.unpack_from("!II", verdicts[3][1], 24) == (nl.NF_ACCEPT, 4)
    stats = plane.stats()
    assert stats["handled"] == 4 and stats["failures"] == 0
    assert stats["netlink_errors"] == 1 and stats["verdict_sends"] == 1


def test_plane_drops_what_the_engine_fails_on() -> None:
    request = bytes(IP(src=CLIENT, dst=VIP) / UDP(sport=4000, dport=53) / Raw(b"q"))
    plane, fake = nat_plane([packet_message(8, request), packet_message(9, request)])

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    plane.engine.handle = broken  # type: ignore[method-assign, assignment]
    assert plane.process() == 2
    # Two drops in a row: one batch verdict up to the second id.
    assert fake.sent == [verdict_bytes(9, nl.NF_DROP, kind=3)]
    assert plane.failures == 2


def test_plane_gives_marks_only_with_a_fwmark_service() -> None:
    request = bytes(IP(src=CLIENT, dst=VIP) / UDP(sport=4000, dport=53) / Raw(b"q"))
    plane, _fake = nat_plane([packet_message(1, request, mark=3)])
    seen: list[int] = []

    def handle(packet: memoryview, now: float, mark: int = 0) -> tuple[int, None, int]:
        seen.append(mark)
        return (0, None, 0)

    plane.engine.handle = handle  # type: ignore[method-assign, assignment]
    plane.process()
    fwmark = ServiceSpec(fwmark=3, scheduler="rr")
    plane.engine.add_service(fwmark)
    plane.set_services(plane.engine.services())
    plane.queue = FakeQueue([packet_message(2, request, mark=3)])  # type: ignore[assignment]
    plane.process()
    assert seen == [0, 3]
