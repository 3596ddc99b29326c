"""One ``vrrp_instance`` as keepalived 2.2.7 runs it, sans I/O: advertisements and time in,
advertisements, address changes, gratuitous ARP bursts, notifications and log lines out.

The caller (the daemon's VRRP component) owns the raw IP-protocol-112 socket, the multicast
membership (with IP_MULTICAST_LOOP off, as keepalived: an instance must not hear itself), the
addresses and the ARP sender. It calls :meth:`VRRPInstance.start`, hands every datagram to
:meth:`VRRPInstance.receive`, calls :meth:`VRRPInstance.tick` at
:meth:`VRRPInstance.deadline`, reports tracked scripts and interfaces with
:meth:`VRRPInstance.set_track`, and :meth:`VRRPInstance.shutdown` on SIGTERM; it performs the
actions each returns, in order.

Rules (RFC 5798 6.4, RFC 3768 6.4, and where keepalived differs, keepalived: ``vrrp.c``
``vrrp_state_backup`` / ``vrrp_state_master_rx`` / ``vrrp_state_master_tx`` /
``vrrp_state_leave_master`` / ``vrrp_state_leave_fault``, ``vrrp_scheduler.c``
``vrrp_init_state`` / ``try_up_instance``, ``vrrp_track.c``):

* Timers are kept in integer microseconds, as keepalived computes them (``vrrp.h``):
  skew = (256 - priority) / 256 s in v2, (256 - priority) * Master_Adver_Interval / 256 in v3
  (integer centisecond arithmetic: ``* 625 / 16`` us); Master_Down = 3 * Master_Adver_Interval +
  skew. Advert 1 s, priority 128: 3.5 s. A v3 backup adopts the interval of the adverts it
  accepts; a v2 router refuses an advert whose interval differs from its own.
* BACKUP: an advert of priority 0 leaves only the skew time; one of higher or equal priority, or
  any advert with ``nopreempt``, or a lower one while ``preempt_delay`` runs (from the first lower
  advert), restarts Master_Down; a lower one is discarded and Master_Down runs on: the backup
  preempts. Expiry: MASTER.
* MASTER: sends an advert every Advertisement_Interval; a higher advert (or an equal one from a
  higher primary address) makes it BACKUP without sending anything; a lower one (or equal from a
  lower address) makes it send an advert at once ("forcing new election") and a burst of
  ``garp_lower_prio_repeat`` gratuitous ARPs (then again after ``garp_lower_prio_delay``); a
  priority-0 advert makes it send one at once.
* Becoming MASTER: advert first (so the old master drops the VIPs before the ARPs), then the
  addresses, ``garp_master_repeat`` GARPs per address, a second burst after
  ``garp_master_delay`` and, every ``garp_master_refresh``, ``garp_master_refresh_repeat`` more
  (2.2.7 checks the refresh when it sends an advert); notify MASTER.
* ``state MASTER`` with priority 255 starts master at once (a 1 us down timer); any other start
  is BACKUP with a full Master_Down (keepalived gives ``state MASTER`` below 255 no head start
  outside a sync group).
* Trackers (``track_interface``, ``track_script``, ... and the instance's own interface):
  weight 0 means a failure is FAULT; a weight W moves the priority by W (``reverse`` flips
  it): +W while up if W > 0, -|W| while down if W < 0. The effective priority is base + weights
  within 1..254 and never changes for an address owner (255). A pending script (``up=None``,
  not yet run) holds the instance in FAULT at start, silently.
* FAULT: adverts are ignored; a master entering FAULT sends priority 0 (twice, as keepalived
  does: ``vrrp_state_leave_master`` and ``vrrp_restore_interface`` each send one) and drops its
  addresses. Leaving FAULT is BACKUP with a full Master_Down.
* Shutdown: a master sends priority 0 and removes its addresses; every instance notifies STOP.

The state changes are the table :data:`TRANSITIONS` ((state, event) -> (handler, state)); every
pair has an entry, so the machine is total. Log lines are keepalived's words; ``detail`` marks
those it prints only with ``-D``, and the packet-check complaints are rate limited as keepalived's
``rlflags`` (once until the next state change or a new master).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pylvs.core import vrrpmsg
from pylvs.core.vrrpmsg import (
    AUTH_AH,
    AUTH_NONE,
    AUTH_PASS,
    CHECKSUM_NEW,
    CHECKSUM_OLD_UNICAST,
    PRIO_DEFAULT,
    PRIO_OWNER,
    PRIO_STOP,
    Accepted,
    Advert,
    Expect,
    UnicastPeer,
)

if TYPE_CHECKING:
    from pylvs.core.vrrpgroup import SyncGroup

__all__ = [
    "BACKUP",
    "EVENTS",
    "FAULT",
    "INIT",
    "MASTER",
    "STATES",
    "STOP",
    "TRANSITIONS",
    "AddAddresses",
    "InstanceConfig",
    "Log",
    "Notify",
    "RemoveAddresses",
    "Send",
    "SendGarp",
    "Tracker",
    "VRRPInstance",
    "complete",
    "master_down_us",
    "skew_us",
]

INIT = "INIT"
BACKUP = "BACKUP"
MASTER = "MASTER"
FAULT = "FAULT"
STOP = "STOP"
STATES = (INIT, BACKUP, MASTER, FAULT, STOP)
US = 1_000_000

# The events. rx_* are advertisements that passed vrrpmsg.check, classified for the state
# they arrive in (BACKUP: stop / accept / lower; MASTER: stop / lower / higher / self).
EVENTS = (
    "start",
    "start_fault",
    "master_down",
    "advert_timer",
    "garp_delay",
    "garp_lower_prio",
    "rx_refused",
    "rx_stop",
    "rx_accept",
    "rx_lower",
    "rx_higher",
    "rx_self",
    "fault",
    "recover",
    "shutdown",
)

_IGNORE = ("ignore", "")  # stay where you are, do nothing ("" = the current state)

# (state, event) -> (handler, next state). The handler does the work; the next state is where
# the instance ends up unless a sync group holds it back (goto_master) or a fault is pending.
TRANSITIONS: dict[tuple[str, str], tuple[str, str]] = {}
for _s in STATES:
    for _e in EVENTS:
        TRANSITIONS[(_s, _e)] = _IGNORE
    TRANSITIONS[(_s, "shutdown")] = ("shutdown", STOP)
TRANSITIONS.update(
    {
        (INIT, "start"): ("start_backup", BACKUP),
        (INIT, "start_fault"): ("start_fault", FAULT),
        (INIT, "fault"): ("ignore", INIT),  # counted; start() decides
        (BACKUP, "master_down"): ("goto_master", MASTER),
        (BACKUP, "rx_stop"): ("backup_rx_stop", BACKUP),
        (BACKUP, "rx_accept"): ("backup_rx_accept", BACKUP),
        (BACKUP, "rx_lower"): ("backup_rx_lower", BACKUP),
        (BACKUP, "fault"): ("enter_fault", FAULT),
        (MASTER, "advert_timer"): ("master_tx", MASTER),
        (MASTER, "garp_delay"): ("garp_again", MASTER),
        (MASTER, "garp_lower_prio"): ("garp_lower_again", MASTER),
        (MASTER, "rx_stop"): ("master_rx_stop", MASTER),
        (MASTER, "rx_lower"): ("master_rx_lower", MASTER),
        (MASTER, "rx_higher"): ("master_rx_higher", BACKUP),
        (MASTER, "rx_self"): ("master_rx_self", MASTER),
        (MASTER, "fault"): ("master_fault", FAULT),
        (FAULT, "fault"): ("enter_fault", FAULT),  # a pending script failed: notify FAULT
        (FAULT, "recover"): ("leave_fault", BACKUP),  # MASTER at once for a waiting owner
        (STOP, "shutdown"): _IGNORE,
    }
)


# -- actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send an advertisement to ``dest`` (the multicast group, or one unicast peer).

    ``packet`` is the whole IPv4 datagram keepalived sends (for an IP_HDRINCL socket: TOS 0xc0,
    TTL ``ttl``, the instance's IP id); ``message`` is the VRRP message alone (for IPv6, or a
    socket that builds its own IP header: it must then use ``src`` and ``ttl``)."""

    dest: str
    message: bytes
    packet: bytes
    priority: int
    src: str
    ttl: int


@dataclass(frozen=True)
class AddAddresses:
    """Configure the virtual addresses (``virtual_ipaddress`` and ``_excluded``)."""

    addresses: tuple[str, ...]


@dataclass(frozen=True)
class RemoveAddresses:
    """Remove the virtual addresses (absent ones are not an error: at start keepalived removes
    what a killed predecessor left)."""

    addresses: tuple[str, ...]


@dataclass(frozen=True)
class SendGarp:
    """Send ``count`` rounds of gratuitous ARP, one per address per round
    (``vrrp_send_link_update``; frames: :func:`pylvs.core.vrrpmsg.gratuitous_arp`)."""

    addresses: tuple[str, ...]
    count: int


@dataclass(frozen=True)
class Notify:
    """Run the notify script for ``state`` (``notify_master`` / ``_backup`` / ``_fault`` /
    ``_stop``, ``notify_master_rx_lower_pri`` for MASTER_RX_LOWER_PRI) and the generic
    ``notify`` script as ``notify {INSTANCE|GROUP} NAME STATE PRIORITY``; write the notify
    FIFO line."""

    name: str
    state: str
    priority: int
    group: bool = False

    @property
    def argv(self) -> tuple[str, str, str, str]:
        return ("GROUP" if self.group else "INSTANCE", self.name, self.state, str(self.priority))


@dataclass(frozen=True)
class Log:
    """A line keepalived logs; ``detail``: only with ``-D`` (LOG_DETAIL)."""

    text: str
    detail: bool = False


Action = object


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Tracker:
    """A tracked object (``track_interface``, ``track_script``, ``track_file``, ...).

    ``up``: the state at start; None for a script that has not run yet (keepalived's
    ``SCRIPT_INIT_STATE_INIT``)."""

    name: str
    weight: int = 0
    reverse: bool = False
    up: bool | None = True


@dataclass(frozen=True)
class InstanceConfig:
    """What one ``vrrp_instance`` block (with the global defaults filled in) says."""

    name: str
    vrid: int
    src: str  # the primary address of the interface, or unicast_src_ip
    vips: tuple[str, ...] = ()
    excluded_vips: tuple[str, ...] = ()  # virtual_ipaddress_excluded: set, never advertised
    priority: int = 0  # 0: not given (keepalived derives it from the state)
    state: str = ""  # "MASTER" / "BACKUP" / "" (derived from the priority)
    version: int = 2  # vrrp_version (IPv6 is always 3)
    family: int = 4
    advert_int: float = 1.0
    nopreempt: bool = False
    preempt_delay: float = 0.0
    auth_type: int = AUTH_NONE
    auth_pass: str = ""
    unicast_peers: tuple[UnicastPeer, ...] = ()
    unicast_ttl: int = 255
    check_unicast_src: bool = False
    mcast_group: str = ""
    old_unicast_checksum: str = ""  # "" (learn from a peer), "always" (the keyword), "never"
    interface: str = ""  # tracked with weight 0 (empty: dont_track_primary)
    trackers: tuple[Tracker, ...] = ()
    garp_master_delay: float = 5.0
    garp_master_repeat: int = 5
    garp_master_refresh: float = 0.0
    garp_master_refresh_repeat: int = 1
    garp_lower_prio_delay: float | None = None  # None: garp_master_delay
    garp_lower_prio_repeat: int | None = None  # None: garp_master_repeat
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    down_timer_adverts: int = 3
    skip_check_adv_addr: bool = False


def complete(cfg: InstanceConfig) -> tuple[InstanceConfig, list[str]]:
    """keepalived's ``vrrp_complete_instance`` rules for what the state machine uses: the
    derived priority and state, and the options it clears, with its messages."""
    msgs: list[str] = []
    n = cfg.name
    priority, state = cfg.priority, cfg.state
    if priority == 0:
        priority = PRIO_OWNER if state == MASTER else PRIO_DEFAULT
    if not state:
        state = MASTER if priority == PRIO_OWNER else BACKUP
    if state not in (MASTER, BACKUP):
        raise ValueError(f"({n}) state is MASTER or BACKUP")
    if not 1 <= priority <= 255 or not 1 <= cfg.vrid <= 255:
        raise ValueError(f"({n}) priority and virtual_router_id are 1..255")
    version = 3 if cfg.family == 6 else cfg.version
    auth_type = cfg.auth_type
    if version == 3 and auth_type != AUTH_NONE:
        msgs.append(f"({n}) VRRP version 3 does not support authentication. Ignoring.")
        auth_type = AUTH_NONE
    elif auth_type != AUTH_NONE and not cfg.auth_pass:
        msgs.append(f"({n}) Authentication specified but no password given. Ignoring")
        auth_type = AUTH_NONE
    if auth_type == AUTH_AH:
        raise ValueError(f"({n}) auth_type AH is not supported by pylvs")
    advert_int = cfg.advert_int
    if version == 2 and advert_int != int(advert_int):
        whole = max(1, round(advert_int))
        msgs.append(f"({n}) VRRPv2 advert interval {advert_int} s is rounded to {whole} s")
        advert_int = float(whole)
    nopreempt, preempt_delay = cfg.nopreempt, cfg.preempt_delay
    if priority == PRIO_OWNER and nopreempt:
        msgs.append(f"({n}) nopreempt is incompatible with priority 255. resetting nopreempt")
        nopreempt = False
    if state == MASTER:
        if nopreempt:
            msgs.append(
                f"({n}) Warning - nopreempt will not work with initial state MASTER - clearing"
            )
            nopreempt = False
        if preempt_delay:
            msgs.append(
                f"({n}) Warning - preempt delay will not work with initial state MASTER - clearing"
            )
            preempt_delay = 0.0
    if preempt_delay and nopreempt:
        msgs.append(f"({n}) preempt_delay is incompatible with nopreempt mode - resetting")
        preempt_delay = 0.0
    done = replace(
        cfg,
        priority=priority,
        state=state,
        version=version,
        auth_type=auth_type,
        advert_int=advert_int,
        nopreempt=nopreempt,
        preempt_delay=preempt_delay,
        garp_lower_prio_delay=(
            cfg.garp_master_delay
            if cfg.garp_lower_prio_delay is None
            else cfg.garp_lower_prio_delay
        ),
        garp_lower_prio_repeat=(
            cfg.garp_master_repeat
            if cfg.garp_lower_prio_repeat is None
            else cfg.garp_lower_prio_repeat
        ),
    )
    return done, msgs


def skew_us(version: int, priority: int, master_adver_int_us: int) -> int:
    """``VRRP_TIMER_SKEW``: v2 (256 - prio) / 256 s; v3 (256 - prio) * interval / 256, in
    keepalived's integer arithmetic (centiseconds * 625 / 16 = microseconds / 256)."""
    if version == 3:
        return ((256 - priority) * (master_adver_int_us // 10_000) * 625) // 16
    return ((256 - priority) * US) // 256


def master_down_us(version: int, priority: int, master_adver_int_us: int, adverts: int = 3) -> int:
    """``VRRP_MS_DOWN_TIMER``: adverts * Master_Adver_Interval + skew."""
    return adverts * master_adver_int_us + skew_us(version, priority, master_adver_int_us)


def _addr_key(address: str) -> int:
    return int(ipaddress.ip_address(address))


# -- the instance ---------------------------------------------------------------------------


@dataclass
class VRRPInstance:
    config: InstanceConfig
    group: SyncGroup | None = None
    cfg: InstanceConfig = field(init=False)

    def __post_init__(self) -> None:
        self.cfg, self._config_msgs = complete(self.config)
        cfg = self.cfg
        self.state = INIT
        self.wantstate = cfg.state
        self.base_priority = cfg.priority
        self.effective_priority = cfg.priority
        # v2 intervals are whole seconds; v3 centiseconds (12 bits)
        self.adver_int_us = round(cfg.advert_int * 100) * 10_000
        self.master_adver_int_us = self.adver_int_us
        self.ms_down_timer_us = 0
        self.sands: float | None = None  # BACKUP: master down; MASTER: next advert
        self.preempt_time: float | None = None
        self.master_saddr = ""
        self.master_priority = 0
        self.vipset = False
        self.ip_id = 0
        self.garp_delay_at: float | None = None
        self.garp_lower_at: float | None = None
        self.garp_refresh_at: float | None = None
        self.rlflags: set[str] = set()
        self.checksum_mode = (
            CHECKSUM_OLD_UNICAST if cfg.old_unicast_checksum == "always" else CHECKSUM_NEW
        )
        self.notifies_sent = False
        self.counters: Counter[str] = Counter()
        self.transitions: list[tuple[str, str, float]] = []  # (from, to, when), for sync groups
        trackers = list(cfg.trackers)
        if cfg.interface and all(t.name != cfg.interface for t in trackers):
            trackers.insert(0, Tracker(cfg.interface, 0))
        self.trackers = {t.name: t for t in trackers}
        self.track_up: dict[str, bool | None] = {t.name: t.up for t in trackers}
        self.total_priority = self._total()
        if self.base_priority != PRIO_OWNER:
            self.effective_priority = min(max(self.total_priority, 1), PRIO_OWNER - 1)
        self._out: list[Action] = []
        self._now = 0.0
        self._rx_verdict: Accepted | None = None

    # -- what the instance shows ----------------------------------------------------------

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.cfg.vips + self.cfg.excluded_vips

    @property
    def faulted(self) -> bool:
        """A weight-0 tracker reports a failure (keepalived: ``num_script_if_fault``)."""
        return any(self._tracker_fault(name) for name in self.trackers)

    @property
    def pending(self) -> bool:
        """A weight-0 script has not reported yet (``num_script_init``)."""
        return any(
            t.weight == 0 and self.track_up[name] is None for name, t in self.trackers.items()
        )

    def deadline(self) -> float | None:
        """When :meth:`tick` must next be called (None: nothing pending)."""
        times = [t for t in (self.sands, self.garp_delay_at, self.garp_lower_at) if t is not None]
        return min(times) if times else None

    def skew(self) -> float:
        return skew_us(self.cfg.version, self.effective_priority, self.master_adver_int_us) / US

    def master_down_interval(self) -> float:
        return self._ms_down() / US

    def expect(self) -> Expect:
        cfg = self.cfg
        return Expect(
            cfg.name,
            cfg.vrid,
            cfg.version,
            cfg.family,
            self.adver_int_us // 10_000,
            cfg.vips,
            cfg.auth_type,
            cfg.auth_pass.encode(),
            cfg.unicast_peers,
            cfg.check_unicast_src,
            cfg.mcast_group,
            self.checksum_mode,
            cfg.old_unicast_checksum != "never",
            True,
        )

    # -- inputs -----------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """``vrrp_init_state``: BACKUP (or FAULT), or master almost at once for an owner."""
        self._now = now
        for msg in self._config_msgs:
            self._log(msg)
        # keepalived removes what a killed predecessor left (the VIPs must not be sources).
        if self.addresses:
            self._emit(RemoveAddresses(self.addresses))
        event = "start_fault" if self.faulted or self.pending else "start"
        self._dispatch(event, now)
        return self._flush()

    def receive(
        self, data: bytes, now: float, src: str = "", dst: str = "", ttl: int | None = None
    ) -> list[Action]:
        """A datagram from the raw socket (IPv4: with its IP header; IPv6: the VRRP message,
        with source, destination and hop limit from the ancillary data)."""
        self._now = now
        if self.state not in (BACKUP, MASTER):
            # vrrp_dispatcher_read: ignored in FAULT and INIT (and after stopping)
            return self._flush()
        expect = self.expect()
        if self.state == BACKUP and self.cfg.skip_check_adv_addr:
            expect = replace(expect, check_vips=False)
        verdict = vrrpmsg.check(data, expect, src, dst, ttl)
        if not isinstance(verdict, Accepted):
            self.counters[verdict.reason] += 1
            if verdict.reason != "vrid":
                self._log_limited(verdict.reason, verdict.text)
            self._dispatch("rx_refused", now)
            return self._flush()
        self.counters["advert_rcvd"] += 1
        for reason, text in verdict.warnings:
            self.counters[reason] += 1
            self._log_limited(reason, text)
        if verdict.old_checksum and self.checksum_mode != CHECKSUM_OLD_UNICAST:
            self.checksum_mode = CHECKSUM_OLD_UNICAST
            self._log(f"({self.cfg.name}) Setting unicast VRRPv3 checksum to old version")
        advert = verdict.advert
        if advert.priority == PRIO_STOP:
            self.counters["pri_zero_rcvd"] += 1
        self._rx_verdict = verdict
        self._dispatch(self._classify(verdict), now)
        return self._flush()

    def tick(self, now: float) -> list[Action]:
        """Timers that are due: master down, the next advert, the delayed GARP bursts."""
        self._now = now
        if self.garp_delay_at is not None and now >= self.garp_delay_at:
            self.garp_delay_at = None
            self._dispatch("garp_delay", now)
        if self.garp_lower_at is not None and now >= self.garp_lower_at:
            self.garp_lower_at = None
            self._dispatch("garp_lower_prio", now)
        if self.sands is not None and now >= self.sands:
            if self.state == BACKUP:
                self._log(f"({self.cfg.name}) Receive advertisement timeout", detail=True)
                self._dispatch("master_down", now)
            elif self.state == MASTER:
                self._dispatch("advert_timer", now)
        return self._flush()

    def set_track(self, name: str, up: bool, now: float) -> list[Action]:
        """A tracked object changed (a script's rise/fall result, an interface's link)."""
        self._now = now
        if name not in self.trackers:
            raise KeyError(f"({self.cfg.name}) does not track {name}")
        was_fault, was_pending = self.faulted, self.pending
        self.track_up[name] = up
        if self.trackers[name].weight:
            self.total_priority = self._total()
            self._set_effective_priority(now)
            return self._flush()
        if self.faulted and not was_fault:
            self._dispatch("fault", now)
        elif not self.faulted and (was_fault or was_pending) and not self.pending:
            if self.state == INIT:
                pass
            elif self.group is None or self.group.may_leave_fault(self):
                self._dispatch("recover", now)
            else:
                self.wantstate = BACKUP  # held in FAULT by another member's fault
        return self._flush()

    def shutdown(self, now: float) -> list[Action]:
        """SIGTERM: a master sends priority 0 and releases its addresses; notify STOP."""
        self._now = now
        self._dispatch("shutdown", now)
        return self._flush()

    # -- the table --------------------------------------------------------------------------

    def _classify(self, rx: Accepted) -> str:
        """Which rx_* event an accepted advertisement is, in the current state."""
        prio = rx.advert.priority
        if prio == PRIO_STOP:
            return "rx_stop"
        ours = self.effective_priority
        if self.state == BACKUP:
            # vrrp_state_backup: accept unless it is lower and we may preempt now
            if (
                self.cfg.nopreempt
                or prio >= ours
                or (
                    self.cfg.preempt_delay > 0
                    and (self.preempt_time is None or self.preempt_time > self._now)
                )
            ):
                return "rx_accept"
            return "rx_lower"
        cmp = _addr_key(rx.src) - _addr_key(self.cfg.src)
        if prio == ours and cmp != 0 and ours == PRIO_OWNER:
            # 2.2.7: two address owners; the one that hears the other steps down to 254.
            self._log(
                f"({self.cfg.name}) CONFIGURATION ERROR: local instance and a remote instance"
                " are both configured as address owner, please fix - reducing local priority"
            )
            self.effective_priority = self.base_priority = PRIO_OWNER - 1
            ours = self.effective_priority
        if prio < ours or (prio == ours and cmp < 0):
            return "rx_lower"
        if prio > ours or cmp > 0:
            return "rx_higher"
        return "rx_self"

    def _dispatch(self, event: str, now: float) -> None:
        handler, _target = TRANSITIONS[(self.state, event)]
        before = self.state
        getattr(self, "_do_" + handler)(now)
        if self.state != before:
            self.transitions.append((before, self.state, now))

    # -- handlers (one per table entry) -------------------------------------------------------

    def _do_ignore(self, now: float) -> None:
        pass

    def _do_start_backup(self, now: float) -> None:
        cfg = self.cfg
        if self.wantstate == MASTER and self.base_priority == PRIO_OWNER:
            # "The simplest way to become master is to timeout from the backup state very
            # quickly (1usec)": no BACKUP log, no notify.
            self.state = BACKUP
            self.ms_down_timer_us = 1
        else:
            if self.group is not None and self.wantstate == MASTER:
                # a sync group member that wants master lets one interval pass
                self.ms_down_timer_us = self.master_adver_int_us + skew_us(
                    cfg.version, 255, self.master_adver_int_us
                )
            else:
                self.ms_down_timer_us = self._ms_down()
            self._log(f"({cfg.name}) Entering BACKUP STATE (init)")
            self.state = BACKUP
            self._notify()
        self.sands = now + self.ms_down_timer_us / US

    def _do_start_fault(self, now: float) -> None:
        self.ms_down_timer_us = self._ms_down()
        if self.faulted:
            self.wantstate = FAULT
            self._log(f"({self.cfg.name}) Entering FAULT STATE (init)")
            self.state = FAULT
            self._notify()
        else:
            self.state = FAULT  # scripts not run yet: FAULT, silently
        self.sands = None

    def _do_goto_master(self, now: float) -> None:
        """``vrrp_goto_master`` / ``vrrp_state_goto_master``."""
        self.wantstate = MASTER
        if self.group is not None and not self.group.can_goto_master(self, now):
            return
        self.rlflags.clear()
        self.state = MASTER
        self.sands = now + self.adver_int_us / US
        self._do_master_tx(now)

    def _do_master_tx(self, now: float) -> None:
        """``vrrp_state_master_tx``: the advert, then (first time) the MASTER state itself."""
        cfg = self.cfg
        self._send_advert(self.effective_priority)
        self.sands = now + self.adver_int_us / US
        if not self.vipset:
            self._log(f"({cfg.name}) Entering MASTER STATE")
            self._become_master(now)
            if cfg.garp_master_delay:
                self.garp_delay_at = now + cfg.garp_master_delay
        elif self.garp_refresh_at is not None and now > self.garp_refresh_at:
            self._garp(cfg.garp_master_refresh_repeat)
            self.garp_refresh_at = now + cfg.garp_master_refresh

    def _become_master(self, now: float) -> None:
        cfg = self.cfg
        self.counters["become_master"] += 1
        if self.master_adver_int_us != self.adver_int_us:
            self._log(
                f"({cfg.name}) changing advert interval from {self.master_adver_int_us // 1000}ms"
                f" to locally configured {self.adver_int_us // 1000}ms",
                detail=True,
            )
            self.master_adver_int_us = self.adver_int_us
        if self.addresses:
            self._emit(AddAddresses(self.addresses))
        self.vipset = True
        self._garp(cfg.garp_master_repeat)
        if cfg.garp_master_refresh:
            self.garp_refresh_at = now + cfg.garp_master_refresh
        self._notify()

    def _do_garp_again(self, now: float) -> None:
        self._garp(self.cfg.garp_master_repeat)

    def _do_garp_lower_again(self, now: float) -> None:
        self._garp(self.cfg.garp_lower_prio_repeat or 0)

    def _do_backup_rx_stop(self, now: float) -> None:
        self._log(f"({self.cfg.name}) Backup received priority 0 advertisement", detail=True)
        self.ms_down_timer_us = skew_us(
            self.cfg.version, self.effective_priority, self.master_adver_int_us
        )
        self.sands = now + self.ms_down_timer_us / US

    def _do_backup_rx_accept(self, now: float) -> None:
        cfg, rx = self.cfg, self._rx
        advert = rx.advert
        if rx.src != self.master_saddr:
            self.rlflags.clear()  # a new master: its complaints may be logged again
        if cfg.version == 3:
            self._adopt_interval(advert)
        self.ms_down_timer_us = self._ms_down()
        self.sands = now + self.ms_down_timer_us / US
        self.master_saddr = rx.src
        self.master_priority = advert.priority
        if cfg.preempt_delay:
            if advert.priority >= self.effective_priority:
                if self.preempt_time is not None:
                    self._log(f"({cfg.name}) stop preempt delay", detail=True)
                    self.preempt_time = None
            elif self.preempt_time is None:
                self._log(
                    f"({cfg.name}) start preempt delay ({cfg.preempt_delay:.6f})", detail=True
                )
                self.preempt_time = now + cfg.preempt_delay
        self.wantstate = BACKUP

    def _do_backup_rx_lower(self, now: float) -> None:
        rx = self._rx
        self._log(
            f"({self.cfg.name}) received lower priority ({rx.advert.priority}) advert from"
            f" {rx.src} - discarding"
        )
        self.master_saddr = rx.src  # the down timer runs on: we preempt

    def _do_master_rx_stop(self, now: float) -> None:
        self._log(f"({self.cfg.name}) Master received priority 0 message", detail=True)
        self._send_advert(self.effective_priority)
        self.sands = now + self.adver_int_us / US

    def _do_master_rx_lower(self, now: float) -> None:
        cfg, rx = self.cfg, self._rx
        suffix = "" if cfg.lower_prio_no_advert else ", forcing new election"
        self._log(
            f"({cfg.name}) Received advert from {rx.src} with lower priority"
            f" {rx.advert.priority}, ours {self.effective_priority}{suffix}"
        )
        if not cfg.lower_prio_no_advert:
            self._send_advert(self.effective_priority)
            self.sands = now + self.adver_int_us / US
        if cfg.garp_lower_prio_repeat:
            self._garp(cfg.garp_lower_prio_repeat)
            if cfg.garp_lower_prio_delay:
                self.garp_lower_at = now + cfg.garp_lower_prio_delay
        if self.group is not None:
            self.group.lower_prio_garp(self, now)
        self._emit(Notify(cfg.name, "MASTER_RX_LOWER_PRI", self.effective_priority))

    def _do_master_rx_higher(self, now: float) -> None:
        cfg, rx = self.cfg, self._rx
        advert = rx.advert
        if cfg.higher_prio_send_advert:
            self._send_advert(self.effective_priority)
        if advert.priority > self.effective_priority and self.base_priority != PRIO_OWNER:
            self._log(
                f"({cfg.name}) Master received advert from {rx.src} with higher priority"
                f" {advert.priority}, ours {self.effective_priority}"
            )
        else:
            self._log(
                f"({cfg.name}) Master received advert from {rx.src} with same priority"
                f" {advert.priority} but higher IP address than ours"
            )
        if cfg.version == 3:
            self._adopt_interval(advert)
        self.master_saddr = rx.src
        self.master_priority = advert.priority
        self.wantstate = BACKUP
        self._leave_master(now, send_stop=False)

    def _do_master_rx_self(self, now: float) -> None:
        self._log(
            f"({self.cfg.name}) WARNING - equal priority advert received from remote host with"
            " our IP address."
        )

    def _do_master_fault(self, now: float) -> None:
        self.wantstate = FAULT
        self._leave_master(now, send_stop=True)

    def _do_enter_fault(self, now: float) -> None:
        """``down_instance`` of a BACKUP (``vrrp_state_leave_fault`` with wantstate FAULT)."""
        self.wantstate = FAULT
        self._leave_fault(now)

    def _do_leave_fault(self, now: float) -> None:
        """``try_up_instance``: back to BACKUP (an owner that was waiting to start: MASTER)."""
        if not (self.wantstate == MASTER and self.base_priority == PRIO_OWNER):
            self.wantstate = BACKUP
        self.master_adver_int_us = self.adver_int_us
        self._leave_fault(now)

    def _do_shutdown(self, now: float) -> None:
        if self.state == MASTER and self.vipset:
            self._restore_interface(send_stop=True)
        self.sands = None
        self.garp_delay_at = self.garp_lower_at = self.garp_refresh_at = None
        self.state = STOP
        self._emit(Notify(self.cfg.name, STOP, self.effective_priority))

    # -- shared steps -----------------------------------------------------------------------

    def _leave_master(self, now: float, send_stop: bool) -> None:
        """``vrrp_state_leave_master``: to the wanted BACKUP or FAULT."""
        cfg = self.cfg
        self.rlflags.clear()
        if self.wantstate == BACKUP:
            self._log(f"({cfg.name}) Entering BACKUP STATE")
            self.preempt_time = None
        else:
            self._log(f"({cfg.name}) Entering FAULT STATE")
            self._send_advert(PRIO_STOP)
        self._restore_interface(send_stop)
        self.state = self.wantstate
        self._notify()
        self.ms_down_timer_us = self._ms_down()
        self.sands = now + self.ms_down_timer_us / US if self.state == BACKUP else None
        self.counters["release_master"] += 1

    def _leave_fault(self, now: float) -> None:
        """``vrrp_state_leave_fault``: to the wanted state, from FAULT, INIT or BACKUP."""
        cfg = self.cfg
        if self.wantstate == MASTER:
            self._do_goto_master(now)
        else:
            if self.state != self.wantstate:
                self._log(
                    f"({cfg.name}) Entering {'BACKUP' if self.wantstate == BACKUP else 'FAULT'}"
                    " STATE"
                )
            if self.wantstate == FAULT and self.state == MASTER:
                self._send_advert(PRIO_STOP)
                self._restore_interface(send_stop=False)
            self.state = self.wantstate
            self._notify()
            if self.state == BACKUP:
                self.preempt_time = None
        self.master_adver_int_us = self.adver_int_us
        self.ms_down_timer_us = self._ms_down()
        if self.state == BACKUP:
            self.sands = now + self.ms_down_timer_us / US
        elif self.state == MASTER:
            self.sands = now + self.adver_int_us / US
        else:
            self.sands = None

    def _restore_interface(self, send_stop: bool) -> None:
        """``vrrp_restore_interface``: priority 0 first if asked, then drop the addresses."""
        if send_stop:
            self._send_advert(PRIO_STOP)
            self._log(f"({self.cfg.name}) sent 0 priority", detail=True)
        self.garp_delay_at = self.garp_lower_at = self.garp_refresh_at = None
        if self.vipset:
            if self.addresses:
                self._emit(RemoveAddresses(self.addresses))
            self.vipset = False

    def _adopt_interval(self, advert: Advert) -> None:
        """RFC 5798 6.4.2: a v3 backup sets Master_Adver_Interval from the advertisement."""
        theirs = advert.adver_int * 10_000
        if theirs and theirs != self.master_adver_int_us:
            self._log(
                f"({self.cfg.name}) advertisement interval updated from"
                f" {self.master_adver_int_us // 1000}ms to {theirs // 1000}ms by master",
                detail=True,
            )
            self.master_adver_int_us = theirs

    def _set_effective_priority(self, now: float) -> None:
        """``vrrp_set_effective_priority``: clamp to 1..254, shift a running down timer."""
        if self.base_priority == PRIO_OWNER:
            return
        new = min(max(self.total_priority, 1), PRIO_OWNER - 1)
        if new == self.effective_priority:
            return
        self._log(
            f"({self.cfg.name}) Changing effective priority from {self.effective_priority} to {new}"
        )
        self.effective_priority = new
        old = self.ms_down_timer_us
        self.ms_down_timer_us = self._ms_down()
        if self.state == BACKUP and self.sands is not None:
            self.sands += (self.ms_down_timer_us - old) / US

    def _total(self) -> int:
        """base + the weights of the trackers that currently count (``vrrp_track.c``)."""
        total = self.base_priority
        for name, t in self.trackers.items():
            up = self.track_up[name]
            if not t.weight or up is None:
                continue
            sign = -1 if t.reverse else 1
            if (up and t.weight > 0) or (not up and t.weight < 0):
                total += sign * t.weight
        return total

    def _tracker_fault(self, name: str) -> bool:
        t = self.trackers[name]
        up = self.track_up[name]
        return t.weight == 0 and up is not None and up == t.reverse

    def _ms_down(self) -> int:
        return master_down_us(
            self.cfg.version,
            self.effective_priority,
            self.master_adver_int_us,
            self.cfg.down_timer_adverts,
        )

    def _destinations(self) -> Sequence[tuple[str, int]]:
        cfg = self.cfg
        if cfg.unicast_peers:
            return [(p.address, cfg.unicast_ttl) for p in cfg.unicast_peers]
        group = cfg.mcast_group or (
            vrrpmsg.MCAST_GROUP4 if cfg.family == 4 else vrrpmsg.MCAST_GROUP6
        )
        return [(group, vrrpmsg.VRRP_TTL)]

    def _send_advert(self, priority: int) -> None:
        """``vrrp_send_adv``: one advert to the group or to every unicast peer (one IP id)."""
        cfg = self.cfg
        self.ip_id = self.ip_id % 0xFFFF + 1  # "kernel will fill in ID if left to 0"
        advert = Advert(
            cfg.version,
            cfg.vrid,
            priority,
            self.adver_int_us // 10_000,
            cfg.vips,
            cfg.family,
            auth_type=cfg.auth_type,
        )
        password = cfg.auth_pass if cfg.auth_type == AUTH_PASS else ""
        for dest, ttl in self._destinations():
            message = vrrpmsg.encode(advert, cfg.src, dest, password, self.checksum_mode)
            packet = (
                vrrpmsg.build_ipv4(message, cfg.src, dest, self.ip_id, ttl)
                if cfg.family == 4
                else b""
            )
            self._emit(Send(dest, message, packet, priority, cfg.src, ttl))
        self.counters["advert_sent"] += 1
        if priority == PRIO_STOP:
            self.counters["pri_zero_sent"] += 1

    def _garp(self, count: int) -> None:
        if count and self.vipset and self.addresses:
            self._emit(SendGarp(self.addresses, count))

    def _notify(self) -> None:
        group = self.group
        if self.notifies_sent and group is not None and self.state == group.state:
            return  # send_instance_notifies: the group already said it
        self.notifies_sent = True
        self._emit(Notify(self.cfg.name, self.state, self.effective_priority))

    def _log(self, text: str, detail: bool = False) -> None:
        self._emit(Log(text, detail))

    def _log_limited(self, reason: str, text: str) -> None:
        """``log_rate_limited_error``: once until the flags are cleared."""
        if reason not in self.rlflags:
            self.rlflags.add(reason)
            self._log(text)

    def _emit(self, action: Action) -> None:
        self._out.append(action)

    def _flush(self) -> list[Action]:
        if self.group is not None:
            return self.group.collect(self)
        return self.take()

    def take(self) -> list[Action]:
        """The actions produced so far (a sync group collects its members' with this)."""
        out, self._out = self._out, []
        return out

    @property
    def _rx(self) -> Accepted:
        assert self._rx_verdict is not None
        return self._rx_verdict
