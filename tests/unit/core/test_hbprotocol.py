"""Two heartbeat nodes over a simulated network with a fake clock: the whole protocol, sans I/O.

The network delivers each datagram on every medium after a millisecond, unless the medium is
cut, lossy or the receiver is dead; resource jobs run at once on a fake host.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.core import hbmsg
from pylvs.core.hbmembership import Timing
from pylvs.core.hbnode import Outbox
from pylvs.core.hbping import PingTracker, echo_request, parse_echo_reply
from pylvs.core.hbprotocol import HeartbeatNode, NodeConfig, Probe, Stopped, Transmit
from pylvs.core.hbresource import Job, Log

KEY = hbmsg.AuthKey(1, "sha1", b"hbpeer-test-key")
GROUPS = (("IPaddr2::10.77.0.100", "nodea"),)
VIP = "IPaddr2::10.77.0.100"
WALL0 = 1_800_000_000.0


@dataclass
class Host:
    node: HeartbeatNode
    running: set[str] = field(default_factory=set)
    alive: bool = True
    logs: list[str] = field(default_factory=list)
    stopped: bool = False


class Net:
    def __init__(
        self,
        media: tuple[str, ...] = ("eth0",),
        keepalive: float = 0.1,
        deadtime: float = 0.5,
        initdead: float = 2.0,
        auto_failback: str = "on",
        seed: int = 1,
        ping: tuple[str, ...] = (),
    ) -> None:
        self.now = 0.0
        self.media = media
        self.rng = random.Random(seed)
        self.loss: dict[str, float] = {}
        self.cut: set[str] = set()
        self.in_flight: list[tuple[float, int, str, str, bytes]] = []
        self.count = 0
        self.timing = Timing(keepalive, deadtime, deadtime / 2, initdead)
        self.auto_failback = auto_failback
        self.hosts: dict[str, Host] = {}
        self.history: list[tuple[float, str, set[str]]] = []
        self.generation = {"nodea": 10, "nodeb": 20}
        self.wire: list[tuple[str, bytes]] = []
        self.ping = ping
        self.ping_ok = {"nodea": True, "nodeb": True}
        self.pongs: list[tuple[float, str, str]] = []

    def config(self, me: str) -> NodeConfig:
        pings = tuple((host, (host,)) for host in self.ping)
        return NodeConfig(
            me,
            ("nodea", "nodeb"),
            self.timing,
            KEY,
            {1: KEY},
            GROUPS,
            self.auto_failback,
            pings,
            self.timing.deadtime,
        )

    def start(self, name: str) -> None:
        self.generation[name] += 1
        uuid = (name * 4).encode()[:16].ljust(16, b"\0")
        node = HeartbeatNode(
            self.config(name), uuid, self.generation[name], random.Random(name), load="0.00"
        )
        old = self.hosts.get(name)
        self.hosts[name] = Host(node, set(old.running) if old else set())
        self.apply(name, node.start(self.now, WALL0 + self.now))

    def kill(self, name: str) -> None:
        self.hosts[name].alive = False

    def apply(self, name: str, actions: list[object]) -> None:
        host = self.hosts[name]
        for action in actions:
            if isinstance(action, Transmit):
                self.wire.append((name, action.data))
                for medium in self.media:
                    if medium in self.cut or self.rng.random() < self.loss.get(medium, 0.0):
                        continue
                    self.count += 1
                    item = (self.now + 0.001, self.count, name, medium, action.data)
                    heapq.heappush(self.in_flight, item)
            elif isinstance(action, Job):
                before = {g: g in host.running for g in action.groups}
                if action.op == "take":
                    host.running.update(action.groups)
                elif action.op == "give":
                    host.running.difference_update(action.groups)
                self.apply(name, host.node.job_done(action.id, before, self.now, WALL0 + self.now))
            elif isinstance(action, Log):
                host.logs.append(action.text)
            elif isinstance(action, Stopped):
                host.stopped = True
            elif isinstance(action, Probe) and self.ping_ok[name]:
                self.pongs.append((self.now + 0.001, name, action.host))
        self.history.append((self.now, name, set(host.running)))

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        spins = 0
        while True:
            times = [self.in_flight[0][0]] if self.in_flight else []
            times += [t for t, _n, _h in self.pongs]
            for host in self.hosts.values():
                deadline = host.node.deadline() if host.alive else None
                if deadline is not None:
                    times.append(deadline)
            if not times:
                break
            nxt = min(times)
            if nxt > end:
                break
            spins = spins + 1 if nxt <= self.now else 0
            assert spins < 1000, "a deadline that tick() does not move"
            self.now = max(self.now, nxt)
            while self.in_flight and self.in_flight[0][0] <= self.now:
                _t, _n, src, medium, data = heapq.heappop(self.in_flight)
                for name, host in self.hosts.items():
                    if name != src and host.alive:
                        self.apply(
                            name, host.node.receive(data, medium, self.now, WALL0 + self.now)
                        )
            for pong in [p for p in self.pongs if p[0] <= self.now]:
                self.pongs.remove(pong)
                _t, name, ping_host = pong
                if self.hosts[name].alive:
                    node = self.hosts[name].node
                    self.apply(name, node.ping_reply(ping_host, self.now, WALL0 + self.now))
            for name, host in self.hosts.items():
                if host.alive:
                    deadline = host.node.deadline()
                    if deadline is not None and deadline <= self.now:
                        self.apply(name, host.node.tick(self.now, WALL0 + self.now))
        self.now = end

    def run_until(self, predicate, timeout: float, step: float = 0.01) -> float:
        start = self.now
        while self.now - start < timeout:
            if predicate():
                return self.now - start
            self.run(step)
        raise AssertionError("condition not reached")

    def holder(self) -> list[str]:
        return sorted(n for n, h in self.hosts.items() if VIP in h.running and h.alive)


def test_both_start_become_active_and_the_preferred_node_takes_its_group() -> None:
    net = Net()
    net.start("nodea")
    net.start("nodeb")
    net.run(1.0)
    a, b = net.hosts["nodea"].node, net.hosts["nodeb"].node
    assert a.node_status("nodeb") == "active" and b.node_status("nodea") == "active"
    assert a.node_status("nodea") == "active"
    assert a.link_status("nodeb", "eth0") == "up"
    net.run(11.0)  # both started together: heartbeat waits RQSTDELAY
    assert net.holder() == ["nodea"]
    # nodeb "holds" its local set, empty in this haresources, as heartbeat reports it
    assert a.rm.resource_state() == "local" and b.rm.resource_state() == "local"
    kinds = [hbmsg.decode(d).get("t") for _s, d in net.wire]
    assert {"reqnodes", "repnodes", "starting", "resource", "NS_ackmsg"} <= set(kinds)


def test_first_status_messages_and_the_advertised_deadtime() -> None:
    net = Net(deadtime=0.5)
    net.start("nodea")
    first = [hbmsg.decode(d) for _s, d in net.wire[:2]]
    assert [(m.get("st"), m.get("seq"), m.get("dt")) for m in first] == [
        ("init", "1", "9c4"),  # 500 ms + 2000 ms for the first 5 s
        ("up", "2", "9c4"),
    ]
    net.run(6.0)
    last = hbmsg.decode(net.wire[-1][1])
    assert last.get("t") == "status" and last.get("dt") == "1f4" and last.get("st") == "active"


def test_alone_after_initdead_takes_everything() -> None:
    net = Net(initdead=2.0)
    net.start("nodea")
    net.run(1.9)
    assert net.holder() == []
    net.run(0.5)
    assert net.holder() == ["nodea"]
    assert "node nodeb: is dead" in net.hosts["nodea"].logs


def _steady(auto_failback: str = "on", media: tuple[str, ...] = ("eth0",)) -> Net:
    net = Net(auto_failback=auto_failback, media=media)
    net.start("nodea")
    net.start("nodeb")
    net.run(12.0)
    assert net.holder() == ["nodea"]
    return net


def test_kill9_of_the_holder_fails_over_within_the_deadtime() -> None:
    net = _steady()
    net.kill("nodea")
    took = net.run_until(lambda: VIP in net.hosts["nodeb"].running, timeout=3.0)
    assert 0.5 <= took <= 0.75  # deadtime 500 ms after the last status, checked at once
    assert "node nodea: is dead" in net.hosts["nodeb"].logs


def test_killed_node_restarts_and_auto_failback_brings_the_group_home() -> None:
    net = _steady("on")
    net.kill("nodea")
    net.run(1.0)
    net.hosts["nodea"].running.clear()  # it rebooted: nothing is configured any more
    net.start("nodea")
    took = net.run_until(lambda: net.holder() == ["nodea"], timeout=5.0)
    assert took < 3.0
    assert "Heartbeat restart on node nodea" in net.hosts["nodeb"].logs


def test_graceful_stop_hands_over_at_once() -> None:
    net = _steady()
    host = net.hosts["nodea"]
    net.apply("nodea", host.node.shutdown(net.now, WALL0 + net.now))
    took = net.run_until(lambda: VIP in net.hosts["nodeb"].running and host.stopped, timeout=2.0)
    assert took < 0.1
    assert host.running == set()
    assert "Received shutdown notice from 'nodea'." in net.hosts["nodeb"].logs


def test_standby_and_takeover() -> None:
    net = _steady()
    a = net.hosts["nodea"]
    net.apply("nodea", a.node.standby("all", net.now, WALL0 + net.now))
    net.run_until(lambda: net.holder() == ["nodeb"], timeout=1.0)
    net.run(0.5)
    net.apply("nodea", a.node.takeover("all", net.now, WALL0 + net.now))
    net.run_until(lambda: net.holder() == ["nodea"], timeout=1.0)


def test_one_lost_medium_of_two_is_a_dead_link_not_a_dead_node() -> None:
    net = _steady(media=("eth0", "eth1"))
    net.cut.add("eth1")
    net.run(3.0)
    b = net.hosts["nodeb"]
    assert b.node.node_status("nodea") == "active"
    assert b.node.link_status("nodea", "eth1") == "dead"
    assert b.node.link_status("nodea", "eth0") == "up"
    assert "Link nodea:eth1 dead." in b.logs
    assert net.holder() == ["nodea"]
    net.cut.clear()
    net.run(1.0)
    assert b.node.link_status("nodea", "eth1") == "up"


def test_heavy_loss_on_one_medium_causes_no_failover() -> None:
    net = _steady(media=("eth0", "eth1"))
    net.loss["eth0"] = 0.3
    mark = len(net.history)
    net.run(120.0)
    assert all(VIP not in running for _t, name, running in net.history[mark:] if name == "nodeb")
    assert net.holder() == ["nodea"]
    assert "node nodea: is dead" not in net.hosts["nodeb"].logs


def test_lost_messages_are_asked_for_again() -> None:
    net = _steady()
    net.loss["eth0"] = 0.2
    net.run(10.0)
    net.loss.clear()
    net.run(2.0)
    a, b = net.hosts["nodea"].node, net.hosts["nodeb"].node
    assert b.counters["sent NS_rexmit"] > 0 and a.counters["retransmitted"] > 0
    assert b.gaps.missing("nodea") == [] and a.gaps.missing("nodeb") == []


def test_forged_and_replayed_messages_are_refused_and_counted() -> None:
    net = _steady()
    b = net.hosts["nodeb"]
    before = net.holder()
    # a message signed with another key
    forged_key = hbmsg.AuthKey(1, "sha1", b"not-the-key")
    fields = [(n, hbmsg.STRING, v.encode()) for n, v in [("t", "ask_resources"), ("src", "nodea")]]
    forged = hbmsg.encode(fields, forged_key)
    net.apply("nodeb", b.node.receive(forged, "eth0", net.now, WALL0 + net.now))
    assert b.node.counters["bad message"] == 1
    # an old message of nodea sent again (a replay): a duplicate, nothing happens
    old = next(d for s, d in net.wire if s == "nodea" and hbmsg.decode(d).get("t") == "starting")
    net.apply("nodeb", b.node.receive(old, "eth0", net.now, WALL0 + net.now))
    assert b.node.counters["duplicate"] + b.node.counters["stale"] >= 1
    # the same message from an earlier life of nodea (older generation)
    net.kill("nodea")
    net.run(1.0)
    net.hosts["nodea"].running.clear()
    net.start("nodea")
    net.run(3.0)
    net.apply("nodeb", b.node.receive(old, "eth0", net.now, WALL0 + net.now))
    assert b.node.counters["refused"] >= 1
    assert any("generation" in x for x in b.logs)
    assert before == ["nodea"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_is_a_counted_refusal(data: bytes) -> None:
    node = HeartbeatNode(Net().config("nodeb"), b"b" * 16, 1, random.Random(0))
    node.start(0.0, WALL0)
    actions = node.receive(b"###\n" + data, "eth0", 0.1, WALL0)
    assert all(isinstance(a, (Log, Transmit)) for a in actions)
    assert node.counters["accepted"] == 0


def test_a_three_node_ha_cf_is_refused() -> None:
    cfg = NodeConfig("nodea", ("nodea", "nodeb", "nodec"), Timing(), KEY, {1: KEY})
    with pytest.raises(ValueError, match="two nodes"):
        HeartbeatNode(cfg, b"a" * 16, 1)


def test_ping_tracker_and_echo_frames() -> None:
    tracker = PingTracker([("gw", ("10.0.0.1",)), ("grp", ("10.0.0.2", "10.0.0.3"))], 1.0)
    assert tracker.up() == 0 and tracker.configured
    assert [e.status for e in tracker.reply("10.0.0.3", 0.0)] == ["ping"]
    assert tracker.status("grp") == "ping" and tracker.status("gw") == "dead"
    assert tracker.tick(0.5) == [] and tracker.deadline() == 1.0
    assert [(e.node, e.status) for e in tracker.tick(1.0)] == [("grp", "dead")]
    request = echo_request(7)
    assert request[0] == 8 and len(request) == 8 + 20
    reply = bytes([0x45]) + bytes(19) + bytes([0]) + request[1:]
    assert parse_echo_reply(reply) and not parse_echo_reply(bytes([0x45]) + bytes(19) + request)
    assert not parse_echo_reply(b"short")


def test_a_node_cut_off_from_peer_and_ping_node_takes_nothing() -> None:
    net = Net(ping=("10.0.0.1",))
    net.start("nodea")
    net.start("nodeb")
    net.run(12.0)
    assert net.holder() == ["nodea"]
    # nodeb loses everything: no heartbeat from nodea, no echo reply
    net.ping_ok["nodeb"] = False
    net.cut.add("eth0")
    net.run(3.0)
    b = net.hosts["nodeb"]
    assert b.node.node_status("nodea") == "dead"
    assert VIP not in b.running
    assert any("no ping node is reachable" in line for line in b.logs)
    # the network answers again while nodea stays silent (it really died): nodeb takes over
    net.kill("nodea")
    net.ping_ok["nodeb"] = True
    net.run(1.0)
    assert VIP in b.running
    assert any("ping node reachable again" in line for line in b.logs)


def test_the_node_with_fewer_ping_nodes_gives_its_resources_away() -> None:
    net = Net(ping=("10.0.0.1",))
    net.start("nodea")
    net.start("nodeb")
    net.run(12.0)
    assert net.holder() == ["nodea"]
    net.ping_ok["nodea"] = False  # nodea's path to the ping node breaks; nodeb's does not
    net.run(2.0)
    assert net.holder() == ["nodeb"]
    assert any("giving up resources" in line for line in net.hosts["nodea"].logs)


def test_peer_death_with_the_ping_node_answering_is_a_takeover() -> None:
    net = Net(ping=("10.0.0.1",))
    net.start("nodea")
    net.start("nodeb")
    net.run(12.0)
    net.kill("nodea")
    took = net.run_until(lambda: VIP in net.hosts["nodeb"].running, timeout=3.0)
    assert took <= 0.75


def test_a_healed_partition_makes_both_nodes_give_up_and_restart() -> None:
    net = _steady()
    net.cut.add("eth0")  # a split: each thinks the other is dead; nodeb takes the VIP too
    net.run(2.0)
    assert sorted(n for n, h in net.hosts.items() if VIP in h.running) == ["nodea", "nodeb"]
    net.cut.clear()
    net.run(3.0)  # heartbeat restarts 2 s after it sees the partition healed
    for host in net.hosts.values():
        assert any("returning after partition" in line for line in host.logs)
    stopped = [n for n, h in net.hosts.items() if h.node.stopped]
    assert stopped == ["nodea", "nodeb"]  # both gave everything up to start again


def test_an_acknowledgement_before_a_nodes_first_status_is_not_a_partition() -> None:
    # Real heartbeat acknowledges what it hears at once, so a node that starts while its peer
    # has declared it dead may send NS_ackmsg before its first status.
    net = Net(initdead=2.0)
    net.start("nodea")
    net.run(2.5)  # nodeb declared dead at initdead
    net.start("nodeb")
    b = net.hosts["nodeb"].node
    ack = hbmsg.encode(b.outbox.ack("nodea", 1, WALL0 + net.now), KEY)
    a = net.hosts["nodea"]
    net.apply("nodea", a.node.receive(ack, "eth0", net.now, WALL0 + net.now))
    net.run(1.0)
    assert not any("returning after partition" in line for line in a.logs)
    assert a.node.node_status("nodeb") == "active"


def test_a_node_asking_for_the_node_list_hears_our_status_before_the_answer() -> None:
    # A real heartbeat starting next to an active pylvs may hear only our acknowledgement of its
    # first status before it asks for the node list; our repnodes brings its communications up
    # and, with auto_failback legacy, it counts the active nodes at once (req_our_resources'
    # upcount): not counting us, it takes its groups without an ip-request and both nodes hold
    # the VIP. Our status must reach it before our repnodes.
    net = Net(initdead=2.0, auto_failback="legacy")
    net.start("nodeb")
    net.run(2.55)  # alone: nodeb takes nodea's group at initdead
    assert net.holder() == ["nodeb"]
    b = net.hosts["nodeb"]
    b.node.acks.trigger["nodea"] = 1  # nodeb acknowledges nodea's first message
    nodea = Outbox("nodea", b"nodeanodeanodea!", 11, 2)
    wall = WALL0 + net.now
    mark = len(net.wire)
    for fields in (
        nodea.status("init", 2500, wall),
        nodea.message([("t", "reqnodes"), ("dest", "nodeb")], wall, dest="nodeb"),
    ):
        data = hbmsg.encode(fields, KEY)
        net.apply("nodeb", b.node.receive(data, "eth0", net.now, wall))
    sent = [hbmsg.decode(d) for _s, d in net.wire[mark:]]
    assert [m.get("t") for m in sent] == ["NS_ackmsg", "status", "repnodes"]
    assert sent[1].get("st") == "active"
