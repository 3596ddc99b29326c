"""The director, and a configuration applied to it as pylvsd does (the health component's
ldirectord start inside one batch), with a fake backend (no host changes) and the routing table
faked."""

from __future__ import annotations

import errno
import random
from collections.abc import Sequence
from typing import Any

import pytest

from pylvs import director as director_module
from pylvs.config import parse
from pylvs.core.control import DestSpec, IPVSError, ServiceInfo, ServiceSpec
from pylvs.core.engine import Engine
from pylvs.core.service import FwdMethod
from pylvs.director import Director
from pylvs.health.monitor import HealthMonitor
from pylvs.io import netcfg
from pylvs.io.backend import BackendError

VIP = "203.0.113.10"


class FakeBackend:
    name = "fake"
    kernel_forwards = True

    def __init__(self) -> None:
        self.rule_updates: list[list[ServiceInfo]] = []
        self.prepared: list[int] = []
        self.fail = False
        self.refuse_fwmark = False

    def check_service(self, spec: ServiceSpec, op: str) -> None:
        if self.refuse_fwmark and spec.fwmark:
            raise IPVSError(errno.EOPNOTSUPP, op, "no fwmark here", limit=True)

    def set_services(self, services: Sequence[ServiceInfo]) -> None:
        if self.fail:
            raise BackendError("iptables-restore: invalid")
        self.rule_updates.append(list(services))

    def prepare_dest(self, addr: int) -> None:
        self.prepared.append(addr)

    def forget_hops(self) -> None:
        pass


@pytest.fixture
def routes(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The addresses the fake routing table can reach (anything else: no route)."""
    reachable = {VIP, "198.51.100.11", "198.51.100.12", "198.51.100.13"}

    def route_get(addr: str) -> netcfg.RouteInfo:
        if addr not in reachable:
            raise netcfg.NoRouteError(f"no route to {addr}")
        return netcfg.RouteInfo(addr, 2, "198.51.100.1", None, 1500, addr == VIP)

    def routes_get(addrs: Sequence[str]) -> dict[str, netcfg.RouteInfo | None]:
        return {a: route_get(a) if a in reachable else None for a in addrs}

    monkeypatch.setattr(director_module.netcfg, "route_get", route_get)
    monkeypatch.setattr(director_module.netcfg, "routes_get", routes_get)
    return reachable


def _director(**kw: Any) -> tuple[Director, FakeBackend, dict[str, Any]]:
    backend = FakeBackend()
    sysctls: dict[str, Any] = {}

    def write(key: str, value: Any) -> str:
        old = str(sysctls.get(key, 0))
        sysctls[key] = value
        return old

    d = Director(Engine(random.Random(1)), backend, write_sysctl=write, **kw)  # type: ignore[arg-type]
    return d, backend, sysctls


def _svc(port: int = 80, sched: str = "wrr") -> ServiceSpec:
    return ServiceSpec(protocol=6, addr=VIP, port=port, scheduler=sched)


def _dest(addr: str, weight: int = 1, fwd: FwdMethod = FwdMethod.MASQ) -> DestSpec:
    return DestSpec(addr=addr, port=80, weight=weight, fwd=int(fwd))


def _weights(d: Director) -> dict[str, int]:
    return {x.addr: x.weight for s in d.services() for x in s.dests}


class _Loop:
    def call_soon(self, fn: Any, *args: Any) -> None:
        raise AssertionError("checktype=on runs no check")


def _cf(dests: Sequence[DestSpec], sched: str = "wrr") -> str:
    reals = "".join(f"\treal={x.addr}:80 masq {x.weight}\n" for x in dests)
    return f"virtual={VIP}:80\n{reals}\tscheduler={sched}\n\tprotocol=tcp\n\tchecktype=on\n"


def _apply(d: Director, text: str, monitor: HealthMonitor | None = None) -> HealthMonitor:
    """What pylvsd does with a configuration file: the health component's start, one batch."""
    mon = monitor or HealthMonitor(d, _Loop(), workers=1, batch=d.batch)  # type: ignore[arg-type]
    with d.batch():
        mon.apply(parse(text, "ldirectord.cf"), reloading=monitor is not None)
    return mon


def test_a_configuration_applies_with_one_rule_update_then_changes_what_differs(
    routes: set[str],
) -> None:
    d, backend, sysctls = _director()
    mon = _apply(d, _cf([_dest("198.51.100.11", 3), _dest("198.51.100.12")]))
    assert _weights(d) == {"198.51.100.11": 3, "198.51.100.12": 1}
    assert len(backend.rule_updates) == 1  # one rule update for the whole load
    assert sysctls == {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.accept_local": 1}
    _apply(d, _cf([_dest("198.51.100.11", 3), _dest("198.51.100.13", 2)]), mon)
    assert _weights(d) == {"198.51.100.11": 3, "198.51.100.13": 2}
    assert len(backend.rule_updates) == 2
    _apply(d, _cf([_dest("198.51.100.11", 3), _dest("198.51.100.13", 2)], sched="rr"), mon)
    assert d.services()[0].scheduler == "rr"
    _apply(d, f"virtual={VIP}:81\n\treal=198.51.100.11:81 masq\n\tchecktype=off\n", mon)
    assert [s.port for s in d.services()] == [81]  # the old virtual purged, the new one empty
    assert sysctls["net.ipv4.ip_forward"] == "0"  # restored with the last NAT real server


def test_unroutable_entries_are_accepted_with_no_path(routes: set[str]) -> None:
    d, _backend, _ = _director()
    routes.discard(VIP)
    d.add_service(_svc())  # the kernel accepts it; before, ENETUNREACH
    d.add_dest(_svc(), _dest("192.0.2.99"))
    assert d.unroutable == {"192.0.2.99"}
    assert isinstance(d.engine, Engine)
    (svc,) = d.engine.services_list
    assert svc.dests[0].path_mtu == 0  # the engine drops and counts its packets
    routes.add("192.0.2.99")
    d.resolve_paths()  # what the route tracker does on an rtnetlink change
    assert d.unroutable == set() and svc.dests[0].path_mtu == 1500


def test_strict_routes_refuse(routes: set[str]) -> None:
    d, _backend, _ = _director(strict_routes=True)
    routes.discard(VIP)
    with pytest.raises(IPVSError) as exc:
        d.add_service(_svc())
    assert exc.value.errno == errno.ENETUNREACH and d.services() == []


def test_a_failed_rule_update_leaves_no_trace(routes: set[str]) -> None:
    d, backend, _ = _director()
    backend.fail = True
    with pytest.raises(IPVSError) as exc:
        d.add_service(_svc())
    assert exc.value.errno == errno.EIO
    assert d.services() == []
    backend.fail = False
    d.add_service(_svc())
    backend.fail = True
    with pytest.raises(IPVSError):
        d.add_dest(_svc(), _dest("198.51.100.11"))
    assert d.services()[0].dests == []
    with pytest.raises(IPVSError):
        d.edit_service(_svc(sched="rr"))
    assert d.services()[0].scheduler == "wrr"


def test_backend_refusals_and_sync_with_workers(routes: set[str]) -> None:
    d, backend, _ = _director()
    backend.refuse_fwmark = True
    with pytest.raises(IPVSError) as exc:
        d.add_service(ServiceSpec(fwmark=5))
    assert exc.value.limit and d.services() == []
    from pylvs.core.control import DaemonSpec
    from pylvs.io.workers import EngineGroup

    group = Director(EngineGroup(2), backend)  # type: ignore[arg-type]
    with pytest.raises(IPVSError) as exc:
        group.start_daemon(DaemonSpec(state="master", mcast_ifn="lo"))
    assert exc.value.limit and "--workers 2" in exc.value.detail
    # One worker (the data plane on PyPy): its sync daemons run in the worker.
    one = EngineGroup(1)
    assert Director(one, backend).sync is one.sync  # type: ignore[arg-type]


def test_a_large_configuration_applies_with_one_update_of_each_kind(
    routes: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, 16,384 real servers took 17 s to apply (38 s to reload): one rule update, one
    scheduler update and one route lookup per real server, each over the whole table. Now each
    happens once for the whole configuration (the work is linear in its size)."""
    d, backend, _ = _director()
    lookups: list[int] = []
    real_routes_get = director_module.netcfg.routes_get

    def counting(addrs: Sequence[str]) -> dict[str, netcfg.RouteInfo | None]:
        lookups.append(len(addrs))
        return real_routes_get(addrs)

    monkeypatch.setattr(director_module.netcfg, "routes_get", counting)
    dests = [_dest(f"10.{i >> 8}.{i & 255}.1", 1 + i % 3) for i in range(4096)]
    for dest in dests:
        routes.add(dest.addr)
    assert isinstance(d.engine, Engine)
    updates = 0
    mon = _apply(d, _cf(dests[:1]))
    scheduler = d.engine.services_list[0].scheduler
    assert scheduler is not None
    real_update = scheduler.update

    def count_update(svc: Any) -> None:
        nonlocal updates
        updates += 1
        real_update(svc)

    monkeypatch.setattr(scheduler, "update", count_update)
    backend.rule_updates.clear()
    lookups.clear()
    _apply(d, _cf(dests), mon)
    # One rule update; the scheduler updated by the virtual's edit (ldirectord's -E) and once at
    # the end of the load; one route lookup for the 4095 new addresses.
    assert (len(backend.rule_updates), updates, lookups) == (1, 2, [4095])
    assert len(d.services()[0].dests) == 4096
    reversed_weights = [_dest(x.addr, 9) for x in reversed(dests[2048:])]
    _apply(d, _cf(reversed_weights), mon)  # 2048 out, 2048 edited
    assert (len(backend.rule_updates), updates) == (2, 4)
    assert sorted(x.weight for x in d.services()[0].dests) == [9] * 2048


def test_data_plane_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    import pylvs.daemon as daemon

    monkeypatch.setattr(daemon, "pypy_runtime", lambda: "/opt/pypy")
    assert daemon.data_plane_runtime("afpacket", "auto") == "/opt/pypy"
    assert daemon.data_plane_runtime("afpacket", "cpython") is None
    assert daemon.data_plane_runtime("nfqueue", "cpython") is None
    monkeypatch.setattr(daemon, "pypy_runtime", lambda: None)
    assert daemon.data_plane_runtime("afpacket", "auto") is None  # CPython where PyPy is missing
    with pytest.raises(ValueError, match="no PyPy environment"):
        daemon.data_plane_runtime("afpacket", "pypy")
