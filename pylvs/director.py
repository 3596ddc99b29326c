"""The director: the control operations pylvsd serves, with what the host must do about them, and
the reconciliation of a configuration file with the running table.

:class:`Director` is the :class:`~pylvs.core.control.ControlAPI` of the daemon. Each operation goes
to the engine (which refuses with IPVS's errnos); rows of the operation table marked ``rules`` then
bring the backend's packet rules up to date, once per operation or once per :meth:`Director.batch`.
Around the engine it does what kernel IPVS does not need a daemon for:

* routes: like IPVS, it accepts virtual services and real servers whatever the routing table says
  (the kernel's selftest adds the service before the VIP exists; ``ipvsadm -R`` at boot runs
  before interfaces are up), warning once. The route, source address and MTU towards each real
  server are resolved when it is added and again whenever rtnetlink reports a change
  (:mod:`pylvs.routes`): a real server with no route gets an MTU of 0 in the engine, which drops
  its packets and counts them (``drop_no_route``) until a route appears. ``strict_routes`` refuses
  such entries instead (ENETUNREACH), as earlier pylvs did;
* sysctls: a backend where the kernel forwards rewritten packets (NFQUEUE) needs ``ip_forward``
  and ``accept_local`` while a masquerading real server exists; the previous values are kept in a
  state file (:mod:`pylvs.hoststate`) so that ``pylvsd --cleanup`` restores them after a crash;
* refusals of the backend (``check_service``) and of the sync daemons.

An operation that fails leaves no trace: the engine validates before it changes anything, and if
the rules cannot be applied after an addition, the addition is undone.

A configuration file is applied by the health component (:mod:`pylvs.health.keeper`, ldirectord's
start and transitions) inside :meth:`Director.batch`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
from collections.abc import Callable, Iterator
from typing import Any

from pylvs.core.control import (
    OPERATION_BY_NAME,
    DaemonInfo,
    DaemonSpec,
    DestInfo,
    DestSpec,
    IPVSError,
    ServiceInfo,
    ServiceSpec,
    addr_from_text,
)
from pylvs.core.engine import Engine
from pylvs.core.service import AF_INET, AF_INET6, FwdMethod, ServiceFlags
from pylvs.io import netcfg
from pylvs.io.backend import Backend, BackendError
from pylvs.io.sync import SyncManager
from pylvs.io.workers import EngineGroup, GroupSync

__all__ = ["Director", "dest_key", "service_key"]

log = logging.getLogger("pylvs.director")

# What NAT needs from the director's kernel while a masquerading real server exists:
# - ip_forward: the kernel forwards the rewritten packets (ipvs.sh sets it for NAT);
# - accept_local: replies are source-NATed to the VIP in PREROUTING, before routing (IPVS does it
#   after, in FORWARD), so when the VIP is a local address the kernel would drop them as martians
#   (fib_validate_source) without it.
NAT_SYSCTLS = (("net.ipv4.ip_forward", 1), ("net.ipv4.conf.all.accept_local", 1))
# The same for IPv6 masquerading real servers: the kernel forwards NAT66-rewritten packets. IPv6
# has no accept_local: a packet whose source is a local address is not dropped on input
# (ip6_rcv_core checks only loopback and multicast sources).
NAT6_SYSCTLS = (("net.ipv6.conf.all.forwarding", 1),)

# Real servers whose next hop a batch resolves ahead of their first packet; the others are
# resolved by their first packet (resolving thousands of neighbours at once floods the LAN).
_PREPARE_MAX = 256

ServiceKey = tuple[int, int, int, str, int]
DestKey = tuple[int, str, int]


def service_key(spec: ServiceSpec | ServiceInfo) -> ServiceKey:
    """(fwmark, af, protocol, addr, port), the address normalised (``10.0.0.01`` is no address,
    ``2001:DB8::1`` and ``2001:db8::1`` are one)."""
    if spec.fwmark:
        return (spec.fwmark, spec.af, 0, "", 0)
    return (0, spec.af, spec.protocol, _norm(spec.addr), spec.port)


def dest_key(dest: DestSpec | DestInfo) -> DestKey:
    return (dest.af, _norm(dest.addr), dest.port)


def _norm(addr: str) -> str:
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return addr


class Director:
    """The :class:`ControlAPI` pylvsd serves: the engine's, plus what the host must do about it."""

    def __init__(
        self,
        engine: Engine | EngineGroup,
        backend: Backend,
        strict_routes: bool = False,
        write_sysctl: Callable[[str, int | str], str] = netcfg.write_sysctl,
        remember_sysctls: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.strict_routes = strict_routes
        self._write_sysctl = write_sysctl
        self._remember = remember_sysctls
        self._saved_sysctls: dict[str, str] = {}
        self._batch_depth = 0
        self._rules_stale = False
        # Real servers added in a batch whose path is resolved at its end (address -> method).
        self._pending_paths: dict[str, int] = {}
        self._warned: set[str] = set()
        # Real servers with no route right now (their packets are dropped and counted).
        self.unroutable: set[str] = set()
        # The sync daemons: here, or in every data-plane worker (pylvs.io.workers).
        self.sync: SyncManager | GroupSync = (
            SyncManager(engine) if isinstance(engine, Engine) else engine.sync
        )

    # -- pass-through operations ----------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Rows of the operation table with no host side effect go to the engine as they are.
        if name in OPERATION_BY_NAME:
            return getattr(self.engine, name)
        raise AttributeError(name)

    # -- rules ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Apply the rules once, at the end of a block of operations (a configuration load)."""
        self._batch_depth += 1
        try:
            if isinstance(self.engine, Engine):
                with self.engine.bulk():
                    yield
            else:
                yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self._resolve_pending()
                if self._rules_stale:
                    self._apply_rules("apply")

    def _rules_changed(self, op: str) -> None:
        self._rules_stale = True
        if self._batch_depth == 0:
            self._apply_rules(op)

    def _apply_rules(self, op: str) -> None:
        infos = self.engine.services()
        try:
            self.backend.set_services(infos)
        except BackendError as exc:
            raise IPVSError(errno.EIO, op, f"cannot update the packet rules: {exc}") from None
        self._rules_stale = False
        if self.backend.kernel_forwards:
            masq = {d.af for s in infos for d in s.dests if d.fwd == FwdMethod.MASQ}
            self._nat_sysctls(AF_INET in masq, AF_INET6 in masq)

    def _undoable(self, op: str, change: Callable[[], None], undo: Callable[[], None]) -> None:
        """Run an engine change and bring the rules up to date; undo the change if the rules
        cannot follow, so a failed operation leaves no trace."""
        change()
        try:
            self._rules_changed(op)
        except IPVSError:
            with contextlib.suppress(IPVSError):
                undo()
            self._rules_stale = False
            raise

    # -- sysctls --------------------------------------------------------------------------------

    def _nat_sysctls(self, masq: bool, masq6: bool = False) -> None:
        """Set the sysctls NAT needs while masquerading real servers of that family exist,
        and put back those no longer needed."""
        wanted = (NAT_SYSCTLS if masq else ()) + (NAT6_SYSCTLS if masq6 else ())
        keys = {key for key, _value in wanted}
        changed = False
        for key, value in wanted:
            if key in self._saved_sysctls:
                continue
            try:
                self._saved_sysctls[key] = self._write_sysctl(key, value)
                changed = True
            except (OSError, netcfg.NetcfgError) as exc:
                log.error("cannot set %s=%s for NAT: %s", key, value, exc)
        if changed:
            log.info(
                "masquerading real servers: %s",
                ", ".join(f"{k}={v}" for k, v in wanted),
            )
        for key in [k for k in self._saved_sysctls if k not in keys]:
            with contextlib.suppress(OSError, netcfg.NetcfgError):
                self._write_sysctl(key, self._saved_sysctls.pop(key))
            changed = True
        if changed and self._remember is not None:
            self._remember(dict(self._saved_sysctls))

    def restore(self) -> None:
        """Undo the host changes (sysctls); the backend removes its own rules."""
        for key, old in self._saved_sysctls.items():
            with contextlib.suppress(OSError, netcfg.NetcfgError):
                self._write_sysctl(key, old)
        self._saved_sysctls.clear()
        if self._remember is not None:
            self._remember({})

    # -- routes ---------------------------------------------------------------------------------

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _check_vip(self, spec: ServiceSpec, op: str) -> None:
        if spec.fwmark or spec.af not in (AF_INET, AF_INET6):
            return
        try:
            netcfg.route_get(spec.addr)
        except netcfg.NoRouteError:
            if self.strict_routes:
                raise IPVSError(
                    errno.ENETUNREACH, op, f"no route to virtual address {spec.addr}"
                ) from None
            self._warn_once(
                f"vip {spec.addr}",
                "virtual address %s has no route yet (accepted, as IPVS does): replies to its "
                "clients need one",
                spec.addr,
            )
        except (ValueError, netcfg.NetcfgError):
            return  # the engine reports a malformed address with IPVS's errno

    def _route_dest(self, dest: DestSpec, op: str) -> None:
        """Refuse an unroutable real server in strict mode (before the engine changes)."""
        if not self.strict_routes or dest.af not in (AF_INET, AF_INET6):
            return
        try:
            netcfg.route_get(dest.addr)
        except netcfg.NoRouteError:
            raise IPVSError(
                errno.ENETUNREACH, op, f"real server {dest.addr} is unreachable (no route)"
            ) from None
        except (ValueError, netcfg.NetcfgError):
            return

    def resolve_path(self, addr: str, fwd: int) -> None:
        """Record route source and MTU (0: no route) towards one real server (IPv4 or IPv6:
        the engine's ``set_path(6, ...)`` gives an IPv6 tunnel its outer source and MTU)."""
        try:
            route: netcfg.RouteInfo | None = netcfg.route_get(addr)
        except Exception:  # pyroute2 errors are not all OSErrors; a lookup must not fail
            route = None
        path = self._path(addr, fwd, route)
        if path is not None:
            self.engine.set_path(*path)

    def _resolve_all(self, addrs: dict[str, int]) -> None:
        """:meth:`resolve_path` for many real servers: one netlink socket, one engine call."""
        try:
            routes = netcfg.routes_get(addrs)
        except Exception:
            routes = {}
        paths = [self._path(a, fwd, routes.get(a)) for a, fwd in addrs.items()]
        found = [p for p in paths if p is not None]
        if found:
            self.engine.set_paths(found)

    def _path(
        self, addr: str, fwd: int, route: netcfg.RouteInfo | None
    ) -> tuple[int, int, int, int] | None:
        """(af, address, route source, MTU) towards one real server, MTU 0 when there is
        no route (or the address is the director's own); None for what is no IP address."""
        try:
            af, daddr = addr_from_text(addr)
        except ValueError:
            return None
        if route is None or route.local:
            if addr not in self.unroutable:
                self.unroutable.add(addr)
                log.warning(
                    "real server %s: no route; its packets are dropped until one appears", addr
                )
            return (af, daddr, 0, 0)
        if addr in self.unroutable:
            self.unroutable.discard(addr)
            log.info("real server %s: route via %s", addr, route.gateway or "the link")
        _af, src = addr_from_text(route.src) if route.src else (af, 0)
        if fwd == FwdMethod.ROUTE and route.gateway:
            self._warn_once(
                f"gw {addr}",
                "real server %s (direct routing) is behind gateway %s: DR needs it on-link",
                addr,
                route.gateway,
            )
        return (af, daddr, src, route.mtu)

    def resolve_paths(self) -> None:
        """Resolve every real server again (routes or addresses changed)."""
        seen: dict[str, int] = {}
        for svc in self.engine.services():
            for d in svc.dests:
                if d.af in (AF_INET, AF_INET6):
                    seen.setdefault(d.addr, d.fwd)
        self._resolve_all(seen)
        self.unroutable &= set(seen)

    # -- ControlAPI with side effects --------------------------------------------------------

    def add_service(self, spec: ServiceSpec) -> None:
        self.backend.check_service(spec, "add_service")
        self._check_vip(spec, "add_service")
        self._undoable(
            "add_service",
            lambda: self.engine.add_service(spec),
            lambda: self.engine.del_service(spec),
        )

    def edit_service(self, spec: ServiceSpec) -> None:
        self.backend.check_service(spec, "update_service")
        old = _spec_of(self.engine.get_service(spec)) if self._exists(spec) else None
        self._undoable(
            "update_service",
            lambda: self.engine.edit_service(spec),
            lambda: self.engine.edit_service(old) if old is not None else None,
        )

    def _exists(self, spec: ServiceSpec) -> bool:
        try:
            self.engine.get_service(spec)
        except IPVSError:
            return False
        return True

    def del_service(self, spec: ServiceSpec) -> None:
        self.engine.del_service(spec)
        self._rules_changed("del_service")

    def add_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self._route_dest(dest, "add_dest")
        self._undoable(
            "add_dest",
            lambda: self.engine.add_dest(svc, dest),
            lambda: self.engine.del_dest(svc, dest),
        )
        self._after_dest(dest)

    def edit_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self._route_dest(dest, "update_dest")
        self.engine.edit_dest(svc, dest)
        self._rules_changed("update_dest")
        self._after_dest(dest)

    def _after_dest(self, dest: DestSpec) -> None:
        if dest.af not in (AF_INET, AF_INET6):
            return
        if self._batch_depth:
            # Resolved once per address at the end of the batch.
            self._pending_paths.setdefault(_norm(dest.addr), dest.fwd)
            return
        self.resolve_path(dest.addr, dest.fwd)
        self.backend.prepare_dest(addr_from_text(dest.addr)[1])

    def _resolve_pending(self) -> None:
        pending, self._pending_paths = self._pending_paths, {}
        self._resolve_all(pending)
        for addr in list(pending)[:_PREPARE_MAX]:
            self.backend.prepare_dest(addr_from_text(addr)[1])

    def del_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.engine.del_dest(svc, dest)
        self._rules_changed("del_dest")

    def flush(self) -> None:
        self.engine.flush()
        self._rules_changed("flush")

    def start_daemon(self, spec: DaemonSpec) -> None:
        self.sync.start(spec)

    def stop_daemon(self, state: str) -> None:
        self.sync.stop(state)

    def daemons(self) -> list[DaemonInfo]:
        return self.sync.daemons()

    def status(self) -> dict[str, Any]:
        return {"unroutable": sorted(self.unroutable), "strict_routes": self.strict_routes}


def _spec_of(info: ServiceInfo) -> ServiceSpec:
    """The ServiceSpec that would set a service up as ``info`` shows it."""
    return ServiceSpec(
        af=info.af,
        protocol=info.protocol,
        addr=info.addr,
        port=info.port,
        fwmark=info.fwmark,
        scheduler=info.scheduler,
        persistent=bool(info.flags & ServiceFlags.PERSISTENT),
        timeout=info.timeout if info.flags & ServiceFlags.PERSISTENT else ServiceSpec.timeout,
        netmask=info.netmask,
        sched_flags=info.flags
        & int(ServiceFlags.SCHED1 | ServiceFlags.SCHED2 | ServiceFlags.SCHED3),
        ops=bool(info.flags & ServiceFlags.ONEPACKET),
        pe_name=info.pe_name,
    )
