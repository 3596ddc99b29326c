"""Node and link status (pylvs.core.hbmembership) stepped with a fake clock, and replayed over
the messages of a real heartbeat 3.0.6 node that was killed and restarted eight times."""

from __future__ import annotations

from pathlib import Path

import dpkt

from pylvs.core.hbmembership import (
    DEAD,
    NODE_TRANSITIONS,
    LateHeartbeat,
    LinkStatus,
    Membership,
    NodeRestarted,
    NodeStatus,
    Timing,
)
from pylvs.core.hbmsg import AuthKey, decode

CAPTURE = Path(__file__).resolve().parents[2] / "data" / "heartbeat-3.0.6-ucast-sha1.pcap"
TIMING = Timing(keepalive=0.2, deadtime=1.0, warntime=0.6, initdead=2.0)


def _m(now: float = 0.0) -> Membership:
    return Membership("nodeb", ["nodea", "nodeb", "nodec"], TIMING, now)


def test_a_node_is_dead_after_deadtime_and_back_with_its_next_message() -> None:
    m = _m()
    h = m.heard("nodea", "eth0", 0.1, generation=1, seq=1, status="up")
    assert h.accepted and NodeStatus("nodea", "never", "up") in h.events
    assert LinkStatus("nodea", "eth0", "up") in h.events
    assert m.heard("nodea", "eth0", 0.3, 1, 2, "active").events == (
        NodeStatus("nodea", "up", "active"),
    )
    assert m.tick(1.2) == []
    assert m.deadline() == 1.3
    assert m.tick(1.31) == [
        LinkStatus("nodea", "eth0", DEAD),
        NodeStatus("nodea", "active", DEAD),
    ]
    assert m.status("nodea") == DEAD and m.link("nodea", "eth0") == DEAD
    h = m.heard("nodea", "eth0", 5.0, 2, 1, "init")
    assert NodeRestarted("nodea", 2) in h.events and NodeStatus("nodea", DEAD, "init") in h.events


def test_initdead_until_first_heard_and_unknown_or_own_names() -> None:
    m = _m(10.0)
    assert m.tick(11.5) == []  # deadtime has passed, initdead has not
    assert m.tick(12.01) == [NodeStatus("nodea", "never", DEAD), NodeStatus("nodec", "never", DEAD)]
    assert m.status("nodeb") == "unknown"  # this node itself is not tracked
    h = m.heard("intruder", "eth0", 12.1, 1, 1, "active")
    assert not h.accepted and m.refused["unknown node"] == 1


def test_one_medium_lost_of_two_is_a_dead_link_not_a_dead_node() -> None:
    m = _m()
    t = 0.0
    for seq in range(1, 30):
        t += 0.2
        m.heard("nodea", "eth0", t, 1, seq, "active")
        if t < 1.0:
            m.heard("nodea", "eth1", t, 1, seq, "active")  # the same message: a duplicate
        events = m.tick(t)
        assert NodeStatus("nodea", "active", DEAD) not in events
    assert m.link("nodea", "eth1") == DEAD and m.link("nodea", "eth0") == "up"
    assert m.status("nodea") == "active"
    assert m.refused["duplicate"] == 4


def test_replays_are_refused() -> None:
    m = _m()
    m.heard("nodea", "eth0", 0.1, 5, 10, "active")
    assert m.heard("nodea", "eth0", 0.2, 4, 11, "dead").reason == "generation 4 is old"
    assert m.heard("nodea", "eth0", 0.3, 5, 10, "dead").reason == "duplicate"
    for seq in range(11, 200):
        m.heard("nodea", "eth0", 0.3, 5, seq, "active")
    assert m.heard("nodea", "eth0", 0.4, 5, 50, "dead").reason == "stale"
    assert m.status("nodea") == "active"


def test_only_status_messages_keep_a_node_alive_with_its_own_deadtime() -> None:
    m = Membership("nodeb", ["nodea", "nodeb"], TIMING, 0.0)
    m.heard("nodea", "eth0", 0.0, 1, 1, "active", deadtime=3.0)  # dt=bb8 during its first 5 s
    for i in range(2, 30):
        m.heard("nodea", "eth0", i * 0.1, 1, i)  # NS_ackmsg, resource...: not heartbeats
    assert m.tick(2.9) == []
    assert NodeStatus("nodea", "active", DEAD) in m.tick(3.01)


def test_late_heartbeat() -> None:
    m = _m()
    m.heard("nodea", "eth0", 0.0, 1, 1, "active")
    h = m.heard("nodea", "eth0", 0.7, 1, 2, "active")
    assert h.events == (LateHeartbeat("nodea", 700),)


def test_every_transition_of_the_table_is_reachable() -> None:
    assert set(NODE_TRANSITIONS) == {
        (s, e) for s in ("never", "alive", "dead") for e in ("heard", "timeout")
    }


def test_replay_of_a_real_node_killed_eight_times() -> None:
    """As nodeb saw nodea: every kill -9 (a gap of 2.3 to 26 s) is one death and one restart, and
    no death is declared anywhere else, with nodea's advertised deadtime and a tick every 50 ms.
    Only status messages count: acks and resource messages do not keep a node alive."""
    keys = {1: AuthKey(1, "sha1", b"hbpeer-test-key")}
    m: Membership | None = None
    deaths, restarts = [], []
    with CAPTURE.open("rb") as f:
        for ts, frame in dpkt.pcap.Reader(f):
            msg = decode(bytes(dpkt.ethernet.Ethernet(frame).data.data.data), keys)
            if m is None:
                m = Membership("nodeb", ["nodea", "nodeb"], TIMING, ts)
                clock = ts
            if msg.get("src") != "nodea":
                continue
            while clock + 0.05 < ts:
                clock += 0.05
                deaths += [e for e in m.tick(clock) if isinstance(e, NodeStatus) and e.new == DEAD]
            status = msg.get("st") if msg.get("t") == "status" else None
            dt = msg.hex("dt")
            deadtime = dt / 1000 if dt is not None else None
            heard = m.heard("nodea", "eth0", ts, msg.hex("hg"), msg.hex("seq"), status, deadtime)
            restarts += [e for e in heard.events if isinstance(e, NodeRestarted)]
    assert len(deaths) == 8
    assert len(restarts) == 8
    assert m is not None and m.status("nodea") == "active"
