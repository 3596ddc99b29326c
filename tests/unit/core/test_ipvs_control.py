"""The control operations with the kernel's refusals (errno) and ipvsadm's defaults."""

import errno

import pytest

from pylvs.core.control import DestSpec, IPVSError, ServiceSpec, Timeouts
from pylvs.core.ipvs import IPVS
from pylvs.core.service import IPPROTO_TCP, IPPROTO_UDP, FwdMethod

VS = ServiceSpec(protocol=IPPROTO_TCP, addr="192.0.2.10", port=80, scheduler="rr")


def rs(addr: str, **kw: int) -> DestSpec:
    return DestSpec(addr=addr, port=80, **kw)


def err(fn, *args) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(IPVSError) as info:
        fn(*args)
    return info.value.errno, info.value.op


def test_add_list_edit_delete() -> None:
    ipvs = IPVS()
    ipvs.add_service(VS)
    ipvs.add_dest(VS, rs("198.51.100.1", weight=2))
    ipvs.add_dest(VS, rs("198.51.100.2", fwd=FwdMethod.MASQ))
    [svc] = ipvs.services()
    assert (svc.addr, svc.port, svc.scheduler, svc.protocol) == ("192.0.2.10", 80, "rr", 6)
    assert [(d.addr, d.weight, d.fwd) for d in svc.dests] == [
        ("198.51.100.1", 2, FwdMethod.ROUTE),
        ("198.51.100.2", 1, FwdMethod.MASQ),
    ]
    ipvs.edit_dest(VS, rs("198.51.100.1", weight=0))
    assert ipvs.get_service(VS).dests[0].weight == 0
    ipvs.edit_service(
        ServiceSpec(protocol=IPPROTO_TCP, addr="192.0.2.10", port=80, persistent=True)
    )
    svc = ipvs.get_service(VS)
    assert (svc.scheduler, svc.flags & 1, svc.timeout) == ("wlc", 1, 360)
    ipvs.del_dest(VS, rs("198.51.100.2"))
    assert len(ipvs.get_service(VS).dests) == 1
    ipvs.del_service(VS)
    assert ipvs.services() == []


def test_refusals_carry_the_kernel_errno() -> None:
    ipvs = IPVS()
    assert err(ipvs.edit_service, VS) == (errno.ESRCH, "update_service")
    assert err(ipvs.del_service, VS) == (errno.ESRCH, "del_service")
    assert err(ipvs.add_dest, VS, rs("198.51.100.1")) == (errno.ESRCH, "add_dest")
    ipvs.add_service(VS)
    assert err(ipvs.add_service, VS) == (errno.EEXIST, "add_service")
    assert err(ipvs.edit_dest, VS, rs("198.51.100.1")) == (errno.ENOENT, "update_dest")
    assert err(ipvs.del_dest, VS, rs("198.51.100.1")) == (errno.ENOENT, "del_dest")
    ipvs.add_dest(VS, rs("198.51.100.1"))
    assert err(ipvs.add_dest, VS, rs("198.51.100.1")) == (errno.EEXIST, "add_dest")
    bad = ServiceSpec(protocol=IPPROTO_UDP, addr="192.0.2.10", port=53, scheduler="nope")
    assert err(ipvs.add_service, bad) == (errno.ENOENT, "add_service")
    assert (
        err(ipvs.add_dest, VS, rs("198.51.100.3", u_threshold=5, l_threshold=9))[0] == errno.ERANGE
    )
    # A refused edit leaves the service as it was.
    assert (
        err(
            ipvs.edit_service,
            ServiceSpec(protocol=IPPROTO_TCP, addr="192.0.2.10", port=80, scheduler="nope"),
        )[0]
        == errno.ENOENT
    )
    assert ipvs.get_service(VS).scheduler == "rr"


def test_fwmark_service_and_flush() -> None:
    ipvs = IPVS()
    fwm = ServiceSpec(
        fwmark=7, scheduler="sh", sched_flags=0x8 | 0x10, persistent=True, timeout=60, netmask=24
    )
    ipvs.add_service(fwm)
    ipvs.add_service(VS)
    [f, _] = ipvs.services()
    assert (f.fwmark, f.addr, f.flags, f.timeout, f.netmask) == (7, "", 0x1 | 0x8 | 0x10, 60, 24)
    ipvs.flush()
    assert ipvs.services() == []


def test_timeouts_set_and_zero_keeps_value() -> None:
    ipvs = IPVS()
    assert ipvs.get_timeouts() == Timeouts(900, 120, 300)
    ipvs.set_timeouts(Timeouts(600, 0, 30))
    assert ipvs.get_timeouts() == Timeouts(600, 120, 30)
    assert err(ipvs.set_timeouts, Timeouts(-1, 0, 0))[0] == errno.EINVAL
