"""pylvsd's health component: ldirectord's check loop, with checks in a bounded thread pool.

:class:`HealthMonitor` is a :class:`~pylvs.loop.Component`. On the loop's thread it decides which
real server is due (each distinct real server once per ``checkinterval``, ldirectord's
``_ld_main_check_all`` rule), which check it gets (``checktype=N``: connect checks and every
N-th a negotiate check) and what the result does to the table
(:class:`~pylvs.health.keeper.Keeper`).
The checks themselves block, so they run in a :class:`~concurrent.futures.ThreadPoolExecutor` of
``workers`` threads and hand their results back with :meth:`Loop.call_soon`: a hung real server
holds one worker for one timeout and nothing else. A check that has not returned a second after
its timeout counts as failed and its late result is dropped, whatever the library did.

Also here: ``maintenancedir`` (tested in the worker, the reverse lookup can block),
``autoreload``/``callback`` (``check_cfgfile``), e-mail alerts through ``smtp=`` or the local
sendmail, ``fallbackcommand``, and the status ``pylvs health`` lists.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import shutil
import smtplib
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from pylvs.config.model import Config, VirtualConfig
from pylvs.health.check import CheckResult, CheckTarget
from pylvs.health.checktypes import run_check
from pylvs.health.keeper import Keeper, Table
from pylvs.loop import Loop

__all__ = ["DEFAULT_WORKERS", "HealthMonitor"]

log = logging.getLogger("pylvs.ldirectord")

DEFAULT_WORKERS = 32
# How long past its timeout a check may take before it counts as failed.
_GRACE = 1.0
# Results are applied together once the first of them has waited this long, so a hundred
# servers coming up in the same second change the packet rules a few times, not a hundred.
_COALESCE = 0.05


def _in_maintenance(maintdir: str, addr: str, port: int) -> bool:
    """``_check_real_for_maintenance``: a file named ip:port, ip, fqdn:port, fqdn, short:port
    or short in ``maintenancedir`` forces the server down. ldirectord holds an IPv6 address in
    brackets, so its files are ``[2001:db8::2]:80`` and ``[2001:db8::2]``."""
    shown = f"[{addr}]" if ":" in addr else addr
    names = [f"{shown}:{port}", shown]
    with contextlib.suppress(OSError):
        fqdn = socket.gethostbyaddr(addr)[0]
        names += [f"{fqdn}:{port}", fqdn]
        short = fqdn.split(".", 1)[0] if "." in fqdn else ""
        if short:
            names += [f"{short}:{port}", short]
    return any(os.path.exists(os.path.join(maintdir, name)) for name in names)


def target_of(v: VirtualConfig, i: int) -> CheckTarget:
    """What the check of real ``i`` of ``v`` is given."""
    r = v.reals[i]
    return CheckTarget(
        checktype=v.checktype,
        service=v.service,
        protocol=v.protocol,
        vip=str(v.spec.fwmark) if v.spec.fwmark else v.spec.addr,
        vport=v.spec.port,
        rip=r.dest.addr,
        rport=r.port,
        checkport=v.check_port(r),
        af=r.dest.af,
        request=v.request_for(r),
        receive=v.receive_for(r),
        httpmethod=v.httpmethod,
        virtualhost=v.virtualhost,
        login=v.login,
        passwd=v.passwd,
        database=v.database,
        secret=v.secret,
        checkcommand=v.checkcommand,
        checkcount=v.checkcount,
    )


@dataclass
class Health:
    """What ``pylvs health`` shows of one real server."""

    real: str
    virtuals: list[str]
    check: str
    state: str = "unchecked"  # up | down | maintenance | unchecked
    since: float = field(default_factory=time.time)
    ok: bool | None = None
    reason: str = ""
    latency: float = 0.0
    checks: int = 0
    failures: int = 0
    # Scheduling (loop thread only).
    next_due: float = 0.0
    running: int = 0  # the generation of the check in the pool, 0 when none
    budget: float = 0.0  # seconds it may run: its timeout(s) and the grace second
    started: float = 0.0  # when a worker took it up (0: still queued behind other checks)

    def row(self, now: float, failcount: int) -> dict[str, Any]:
        """The ``pylvs health`` row (``now``: wall-clock time, as ``since``)."""
        return {
            "real": self.real,
            "virtuals": self.virtuals,
            "check": self.check,
            "state": self.state,
            "for": round(now - self.since, 1),
            "ok": self.ok,
            "reason": self.reason,
            "latency": round(self.latency, 6),
            "checks": self.checks,
            "failures": self.failures,
            "failcount": failcount,
        }


class WorkerPool:
    """``workers`` daemon threads taking jobs from one queue. Daemon threads, unlike those of
    ``concurrent.futures``, do not hold pylvsd's exit back while a check waits on a hung server."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []

    def submit(self, job: Callable[[], None]) -> None:
        if len(self.threads) < self.workers:  # started as work comes, up to the bound
            thread = threading.Thread(
                target=self._work, name=f"pylvs-health-{len(self.threads)}", daemon=True
            )
            self.threads.append(thread)
            thread.start()
        self.jobs.put(job)

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                job()
            except Exception:  # a job's own failure must not end the worker
                log.exception("health check worker")

    def close(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)


class _Effects:
    """The keeper's e-mails and fallback commands, run in the pool."""

    def __init__(self, monitor: HealthMonitor) -> None:
        self.monitor = monitor

    def alert(self, virtual: VirtualConfig, subject: str) -> None:
        status = self.monitor.keeper.status
        self.monitor.pool.submit(lambda: self.monitor.send_alert(virtual, subject, status))

    def command(self, argv: str) -> None:
        self.monitor.pool.submit(lambda: self.monitor.run_command(argv))


class HealthMonitor:
    """The health component (see the module docstring)."""

    name = "health"

    def __init__(
        self,
        table: Table,
        loop: Loop,
        workers: int = DEFAULT_WORKERS,
        reload: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        batch: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self.loop = loop
        # The director's batch(): results that arrive together change the rules once.
        self.batch = batch
        self.arrived: list[tuple[str, int, str, CheckResult | None]] = []
        self.first_arrival = 0.0
        self.clock = clock
        self.reload = reload
        self.workers = workers
        self.pool = WorkerPool(workers)
        self.keeper = Keeper(table, _Effects(self))
        self.config = Config()
        self.health: dict[str, Health] = {}
        self.generation = 0
        self.first_pass: set[str] = set()
        self.next_housekeeping = 0.0
        self.cfg_stat: tuple[float, str] | None = None  # (mtime, md5) of the file, check_cfgfile
        self.counters = {"checks": 0, "failed": 0, "overdue": 0, "reloads": 0}

    # -- configuration ----------------------------------------------------------------------

    def apply(self, config: Config, reloading: bool = False) -> None:
        """``ld_start`` for ``config`` and a first check of every real server now; the health
        of real servers that stay keeps its history."""
        self.keeper.status = "reloading" if reloading else "starting"
        self.config = config
        self.keeper.start(config, strict=True)
        old = self.health
        self.health = {}
        now = self.clock()
        for rid, (v, i) in self.keeper.checks().items():
            r = v.reals[i]
            members = [self.keeper.virtuals[ix].vid for ix in self.keeper.members[rid]]
            kind = v.checktype if v.checktype != "negotiate" else f"negotiate:{v.service}"
            h = old.get(rid) or Health(real=f"{r.dest.addr}:{r.port}", virtuals=members, check=kind)
            h.virtuals = members
            h.next_due = now
            h.running = 0  # a check of the old configuration reports to nobody
            self.health[rid] = h
        self.first_pass = set(self.health)
        # checktype=on needs no check: its reals are up when the start is over, as ldirectord's
        # first pass inside ld_start leaves them.
        with self.keeper.session():  # the table is read once for all of them
            for rid, (v, i) in self.keeper.checks().items():
                if v.checktype == "on":
                    self._start(rid, self.health[rid], v, i, now)
        self._check_status()
        self.cfg_stat = self._cfg_stat()
        if reloading:
            self.counters["reloads"] += 1

    def _check_status(self) -> None:
        if not self.first_pass:
            self.keeper.status = "running"

    def _interval(self, v: VirtualConfig) -> float:
        # ldirectord honours a virtual's checkinterval only with fork=yes (one child each).
        return float(v.checkinterval if self.config.fork else self.config.checkinterval)

    # -- the loop's side --------------------------------------------------------------------

    def watch(self) -> list[tuple[Any, int]]:
        return []

    def deadline(self) -> float | None:
        if self.arrived:
            return self.first_arrival + _COALESCE
        times = [self.next_housekeeping] if self.health else []
        for h in self.health.values():
            if not h.running:
                times.append(h.next_due)
            elif h.started:
                times.append(h.started + h.budget)
        return min(times) if times else None

    def _arrive(self, item: tuple[str, int, str, CheckResult | None]) -> None:
        """A result, handed over by a worker (on the loop's thread)."""
        if not self.arrived:
            self.first_arrival = self.clock()
        self.arrived.append(item)

    def ready(self, fd: int, events: int, now: float) -> None:
        return None

    def due(self, now: float) -> None:
        if self.arrived and now >= self.first_arrival + _COALESCE:
            arrived, self.arrived = self.arrived, []
            with self.batch():
                for rid, gen, kind, result in arrived:
                    self._finish(rid, gen, kind, result)
        checks = self.keeper.checks()
        for rid, h in self.health.items():
            if h.running:
                if h.started and now >= h.started + h.budget:
                    self.counters["overdue"] += 1
                    self._finish(rid, h.running, "overdue", CheckResult(
                        False, "check did not return in time", now - h.started
                    ))  # fmt: skip
                continue
            if now < h.next_due:
                continue
            v, i = checks[rid]
            self._start(rid, h, v, i, now)
        if self.health and now >= self.next_housekeeping:
            self.next_housekeeping = now + self.config.checkinterval
            self.keeper.resend_alerts()
            self._check_cfgfile()

    def _start(self, rid: str, h: Health, v: VirtualConfig, i: int, now: float) -> None:
        state = self.keeper.reals[rid]
        if v.checktype == "on":
            # Real servers are added without any checks (ldirectord: service_set up, no log).
            with self.keeper.session():
                index, j = self.keeper.checked(rid)
                self.keeper.service_set(index, j, "up")
            self._record(rid, h, CheckResult(True, "checktype on", 0.0), now)
            h.next_due = now + self._interval(v)
            self._first_done(rid)
            return
        if v.checktype == "negotiate" or state.num_connects >= v.num_connects:
            kind = "negotiate"
        elif v.checktype == "combined":
            kind = "connect"
        else:
            kind = v.checktype
        timeout = float(v.negotiatetimeout if kind == "negotiate" else v.checktimeout)
        tries = v.checkcount if kind == "ping" or (kind == "connect" and v.protocol == "udp") else 1
        self.generation += 1
        h.running = self.generation
        h.budget = timeout * tries + _GRACE
        h.started = 0.0
        target = target_of(v, i)
        maintdir = self.config.maintenancedir
        gen = self.generation
        dynamic = v.misc_dynamic

        def job() -> None:
            if h.running == gen:
                h.started = self.clock()  # a float store: safe to hand over without a lock
            if maintdir and _in_maintenance(maintdir, target.rip, target.rport):
                self.loop.call_soon(self._arrive, (rid, gen, "maintenance", None))
                return
            result = run_check(kind, target, timeout, dynamic)
            self.loop.call_soon(self._arrive, (rid, gen, kind, result))

        self.pool.submit(job)

    def _finish(self, rid: str, gen: int, kind: str, result: CheckResult | None) -> None:
        """A check's result, on the loop's thread."""
        h = self.health.get(rid)
        if h is None or h.running != gen:
            return  # from before a reload, or already counted as overdue
        h.running = 0
        now = self.clock()
        v, _ = self.keeper.checks()[rid]
        h.next_due = now + self._interval(v)
        state = self.keeper.reals[rid]
        if result is None:
            self.keeper.maintenance(rid)
            if h.state != "maintenance":
                h.state, h.since = "maintenance", time.time()
            h.reason, h.ok = "Server in maintenance", False
            self._first_done(rid)
            return
        if kind == "negotiate" and result.up:
            state.num_connects = 0
        elif v.checktype == "combined" and kind == "connect":
            state.num_connects = state.num_connects + 1 if result.up else 999999
        self.counters["checks"] += 1
        if not result.up:
            self.counters["failed"] += 1
        self.keeper.result(rid, result.up, result.reason, result.weight)
        self._record(rid, h, result, now)
        self._first_done(rid)

    def _record(self, rid: str, h: Health, result: CheckResult, now: float) -> None:
        h.checks += 1
        h.ok, h.reason, h.latency = result.up, result.reason, result.latency
        if not result.up:
            h.failures += 1
        state = "up" if self.keeper.is_up(rid) else "down"
        if state != h.state:
            h.state, h.since = state, time.time()

    def _first_done(self, rid: str) -> None:
        if rid in self.first_pass:
            self.first_pass.discard(rid)
            self._check_status()

    # -- check_cfgfile ------------------------------------------------------------------------

    def _cfg_stat(self) -> tuple[float, str] | None:
        path = self.config.source
        try:
            mtime = os.stat(path).st_mtime
            with open(path, "rb") as f:
                return mtime, hashlib.md5(f.read()).hexdigest()
        except OSError:
            return None

    def _check_cfgfile(self) -> None:
        """``check_cfgfile``: a changed file is reread with ``autoreload``, and ``callback`` is
        told of it either way."""
        if self.cfg_stat is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.config.source).st_mtime == self.cfg_stat[0]:
                return
        new = self._cfg_stat()
        if new is None or new[1] == self.cfg_stat[1]:
            if new is not None:
                self.cfg_stat = new
            return
        self.cfg_stat = new
        path = self.config.source
        log.info("Configuration file '%s' has changed on disk", path)
        callback = self.config.callback
        if self.config.autoreload and self.reload is not None:
            log.info(" - reread new configuration")
            self.reload()
        else:
            log.info(" - ignore new configuration")
        if callback and os.access(callback, os.X_OK):
            command = f"{callback} {path}"
            self.pool.submit(lambda: self.run_command(command))

    # -- effects (in the pool) ------------------------------------------------------------------

    @staticmethod
    def run_command(command: str) -> None:
        """``system_wrapper`` for fallbackcommand and callback: a shell command line."""
        try:
            subprocess.run(command, shell=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("%s: %s", command, exc)

    def send_alert(self, v: VirtualConfig, subject: str, status: str) -> None:
        """``ld_emailalert_send``'s mail: through ``smtp=`` (Net::SMTP) or the local sendmail."""
        hostname = socket.gethostname()
        user = "root"
        with contextlib.suppress(KeyError, ImportError):
            import pwd

            user = pwd.getpwuid(os.getuid()).pw_name
        sender = f"{user}@{hostname}"
        if v.servicename:
            subject = f"[{v.servicename}] {subject}"
        details = ""
        if v.servicename:
            details += f"Service name: {v.servicename}\n"
        if v.comment:
            details += f"Comment: {v.comment}\n"
        msg = EmailMessage()
        msg["From"] = self.config.emailalertfrom or sender
        msg["To"] = v.emailalert
        msg["Subject"] = subject
        body = f"ldirectord host: {hostname}\nLog-Message: {subject}\nDaemon-Status: {status}\n"
        if details:
            body += f"\n{details}\n"
        msg.set_content(body)
        try:
            if v.smtp:
                host, _, port = v.smtp.partition(":")
                with smtplib.SMTP(host, int(port) if port else 25, timeout=30) as smtp:
                    smtp.send_message(msg, from_addr=sender, to_addrs=[v.emailalert])
            else:
                sendmail = shutil.which("sendmail") or "/usr/sbin/sendmail"
                subprocess.run([sendmail, "-t"], input=msg.as_bytes(), timeout=30, check=True)
        except (OSError, smtplib.SMTPException, subprocess.SubprocessError, ValueError) as exc:
            log.info("failed to send %semail message: %s", "SMTP " if v.smtp else "", exc)

    # -- status and shutdown --------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """Every real server's health, for ``pylvs health`` and ``pylvs top``."""
        now = time.time()
        return [
            h.row(now, self.keeper.reals[rid].failcount if rid in self.keeper.reals else 0)
            for rid, h in self.health.items()
        ]

    def status(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for h in self.health.values():
            states[h.state] = states.get(h.state, 0) + 1
        running = sum(1 for h in self.health.values() if h.running)
        return {
            "reals": len(self.health),
            **states,
            "running": running,
            "workers": self.workers,
            "daemon_status": self.keeper.status,
            **self.counters,
        }

    def stop(self) -> None:
        """What ldirectord's stop does to the table (``cleanstop``)."""
        self.keeper.stop()

    def close(self) -> None:
        self.health = {}
        self.pool.close()
