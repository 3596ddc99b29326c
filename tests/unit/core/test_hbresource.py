"""The release-1 resource manager, two of them wired together with a fake clock and fake hosts.

Each scenario is one heartbeat knows (hb_resource.c's comments list them): a node alone, both
starting at once, a peer that starts later with auto_failback on/off, kill -9 of the holder, a
graceful stop, hb_standby and hb_takeover, and auto_failback legacy's ip-request exchange.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from pylvs.core.hbresource import (
    ALL,
    AUTOFAILBACK_RETRY,
    FOREIGN,
    LOCAL,
    NONE,
    RQSTDELAY,
    Job,
    Log,
    ResourceManager,
    Send,
)

GROUPS = (("IPaddr2::10.77.0.100", "nodea"), ("IPaddr2::10.77.0.200", "nodeb"))


@dataclass
class FakeNode:
    rm: ResourceManager
    running: set[str] = field(default_factory=set)
    jobs: list[Job] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    alive: bool = True


class Pair:
    """Two nodes; messages go to both (the sender first, as heartbeat handles its own)."""

    def __init__(self, auto_failback: str = "on") -> None:
        self.now = 0.0
        self.nodes: dict[str, FakeNode] = {}
        for me, peer in (("nodea", "nodeb"), ("nodeb", "nodea")):
            rm = ResourceManager(me, peer, GROUPS, auto_failback, peer_active=self._active_of(peer))
            self.nodes[me] = FakeNode(rm)
        self.up = {"nodea": False, "nodeb": False}
        self.wire: list[tuple[str, Send]] = []
        self.sent: list[tuple[str, dict[str, str]]] = []

    def _active_of(self, node: str):
        return lambda: self.up[node] and self.nodes[node].alive

    def apply(self, name: str, actions: list[object]) -> None:
        node = self.nodes[name]
        for action in actions:
            if isinstance(action, Send):
                self.wire.append((name, action))
            elif isinstance(action, Job):
                node.jobs.append(action)
            elif isinstance(action, Log):
                node.logs.append(action.text)

    def settle(self, limit: int = 500, until: Callable[[], bool] | None = None) -> None:
        """Deliver every message and run every job until nothing moves (or ``until()``)."""
        for _ in range(limit):
            if until is not None and until():
                return
            if self.wire:
                src, send = self.wire.pop(0)
                fields = dict(send.fields)
                fields["src"] = src
                self.sent.append((src, fields))
                order = [src] + [n for n in self.nodes if n != src]
                for name in order:
                    node = self.nodes[name]
                    if node.alive and (name == src or self.up[name]):
                        self.apply(name, node.rm.message(fields, name == src, self.now))
                continue
            busy = [n for n in self.nodes.values() if n.alive and n.jobs]
            if not busy:
                return
            for node in busy:
                job = node.jobs.pop(0)
                before = {g: g in node.running for g in job.groups}
                if job.op == "take":
                    node.running.update(job.groups)
                elif job.op == "give":
                    node.running.difference_update(job.groups)
                name = node.rm.me
                self.apply(name, node.rm.job_done(job.id, before, self.now))
        raise AssertionError("the pair never settled")

    def comm_up(self, name: str, peer_dead: bool) -> None:
        self.up[name] = True
        self.apply(name, self.nodes[name].rm.comm_up(self.now, peer_dead))
        self.settle()

    def initdead(self, name: str) -> None:
        """``name`` starts alone: initdead passes without a word from its peer, and
        communications come up in the same step (heartbeat.c)."""
        rm = self.nodes[name].rm
        self.apply(name, rm.node_dead(self.now, False, False))
        self.up[name] = True
        self.apply(name, rm.comm_up(self.now, True))
        self.settle()

    def dead(self, name: str, anypacketsyet: bool = True) -> None:
        """``name`` declared its peer dead."""
        self.apply(name, self.nodes[name].rm.node_dead(self.now, anypacketsyet, False))
        self.settle()

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            times = [
                t
                for n in self.nodes.values()
                if n.alive
                for t in [n.rm.deadline()]
                if t is not None and t <= end
            ]
            if not times:
                break
            self.now = max(self.now, min(times) + 0.001)
            for name, node in self.nodes.items():
                if node.alive:
                    self.apply(name, node.rm.tick(self.now))
            self.settle()
        self.now = end

    def kill(self, name: str) -> None:
        self.nodes[name].alive = False
        self.up[name] = False

    def restart(self, name: str, auto_failback: str) -> None:
        peer = "nodeb" if name == "nodea" else "nodea"
        running = self.nodes[name].running
        rm = ResourceManager(name, peer, GROUPS, auto_failback, peer_active=self._active_of(peer))
        self.nodes[name] = FakeNode(rm, running)

    def holders(self) -> dict[str, set[str]]:
        return {name: set(node.running) for name, node in self.nodes.items()}

    def kinds(self, src: str) -> list[str]:
        return [f"{f['t']}:{f.get('info', '')}" for s, f in self.sent if s == src]


A, B = "IPaddr2::10.77.0.100", "IPaddr2::10.77.0.200"


def test_alone_takes_everything_after_initdead() -> None:
    pair = Pair("on")
    pair.initdead("nodea")
    assert pair.holders()["nodea"] == {A, B}
    rm = pair.nodes["nodea"].rm
    assert rm.st.i_hold == ALL
    # heartbeat stays in transition until its RQSTDELAY timer, as in the capture (12.5 s)
    assert rm.resource_state() == "transition"
    pair.advance(RQSTDELAY + 0.1)
    assert rm.resource_state() == "all"
    stonith = [f for s, f in pair.sent if f["t"] == "stonith"]
    assert stonith == [{"t": "stonith", "node": "nodeb", "result": "n_stnth", "src": "nodea"}]
    # the wire order of the capture: mach_down, the self-addressed ip-request-resp, all stable
    kinds = pair.kinds("nodea")
    assert kinds.index("resource:mach_down") < kinds.index("ip-request-resp:")
    assert "resource:req_our_resources()" in kinds[kinds.index("ip-request-resp:") :]
    announced = [x for x in pair.nodes["nodea"].logs if x.startswith("Initial resource acq")]
    assert announced == ["Initial resource acquisition complete (mach_down)"]


def _both_started(auto_failback: str) -> Pair:
    pair = Pair(auto_failback)
    pair.comm_up("nodea", peer_dead=False)
    pair.comm_up("nodeb", peer_dead=False)
    return pair


@pytest.mark.parametrize("auto_failback", ["on", "off"])
def test_both_starting_wait_rqstdelay_then_take_their_own(auto_failback: str) -> None:
    pair = _both_started(auto_failback)
    assert pair.holders() == {"nodea": set(), "nodeb": set()}
    assert pair.nodes["nodea"].rm.resource_state() == "transition"
    pair.advance(RQSTDELAY - 0.5)
    assert pair.holders() == {"nodea": set(), "nodeb": set()}
    pair.advance(1.0)
    assert pair.holders() == {"nodea": {A}, "nodeb": {B}}
    for name in ("nodea", "nodeb"):
        rm = pair.nodes[name].rm
        assert rm.st.i_hold == LOCAL
        assert rm.st.other_holds == LOCAL
        assert rm.resource_state() == "local"
        assert not any("Both machines" in line for line in pair.nodes[name].logs)


def _a_holds_all_then_b_starts(auto_failback: str) -> Pair:
    pair = Pair(auto_failback)
    pair.initdead("nodea")
    pair.comm_up("nodeb", peer_dead=False)  # nodeb starts later: starting -> resource all
    # nodea becomes stable at its RQSTDELAY timer, then answers (12.5 s in the capture)
    pair.advance(RQSTDELAY + 2)
    return pair


def test_auto_failback_on_gives_the_peer_its_group_back() -> None:
    pair = _a_holds_all_then_b_starts("on")
    assert pair.holders() == {"nodea": {A}, "nodeb": {B}}
    kinds = pair.kinds("nodea")
    assert "ask_resources:me" in kinds and "ask_resources:done" in kinds
    assert "resource:standby" in kinds
    assert "ask_resources:other" in pair.kinds("nodeb")
    assert pair.nodes["nodea"].rm.resource_state() == "local"
    assert pair.nodes["nodeb"].rm.resource_state() == "local"


def test_auto_failback_off_keeps_everything_where_it_is() -> None:
    pair = _a_holds_all_then_b_starts("off")
    pair.advance(RQSTDELAY + 2)
    assert pair.holders() == {"nodea": {A, B}, "nodeb": set()}
    assert pair.nodes["nodeb"].rm.resource_state() == "none"
    assert pair.nodes["nodea"].rm.resource_state() == "all"


@pytest.mark.parametrize("auto_failback", ["on", "off"])
def test_kill9_of_a_holder_moves_its_groups(auto_failback: str) -> None:
    pair = _both_started(auto_failback)
    pair.advance(RQSTDELAY + 1)
    pair.kill("nodea")
    pair.dead("nodeb")
    assert pair.holders()["nodeb"] == {A, B}
    assert pair.nodes["nodeb"].rm.resource_state() == "all"
    # nodea held resources: no stonith device, heartbeat says so
    stonith = [f["result"] for s, f in pair.sent if f["t"] == "stonith"]
    assert stonith == ["n_stnth"]


def test_killed_node_back_with_auto_failback_on_takes_its_group_back() -> None:
    pair = _both_started("on")
    pair.advance(RQSTDELAY + 1)
    pair.kill("nodea")
    pair.dead("nodeb")
    pair.nodes["nodea"].running.clear()  # it rebooted
    pair.restart("nodea", "on")
    pair.comm_up("nodea", peer_dead=False)
    pair.advance(2.0)
    assert pair.holders() == {"nodea": {A}, "nodeb": {B}}


def test_peer_restarting_during_the_takeover_of_its_group_gets_it_back() -> None:
    """A restart of nodea (heartbeat giving everything up and starting again, as after a healed
    partition) whose ``starting`` and stable ``resource`` messages reach nodeb while nodeb is
    still taking nodea's group over ("T_STARTING received during takeover"): with auto_failback
    on, nodeb hands the group back once its takeover is complete."""
    pair = _both_started("on")
    pair.advance(RQSTDELAY + 1)
    assert pair.holders() == {"nodea": {A}, "nodeb": {B}}
    pair.apply("nodea", pair.nodes["nodea"].rm.shutdown(pair.now))

    def taking_over() -> bool:
        return any(j.purpose == "mach_down" for j in pair.nodes["nodeb"].jobs)

    pair.settle(until=taking_over)
    # nodea's heartbeat starts again before nodeb's mach_down job has run
    pair.restart("nodea", "on")
    pair.comm_up("nodea", peer_dead=False)
    pair.advance(RQSTDELAY + 1 + AUTOFAILBACK_RETRY * 3)
    assert "T_STARTING received during takeover." in pair.nodes["nodeb"].logs
    assert pair.holders() == {"nodea": {A}, "nodeb": {B}}


def test_graceful_stop_hands_everything_over() -> None:
    pair = _both_started("on")
    pair.advance(RQSTDELAY + 1)
    pair.apply("nodea", pair.nodes["nodea"].rm.shutdown(pair.now))
    pair.settle()
    assert pair.nodes["nodea"].rm.st.stopped
    assert pair.holders() == {"nodea": set(), "nodeb": {A, B}}
    kinds = pair.kinds("nodea")
    assert kinds[-2:] == ["resource:shutdown", "shutdone:"]
    assert "Received shutdown notice from 'nodea'." in pair.nodes["nodeb"].logs
    # later nodeb declares it dead: it had given everything up
    pair.kill("nodea")
    pair.dead("nodeb")
    assert [f["result"] for s, f in pair.sent if f["t"] == "stonith"] == ["unneeded"]
    assert pair.holders()["nodeb"] == {A, B}


@pytest.mark.parametrize(
    ("what", "a_keeps", "b_gets"),
    [("all", set(), {A, B}), ("local", {B}, {A}), ("foreign", {A}, {B})],
)
def test_hb_standby(what: str, a_keeps: set[str], b_gets: set[str]) -> None:
    pair = Pair("off")
    pair.initdead("nodea")
    pair.comm_up("nodeb", peer_dead=False)
    pair.advance(RQSTDELAY + 2)
    assert pair.holders() == {"nodea": {A, B}, "nodeb": set()}
    pair.apply("nodea", pair.nodes["nodea"].rm.standby(what, pair.now))
    pair.settle()
    assert pair.holders() == {"nodea": a_keeps, "nodeb": b_gets}
    assert pair.nodes["nodea"].rm.is_stable() and pair.nodes["nodeb"].rm.is_stable()


def test_hb_takeover_asks_the_peer_to_go_standby() -> None:
    pair = Pair("off")
    pair.initdead("nodea")
    pair.comm_up("nodeb", peer_dead=False)
    pair.advance(RQSTDELAY + 2)
    pair.apply("nodeb", pair.nodes["nodeb"].rm.takeover("all", pair.now))
    pair.settle()
    assert pair.holders() == {"nodea": set(), "nodeb": {A, B}}
    assert "hb_takeover:" in pair.kinds("nodeb")
    assert "ask_resources:me" in pair.kinds("nodea")


def test_standby_refused_while_the_other_side_is_in_flux() -> None:
    pair = _both_started("on")  # neither stable yet (waiting for RQSTDELAY)
    pair.apply("nodea", pair.nodes["nodea"].rm.standby("all", pair.now))
    pair.settle()
    assert any("ignored.  Other side is in flux." in line for line in pair.nodes["nodea"].logs)
    assert pair.holders() == {"nodea": set(), "nodeb": set()}


def test_unanswered_standby_request_is_cancelled() -> None:
    pair = Pair("off")
    pair.initdead("nodea")
    pair.comm_up("nodeb", peer_dead=False)
    pair.advance(RQSTDELAY + 2)
    pair.kill("nodeb")  # gone, but not yet declared dead
    pair.apply("nodea", pair.nodes["nodea"].rm.standby("all", pair.now))
    pair.settle()
    assert pair.nodes["nodea"].rm.st.going_standby == "me"
    pair.advance(11.0)
    rm = pair.nodes["nodea"].rm
    assert rm.st.going_standby == "not"
    assert "No reply to standby request.  Standby request cancelled." in pair.nodes["nodea"].logs
    assert pair.holders()["nodea"] == {A, B}


def test_legacy_asks_with_ip_request() -> None:
    pair = Pair("legacy")
    pair.initdead("nodea")
    assert pair.holders()["nodea"] == {A, B}
    assert "starting:" not in pair.kinds("nodea")
    pair.comm_up("nodeb", peer_dead=False)
    assert pair.holders() == {"nodea": {A}, "nodeb": {B}}
    assert "ip-request:" in pair.kinds("nodeb")
    resp = [f for s, f in pair.sent if s == "nodea" and f["t"] == "ip-request-resp"]
    assert resp[-1]["dest"] == "nodeb" and resp[-1]["weown"] == "yes"
    rm = pair.nodes["nodeb"].rm
    assert rm.standby("all", pair.now)  # hb_standby sends, but legacy ignores it
    pair.apply("nodeb", rm.standby("all", pair.now))
    pair.settle()
    assert "Standby mode only implemented when nice_failback on" in pair.nodes["nodeb"].logs


def test_bad_messages_get_a_log_line_not_an_exception() -> None:
    rm = ResourceManager("nodea", "nodeb", GROUPS, "on")
    rm.comm_up(0.0, peer_dead=False)
    bad = [
        {"t": "resource", "src": "nodeb"},
        {"t": "resource", "src": "nodeb", "rsc_hold": "everything"},
        {"t": "ask_resources", "src": "nodeb"},
        {"t": "ask_resources", "src": "nodeb", "info": "me", "rsc_hold": "x"},
        {"t": "ip-request", "src": "nodeb"},
        {"t": "ip-request-resp", "src": "nodeb", "dest": "nodea"},
        {"t": "hb_takeover", "src": "nodeb", "rsc_hold": "bogus"},
        {"t": "unknown-type", "src": "nodeb"},
        {"src": "nodeb"},
    ]
    for fields in bad:
        actions = rm.message(fields, False, 1.0)
        assert all(isinstance(a, (Log, Send, Job)) for a in actions)
    assert rm.st.i_hold in (NONE, LOCAL, FOREIGN, ALL)
    with pytest.raises(ValueError, match="wrong resources"):
        rm.standby("bogus", 0.0)
    with pytest.raises(ValueError, match="auto_failback"):
        ResourceManager("nodea", "nodeb", GROUPS, "maybe")
