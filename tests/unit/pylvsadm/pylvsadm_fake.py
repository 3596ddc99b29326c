"""A small in-memory ControlAPI for pylvsadm tests: records every call and refuses with the errnos
ip_vs_ctl.c returns (EEXIST, ESRCH, ENOENT), so command lines can be checked end to end."""

from __future__ import annotations

import errno
import io
from dataclasses import replace
from typing import Any

from pylvs.cli.pylvsadm import main
from pylvs.core.control import (
    ConnInfo,
    DestInfo,
    DestSpec,
    IPVSError,
    ServiceInfo,
    ServiceSpec,
    Timeouts,
)
from pylvs.core.schedulers import available
from pylvs.core.service import ServiceFlags

# The kernel refuses names no scheduler registered: the same set as the engine's.
_SCHEDULERS = set(available())


def _svc_key(spec: ServiceSpec) -> tuple[Any, ...]:
    if spec.fwmark:
        return ("fwm", spec.af, spec.fwmark)
    return (spec.af, spec.protocol, spec.addr, spec.port)


class FakeControl:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.table: dict[tuple[Any, ...], ServiceInfo] = {}
        self.timeouts = Timeouts()
        self.conn_list: list[ConnInfo] = []

    def _find(self, spec: ServiceSpec, op: str) -> ServiceInfo:
        svc = self.table.get(_svc_key(spec))
        if svc is None:
            raise IPVSError(errno.ESRCH, op)
        return svc

    def _apply(self, info: ServiceInfo, spec: ServiceSpec, op: str) -> None:
        if spec.scheduler not in _SCHEDULERS or spec.pe_name not in ("", "sip"):
            raise IPVSError(errno.ENOENT, op)
        flags = spec.sched_flags
        if spec.persistent:
            flags |= ServiceFlags.PERSISTENT
        if spec.ops:
            flags |= ServiceFlags.ONEPACKET
        info.scheduler = spec.scheduler
        info.flags = int(flags)
        info.timeout = spec.timeout if spec.persistent else 0
        info.netmask = spec.netmask
        info.pe_name = spec.pe_name

    def add_service(self, spec: ServiceSpec) -> None:
        self.calls.append(("add_service", spec))
        if _svc_key(spec) in self.table:
            raise IPVSError(errno.EEXIST, "add_service")
        info = ServiceInfo(
            af=spec.af,
            protocol=spec.protocol,
            addr="" if spec.fwmark else spec.addr,
            port=spec.port,
            fwmark=spec.fwmark,
            scheduler="",
            flags=0,
            timeout=0,
            netmask=spec.netmask,
        )
        self._apply(info, spec, "add_service")
        self.table[_svc_key(spec)] = info

    def edit_service(self, spec: ServiceSpec) -> None:
        self.calls.append(("edit_service", spec))
        self._apply(self._find(spec, "update_service"), spec, "update_service")

    def del_service(self, spec: ServiceSpec) -> None:
        self.calls.append(("del_service", spec))
        self._find(spec, "del_service")
        del self.table[_svc_key(spec)]

    def _dest(self, svc: ServiceInfo, dest: DestSpec) -> DestInfo | None:
        for d in svc.dests:
            if (d.af, d.addr, d.port) == (dest.af, dest.addr, dest.port):
                return d
        return None

    def add_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.calls.append(("add_dest", (svc, dest)))
        info = self._find(svc, "add_dest")
        if self._dest(info, dest) is not None:
            raise IPVSError(errno.EEXIST, "add_dest")
        info.dests.append(
            DestInfo(
                af=dest.af,
                addr=dest.addr,
                port=dest.port,
                fwd=dest.fwd,
                weight=dest.weight,
                u_threshold=dest.u_threshold,
                l_threshold=dest.l_threshold,
                activeconns=0,
                inactconns=0,
                persistconns=0,
                tun_type=dest.tun_type,
                tun_port=dest.tun_port,
                tun_flags=dest.tun_flags,
            )
        )

    def edit_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.calls.append(("edit_dest", (svc, dest)))
        info = self._find(svc, "update_dest")
        old = self._dest(info, dest)
        if old is None:
            raise IPVSError(errno.ENOENT, "update_dest")
        new = replace(
            old,
            fwd=dest.fwd,
            weight=dest.weight,
            u_threshold=dest.u_threshold,
            l_threshold=dest.l_threshold,
            tun_type=dest.tun_type,
            tun_port=dest.tun_port,
            tun_flags=dest.tun_flags,
        )
        info.dests[info.dests.index(old)] = new

    def del_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.calls.append(("del_dest", (svc, dest)))
        info = self._find(svc, "del_dest")
        old = self._dest(info, dest)
        if old is None:
            raise IPVSError(errno.ENOENT, "del_dest")
        info.dests.remove(old)

    def flush(self) -> None:
        self.calls.append(("flush", None))
        self.table.clear()

    def zero(self, svc: ServiceSpec | None = None) -> None:
        self.calls.append(("zero", svc))
        if svc is not None:
            self._find(svc, "zero_service")

    def set_timeouts(self, timeouts: Timeouts) -> None:
        self.calls.append(("set_timeouts", timeouts))
        self.timeouts = Timeouts(
            tcp=timeouts.tcp or self.timeouts.tcp,
            tcpfin=timeouts.tcpfin or self.timeouts.tcpfin,
            udp=timeouts.udp or self.timeouts.udp,
        )

    def get_timeouts(self) -> Timeouts:
        return self.timeouts

    def services(self) -> list[ServiceInfo]:
        return list(self.table.values())

    def get_service(self, spec: ServiceSpec) -> ServiceInfo:
        return self._find(spec, "get_service")

    def conns(self) -> list[ConnInfo]:
        return list(self.conn_list)

    def total_stats(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return ((0, 0, 0, 0, 0), (0, 0, 0, 0, 0))


def run(control: Any, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """pylvsadm with ``args``; (exit code, stdout, stderr). The program name is ``ipvsadm``."""
    out, err = io.StringIO(), io.StringIO()
    rc = main(
        list(args),
        control=control,
        stdin=io.StringIO(stdin),
        stdout=out,
        stderr=err,
        prog="ipvsadm",
    )
    return rc, out.getvalue(), err.getvalue()


def run_line(control: Any, line: str, stdin: str = "") -> tuple[int, str, str]:
    return run(control, *line.split(), stdin=stdin)
