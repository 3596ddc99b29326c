"""pylvsd's keepalived checker component: keepalived's "check" process inside the loop.

:class:`KaMonitor` is a :class:`~pylvs.loop.Component`, the keepalived counterpart of
:class:`~pylvs.health.monitor.HealthMonitor`. On the loop's thread it schedules every checker of
the keepalived.conf on its own timer, as keepalived's scheduler does (check_api.c
``register_checkers_thread``: the first run after one second plus a random part of ``warmup``;
then ``delay_loop``, or ``delay_before_retry`` while retrying), and hands each result to
:class:`~pylvs.health.kakeeper.KaKeeper`, which changes the table. The checks block, so they run
in the same :class:`~pylvs.health.monitor.WorkerPool` the ldirectord checks use, and come back
with :meth:`Loop.call_soon`; a check that has not returned a second after its own time bound
counts as failed. Notify scripts (``notify_up``/``notify_down``, ``quorum_up``/``quorum_down``)
run in the pool too, never on the loop's thread.

FILE_CHECKs are not scheduled: the track files they follow are watched with inotify (the
component's file descriptor in the loop), and a change goes to the keeper at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import selectors
import shlex
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from pylvs.config.kamodel import FileCheck, HttpCheck, MiscCheck, SmtpCheck
from pylvs.config.model import Config
from pylvs.health.check import CheckResult
from pylvs.health.kakeeper import CheckerState, KaKeeper
from pylvs.health.keepalived import KaResult, run_checker
from pylvs.health.keepalived.conn import target_of
from pylvs.health.keepalived.file import TrackFileWatch, init_track_file
from pylvs.health.keeper import Table
from pylvs.health.monitor import DEFAULT_WORKERS, Health, WorkerPool
from pylvs.loop import Loop

__all__ = ["BOOTSTRAP_DELAY", "KaMonitor"]

log = logging.getLogger("pylvs.keepalived")

BOOTSTRAP_DELAY = 1.0  # check_api.c: TIMER_HZ before the first run
_GRACE = 1.0  # seconds past its own bound before a check counts as failed
_SCRIPT_TIMEOUT = 60.0  # a notify script still running then is killed


@dataclass
class _Run(Health):
    """One checker's schedule and what ``pylvs health`` shows of it: the ldirectord checks'
    :class:`~pylvs.health.monitor.Health`, kept per checker rather than per real server."""

    ck: CheckerState = field(kw_only=True)


def _budget(ck: CheckerState) -> float:
    c = ck.model
    if isinstance(c, MiscCheck):
        return (c.misc_timeout if c.misc_timeout is not None else c.delay_loop) + _GRACE
    n = 1
    if isinstance(c, HttpCheck):
        n = max(1, len(c.urls))
    elif isinstance(c, SmtpCheck):
        n = max(1, len(c.hosts))
    return c.connect_timeout * n + _GRACE


class _Effects:
    def __init__(self, monitor: KaMonitor) -> None:
        self.monitor = monitor

    def script(self, command: str, wait: float | None = None) -> None:
        if wait is not None:  # stopping: run it now, bounded (system_call_script, TIMER_HZ)
            run_script(command, wait)
            return
        self.monitor.pool.submit(lambda: run_script(command, _SCRIPT_TIMEOUT))


def run_script(command: str, timeout: float) -> None:
    """``notify_exec``: the script's words run without a shell."""
    argv = shlex.split(command)
    if not argv:
        return
    try:
        subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.error("script %s: %s", command, exc)


class KaMonitor:
    """The keepalived checker component (see the module docstring)."""

    name = "ka-checker"

    def __init__(
        self,
        table: Table,
        loop: Loop,
        workers: int = DEFAULT_WORKERS,
        clock: Callable[[], float] = time.monotonic,
        batch: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.loop = loop
        self.clock = clock
        self.batch = batch
        self.rand = rand
        self.workers = workers
        self.pool = WorkerPool(workers)
        self.keeper = KaKeeper(table, _Effects(self))
        self.runs: list[_Run] = []
        self.tracking: TrackFileWatch | None = None
        self.generation = 0
        self.counters = {"checks": 0, "failed": 0, "overdue": 0, "reloads": 0}

    # -- configuration ----------------------------------------------------------------------

    def apply(self, config: Config | None, reloading: bool = False) -> None:
        """Start (or reload, keeping the alive states) the checkers of ``config``'s
        keepalived.conf; ``None`` or a configuration of another kind stops them."""
        if config is None or config.keepalived is None:
            if self.keeper.virtuals:
                self.keeper.stop()
            self.runs = []
            self._close_tracking()
            return
        old = {r.ck.ident(): r for r in self.runs}
        self.keeper.start(config, self._watch_track_files(config, bool(self.keeper.virtuals)))
        now = self.clock()
        self.runs = []
        for ck in self.keeper.checkers:
            c = ck.model
            r = old.get(ck.ident())
            if r is None:
                r = _Run(ck=ck, check=ck.kind, real=ck.rs.name, virtuals=[ck.vs.name])
            r.ck = ck
            r.running = 0  # a run of the old configuration reports to nobody
            # register_checkers_thread: one second, then a random part of warmup. A FILE_CHECK
            # is never run: its file is watched.
            r.next_due = now + BOOTSTRAP_DELAY + c.warmup * self.rand()
            if isinstance(c, FileCheck):
                r.next_due, r.checks = math.inf, 1
                r.ok, r.reason = ck.is_up, _track_reason(ck)
            r.budget = _budget(ck)
            self._state(r)
            self.runs.append(r)
        if reloading:
            self.counters["reloads"] += 1

    # -- the loop's side --------------------------------------------------------------------

    def _watch_track_files(self, config: Config, reload: bool) -> dict[str, int]:
        """init_file for every track_file, then inotify on those a FILE_CHECK follows
        (init_track_files); the values read, by name."""
        ka = config.keepalived
        assert ka is not None
        self._close_tracking()
        for tf in ka.track_files.values():
            init_track_file(tf, reload)
        used = {
            c.track_file
            for vs in ka.virtual_servers
            for rs in vs.real_servers
            for c in rs.checkers
            if isinstance(c, FileCheck)
        }
        files = [tf for name, tf in ka.track_files.items() if name in used]
        if not files:
            return {}
        self.tracking = TrackFileWatch(files)
        return dict(self.tracking.values)

    def _close_tracking(self) -> None:
        if self.tracking is not None:
            self.tracking.close()
            self.tracking = None

    def watch(self) -> list[tuple[Any, int]]:
        fd = self.tracking.fileno() if self.tracking is not None else None
        return [(fd, selectors.EVENT_READ)] if fd is not None else []

    def deadline(self) -> float | None:
        times = []
        for r in self.runs:
            if not r.running and r.next_due != math.inf:
                times.append(r.next_due)
            elif r.running and r.started:
                times.append(r.started + r.budget)
        return min(times) if times else None

    def ready(self, fd: int, events: int, now: float) -> None:
        """A track file changed (process_inotify)."""
        if self.tracking is None:
            return
        changes = self.tracking.changes()
        if not changes:
            return
        with self.batch():
            for name, value in changes:
                self.keeper.file_changed(name, value)
        for r in self.runs:
            if isinstance(r.ck.model, FileCheck):
                r.ok, r.reason = r.ck.is_up, _track_reason(r.ck)
            self._state(r)

    def due(self, now: float) -> None:
        for r in self.runs:
            if r.running:
                if r.started and now >= r.started + r.budget:
                    self.counters["overdue"] += 1
                    # A script still running is keepalived's misc_timeout: "timed out".
                    late = KaResult(
                        False,
                        "check did not return in time",
                        now - r.started,
                        timed_out=isinstance(r.ck.model, MiscCheck),
                    )
                    self._finish(r, r.running, late)
                continue
            if now >= r.next_due and r.next_due != math.inf:
                self._submit(r)

    def _submit(self, r: _Run) -> None:
        self.generation += 1
        gen = r.running = self.generation
        r.started = 0.0
        ck = r.ck
        port = ck.rs.dests[0].port if ck.rs.dests else ck.rs.model.port
        vhost = ck.rs.model.virtualhost or ck.vs.model.virtualhost
        target = target_of(ck.model, ck.rs.model.addr, port, ck.vs.name, ck.rs.name, vhost)
        model = ck.model

        def job() -> None:
            if r.running == gen:
                r.started = self.clock()
            result = run_checker(model, target)
            self.loop.call_soon(self._arrive, r, gen, result)

        self.pool.submit(job)

    def _arrive(self, r: _Run, gen: int, result: CheckResult) -> None:
        with self.batch():
            self._finish(r, gen, result)

    def _finish(self, r: _Run, gen: int, result: CheckResult) -> None:
        if r.running != gen or r not in self.runs:
            return  # from before a reload, or already counted as overdue
        r.running = 0
        self.counters["checks"] += 1
        if not result.up:
            self.counters["failed"] += 1
            r.failures += 1
        code = result.weight if isinstance(r.ck.model, MiscCheck) else None
        ka = result if isinstance(result, KaResult) else KaResult(**vars(result))
        delay = self.keeper.result(
            r.ck,
            ka.up,
            ka.reason,
            exit_code=code,
            lines=ka.lines,
            signal=ka.signal,
            timed_out=ka.timed_out,
        )
        r.next_due = self.clock() + delay
        r.checks += 1
        r.ok, r.reason, r.latency = result.up, result.reason, result.latency
        for other in self.runs:  # every checker of that real shows its state
            if other.ck.rs is r.ck.rs:
                self._state(other)

    @staticmethod
    def _state(r: _Run) -> None:
        state = "up" if r.ck.rs.alive else "down"
        if not r.ck.has_run and r.checks == 0 and r.state == "unchecked":
            return
        if state != r.state:
            r.state, r.since = state, time.time()

    # -- status and shutdown --------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """Every checker, in ``pylvs health``'s row shape."""
        now = time.time()
        return [r.row(now, r.ck.retry_it) for r in self.runs]

    def status(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for r in self.runs:
            states[r.state] = states.get(r.state, 0) + 1
        return {
            "checkers": len(self.runs),
            **states,
            "running": sum(1 for r in self.runs if r.running),
            "workers": self.workers,
            **self.counters,
        }

    def stop(self) -> None:
        """keepalived's ``clear_services`` at shutdown."""
        self.keeper.stop()
        self.runs = []
        self._close_tracking()

    def close(self) -> None:
        self.runs = []
        self._close_tracking()
        self.pool.close()


def _track_reason(ck: CheckerState) -> str:
    """What ``pylvs health`` says of a FILE_CHECK: its file's value and what it adds."""
    tf = ck.track
    if tf is None:
        return ""
    return f"{tf.model.path} = {tf.last_status} (weight {ck.cur_weight:+d})"
