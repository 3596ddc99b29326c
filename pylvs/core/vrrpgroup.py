"""``vrrp_sync_group``: instances that change state together, as keepalived 2.2.7 does it
(``vrrp_sync.c``, the transition matrix ``VRRP_TSM`` of ``vrrp_scheduler.c``). Pure code.

Rules:

* A member goes MASTER only when the group is MASTER already or every other member wants to be
  master too (its own down timer ran out); until then it stays BACKUP with its down timer
  re-armed ("prefer backup state to avoid thrashing", ``vrrp_sync_can_goto_master``). The last
  one to want it takes the whole group to MASTER (``vrrp_sync_master``).
* A member that leaves MASTER for BACKUP takes every other member to BACKUP
  (``vrrp_sync_backup``).
* A member's own fault takes every other member to FAULT (``vrrp_sync_fault``); the group leaves
  FAULT only when no member has a fault of its own any more, and then all go to BACKUP.
* A member that hears a lower priority master sends the lower-priority GARP bursts of the other
  members too.
* The group notifies ``notify_master`` / ``_backup`` / ``_fault`` / ``_stop`` of its own
  (``Notify(group=True)``, priority 0) and logs ``VRRP_Group(NAME) Syncing instances to S state``.

Use it instead of the members' own methods: it runs the member's step, then the group's
reaction, and returns every member's actions in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pylvs.core.vrrp import (
    BACKUP,
    FAULT,
    INIT,
    MASTER,
    STOP,
    US,
    Action,
    Log,
    Notify,
    VRRPInstance,
)

__all__ = ["SyncGroup"]


@dataclass
class SyncGroup:
    name: str
    members: list[VRRPInstance]
    state: str = INIT
    _out: list[Action] = field(default_factory=list)
    _busy: bool = False

    def __post_init__(self) -> None:
        for m in self.members:
            m.group = self

    def member(self, name: str) -> VRRPInstance:
        for m in self.members:
            if m.cfg.name == name:
                return m
        raise KeyError(name)

    # -- inputs -----------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        out: list[Action] = []
        self._busy = True
        for m in self.members:
            m.start(now)
        for m in self.members:
            m.transitions.clear()
            out += m.take()
        self._busy = False
        # vrrp_init_state: a group starts in FAULT if a member is faulty, BACKUP otherwise
        self.state = FAULT if any(m.state == FAULT and m.faulted for m in self.members) else BACKUP
        if self.state == FAULT or any(m.state == BACKUP for m in self.members):
            out.append(Notify(self.name, self.state, 0, group=True))
        return out

    def receive(
        self,
        name: str,
        data: bytes,
        now: float,
        src: str = "",
        dst: str = "",
        ttl: int | None = None,
    ) -> list[Action]:
        return self.member(name).receive(data, now, src, dst, ttl)

    def tick(self, now: float) -> list[Action]:
        out: list[Action] = []
        for m in self.members:
            due = m.deadline()
            if due is not None and due <= now:
                out += m.tick(now)
        return out

    def deadline(self) -> float | None:
        times = [t for t in (m.deadline() for m in self.members) if t is not None]
        return min(times) if times else None

    def set_track(self, name: str, tracker: str, up: bool, now: float) -> list[Action]:
        return self.member(name).set_track(tracker, up, now)

    def shutdown(self, now: float) -> list[Action]:
        out: list[Action] = []
        for m in self.members:
            out += m.shutdown(now)
        self.state = STOP
        out.append(Notify(self.name, STOP, 0, group=True))
        return out

    # -- what the members ask -------------------------------------------------------------------

    def can_goto_master(self, member: VRRPInstance, now: float) -> bool:
        """``vrrp_sync_can_goto_master``."""
        if self.state == MASTER:
            return True
        for m in self.members:
            if m is not member and m.wantstate != MASTER:
                member.ms_down_timer_us = member._ms_down()
                member.sands = now + member.ms_down_timer_us / US
                return False
        return True

    def may_leave_fault(self, member: VRRPInstance) -> bool:
        """``try_up_instance``: only the last member to recover takes the group up."""
        return not any(m.faulted for m in self.members if m is not member)

    def lower_prio_garp(self, member: VRRPInstance, now: float) -> None:
        for m in self.members:
            if m is member or not m.cfg.garp_lower_prio_repeat:
                continue
            m._garp(m.cfg.garp_lower_prio_repeat)
            if m.cfg.garp_lower_prio_delay and m.vipset:
                m.garp_lower_at = now + m.cfg.garp_lower_prio_delay

    # -- the transition matrix ------------------------------------------------------------------

    def collect(self, member: VRRPInstance) -> list[Action]:
        """After a member's step: the group's reaction (VRRP_TSM), then everyone's actions."""
        if not self._busy:
            self._busy = True
            try:
                for before, after, when in list(member.transitions):
                    self._react(member, before, after, when)
            finally:
                self._busy = False
            for m in self.members:
                m.transitions.clear()  # what the group forced is not reacted to again
        if self._busy:
            return []
        out = member.take()
        for m in self.members:
            if m is not member:
                out += m.take()
        out += self._out
        self._out = []
        return out

    def _react(self, member: VRRPInstance, before: str, after: str, now: float) -> None:
        if after == MASTER:
            self._sync_master(member, now)
        elif before == MASTER and after == BACKUP:
            self._sync_backup(member, now)
        elif after == FAULT and member.faulted:
            self._sync_fault(member, now)
        elif before == FAULT and after == BACKUP:
            self._sync_backup(member, now)

    def _announce(self, state: str) -> None:
        self._out.append(Log(f"VRRP_Group({self.name}) Syncing instances to {state} state"))

    def _notify(self) -> None:
        self._out.append(Notify(self.name, self.state, 0, group=True))

    def _sync_master(self, member: VRRPInstance, now: float) -> None:
        if self.state == MASTER or not self.can_goto_master(member, now):
            return
        self._announce(MASTER)
        for m in self.members:
            if m is not member and m.state != MASTER:
                m.wantstate = MASTER
                m._do_goto_master(now)
        self.state = MASTER
        self._notify()

    def _sync_backup(self, member: VRRPInstance, now: float) -> None:
        if self.state == BACKUP:
            return
        self._announce(BACKUP)
        for m in self.members:
            if m is member or m.state == BACKUP:
                continue
            m.wantstate = BACKUP
            if m.state in (FAULT, INIT):
                m.master_adver_int_us = m.adver_int_us
                m._leave_fault(now)
            elif m.state == MASTER:
                m._leave_master(now, send_stop=False)
        self.state = BACKUP
        self._notify()

    def _sync_fault(self, member: VRRPInstance, now: float) -> None:
        if self.state == FAULT:
            return
        self._announce(FAULT)
        for m in self.members:
            if m is member or m.state == FAULT:
                continue
            m.wantstate = FAULT
            if m.state == MASTER:
                m._leave_master(now, send_stop=False)
            elif m.state in (BACKUP, INIT):
                m.state = FAULT  # keepalived: "This is a bit of a bodge"
                m._leave_fault(now)
        self.state = FAULT
        self._notify()
