"""Heartbeat's release-1 resource manager for a two-node cluster: who holds which resource group.

Pure code after ``hb_resource.c`` of heartbeat 3.0.6 and the scripts it runs (``req_resource``,
``mach_down``, ``rc.d/ip-request``, ``rc.d/ip-request-resp``, ``rc.d/hb_takeover``,
``hb_standby``): the caller passes the time and the messages, and gets :class:`Send`,
:class:`Job` and :class:`Log` actions back. Names follow heartbeat's (``other_is_stable``,
``going_standby``, ``req_our_resources``, ...) so that the two can be read side by side; the
protocol is described in docs/heartbeat-protocol.md.

Resource sets are always from the point of view of the node that names them: ``local`` is the
groups haresources gives the node itself, ``foreign`` the other node's.

Where heartbeat forks a child to run ResourceManager, this module asks for a :class:`Job`: take,
give up or look at groups. Jobs run one at a time, in order, outside (they change the host); the
caller reports each with :meth:`ResourceManager.job_done`, and what heartbeat's child sends when
it finishes is sent then. While a job is outstanding the node is not stable, as heartbeat's
``ResourceMgmt_child_count`` makes it.

Every message this module sends must come back to it (as ``from_me``): heartbeat handles its own
messages like the others', and several steps of the protocol happen that way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ALL",
    "FOREIGN",
    "LOCAL",
    "NONE",
    "RQSTDELAY",
    "RSC_NAMES",
    "STANDBY_STEPS",
    "Job",
    "Log",
    "ResourceManager",
    "Send",
    "decode_resources",
    "encode_resources",
]

# Resource sets (HB_NO_RSC, HB_LOCAL_RSC, HB_FOREIGN_RSC, HB_ALL_RSC): bits LOCAL | FOREIGN.
NONE, LOCAL, FOREIGN, ALL = 0, 1, 2, 3
RSC_NAMES = ("none", "local", "foreign", "all")

# resourcestate (enum hb_rsc_state)
R_INIT, R_STARTING, R_BOTHSTARTING, R_RSCRCVD, R_STABLE, R_SHUTDOWN = (
    "init",
    "starting",
    "bothstarting",
    "rscrcvd",
    "stable",
    "shutdown",
)
# going_standby (enum standby)
NOT, ME, OTHER, DONE = "not", "me", "other", "done"

# ask_for_resources(): (going_standby, info, from our own node) -> the step taken. The giver
# says "me", the taker answers "other", the giver releases and says "done", the taker acquires
# and says "done"; anything else is ignored and logged.
STANDBY_STEPS: dict[tuple[str, str, bool], str] = {
    (NOT, "me", True): "we_go_standby",  # -> me: wait STANDBY_INIT_TO for "other"
    (NOT, "me", False): "peer_goes_standby",  # -> other: answer "other"
    (ME, "other", False): "give_up",  # release the set; the job's end says "done"
    (ME, "done", True): "given_up",  # -> done
    (OTHER, "other", True): "our_answer",  # our own answer: nothing to do
    (OTHER, "done", False): "acquire",  # -> done; acquire; the job's end says "done"
    (DONE, "done", True): "acquired",  # -> not: we hold the set, stable again
    (DONE, "done", False): "peer_finished",  # -> not: the peer holds it, stable again
}

RQSTDELAY = 10.0  # heartbeat.c: take local groups this long after the first resource message
STANDBY_INIT_TO = 10.0  # STANDBY_INIT_TO_MS: wait for the peer's answer to our standby request
STANDBY_RSC_TO = 3600.0  # HB_STANDBY_RSC_TO_MS: the hand-over itself
AUTOFAILBACK_RETRY = 1.0  # AutoFailbackProc: a delayed failback is tried again after a second

# hb_send_resources_held's own fields, t and rsc_hold first (the order heartbeat adds them).
Fields = Sequence[tuple[str, str]]


def decode_resources(rsc: int) -> str:
    return RSC_NAMES[rsc] if 0 <= rsc < len(RSC_NAMES) else "(undefined)"


def encode_resources(name: str | None) -> int | None:
    """The set a ``rsc_hold`` names; None for an unknown name (heartbeat logs it, uses none)."""
    if name is None:
        return None
    return RSC_NAMES.index(name) if name in RSC_NAMES else None


@dataclass(frozen=True)
class Send:
    """Send a message to the cluster (and hand it back to :meth:`ResourceManager.message`)."""

    fields: tuple[tuple[str, str], ...]
    dest: str | None = None  # the ``dest`` node, for the ``destuuid`` heartbeat adds

    def get(self, name: str) -> str | None:
        return dict(self.fields).get(name)


@dataclass(frozen=True)
class Job:
    """Resource work for the host, in heartbeat's ResourceManager terms.

    ``op`` is ``status`` (which groups run), ``take`` (start each group's resources left to
    right) or ``give`` (stop them right to left); the result reported to
    :meth:`ResourceManager.job_done` says, per group key, whether it was running before the job.
    ``purpose`` names the heartbeat step the job is part of (``req_our_resources``,
    ``mach_down``, ``ip-request``, ``ip-request-resp``, ``standby``, ``giveup``).
    """

    id: int
    op: str
    groups: tuple[str, ...]
    purpose: str
    peer: str = ""  # the node an ip-request came from


@dataclass(frozen=True)
class Log:
    level: str  # "info", "warn", "err", "debug"
    text: str


Action = object


@dataclass
class _State:
    """hb_resource.c's globals."""

    resourcestate: str = R_INIT
    i_hold: int = NONE  # procinfo->i_hold_resources
    other_holds: int = NONE  # other_holds_resources
    other_is_stable: bool = False
    takeover_in_progress: bool = False
    going_standby: str = NOT
    standby_running: float | None = None  # deadline of the standby exchange
    standby_rsctype: int = ALL
    rsc_needs_failback: bool = False
    # pylvs: the peer (re)started while we were taking its groups over (heartbeat's "T_STARTING
    # received during takeover" race, which two nodes restarting after a healed partition run
    # into): its stable resource message came before our takeover was complete, so the auto
    # failback it would have triggered is done when the takeover completes.
    failback_after_takeover: bool = False
    rsc_needs_shutdown: bool = False
    shutdown_in_progress: bool = False
    resource_shutdown_in_progress: bool = False
    local_takeover_time: float | None = None
    local_takeover_work_done: bool = False
    foreign_takeover_work_done: bool = False
    init_takeover_announced: bool = False
    failback_retry: float | None = None
    comm_up: bool = False
    stopped: bool = False  # our own shutdone came back: the node may exit


@dataclass
class ResourceManager:
    """The resource side of one heartbeat node of a two-node cluster.

    ``groups`` maps each haresources group key to its preferred node, in haresources order;
    ``auto_failback`` is ha.cf's ``on``, ``off`` or ``legacy``. ``peer_active`` is asked
    whether the other node's status is ``active`` (req_our_resources' ``upcount``).
    ``may_take_over`` (pylvs's partition guard: ping nodes reachable) is asked before the
    groups of a dead peer are taken.
    """

    me: str
    peer: str
    groups: Sequence[tuple[str, str]]  # (key, preferred node)
    auto_failback: str = "legacy"
    peer_active: Callable[[], bool] = lambda: False
    may_take_over: Callable[[], bool] = lambda: True
    st: _State = field(default_factory=_State)
    _jobs: list[Job] = field(default_factory=list)
    _next_job: int = 1

    def __post_init__(self) -> None:
        if self.auto_failback not in ("on", "off", "legacy"):
            raise ValueError(f"auto_failback must be on, off or legacy: {self.auto_failback}")

    # -- the configuration's view --------------------------------------------------------------

    @property
    def nice_failback(self) -> bool:
        return self.auto_failback != "legacy"

    @property
    def auto(self) -> bool:
        return self.auto_failback == "on"

    def keys(self, rsc: int, view_of_me: bool = True) -> tuple[str, ...]:
        """The group keys of a set (ResourceManager ourkeys/otherkeys/allkeys)."""
        out = []
        for key, node in self.groups:
            mine = node == self.me
            if (rsc & LOCAL and mine) or (rsc & FOREIGN and not mine):
                out.append(key)
        return tuple(out)

    def node_keys(self, node: str) -> tuple[str, ...]:
        """``ResourceManager listkeys NODE``."""
        return tuple(key for key, n in self.groups if n == node)

    def is_stable(self) -> bool:
        """hb_rsc_isstable()."""
        st = self.st
        if not self.nice_failback:
            return not self._jobs
        if st.shutdown_in_progress and st.resourcestate == R_INIT:
            return True
        return (
            st.other_is_stable
            and not st.takeover_in_progress
            and st.going_standby == NOT
            and st.standby_running is None
            and not self._jobs
            and st.resourcestate in (R_STABLE, R_SHUTDOWN, R_INIT)
        )

    def resource_state(self) -> str:
        """hb_rsc_resource_state(): what ``cl_status rscstatus`` prints."""
        return decode_resources(self.st.i_hold) if self.is_stable() else "transition"

    def pending_jobs(self) -> tuple[Job, ...]:
        return tuple(self._jobs)

    # -- helpers that make actions -------------------------------------------------------------

    def _job(
        self, out: list[Action], op: str, groups: Sequence[str], purpose: str, peer: str = ""
    ) -> None:
        job = Job(self._next_job, op, tuple(groups), purpose, peer)
        self._next_job += 1
        self._jobs.append(job)
        out.append(job)

    def _send_held(self, out: list[Action], stable: bool, comment: str | None = None) -> None:
        """hb_send_resources_held()."""
        if not self.nice_failback:
            return
        fields = [
            ("t", "resource"),
            ("rsc_hold", decode_resources(self.st.i_hold)),
            ("rtype", "full"),
            ("isstable", "1" if stable else "0"),
        ]
        if comment:
            fields.append(("info", comment))
        out.append(Send(tuple(fields)))

    def _send_standby(self, out: list[Action], state: str) -> None:
        """send_standby_msg()."""
        fields = (
            ("t", "ask_resources"),
            ("rsc_hold", decode_resources(self.st.standby_rsctype)),
            ("info", state),
        )
        out.append(Send(fields))

    def _announce(self, out: list[Action], reason: str) -> None:
        """AnnounceTakeover()."""
        st = self.st
        if st.init_takeover_announced:
            return
        if not (st.local_takeover_work_done and st.foreign_takeover_work_done):
            return
        out.append(Log("info", f"Initial resource acquisition complete ({reason})"))
        st.init_takeover_announced = True

    # -- inputs -----------------------------------------------------------------------------

    def comm_up(self, now: float, peer_dead: bool) -> list[Action]:
        """comm_up_resource_action(): communications are up (after the node list exchange)."""
        out: list[Action] = []
        self.st.comm_up = True
        if not peer_dead:
            self.st.foreign_takeover_work_done = True
        if self.nice_failback:
            out.append(Send((("t", "starting"),)))
            self.st.resourcestate = R_STARTING
        else:
            self._req_our_resources(out, getthemanyway=False)
        return out

    def message(self, fields: dict[str, str], from_me: bool, now: float) -> list[Action]:
        """A message of the cluster (one of ours included) reached this node."""
        out: list[Action] = []
        kind = fields.get("t", "")
        self._standby_timer(out, now)
        if kind == "shutdone":
            self._shutdone(out, fields, from_me, now)
        elif not self.st.comm_up and not (kind == "ip-request-resp" and from_me):
            # (our own acquisition may finish a moment before communications are up)
            pass  # the handlers below are registered by comm_up_resource_action
        elif kind in ("starting", "resource"):
            self._process_resources(out, kind, fields, from_me, now)
        elif kind == "ask_resources":
            self._ask_for_resources(out, fields, from_me, now)
        elif kind == "ip-request" and not from_me:
            group = fields.get("ipaddr", "")
            if group:  # rc.d/ip-request: give it up if we hold it, and say so
                self._job(out, "give", (group,), "ip-request", fields.get("src", self.peer))
        elif kind == "ip-request-resp":
            group = fields.get("ipaddr", "")
            if group and fields.get("dest") == self.me:
                out.append(
                    Log(
                        "info",
                        f"received ip-request-resp {group} {fields.get('ok', '')} "
                        f"{fields.get('weown', '')}",
                    )
                )
                if fields.get("ok") == "OK":
                    self._job(out, "take", (group,), "ip-request-resp")
        elif kind == "hb_takeover" and not from_me:
            # rc.d/hb_takeover: the other node wants our resources; hb_standby the mirror set
            mirror = {"all": "all", "local": "foreign", "foreign": "local"}
            wanted = mirror.get(fields.get("rsc_hold", ""))
            if wanted is not None:
                out.extend(self.standby(wanted, now))
        return out

    def node_dead(self, now: float, anypacketsyet: bool, has_resources: bool) -> list[Action]:
        """hb_rsc_recover_dead_resources(): the peer was declared dead."""
        out: list[Action] = []
        st = self.st
        if st.going_standby != NOT:
            out.append(Log("info", "Cancelling pending standby operation"))
            st.going_standby = NOT
            st.standby_running = None
            if not st.other_is_stable and st.i_hold & ALL == ALL:
                st.other_is_stable = True
            self._shutdown_if_needed(out)
        if st.shutdown_in_progress:
            if st.resourcestate not in (R_SHUTDOWN, R_STABLE):
                self._giveup(out)
            return out
        st.rsc_needs_failback = True
        if not self.may_take_over():
            out.append(Log("warn", f"Not taking over from {self.peer}: no ping node is reachable"))
            return out
        need_stonith = True
        if anypacketsyet:
            need_stonith = st.other_holds != NONE if self.nice_failback else has_resources
        if need_stonith:
            out.append(self._stonith("n_stnth"))
            out.append(Log("warn", "No STONITH device configured."))
            out.append(Log("warn", "Shared disks are not protected."))
            self._takeover_from_node(out)
        else:
            out.append(Log("info", f"Dead node {self.peer} gave up resources."))
            out.append(self._stonith("unneeded"))
            if self.nice_failback:
                if st.i_hold & ALL == ALL:
                    st.other_is_stable = True
                    return out
                if not st.i_hold & LOCAL:
                    self._req_our_resources(out, getthemanyway=True)
                if not st.i_hold & FOREIGN:
                    self._takeover_from_node(out)
            else:
                self._takeover_from_node(out)
        return out

    def _stonith(self, result: str) -> Send:
        return Send((("t", "stonith"), ("node", self.peer), ("result", result)))

    def job_done(self, job_id: int, running_before: dict[str, bool], now: float) -> list[Action]:
        """A :class:`Job` finished: what heartbeat's child sends at its end."""
        out: list[Action] = []
        job = next((j for j in self._jobs if j.id == job_id), None)
        if job is None:
            return out
        self._jobs.remove(job)
        st = self.st
        if job.purpose == "req_our_resources":
            # req_resource for each local group: ``ResourceManager status`` first
            alone = not self.peer_active()
            dontask = alone or self.nice_failback
            for key in job.groups:
                if running_before.get(key):
                    continue
                if dontask:  # "Pretend the current owner gave it up peacefully"
                    own = (
                        ("t", "ip-request-resp"),
                        ("dest", self.me),
                        ("ipaddr", key),
                        ("weown", "yes"),
                        ("ok", "OK"),
                    )
                    out.append(Send(own, dest=self.me))
                else:
                    out.append(Send((("t", "ip-request"), ("ipaddr", key))))
            if not job.groups:
                out.append(Log("info", "No local resources [ResourceManager listkeys] to acquire."))
            else:
                out.append(Log("info", "Local Resource acquisition completed."))
            self._send_held(out, True, "req_our_resources()")
        elif job.purpose == "mach_down":
            if self.nice_failback:
                out.append(
                    Send((("t", "resource"), ("rsc_hold", "foreign"), ("info", "mach_down")))
                )
            out.append(Log("info", f"mach_down takeover complete for node {job.peer}."))
        elif job.purpose == "ip-request":
            key = job.groups[0]
            weown = "yes" if running_before.get(key) else "no"
            own = (
                ("t", "ip-request-resp"),
                ("dest", job.peer),
                ("ipaddr", key),
                ("weown", weown),
                ("ok", "OK"),
            )
            out.append(Send(own, dest=job.peer))
        elif job.purpose == "standby":
            action = "acquisition" if job.op == "take" else "release"
            out.append(Log("info", f"HA resource {action} completed (standby)."))
            self._send_standby(out, DONE)
        elif job.purpose == "giveup":
            out.append(Log("info", "All HA resources relinquished."))
            out.append(Send((("t", "shutdone"), ("st", "dead"))))
        if job.purpose in ("req_our_resources", "ip-request-resp"):
            st.local_takeover_work_done = True
            self._announce(out, job.purpose)
        self._shutdown_if_needed(out)
        return out

    def standby(self, what: str, now: float) -> list[Action]:
        """``hb_standby [all|foreign|local|failback]``: offer resources to the other node."""
        if what == "failback":
            what = "foreign"
        if what not in ("all", "foreign", "local"):
            raise ValueError(f"wrong resources({what})")
        fields = (("t", "ask_resources"), ("rsc_hold", what), ("info", "me"))
        return [Log("info", f"Going standby [{what}]."), Send(fields)]

    def takeover(self, what: str, now: float) -> list[Action]:
        """``hb_takeover [all|foreign|local|failback]``: ask the other node for resources."""
        if what not in ("all", "foreign", "local", "failback"):
            raise ValueError(f"wrong resources({what})")
        return [Send((("t", "hb_takeover"), ("rsc_hold", what)))]

    def shutdown(self, now: float) -> list[Action]:
        """A graceful stop was asked for (SIGTERM): hb_giveup_resources()."""
        out: list[Action] = []
        self._giveup(out)
        return out

    def tick(self, now: float) -> list[Action]:
        """Timers: the RQSTDELAY takeover, the standby timeout, a delayed auto failback."""
        out: list[Action] = []
        st = self.st
        if (
            self.nice_failback
            and st.resourcestate == R_RSCRCVD
            and st.local_takeover_time is not None
            and now >= st.local_takeover_time
        ):
            st.resourcestate = R_STABLE
            self._req_our_resources(out, getthemanyway=False)
            out.append(Log("info", "local resource transition completed."))
            self._send_held(out, True)
            self._audit(out)
        self._standby_timer(out, now)
        if st.failback_retry is not None and now >= st.failback_retry:
            st.failback_retry = None
            self._perform_auto_failback(out, now)
        return out

    def deadline(self) -> float | None:
        st = self.st
        times = []
        if self.nice_failback and st.resourcestate == R_RSCRCVD and st.local_takeover_time:
            times.append(st.local_takeover_time)
        if st.standby_running is not None:
            times.append(st.standby_running)
        if st.failback_retry is not None:
            times.append(st.failback_retry)
        return min(times) if times else None

    # -- heartbeat's functions ---------------------------------------------------------------

    def _standby_timer(self, out: list[Action], now: float) -> None:
        st = self.st
        if st.standby_running is not None and now >= st.standby_running:
            st.standby_running = None
            st.other_is_stable = True
            st.going_standby = NOT
            out.append(Log("warn", "No reply to standby request.  Standby request cancelled."))
            self._shutdown_if_needed(out)

    def _req_our_resources(self, out: list[Action], getthemanyway: bool) -> None:
        st = self.st
        if st.shutdown_in_progress:
            return
        if self.nice_failback:
            someone_has_them = st.other_holds & FOREIGN or st.i_hold & LOCAL
            if someone_has_them and not getthemanyway and st.going_standby == NOT:
                out.append(Log("info", "Local Resource acquisition completed. (none)"))
                return
            st.i_hold |= LOCAL
        self._job(out, "status", self.node_keys(self.me), "req_our_resources")

    def _takeover_from_node(self, out: list[Action]) -> None:
        st = self.st
        if st.shutdown_in_progress:
            out.append(Log("info", "Resource takeover cancelled - shutdown in progress."))
            self._shutdown_if_needed(out)
            return
        out.append(Log("info", f"Resources being acquired from {self.peer}."))
        # the status-dead notification: rc.d/status runs mach_down for the node
        self._job(out, "take", self.node_keys(self.peer), "mach_down", self.peer)
        if self.nice_failback:
            st.i_hold |= FOREIGN
            st.other_holds = NONE
            st.other_is_stable = True
            st.takeover_in_progress = True
        self._req_our_resources(out, getthemanyway=True)

    def _process_resources(
        self, out: list[Action], kind: str, fields: dict[str, str], from_me: bool, now: float
    ) -> None:
        st = self.st
        self._shutdown_if_needed(out)
        if not self.nice_failback:
            return
        newstate = st.resourcestate
        if kind == "starting" and not from_me:
            if st.resourcestate == R_STARTING:
                newstate = R_BOTHSTARTING
                st.foreign_takeover_work_done = True
                self._announce(out, "HB_R_BOTHSTARTING")
            elif st.resourcestate not in (R_RSCRCVD, R_STABLE, R_SHUTDOWN):
                out.append(Log("err", f"Received 'starting' message in state {st.resourcestate}"))
                return
            st.other_is_stable = False
            if st.takeover_in_progress:
                out.append(Log("warn", "T_STARTING received during takeover."))
                st.failback_after_takeover = True
            self._send_held(out, st.resourcestate == R_STABLE)
        if kind == "resource":
            n = encode_resources(fields.get("rsc_hold"))
            if fields.get("rsc_hold") is None:
                out.append(Log("err", "resource message without rsc_hold field."))
                return
            if n is None:
                out.append(
                    Log("err", f"encode_resources: bad resource type [{fields['rsc_hold']}]")
                )
                n = NONE
            full = fields.get("rtype") == "full"
            if st.resourcestate in (R_BOTHSTARTING, R_STARTING):
                newstate = R_RSCRCVD
                if not self.auto:
                    st.foreign_takeover_work_done = True
                    self._announce(out, "T_RESOURCES")
            elif st.resourcestate not in (R_RSCRCVD, R_STABLE, R_SHUTDOWN):
                out.append(Log("err", f"resource message received in state {st.resourcestate}"))
                return
            if not from_me:
                st.other_holds = _update(full, st.other_holds, n)
                stable = fields.get("isstable")
                if stable == "1":
                    if not st.other_is_stable:
                        out.append(Log("info", "remote resource transition completed."))
                        st.other_is_stable = True
                        self._send_held(out, st.resourcestate == R_STABLE)
                        self._perform_auto_failback(out, now)
                elif stable is not None:
                    st.other_is_stable = False
                if st.resourcestate not in (R_STABLE, R_SHUTDOWN) and st.other_is_stable:
                    out.append(Log("info", "remote resource transition completed."))
                    self._req_our_resources(out, getthemanyway=False)
                    newstate = R_STABLE  # taken at the end: the failback below still waits
                    self._send_held(out, True)
                    self._perform_auto_failback(out, now)
                    st.foreign_takeover_work_done = True
                    if not self.auto and st.other_holds & FOREIGN:
                        st.local_takeover_work_done = True
                    self._announce(out, "T_RESOURCES(them)")
            else:
                st.i_hold = _update(full, st.i_hold, n)
                if st.i_hold & LOCAL:
                    st.local_takeover_work_done = True
                    self._announce(out, "T_RESOURCES(us)")
                comment = fields.get("info")
                if comment == "mach_down":
                    out.append(Log("info", "mach_down takeover complete."))
                    st.takeover_in_progress = False
                    st.i_hold |= FOREIGN
                    st.rsc_needs_failback = True
                    st.other_is_stable = True
                    st.foreign_takeover_work_done = True
                    self._announce(out, "mach_down")
                    if st.failback_after_takeover:
                        st.failback_after_takeover = False
                        self._perform_auto_failback(out, now)
                elif comment == "shutdown":
                    st.resourcestate = newstate = R_SHUTDOWN
        if st.resourcestate != newstate:
            out.append(Log("debug", f"STATE {st.resourcestate} => {newstate}"))
        st.resourcestate = newstate
        if st.resourcestate == R_RSCRCVD and st.local_takeover_time is None:
            st.local_takeover_time = now + RQSTDELAY
        self._audit(out)
        self._shutdown_if_needed(out)

    def _shutdone(
        self, out: list[Action], fields: dict[str, str], from_me: bool, now: float
    ) -> None:
        """HBDoMsg_T_SHUTDONE() and the T_SHUTDONE part of process_resources()."""
        st = self.st
        if from_me:
            st.resourcestate = R_SHUTDOWN
            st.i_hold = NONE
            st.stopped = True
            return
        if st.comm_up and self.nice_failback:
            st.other_is_stable = True
            st.other_holds = NONE
            if st.i_hold != ALL and not st.shutdown_in_progress:
                rtype = {FOREIGN: LOCAL, LOCAL: FOREIGN}.get(st.i_hold, ALL)
                st.going_standby = DONE  # "Take over resources immediately"
                self._go_standby(out, OTHER, rtype)
        st.other_is_stable = False
        st.other_holds = NONE
        out.append(Log("info", f"Received shutdown notice from '{fields.get('src', self.peer)}'."))
        self._takeover_from_node(out)

    def _perform_auto_failback(self, out: list[Action], now: float) -> None:
        st = self.st
        if st.shutdown_in_progress or not st.i_hold & FOREIGN or not st.rsc_needs_failback:
            st.rsc_needs_failback = False
            self._shutdown_if_needed(out)
            return
        if not self.auto:
            st.rsc_needs_failback = False
            self._shutdown_if_needed(out)
            return
        if st.going_standby != NOT or not st.other_is_stable or st.resourcestate != R_STABLE:
            out.append(Log("debug", "Auto failback delayed."))
            st.failback_retry = now + AUTOFAILBACK_RETRY
            return
        st.standby_rsctype = FOREIGN
        self._send_standby(out, ME)
        st.rsc_needs_failback = False

    def _ask_for_resources(
        self, out: list[Action], fields: dict[str, str], from_me: bool, now: float
    ) -> None:
        """ask_for_resources(): one message of the three-phase standby exchange, looked up in
        :data:`STANDBY_STEPS`."""
        st = self.st
        if not self.nice_failback:
            out.append(Log("info", "Standby mode only implemented when nice_failback on"))
            return
        if st.resourcestate == R_SHUTDOWN:
            return
        info = fields.get("info")
        origin = fields.get("src")
        rsctype = fields.get("rsc_hold")
        rtype = ALL if rsctype is None else encode_resources(rsctype)
        if rtype is None:
            out.append(Log("err", f"encode_resources: bad resource type [{rsctype}]"))
            rtype = NONE
        if info is None or origin is None:
            out.append(Log("err", "Received standby message without info/from"))
            return
        if st.standby_running is not None and now < st.standby_running and info == "me":
            left = int(st.standby_running - now + 0.999)
            out.append(
                Log(
                    "warn",
                    f"Standby in progress- new request from {origin} ignored [{left} seconds left]",
                )
            )
            return
        state = st.going_standby
        # What heartbeat notes of any message in the state, before it looks at the message.
        if state == NOT:
            flux = ""
            if not st.other_is_stable:
                flux = "Other side is in flux."
            elif st.resourcestate != R_STABLE:
                flux = "local resources in flux."
            if flux:
                out.append(Log("warn", f"standby message [{info}] from {origin} ignored.  {flux}"))
                return
            st.standby_rsctype = rtype
        elif state == ME and not from_me:
            st.standby_rsctype = rtype
            st.standby_running = now + STANDBY_RSC_TO
        elif state in (OTHER, DONE):
            st.standby_rsctype = rtype
            if state == OTHER and info == "done":
                st.standby_running = now + STANDBY_RSC_TO
        step = STANDBY_STEPS.get((state, info, from_me))
        if step is None:
            out.append(
                Log("err", f"Ignored standby message '{info}' from {origin} in state {state}")
            )
        else:
            getattr(self, f"_standby_{step}")(out, rtype, origin, now)
        self._shutdown_if_needed(out)

    # The steps of STANDBY_STEPS.

    def _someone_wants_to_go_standby(self, out: list[Action], rtype: int, origin: str) -> _State:
        self.st.other_is_stable = False
        out.append(Log("info", f"{origin} wants to go standby [{decode_resources(rtype)}]"))
        return self.st

    def _standby_we_go_standby(
        self, out: list[Action], rtype: int, origin: str, now: float
    ) -> None:
        st = self._someone_wants_to_go_standby(out, rtype, origin)
        st.standby_running = now + STANDBY_INIT_TO
        st.going_standby = ME

    def _standby_peer_goes_standby(
        self, out: list[Action], rtype: int, origin: str, now: float
    ) -> None:
        st = self._someone_wants_to_go_standby(out, rtype, origin)
        st.going_standby = OTHER
        self._send_standby(out, OTHER)
        st.standby_running = now + STANDBY_RSC_TO

    def _standby_give_up(self, out: list[Action], rtype: int, origin: str, now: float) -> None:
        text = f"standby: {origin} can take our {decode_resources(rtype)} resources"
        out.append(Log("info", text))
        self._go_standby(out, ME, rtype)  # the job's end sends "done"

    def _standby_given_up(self, out: list[Action], rtype: int, origin: str, now: float) -> None:
        st = self.st
        out.append(Log("info", f"Local standby process completed [{decode_resources(rtype)}]."))
        st.going_standby = DONE
        st.i_hold &= ~st.standby_rsctype & ALL
        st.standby_running = now + STANDBY_RSC_TO

    def _standby_our_answer(self, out: list[Action], rtype: int, origin: str, now: float) -> None:
        pass  # our own "other" coming back: the giver answers it

    def _standby_acquire(self, out: list[Action], rtype: int, origin: str, now: float) -> None:
        text = f"standby: acquire [{decode_resources(rtype)}] resources from {origin}"
        out.append(Log("info", text))
        self._go_standby(out, OTHER, self.st.standby_rsctype)  # the job's end sends "done"
        self.st.going_standby = DONE

    def _standby_acquired(self, out: list[Action], rtype: int, origin: str, now: float) -> None:
        st = self.st
        st.standby_running = None
        st.going_standby = NOT
        out.append(Log("info", f"Standby resource acquisition done [{decode_resources(rtype)}]."))
        if self.auto:
            st.local_takeover_work_done = True
            self._announce(out, "auto_failback")
        st.i_hold |= {LOCAL: FOREIGN, FOREIGN: LOCAL, ALL: ALL}.get(rtype, NONE)
        self._send_held(out, True)

    def _standby_peer_finished(
        self, out: list[Action], rtype: int, origin: str, now: float
    ) -> None:
        st = self.st
        st.standby_running = None
        st.going_standby = NOT
        text = f"Other node completed standby takeover of {decode_resources(rtype)} resources."
        out.append(Log("info", text))
        self._send_held(out, True)

    def _go_standby(self, out: list[Action], who: str, resourceset: int) -> None:
        """go_standby(): give up (who=ME) or acquire (who=OTHER) a set of groups."""
        st = self.st
        if who == ME:
            st.other_is_stable = False
            st.i_hold &= ~resourceset & ALL
            self._send_held(out, False, "standby")
        if resourceset == FOREIGN:
            act = FOREIGN if who == ME else LOCAL
        elif resourceset == LOCAL:
            act = LOCAL if who == ME else FOREIGN
        elif resourceset == ALL:
            act = ALL
        else:
            out.append(Log("err", f"no resources to {'give up' if who == ME else 'acquire'}"))
            return
        verb = "give up" if who == ME else "acquire"
        out.append(Log("info", f"{verb} {decode_resources(act)} HA resources (standby)."))
        keys = self.keys(act)
        if who == ME:
            self._job(out, "give", keys, "standby")
        else:
            self._job(out, "take", keys, "standby")

    def _shutdown_if_needed(self, out: list[Action]) -> None:
        if self.st.rsc_needs_shutdown:
            self._giveup(out)

    def _giveup(self, out: list[Action]) -> None:
        """hb_giveup_resources(): the first phase of a graceful stop."""
        st = self.st
        if not self.is_stable():
            if not st.rsc_needs_shutdown:
                out.append(
                    Log("warn", "Shutdown delayed until current resource activity finishes.")
                )
                st.rsc_needs_shutdown = True
            return
        st.rsc_needs_shutdown = False
        st.shutdown_in_progress = True
        if st.resource_shutdown_in_progress:
            out.append(Log("info", "Heartbeat shutdown already underway."))
            return
        st.resource_shutdown_in_progress = True
        st.i_hold = NONE
        st.resourcestate = R_SHUTDOWN
        if self.nice_failback:
            self._send_held(out, False, "shutdown")
        out.append(Log("info", "Giving up all HA resources."))
        self._job(out, "give", tuple(key for key, _node in self.groups), "giveup")

    def _audit(self, out: list[Action]) -> None:
        """AuditResources(): two owners, or none, of a set."""
        st = self.st
        if not self.nice_failback:
            return
        if st.i_hold & LOCAL and st.other_holds & FOREIGN:
            out.append(Log("err", "Both machines own our resources!"))
        if st.other_holds & LOCAL and st.i_hold & FOREIGN:
            out.append(Log("err", "Both machines own foreign resources!"))
        if self.is_stable() and not st.shutdown_in_progress and st.resourcestate != R_SHUTDOWN:
            if not st.i_hold & LOCAL and not st.other_holds & FOREIGN:
                out.append(Log("err", "No one owns our local resources!"))
            if not st.other_holds & LOCAL and not st.i_hold & FOREIGN:
                out.append(Log("err", "No one owns foreign resources!"))


def _update(full: bool, current: int, update: int) -> int:
    """HB_UPD_RSC: a full update replaces, a partial one adds (none clears)."""
    if full:
        return update
    return NONE if update == NONE else update | current
