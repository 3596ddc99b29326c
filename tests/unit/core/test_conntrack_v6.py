"""The connection table with IPv6 keys: both-direction lookups, the key parts, and IPv4 and
IPv6 connections side by side without collisions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pylvs.core.conntrack import (
    CF_NOOUTPUT,
    V6_MARK,
    Conn,
    ConnTable,
    flow_key,
    join_parts,
    split_key,
    split_parts,
)
from pylvs.core.service import AF_INET, AF_INET6, Dest

CLIENT6 = 0x20010DB8_0001_0000 << 64 | 7
VIP6 = 0x20010DB8 << 96 | 0x10
RIP6 = 0x20010DB8_0002_0000 << 64 | 1


def _table() -> tuple[ConnTable, list[Conn]]:
    gone: list[Conn] = []
    return ConnTable(gone.append), gone


def _conn(cport: int, flags: int = 0, port: int = 8080) -> Conn:
    dest = Dest(af=AF_INET6, addr=RIP6, port=port)
    return Conn(flow_key(AF_INET6, 6, CLIENT6, cport, VIP6, 80), dest, flags, 0, 60)


def test_ipv6_lookup_from_both_directions() -> None:
    t, gone = _table()
    cp = _conn(40000)
    t.add(cp, 0.0)
    assert t.conn_in[flow_key(AF_INET6, 6, CLIENT6, 40000, VIP6, 80)] is cp
    assert t.conn_out[flow_key(AF_INET6, 6, RIP6, 8080, CLIENT6, 40000)] is cp
    assert cp.fields == (AF_INET6, 6, CLIENT6, 40000, VIP6, 80)
    assert cp.out_key() == flow_key(AF_INET6, 6, RIP6, 8080, CLIENT6, 40000)
    # The packet path's view: virtual part with the IPv6 mark, client part as for IPv4.
    assert cp.vkey == V6_MARK | 6 << 144 | VIP6 << 16 | 80
    assert cp.ckey == CLIENT6 << 16 | 40000
    assert t.flows_out[V6_MARK | 6 << 144 | RIP6 << 16 | 8080][cp.ckey] is cp
    dr = _conn(40001, flags=CF_NOOUTPUT | 3)
    t.add(dr, 0.0)
    assert flow_key(AF_INET6, 6, RIP6, 8080, CLIENT6, 40001) not in t.conn_out
    t.expire(100.0)
    assert set(map(id, gone)) == {id(cp), id(dr)} and len(t) == 0
    assert t.flows_in == {} and t.flows_out == {}


def test_port_zero_dest_replies_come_from_the_virtual_port() -> None:
    t, _ = _table()
    cp = _conn(1, port=0)
    t.add(cp, 0.0)
    assert cp.dport == 80
    assert t.conn_out[flow_key(AF_INET6, 6, RIP6, 80, CLIENT6, 1)] is cp


def test_ipv4_and_ipv6_keys_never_collide() -> None:
    """An IPv4 connection whose numbers equal the low bits of an IPv6 one stays apart."""
    t, _ = _table()
    v6 = Conn(flow_key(AF_INET6, 6, 7, 1, 0x10, 80), Dest(AF_INET6, 1, 80), 0, 0, 60)
    v4 = Conn(flow_key(AF_INET, 6, 7, 1, 0x10, 80), Dest(AF_INET, 1, 80), 0, 0, 60)
    t.add(v6, 0.0)
    t.add(v4, 0.0)
    assert t.conn_in[flow_key(AF_INET6, 6, 7, 1, 0x10, 80)] is v6
    assert t.conn_in[flow_key(AF_INET, 6, 7, 1, 0x10, 80)] is v4
    assert t.conn_out[flow_key(AF_INET6, 6, 1, 80, 7, 1)] is v6
    assert t.conn_out[flow_key(AF_INET, 6, 1, 80, 7, 1)] is v4
    assert len(t.flows_in) == 2 and len(t.flows_out) == 2


@given(
    st.integers(0, 255),
    st.integers(0, 2**128 - 1),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**128 - 1),
    st.integers(0, 0xFFFF),
)
def test_ipv6_parts_are_what_the_packet_path_builds(
    proto: int, sa: int, sp: int, da: int, dp: int
) -> None:
    key = flow_key(AF_INET6, proto, sa, sp, da, dp)
    vkey, ckey = split_parts(key)
    assert vkey == V6_MARK | proto << 144 | da << 16 | dp
    assert ckey == sa << 16 | sp
    assert join_parts(vkey, ckey) == key
    assert split_key(key) == (AF_INET6, proto, sa, sp, da, dp)
