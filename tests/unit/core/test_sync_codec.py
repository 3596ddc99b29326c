"""Connection synchronisation: the wire format against ip_vs_sync.c's struct layout, the master's
"when to sync" rule, its send buffer, and a backup applying records to its connection table."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP

from pylvs.core import tcpstate
from pylvs.core.conntrack import CF_INACTIVE, CF_NOOUTPUT, CF_SYNC, CF_TEMPLATE, flow_key
from pylvs.core.control import DaemonSpec, DestSpec, IPVSError, ServiceSpec
from pylvs.core.engine import Engine
from pylvs.core.service import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, FwdMethod
from pylvs.core.sync import (
    IP_VS_CONN_F_INACTIVE,
    IP_VS_CONN_F_NOOUTPUT,
    IP_VS_CONN_F_TEMPLATE,
    SyncConn,
    SyncError,
    SyncMaster,
    decode_message,
    encode_conn,
    encode_message,
    flags_from_wire,
    flags_to_wire,
    sync_conn_needed,
)

VIP = "192.0.2.10"
CLIENT = "198.51.100.7"
RIP = "203.0.113.1"


def ip(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return a << 24 | b << 16 | c << 8 | d


def record(**kw: object) -> SyncConn:
    fields: dict[str, object] = {
        "af": AF_INET,
        "protocol": IPPROTO_TCP,
        "flags": 3 | IP_VS_CONN_F_NOOUTPUT,
        "state": tcpstate.TCP_ESTABLISHED,
        "caddr": ip(CLIENT),
        "cport": 40000,
        "vaddr": ip(VIP),
        "vport": 80,
        "daddr": ip(RIP),
        "dport": 80,
        "fwmark": 0,
        "timeout": 900,
    }
    fields.update(kw)
    return SyncConn(**fields)  # type: ignore[arg-type]


# -- byte layout -------------------------------------------------------------------------------


def test_v1_record_layout_field_by_field() -> None:
    rec = record(fwmark=7, flags=0x0183)
    data = encode_conn(rec)
    assert len(data) == 36
    assert data[0] == 0  # type: IPv4
    assert data[1] == IPPROTO_TCP
    assert struct.unpack("!H", data[2:4])[0] == 36  # version 0 << 12 | size
    assert struct.unpack("!I", data[4:8])[0] == 0x0183  # flags
    assert struct.unpack("!H", data[8:10])[0] == tcpstate.TCP_ESTABLISHED
    assert struct.unpack("!H", data[10:12])[0] == 40000  # cport
    assert struct.unpack("!H", data[12:14])[0] == 80  # vport
    assert struct.unpack("!H", data[14:16])[0] == 80  # dport
    assert struct.unpack("!I", data[16:20])[0] == 7  # fwmark
    assert struct.unpack("!I", data[20:24])[0] == 900  # timeout in seconds
    assert data[24:28] == bytes([198, 51, 100, 7])  # caddr
    assert data[28:32] == bytes([192, 0, 2, 10])  # vaddr
    assert data[32:36] == bytes([203, 0, 113, 1])  # daddr


def test_v1_message_header_layout() -> None:
    msg = encode_message(9, [record(), record(cport=40001)])
    assert msg[0] == 0  # reserved: a v0 receiver sees nr_conns 0 and drops it
    assert msg[1] == 9  # syncid
    assert struct.unpack("!H", msg[2:4])[0] == len(msg) == 8 + 2 * 36
    assert msg[4] == 2  # nr_conns
    assert msg[5] == 1  # version
    assert msg[6:8] == b"\0\0"  # spare


def test_hashed_flag_is_never_sent() -> None:
    data = encode_conn(record(flags=0x0040 | 3))
    assert struct.unpack("!I", data[4:8])[0] == 3


def test_round_trip_ipv4_ipv6_and_options_with_padding() -> None:
    seq = (1, 2, 3, 4, 5, 6)
    recs = [
        record(seq=seq),  # 36 + 26 bytes: the next record is padded to 64
        record(
            af=AF_INET6,
            caddr=0x20010DB8 << 96 | 1,
            vaddr=0x20010DB8 << 96 | 2,
            daddr=0x20010DB8 << 96 | 3,
        ),
        record(protocol=IPPROTO_UDP, state=0, timeout=300, flags=0),
    ]
    msg = encode_message(4, recs)
    assert struct.unpack("!H", msg[8 + 2 : 8 + 4])[0] == 62
    assert msg[8 + 62 : 8 + 64] == b"\0\0"  # padding before the second record
    assert msg[8 + 64] == 1  # IPv6 type bit
    decoded = decode_message(msg)
    assert decoded.version == 1 and decoded.syncid == 4 and decoded.skipped == 0
    assert decoded.conns == recs


def test_v0_message_decodes() -> None:
    body = struct.pack(
        "!BBHHHIIIHH",
        0,
        IPPROTO_TCP,
        40000,
        80,
        80,
        ip(CLIENT),
        ip(VIP),
        ip(RIP),
        0x0003 | 0x0040,
        tcpstate.TCP_FIN_WAIT,
    )
    tpl = struct.pack(
        "!BBHHHIIIHH",
        0,
        IPPROTO_TCP,
        0,
        80,
        80,
        ip(CLIENT),
        ip(VIP),
        ip(RIP),
        IP_VS_CONN_F_TEMPLATE | 3,
        0,
    )
    msg = struct.pack("!BBH", 2, 5, 4 + 48) + body + tpl
    decoded = decode_message(msg)
    assert decoded.version == 0 and decoded.syncid == 5
    first, second = decoded.conns
    assert (first.cport, first.state, first.flags, first.timeout) == (
        40000,
        tcpstate.TCP_FIN_WAIT,
        3,
        0,  # HASHED masked, no timeout in v0
    )
    assert second.flags & IP_VS_CONN_F_TEMPLATE and second.cport == 0


def test_decoder_faults() -> None:
    good = encode_message(0, [record(), record(cport=2)])
    with pytest.raises(SyncError, match="too short"):
        decode_message(good[:3])
    with pytest.raises(SyncError, match="size"):
        decode_message(good + b"\0")
    # The second record claims more bytes than there are: the first stands.
    bad = bytearray(good)
    struct.pack_into("!H", bad, 8 + 36 + 2, 200)
    with pytest.raises(SyncError) as info:
        decode_message(bytes(bad))
    assert [r.cport for r in info.value.records] == [40000]
    # Unknown protocol or state: that record alone is skipped.
    msg = decode_message(encode_message(0, [record(protocol=132), record(state=11), record()]))
    assert msg.skipped == 2 and len(msg.conns) == 1
    # An unknown mandatory option skips the record; an optional one (bit 6) is ignored.
    for ptype, kept in ((5, 0), (5 | 64, 1)):
        rec = bytearray(encode_conn(record()))
        rec += bytes((ptype, 2, 0xAA, 0xBB))
        struct.pack_into("!H", rec, 2, len(rec))
        raw = struct.pack("!BBHBbH", 0, 0, 8 + len(rec), 1, 1, 0) + bytes(rec)
        assert len(decode_message(raw).conns) == kept


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_fail_cleanly(data: bytes) -> None:
    try:
        msg = decode_message(data)
    except SyncError as exc:
        assert all(isinstance(r, SyncConn) for r in exc.records)
        return
    assert msg.version in (0, 1)
    assert all(isinstance(r, SyncConn) for r in msg.conns)


@given(st.binary(min_size=4, max_size=300))
def test_any_body_with_a_right_size_decodes_or_fails_cleanly(data: bytes) -> None:
    raw = bytearray(data)
    struct.pack_into("!H", raw, 2, len(raw))
    for version_bytes in (b"", b"\0"):
        buf = bytes(version_bytes[:1] + raw[1:]) if version_bytes else bytes(raw)
        try:
            decode_message(buf)
        except SyncError:
            pass


def test_flag_mapping() -> None:
    assert flags_to_wire(3 | CF_INACTIVE | CF_NOOUTPUT) == 3 | 0x0100 | 0x0080
    assert flags_to_wire(0 | CF_TEMPLATE) == 0x1000
    assert flags_from_wire(2 | 0x0100 | 0x0040 | 0x0400) == 2 | CF_INACTIVE
    for cf in range(0x200):
        if cf & 0x80:
            continue  # CF_INVALID is pylvs's own, never sent
        assert flags_from_wire(flags_to_wire(cf)) == cf


# -- when to sync ------------------------------------------------------------------------------

E, S, F, C = (
    tcpstate.TCP_ESTABLISHED,
    tcpstate.TCP_SYN_RECV,
    tcpstate.TCP_FIN_WAIT,
    tcpstate.TCP_CLOSE,
)


@pytest.mark.parametrize(
    ("template", "proto", "state", "old", "pkts", "expected"),
    [
        (True, IPPROTO_TCP, 0, 0, 1, (True, True)),  # templates: always
        (False, IPPROTO_TCP, S, 0, 3, (False, False)),  # SYN_RECV is never synced
        (False, IPPROTO_TCP, E, S, 1, (False, False)),  # entering ESTABLISHED waits for pkts
        (False, IPPROTO_TCP, E, S, 3, (True, True)),
        (False, IPPROTO_TCP, E, E, 53, (True, True)),  # 53 % 50 == 3
        (False, IPPROTO_TCP, E, E, 52, (False, False)),
        (False, IPPROTO_TCP, F, E, 7, (True, True)),  # any other state change: at once
        (False, IPPROTO_TCP, F, F, 7, (False, False)),
        (False, IPPROTO_TCP, C, F, 1, (True, True)),
        (False, IPPROTO_UDP, 0, 0, 3, (True, True)),
        (False, IPPROTO_UDP, 0, 0, 4, (False, False)),
        (False, IPPROTO_UDP, 0, 0, 103, (True, True)),
    ],
)
def test_sync_conn_needed(
    template: bool, proto: int, state: int, old: int, pkts: int, expected: tuple[bool, bool]
) -> None:
    assert sync_conn_needed(template, proto, state, old, pkts) == expected


# -- the master --------------------------------------------------------------------------------


def farm(fwd: FwdMethod = FwdMethod.ROUTE, **svc_kw: object) -> tuple[Engine, ServiceSpec]:
    engine = Engine(random.Random(1))
    vs = ServiceSpec(protocol=IPPROTO_TCP, addr=VIP, port=80, scheduler="rr", **svc_kw)  # type: ignore[arg-type]
    engine.add_service(vs)
    engine.add_dest(vs, DestSpec(addr=RIP, port=80, fwd=int(fwd)))
    return engine, vs


def tcp(flags: str, sport: int = 40000) -> bytes:
    return bytes(IP(src=CLIENT, dst=VIP, ttl=64) / TCP(sport=sport, dport=80, flags=flags))


def test_master_syncs_an_established_dr_connection_at_its_third_packet() -> None:
    engine, _ = farm()
    engine.start_daemon(DaemonSpec(state="master", syncid=7))
    master = engine.sync_master
    assert master is not None
    engine.handle(tcp("S"), 0.0)
    engine.handle(tcp("A"), 0.1)  # ESTABLISHED, packet 2
    assert master.datagrams_to_send(0.2) == []
    engine.handle(tcp("PA"), 0.3)  # packet 3
    assert master.datagrams_to_send(1.0) == []  # not full, not 2 s old yet
    (datagram,) = master.datagrams_to_send(2.5)
    msg = decode_message(datagram)
    assert msg.syncid == 7
    (rec,) = msg.conns
    assert (rec.state, rec.timeout, rec.cport, rec.daddr) == (E, 900, 40000, ip(RIP))
    assert rec.flags == 3 | IP_VS_CONN_F_NOOUTPUT  # active DR connection
    assert master.next_deadline() is None


def test_master_splits_messages_at_maxlen_and_syncs_templates_every_packet() -> None:
    master = SyncMaster(syncid=0, maxlen=8 + 2 * 36)
    for port in range(5):
        master.add(record(cport=port), 0.0)
    full = master.datagrams_to_send(0.0)
    assert [decode_message(d).conns[0].cport for d in full] == [0, 2]
    assert [len(decode_message(d).conns) for d in full] == [2, 2]
    assert len(master.datagrams_to_send(2.0)) == 1

    engine, _ = farm(persistent=True, timeout=300)
    engine.start_daemon(DaemonSpec(state="master"))
    assert engine.sync_master is not None
    engine.handle(tcp("S"), 0.0)
    engine.handle(tcp("A"), 0.1)
    sent = [r for d in engine.sync_master.datagrams_to_send(5.0) for r in decode_message(d).conns]
    assert [bool(r.flags & IP_VS_CONN_F_TEMPLATE) for r in sent] == [True, True]
    assert sent[0].cport == 0 and sent[0].timeout == 300


def test_daemon_errnos() -> None:
    engine = Engine()
    engine.start_daemon(DaemonSpec(state="backup", sync_maxlen=100))
    with pytest.raises(IPVSError) as info:
        engine.start_daemon(DaemonSpec(state="backup"))
    assert info.value.errno == 17  # EEXIST
    assert engine.daemons()[0].sync_maxlen == 1024  # a backup reads at least 1024 bytes
    engine.stop_daemon("backup")
    with pytest.raises(IPVSError) as info:
        engine.stop_daemon("backup")
    assert info.value.errno == 3  # ESRCH
    with pytest.raises(IPVSError):
        engine.start_daemon(DaemonSpec(state="master", mcast_group="10.0.0.1"))


# -- the backup --------------------------------------------------------------------------------


def test_backup_creates_a_synced_connection_bound_to_its_dest() -> None:
    engine, _ = farm()
    assert engine.apply_synced([record()], 10.0) == 1
    key = flow_key(AF_INET, IPPROTO_TCP, ip(CLIENT), 40000, ip(VIP), 80)
    cp = engine.table.conn_in[key]
    assert cp.flags & CF_SYNC and cp.state == E and cp.timeout == 900
    assert cp.dest.svc is not None and cp.dest.activeconns == 1
    engine.now = 10.0
    (info,) = engine.conns()
    assert (info.state, info.expires, info.daddr) == ("ESTABLISHED", 900, RIP)

    # An update: FIN_WAIT, inactive, its new timeout.
    engine.apply_synced([record(state=F, timeout=120, flags=3 | IP_VS_CONN_F_INACTIVE)], 20.0)
    assert cp.state == F and cp.flags & CF_INACTIVE and cp.expires == 140.0
    assert (cp.dest.activeconns, cp.dest.inactconns) == (0, 1)

    # The connection, now on the backup, is forwarded by the backup when the client comes.
    action = engine.handle(tcp("A"), 30.0)
    assert action.verdict.name == "ROUTE"


def test_backup_without_service_keeps_the_connection_unbound_then_binds_it() -> None:
    engine = Engine()
    engine.apply_synced([record(flags=0)], 0.0)  # NAT connection, no service yet
    (cp,) = engine.table.conn_in.values()
    assert cp.dest.svc is None and cp.fwd == FwdMethod.MASQ
    vs = ServiceSpec(protocol=IPPROTO_TCP, addr=VIP, port=80)
    engine.add_service(vs)
    engine.add_dest(vs, DestSpec(addr=RIP, port=80, fwd=int(FwdMethod.MASQ)))
    engine.apply_synced([record(flags=0)], 1.0)
    assert cp.dest.svc is not None and cp.dest.activeconns == 1


def test_backup_replaces_a_connection_moved_to_another_real_server() -> None:
    engine, _ = farm()
    engine.apply_synced([record()], 0.0)
    # An "end" message for the old real server after it was replaced is ignored...
    engine.apply_synced([record(daddr=ip("203.0.113.9"), flags=3 | IP_VS_CONN_F_INACTIVE)], 1.0)
    (cp,) = engine.table.conn_in.values()
    assert cp.dest.addr == ip(RIP)
    # ...an active one replaces it.
    engine.apply_synced([record(daddr=ip("203.0.113.9"))], 2.0)
    (cp,) = engine.table.conn_in.values()
    assert cp.dest.addr == ip("203.0.113.9")


def test_backup_templates_and_v0_timeouts() -> None:
    engine, _ = farm(persistent=True, timeout=300)
    tpl = record(cport=0, state=0, timeout=0, flags=IP_VS_CONN_F_TEMPLATE | 3)
    engine.apply_synced([tpl, record(timeout=0, state=F)], 0.0)
    (ct,) = engine.table.templates.values()
    assert ct.flags & CF_TEMPLATE and ct.timeout == 180 and ct.dest.persistconns == 1
    (cp,) = engine.table.conn_in.values()
    assert cp.timeout == engine.tcp_timeouts[F]
