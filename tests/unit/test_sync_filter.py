"""What a backup sync daemon applies of a datagram (ip_vs_process_message's syncid rule)."""

from __future__ import annotations

from pylvs.core.sync import SyncConn, encode_message
from pylvs.io.sync import accepted_records


def _conn(cport: int) -> SyncConn:
    return SyncConn(
        af=4, protocol=6, cport=cport, vport=80, dport=80, caddr=0xC0000202, vaddr=0xCB00710A,
        daddr=0xC633640B, flags=0x3, state=1, timeout=900,
    )  # fmt: skip


def test_syncid_zero_takes_every_master() -> None:
    data = encode_message(7, [_conn(1000), _conn(1001)])
    assert [r.cport for r in accepted_records(0, data)[0]] == [1000, 1001]
    assert [r.cport for r in accepted_records(7, data)[0]] == [1000, 1001]
    assert accepted_records(8, data) == ([], None)


def test_a_broken_message_keeps_the_good_records_before_the_fault() -> None:
    data = encode_message(7, [_conn(1000), _conn(1001)])
    records, problem = accepted_records(7, data[:-5])
    assert problem is not None
    assert [r.cport for r in records] == [1000][: len(records)]
    assert accepted_records(9, data[:-5])[0] == []
    assert accepted_records(0, b"")[0] == [] and accepted_records(0, b"\x00")[1] is not None
