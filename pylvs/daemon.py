"""pylvsd's loop of components: the director daemon of one network namespace.

:class:`Daemon` builds the engine (one :class:`~pylvs.core.engine.Engine`, or an
:class:`~pylvs.io.workers.EngineGroup` of data-plane worker processes), the backend that feeds
it, the :class:`~pylvs.director.Director` that serves the control operations, and runs them in one
:class:`~pylvs.loop.Loop`. Its components, in the order they are added:

==========  ====================================================================================
backend     the data plane (NFQUEUE or AF_PACKET): one batch of packets per turn
control     the control socket (:mod:`pylvs.ctl`) and its clients, never blocking
sync        connection synchronisation (:mod:`pylvs.io.sync`): backup socket, master deadline
routes      rtnetlink changes -> real-server paths and next hops (:mod:`pylvs.routes`)
health      ldirectord's checks and what they do to the table (:mod:`pylvs.health.monitor`),
            the checks themselves in a bounded thread pool
engine      the engine's timers (connection expiry, rate estimator) every second
heartbeat   with ``--ha DIR``: the heartbeat node (:mod:`pylvs.ha.heartbeat`) in threads of its
            own; its resources inside pylvsd (``ldirectord::FILE``, ``LVSSyncDaemonSwap``) run
            on the loop; SIGTERM hands them over before the rules go
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
import errno
import logging
import logging.handlers
import os
import platform
import resource
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pylvs import __version__, hoststate
from pylvs.config.model import Config
from pylvs.core.control import DaemonSpec, IPVSError
from pylvs.core.engine import Engine
from pylvs.ctl import DEFAULT_SOCKET, ControlServer
from pylvs.director import Director
from pylvs.health.kamonitor import KaMonitor
from pylvs.health.monitor import DEFAULT_WORKERS, HealthMonitor
from pylvs.io import netcfg
from pylvs.io.afpacket import AfpacketBackend
from pylvs.io.backend import Backend, BackendError
from pylvs.io.nfqueue import NfqueueBackend
from pylvs.io.workers import EngineGroup
from pylvs.loop import Loop, Timer
from pylvs.routes import RouteTracker

if TYPE_CHECKING:
    from pylvs.ha.heartbeat import HeartbeatService
    from pylvs.ha.vrrp import SyncdPlan, VRRPService

__all__ = ["Daemon", "DaemonError", "DaemonOptions", "data_plane_runtime", "runtime"]

log = logging.getLogger("pylvs.daemon")

# Where pylvsd keeps its heartbeat identity (heartbeat's own is /var/lib/heartbeat: point
# --ha-state there to take a heartbeat node's place with its UUID).
DEFAULT_HA_STATE = "/var/lib/pylvs/heartbeat"

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
    # --queue-bypass (fail open); None: decided by what runs: fail closed with --ha or a
    # keepalived.conf's vrrp_instance (an HA pair, see Daemon._queue_bypass), else fail open.
    queue_bypass: bool | None = None
    ifaces: Sequence[str] = field(default_factory=tuple)
    strict_routes: bool = False
    check_workers: int = DEFAULT_WORKERS
    ha: str | None = None  # heartbeat's directory (ha.cf, authkeys, haresources)
    ha_state: str = DEFAULT_HA_STATE
    ha_node: str | None = None  # instead of uname -n
    ha_shutdown_timeout: float = 30.0
    # The Python executable the data-plane workers run on (None: pylvsd's own; afpacket only),
    # see data_plane_runtime.
    data_runtime: str | None = None


def runtime() -> str:
    """The Python that runs the daemon (shown in the status)."""
    return f"{platform.python_implementation()} {platform.python_version()}"


def pypy_runtime() -> str | None:
    """The PyPy environment scripts/setup builds beside .venv (``$PYLVS_PYPY`` overrides)."""
    env = os.environ.get("PYLVS_PYPY")
    if env:
        return env
    candidate = Path(__file__).resolve().parent.parent / ".venv-pypy" / "bin" / "python"
    return str(candidate) if candidate.exists() else None


# The backends whose packet loop can run in worker processes on another interpreter.
_WORKER_BACKENDS = ("afpacket", "nfqueue")


def data_plane_runtime(backend: str, choice: str) -> str | None:
    """The Python executable the data plane runs on for ``--data-plane choice`` (auto, cpython,
    pypy); None: pylvsd's own interpreter. ValueError (the operator's message) if impossible."""
    if choice == "cpython" or (choice == "auto" and backend not in _WORKER_BACKENDS):
        return None
    if backend not in _WORKER_BACKENDS:
        raise ValueError(f"--data-plane {choice} needs --backend {' or '.join(_WORKER_BACKENDS)}")
    found = pypy_runtime()
    if found is None and choice == "pypy":
        raise ValueError("--data-plane pypy: no PyPy environment (.venv-pypy: run scripts/setup)")
    return found


def _load_config(path: str) -> Config:
    # Imported here: a broken or missing config module must not stop a daemon without a config.
    from pylvs.config import load

    return load(path)


def _tell(config: Config) -> None:
    """Log what ldirectord would say of the file."""
    for warning in config.warnings:
        log.warning("%s", warning)
    for missing in config.not_run:
        log.warning("%s", missing)


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


class _LoopHooks:
    """The heartbeat resources that live inside pylvsd (``ldirectord::FILE``,
    ``LVSSyncDaemonSwap``), called from the resource thread and run on the daemon's loop."""

    def __init__(self, daemon: Daemon, timeout: float = 30.0) -> None:
        self.daemon = daemon
        self.timeout = timeout

    def _on_loop(self, fn: Callable[[], Any]) -> Any:
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = fn()
            except Exception as exc:
                box["error"] = exc
            finally:
                done.set()

        self.daemon.loop.call_soon(run)
        if not done.wait(self.timeout):
            raise DaemonError("pylvsd's loop did not run the resource action in time")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def load_ldirectord(self, path: str) -> None:
        self._on_loop(lambda: self.daemon.load_config(path))

    def unload_ldirectord(self, path: str) -> None:
        self._on_loop(lambda: self.daemon.unload_config(path))

    def ldirectord_loaded(self, path: str) -> bool:
        return self.daemon.config_path == path

    def sync_swap(self, role: str, action: str) -> None:
        self._on_loop(lambda: self.daemon.sync_swap(role, action))

    def sync_running(self, role: str) -> bool:
        return bool(
            self._on_loop(lambda: role in {d.state for d in self.daemon.director.daemons()})
        )


class Daemon:
    """The loop and its components (see the module docstring)."""

    def __init__(self, options: DaemonOptions) -> None:
        self.options = options
        self.loop = Loop()
        self.engine: Engine | EngineGroup
        self.backend: Backend
        if options.backend == "afpacket":
            if options.workers > 1 or options.data_runtime is not None:
                self.engine = EngineGroup(options.workers, options.data_runtime)
            else:
                # pylvs forwards everything itself: it decrements TTLs and checks IP checksums.
                self.engine = Engine(kernel_forwards_nat=False, check_ip_checksum=True)
            self.backend = AfpacketBackend(self.engine, ifaces=options.ifaces)
        else:
            if options.data_runtime is not None:
                # One worker on that interpreter binds the queue; the rules stay here.
                self.engine = EngineGroup(1, options.data_runtime)
            else:
                self.engine = Engine()
            self.backend = NfqueueBackend(
                self.engine,
                queue_num=options.queue_num,
                bypass=options.queue_bypass if options.queue_bypass is not None else not options.ha,
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
        # keepalived.conf: keepalived's checkers instead of ldirectord's (pylvs.health.kamonitor).
        self.kahealth = KaMonitor(
            self.director, self.loop, workers=options.check_workers, batch=self.director.batch
        )
        self.control: ControlServer | None = None
        self.ha: HeartbeatService | None = None
        self.vrrp: VRRPService | None = None  # a keepalived.conf's vrrp_instances
        self.config_path = options.config  # the file applied (ldirectord::FILE may change it)
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
                extra={
                    "ping": lambda: "pong",
                    "status": self.status,
                    "health": lambda: self.health.rows() + self.kahealth.rows(),
                    "ha-status": self._ha_status,
                    "ha-standby": self._ha_standby,
                    "ha-takeover": self._ha_takeover,
                    "vrrp-status": self._vrrp_status,
                },
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
            self.kahealth,
            Timer("engine", _TICK, self.engine.tick),
        ):
            self.loop.add(component)
        if isinstance(self.engine, EngineGroup):
            self.loop.add(self.engine.logs)
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
        if self.options.ha:
            self._start_ha(self.options.ha)

    def _start_ha(self, ha_dir: str) -> None:
        from pylvs.config import ConfigError
        from pylvs.ha.heartbeat import HeartbeatService
        from pylvs.ha.media import MediaError

        try:
            self.ha = HeartbeatService(
                ha_dir, self.options.ha_state, hooks=_LoopHooks(self), me=self.options.ha_node
            )
            self.ha.start()
        except (ConfigError, MediaError, OSError, ValueError) as exc:
            if self.ha is not None:
                self.ha.close()
            self.ha = None
            raise DaemonError(f"heartbeat: {exc}") from None
        self.loop.add(self.ha)

    # -- heartbeat's resources inside pylvsd, and its commands -------------------------------

    def load_config(self, path: str) -> None:
        """``ldirectord::FILE`` start: apply FILE as ``--config`` would."""
        config = _load_config(path)
        self._apply(config)
        self.config_path = path
        log.info(
            "heartbeat resource ldirectord::%s: %d virtual services", path, len(config.virtuals)
        )

    def unload_config(self, path: str) -> None:
        """``ldirectord::FILE`` stop: ldirectord's stop, then nothing is checked any more."""
        if self.config_path != path:
            return
        with self.director.batch():
            self.health.stop()
            self.health.apply(Config(source=path))
            # A keepalived.conf: its checkers stop too (keepalived's clear_services).
            self.kahealth.stop()
        self.config_path = None
        log.info("heartbeat resource ldirectord::%s stopped", path)

    def sync_swap(self, role: str, action: str) -> None:
        """LVSSyncDaemonSwap: start = the other role's daemon stops and this one starts."""
        other = "backup" if role == "master" else "master"
        first, then = (other, role) if action == "start" else (role, other)
        running = {d.state: d for d in self.director.daemons()}
        model = running.get(first) or running.get(then)
        if first in running:
            self.director.stop_daemon(first)
        if then not in running:
            spec = DaemonSpec(state=then)
            if model is not None:
                spec = DaemonSpec(
                    then,
                    model.mcast_ifn,
                    model.syncid,
                    model.sync_maxlen,
                    model.mcast_group,
                    model.mcast_port,
                    model.mcast_ttl,
                )
            self.director.start_daemon(spec)

    def _ha(self) -> HeartbeatService:
        if self.ha is None:
            raise IPVSError(errno.ENOENT, "ha", "pylvsd runs without --ha")
        return self.ha

    def _ha_status(self) -> dict[str, Any]:
        return self._ha().status()

    def _ha_standby(self, what: str = "all") -> str:
        try:
            return self._ha().standby(what)
        except ValueError as exc:
            raise IPVSError(errno.EINVAL, "ha-standby", str(exc)) from None

    def _ha_takeover(self, what: str = "all") -> str:
        try:
            return self._ha().takeover(what)
        except ValueError as exc:
            raise IPVSError(errno.EINVAL, "ha-takeover", str(exc)) from None

    def _queue_bypass(self, config: Config) -> None:
        """Without --queue-bypass/--no-queue-bypass: fail closed when this node is one of an HA
        pair (--ha, or a keepalived.conf with vrrp_instances). A killed node keeps its VIPs
        (as keepalived killed with -9 does) until the peer takes over; with --queue-bypass its
        kernel would accept the clients' packets for the VIP, find no socket and answer with
        resets, killing the connections the peer has synced (lvs_sync_daemon)."""
        if self.options.queue_bypass is not None or not isinstance(self.backend, NfqueueBackend):
            return
        ka = config.keepalived
        bypass = not (self.options.ha or (ka is not None and bool(ka.vrrp_instances)))
        if bypass == self.backend.bypass:
            return
        self.backend.bypass = bypass
        log.info("queue rules %s", "fail open (--queue-bypass)" if bypass else "fail closed")
        services = self.engine.services()
        if services:
            try:
                self.backend.set_services(services)
            except BackendError as exc:
                message = f"cannot update the packet rules: {exc}"
                raise IPVSError(errno.EIO, "apply", message) from None

    def _apply(self, config: Config, reloading: bool = False) -> None:
        self.logfile.apply(config.logfile, os.path.basename(config.source))
        _tell(config)
        self._queue_bypass(config)
        if config.timeouts is not None:
            self.director.set_timeouts(config.timeouts)
        with self.director.batch():
            if config.keepalived is not None:
                self.health.apply(Config(source=config.source), reloading)
                self.kahealth.apply(config, reloading)
            else:
                self.kahealth.apply(None)
                self.health.apply(config, reloading)
        self._apply_vrrp(config)

    # -- VRRP (pylvs.ha.vrrp): a keepalived.conf's vrrp_instances -----------------------------

    def _apply_vrrp(self, config: Config) -> None:
        """Start, reload or stop the VRRP service as the applied keepalived.conf says."""
        from pylvs.ha.vrrp import VRRPConfigError, VRRPService

        ka = config.keepalived
        wanted = ka is not None and bool(ka.vrrp_instances)
        try:
            if ka is not None and wanted and self.vrrp is not None:
                self.vrrp.reload(ka)
            elif ka is not None and wanted:
                self.vrrp = VRRPService(ka, syncd=self._vrrp_syncd)
                self.vrrp.start()
                self.loop.add(self.vrrp)
            elif self.vrrp is not None:
                self._vrrp_shutdown()
        except (VRRPConfigError, OSError) as exc:
            raise DaemonError(f"VRRP: {exc}") from None

    def _vrrp_syncd(self, event: str, plan: SyncdPlan) -> None:
        """lvs_sync_daemon following its VRRP instance (called from the VRRP thread)."""
        self.loop.call_soon(self._vrrp_syncd_on_loop, event, plan)

    def _vrrp_syncd_on_loop(self, event: str, plan: SyncdPlan) -> None:
        running = {d.state for d in self.director.daemons()}
        try:
            if event == "start" and not running:
                # vrrp_init_state: the backup daemon, with the configured parameters
                self.director.start_daemon(
                    DaemonSpec(
                        "backup",
                        plan.interface,
                        plan.syncid,
                        plan.maxlen,
                        plan.group,
                        plan.port,
                        plan.ttl,
                    )
                )
            elif event in ("master", "backup"):
                self.sync_swap(event, "start")  # ipvs_syncd_master / ipvs_syncd_backup
            elif event == "stop":
                for state in running:
                    self.director.stop_daemon(state)
        except IPVSError as exc:
            log.error("lvs_sync_daemon %s: %s", event, exc)
        log.info(
            "lvs_sync_daemon: %s (%s)",
            event,
            ", ".join(sorted(d.state for d in self.director.daemons())) or "none running",
        )

    def _vrrp_status(self) -> dict[str, Any]:
        if self.vrrp is None:
            raise IPVSError(errno.ENOENT, "vrrp", "no vrrp_instance configured")
        return self.vrrp.vrrp_status()

    def _vrrp_shutdown(self, timeout: float = 5.0) -> None:
        """keepalived's stop: priority 0 from the masters, addresses removed, notify_stop; the
        loop keeps running meanwhile (the sync daemons stop on it)."""
        vrrp = self.vrrp
        if vrrp is None:
            return
        vrrp.begin_shutdown()
        deadline = time.monotonic() + timeout
        while not vrrp.stopped.is_set() and time.monotonic() < deadline:
            self.loop.run_once(max_wait=0.05)
        self.loop.remove(vrrp)
        vrrp.close()
        self.vrrp = None

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
        path = self.config_path
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
            if self.ha is not None:
                self._ha_handover()
            if self.vrrp is not None:
                self._vrrp_shutdown()
        finally:
            signal.set_wakeup_fd(-1)
        log.info("pylvsd stopping: removing rules")

    def _ha_handover(self) -> None:
        """A graceful stop with heartbeat: every group handed over before the rules go (the
        loop keeps running: ldirectord:: and LVSSyncDaemonSwap resources stop on it)."""
        assert self.ha is not None
        log.info("heartbeat: shutdown in progress: giving up all HA resources")
        self.ha.begin_shutdown()
        deadline = time.monotonic() + self.options.ha_shutdown_timeout
        while not self.ha.stopped.is_set() and time.monotonic() < deadline:
            self.loop.run_once(max_wait=0.05)
        if not self.ha.stopped.is_set():
            log.error(
                "heartbeat: resources not given up within %.0f s", self.options.ha_shutdown_timeout
            )

    def stop(self) -> None:
        """Remove everything installed; safe after a partial start."""
        try:
            # ldirectord's stop (cleanstop): the data plane goes with pylvsd in any case.
            with self.director.batch():
                self.health.stop()
                self.kahealth.stop()
        except Exception as exc:  # never keep the rules because of a failed purge
            log.error("stopping the health checks: %s", exc)
        self.loop.close()  # closes every component added (backend: its rules go)
        if self.vrrp is not None and self.vrrp not in self.loop.components:
            self.vrrp.close()
        self.vrrp = None
        if self.ha is not None and self.ha not in self.loop.components:
            self.ha.close()
        self.ha = None
        if self.control is not None and self.control not in self.loop.components:
            self.control.close()
        self.control = None
        self.director.sync.close()
        self.backend.close()
        self.director.restore()
