"""pylvsd's loop of components: the director daemon of one network namespace.

:class:`Daemon` builds the engine (one :class:`~pylvs.core.engine.Engine`, or an
:class:`~pylvs.io.workers.EngineGroup` of data-plane worker processes), the backend that feeds
it, the :class:`~pylvs.director.Director` that serves the control operations, and runs them in one
:class:`~pylvs.loop.Loop`. Its components, in the order they are added:

==========  ====================================================================================
backend     the data plane (NFQUEUE or AF_PACKET): one batch of packets per turn
control     the control socket (:mod:`pylvs.ctl`) and its clients, never blocking
sync        connection synchronisation (:mod:`pylvs.ha.sync`): backup socket, master deadline
routes      rtnetlink changes -> real-server paths and next hops (:mod:`pylvs.routes`)
engine      the engine's timers (connection expiry, rate estimator) every second
==========  ====================================================================================

The engine is touched only by the loop's thread; threads (health checks, heartbeat) hand their
results over with :meth:`Loop.call_soon`. Signals wake the loop (SIGTERM/SIGINT stop it, SIGHUP
reloads ``config``).

Host state it owns and removes on stop: the iptables chains of the backend, and, with NFQUEUE,
``net.ipv4.ip_forward`` and ``net.ipv4.conf.all.accept_local`` (set to 1 while a masquerading
real server is configured, then restored; recorded by :mod:`pylvs.hoststate` for a crash).
The entry point (argument parsing, detaching, logging) is :mod:`pylvs.cli.pylvsd`.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from pylvs import hoststate
from pylvs.core.control import DestSpec, IPVSError, ServiceSpec, Timeouts
from pylvs.core.engine import Engine
from pylvs.ctl import DEFAULT_SOCKET, ControlServer
from pylvs.director import Director, reconcile
from pylvs.io import netcfg
from pylvs.io.afpacket import AfpacketBackend
from pylvs.io.backend import Backend, BackendError
from pylvs.io.nfqueue import NfqueueBackend
from pylvs.io.workers import EngineGroup
from pylvs.loop import Loop, Timer
from pylvs.routes import RouteTracker

__all__ = ["Daemon", "DaemonError", "DaemonOptions", "runtime"]

log = logging.getLogger("pylvs.daemon")

_TICK = 1.0


class DaemonError(Exception):
    """pylvsd cannot start or go on as configured; the message is for the operator."""


@dataclass
class DaemonOptions:
    """What pylvsd runs with (the command line of :mod:`pylvs.cli.pylvsd`)."""

    config: str | None = None
    socket: str = DEFAULT_SOCKET
    backend: str = "nfqueue"
    workers: int = 1
    queue_num: int = 0
    queue_bypass: bool = True
    ifaces: Sequence[str] = field(default_factory=tuple)
    strict_routes: bool = False


def runtime() -> str:
    """The Python that runs the daemon (shown in the status)."""
    return f"{platform.python_implementation()} {platform.python_version()}"


def _load_config(path: str) -> tuple[list[tuple[ServiceSpec, list[DestSpec]]], Timeouts | None]:
    # Imported here: a broken or missing config module must not stop a daemon without a config.
    from pylvs.config import load

    config = load(path)
    return config.services(), config.timeouts


class Daemon:
    """The loop and its components (see the module docstring)."""

    def __init__(self, options: DaemonOptions) -> None:
        self.options = options
        self.loop = Loop()
        self.engine: Engine | EngineGroup
        self.backend: Backend
        if options.backend == "afpacket":
            if options.workers > 1:
                self.engine = EngineGroup(options.workers)
            else:
                # pylvs forwards everything itself: it decrements TTLs and checks IP checksums.
                self.engine = Engine(kernel_forwards_nat=False, check_ip_checksum=True)
            self.backend = AfpacketBackend(self.engine, ifaces=options.ifaces)
        else:
            engine = Engine()
            self.engine = engine
            self.backend = NfqueueBackend(
                engine,
                queue_num=options.queue_num,
                bypass=options.queue_bypass,
                ifaces=options.ifaces,
            )
        self.director = Director(
            self.engine,
            self.backend,
            strict_routes=options.strict_routes,
            remember_sysctls=lambda saved: hoststate.save(options.socket, saved),
        )
        self.control: ControlServer | None = None
        self.running = True
        self._reload = False

    def start(self) -> None:
        """Everything that can fail because of the host or the configuration (DaemonError)."""
        for name in self.options.ifaces:
            if not netcfg.link_exists(name):
                raise DaemonError(f"unknown interface {name!r}")
        try:
            # The control socket first: if another pylvsd owns this namespace, touch nothing.
            self.control = ControlServer(
                self.director,
                self.options.socket,
                extra={"ping": lambda: "pong", "status": self.status},
            )
        except OSError as exc:
            raise DaemonError(str(exc.strerror or exc)) from None
        # What a crashed pylvsd of this namespace left: its sysctls (its rules are replaced).
        restored = hoststate.restore(self.options.socket)
        if restored:
            log.info("restored what a previous pylvsd left: %s", restored)
        # Worker processes must not hold the control socket (a new pylvsd could not bind it).
        keep_out = [self.control.listener.fileno(), *self.loop.own_fds()]
        try:
            self.backend.open(close_in_children=keep_out)
        except BackendError as exc:
            raise DaemonError(str(exc)) from None
        try:
            routes = RouteTracker(self.director)
        except OSError as exc:
            raise DaemonError(f"cannot follow route changes: {exc.strerror or exc}") from None
        for component in (
            self.backend,
            self.control,
            self.director.sync,
            routes,
            Timer("engine", _TICK, self.engine.tick),
        ):
            self.loop.add(component)
        if self.options.config:
            try:
                services, timeouts = _load_config(self.options.config)
            except Exception as exc:
                # ConfigError messages name the file and line already.
                raise DaemonError(str(exc)) from None
            try:
                if timeouts is not None:
                    self.director.set_timeouts(timeouts)
                reconcile(self.director, services)
            except IPVSError as exc:
                raise DaemonError(f"{self.options.config}: {exc}") from None

    def status(self) -> dict[str, Any]:
        components = self.loop.status()
        backend = components.pop(self.backend.name, {})
        return {
            "pid": os.getpid(),
            "runtime": runtime(),
            **backend,
            "engine": dict(self.engine.counters),
            "director": self.director.status(),
            "components": components,
        }

    def reload(self) -> None:
        path = self.options.config
        if not path:
            log.info("SIGHUP: no config file, nothing to reload")
            return
        try:
            services, timeouts = _load_config(path)
            if timeouts is not None:
                self.director.set_timeouts(timeouts)
            ops = reconcile(self.director, services)
        except Exception as exc:
            log.error("reload of %s failed, keeping the running configuration: %s", path, exc)
            return
        log.info("reloaded %s: %d virtual services, %d changes", path, len(services), ops)

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self.running = False

    def run(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._signal)
        signal.set_wakeup_fd(self.loop.wakeup_fd(), warn_on_full_buffer=False)
        log.info(
            "pylvsd ready: backend %s (%s), control socket @%s; components: %s",
            self.backend.name,
            runtime(),
            self.options.socket,
            ", ".join(c.name for c in self.loop.components),
        )
        try:
            while self.running:
                self.loop.run_once()
                if self._reload:
                    self._reload = False
                    self.reload()
        finally:
            signal.set_wakeup_fd(-1)
        log.info("pylvsd stopping: removing rules")

    def stop(self) -> None:
        """Remove everything installed; safe after a partial start."""
        self.loop.close()  # closes every component added (backend: its rules go)
        if self.control is not None and self.control not in self.loop.components:
            self.control.close()
        self.control = None
        self.director.sync.close()
        self.backend.close()
        self.director.restore()
