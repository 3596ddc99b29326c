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

Connection synchronisation runs in the worker (:class:`pylvs.io.sync.SyncManager` on its
connection table, with its sockets; :class:`GroupSync` is the control plane's view of it). It
needs one connection table, and is refused with several workers.

Workers log through a pipe (:class:`WorkerLogs`): the daemon writes their records with its own
handlers, whatever they are at the time (a configuration's ``logfile`` may change them).

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
import pickle
import selectors
import signal
import struct
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
    DaemonInfo,
    DaemonSpec,
    DestInfo,
    IPVSError,
    ServiceInfo,
    ServiceSpec,
    Timeouts,
    addr_from_text,
)
from pylvs.core.engine import Engine
from pylvs.core.service import AF_INET, AF_INET6
from pylvs.io.sync import SyncManager, announce, announce_stop, unknown_interface

__all__ = ["EngineGroup", "GroupSync", "WorkerLogs", "WorkerPlane", "merge_services"]

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


def _refusal(exc: IPVSError) -> tuple[int, str, str, bool]:
    """An IPVSError as it crosses the pipe (the errno decides ipvsadm's message)."""
    return (exc.errno, exc.op, exc.detail, exc.limit)


def _apply(
    engine: Engine, plane: WorkerPlane, sync: SyncManager, op: str, args: tuple[Any, ...]
) -> Any:
    """One request in a worker."""
    if op == "stats":
        return plane.stats(), Counter(engine.counters)
    if op == "forget_hops":
        plane.forget_hops()
        return None
    if op == "sync_start":
        sync.start(args[0], quiet=True)  # the daemon announces it, once for all workers
        return None
    if op == "sync_stop":
        sync.stop(args[0], quiet=True)
        return None
    if op == "sync_status":
        return sync.status()
    result = getattr(engine, op)(*args)
    row = OPERATION_BY_NAME.get(op)
    if row is not None and row.rules:
        plane.set_services(engine.services())
        if op in ("add_dest", "edit_dest") and args[1].af in (AF_INET, AF_INET6):
            plane.prepare(addr_from_text(args[1].addr)[1])
    return result


class _PipeLogHandler(logging.Handler):
    """A worker's log records, written to the daemon's log pipe (see :class:`WorkerLogs`).

    One record per write of at most PIPE_BUF bytes, so records of several workers never mix; a
    full pipe loses the record rather than block the data plane."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        os.set_blocking(fd, False)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            fields = (record.name, record.levelno, text[:3000], record.process, record.created)
            data = pickle.dumps(fields, protocol=4)
            os.write(self.fd, struct.pack("=H", len(data)) + data)
        except (OSError, ValueError):
            pass  # the daemon is gone or its pipe is full: the record is lost


def _log_to_pipe(fd: int) -> None:
    root = logging.getLogger()
    for old in list(root.handlers):  # a forked worker inherited the daemon's handlers
        root.removeHandler(old)
    root.addHandler(_PipeLogHandler(fd))
    root.setLevel(logging.INFO)


def _worker_main(
    conn: Connection, make_plane: Callable[[Engine], WorkerPlane], log_fd: int
) -> None:
    """A worker process: its own engine, data plane and sync daemons; control operations
    arrive on ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # die with the daemon
    _log_to_pipe(log_fd)
    engine = Engine(kernel_forwards_nat=False, check_ip_checksum=True)
    sync = SyncManager(engine)
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
    watched: list[Any] = []  # the sync backup's socket, while one runs
    next_tick = 0.0
    try:
        while True:
            now = time.monotonic()
            if now >= next_tick:
                engine.tick(now)
                next_tick = now + 1.0
            wake = next_tick
            sync_due = sync.deadline()
            if sync_due is not None:
                if sync_due <= now:
                    sync.due(now)  # the master's full messages, or its 2-second-old buffer
                    sync_due = sync.deadline()
                if sync_due is not None:
                    wake = min(wake, max(sync_due, now + 0.001))
            for key, events in sel.select(max(0.0, wake - now)):
                if key.data == "rx":
                    plane.process()
                    continue
                if key.data == "sync":
                    sync.ready(key.fd, events, time.monotonic())
                    continue
                try:
                    op, args = conn.recv()
                except EOFError:
                    return
                try:
                    conn.send((True, _apply(engine, plane, sync, op, args)))
                except IPVSError as exc:
                    conn.send((False, _refusal(exc)))
                except Exception as exc:  # a bug: refuse the request, keep the packets flowing
                    log.exception("worker failed on %s", op)
                    conn.send((False, (errno.EIO, op, f"worker failed on {op}: {exc}", False)))
                if op.startswith("sync_"):
                    for sock in watched:
                        sel.unregister(sock)
                    watched = [sock for sock, _ in sync.watch()]
                    for sock in watched:
                        sel.register(sock, selectors.EVENT_READ, "sync")
    finally:
        sync.close()
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
        self.logs = WorkerLogs()
        self.sync = GroupSync(self)

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
                    for fd in (*close_fds, self.logs.read_fd):
                        with contextlib.suppress(OSError):
                            os.close(fd)
                    _worker_main(child, make_plane, self.logs.write_fd)
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
            fds = (child.fileno(), self.logs.write_fd)
            argv = [self.runtime, "-m", "pylvs.io.workers", *map(str, fds)]
            try:
                # close_fds: only the pipes' ends are inherited, never the control socket; and
                # no standard stream of pylvsd's (a detaching pylvsd's caller waits for their
                # end): the worker logs through its pipe.
                proc = subprocess.Popen(
                    argv,
                    pass_fds=fds,
                    close_fds=True,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
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
        self.logs.drain()  # the workers' last words
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
                if isinstance(value, tuple):  # an IPVSError: the same errno, op and detail
                    err, what, detail, limit = value
                    raise IPVSError(err, what, detail, limit)
                raise IPVSError(errno.EIO, op, f"worker refused {op}: {value}")
            results.append(value)
        return results

    def call_one(self, index: int, op: str, *args: Any) -> Any:
        """``op`` in one worker."""
        conn = self.conns_to_workers[index]
        conn.send((op, args))
        try:
            ok, value = conn.recv()
        except EOFError:
            raise IPVSError(errno.EIO, op, "a data-plane worker has exited") from None
        if not ok:
            err, what, detail, limit = value
            raise IPVSError(err, what, detail, limit)
        return value

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


class GroupSync:
    """The sync daemons of the one worker, with :class:`pylvs.io.sync.SyncManager`'s interface.

    The worker runs them on its connection table, with its sockets and the master's timers, so
    this component watches nothing."""

    name = "sync"

    def __init__(self, group: EngineGroup) -> None:
        self.group = group

    def start(self, spec: DaemonSpec) -> None:
        if self.group.workers > 1:
            # Each worker has its own table; a backup could not know which worker the fanout
            # gives a client after a failover.
            detail = (
                "connection synchronisation needs one connection table: pylvsd runs "
                f"--backend afpacket --workers {self.group.workers} (use --workers 1)"
            )
            raise IPVSError(errno.EINVAL, "start_daemon", detail, limit=True)
        try:
            self.group.call_one(0, "sync_start", spec)
        except IPVSError as exc:
            if exc.errno == errno.ENODEV:
                unknown_interface(spec.mcast_ifn)
            raise
        announce(self.daemons_by_state()[spec.state])

    def stop(self, state: str) -> None:
        self.group._call("sync_stop", state)
        announce_stop(state)

    def daemons(self) -> list[DaemonInfo]:
        if not self.group.conns_to_workers:
            return []
        result: list[DaemonInfo] = self.group.call_one(0, "daemons")
        return result

    def daemons_by_state(self) -> dict[str, DaemonInfo]:
        return {d.state: d for d in self.daemons()}

    # -- Component ----------------------------------------------------------------------------

    def watch(self) -> Sequence[tuple[Any, int]]:
        return ()

    def deadline(self) -> float | None:
        return None

    def ready(self, fd: int, events: int, now: float) -> None:
        return None

    def due(self, now: float) -> None:
        return None

    def status(self) -> dict[str, Any]:
        """The workers' socket counters, summed."""
        if not self.group.conns_to_workers:
            return {}
        total: dict[str, Counter[str]] = {}
        for part in self.group._call("sync_status"):
            for state, counters in part.items():
                total.setdefault(state, Counter()).update(counters)
        return {state: dict(counters) for state, counters in total.items()}

    def close(self) -> None:
        return None  # the workers close their sockets when they stop


class WorkerLogs:
    """The read end of the workers' log pipe, a component of the daemon's loop: every record a
    worker wrote is handled here by the daemon's handlers of the moment (with the worker's pid
    and time)."""

    name = "worker-logs"

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self.read_fd, False)
        self._buffer = b""

    def drain(self) -> None:
        while self.read_fd >= 0:
            try:
                chunk = os.read(self.read_fd, 65536)
            except OSError:  # EAGAIN: all read
                break
            if not chunk:
                break
            self._buffer += chunk
        buf = self._buffer
        while len(buf) >= 2:
            (size,) = struct.unpack_from("=H", buf)
            if len(buf) < 2 + size:
                break
            name, level, text, pid, created = pickle.loads(buf[2 : 2 + size])
            buf = buf[2 + size :]
            fields = {"name": name, "levelno": level, "levelname": logging.getLevelName(level)}
            fields.update(msg=text, process=pid, created=created)
            logging.getLogger(name).handle(logging.makeLogRecord(fields))
        self._buffer = buf

    # -- Component ----------------------------------------------------------------------------

    def watch(self) -> Sequence[tuple[int, int]]:
        return ((self.read_fd, selectors.EVENT_READ),)

    def deadline(self) -> float | None:
        return None

    def ready(self, fd: int, events: int, now: float) -> None:
        self.drain()

    def due(self, now: float) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.drain()
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                os.close(fd)
        self.read_fd = self.write_fd = -1


def _spawned_main(fd: int, log_fd: int) -> int:
    """``python -m pylvs.io.workers FD LOGFD``: a worker started on another interpreter."""
    _log_to_pipe(log_fd)  # its standard streams go nowhere
    try:
        return _spawned_worker(fd, log_fd)
    except BaseException:
        log.exception("data-plane worker failed")
        return 1


def _spawned_worker(fd: int, log_fd: int) -> int:
    conn = Connection(fd)
    plane_args = conn.recv()
    # The first message names the data plane: ("nfqueue", ARGS) or ("afpacket", ARGS), or is
    # the AF_PACKET plane's arguments alone. Imported here: both modules import this one.
    make_plane: Callable[[Engine], WorkerPlane]
    if plane_args and plane_args[0] == "nfqueue":
        from pylvs.io.nfqueue import NfqueuePlane

        queue_args = plane_args[1]
        make_plane = lambda engine: NfqueuePlane(engine, *queue_args)  # noqa: E731
    else:
        from pylvs.io.afpacket import DataPlane

        if plane_args and plane_args[0] == "afpacket":
            plane_args = plane_args[1]
        make_plane = lambda engine: DataPlane(engine, *plane_args)  # noqa: E731
    _worker_main(conn, make_plane, log_fd)
    return 0


if __name__ == "__main__":
    sys.exit(_spawned_main(int(sys.argv[1]), int(sys.argv[2])))
