"""Connection synchronisation of IPv6 connections: the version 1 record ``struct ip_vs_sync_v6``
(ip_vs_sync.c: type with STYPE_F_INET6, 24 bytes of ports/flags/fwmark/timeout, then three
``struct in6_addr``, 72 bytes before options), a master engine syncing a NAT66 connection and its
persistence template, and a backup engine creating them and forwarding the client's next packet."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest
from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6

from pylvs.core import tcpstate
from pylvs.core.conntrack import CF_SYNC, CF_TEMPLATE, flow_key
from pylvs.core.control import DaemonSpec, DestSpec, ServiceSpec
from pylvs.core.engine import Engine, Verdict
from pylvs.core.service import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, FwdMethod
from pylvs.core.sync import (
    IP_VS_CONN_F_TEMPLATE,
    SyncConn,
    SyncError,
    decode_message,
    encode_conn,
    encode_message,
)

VIP = "2001:db8::10"
CLIENT = "2001:db8:1::7"
RIP = "2001:db8:2::1"
DIRECTOR = "2001:db8:2::fe"
E = tcpstate.TCP_ESTABLISHED


def ip6(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


def record6(**kw: object) -> SyncConn:
    fields: dict[str, object] = {
        "af": AF_INET6,
        "protocol": IPPROTO_TCP,
        "flags": 0,  # MASQ
        "state": E,
        "caddr": ip6(CLIENT),
        "cport": 40000,
        "vaddr": ip6(VIP),
        "vport": 80,
        "daddr": ip6(RIP),
        "dport": 8080,
        "fwmark": 0,
        "timeout": 900,
    }
    fields.update(kw)
    return SyncConn(**fields)  # type: ignore[arg-type]


def test_v6_record_layout_field_by_field() -> None:
    data = encode_conn(record6(fwmark=7, flags=0x0100))
    assert len(data) == 72
    # struct ip_vs_sync_v6, every field big-endian
    expected = struct.pack(
        "!BBHIHHHHII16s16s16s",
        1,  # type: STYPE_F_INET6
        IPPROTO_TCP,
        72,  # ver_size: version 0 << 12 | 72
        0x0100,  # flags (IP_VS_CONN_F_NOOUTPUT)
        E,
        40000,
        80,
        8080,
        7,
        900,
        ipaddress.IPv6Address(CLIENT).packed,
        ipaddress.IPv6Address(VIP).packed,
        ipaddress.IPv6Address(RIP).packed,
    )
    assert data == expected


def test_v6_record_with_sequence_and_persistence_engine_options() -> None:
    seq = (1, 2, 3, 4, 5, 6)
    data = encode_conn(record6(seq=seq, pe_data=b"call", pe_name=b"sip"))
    # IPVS_OPT_SEQ_DATA (1): two struct ip_vs_seq; IPVS_OPT_PE_DATA (2); IPVS_OPT_PE_NAME (3)
    assert data[72:74] == bytes([1, 24])
    assert struct.unpack("!6I", data[74:98]) == seq
    assert data[98:] == bytes([2, 4]) + b"call" + bytes([3, 3]) + b"sip"
    assert struct.unpack("!H", data[2:4])[0] == len(data) == 72 + 26 + 6 + 5
    msg = encode_message(3, [record6(seq=seq), record6(cport=1)])
    # the second record starts on a 32-bit boundary: 98 -> 100
    assert msg[8 + 98 : 8 + 100] == b"\0\0" and msg[8 + 100] == 1
    decoded = decode_message(msg)
    assert decoded.conns == [record6(seq=seq), record6(cport=1)]
    # Persistence-engine data needs that engine on the backup: the record is skipped alone.
    skipped = decode_message(
        encode_message(3, [record6(pe_data=b"call", pe_name=b"sip"), record6()])
    )
    assert (skipped.skipped, skipped.conns) == (1, [record6()])


def test_v6_message_mixing_families_and_a_template() -> None:
    v4 = SyncConn(
        AF_INET, IPPROTO_UDP, 0, 0, 0x0A000001, 53, 0x0A000002, 53, 0x0A000003, 53, 0, 300
    )
    template = record6(
        protocol=IPPROTO_TCP,
        flags=IP_VS_CONN_F_TEMPLATE,
        state=0,
        caddr=ip6("2001:db8:1::"),
        cport=0,
        dport=8080,
        timeout=300,
    )
    recs = [template, record6(), v4]
    msg = encode_message(0, recs)
    assert struct.unpack("!H", msg[2:4])[0] == len(msg) == 8 + 72 + 72 + 36
    assert (msg[8], msg[8 + 72], msg[8 + 144]) == (1, 1, 0)
    assert decode_message(msg).conns == recs


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (8 + 60, "dropping buffer, msg > buffer"),  # the record's size runs past the datagram
    ],
)
def test_truncated_v6_record_is_dropped(cut: int, reason: str) -> None:
    msg = bytearray(encode_message(0, [record6()]))
    del msg[cut:]
    struct.pack_into("!H", msg, 2, len(msg))
    with pytest.raises(SyncError) as info:
        decode_message(bytes(msg))
    assert info.value.reason == reason


def test_v6_record_claiming_ipv4_size_is_dropped() -> None:
    """type says IPv6 but ver_size only 36: the addresses do not fit in the record."""
    msg = bytearray(encode_message(0, [record6()]))
    struct.pack_into("!H", msg, 8 + 2, 36)
    with pytest.raises(SyncError) as info:
        decode_message(bytes(msg))
    assert info.value.reason == "dropping buffer, record shorter than its addresses"


def farm6(engine: Engine, **svc_kw: object) -> ServiceSpec:
    fields: dict[str, object] = {"scheduler": "rr", "netmask": 128, **svc_kw}
    vs = ServiceSpec(af=AF_INET6, protocol=IPPROTO_TCP, addr=VIP, port=80, **fields)  # type: ignore[arg-type]
    engine.add_service(vs)
    engine.add_dest(vs, DestSpec(af=AF_INET6, addr=RIP, port=8080, fwd=int(FwdMethod.MASQ)))
    engine.set_path(AF_INET6, ip6(RIP), ip6(DIRECTOR), 1500)
    return vs


def tcp6(flags: str, sport: int = 40000) -> bytes:
    return bytes(IPv6(src=CLIENT, dst=VIP) / TCP(sport=sport, dport=80, flags=flags))


def test_master_syncs_a_nat66_connection_and_its_template_and_a_backup_takes_over() -> None:
    master = Engine(random.Random(1))
    farm6(master, persistent=True, timeout=300, netmask=64)
    master.start_daemon(DaemonSpec(state="master", syncid=5))
    assert master.sync_master is not None
    for t, flags in enumerate(("S", "A", "PA")):
        assert master.handle(tcp6(flags), t / 10).verdict == Verdict.REWRITE
    datagrams = master.sync_master.datagrams_to_send(5.0)
    records = [r for d in datagrams for r in decode_message(d).conns]
    assert all(d[8] & 1 for d in datagrams)  # every record is an IPv6 one
    templates = [r for r in records if r.flags & IP_VS_CONN_F_TEMPLATE]
    conns = [r for r in records if not r.flags & IP_VS_CONN_F_TEMPLATE]
    assert templates and templates[0].caddr == ip6("2001:db8:1::")  # client masked to /64
    assert (templates[0].cport, templates[0].timeout) == (0, 300)
    (rec,) = {(r.caddr, r.cport, r.state, r.daddr, r.dport) for r in conns}
    assert rec == (ip6(CLIENT), 40000, E, ip6(RIP), 8080)

    backup = Engine(random.Random(2))
    farm6(backup, persistent=True, timeout=300, netmask=64)
    backup.start_daemon(DaemonSpec(state="backup", syncid=5))
    assert backup.apply_synced(records, 10.0) == len(records)
    key = flow_key(AF_INET6, IPPROTO_TCP, ip6(CLIENT), 40000, ip6(VIP), 80)
    cp = backup.table.conn_in[key]
    assert cp.flags & CF_SYNC and cp.state == E and cp.dest.svc is not None
    assert any(c.flags & CF_TEMPLATE for c in backup.table.templates.values())
    backup.now = 10.0
    listed = sorted((c.template, c.caddr, c.state, c.daddr) for c in backup.conns())
    assert listed == [
        (False, CLIENT, "ESTABLISHED", RIP),
        (True, "2001:db8:1::", "NONE", RIP),
    ]
    # After a failover the backup forwards the client's next packet on the synced connection.
    action = backup.handle(tcp6("PA"), 11.0)
    assert action.verdict == Verdict.REWRITE
    assert action.packet is not None
    out = IPv6(bytes(action.packet))
    assert (out.dst, out[TCP].dport) == (RIP, 8080)
    # A new client port of the same /64 sticks to the synced template's real server.
    new = backup.handle(tcp6("S", sport=40001), 12.0)
    assert new.verdict == Verdict.REWRITE and new.packet is not None
    assert IPv6(bytes(new.packet)).dst == RIP
