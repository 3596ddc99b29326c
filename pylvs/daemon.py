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
health      ldirectord's checks and what they do to the table (:mod:`pylvs.health.monitor`),
            the checks themselves in a bounded thread pool
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

import contextlib
import logging
import logging.handlers
import os
import platform
import resource
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from pylvs import __version__, hoststate
from pylvs.core.control import IPVSError
from pylvs.core.engine import Engine
from pylvs.ctl import DEFAULT_SOCKET, ControlServer
from pylvs.director import Director
from pylvs.health.monitor import DEFAULT_WORKERS, HealthMonitor
from pylvs.io import netcfg
from pylvs.io.afpacket import AfpacketBackend
from pylvs.io.backend import Backend, BackendError
from pylvs.io.nfqueue import NfqueueBackend
from pylvs.io.workers import EngineGroup
from pylvs.loop import Loop, Timer
from pylvs.routes import RouteTracker

if TYPE_CHECKING:
    from pylvs.config import Config

__all__ = ["Daemon", "DaemonError", "DaemonOptions", "runtime"]

log = logging.getLogger("pylvs.daemon")

_TICK = 1.0


# Descriptors pylvsd wants: the control socket's clients (MAX_CLIENTS) besides the backend's.
_NOFILE = 4096


def _raise_nofile(wanted: int) -> None:
    """Raise the soft descriptor limit (often 1024) towards ``wanted``, within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


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
    check_workers: int = DEFAULT_WORKERS


def runtime() -> str:
    """The Python that runs the daemon (shown in the status)."""
    return f"{platform.python_implementation()} {platform.python_version()}"


def _load_config(path: str) -> Config:
    # Imported here: a broken or missing config module must not stop a daemon without a config.
    from pylvs.config import load

    return load(path)


def _tell(config: Config) -> None:
    """Log what ldirectord would say of the file."""
    for warning in config.warnings:
        log.warning("%s", warning)


class _LogFile:
    """ldirectord's ``logfile=``: a file path, or a syslog facility (``local0``); follows
    reloads."""

    def __init__(self) -> None:
        self.target: str | None = None
        self.handler: logging.Handler | None = None

    def apply(self, target: str | None, cfgname: str = "pylvsd") -> None:
        if target == self.target:
            return
        root = logging.getLogger()
        if self.handler is not None:
            root.removeHandler(self.handler)
            self.handler.close()
            self.handler = None
        self.target = target
        if target is None:
            return
        try:
            handler: logging.Handler
            if "/" in target:
                handler = logging.FileHandler(target)
                # ldirectord's ld_log: [<localtime>|<cfgname>|<pid>] <message>
                handler.setFormatter(
                    logging.Formatter(
                        f"[%(asctime)s|{cfgname}|%(process)d] %(message)s",
                        datefmt="%a %b %e %H:%M:%S %Y",
                    )
                )
            else:
                facility = logging.handlers.SysLogHandler.facility_names.get(target)
                if facility is None:
                    raise ValueError(f"unknown syslog facility {target!r}")
                handler = logging.handlers.SysLogHandler("/dev/log", facility)
                handler.setFormatter(logging.Formatter("pylvsd[%(process)d]: %(message)s"))
        except (OSError, ValueError) as exc:
            log.error("logfile %s: %s", target, exc)
            return
        root.addHandler(handler)
        self.handler = handler
        log.info("logging to %s as the configuration's logfile says", target)


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
        self.health = HealthMonitor(
            self.director,
            self.loop,
            workers=options.check_workers,
            reload=self._ask_reload,
            batch=self.director.batch,
        )
        self.control: ControlServer | None = None
        self.logfile = _LogFile()
        self.running = True
        self._reload = False

    def start(self) -> None:
        """Everything that can fail because of the host or the configuration (DaemonError)."""
        _raise_nofile(_NOFILE)
        for name in self.options.ifaces:
            if not netcfg.link_exists(name):
                raise DaemonError(f"unknown interface {name!r}")
        try:
            # The control socket first: if another pylvsd owns this namespace, touch nothing.
            self.control = ControlServer(
                self.director,
                self.options.socket,
                extra={"ping": lambda: "pong", "status": self.status, "health": self.health.rows},
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
            self.health,
            Timer("engine", _TICK, self.engine.tick),
        ):
            self.loop.add(component)
        if self.options.config:
            try:
                config = _load_config(self.options.config)
            except Exception as exc:
                # ConfigError messages name the file and line already.
                raise DaemonError(str(exc)) from None
            try:
                self._apply(config)
            except IPVSError as exc:
                raise DaemonError(f"{self.options.config}: {exc}") from None

    def _apply(self, config: Config, reloading: bool = False) -> None:
        self.logfile.apply(config.logfile, os.path.basename(config.source))
        _tell(config)
        if config.timeouts is not None:
            self.director.set_timeouts(config.timeouts)
        with self.director.batch():
            self.health.apply(config, reloading)

    def _ask_reload(self) -> None:
        self._reload = True

    def status(self) -> dict[str, Any]:
        components = self.loop.status()
        backend = components.pop(self.backend.name, {})
        return {
            "pid": os.getpid(),
            "version": __version__,
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
            config = _load_config(path)
            self._apply(config, reloading=True)
        except Exception as exc:
            log.error("reload of %s failed, keeping the running configuration: %s", path, exc)
            return
        log.info("reloaded %s: %d virtual services", path, len(config.virtuals))

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
        try:
            # ldirectord's stop (cleanstop): the data plane goes with pylvsd in any case.
            with self.director.batch():
                self.health.stop()
        except Exception as exc:  # never keep the rules because of a failed purge
            log.error("stopping the health checks: %s", exc)
        self.loop.close()  # closes every component added (backend: its rules go)
        if self.control is not None and self.control not in self.loop.components:
            self.control.close()
        self.control = None
        self.director.sync.close()
        self.backend.close()
        self.director.restore()
