"""What keepalived's checker results do to the table: its ``ipwrapper.c``, function for function.

:class:`KaKeeper` holds keepalived's state of the virtual servers of one keepalived.conf (the
``alive``/``set`` flags of each real server, ``num_failed_checkers``, each checker's ``is_up``,
``has_run`` and ``retry_it``, each virtual server's ``quorum_state_up`` and its sorry server) and
changes the director's table (the :class:`~pylvs.health.keeper.Table` protocol) as keepalived
2.2.7 changes IPVS:

==========================  ================================================================
keepalived (check/)         here
==========================  ================================================================
``init_services``           :meth:`KaKeeper.start` (first start: ``init_service_vs``,
                            ``init_service_rs``, ``update_quorum_state(init)``)
``clear_diff_services``     :meth:`KaKeeper.start` with a previous configuration (reload:
                            ``clear_diff_rs``, ``migrate_checkers``, ``clear_diff_s_srv``,
                            ``check_new_rs_state``, ``set_effective_weights``)
``tcp_epilog`` and kin      :meth:`KaKeeper.result`: each checker type's epilog (``tcp_epilog``,
                            ``udp_epilog``, ``icmp_epilog``, check_http.c ``epilog``,
                            ``smtp_final``, ``dns_final``, ``misc_check_child_thread``) with
                            its retry rule and its log lines, word for word
``process_update_checker_track_file_status``
                            :meth:`KaKeeper.file_changed` (FILE_CHECK: track_file.c,
                            check_file.c ``set_track_file_checkers_down``/``_weights``)
``update_svr_checker_state``, ``perform_svr_state``, ``update_quorum_state``,
``perform_quorum_state``, ``update_svr_wgt``, ``ipvs_cmd``'s inhibit rule: same names below
``clear_services``          :meth:`KaKeeper.stop` (``omega``: down notifiers on the way out)
``s_svr_duplicates_rs``     a sorry server that is one of the real servers shares its dest: not
                            added again at start nor deleted twice at stop
==========================  ================================================================

A real server is alive only while every one of its checkers is up; a dead one is removed from
its services, or kept with weight 0 when ``inhibit_on_failure`` is set (``ipvs_cmd`` turns the
delete into an edit). The log lines are keepalived's words.

It is pure apart from the table and the :class:`KaEffects` (the notify scripts), so unit tests
step it with results and compare the table with what keepalived leaves.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pylvs.config.kamodel import (
    Checker,
    FileCheck,
    HttpCheck,
    KeepalivedConfig,
    MiscCheck,
    RealServer,
    SorryServer,
    TrackFile,
    VirtualServer,
)
from pylvs.config.keepalived import _service_count
from pylvs.config.model import Config, VirtualConfig
from pylvs.core.control import DestSpec, IPVSError, ServiceSpec
from pylvs.health.keeper import Table

__all__ = [
    "RUNNABLE_CHECKERS",
    "CheckerState",
    "KaEffects",
    "KaKeeper",
    "RealState",
    "TrackState",
    "VirtualState",
    "fmt_rs",
    "real_weight",
]

log = logging.getLogger("pylvs.keepalived")

IPVS_WEIGHT_LIMIT = 2147483647  # keepalived check_data.h
# ip_vs.h IPVS_WEIGHT_FAULT (INT32_MIN): a track file's value * weight this low is a fault.
IPVS_WEIGHT_FAULT = -2147483648
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

# The checker types pylvs runs; BFD_CHECK (needs keepalived's BFD process) is refused with a
# warning by the parser's mapping.
RUNNABLE_CHECKERS = (
    "TCP_CHECK", "HTTP_GET", "SSL_GET", "SMTP_CHECK", "DNS_CHECK", "MISC_CHECK", "UDP_CHECK",
    "PING_CHECK", "FILE_CHECK",
)  # fmt: skip

# The epilog lines of tcp_epilog, udp_epilog and icmp_epilog (check_tcp.c, check_udp.c,
# check_ping.c): success, failure after retries, failure.
_L4_WORDS = {
    "TCP_CHECK": (
        "TCP connection to {rs} success.",
        "TCP_CHECK on service {rs} failed after {retry} retries.",
        "TCP_CHECK on service {rs} failed.",
    ),
    "UDP_CHECK": (
        "UDP connection to {rs} success.",
        "UDP_CHECK on service {rs} failed after {retry} retries.",
        "UDP_CHECK on service {rs} failed.",
    ),
    "PING_CHECK": (
        "ICMP connection to {rs} success.",
        "ICMP CHECK on service {rs} of {vs} failed after {retry} retries.",
        "ICMP CHECK on service {rs} failed.",
    ),
}

ADD, DEL, EDIT = "add", "del", "edit"


def real_weight(effective_weight: int) -> int:
    """check_data.h ``real_weight``: the weight IPVS gets, clamped to 0..IPVS_WEIGHT_LIMIT."""
    return max(0, min(IPVS_WEIGHT_LIMIT, effective_weight))


class KaEffects(Protocol):
    """What the keeper asks for beyond the table: a notify script (``notify_exec``), run off the
    loop's thread; ``wait`` seconds at most when pylvsd is stopping (``system_call_script`` with
    TIMER_HZ)."""

    def script(self, command: str, wait: float | None = None) -> None: ...


def fmt_rs(vs: VirtualServer, addr: str, port: int) -> str:
    """keepalived's FMT_RS: ``[ADDR]:PROTO:PORT`` with the virtual server's protocol."""
    proto = (vs.protocol or "none").lower()
    return f"[{addr}]:{proto}:{port}"


@dataclass
class CheckerState:
    """A ``checker_t``: its configuration and keepalived's flags."""

    model: Checker
    vs: VirtualState
    rs: RealState
    is_up: bool = True
    has_run: bool = False
    retry_it: int = 0
    cur_weight: int = 0  # MISC_CHECK misc_dynamic, FILE_CHECK: what it adds to the weight
    last_exit_code: int = 0  # MISC_CHECK
    failed_url: bool = False  # HTTP_GET/SSL_GET: a url failed (check_http.c failed_url)
    track: TrackState | None = None  # FILE_CHECK: its track_file
    tweight: int = 0  # FILE_CHECK: tracking_obj_t weight
    multiplier: int = 1  # FILE_CHECK: -1 with reverse

    @property
    def kind(self) -> str:
        return self.model.kind

    def ident(self) -> str:
        """A name for the status listing and the scheduler: ``KIND [rs] of VS``."""
        return f"{self.kind} {self.rs.name} {self.vs.name}"


@dataclass
class RealState:
    """A ``real_server_t``: one dest per IPVS service of its virtual server."""

    model: RealServer
    name: str  # FMT_RS
    dests: list[DestSpec]
    iweight: int
    effective_weight: int
    inhibit: bool
    peffective_weight: int = 0
    alive: bool = False
    set: bool = False
    num_failed_checkers: int = 0
    reloaded: bool = False
    checkers: list[CheckerState] = field(default_factory=list)

    def key(self) -> tuple[str, int]:
        """``rs_iseq``: address and port."""
        return (self.model.addr, self.dests[0].port if self.dests else self.model.port)


@dataclass
class TrackState:
    """A ``tracked_file_t``: the last value read from the file and the FILE_CHECKs
    (``tracking_obj``) that follow it."""

    model: TrackFile
    last_status: int = 0
    checkers: list[CheckerState] = field(default_factory=list)


@dataclass
class VirtualState:
    """A ``virtual_server_t`` and the IPVS services it stands for (a group has several)."""

    model: VirtualServer
    name: str  # FMT_VS
    services: list[VirtualConfig]
    reals: list[RealState] = field(default_factory=list)
    sorry: RealState | None = None
    quorum_state_up: bool = False
    alive: bool = False
    omega: bool = False
    s_svr_duplicates_rs: bool = False  # the sorry server is one of the real servers

    def key(self) -> tuple[object, ...]:
        """``vs_iseq``: group name and port, fwmark and family, or protocol, address, port."""
        m = self.model
        if m.group is not None:
            return ("group", m.group, m.port)
        if m.fwmark is not None:
            return ("fwmark", m.ip_family, m.fwmark)
        return ("addr", m.protocol, m.addr, m.port)


def _dest_key(d: DestSpec) -> tuple[str, int]:
    return (d.addr, d.port)


class KaKeeper:
    """keepalived's checker-side state of one keepalived.conf (see the module docstring)."""

    def __init__(self, table: Table, effects: KaEffects) -> None:
        self.table = table
        self.effects = effects
        self.virtuals: list[VirtualState] = []
        self.checkers: list[CheckerState] = []
        self.track_files: dict[str, TrackState] = {}
        self.stopped = False
        self.log_all_failures = False  # global_defs checker_log_all_failures

    # -- ipvs_cmd ----------------------------------------------------------------------------

    def _table(self, op: str, svc: ServiceSpec, dest: DestSpec) -> bool:
        try:
            if op == ADD:
                self.table.add_dest(svc, dest)
            elif op == EDIT:
                try:
                    self.table.edit_dest(svc, dest)
                except IPVSError as exc:
                    if exc.errno != errno.ENOENT:
                        raise
                    op = ADD  # ipvswrapper.c ipvs_talk: an edit of a missing dest adds it
                    self.table.add_dest(svc, dest)
            else:
                self.table.del_dest(svc, dest)
        except IPVSError as exc:
            # ipvswrapper.c ipvs_talk logs a failed command and goes on; a dest already there
            # (add) or already gone (delete) counts as done.
            log.error("IPVS cmd %s error: %s(%d) (%s)", op, exc, exc.errno, dest.addr)
            return (op == ADD and exc.errno == errno.EEXIST) or (
                op == DEL and exc.errno == errno.ENOENT
            )
        return True

    def ipvs_cmd(self, cmd: str, vs: VirtualState, rs: RealState) -> bool:
        """ipvswrapper.c ``ipvs_cmd`` for a dest: ``inhibit`` turns a delete into weight 0 and an
        add of a dest still in the table into an edit; ``set`` follows the table. Returns
        False when the table refused (keepalived's non-zero return)."""
        weight = real_weight(rs.effective_weight)
        if cmd == DEL and rs.inhibit:
            weight, cmd = 0, EDIT
        elif cmd == ADD and rs.inhibit and rs.set:
            cmd = EDIT
        elif cmd == ADD and not rs.set:
            rs.set = True
            if rs.inhibit and rs.num_failed_checkers:
                weight = 0
        elif cmd == DEL and rs.set:
            rs.set = False
        ok = True
        for svc, dest in zip(vs.services, rs.dests, strict=True):
            ok = self._table(cmd, svc.spec, dataclasses.replace(dest, weight=weight)) and ok
        return ok

    # -- the quorum (update_quorum_state and friends) ----------------------------------------

    @staticmethod
    def weigh_live_realservers(vs: VirtualState) -> int:
        return sum(real_weight(rs.effective_weight) for rs in vs.reals if rs.alive)

    def _vs_notifies(self, vs: VirtualState, stopping: bool = False) -> None:
        """``do_vs_notifies``: quorum_up / quorum_down (when stopping only with omega)."""
        if stopping and not vs.omega:
            return
        script = vs.model.quorum_up if vs.quorum_state_up else vs.model.quorum_down
        if script:
            self.effects.script(script, 1.0 if stopping else None)

    def _rs_notifies(self, rs: RealState, stopping: bool = False) -> None:
        """``do_rs_notifies``: the real server's notify_up / notify_down."""
        script = rs.model.notify_up if rs.alive else rs.model.notify_down
        if script:
            self.effects.script(script, 1.0 if stopping else None)

    def perform_quorum_state(self, vs: VirtualState, add: bool) -> None:
        what = "Adding alive servers to" if add else "Removing alive servers from"
        log.info("%s the pool for VS %s", what, vs.name)
        for rs in vs.reals:
            if not rs.alive:
                continue
            self.ipvs_cmd(ADD if add else DEL, vs, rs)

    def update_quorum_state(self, vs: VirtualState, init: bool) -> None:
        weight_sum = self.weigh_live_realservers(vs)
        m = vs.model
        threshold = m.quorum + (-1 if vs.quorum_state_up else 1) * m.hysteresis
        if not vs.quorum_state_up and weight_sum >= threshold:
            vs.quorum_state_up = True
            log.info(
                "Gained quorum %d+%d=%d <= %d for VS %s",
                m.quorum, m.hysteresis, threshold, weight_sum, vs.name,
            )  # fmt: skip
            ss = vs.sorry
            if ss is not None and ss.alive:
                log.info(
                    "%s sorry server %s from VS %s",
                    "Disabling" if ss.inhibit else "Removing",
                    ss.name,
                    vs.name,
                )
                self.ipvs_cmd(DEL, vs, ss)
                ss.alive = False
                self.perform_quorum_state(vs, True)
            self._vs_notifies(vs)
        elif (vs.quorum_state_up and (not weight_sum or weight_sum < threshold)) or (
            init and not vs.quorum_state_up and vs.sorry is not None and not vs.sorry.alive
        ):
            vs.quorum_state_up = False
            log.info(
                "%s %d-%d=%d > %d for VS %s",
                "Starting with quorum down" if init else "Lost quorum",
                m.quorum, m.hysteresis, threshold, weight_sum, vs.name,
            )  # fmt: skip
            ss = vs.sorry
            if ss is not None and not ss.alive:
                log.info(
                    "%s sorry server %s to VS %s",
                    "Enabling" if ss.inhibit else "Adding",
                    ss.name,
                    vs.name,
                )
                self.perform_quorum_state(vs, False)
                self.ipvs_cmd(ADD, vs, ss)
                ss.alive = True
            self._vs_notifies(vs)

    def _update_vs_notifies(self, vs: VirtualState, stopping: bool) -> None:
        """ipwrapper.c ``update_vs_notifies``: the quorum lost as real servers are removed (no
        sorry server is pushed in then, as keepalived says)."""
        threshold = vs.model.quorum - vs.model.hysteresis
        weight_sum = self.weigh_live_realservers(vs)
        if stopping or (vs.quorum_state_up and (not weight_sum or weight_sum < threshold)):
            vs.quorum_state_up = False
            self._vs_notifies(vs, stopping)

    # -- a real server's state (perform_svr_state, update_svr_checker_state) ----------------

    def perform_svr_state(self, alive: bool, vs: VirtualState, rs: RealState) -> bool:
        if rs.alive == alive:
            return True
        if alive:
            verb, prep = ("Enabling", "of") if rs.inhibit else ("Adding", "to")
        else:
            verb, prep = ("Disabling", "of") if rs.inhibit else ("Removing", "from")
        log.info("%s service %s %s VS %s", verb, rs.name, prep, vs.name)
        # Change only if we have quorum or no sorry server.
        if (vs.quorum_state_up or vs.sorry is None or not vs.sorry.alive) and not self.ipvs_cmd(
            ADD if alive else DEL, vs, rs
        ):
            return False
        rs.alive = alive
        self._rs_notifies(rs)
        self.update_quorum_state(vs, False)
        return True

    @staticmethod
    def set_checker_state(ck: CheckerState, up: bool) -> None:
        if ck.is_up == up:
            return
        ck.is_up = up
        if not up:
            ck.rs.num_failed_checkers += 1
        elif ck.rs.num_failed_checkers:
            ck.rs.num_failed_checkers -= 1

    def update_svr_checker_state(self, alive: bool, ck: CheckerState) -> None:
        if ck.is_up == alive:
            if not ck.has_run:
                if ck.model.alpha or not alive:
                    self._rs_notifies(ck.rs)
                ck.has_run = True
            return
        ck.has_run = True
        if alive:
            # The UP handler unless other checkers still fail.
            if ck.rs.num_failed_checkers <= 1 and not self.perform_svr_state(True, ck.vs, ck.rs):
                return
        elif ck.rs.num_failed_checkers == 0 and not self.perform_svr_state(False, ck.vs, ck.rs):
            return
        self.set_checker_state(ck, alive)

    def update_svr_wgt(
        self, weight: int, vs: VirtualState, rs: RealState, update_quorum: bool
    ) -> None:
        new_weight, old_weight = real_weight(weight), real_weight(rs.effective_weight)
        rs.effective_weight = weight
        if new_weight == old_weight:
            return
        log.info(
            "Changing weight from %d to %d for %sactive service %s of VS %s",
            old_weight, new_weight, "" if rs.alive else "in", rs.name, vs.name,
        )  # fmt: skip
        # Takes effect now only while the real is in the pool, alive and the quorum is met
        # (or there is no sorry server in use); else when it becomes alive.
        if rs.set and rs.alive and (vs.quorum_state_up or vs.sorry is None or not vs.sorry.alive):
            self.ipvs_cmd(EDIT, vs, rs)
        if update_quorum:
            self.update_quorum_state(vs, False)

    # -- check results (the checkers' epilogs) -----------------------------------------------

    def result(
        self,
        ck: CheckerState,
        ok: bool,
        reason: str = "",
        exit_code: int | None = None,
        lines: tuple[str, ...] = (),
        signal: int | None = None,
        timed_out: bool = False,
    ) -> float:
        """One run of checker ``ck`` through its type's epilog (retries, state, log lines).
        ``lines``: what keepalived logs of this attempt (the checker module's words: a failure
        line, or for HTTP the per-url success lines); MISC_CHECK's ``exit_code`` (with
        ``signal`` / ``timed_out`` when it did not exit) sets the weight with misc_dynamic.
        Returns the seconds until its next run."""
        c = ck.model
        if self.stopped or isinstance(c, FileCheck):
            return c.delay_loop
        if isinstance(c, MiscCheck):
            code = exit_code if exit_code is not None else (0 if ok else 1)
            return self._misc_epilog(ck, c, code, signal, timed_out)
        if isinstance(c, HttpCheck):
            return self._http_epilog(ck, c, ok, lines)
        if ck.kind == "SMTP_CHECK":
            return self._smtp_final(ck, ok, lines)
        if ck.kind == "DNS_CHECK":
            return self._dns_final(ck, ok, lines)
        return self._l4_epilog(ck, ok, lines)

    def _log_all(self, c: Checker) -> bool:
        return c.log_all_failures or self.log_all_failures

    def _l4_epilog(self, ck: CheckerState, ok: bool, lines: tuple[str, ...]) -> float:
        """check_tcp.c ``tcp_epilog``; check_udp.c ``udp_epilog`` and check_ping.c
        ``icmp_epilog`` differ only in retrying while the checker is up (a failed checker is
        tried again after ``delay_loop``)."""
        c = ck.model
        if not ok and ck.is_up and self._log_all(c):
            for line in lines:  # tcp_check_thread: "TCP connection to ... timeout." etc.
                log.info("%s", line)
        success, after, failed = _L4_WORDS.get(ck.kind, _L4_WORDS["TCP_CHECK"])
        words = {"rs": ck.rs.name, "vs": ck.vs.name, "retry": c.retry}
        if ck.kind == "TCP_CHECK":
            final = ok or ck.retry_it >= c.retry
        else:
            final = ok or ((ck.is_up or not ck.has_run) and ck.retry_it >= c.retry)
        if final:
            delay = c.delay_loop
            ck.retry_it = 0
            if ok and (not ck.is_up or not ck.has_run):
                log.info(success.format(**words))
                self.update_svr_checker_state(True, ck)
            elif not ok and (ck.is_up or not ck.has_run):
                log.info((after if c.retry and ck.has_run else failed).format(**words))
                self.update_svr_checker_state(False, ck)
        elif ck.kind == "TCP_CHECK" or ck.is_up:
            delay = c.delay_before_retry
            ck.retry_it += 1
        else:
            delay = c.delay_loop
        ck.has_run = True
        return delay

    def _http_epilog(
        self, ck: CheckerState, c: HttpCheck, ok: bool, lines: tuple[str, ...]
    ) -> float:
        """check_http.c ``epilog`` and ``timeout_epilog`` for one run of all the urls. After a
        failure the next success only clears ``failed_url``; the real server is up again after
        the following full pass (keepalived re-checks every url first)."""
        if ok:
            if not ck.is_up:
                for line in lines:  # http_handle_response: "HTTP status code success to ..."
                    log.info("%s", line)
            if ck.failed_url:
                ck.failed_url = False
                ck.retry_it = 0
                fast = c.fast_recovery and not ck.is_up
                return 0.0 if fast else c.delay_loop
            if not ck.is_up or not ck.has_run:
                log.info("Remote Web server %s succeed on service.", ck.rs.name)
                self.update_svr_checker_state(True, ck)
                ck.has_run = True
            ck.retry_it = 0
            return c.delay_loop
        if not (ck.is_up or not ck.has_run):
            # do not retry if server is already known as dead (REGISTER_CHECKER_FAILED)
            return (
                max(c.delay_before_retry, c.delay_loop) if ck.failed_url else (c.delay_before_retry)
            )
        if self._log_all(c):
            for line in lines:  # timeout_epilog: "HTTP status code error to server ..."
                log.info("%s", line)
        ck.has_run = True  # timeout_epilog sets it before the epilog
        ck.retry_it += 1
        if ck.retry_it <= c.retry:
            return c.delay_before_retry
        if ck.is_up:
            if c.retry:
                log.info(
                    "HTTP_CHECK on service %s failed after %d retries.", ck.rs.name, ck.retry_it - 1
                )
            else:
                log.info("HTTP_CHECK on service %s failed.", ck.rs.name)
            self.update_svr_checker_state(False, ck)
        ck.failed_url = True
        return max(c.delay_before_retry, c.delay_loop)

    def _smtp_final(self, ck: CheckerState, ok: bool, lines: tuple[str, ...]) -> float:
        """check_smtp.c ``smtp_final``: the error line ("SMTP_CHECK Bad greeting banner from
        server ...") when it counts or with log_all_failures; no separate failure line."""
        c = ck.model
        if ok:
            ck.retry_it = 0
            if not ck.is_up or not ck.has_run:
                log.info("Remote SMTP server %s succeed on service.", ck.rs.name)
                self.update_svr_checker_state(True, ck)
            ck.has_run = True
            return c.delay_loop
        if (ck.is_up or not ck.has_run) and (self._log_all(c) or ck.retry_it >= c.retry):
            for line in lines:
                log.info("%s", line)
        ck.retry_it += 1
        if ck.retry_it <= c.retry:
            return c.delay_before_retry
        if ck.is_up or not ck.has_run:
            self.update_svr_checker_state(False, ck)
        ck.has_run = True
        return c.delay_loop

    def _dns_final(self, ck: CheckerState, ok: bool, lines: tuple[str, ...]) -> float:
        """check_dns.c ``dns_final``: ``DNS_CHECK ([rs]) <what failed>[ after N retries]``; no
        line on success."""
        c = ck.model
        if not ok and (ck.is_up or not ck.has_run):
            if lines and (self._log_all(c) or ck.retry_it >= c.retry):
                text = lines[0]
                if ck.has_run and ck.retry_it >= c.retry:
                    text += f" after {c.retry} retries"
                log.info("DNS_CHECK (%s) %s", ck.rs.name, text)
            if ck.retry_it < c.retry:
                ck.retry_it += 1
                ck.has_run = True
                return c.delay_before_retry
            self.update_svr_checker_state(False, ck)
        elif ok and (not ck.is_up or not ck.has_run):
            self.update_svr_checker_state(True, ck)
        ck.retry_it = 0
        return c.delay_loop

    def _misc_epilog(
        self,
        ck: CheckerState,
        c: MiscCheck,
        status: int,
        signal: int | None,
        timed_out: bool,
    ) -> float:
        """check_misc.c ``misc_check_child_thread``: exit 0 (or 2..255 with misc_dynamic) is
        up, and with misc_dynamic the weight becomes status - 2; a signal or the timeout is a
        failure (without touching the dynamic weight)."""
        exit_type: str | None = None
        reason: tuple[str, int] | None = None
        success = message_only = False
        exited = signal is None and not timed_out
        if exited and (status == 0 or (c.misc_dynamic and 2 <= status <= 255)):
            if status != ck.last_exit_code:
                effective = ck.rs.effective_weight - ck.cur_weight
                ck.cur_weight = status - 2 - ck.rs.iweight if status else 0
                effective += ck.cur_weight
                self.update_svr_wgt(effective, ck.vs, ck.rs, True)
                ck.last_exit_code = status
            if not ck.is_up or not ck.has_run:
                exit_type, success = "succeeded", True
            ck.retry_it = 0
        elif ck.is_up or not ck.has_run:
            if exited:
                exit_type, reason = "failed", ("exited with status", status)
            elif timed_out:
                exit_type = "timed out"
            else:
                exit_type, reason = "failed", ("due to signal", signal or 0)
            if ck.retry_it < c.retry:
                ck.retry_it += 1
                if self._log_all(c):
                    message_only = True
                else:
                    exit_type = None  # no message, no state change: a retry follows
            else:
                ck.retry_it = 0
                if exited:
                    ck.rs.effective_weight -= ck.cur_weight
                    ck.cur_weight = 0
                    ck.last_exit_code = status
        if exit_type is not None:
            message = ""
            if not success:
                if not c.retry:
                    message = " with retry disabled"
                elif ck.retry_it == 1:
                    message = f", will do {c.retry} {'retry' if c.retry == 1 else 'retries'}"
                elif ck.retry_it > 1:
                    message = f" on retry {ck.retry_it - 1}/{c.retry}"
                else:
                    message = f" after {c.retry} {'retry' if c.retry == 1 else 'retries'}"
            head = f"Misc check for [{ck.rs.name} VS {ck.vs.name}] by [{_script(c)}] {exit_type}"
            if reason is not None:
                log.info("%s%s (%s %d).", head, message, reason[0], reason[1])
            else:
                log.info("%s%s.", head, message)
            if not message_only:
                self.update_svr_checker_state(success, ck)
                if not success:
                    ck.cur_weight = 0
        ck.has_run = True
        return c.delay_before_retry if ck.retry_it else c.delay_loop

    # -- FILE_CHECK (trackers/track_file.c, check_file.c) ---------------------------------------

    @staticmethod
    def _file_status(ck: CheckerState, value: int) -> int:
        """update_track_file_status: what a value means to one FILE_CHECK. Weight 0: a
        non-zero value (with reverse: zero) is the fault; else value * weight, clamped."""
        if not ck.tweight:
            return INT_MIN if (value == 0) != (ck.multiplier == 1) else 0
        return max(INT_MIN, min(INT_MAX, value * ck.tweight * ck.multiplier))

    def file_changed(self, name: str, value: int) -> None:
        """The track file ``name`` now holds ``value`` (0 when it was deleted or moved away):
        ``process_update_checker_track_file_status`` for every FILE_CHECK that follows it."""
        tf = self.track_files.get(name)
        if tf is None or self.stopped or value == tf.last_status:
            return
        for ck in tf.checkers:
            new = self._file_status(ck, value)
            previous = self._file_status(ck, tf.last_status)
            if previous == new:
                continue
            if new == IPVS_WEIGHT_FAULT:
                log.debug("(%s): tracked file %s now FAULT state", ck.rs.name, tf.model.name)
                self.update_svr_checker_state(False, ck)
                ck.rs.effective_weight -= ck.cur_weight
                ck.cur_weight = 0
            elif previous == IPVS_WEIGHT_FAULT:
                log.debug("(%s): tracked file %s leaving FAULT state", ck.rs.name, tf.model.name)
                ck.cur_weight = new
                ck.rs.effective_weight += new
                self.update_svr_checker_state(True, ck)
            else:
                self.update_svr_wgt(ck.rs.effective_weight + new - previous, ck.vs, ck.rs, True)
                ck.cur_weight = new
        tf.last_status = value

    def _file_down_at_start(self, ck: CheckerState, value: int) -> bool:
        """check_file.c ``set_track_file_checkers_down`` / ipwrapper.c ``init_service_rs``: a
        non-zero value with weight 0 (reverse is not looked at there), or value * weight at
        the fault."""
        if not value:
            return False
        return not ck.tweight or value * ck.tweight * ck.multiplier <= IPVS_WEIGHT_FAULT

    def _start_track_files(self) -> None:
        for tf in self.track_files.values():
            for ck in tf.checkers:
                # set_track_file_weights (before clear_diff_services)
                if tf.last_status and ck.tweight:
                    ck.cur_weight = tf.last_status * ck.tweight * ck.multiplier

    def _track_files_down(self, reload: bool) -> None:
        for tf in self.track_files.values():
            for ck in tf.checkers:
                if not self._file_down_at_start(ck, tf.last_status):
                    continue
                if reload:
                    self.update_svr_checker_state(False, ck)
                    ck.rs.effective_weight -= ck.cur_weight
                    ck.cur_weight = 0
                else:
                    self.set_checker_state(ck, False)

    # -- start and reload ---------------------------------------------------------------------

    def _build(self, config: Config, track_values: dict[str, int] | None) -> list[VirtualState]:
        ka = config.keepalived
        assert ka is not None
        self.track_files = {}
        out: list[VirtualState] = []
        rest = list(config.virtuals)
        for m in ka.virtual_servers:
            n = _service_count(m, ka.virtual_server_groups)
            services, rest = rest[:n], rest[n:]
            vs = VirtualState(model=m, name=m.name(), services=services, omega=m.omega)
            for i, r in enumerate(m.real_servers):
                dests = [v.reals[i].dest for v in services]
                port = dests[0].port if dests else r.port
                rs = RealState(
                    model=r,
                    name=fmt_rs(m, r.addr, port),
                    dests=dests,
                    iweight=r.weight,
                    effective_weight=r.weight,
                    inhibit=r.inhibit_on_failure,
                )
                for c in r.checkers:
                    if isinstance(c, FileCheck):
                        self._track(ka, c, vs, rs, track_values)
                    elif c.kind in RUNNABLE_CHECKERS:
                        rs.checkers.append(CheckerState(model=c, vs=vs, rs=rs))
                vs.reals.append(rs)
            ss = m.sorry_server
            if ss is not None:
                vs.sorry = self._sorry(m, ss, services)
                self._sorry_duplicates(vs, vs.sorry)
            out.append(vs)
        return out

    def _track(
        self,
        ka: KeepalivedConfig,
        c: FileCheck,
        vs: VirtualState,
        rs: RealState,
        track_values: dict[str, int] | None,
    ) -> None:
        """check_file.c ``add_rs_to_track_files``: a FILE_CHECK follows its track_file, has
        run already (the file is read at start) and never starts in alpha mode. A track_file
        the checker component could not watch (``track_values`` without it) is dropped with
        its checkers, as init_track_files does."""
        model = ka.track_files.get(c.track_file)
        if model is None or (track_values is not None and c.track_file not in track_values):
            return
        tf = self.track_files.get(model.name)
        if tf is None:
            value = track_values.get(model.name, 0) if track_values is not None else 0
            tf = self.track_files[model.name] = TrackState(model=model, last_status=value)
        ck = CheckerState(model=c, vs=vs, rs=rs, has_run=True)
        # file_end_handler: no weight in the FILE_CHECK = the track_file's weight and reverse.
        weight, reverse = (c.weight, c.reverse) if c.weight is not None else (
            model.weight, model.reverse,
        )  # fmt: skip
        ck.tweight, ck.multiplier, ck.track = weight, -1 if reverse else 1, tf
        tf.checkers.append(ck)
        rs.checkers.append(ck)

    @staticmethod
    def _sorry_duplicates(vs: VirtualState, ss: RealState) -> None:
        """check_data.c validate_check_config: a sorry server that is one of the real servers
        shares its IPVS dest; its inhibit setting must be the real server's."""
        for rs in vs.reals:
            if rs.key() != ss.key():
                continue
            if ss.inhibit != rs.inhibit:
                log.warning(
                    "Virtual server %s: real server %s matches sorry server, but inhibit "
                    "setting differs, %sing on sorry server",
                    vs.name, rs.name, "sett" if rs.inhibit else "clear",
                )  # fmt: skip
                ss.inhibit = rs.inhibit
            vs.s_svr_duplicates_rs = True

    @staticmethod
    def _sorry(m: VirtualServer, ss: SorryServer, services: list[VirtualConfig]) -> RealState:
        dests = [v.fallback for v in services if v.fallback is not None]
        port = dests[0].port if dests else ss.port
        return RealState(
            model=RealServer(addr=ss.addr, port=ss.port),
            name=fmt_rs(m, ss.addr, port),
            dests=dests,
            iweight=1,
            effective_weight=1,
            inhibit=ss.inhibit,
        )

    def start(self, config: Config, track_values: dict[str, int] | None = None) -> None:
        """keepalived's ``start_check``: the first start, or a reload when a configuration is
        running (``clear_diff_services`` first). ``config.keepalived`` must be set.
        ``track_values``: the value read from each track_file (by name) that can be watched
        (None: every track_file, with value 0)."""
        ka: KeepalivedConfig | None = config.keepalived
        if ka is None:
            raise ValueError("not a keepalived configuration")
        reload = bool(self.virtuals)
        old = self.virtuals
        new = self._build(config, track_values)
        self.virtuals = new
        self.checkers = [ck for vs in new for rs in vs.reals for ck in rs.checkers]
        self.stopped = False
        self.log_all_failures = ka.global_defs.checker_log_all_failures
        self._start_track_files()
        if not reload:
            self._track_files_down(False)
            for ck in self.checkers:
                if isinstance(ck.model, FileCheck):
                    continue
                # check_data.c validate_check_config: alpha checkers start failed; one failure
                # is enough initially.
                if ck.model.alpha:
                    self.set_checker_state(ck, False)
                    ck.rs.alive = False
                ck.retry_it = ck.model.retry
            for vs in new:  # set_quorum_states, before anything is alive
                vs.quorum_state_up = self.weigh_live_realservers(vs) >= (
                    vs.model.quorum + vs.model.hysteresis
                )
        else:
            self._clear_diff_services(old, new)
            self._track_files_down(True)
            for ck in self.checkers:  # check_new_rs_state
                if not ck.rs.reloaded and ck.model.alpha:
                    self.set_checker_state(ck, False)
                    ck.rs.alive = False
        for vs in new:  # set_effective_weights
            for rs in vs.reals:
                rs.effective_weight = rs.iweight + sum(ck.cur_weight for ck in rs.checkers)
        for vs in new:
            self._init_service_vs(vs)

    def _add_services(self, vs: VirtualState) -> None:
        for v in vs.services:
            try:
                self.table.add_service(v.spec)
            except IPVSError as exc:
                log.error("IPVS: cannot add service %s: %s", vs.name, exc)

    def _init_service_vs(self, vs: VirtualState) -> None:
        if not vs.alive:
            self._add_services(vs)
            vs.alive = True
        for rs in vs.reals:  # init_service_rs
            if rs.reloaded:
                if rs.effective_weight != rs.peffective_weight:
                    weight = rs.effective_weight
                    rs.effective_weight = rs.peffective_weight
                    self.update_svr_wgt(weight, vs, rs, False)
                continue  # a failed real is not re-added instantly on reload
            if (not rs.num_failed_checkers and not rs.alive) or (rs.inhibit and not rs.set):
                self.ipvs_cmd(ADD, vs, rs)
                if not rs.num_failed_checkers:
                    rs.alive = True
        self.update_quorum_state(vs, True)
        ss = vs.sorry
        if ss is not None and ss.inhibit and not ss.set:
            if vs.s_svr_duplicates_rs:
                ss.set = True  # the real server's dest is the sorry server's
            else:
                ss.num_failed_checkers = 1  # configured with weight 0
                self.ipvs_cmd(ADD, vs, ss)
                ss.num_failed_checkers = 0

    def _clear_diff_services(self, old: list[VirtualState], new: list[VirtualState]) -> None:
        by_key = {vs.key(): vs for vs in new}
        for ovs in old:
            nvs = by_key.get(ovs.key())
            if nvs is None:
                if ovs.model.group is not None:
                    log.info("Removing Virtual Server Group [%s]", ovs.model.group)
                else:
                    log.info("Removing Virtual Server %s", ovs.name)
                self._clear_service_vs(ovs, False)
                continue
            nvs.alive = ovs.alive
            nvs.quorum_state_up = ovs.quorum_state_up
            self._diff_group(ovs, nvs)
            ovs.omega = True  # the notifiers run: the virtual server stays
            self._clear_diff_rs(ovs, nvs)
            self._clear_diff_s_srv(ovs, nvs)

    def _diff_group(self, ovs: VirtualState, nvs: VirtualState) -> None:
        """The IPVS services of a virtual server that changed (a group's entries,
        ``clear_diff_vsge`` / ``sync_service_vsg``) or whose settings changed (the edit)."""
        old = {v.spec.key(): v for v in ovs.services}
        new = {v.spec.key(): v for v in nvs.services}
        for key, v in old.items():
            if key not in new:
                log.info("VS %s in group %s no longer exists", key, ovs.model.group)
                try:
                    self.table.del_service(v.spec)
                except IPVSError as exc:
                    log.error("IPVS: %s", exc)
        for key, v in new.items():
            if key not in old:
                log.info("VS %s added into group %s", key, nvs.model.group)
                try:
                    self.table.add_service(v.spec)
                except IPVSError as exc:
                    log.error("IPVS: %s", exc)
            elif v.spec != old[key].spec:
                try:
                    self.table.edit_service(v.spec)
                except IPVSError as exc:
                    log.error("IPVS: %s", exc)

    def _clear_diff_rs(self, ovs: VirtualState, nvs: VirtualState) -> None:
        new = {rs.key(): rs for rs in nvs.reals}
        added = {v.spec.key() for v in nvs.services} - {v.spec.key() for v in ovs.services}
        for rs in ovs.reals:
            nrs = new.get(rs.key())
            if nrs is None:
                log.info("service %s no longer exist", rs.name)
                self._clear_service_rs(ovs, rs, False)
                continue
            nrs.alive, nrs.set = rs.alive, rs.set
            nrs.effective_weight = nrs.peffective_weight = rs.effective_weight
            nrs.reloaded = True
            self._migrate_checkers(nvs, rs, nrs)
            # A dest in the table whose forwarding changed is edited; group entries that are
            # new get the reals that are set (ipvs_group_sync_entry).
            weight = 0 if nrs.inhibit and not nrs.alive else real_weight(nrs.effective_weight)
            for v, dest in zip(nvs.services, nrs.dests, strict=True):
                if not nrs.set:
                    break
                wanted = dataclasses.replace(dest, weight=weight)
                if v.spec.key() in added:
                    self._table(ADD, v.spec, wanted)
                elif any(d.fwd != dest.fwd for d in rs.dests if _dest_key(d) == _dest_key(dest)):
                    self._table(EDIT, v.spec, wanted)
        self._update_vs_notifies(ovs, False)

    def _migrate_checkers(self, vs: VirtualState, ors: RealState, nrs: RealState) -> None:
        """ipwrapper.c ``migrate_checkers``: a checker of the same type and settings keeps
        its state across the reload."""
        unused = list(ors.checkers)
        for nc in nrs.checkers:
            for oc in unused:
                if oc.kind == nc.kind and _same_checker(oc.model, nc.model):
                    unused.remove(oc)
                    if oc.has_run and oc.is_up != nc.is_up:
                        self.set_checker_state(nc, oc.is_up)
                    nc.has_run = oc.has_run
                    if oc.retry_it and nc.model.retry:
                        nc.retry_it = min(oc.retry_it, nc.model.retry - 1)
                    if isinstance(nc.model, MiscCheck):
                        nc.last_exit_code = oc.last_exit_code
                        if nc.model.misc_dynamic and oc.last_exit_code != 1:
                            code = oc.last_exit_code
                            nc.cur_weight = code - (2 if code else 0) - nrs.iweight
                    break
        nrs.num_failed_checkers = sum(1 for c in nrs.checkers if c.has_run and not c.is_up)
        ran = any(c.has_run for c in nrs.checkers)
        if nrs.num_failed_checkers or (not nrs.alive and not ran):
            for c in nrs.checkers:
                if not c.has_run:
                    if c.model.alpha:
                        self.set_checker_state(c, False)
                    c.retry_it = c.model.retry  # one failure is enough
        if not nrs.num_failed_checkers and not nrs.alive:
            self.perform_svr_state(True, vs, nrs)
        elif nrs.num_failed_checkers and nrs.set != nrs.inhibit:
            # A failed real: in the table with weight 0 under inhibit, else out of it.
            self.ipvs_cmd(ADD if nrs.inhibit else DEL, vs, nrs)

    def _clear_diff_s_srv(self, ovs: VirtualState, nvs: VirtualState) -> None:
        old, new = ovs.sorry, nvs.sorry
        if old is None:
            return
        if new is not None and old.key() == new.key():
            new.alive, new.set = old.alive, old.set
            new.reloaded = True
            return
        if old.inhibit:
            if not old.alive and old.set:
                old.alive = True
            old.inhibit = False
        if old.alive:
            log.info("Removing sorry server %s from VS %s", old.name, ovs.name)
            self.ipvs_cmd(DEL, ovs, old)

    # -- removal and stop (clear_service_rs, clear_service_vs, clear_services) -------------

    def _clear_service_rs(self, vs: VirtualState, rs: RealState, stopping: bool) -> None:
        if rs.set or stopping:
            log.info(
                "%s %sservice %s from VS %s",
                "Shutting down" if stopping else "Removing",
                "(inhibited) " if rs.inhibit and not rs.alive else "",
                rs.name,
                vs.name,
            )
        if not rs.set:
            return
        inhibit, rs.inhibit = rs.inhibit, False  # forced out even with inhibit_on_failure
        self.ipvs_cmd(DEL, vs, rs)
        rs.inhibit = inhibit
        if not rs.alive:
            return
        rs.alive = False
        if stopping and not vs.omega:
            return
        # In omega mode the down notifiers run all the way down the exit.
        self._rs_notifies(rs, stopping)

    def _clear_service_vs(self, vs: VirtualState, stopping: bool) -> None:
        ss = vs.sorry
        if ss is not None and ss.set:
            if vs.s_svr_duplicates_rs:
                ss.set = False  # its dest goes with the real server's
            else:
                inhibit, ss.inhibit = ss.inhibit, False
                self.ipvs_cmd(DEL, vs, ss)
                ss.inhibit = inhibit
            ss.alive = False
        for rs in vs.reals:
            self._clear_service_rs(vs, rs, stopping)
        self._update_vs_notifies(vs, stopping)
        for v in vs.services:
            try:
                self.table.del_service(v.spec)
            except IPVSError as exc:
                log.error("IPVS: cannot remove service %s: %s", vs.name, exc)
        vs.alive = False

    def stop(self) -> None:
        """``clear_services`` at shutdown: every real and virtual server goes (with ``omega``
        the notify_down and quorum_down scripts run on the way)."""
        self.stopped = True
        for vs in self.virtuals:
            if vs.alive:
                self._clear_service_vs(vs, True)
        self.virtuals = []
        self.checkers = []

    # -- status -------------------------------------------------------------------------------

    def reals(self) -> Iterator[tuple[VirtualState, RealState]]:
        for vs in self.virtuals:
            for rs in vs.reals:
                yield vs, rs


def _script(c: Checker) -> str:
    return c.misc_path.split()[0] if isinstance(c, MiscCheck) and c.misc_path else ""


def _same_checker(a: Checker, b: Checker) -> bool:
    """The checker's ``compare`` function: the same settings (the timings may differ)."""
    if isinstance(a, FileCheck):
        return False  # check_file.c: no compare function, file checkers start afresh
    skip = {"line", "file", "retry", "delay_before_retry", "delay_loop", "warmup", "alpha"}
    fa = {f.name: getattr(a, f.name) for f in dataclasses.fields(a) if f.name not in skip}
    fb = {f.name: getattr(b, f.name) for f in dataclasses.fields(b) if f.name not in skip}
    return fa == fb
