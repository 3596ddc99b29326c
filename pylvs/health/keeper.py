"""What health checks do to the table: ldirectord's ``service_set`` and everything behind it.

:class:`Keeper` is ldirectord's bookkeeping, function for function (``ld_start``,
``service_set``, ``_service_up``/``_service_down``, ``_restore_service``/``_remove_service``,
``fallback_on``/``fallback_off``, ``do_fallback_command``, ``purge_*``, ``ld_stop``), run against
the director's table instead of ``ipvsadm`` command lines. Like ldirectord it reads the table
before each change and decides from what it finds there, so a reload (``ld_start`` again with the
new file) keeps every unchanged real server as it is: up where it has a weight, down where it was
quiesced or deleted. The wording of its log lines is ldirectord's.

It is pure apart from the table (any :class:`~pylvs.core.control.ControlAPI`) and the
:class:`Effects` it is given (monitor file lines, e-mail alerts, fallback commands), so tests
step it with check results and compare the table with what ldirectord leaves.

Beyond ldirectord: ``rise`` (a down server must pass that many checks in a row before it is
brought back, as GitHub's GLB damps flapping) and a weight a check may set (keepalived's
MISC_CHECK ``misc_dynamic``).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from typing import Protocol

from pylvs.config.model import Config, VirtualConfig
from pylvs.core.control import DestSpec, IPVSError, ServiceInfo, ServiceSpec
from pylvs.core.service import AF_INET6, FwdMethod

__all__ = ["Effects", "Keeper", "RealState", "Table", "real_id"]

log = logging.getLogger("pylvs.ldirectord")

# ldirectord's names of the forwarding methods (get_forward_flag) and ipvsadm's flags for them.
_FORWARD = {
    int(FwdMethod.ROUTE): "gate",
    int(FwdMethod.MASQ): "masq",
    int(FwdMethod.TUNNEL): "ipip",
}


class Table(Protocol):
    """The part of the control API the keeper changes the table through (the director)."""

    def get_service(self, spec: ServiceSpec) -> ServiceInfo: ...
    def services(self) -> list[ServiceInfo]: ...
    def add_service(self, spec: ServiceSpec) -> None: ...
    def edit_service(self, spec: ServiceSpec) -> None: ...
    def del_service(self, spec: ServiceSpec) -> None: ...
    def add_dest(self, svc: ServiceSpec, dest: DestSpec) -> None: ...
    def edit_dest(self, svc: ServiceSpec, dest: DestSpec) -> None: ...
    def del_dest(self, svc: ServiceSpec, dest: DestSpec) -> None: ...


class Effects(Protocol):
    """What the keeper asks for beyond the table; pylvsd runs these off the loop's thread."""

    def alert(self, virtual: VirtualConfig, subject: str) -> None: ...
    def command(self, argv: str) -> None: ...


@lru_cache(maxsize=65536)
def _norm(addr: str) -> str:
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return addr


def _host(af: int, addr: str) -> str:
    return f"[{addr}]" if af == AF_INET6 else addr


def _quotemeta(text: str) -> str:
    # Perl quotemeta: every character but [A-Za-z0-9_] gets a backslash.
    return re.sub(r"(\W)", r"\\\1", text)


def real_id(v: VirtualConfig, index: int) -> str:
    """ldirectord's ``get_real_id_str``: reals with equal ids are checked once per cycle and
    share their state across virtual services."""
    r = v.reals[index]
    if v.checktype in ("negotiate", "combined"):
        check = f"{v.checktype}:{v.service}"
    elif v.checktype in ("external", "external-perl", "misc"):
        check = f"{v.checktype}:{v.checkcommand}"
    else:
        check = v.checktype
    return ":".join(
        (
            check,
            v.protocol,
            _host(r.dest.af, r.dest.addr),
            str(r.port),
            v.virtualhost or "",
            "" if v.checkport is None else str(v.checkport),
            str(r.dest.weight),
            _FORWARD.get(r.dest.fwd, ""),
            _quotemeta(v.request_for(r)),
            _quotemeta(v.receive_for(r)),
        )
    )


@dataclass
class RealState:
    """A real server's health (ldirectord keeps these in the real's hash)."""

    failcount: int = 0
    num_connects: int = 0  # checktype=N: connect checks passed since the last negotiate
    successes: int = 0  # rise: checks passed in a row while down
    weight: int | None = None  # a weight a check asked for (misc_dynamic)
    virtual_status: set[str] = field(default_factory=set)  # virtual ids it is up in


@dataclass
class _VirtualState:
    config: VirtualConfig
    vid: str
    rids: list[str] = field(default_factory=list)  # real_id() of each real, in file order
    where: dict[str, int] = field(default_factory=dict)  # real id -> its first index
    real_status: set[str] = field(default_factory=set)  # real ids up in this virtual
    fallback_status: set[str] = field(default_factory=set)
    fallbackcommand_status: str | None = None


@dataclass
class _Dest:
    weight: int
    fwd: int
    u_threshold: int
    l_threshold: int


class _View:
    """The table as ``ld_read_ipvsadm`` shows it, read once per service per session and kept in
    step with the keeper's own changes (a start with thousands of reals stays linear)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.cache: dict[tuple[object, ...], dict[tuple[str, int], _Dest] | None] | None = None

    @staticmethod
    def key(spec: ServiceSpec) -> tuple[object, ...]:
        if spec.fwmark:
            return (spec.af, spec.fwmark)
        return (spec.af, spec.protocol, _norm(spec.addr), spec.port)

    def dests(self, spec: ServiceSpec) -> dict[tuple[str, int], _Dest] | None:
        key = self.key(spec)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        try:
            info = self.table.get_service(spec)
            found: dict[tuple[str, int], _Dest] | None = {
                (_norm(d.addr), d.port): _Dest(d.weight, d.fwd, d.u_threshold, d.l_threshold)
                for d in info.dests
            }
        except IPVSError:
            found = None
        if self.cache is not None:
            self.cache[key] = found
        return found

    def forget(self, spec: ServiceSpec) -> None:
        if self.cache is not None:
            self.cache.pop(self.key(spec), None)


class Keeper:
    """ldirectord's state of the virtual services of one configuration, and its effects."""

    def __init__(self, table: Table, effects: Effects, clock: Callable[[], float] = time.time):
        self.table = table
        self.effects = effects
        self.clock = clock
        self.view = _View(table)
        self.config = Config()
        self.virtuals: list[_VirtualState] = []
        self.members: dict[str, list[int]] = {}  # real id -> indexes into self.virtuals
        self.reals: dict[str, RealState] = {}
        self.status = "starting"  # ldirectord's daemon status, for e-mail filtering
        self.email_status: dict[str, tuple[VirtualConfig, float]] = {}
        self.strict = False
        self._checks: dict[str, tuple[VirtualConfig, int]] = {}

    # -- the table, through the view -------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[None]:
        """Group changes: the table is read once per service for all of them."""
        outer = self.view.cache is None
        if outer:
            self.view.cache = {}
        try:
            yield
        finally:
            if outer:
                self.view.cache = None

    def _do(self, what: str, change: Callable[[], None], spec: ServiceSpec) -> bool:
        try:
            change()
        except IPVSError as exc:
            if self.strict:
                raise
            # ldirectord's system_wrapper does not stop on a failed ipvsadm; neither do we.
            log.error("%s failed: %s", what, exc)
            self.view.forget(spec)
            return False
        return True

    # -- start and reload (ld_start) -------------------------------------------------------

    def start(self, config: Config, strict: bool = False) -> None:
        """``ld_start`` for ``config``: virtuals edited or added, unknown reals purged, reals
        found up kept up, the others added and taken down; then the caller runs the first checks.
        With a previous configuration, its virtuals no longer in ``config`` are purged.

        ldirectord goes on when an ``ipvsadm`` line fails; with ``strict`` the first refusal is
        raised instead (pylvsd's start: a file the table refuses is an error to the operator).
        """
        self.strict = strict
        try:
            self._start(config)
        finally:
            self.strict = False

    def _start(self, config: Config) -> None:
        old = self.virtuals
        self.config = config
        self.virtuals = [_VirtualState(v, v.ident()) for v in config.virtuals]
        self.members = {}
        self.reals = {}
        for index, vs in enumerate(self.virtuals):
            vs.rids = [real_id(vs.config, i) for i in range(len(vs.config.reals))]
            for i, rid in enumerate(vs.rids):
                vs.where.setdefault(rid, i)
                if index not in self.members.setdefault(rid, []):
                    self.members[rid].append(index)
                # ldirectord's reload builds new real hashes; the soft failure count and the
                # checktype=N progress start again, as there.
                # ld_setup: checktype=N starts with a negotiate check; -1 never reaches one.
                start = 999999 if vs.config.checktype == "combined" else -1
                self.reals.setdefault(rid, RealState(num_connects=start))
        self._checks = self._find_checks()
        with self.session():
            wanted = {self.view.key(vs.config.spec) for vs in self.virtuals}
            for vs in self.virtuals:
                spec = vs.config.spec
                if self.view.dests(spec) is not None:
                    if self._do("-E", partial(self.table.edit_service, spec), spec):
                        log.info("Changed virtual server: %s", self._virtual(vs.config))
                elif self._do("-A", partial(self.table.add_service, spec), spec):
                    log.info("Added virtual server: %s", self._virtual(vs.config))
                    if self.view.cache is not None:
                        self.view.cache[self.view.key(spec)] = {}
            server_down: dict[str, tuple[int, int]] = {}
            for index, vs in enumerate(self.virtuals):
                v = vs.config
                present = dict(self.view.dests(v.spec) or {})
                fallback = v.fallback
                if fallback is not None:
                    present.pop((_norm(fallback.addr), fallback.port), None)
                for i, r in enumerate(v.reals):
                    key = (_norm(r.dest.addr), self._written_port(v, i))
                    d = present.get(key)
                    if d is None or d.weight == 0:
                        server_down[f"{_norm(r.dest.addr)}:{key[1]}"] = (index, i)
                    else:
                        server_down.pop(f"{_norm(r.dest.addr)}:{key[1]}", None)
                        self.service_set(index, i, "up", force=True)
                    present.pop(key, None)
                for (addr, port), _ in present.items():
                    self._purge_untracked(v, addr, port, "start")
                self.fallback_on(index)
            for index, i in server_down.values():
                if not self.config.readdquiescent:
                    self.service_set(index, i, "up", force=True)  # ensure it is added first
                self.service_set(index, i, "down", force=True)
            for ovs in old:
                vkey = self.view.key(ovs.config.spec)
                if vkey not in wanted and self.view.dests(ovs.config.spec) is not None:
                    self._purge_virtual(ovs.config, "start")

    def stop(self) -> None:
        """``ld_stop``: with ``cleanstop`` (the default) every managed real and virtual goes."""
        self.status = "stopping"
        with self.session():
            for vs in self.virtuals:
                v = vs.config
                if not v.cleanstop:
                    continue
                seen: set[str] = set()
                for i, r in enumerate(v.reals):
                    rid = vs.rids[i]
                    if rid in seen or not self.reals[rid].virtual_status:
                        continue
                    seen.add(rid)
                    self._purge_untracked(v, _norm(r.dest.addr), self._written_port(v, i), "stop")
                    self._status_down(vs, rid)
                self._purge_virtual(v, "stop")

    # -- check results (service_set) --------------------------------------------------------

    def checked(self, rid: str) -> tuple[int, int]:
        """The (virtual, real) whose settings the check of ``rid`` uses: its first place in the
        file, as ldirectord's ``_ld_main_check_all`` checks it."""
        index = self.members[rid][0]
        return index, self.virtuals[index].where[rid]

    def result(self, rid: str, up: bool, message: str = "-", weight: int | None = None) -> None:
        """One check's outcome for every virtual that has real ``rid`` (``service_set`` with
        ``do_log``), with the ``rise`` damping before a down server comes back."""
        index, i = self.checked(rid)
        state = self.reals[rid]
        if up:
            rise = self.virtuals[index].config.rise
            if not self.is_up(rid) and rise > 1:
                state.successes += 1
                if state.successes < rise:
                    log.info(
                        "Soft recovery real server: %s (%s) success %d/%d",
                        self._real(index, i),
                        self.virtuals[index].vid,
                        state.successes,
                        rise,
                    )
                    self._monitor(index, i, "down", f"rise {state.successes}/{rise}: {message}")
                    return
            state.successes = 0
            if weight is not None and weight != state.weight:
                state.weight = weight
                with self.session():
                    self.service_set(index, i, "up", force=self.is_up(rid), message=message,
                                     do_log=True)  # fmt: skip
                return
        else:
            state.successes = 0
        with self.session():
            self.service_set(index, i, "up" if up else "down", message=message, do_log=True)

    def maintenance(self, rid: str) -> None:
        """A file in ``maintenancedir`` names the server: forced down, every cycle."""
        index, i = self.checked(rid)
        with self.session():
            self.service_set(
                index, i, "down", force=True, message="Server in maintenance", do_log=True
            )

    def is_up(self, rid: str) -> bool:
        """Whether real ``rid`` is up in at least one of its virtual services."""
        return any(rid in self.virtuals[ix].real_status for ix in self.members.get(rid, ()))

    def service_set(
        self,
        index: int,
        i: int,
        state: str,
        force: bool = False,
        message: str = "-",
        do_log: bool = False,
    ) -> None:
        rid = self.virtuals[index].rids[i]
        for ix in self.members.get(rid, ()):
            vs = self.virtuals[ix]
            j = vs.where[rid]
            if state == "up":
                self._service_up(ix, j, force)
            else:
                self._service_down(ix, j, force)
            if do_log:
                self._monitor(ix, j, state, message)

    def _monitor(self, index: int, i: int, state: str, message: str) -> None:
        v = self.virtuals[index].config
        if not v.monitorfile:
            return
        rid = self.virtuals[index].rids[i].replace("\\", "")
        rid = re.sub(":+", " ", rid)
        text = re.sub(r"[%|\r\n]", lambda m: f"%{ord(m.group(0)):02x}", message)
        now = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(self.clock()))
        try:
            with open(v.monitorfile, "a") as out:
                out.write(f"[{now}] [{os.getpid()}] {rid} [{state}] {text}\n")
        except OSError as exc:
            log.error("Error writing to monitorfile '%s': %s", v.monitorfile, exc.strerror)

    def _service_up(self, index: int, i: int, force: bool) -> None:
        vs = self.virtuals[index]
        v = vs.config
        rid = vs.rids[i]
        state = self.reals[rid]
        if state.failcount > 0:
            log.info(
                "Resetting soft failure count: %s:%d (%s)",
                v.reals[i].dest.addr,
                v.reals[i].port,
                vs.vid,
            )
        state.failcount = 0
        if not self._status_up(vs, rid) and not force:
            return
        r = v.reals[i]
        weight = state.weight if state.weight is not None else r.dest.weight
        self._restore_service(
            index,
            r.dest.addr,
            self._written_port(v, i),
            replace(r.dest, weight=weight),
            "real",
        )
        self.fallback_off(index)

    def _service_down(self, index: int, i: int, force: bool) -> None:
        vs = self.virtuals[index]
        v = vs.config
        rid = vs.rids[i]
        state = self.reals[rid]
        if rid not in vs.real_status and not force:
            return
        state.failcount += 1
        if not force and rid in vs.real_status and state.failcount < v.failurecount:
            log.info(
                "Soft failure real server: %s:%d (%s) failure %d/%d",
                v.reals[i].dest.addr,
                v.reals[i].port,
                vs.vid,
                state.failcount,
                v.failurecount,
            )
            return
        self._status_down(vs, rid)
        r = v.reals[i]
        self._remove_service(index, r.dest.addr, self._written_port(v, i), r.dest, "real")
        self.fallback_on(index)

    def _status_up(self, vs: _VirtualState, rid: str) -> bool:
        if rid in vs.real_status:
            return False
        vs.real_status.add(rid)
        self.reals[rid].virtual_status.add(vs.vid)
        return True

    def _status_down(self, vs: _VirtualState, rid: str) -> bool:
        if rid not in vs.real_status:
            return False
        vs.real_status.discard(rid)
        self.reals[rid].virtual_status.discard(vs.vid)
        return True

    # -- fallback ---------------------------------------------------------------------------

    def fallback_on(self, index: int) -> None:
        vs = self.virtuals[index]
        fb = vs.config.fallback
        if fb is not None and not vs.real_status:
            fid = f"{_norm(fb.addr)}:{fb.port}"
            if fid not in vs.fallback_status:
                vs.fallback_status.add(fid)
                self._restore_service(index, fb.addr, fb.port, replace(fb, weight=1), "fallback")
        if not vs.real_status:
            self._fallback_command(vs, "start")

    def fallback_off(self, index: int) -> None:
        vs = self.virtuals[index]
        fb = vs.config.fallback
        fid = "" if fb is None else f"{_norm(fb.addr)}:{fb.port}"
        if fb is not None and (vs.real_status or fid in vs.fallback_status):
            # ldirectord's _status_down of the fallback holds whenever a real is up
            # (_status_check), so a fallback left in the table by a reload goes too.
            vs.fallback_status.discard(fid)
            self._remove_service(index, fb.addr, fb.port, fb, "fallback")
        if vs.real_status:
            self._fallback_command(vs, "stop")

    def _fallback_command(self, vs: _VirtualState, status: str) -> None:
        if vs.fallbackcommand_status == status:
            return
        vs.fallbackcommand_status = status
        command = vs.config.fallbackcommand
        if command:
            v = vs.config
            self.effects.command(f"{command} {status} {self._virtual(v)} {v.protocol}")

    # -- _restore_service / _remove_service ------------------------------------------------

    def _restore_service(self, index: int, addr: str, port: int, dest: DestSpec, tag: str) -> None:
        v = self.virtuals[index].config
        rservice = f"{_host(dest.af, addr)}:{port}"
        what = f"{tag} server: {rservice} ({self._virtual(v)})"
        dests = self.view.dests(v.spec)
        found = None if dests is None else dests.get((_norm(addr), port))
        want = _Dest(dest.weight, dest.fwd, dest.u_threshold, dest.l_threshold)
        if found is not None:
            if found == want:
                return
            if self._do("-e", lambda: self.table.edit_dest(v.spec, dest), v.spec):
                self._record(v.spec, dest, want)
                self._logged(v, f"Restored {what} (Weight set to {dest.weight})", rservice, 0)
        elif self._do("-a", lambda: self.table.add_dest(v.spec, dest), v.spec):
            self._record(v.spec, dest, want)
            self._logged(v, f"Added {what} (Weight set to {dest.weight})", rservice, 0)

    def _remove_service(self, index: int, addr: str, port: int, dest: DestSpec, tag: str) -> None:
        vs = self.virtuals[index]
        v = vs.config
        dests = self.view.dests(v.spec)
        if dests is None:
            return
        quiescent = tag != "fallback" and v.quiescent
        rservice = f"{_host(dest.af, addr)}:{port}"
        key = (_norm(addr), port)
        mapped: str | None = None
        found = dests.get(key)
        if found is None and not v.spec.fwmark:
            # A gate/ipip real has the virtual's port in the table whatever the file wrote.
            alt = (_norm(addr), v.spec.port)
            if alt in dests:
                mapped, rservice, key, found = (
                    rservice,
                    f"{_host(dest.af, addr)}:{alt[1]}",
                    alt,
                    dests[alt],
                )
        if (found is None and not quiescent) or (
            quiescent and found is not None and found.weight == 0 and found.fwd == dest.fwd
        ):
            return
        what = f"{tag} server: {rservice} "
        if mapped is not None:
            what += f"mapped from {mapped} "
        what += f"({self._virtual(v)})"
        target = DestSpec(af=dest.af, addr=key[0], port=key[1], weight=0, fwd=dest.fwd)
        now = self.clock()
        if quiescent:
            if found is not None:
                if self._do("-e", lambda: self.table.edit_dest(v.spec, target), v.spec):
                    self._record(v.spec, target, _Dest(0, dest.fwd, 0, 0))
                    self._logged(v, f"Quiescent {what} (Weight set to 0)", rservice, now)
            elif self.config.readdquiescent and self._do(
                "-a", lambda: self.table.add_dest(v.spec, target), v.spec
            ):
                self._record(v.spec, target, _Dest(0, dest.fwd, 0, 0))
                log.info("Readd Quiescent %s (Weight set to 0)", what)
                self._alert(v, f"Quiescent {what} (Weight set to 0)", rservice, now)
        elif self._do("-d", lambda: self.table.del_dest(v.spec, target), v.spec):
            dests.pop(key, None)
            self._logged(v, f"Deleted {what}", rservice, 0 if tag == "fallback" else now)

    def _record(self, spec: ServiceSpec, dest: DestSpec, d: _Dest) -> None:
        dests = self.view.dests(spec)
        if dests is not None:
            dests[(_norm(dest.addr), dest.port)] = d

    # -- purge ------------------------------------------------------------------------------

    def _purge_untracked(self, v: VirtualConfig, addr: str, port: int, tag: str) -> None:
        rservice = f"{_host(v.spec.af, addr)}:{port}"
        target = DestSpec(af=v.spec.af, addr=addr, port=port)
        if self._do("-d", lambda: self.table.del_dest(v.spec, target), v.spec):
            dests = self.view.dests(v.spec)
            if dests is not None:
                dests.pop((addr, port), None)
        message = f"Purged real server ({tag}): {rservice} ({self._virtual(v)})"
        log.info("%s", message)
        self._alert(v, message, rservice, 0)

    def _purge_virtual(self, v: VirtualConfig, tag: str) -> None:
        self._do("-D", lambda: self.table.del_service(v.spec), v.spec)
        self.view.forget(v.spec)
        if self.view.cache is not None:
            self.view.cache[self.view.key(v.spec)] = None
        log.info("Purged virtual server (%s): %s", tag, self._virtual(v))

    # -- words and alerts -------------------------------------------------------------------

    @staticmethod
    def _virtual(v: VirtualConfig) -> str:
        """ldirectord's ``get_virtual``: ``vip:port``, or the fwmark."""
        if v.spec.fwmark:
            return str(v.spec.fwmark)
        return f"{_host(v.spec.af, v.spec.addr)}:{v.spec.port}"

    def _real(self, index: int, i: int) -> str:
        r = self.virtuals[index].config.reals[i]
        return f"{_host(r.dest.af, r.dest.addr)}:{r.port}"

    @staticmethod
    def _written_port(v: VirtualConfig, i: int) -> int:
        """The port ldirectord writes in its ipvsadm lines: as in the file (0 when omitted)."""
        return v.reals[i].port

    def _logged(self, v: VirtualConfig, message: str, rservice: str, when: float) -> None:
        log.info("%s", message)
        self._alert(v, message, rservice, when)

    def _alert(self, v: VirtualConfig, subject: str, rservice: str, when: float) -> None:
        """``ld_emailalert_send``: remember a down server for the resends, then mail."""
        ident = f"{rservice} ({self._virtual(v)})"
        if when == 0 or v.emailalertfreq == 0:
            self.email_status.pop(ident, None)
        else:
            self.email_status[ident] = (v, when)
        if self.status not in v.emailalertstatus or not v.emailalert:
            return
        log.info("emailalert: %s", subject)
        self.effects.alert(v, subject)

    def resend_alerts(self) -> None:
        """``ld_emailalert_resend``: every ``emailalertfreq`` seconds while a server is down."""
        now = self.clock()
        for ident, (v, when) in list(self.email_status.items()):
            if now - when < v.emailalertfreq:
                continue
            rservice = ident.split(" ", 1)[0]
            self._alert(v, f"Inaccessible real server: {ident}", rservice, now)

    # -- what the checker and the status need -----------------------------------------------

    def checks(self) -> dict[str, tuple[VirtualConfig, int]]:
        """Every distinct real server to check (by real id), with the virtual and real whose
        settings its check uses; ``off`` virtuals check nothing. Computed once per start."""
        return self._checks

    def _find_checks(self) -> dict[str, tuple[VirtualConfig, int]]:
        out: dict[str, tuple[VirtualConfig, int]] = {}
        for vs in self.virtuals:
            if vs.config.checktype == "off":
                continue
            for i, rid in enumerate(vs.rids):
                if rid not in out:
                    out[rid] = (vs.config, i)
        return out
