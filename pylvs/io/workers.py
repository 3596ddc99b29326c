"""Data-plane worker processes: N engines that share the traffic, seen by the control plane as one.

With ``pylvsd --backend afpacket --workers N`` (N > 1) the packets are handled by N forked
processes. Each has its own :class:`~pylvs.core.engine.Engine` and its own data plane (receive
rings joined to a fanout group whose program sends both directions of a client's connections to
the same worker, :func:`pylvs.io.rings.client_hash_program`). :class:`EngineGroup` is what the
daemon holds instead of one engine:

* every operation of :data:`pylvs.core.control.OPERATIONS` marked ``replicated`` is applied to a
  local engine first (validation, with the errno a single engine would give, before any worker
  sees it) and then to every worker, which narrows its filters when the row says ``rules``;
* listings are merged: counters, rates and connection counts summed
  (:func:`merge_services`), connection lists concatenated.

A scheduler runs per worker, so rr or wrr go round per worker and the overall order interleaves.
Connection synchronisation needs one connection table and is refused with workers.

With a ``runtime`` (a Python executable, e.g. the PyPy environment's), the workers are not forked
but started as ``RUNTIME -m pylvs.io.workers FD``: the data plane then runs on that interpreter
(PyPy runs the engine several times faster), while the control plane stays where it is. The
worker receives its data plane's parameters as its first message; everything else is the same
pipe protocol (pickle, which CPython 3.11 and PyPy 3.9 share).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any, Protocol

from pylvs.core.control import (
    OPERATION_BY_NAME,
    ConnInfo,
    DestInfo,
    IPVSError,
    ServiceInfo,
    ServiceSpec,
    Timeouts,
    addr_from_text,
)
from pylvs.core.engine import Engine
from pylvs.core.service import AF_INET

__all__ = ["EngineGroup", "WorkerPlane", "merge_services"]

log = logging.getLogger("pylvs.workers")

_PR_SET_PDEATHSIG = 1
# Operations of the engine that are not control-socket rows but are replicated all the same.
_INTERNAL_REPLICATED = frozenset({"set_path", "set_paths"})


class WorkerPlane(Protocol):
    """What a worker drives: its data plane (see :class:`pylvs.io.afpacket.DataPlane`)."""

    def open(self) -> None: ...
    def filenos(self) -> list[int]: ...
    def process(self, budget: int = 4096) -> int: ...
    def set_services(self, services: Sequence[ServiceInfo]) -> None: ...
    def prepare(self, addr: int) -> None: ...
    def forget_hops(self) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def close(self) -> None: ...


def _apply(engine: Engine, plane: WorkerPlane, op: str, args: tuple[Any, ...]) -> Any:
    """One request in a worker."""
    if op == "stats":
        return plane.stats(), Counter(engine.counters)
    if op == "forget_hops":
        plane.forget_hops()
        return None
    result = getattr(engine, op)(*args)
    row = OPERATION_BY_NAME.get(op)
    if row is not None and row.rules:
        plane.set_services(engine.services())
        if op in ("add_dest", "edit_dest") and args[1].af == AF_INET:
            plane.prepare(addr_from_text(args[1].addr)[1])
    return result


def _worker_main(conn: Connection, make_plane: Callable[[Engine], WorkerPlane]) -> None:
    """A worker process: its own engine and data plane; control operations arrive on ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # die with the daemon
    engine = Engine(kernel_forwards_nat=False, check_ip_checksum=True)
    plane = make_plane(engine)
    try:
        plane.open()
    except Exception as exc:
        conn.send((False, str(exc)))
        return
    conn.send((True, None))
    sel = selectors.DefaultSelector()
    for fd in plane.filenos():
        sel.register(fd, selectors.EVENT_READ, "rx")
    sel.register(conn.fileno(), selectors.EVENT_READ, "ctl")
    next_tick = 0.0
    try:
        while True:
            now = time.monotonic()
            if now >= next_tick:
                engine.tick(now)
                next_tick = now + 1.0
            for key, _ in sel.select(max(0.0, next_tick - now)):
                if key.data == "rx":
                    plane.process()
                    continue
                try:
                    op, args = conn.recv()
                except EOFError:
                    return
                try:
                    conn.send((True, _apply(engine, plane, op, args)))
                except IPVSError as exc:
                    conn.send((False, f"{exc.errno}:{exc}"))
    finally:
        plane.close()


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, int, int, int, int]:
    s = [x + y for x, y in zip(a, b)]  # noqa: B905 - both are the five IPVS counters
    return (s[0], s[1], s[2], s[3], s[4])


def merge_services(lists: Sequence[Sequence[ServiceInfo]]) -> list[ServiceInfo]:
    """Sum the counters of the same services (and real servers) seen by every worker.

    Every worker applied the same operations in the same order, so the lists line up.
    """
    merged = [dataclasses.replace(s, dests=list(s.dests)) for s in lists[0]]
    for other in lists[1:]:
        for i, svc in enumerate(other):
            m = merged[i]
            m.stats = _add(m.stats, svc.stats)
            m.rates = _add(m.rates, svc.rates)
            dests: list[DestInfo] = []
            for md, d in zip(m.dests, svc.dests):  # noqa: B905 - the same dests in order
                dests.append(
                    dataclasses.replace(
                        md,
                        activeconns=md.activeconns + d.activeconns,
                        inactconns=md.inactconns + d.inactconns,
                        persistconns=md.persistconns + d.persistconns,
                        stats=_add(md.stats, d.stats),
                        rates=_add(md.rates, d.rates),
                    )
                )
            m.dests = dests
    return merged


class EngineGroup:
    """The control plane's view of several worker engines, with the engine's control methods."""

    def __init__(self, workers: int, runtime: str | None = None) -> None:
        self.workers = workers
        self.runtime = runtime  # None: forked workers (this interpreter)
        self.local = Engine(kernel_forwards_nat=False, check_ip_checksum=True)
        self.conns_to_workers: list[Connection] = []
        self.pids: list[int] = []
        self._procs: list[subprocess.Popen[bytes]] = []

    # -- the processes ----------------------------------------------------------------------------

    def start(
        self,
        make_plane: Callable[[Engine], WorkerPlane],
        close_fds: Sequence[int],
        plane_args: tuple[Any, ...] = (),
    ) -> None:
        """Start the workers; each builds its data plane with ``make_plane(engine)`` (forked), or
        with the AF_PACKET data plane of ``plane_args`` (on :attr:`runtime`).
        ``close_fds``: the parent's descriptors a worker must not keep (the control socket)."""
        if self.runtime is not None:
            self._spawn(plane_args)
            return
        for _ in range(self.workers):
            parent, child = Pipe()
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    parent.close()
                    for fd in close_fds:
                        with contextlib.suppress(OSError):
                            os.close(fd)
                    _worker_main(child, make_plane)
                except BaseException:
                    log.exception("worker failed")
                    code = 1
                finally:
                    os._exit(code)
            child.close()
            self.pids.append(pid)
            ok, message = parent.recv()
            if not ok:
                raise OSError(errno.EIO, str(message))
            self.conns_to_workers.append(parent)

    def _spawn(self, plane_args: tuple[Any, ...]) -> None:
        assert self.runtime is not None
        for _ in range(self.workers):
            parent, child = Pipe()
            argv = [self.runtime, "-m", "pylvs.io.workers", str(child.fileno())]
            try:
                # close_fds: only the pipe's end is inherited, never the control socket
                proc = subprocess.Popen(argv, pass_fds=(child.fileno(),), close_fds=True)
            except OSError as exc:
                raise OSError(exc.errno or errno.EIO, f"{self.runtime}: {exc.strerror}") from None
            child.close()
            self._procs.append(proc)
            self.pids.append(proc.pid)
            parent.send(plane_args)
            if not parent.poll(30.0):
                raise OSError(errno.EIO, f"a worker on {self.runtime} did not start")
            try:
                ok, message = parent.recv()
            except EOFError:
                raise OSError(errno.EIO, f"a worker on {self.runtime} exited at start") from None
            if not ok:
                raise OSError(errno.EIO, str(message))
            self.conns_to_workers.append(parent)

    def stop(self) -> None:
        for conn in self.conns_to_workers:
            conn.close()  # EOF: the worker leaves its loop
        self.conns_to_workers.clear()
        for proc in self._procs:
            try:
                proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._procs:
            self._procs.clear()
            self.pids.clear()
        for pid in self.pids:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                done, _status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.02)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        self.pids.clear()

    def _call(self, op: str, *args: Any) -> list[Any]:
        results = []
        for conn in self.conns_to_workers:
            conn.send((op, args))
        for conn in self.conns_to_workers:
            try:
                ok, value = conn.recv()
            except EOFError:
                raise IPVSError(errno.EIO, op, "a data-plane worker has exited") from None
            if not ok:
                raise IPVSError(errno.EIO, op, f"worker refused {op}: {value}")
            results.append(value)
        return results

    # -- the operations -------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Callable[..., Any]:
        row = OPERATION_BY_NAME.get(name)
        if (row is None or not row.replicated) and name not in _INTERNAL_REPLICATED:
            raise AttributeError(name)

        def replicated(*args: Any) -> None:
            getattr(self.local, name)(*args)  # raises IPVSError with IPVS's errno, first
            self._call(name, *args)

        return replicated

    def get_timeouts(self) -> Timeouts:
        return self.local.get_timeouts()

    def services(self) -> list[ServiceInfo]:
        if not self.conns_to_workers:
            return self.local.services()
        return merge_services(self._call("services"))

    def get_service(self, spec: ServiceSpec) -> ServiceInfo:
        self.local.get_service(spec)  # the errno for an unknown service
        return merge_services([[info] for info in self._call("get_service", spec)])[0]

    def conns(self) -> list[ConnInfo]:
        return [c for part in self._call("conns") for c in part]

    def total_stats(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        parts = self._call("total_stats")
        stats = tuple(sum(p[0][i] for p in parts) for i in range(5))
        rates = tuple(sum(p[1][i] for p in parts) for i in range(5))
        return stats, rates

    def tick(self, now: float) -> None:
        self.local.tick(now)  # workers run their own timers

    def forget_hops(self) -> None:
        self._call("forget_hops")

    @property
    def counters(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for _stats, counters in self._call("stats"):
            total.update(counters)
        return total

    def worker_stats(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for stats, _counters in self._call("stats"):
            total.update(stats)
        return dict(total)


def _spawned_main(fd: int) -> int:
    """``python -m pylvs.io.workers FD``: a worker started on another interpreter."""
    conn = Connection(fd)
    plane_args = conn.recv()
    from pylvs.io.afpacket import DataPlane  # here: afpacket imports this module

    _worker_main(conn, lambda engine: DataPlane(engine, *plane_args))
    return 0


if __name__ == "__main__":
    sys.exit(_spawned_main(int(sys.argv[1])))
