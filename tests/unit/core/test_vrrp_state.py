"""The VRRP instance state machine with a fake clock: timers, every state and event, GARP,
trackers, and two (or three) routers on a simulated LAN; a replay of keepalived 2.2.7's
capture."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.core import vrrpmsg
from pylvs.core.vrrp import (
    BACKUP,
    EVENTS,
    FAULT,
    INIT,
    MASTER,
    STATES,
    STOP,
    TRANSITIONS,
    AddAddresses,
    InstanceConfig,
    Log,
    Notify,
    RemoveAddresses,
    Send,
    SendGarp,
    Tracker,
    VRRPInstance,
    complete,
    master_down_us,
    skew_us,
)
from pylvs.core.vrrpmsg import Advert, UnicastPeer

VIP = "10.78.0.100"
A_IP, B_IP, C_IP = "10.78.0.1", "10.78.0.2", "10.78.0.3"


def config(src: str = A_IP, priority: int = 100, **kw: object) -> InstanceConfig:
    base = InstanceConfig("VI_1", 51, src, (VIP,), priority=priority, version=3)
    return replace(base, **kw)  # type: ignore[arg-type]


def advert(
    priority: int, src: str = B_IP, interval: int = 100, version: int = 3, dst: str = "224.0.0.18"
) -> bytes:
    message = vrrpmsg.encode(Advert(version, 51, priority, interval, (VIP,)), src, dst)
    return vrrpmsg.build_ipv4(message, src, dst, 1)


def of(actions: list[object], kind: type) -> list[object]:
    return [a for a in actions if isinstance(a, kind)]


def logs(actions: list[object]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Log) and not a.detail]


def sends(actions: list[object]) -> list[Send]:
    return [a for a in actions if isinstance(a, Send)]


def started(cfg: InstanceConfig, now: float = 0.0) -> VRRPInstance:
    inst = VRRPInstance(cfg)
    inst.start(now)
    return inst


def make_master(cfg: InstanceConfig) -> tuple[VRRPInstance, float]:
    inst = started(cfg)
    due = inst.deadline()
    assert due is not None
    inst.tick(due)
    assert inst.state == MASTER
    return inst, due


# -- timers ----------------------------------------------------------------------------------


def test_timer_values_of_the_rfc_examples() -> None:
    # RFC 5798 / keepalived vrrp.h: advert 1 s, priority 128: skew 0.5 s, master down 3.5 s
    assert skew_us(2, 128, 1_000_000) == 500_000
    assert master_down_us(2, 128, 1_000_000) == 3_500_000
    assert master_down_us(3, 128, 1_000_000) == 3_500_000
    # v3 skew scales with the interval; v2 does not
    assert skew_us(3, 128, 100_000) == 50_000
    assert skew_us(2, 128, 100_000) == 500_000
    # keepalived's integer arithmetic: 0.1 s, priority 150 -> 106 * 10 * 625 / 16 us
    assert skew_us(3, 150, 100_000) == 41_406
    assert master_down_us(3, 100, 100_000) == 360_937  # measured: takeover 0.36 s
    assert master_down_us(3, 150, 1_000_000) == 3_414_062  # measured: first election 3.4 s


def test_backup_master_down_interval_and_priority_zero_skew() -> None:
    inst = started(config(priority=128))
    assert inst.state == BACKUP and inst.deadline() == pytest.approx(3.5)
    inst.receive(advert(200), 1.0)
    assert inst.deadline() == pytest.approx(4.5)
    inst.receive(advert(0), 2.0)  # the master leaves: only the skew time
    assert inst.deadline() == pytest.approx(2.5)
    out = inst.tick(2.5)
    assert inst.state == MASTER
    assert sends(out)[0].priority == 128


def test_subsecond_v3_adverts_and_adoption_of_the_masters_interval() -> None:
    inst = started(config(priority=100, advert_int=0.1))
    assert inst.deadline() == pytest.approx(0.360937)
    # a master advertising every 0.5 s: the backup's timers follow it
    inst.receive(advert(200, interval=50), 1.0)
    assert inst.master_adver_int_us == 500_000
    assert inst.deadline() == pytest.approx(1.0 + 1.5 + 156 * 50 * 625 / 16 / 1e6)
    inst.tick(inst.deadline() or 0)
    assert inst.state == MASTER
    # as master it advertises its own interval again
    assert inst.master_adver_int_us == 100_000
    assert vrrpmsg.decode(sends(inst.tick(inst.deadline() or 0))[0].message).adver_int == 10


def test_v2_interval_mismatch_is_dropped() -> None:
    inst = started(config(priority=100, version=2))
    out = inst.receive(advert(200, version=2, interval=200), 1.0)
    assert inst.deadline() == pytest.approx(3 + 156 / 256)  # not reset
    assert "advertisement interval mismatch" in logs(out)[0]


# -- starting ------------------------------------------------------------------------------


def test_start_backup_logs_and_notifies() -> None:
    inst = VRRPInstance(config())
    out = inst.start(10.0)
    assert out == [
        RemoveAddresses((VIP,)),
        Log("(VI_1) Entering BACKUP STATE (init)"),
        Notify("VI_1", BACKUP, 100),
    ]
    assert inst.state == BACKUP


def test_state_master_priority_255_is_master_at_once() -> None:
    inst = VRRPInstance(config(priority=255, state=MASTER))
    out = inst.start(0.0)
    assert logs(out) == [] and inst.state == BACKUP
    assert inst.deadline() == pytest.approx(1e-6)
    out = inst.tick(1e-6)
    assert inst.state == MASTER
    assert logs(out) == ["(VI_1) Entering MASTER STATE"]
    assert isinstance(out[0], Log) and out[0].detail  # "Receive advertisement timeout"
    # the advert goes before the addresses and the ARPs
    kinds = [type(a) for a in out if not isinstance(a, (Log, Notify))]
    assert kinds == [Send, AddAddresses, SendGarp]


def test_state_master_below_255_waits_like_a_backup() -> None:
    inst = started(config(priority=150, state=MASTER))
    assert inst.state == BACKUP
    assert inst.deadline() == pytest.approx(3.414062)


def test_priority_and_state_derivation_and_clearing() -> None:
    cfg, msgs = complete(InstanceConfig("VI_1", 1, A_IP, state=MASTER))
    assert cfg.priority == 255
    cfg, _ = complete(InstanceConfig("VI_1", 1, A_IP))
    assert (cfg.priority, cfg.state) == (100, BACKUP)
    cfg, msgs = complete(
        InstanceConfig("VI_1", 1, A_IP, state=MASTER, priority=150, nopreempt=True)
    )
    assert not cfg.nopreempt and "nopreempt will not work" in msgs[0]
    cfg, msgs = complete(
        InstanceConfig("VI_1", 1, A_IP, priority=100, nopreempt=True, preempt_delay=5)
    )
    assert cfg.nopreempt and cfg.preempt_delay == 0
    cfg, msgs = complete(InstanceConfig("VI_1", 1, A_IP, version=3, auth_type=1, auth_pass="x"))
    assert cfg.auth_type == 0 and "does not support authentication" in msgs[0]
    assert complete(InstanceConfig("VI_1", 1, A_IP))[0].garp_lower_prio_repeat == 5


# -- the table ---------------------------------------------------------------------------------


def test_table_is_total() -> None:
    assert set(TRANSITIONS) == {(s, e) for s in STATES for e in EVENTS}
    for handler, target in TRANSITIONS.values():
        assert hasattr(VRRPInstance, "_do_" + handler), handler
        assert target in STATES or target == ""


_INPUTS = st.lists(
    st.tuples(
        st.sampled_from(["adv", "tick", "track", "untrack", "weight", "shutdown", "garbage"]),
        st.integers(0, 255),
        st.floats(0.0, 5.0),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_INPUTS, st.sampled_from([2, 3]), st.integers(1, 255), st.booleans())
def test_any_sequence_of_inputs_lands_in_a_state(
    inputs: list[tuple[str, int, float]], version: int, priority: int, nopreempt: bool
) -> None:
    cfg = config(
        priority=priority,
        version=version,
        nopreempt=nopreempt and priority < 255,
        interface="eth0",
        trackers=(Tracker("chk", -20),),
        garp_master_refresh=2.0,
        preempt_delay=0.0 if nopreempt else 1.0,
    )
    inst = VRRPInstance(cfg)
    now = 0.0
    inst.start(now)
    for kind, value, dt in inputs:
        now += dt
        if kind == "adv":
            out = inst.receive(advert(value, src=B_IP, version=version), now)
        elif kind == "garbage":
            out = inst.receive(bytes([value]) * 30, now)
        elif kind == "tick":
            out = inst.tick(max(now, inst.deadline() or now))
        elif kind in ("track", "untrack"):
            out = inst.set_track("eth0", kind == "track", now)
        elif kind == "weight":
            out = inst.set_track("chk", value % 2 == 0, now)
        else:
            out = inst.shutdown(now)
        assert inst.state in STATES
        # addresses are there exactly while MASTER
        assert inst.vipset == (inst.state == MASTER)
        for a in sends(out):
            assert isinstance(vrrpmsg.check(a.packet, replace(inst.expect(), vrid=51)), object)
        d = inst.deadline()
        assert d is None or d >= now - 5.0 or inst.state in (MASTER, BACKUP)
        if inst.state in (FAULT, STOP, INIT):
            assert inst.sands is None


# -- BACKUP ---------------------------------------------------------------------------------


def test_backup_preempts_a_lower_master() -> None:
    inst = started(config(priority=150), 0.0)
    out = inst.receive(advert(100), 0.5)
    assert logs(out) == [f"(VI_1) received lower priority (100) advert from {B_IP} - discarding"]
    assert inst.deadline() == pytest.approx(3.414062)  # the down timer runs on
    inst.tick(3.414062)
    assert inst.state == MASTER


def test_backup_nopreempt_keeps_the_lower_master() -> None:
    inst = started(config(priority=150, nopreempt=True))
    inst.receive(advert(100), 3.0)
    assert inst.deadline() == pytest.approx(3.0 + 3.414062)
    assert inst.state == BACKUP


def test_backup_preempt_delay() -> None:
    inst = started(config(priority=150, preempt_delay=10.0))
    # the first lower advert starts the delay; lower adverts are accepted while it runs
    t = 1.0
    while t < 11.0:
        inst.receive(advert(100), t)
        assert inst.deadline() == pytest.approx(t + 3.414062)
        t += 1.0
    out = inst.receive(advert(100), 11.5)  # delay over: discarded, preempt
    assert "discarding" in logs(out)[0]
    inst.tick(10.0 + 3.414062)
    assert inst.state == MASTER
    # a higher advert stops a running delay
    other = started(config(priority=150, preempt_delay=10.0))
    other.receive(advert(100), 1.0)
    assert other.preempt_time == pytest.approx(11.0)
    other.receive(advert(200), 2.0)
    assert other.preempt_time is None


def test_backup_equal_priority_is_accepted() -> None:
    inst = started(config(priority=100, src=C_IP))  # higher address, but only a master compares
    inst.receive(advert(100, src=B_IP), 1.0)
    assert inst.deadline() == pytest.approx(1.0 + 3.609375)


def test_refused_adverts_are_logged_once_and_do_not_reset_the_timer() -> None:
    inst = started(config(priority=100))
    bad = advert(200)[:-1] + b"\x00"  # checksum broken
    out1 = inst.receive(bad, 1.0)
    out2 = inst.receive(bad, 2.0)
    assert logs(out1) == [f"(VI_1) Invalid VRRPv3 checksum from {B_IP}"] and logs(out2) == []
    assert inst.deadline() == pytest.approx(3.609375)
    assert inst.counters["checksum"] == 2
    # another router's VRID: silent
    other = vrrpmsg.build_ipv4(
        vrrpmsg.encode(Advert(3, 52, 200, 100, (VIP,)), B_IP, "224.0.0.18"), B_IP, "224.0.0.18", 1
    )
    assert logs(inst.receive(other, 2.5)) == []


# -- MASTER -------------------------------------------------------------------------------------


def test_master_sends_every_interval_with_increasing_ip_id() -> None:
    inst, _ = make_master(config(priority=150))
    ids = []
    for _ in range(3):
        due = inst.deadline()
        assert due is not None
        out = inst.tick(due)
        ids.append(int.from_bytes(sends(out)[0].packet[4:6], "big"))
    assert ids == [2, 3, 4]


def test_master_yields_to_higher_priority_silently() -> None:
    inst, t = make_master(config(priority=150))
    out = inst.receive(advert(200), t + 0.5)
    assert inst.state == BACKUP
    assert sends(out) == []
    assert logs(out) == [
        f"(VI_1) Master received advert from {B_IP} with higher priority 200, ours 150",
        "(VI_1) Entering BACKUP STATE",
    ]
    assert of(out, RemoveAddresses) == [RemoveAddresses((VIP,))]
    assert of(out, Notify) == [Notify("VI_1", BACKUP, 150)]
    assert inst.deadline() == pytest.approx(t + 0.5 + 3 + 106 / 256, abs=1e-5)


def test_master_forces_election_on_lower_priority() -> None:
    inst, t = make_master(config(priority=150))
    out = inst.receive(advert(100), t + 0.5)
    assert inst.state == MASTER
    assert logs(out) == [
        f"(VI_1) Received advert from {B_IP} with lower priority 100, ours 150,"
        " forcing new election"
    ]
    assert [s.priority for s in sends(out)] == [150]
    assert of(out, SendGarp) == [SendGarp((VIP,), 5)]
    assert Notify("VI_1", "MASTER_RX_LOWER_PRI", 150) in out
    # ... and the lower-priority GARP burst again after garp_lower_prio_delay
    assert inst.garp_lower_at == pytest.approx(t + 5.5)
    assert of(inst.tick(t + 5.0), SendGarp) == [SendGarp((VIP,), 5)]  # garp_master_delay's
    assert of(inst.tick(t + 5.5), SendGarp) == [SendGarp((VIP,), 5)]


def test_master_answers_priority_zero_with_an_advert() -> None:
    inst, t = make_master(config(priority=150))
    out = inst.receive(advert(0), t + 0.3)
    assert [s.priority for s in sends(out)] == [150] and inst.state == MASTER
    assert inst.deadline() == pytest.approx(t + 1.3)


@pytest.mark.parametrize("other,yields", [(B_IP, True), ("10.78.0.0", False)])
def test_equal_priority_tie_break_by_primary_address(other: str, yields: bool) -> None:
    inst, t = make_master(config(priority=100, src="10.78.0.1"))
    out = inst.receive(advert(100, src=other), t + 0.1)
    if yields:
        assert inst.state == BACKUP
        assert "with same priority 100 but higher IP address than ours" in logs(out)[0]
    else:
        assert inst.state == MASTER
        assert "lower priority 100, ours 100" in logs(out)[0]


def test_two_address_owners() -> None:
    inst, t = make_master(config(priority=255, state=MASTER))
    out = inst.receive(advert(255, src=B_IP), t + 0.1)
    assert "CONFIGURATION ERROR" in logs(out)[0]
    assert inst.effective_priority == 254 and inst.state == BACKUP


# -- gratuitous ARP schedule -------------------------------------------------------------------


def test_garp_bursts_on_becoming_master() -> None:
    cfg = config(priority=150, garp_master_delay=5.0, garp_master_refresh=3.0)
    inst = started(cfg)
    t0 = inst.deadline() or 0.0
    events: list[tuple[float, int]] = []
    out = inst.tick(t0)
    events += [(t0, g.count) for g in of(out, SendGarp)]
    now = t0
    while now < t0 + 12:
        now = inst.deadline() or 0.0
        events += [(now, g.count) for g in of(inst.tick(now), SendGarp)]
    rel = [(round(t - t0, 3), c) for t, c in events]
    # first burst, second after garp_master_delay; refresh (2.2.7: checked at an advert) every 3 s
    assert rel[:2] == [(0.0, 5), (4.0, 1)] or (0.0, 5) in rel
    assert (5.0, 5) in rel
    refresh = [t for t, c in rel if c == 1]
    assert refresh == [4.0, 8.0, 12.0]


def test_no_second_burst_after_leaving_master() -> None:
    inst, t = make_master(config(priority=150))
    inst.receive(advert(200), t + 1.0)
    assert inst.garp_delay_at is None
    assert of(inst.tick(t + 4.0), SendGarp) == []


def test_garp_master_delay_zero_means_one_burst() -> None:
    inst, _ = make_master(config(priority=150, garp_master_delay=0.0))
    assert inst.garp_delay_at is None


# -- trackers and FAULT ------------------------------------------------------------------------


def test_weighted_script_changes_priority_and_timer() -> None:
    cfg = config(priority=100, trackers=(Tracker("chk_up", 30), Tracker("chk_down", -20)))
    inst = started(cfg)
    assert inst.effective_priority == 130
    before = inst.deadline() or 0.0
    out = inst.set_track("chk_down", False, 1.0)
    assert logs(out) == ["(VI_1) Changing effective priority from 130 to 110"]
    # the running down timer moves with the skew (keepalived shifts sands by the difference)
    assert inst.deadline() == pytest.approx(
        before + (skew_us(3, 110, 1_000_000) - skew_us(3, 130, 1_000_000)) / 1e6
    )
    inst.set_track("chk_up", False, 1.0)
    assert inst.effective_priority == 80
    # clamped to 1..254
    big = started(config(priority=250, trackers=(Tracker("x", 50),)))
    assert big.effective_priority == 254


def test_owner_priority_never_changes() -> None:
    inst = started(config(priority=255, trackers=(Tracker("x", -50),)))
    inst.set_track("x", False, 1.0)
    assert inst.effective_priority == 255


def test_reverse_weight() -> None:
    inst = started(config(priority=100, trackers=(Tracker("x", 10, reverse=True),)))
    assert inst.effective_priority == 90


def test_tracked_interface_down_is_fault_and_back() -> None:
    inst, t = make_master(config(priority=150, interface="eth0"))
    out = inst.set_track("eth0", False, t + 0.5)
    assert inst.state == FAULT
    assert logs(out) == ["(VI_1) Entering FAULT STATE"]
    assert [s.priority for s in sends(out)] == [0, 0]  # keepalived sends two
    assert of(out, RemoveAddresses) == [RemoveAddresses((VIP,))]
    assert of(out, Notify) == [Notify("VI_1", FAULT, 150)]
    assert inst.deadline() is None
    assert inst.receive(advert(200), t + 1.0) == []  # FAULT ignores adverts
    out = inst.set_track("eth0", True, t + 2.0)
    assert inst.state == BACKUP and logs(out) == ["(VI_1) Entering BACKUP STATE"]
    assert inst.deadline() == pytest.approx(t + 2.0 + 3.414062)


def test_start_with_a_failed_tracker_and_pending_script() -> None:
    inst = VRRPInstance(config(interface="eth0", trackers=(Tracker("eth0", 0, up=False),)))
    out = inst.start(0.0)
    assert inst.state == FAULT and "(VI_1) Entering FAULT STATE (init)" in logs(out)
    pending = VRRPInstance(config(trackers=(Tracker("chk", 0, up=None),)))
    out = pending.start(0.0)
    assert pending.state == FAULT and logs(out) == [] and of(out, Notify) == []
    out = pending.set_track("chk", True, 1.0)
    assert pending.state == BACKUP and of(out, Notify) == [Notify("VI_1", BACKUP, 100)]
    pending2 = started(config(trackers=(Tracker("chk", 0, up=None),)))
    out = pending2.set_track("chk", False, 1.0)
    assert pending2.state == FAULT and of(out, Notify) == [Notify("VI_1", FAULT, 100)]


def test_pending_owner_goes_master_when_its_script_passes() -> None:
    inst = started(config(priority=255, state=MASTER, trackers=(Tracker("chk", 0, up=None),)))
    assert inst.state == FAULT
    out = inst.set_track("chk", True, 1.0)
    assert inst.state == MASTER and "(VI_1) Entering MASTER STATE" in logs(out)


def test_backup_fault() -> None:
    inst = started(config(interface="eth0"))
    out = inst.set_track("eth0", False, 1.0)
    assert inst.state == FAULT and sends(out) == [] and logs(out) == ["(VI_1) Entering FAULT STATE"]


# -- shutdown -----------------------------------------------------------------------------------


def test_shutdown_of_a_master_sends_priority_zero() -> None:
    inst, t = make_master(config(priority=150))
    out = inst.shutdown(t + 1.0)
    assert [s.priority for s in sends(out)] == [0]
    assert of(out, RemoveAddresses) == [RemoveAddresses((VIP,))]
    assert of(out, Notify) == [Notify("VI_1", STOP, 150)]
    assert inst.state == STOP and inst.deadline() is None
    assert inst.receive(advert(200), t + 2) == [] and inst.tick(t + 10) == []


def test_shutdown_of_a_backup_only_notifies() -> None:
    inst = started(config())
    assert inst.shutdown(1.0) == [Notify("VI_1", STOP, 100)]


# -- unicast and v2 -------------------------------------------------------------------------------


def test_unicast_peers_get_one_copy_each() -> None:
    peers = (UnicastPeer(B_IP), UnicastPeer(C_IP))
    inst, t = make_master(config(priority=150, unicast_peers=peers, unicast_ttl=64))
    out = inst.tick(inst.deadline() or 0)
    copies = sends(out)
    assert [(s.dest, s.ttl) for s in copies] == [(B_IP, 64), (C_IP, 64)]
    assert copies[0].packet[4:6] == copies[1].packet[4:6]  # one advert, one IP id
    assert copies[0].message[6:8] != copies[1].message[6:8]  # v3 pseudo header differs
    # the peer accepts what we sent it
    peer = started(config(src=B_IP, priority=100, unicast_peers=(UnicastPeer(A_IP),)))
    peer.receive(copies[0].packet, t + 1.0)
    assert peer.master_saddr == A_IP and peer.deadline() == pytest.approx(t + 1.0 + 3.609375)


def test_unicast_learns_old_checksum() -> None:
    inst = started(config(src=B_IP, unicast_peers=(UnicastPeer(A_IP),)))
    message = vrrpmsg.encode(
        Advert(3, 51, 150, 100, (VIP,)), A_IP, B_IP, checksum_mode=vrrpmsg.CHECKSUM_OLD_UNICAST
    )
    out = inst.receive(vrrpmsg.build_ipv4(message, A_IP, B_IP, 1), 1.0)
    assert "(VI_1) Setting unicast VRRPv3 checksum to old version" in logs(out)
    assert inst.checksum_mode == vrrpmsg.CHECKSUM_OLD_UNICAST


def test_v2_with_password() -> None:
    cfg = config(priority=150, version=2, auth_type=vrrpmsg.AUTH_PASS, auth_pass="secret99x")
    inst, t = make_master(cfg)
    packet = sends(inst.tick(inst.deadline() or 0))[0].packet
    assert packet[-8:] == b"secret99"
    peer = started(replace(cfg, src=B_IP, priority=100))
    peer.receive(packet, t + 1)
    assert peer.master_saddr == A_IP
    wrong = started(replace(cfg, src=B_IP, priority=100, auth_pass="other"))
    out = wrong.receive(packet, t + 1)
    assert "received an invalid passwd" in logs(out)[0]


# -- a LAN of routers --------------------------------------------------------------------------


@dataclass
class Host:
    inst: VRRPInstance
    alive: bool = True
    vips: set[str] = field(default_factory=set)
    log: list[tuple[float, str]] = field(default_factory=list)


class LAN:
    """Multicast on one segment, 100 us per hop, with a fake clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.hosts: dict[str, Host] = {}
        self.queue: list[tuple[float, int, str, bytes]] = []
        self.n = 0
        self.masters: list[tuple[float, str]] = []

    def add(self, name: str, cfg: InstanceConfig) -> None:
        self.hosts[name] = Host(VRRPInstance(cfg), alive=False)

    def start(self, name: str) -> None:
        host = self.hosts[name]
        host.inst = VRRPInstance(host.inst.config)
        host.alive = True
        self.perform(name, host.inst.start(self.now))

    def kill(self, name: str) -> None:
        """kill -9: silent, addresses left behind."""
        self.hosts[name].alive = False

    def stop(self, name: str) -> None:
        self.perform(name, self.hosts[name].inst.shutdown(self.now))
        self.hosts[name].alive = False

    def perform(self, name: str, actions: list[object]) -> None:
        host = self.hosts[name]
        for a in actions:
            if isinstance(a, Send):
                for other in self.hosts:
                    if other != name:
                        self.n += 1
                        heapq.heappush(self.queue, (self.now + 1e-4, self.n, other, a.packet))
            elif isinstance(a, AddAddresses):
                host.vips |= set(a.addresses)
            elif isinstance(a, RemoveAddresses):
                host.vips -= set(a.addresses)
            elif isinstance(a, Log):
                host.log.append((self.now, a.text))
            elif isinstance(a, Notify) and a.state == MASTER:
                self.masters.append((self.now, name))

    def run(self, until: float) -> None:
        while True:
            times = [
                (h.inst.deadline(), n)
                for n, h in self.hosts.items()
                if h.alive and h.inst.deadline() is not None
            ]
            timer = min(times) if times else None
            packet = self.queue[0] if self.queue else None
            if timer is not None and (packet is None or timer[0] <= packet[0]):  # type: ignore[operator]
                when, name = timer
                assert when is not None
                if when > until:
                    break
                self.now = max(self.now, when)
                self.perform(name, self.hosts[name].inst.tick(self.now))
            elif packet is not None:
                when, _, name, data = packet
                if when > until:
                    break
                heapq.heappop(self.queue)
                self.now = when
                if self.hosts[name].alive:
                    self.perform(name, self.hosts[name].inst.receive(data, self.now))
            else:
                break
        self.now = until

    def state(self) -> dict[str, str]:
        return {n: h.inst.state for n, h in self.hosts.items() if h.alive}


def lan_pair(advert_int: float = 1.0, **kw: object) -> LAN:
    lan = LAN()
    lan.add("a", config(A_IP, 150, advert_int=advert_int, **kw))
    lan.add("b", config(B_IP, 100, advert_int=advert_int))
    return lan


def test_lan_election_failover_and_preemption() -> None:
    lan = lan_pair()
    lan.start("a")
    lan.start("b")
    lan.run(10.0)
    assert lan.state() == {"a": MASTER, "b": BACKUP}
    assert lan.masters == [(pytest.approx(3.414062), "a")]
    assert lan.hosts["a"].vips == {VIP} and lan.hosts["b"].vips == set()
    # kill -9 of the master: the backup takes over after its master down interval
    last_advert = 10.0 - ((10.0 - 3.414062) % 1.0)
    lan.kill("a")
    lan.run(20.0)
    assert lan.state() == {"b": MASTER}
    took_over = lan.masters[-1][0]
    assert took_over == pytest.approx(last_advert + 3.609375, abs=1e-3)  # measured: 3.0-3.6 s
    # the master returns: it starts as backup, discards the lower adverts and preempts
    lan.start("a")
    t0 = lan.now
    lan.run(30.0)
    assert lan.state() == {"a": MASTER, "b": BACKUP}
    assert lan.masters[-1] == (pytest.approx(t0 + 3.414062, abs=1e-3), "a")
    assert lan.hosts["b"].vips == set()
    assert any("discarding" in text for _, text in lan.hosts["a"].log)
    assert any("Master received advert" in text for _, text in lan.hosts["b"].log)


def test_lan_sigterm_hands_over_in_skew_time() -> None:
    lan = lan_pair(advert_int=0.1)
    lan.start("a")
    lan.run(0.05)
    lan.start("b")
    lan.run(5.0)
    assert lan.state() == {"a": MASTER, "b": BACKUP}
    lan.stop("a")
    t0 = lan.now
    lan.run(6.0)
    assert lan.state() == {"b": MASTER}
    # priority 0: only the skew, (256 - 100) * 0.1 / 256 s (measured 0.07 s)
    assert lan.masters[-1] == (pytest.approx(t0 + 1e-4 + 0.060937, abs=1e-4), "b")


def test_lan_nopreempt() -> None:
    lan = LAN()
    lan.add("a", config(A_IP, 150, nopreempt=True))
    lan.add("b", config(B_IP, 100))
    lan.start("b")
    lan.run(10.0)
    assert lan.state() == {"b": MASTER}
    lan.start("a")
    lan.run(30.0)
    assert lan.state() == {"a": BACKUP, "b": MASTER}


def test_lan_failing_script_moves_the_master() -> None:
    lan = LAN()
    lan.add("a", config(A_IP, 150, trackers=(Tracker("chk", -60),)))
    lan.add("b", config(B_IP, 100))
    lan.start("a")
    lan.start("b")
    lan.run(10.0)
    assert lan.state() == {"a": MASTER, "b": BACKUP}
    lan.perform("a", lan.hosts["a"].inst.set_track("chk", False, lan.now))
    lan.run(20.0)
    assert lan.state() == {"a": BACKUP, "b": MASTER}
    lan.perform("a", lan.hosts["a"].inst.set_track("chk", True, lan.now))
    lan.run(30.0)
    assert lan.state() == {"a": MASTER, "b": BACKUP}


def test_lan_three_routers_equal_priority_highest_address_wins() -> None:
    lan = LAN()
    for name, ip in (("a", A_IP), ("b", B_IP), ("c", C_IP)):
        lan.add(name, config(ip, 100))
    for name in "abc":
        lan.start(name)
    lan.run(20.0)
    # all start together, all time out together: the tie-break leaves the highest address
    assert lan.state() == {"a": BACKUP, "b": BACKUP, "c": MASTER}
    assert [h.vips for h in lan.hosts.values()] == [set(), set(), {VIP}]


# -- replaying keepalived 2.2.7 ----------------------------------------------------------------

# captures/keepalived-2.2.7-vrrpv3.pcap, first 70 s: what 10.78.0.1 (priority 150) sent
# (time, priority, IP id): master, killed at ~19 s, restarted (preempts at 33.07), SIGTERM at
# 40.10 (priority 0), restarted (preempts at 51.23).
CAPTURE_A = [
    (0.0, 150, 1),
    (1.0005, 150, 2),
    (2.0008, 150, 3),
    (3.001, 150, 4),
    (4.0012, 150, 5),
    (5.0013, 150, 6),
    (6.0015, 150, 7),
    (7.0018, 150, 8),
    (8.002, 150, 9),
    (9.0023, 150, 10),
    (10.0025, 150, 11),
    (11.0027, 150, 12),
    (12.0029, 150, 13),
    (13.0032, 150, 14),
    (14.0035, 150, 15),
    (15.0038, 150, 16),
    (16.004, 150, 17),
    (17.0043, 150, 18),
    (18.0045, 150, 19),
    (19.0048, 150, 20),
    (33.0718, 150, 1),
    (34.0723, 150, 2),
    (35.0725, 150, 3),
    (36.0728, 150, 4),
    (37.073, 150, 5),
    (38.0731, 150, 6),
    (39.0758, 150, 7),
    (40.076, 150, 8),
    (40.1009, 0, 9),
    (51.2328, 150, 1),
    (52.2337, 150, 2),
    (53.2339, 150, 3),
    (54.2341, 150, 4),
    (55.2343, 150, 5),
    (56.2352, 150, 6),
    (57.2354, 150, 7),
    (58.2356, 150, 8),
    (59.2357, 150, 9),
    (60.2359, 150, 10),
    (61.2362, 150, 11),
    (62.2364, 150, 12),
    (63.2366, 150, 13),
    (64.2368, 150, 14),
    (65.237, 150, 15),
    (66.2463, 150, 16),
    (67.2465, 150, 17),
    (68.2467, 150, 18),
    (69.2468, 150, 19),
]
# what 10.78.0.2 (priority 100, keepalived) sent in return: (time, IP id), and its GARP bursts
CAPTURE_B = [
    (22.6154, 1),
    (23.6157, 2),
    (24.6159, 3),
    (25.6161, 4),
    (26.6163, 5),
    (27.6163, 6),
    (28.6165, 7),
    (29.6167, 8),
    (30.618, 9),
    (31.6181, 10),
    (32.6183, 11),
    (40.7105, 12),
    (41.7137, 13),
    (42.7139, 14),
    (43.7142, 15),
    (44.7143, 16),
    (45.7145, 17),
    (46.7147, 18),
    (47.7148, 19),
    (48.715, 20),
    (49.7151, 21),
    (50.7153, 22),
]
CAPTURE_B_GARP = [22.6155, 27.6158, 40.7107, 45.711]


def test_replay_of_keepalived_capture() -> None:
    """pylvs in 10.78.0.2's place, fed 10.78.0.1's adverts at their captured times, sends what
    keepalived sent: the same bytes (IP ids included) within 20 ms, and GARPs at the same
    moments."""
    inst = VRRPInstance(config(B_IP, 100))
    inst.start(-0.5)
    sent: list[tuple[float, Send]] = []
    garps: list[float] = []
    feed = [
        (
            t,
            vrrpmsg.build_ipv4(
                vrrpmsg.encode(Advert(3, 51, p, 100, (VIP,)), A_IP, "224.0.0.18"),
                A_IP,
                "224.0.0.18",
                i,
            ),
        )
        for t, p, i in CAPTURE_A
    ]

    def record(now: float, actions: list[object]) -> None:
        sent.extend((now, a) for a in sends(actions))
        garps.extend(now for _ in of(actions, SendGarp))

    now = -0.5
    for t, packet in [*feed, (70.0, b"")]:
        while (d := inst.deadline()) is not None and d <= t:
            now = d
            record(now, inst.tick(now))
        if packet:
            record(t, inst.receive(packet, t + 1e-4))
    assert len(sent) == len(CAPTURE_B)
    for k, (t, send) in enumerate(sent):
        t_ka, ip_id = CAPTURE_B[k]
        assert abs(t - t_ka) < 0.02, (t, t_ka)
        assert send.packet == vrrpmsg.build_ipv4(
            vrrpmsg.encode(Advert(3, 51, 100, 100, (VIP,)), B_IP, "224.0.0.18"),
            B_IP,
            "224.0.0.18",
            ip_id,
        )
    assert len(garps) == len(CAPTURE_B_GARP)
    for t, t_ka in ((garps[k], CAPTURE_B_GARP[k]) for k in range(len(garps))):
        assert abs(t - t_ka) < 0.02, (t, t_ka)
    assert inst.state == BACKUP
