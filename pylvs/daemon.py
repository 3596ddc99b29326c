"""pylvsd: the director daemon of one network namespace.

It wires the engine (:class:`pylvs.core.engine.Engine`), a data-plane backend (NFQUEUE, or
AF_PACKET rings: ``--backend``), the control socket (:mod:`pylvs.ctl`) and the timers into one
loop.

Threading: there is one thread. A ``selectors`` loop waits on the backend's sockets (the queue's
netlink socket, or the receive rings), the control socket and its clients, and a signal wake-up
socket, and the backup sync daemon's socket while one runs (connection synchronisation,
:mod:`pylvs.ha.sync`; the master's messages are sent after each batch and when their 2 s are
up). Packets are handled in bounded batches (``backend.process``), control requests between
batches, and ``engine.tick`` at least once a second. The engine is not thread-safe; running
everything in one thread serialises it without a lock, and a control request never waits behind
more than one batch. With ``--backend afpacket --workers N`` (N > 1) the packets are handled by
N forked worker processes instead, each with its own engine (see :mod:`pylvs.io.afpacket`).

Host state it owns and removes on SIGTERM/SIGINT: the iptables chains of the backend, and, with
NFQUEUE, ``net.ipv4.ip_forward`` and ``net.ipv4.conf.all.accept_local`` (set to 1 while a
masquerading real server is configured, then restored).
See docs/daemon.md for what a crash leaves behind and ``pylvsd --cleanup``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import logging
import logging.handlers
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from pylvs.core.control import (
    ConnInfo,
    DaemonInfo,
    DaemonSpec,
    DestSpec,
    IPVSError,
    ServiceInfo,
    ServiceSpec,
    Timeouts,
    addr_from_text,
)
from pylvs.core.engine import Engine
from pylvs.core.service import AF_INET, FwdMethod
from pylvs.ctl import DEFAULT_SOCKET, ControlServer
from pylvs.ha.sync import SyncManager
from pylvs.io import afpacket, netcfg
from pylvs.io.afpacket import AfpacketBackend, AfpacketError, EngineGroup
from pylvs.io.nfqueue import BackendError, NfqueueBackend, remove_rules

__all__ = ["Director", "DirectorError", "apply_config", "main"]

log = logging.getLogger("pylvs.daemon")

_BATCH = 256

# What NAT needs from the director's kernel while a masquerading real server exists:
# - ip_forward: the kernel forwards the rewritten packets (ipvs.sh sets it for NAT);
# - accept_local: replies are source-NATed to the VIP in PREROUTING, before routing (IPVS does it
#   after, in FORWARD), so when the VIP is a local address the kernel would drop them as martians
#   (fib_validate_source) without it.
_NAT_SYSCTLS = (("net.ipv4.ip_forward", 1), ("net.ipv4.conf.all.accept_local", 1))
_TICK = 1.0


class DirectorError(Exception):
    """pylvsd cannot start or go on as configured; the message is for the operator."""


def _service_key(fwmark: int, af: int, protocol: int, addr: str, port: int) -> tuple[Any, ...]:
    if fwmark:
        return (fwmark, af)
    return (0, af, protocol, str(ipaddress.ip_address(addr)), port)


class Director:
    """The :class:`ControlAPI` pylvsd serves: the engine's, plus what the host must do about it.

    Adding a service or a real server checks that the kernel can route to it (a VIP nobody can
    route, or a real server with no route, is refused with ENETUNREACH), records the route's
    source address and MTU in the engine (tunnel source, PMTU), and updates the backend's rules.
    """

    def __init__(
        self,
        engine: Engine | EngineGroup,
        backend: NfqueueBackend | AfpacketBackend,
        check_routes: bool = True,
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.check_routes = check_routes
        self._saved_sysctls: dict[str, str] = {}
        # Connection synchronisation (--start-daemon): one connection table to send or fill.
        self.sync = SyncManager(engine if isinstance(engine, Engine) else None)

    # -- host side effects -------------------------------------------------------------------

    def _sync(self) -> None:
        infos = self.engine.services()
        try:
            self.backend.set_services(infos)
        except (BackendError, AfpacketError) as exc:
            raise IPVSError(errno.EIO, "", f"cannot update the queue rules: {exc}") from None
        if isinstance(self.backend, AfpacketBackend):
            return  # pylvs sends NAT packets itself: the kernel forwards nothing
        masq = any(d.fwd == FwdMethod.MASQ for svc in infos for d in svc.dests)
        if masq and not self._saved_sysctls:
            for key, value in _NAT_SYSCTLS:
                self._saved_sysctls[key] = netcfg.write_sysctl(key, value)
            log.info(
                "masquerading real servers: %s", ", ".join(f"{k}={v}" for k, v in _NAT_SYSCTLS)
            )
        elif not masq and self._saved_sysctls:
            self.restore()

    def restore(self) -> None:
        """Undo the host changes (sysctls); the backend removes its own rules."""
        for key, old in self._saved_sysctls.items():
            with contextlib.suppress(OSError, netcfg.NetcfgError):
                netcfg.write_sysctl(key, old)
        self._saved_sysctls.clear()

    def _check_vip(self, spec: ServiceSpec, op: str) -> None:
        if spec.fwmark or not self.check_routes or spec.af != AF_INET:
            return
        try:
            netcfg.route_get(spec.addr)
        except netcfg.NoRouteError:
            raise IPVSError(
                errno.ENETUNREACH, op, f"no route to virtual address {spec.addr}"
            ) from None
        except ValueError:
            return  # the engine reports a malformed address with IPVS's errno

    def _route_dest(self, dest: DestSpec, op: str) -> None:
        if dest.af != AF_INET:
            return
        try:
            route = netcfg.route_get(dest.addr)
        except netcfg.NoRouteError:
            if self.check_routes:
                raise IPVSError(
                    errno.ENETUNREACH, op, f"real server {dest.addr} is unreachable (no route)"
                ) from None
            return
        except ValueError:
            return
        if route.src:
            _af, daddr = addr_from_text(dest.addr)
            _af, src = addr_from_text(route.src)
            self.engine.set_path(AF_INET, daddr, src, route.mtu)
        if dest.fwd == FwdMethod.ROUTE and route.gateway:
            log.warning(
                "real server %s (direct routing) is behind gateway %s: DR needs it on-link",
                dest.addr,
                route.gateway,
            )

    # -- ControlAPI ----------------------------------------------------------------------------

    def add_service(self, spec: ServiceSpec) -> None:
        self._check_vip(spec, "add_service")
        self.engine.add_service(spec)
        self._sync()

    def edit_service(self, spec: ServiceSpec) -> None:
        self.engine.edit_service(spec)
        self._sync()

    def del_service(self, spec: ServiceSpec) -> None:
        self.engine.del_service(spec)
        self._sync()

    def add_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self._route_dest(dest, "add_dest")
        self.engine.add_dest(svc, dest)
        self._after_dest(dest)

    def edit_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self._route_dest(dest, "update_dest")
        self.engine.edit_dest(svc, dest)
        self._after_dest(dest)

    def _after_dest(self, dest: DestSpec) -> None:
        self._sync()
        if dest.fwd == FwdMethod.ROUTE and dest.af == AF_INET:
            self.backend.prepare_dest(addr_from_text(dest.addr)[1])

    def del_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.engine.del_dest(svc, dest)
        self._sync()

    def flush(self) -> None:
        self.engine.flush()
        self._sync()

    def zero(self, svc: ServiceSpec | None = None) -> None:
        self.engine.zero(svc)

    def set_timeouts(self, timeouts: Timeouts) -> None:
        self.engine.set_timeouts(timeouts)

    def get_timeouts(self) -> Timeouts:
        return self.engine.get_timeouts()

    def services(self) -> list[ServiceInfo]:
        return self.engine.services()

    def get_service(self, spec: ServiceSpec) -> ServiceInfo:
        return self.engine.get_service(spec)

    def conns(self) -> list[ConnInfo]:
        return self.engine.conns()

    def total_stats(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.engine.total_stats()

    def start_daemon(self, spec: DaemonSpec) -> None:
        self.sync.start(spec)

    def stop_daemon(self, state: str) -> None:
        self.sync.stop(state)

    def daemons(self) -> list[DaemonInfo]:
        return self.sync.daemons()


def apply_config(director: Director, services: list[tuple[ServiceSpec, list[DestSpec]]]) -> None:
    """Make the running services equal to ``services``, editing in place what exists.

    Services and real servers that stay are edited, not re-created, so their connections (and
    persistence templates) survive a reload. Services that are not in the list are deleted.
    """
    current = {
        _service_key(s.fwmark, s.af, s.protocol, s.addr, s.port): s for s in director.services()
    }
    wanted = {_service_key(s.fwmark, s.af, s.protocol, s.addr, s.port): s for s, _ in services}
    for key, old in current.items():
        if key not in wanted:
            director.del_service(
                ServiceSpec(
                    af=old.af,
                    protocol=old.protocol,
                    addr=old.addr,
                    port=old.port,
                    fwmark=old.fwmark,
                )
            )
    for spec, dests in services:
        key = _service_key(spec.fwmark, spec.af, spec.protocol, spec.addr, spec.port)
        info = current.get(key)
        if info is None:
            director.add_service(spec)
            have: dict[tuple[str, int], Any] = {}
        else:
            director.edit_service(spec)
            have = {(str(ipaddress.ip_address(d.addr)), d.port): d for d in info.dests}
        want = {(str(ipaddress.ip_address(d.addr)), d.port): d for d in dests}
        for dkey, dinfo in have.items():
            if dkey not in want:
                director.del_dest(spec, DestSpec(af=dinfo.af, addr=dinfo.addr, port=dinfo.port))
        for dkey, dest in want.items():
            if dkey in have:
                director.edit_dest(spec, dest)
            else:
                director.add_dest(spec, dest)


def _load_config(path: str) -> tuple[list[tuple[ServiceSpec, list[DestSpec]]], Timeouts | None]:
    # Imported here: a broken or missing config module must not stop a daemon without --config.
    from pylvs.config import load

    config = load(path)
    return config.services(), getattr(config, "timeouts", None)


class Daemon:
    """The loop: packets, control requests, timers, signals."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.engine: Engine | EngineGroup
        self.backend: NfqueueBackend | AfpacketBackend
        if args.backend == "afpacket":
            # pylvs forwards everything itself: it decrements TTLs and checks IP checksums.
            engine = Engine(kernel_forwards_nat=False, check_ip_checksum=True)
            self.backend = AfpacketBackend(engine, ifaces=args.iface, workers=args.workers)
            self.engine = self.backend.engine
        else:
            self.engine = Engine()
            self.backend = NfqueueBackend(
                self.engine, queue_num=args.queue_num, bypass=args.queue_bypass, ifaces=args.iface
            )
        self.director = Director(self.engine, self.backend, check_routes=not args.no_route_check)
        self.control: ControlServer | None = None
        self._running = True
        self._reload = False
        self._wake_r, self._wake_w = socket.socketpair()

    def start(self) -> None:
        """Everything that can fail because of the host or the configuration (DirectorError)."""
        for name in self.args.iface:
            if not netcfg.link_exists(name):
                raise DirectorError(f"unknown interface {name!r}")
        try:
            # The control socket first: if another pylvsd owns this namespace, touch nothing.
            self.control = ControlServer(
                self.director, self.args.socket, extra={"status": self.status}
            )
        except OSError as exc:
            raise DirectorError(str(exc.strerror or exc)) from None
        try:
            if isinstance(self.backend, AfpacketBackend):
                # Workers must not hold the control socket (a new pylvsd could not bind it).
                keep_out = [self.control.listener.fileno(), *self._wake_fds()]
                self.backend.open(close_in_workers=keep_out)
            else:
                self.backend.open()
        except (BackendError, AfpacketError) as exc:
            raise DirectorError(str(exc)) from None
        if self.args.config:
            try:
                services, timeouts = _load_config(self.args.config)
            except Exception as exc:
                # ConfigError messages name the file and line already.
                raise DirectorError(str(exc)) from None
            try:
                if timeouts is not None:
                    self.director.set_timeouts(timeouts)
                apply_config(self.director, services)
            except IPVSError as exc:
                raise DirectorError(f"{self.args.config}: {exc}") from None

    def _wake_fds(self) -> list[int]:
        return [self._wake_r.fileno(), self._wake_w.fileno()]

    def status(self) -> dict[str, Any]:
        if isinstance(self.backend, AfpacketBackend):
            return {
                "pid": os.getpid(),
                "backend": self.backend.name,
                **self.backend.status(),
                "engine": dict(self.engine.counters),
            }
        tx = self.backend.tx
        return {
            "pid": os.getpid(),
            "backend": self.backend.name,
            "queue_num": self.args.queue_num,
            "handled": self.backend.handled,
            "failures": self.backend.failures,
            "sent_frames": tx.sent_frames if tx else 0,
            "sent_packets": tx.sent_packets if tx else 0,
            "dropped_unresolved": tx.dropped_unresolved if tx else 0,
            "engine": dict(self.engine.counters),
        }

    def stop(self) -> None:
        """Remove everything installed; safe after a partial start."""
        if self.control is not None:
            self.control.close()
            self.control = None
        self.director.sync.close()
        self.backend.close()
        self.director.restore()

    def reload(self) -> None:
        if not self.args.config:
            log.info("SIGHUP: no --config file, nothing to reload")
            return
        try:
            services, timeouts = _load_config(self.args.config)
            if timeouts is not None:
                self.director.set_timeouts(timeouts)
            apply_config(self.director, services)
        except Exception as exc:
            log.error(
                "reload of %s failed, keeping the running configuration: %s", self.args.config, exc
            )
            return
        log.info("reloaded %s: %d virtual services", self.args.config, len(services))

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._running = False

    def run(self) -> None:
        assert self.control is not None
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._signal)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        sel = selectors.DefaultSelector()
        if isinstance(self.backend, AfpacketBackend):
            for fd in self.backend.filenos():
                sel.register(fd, selectors.EVENT_READ, "queue")
        else:
            sel.register(self.backend.fileno(), selectors.EVENT_READ, "queue")
        sel.register(self.control.listener, selectors.EVENT_READ, "listen")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        next_tick = 0.0
        sync = self.director.sync
        sync_fd: int | None = None
        log.info(
            "pylvsd ready: backend %s, queue %d, control socket @%s",
            self.backend.name,
            self.args.queue_num,
            self.args.socket,
        )
        while self._running:
            now = time.monotonic()
            if now >= next_tick:
                self.engine.tick(now)
                next_tick = now + _TICK
            wake_at = next_tick
            sync_deadline = sync.next_deadline()
            if sync_deadline is not None:
                # A sync message that is not full leaves 2 s after its first record.
                sync.flush(now)
                wake_at = min(wake_at, max(sync_deadline, now))
            for key, _events in sel.select(max(0.0, wake_at - now)):
                what = key.data
                if what == "queue":
                    self.backend.process(_BATCH)
                    sync.flush(time.monotonic())
                elif what == "sync":
                    sync.receive(time.monotonic())
                elif what == "listen":
                    conn = self.control.accept()
                    if conn is not None:
                        sel.register(conn, selectors.EVENT_READ, "client")
                elif what == "wake":
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(64)
                else:
                    client = key.fileobj
                    assert isinstance(client, socket.socket)
                    sel.unregister(client)
                    if self.control.serve(client):
                        sel.register(client, selectors.EVENT_READ, "client")
                    # A request may have started or stopped the backup sync daemon.
                    if sync.receiver_fileno() != sync_fd:
                        if sync_fd is not None:
                            sel.unregister(sync_fd)
                        sync_fd = sync.receiver_fileno()
                        if sync_fd is not None:
                            sel.register(sync_fd, selectors.EVENT_READ, "sync")
            if self._reload:
                self._reload = False
                self.reload()
        signal.set_wakeup_fd(-1)
        sel.close()
        log.info("pylvsd stopping: removing rules")


class _SyslogFormatter(logging.Formatter):
    """``Mon DD HH:MM:SS host pylvsd[pid]: message``, as syslogd writes it."""

    def __init__(self) -> None:
        super().__init__(
            f"%(asctime)s {socket.gethostname()} pylvsd[%(process)d]: %(message)s",
            datefmt="%b %d %H:%M:%S",
        )


def _setup_logging(args: argparse.Namespace, detached: bool) -> None:
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if not detached:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    elif os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler(
            "/dev/log", logging.handlers.SysLogHandler.LOG_DAEMON
        )
        handler.setFormatter(logging.Formatter("pylvsd[%(process)d]: %(message)s"))
    else:
        os.makedirs("/run/pylvs", exist_ok=True)
        ino = os.stat("/proc/self/ns/net").st_ino
        handler = logging.FileHandler(f"/run/pylvs/{args.socket}-{ino}.log")
        handler.setFormatter(_SyslogFormatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if args.debug else logging.INFO)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pylvsd",
        description="pylvs director daemon: serves the virtual services of this network namespace",
    )
    p.add_argument("--config", metavar="FILE", help="ldirectord.cf or pylvs.toml (SIGHUP reloads)")
    p.add_argument("--socket", default=DEFAULT_SOCKET, help="abstract control socket name")
    p.add_argument(
        "--backend",
        default="nfqueue",
        choices=["nfqueue", "afpacket"],
        help="data plane: NFQUEUE (the kernel forwards) or AF_PACKET rings (pylvs forwards)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="afpacket: N data-plane processes sharing the traffic by client (default 1)",
    )
    p.add_argument("--queue-num", type=int, default=0, help="NFQUEUE number (default 0)")
    p.add_argument(
        "--queue-bypass",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fail open: the kernel accepts queued packets when pylvsd is not running (default)",
    )
    p.add_argument(
        "--iface",
        action="append",
        default=[],
        metavar="IF",
        help=(
            "only queue (nfqueue) or tap (afpacket) traffic arriving on IF (repeat; list client "
            "and real-server sides); afpacket default: every interface but lo"
        ),
    )
    p.add_argument(
        "--no-route-check",
        action="store_true",
        help="accept VIPs and real servers the kernel has no route to",
    )
    p.add_argument("--foreground", action="store_true", help="do not detach; log to stdout")
    p.add_argument("--debug", action="store_true", help="log every scheduling decision")
    p.add_argument(
        "--cleanup", action="store_true", help="remove rules left by a killed pylvsd and exit"
    )
    return p


def _fail(message: str) -> int:
    print(f"pylvsd: {message}", file=sys.stderr)
    return 1


def _detach() -> int | None:
    """Fork; the parent waits for the child's readiness report and returns the exit status, the
    child returns None and reports through fd ``_READY_FD`` (set as an attribute)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            report = pipe.read().decode(errors="replace")
        if report == "OK":
            return 0
        return _fail(report or "exited during start-up")
    os.close(r)
    os.setsid()
    _detach.ready_fd = w  # type: ignore[attr-defined]
    return None


def _report(message: str) -> None:
    fd = getattr(_detach, "ready_fd", None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(fd, message.encode())
            os.close(fd)
        _detach.ready_fd = None  # type: ignore[attr-defined]


def _redirect_stdio() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if os.geteuid() != 0:
        return _fail("must be run as root (it installs iptables rules and binds NFQUEUE)")
    if args.cleanup:
        removed = remove_rules()
        removed = afpacket.remove_rules() or removed
        print("pylvsd: removed leftover rules" if removed else "pylvsd: no rules to remove")
        return 0
    foreground = args.foreground or "JOURNAL_STREAM" in os.environ
    if not foreground:
        status = _detach()
        if status is not None:
            return status
    _setup_logging(args, detached=not foreground)
    daemon = Daemon(args)
    try:
        daemon.start()
    except DirectorError as exc:
        daemon.stop()
        if foreground:
            return _fail(str(exc))
        _report(str(exc))
        return 1
    if not foreground:
        _report("OK")
        _redirect_stdio()
    try:
        daemon.run()
    finally:
        daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
