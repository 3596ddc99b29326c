"""The connection table: keys, both-direction lookups and the timer wheel, with a fake clock."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pylvs.core.conntrack import (
    CF_NOOUTPUT,
    CF_TEMPLATE,
    Conn,
    ConnTable,
    flow_key,
    join_parts,
    split_key,
    split_parts,
)
from pylvs.core.service import Dest

CLIENT, VIP, RIP = 0xC6336401, 0xC000020A, 0xCB007105


def table() -> tuple[ConnTable, list[Conn]]:
    gone: list[Conn] = []
    return ConnTable(gone.append), gone


def new_conn(cport: int, timeout: int = 60, flags: int = 0) -> Conn:
    dest = Dest(af=4, addr=RIP, port=8080)
    return Conn(flow_key(4, 6, CLIENT, cport, VIP, 80), dest, flags, 0, timeout)


@given(
    st.sampled_from([4, 6]),
    st.integers(0, 255),
    st.integers(0, 2**128 - 1),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**128 - 1),
    st.integers(0, 0xFFFF),
)
def test_keys_round_trip(af: int, proto: int, sa: int, sp: int, da: int, dp: int) -> None:
    if af == 4:
        sa, da = sa & 0xFFFFFFFF, da & 0xFFFFFFFF
    assert split_key(flow_key(af, proto, sa, sp, da, dp)) == (af, proto, sa, sp, da, dp)


def test_lookup_from_both_directions() -> None:
    t, _ = table()
    cp = new_conn(40000)
    t.add(cp, 0.0)
    assert t.conn_in[flow_key(4, 6, CLIENT, 40000, VIP, 80)] is cp
    # The real server's reply: RIP:8080 -> client:40000.
    assert t.conn_out[flow_key(4, 6, RIP, 8080, CLIENT, 40000)] is cp
    dr = new_conn(40001, flags=CF_NOOUTPUT | 3)
    t.add(dr, 0.0)
    assert flow_key(4, 6, RIP, 8080, CLIENT, 40001) not in t.conn_out


def test_expiry_and_refresh_with_fake_clock() -> None:
    t, gone = table()
    a, b = new_conn(1, timeout=10), new_conn(2, timeout=10)
    t.add(a, 0.0)
    t.add(b, 0.0)
    t.refresh(b, 5.0)  # b now due at 15
    assert t.expire(9.0) == 0
    assert t.expire(10.0) == 1 and gone == [a]
    assert t.expire(14.0) == 0
    assert t.expire(15.0) == 1 and gone == [a, b]
    assert len(t) == 0 and t.conn_out == {}


def test_shorter_timeout_moves_the_deadline_earlier() -> None:
    t, gone = table()
    cp = new_conn(1, timeout=900)
    t.add(cp, 0.0)
    cp.timeout = 10
    t.refresh(cp, 1.0)
    assert t.expire(11.0) == 1 and gone == [cp]
    assert t.expire(1000.0) == 0  # the stale entry in the old bucket is skipped


def test_template_controlling_connections_is_rearmed_for_60s() -> None:
    t, gone = table()
    tpl = new_conn(0, timeout=30, flags=CF_TEMPLATE)
    t.add(tpl, 0.0)
    tpl.n_control = 1
    assert t.expire(30.0) == 0 and tpl.timeout == 60
    tpl.n_control = 0
    assert t.expire(89.0) == 0
    assert t.expire(90.0) == 1 and gone == [tpl]


def test_expiry_work_is_proportional_to_what_expires() -> None:
    t, gone = table()
    for port in range(1000):
        t.add(new_conn(port, timeout=100 + port), 0.0)
    assert t.expire(100.0) == 1
    assert t.expire(109.0) == 9
    assert len(gone) == 10 and len(t) == 990


# -- the two-level indexes ------------------------------------------------------------------


@given(
    st.sampled_from([4, 6]),
    st.integers(0, 255),
    st.integers(0, 2**128 - 1),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**128 - 1),
    st.integers(0, 0xFFFF),
)
def test_key_parts_round_trip(af: int, proto: int, sa: int, sp: int, da: int, dp: int) -> None:
    if af == 4:
        sa, da = sa & 0xFFFFFFFF, da & 0xFFFFFFFF
    key = flow_key(af, proto, sa, sp, da, dp)
    vkey, ckey = split_parts(key)
    assert join_parts(vkey, ckey) == key
    assert ckey == sa << 16 | sp
    # The virtual part is the same for every client of one virtual address and port.
    assert split_parts(flow_key(af, proto, sa ^ 1, sp ^ 1, da, dp))[0] == vkey
    if af == 4:
        assert vkey < 2**64 and ckey < 2**64  # machine integers on PyPy


def test_views_by_full_key_and_emptied_inner_dicts() -> None:
    t, gone = table()
    a, b = new_conn(1, timeout=10), new_conn(2, timeout=20)
    dr = new_conn(3, timeout=10, flags=CF_NOOUTPUT | 3)
    for cp in (a, b, dr):
        t.add(cp, 0.0)
    key_a = flow_key(4, 6, CLIENT, 1, VIP, 80)
    assert len(t.conn_in) == 3 and len(t.conn_out) == 2 and len(t) == 3
    assert set(t.conn_in) == {flow_key(4, 6, CLIENT, port, VIP, 80) for port in (1, 2, 3)}
    assert dict(t.conn_out.items()) == {
        flow_key(4, 6, RIP, 8080, CLIENT, 1): a,
        flow_key(4, 6, RIP, 8080, CLIENT, 2): b,
    }
    assert key_a in t.conn_in and t.conn_in.get(key_a) is a and t.conn_in[key_a] is a
    assert t.conn_in.get(flow_key(4, 6, CLIENT, 9, VIP, 80)) is None
    assert "x" not in t.conn_in
    with pytest.raises(KeyError):
        t.conn_out[flow_key(4, 6, RIP, 8080, CLIENT, 3)]
    assert sorted(cp.ckey for cp in t.conn_in.values()) == [CLIENT << 16 | p for p in (1, 2, 3)]
    # One virtual part object for the connections of one virtual address and port.
    assert a.vkey is b.vkey is dr.vkey
    assert t.expire(10.0) == 2 and gone == [a, dr]
    assert t.expire(20.0) == 1
    # No inner dict is left behind for a virtual address or real server without connections.
    assert t.flows_in == {} and t.flows_out == {} and t.conn_in == {}


def test_deadline_is_the_last_refresh_plus_the_timeout() -> None:
    t, _ = table()
    cp = new_conn(1, timeout=60)
    now = 12.5
    t.add(cp, now)
    assert cp.seen is now and cp.expires == 72.5
    cp.timeout = 120
    t.refresh(cp, 30.25)
    assert cp.expires == 150.25


def test_key_setter_sets_both_parts() -> None:
    cp = new_conn(5)
    key = flow_key(4, 6, CLIENT, 0, VIP, 0xFFFF)
    cp.key = key
    assert cp.key == key and cp.fields == (4, 6, CLIENT, 0, VIP, 0xFFFF)
    assert cp.dport == 8080 and cp.out_key() == flow_key(4, 6, RIP, 8080, CLIENT, 0)
