"""The NFQUEUE backend's own behaviour: its packet loop in pylvsd (CPython) or in a worker on the
PyPy environment (``--data-plane pypy``), NAT both ways, and fwmark services.

The forwarding cases (NAT, DR, TUN x TCP, UDP), the rules, fail-open and a taken queue run for this
backend through the ``backend`` parameter of the whole suite (conftest.py, test_daemon.py).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from lvslab import (
    FWD,
    PORT,
    PROTO,
    random_bytes,
    setup_realservers,
    sha,
    start_daemon,
    start_server,
    tcp_exchange,
    tcp_open,
    udp_exchange,
    undo_realservers,
)

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.daemon import pypy_runtime
from pylvs.testing.netns import Lab, build_lvs_lab

DATA_PLANES = ["cpython", "pypy"]


def _skip_without(data_plane: str) -> None:
    if data_plane == "pypy" and pypy_runtime() is None:
        pytest.skip("no PyPy environment (.venv-pypy): scripts/setup builds it")


def _check_runtime(details: dict[str, object], data_plane: str) -> None:
    if data_plane == "pypy":
        pids = details["worker_pids"]
        assert isinstance(pids, list) and len(pids) == 1
        assert "pypy" in os.readlink(f"/proc/{pids[0]}/exe")
        assert "pypy" in str(details["worker_runtime"])
    else:
        assert details["worker_pids"] == [] and details["worker_runtime"] == "in pylvsd"


@pytest.mark.parametrize("data_plane", DATA_PLANES)
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_nat_on_each_data_plane(tmp_path: Path, proto: str, data_plane: str) -> None:
    """NAT through the queue, both directions rewritten, in pylvsd or on PyPy; the listings
    come from where the engine runs."""
    _skip_without(data_plane)
    with Lab() as lab:
        topo = build_lvs_lab(lab, 2)
        shorts = ["r1", "r2"]
        try:
            setup_realservers(lab, topo, "nat", shorts)
            for short in shorts:
                start_server(lab, short, proto)
            daemon = start_daemon(
                lab, tmp_path / "pylvsd.log", "nfqueue", "--data-plane", data_plane
            )
            _check_runtime(daemon.ctl.status()["details"], data_plane)
            svc = ServiceSpec(protocol=PROTO[proto], addr=topo.vip, port=PORT, scheduler="rr")
            daemon.ctl.add_service(svc)
            for rip in topo.reals:
                daemon.ctl.add_dest(svc, DestSpec(addr=rip, port=PORT, fwd=int(FWD["nat"])))
            served: Counter[str] = Counter()
            n = 6
            for _ in range(n):
                if proto == "tcp":
                    payload = random_bytes(200_000)
                    ident, echoed = tcp_exchange(tcp_open(lab, topo.vip), payload)
                    assert sha(echoed) == sha(payload)
                else:
                    payloads = [random_bytes(k) for k in (1, 3, 1000, 1472)]
                    ident, replies = udp_exchange(lab, topo.vip, payloads)
                    assert replies == payloads
                served[ident] += 1
            assert served == {"r1": n // 2, "r2": n // 2}
            conns = [c for c in daemon.ctl.conns() if not c.template]
            assert len(conns) == n
            (info,) = daemon.ctl.services()
            assert sum(d.stats[0] for d in info.dests) == n
            assert all(d.stats[2] > 0 for d in info.dests)  # replies seen (outpkts)
            status = daemon.ctl.status()
            assert status["handled"] > 0 and status["failures"] == 0
            details = status["details"]
            assert details["netlink_errors"] == 0 and details["enobufs"] == 0
            # Every packet got its verdict: none is left in the kernel's queue.
            assert details.get("queue_total", 0) == 0
        finally:
            undo_realservers(lab, shorts)


@pytest.mark.parametrize("data_plane", DATA_PLANES)
def test_fwmark_nat(tmp_path: Path, data_plane: str) -> None:
    """A fwmark service: the administrator's mangle rule marks the traffic, the queue hands the
    mark to the engine (which only reads it while a fwmark service exists)."""
    _skip_without(data_plane)
    with Lab() as lab:
        topo = build_lvs_lab(lab, 2)
        shorts = ["r1", "r2"]
        try:
            setup_realservers(lab, topo, "nat", shorts)
            for short in shorts:
                start_server(lab, short, "tcp")
            mark = ["-t", "mangle", "-A", "PREROUTING", "-d", f"{topo.vip}/32", "-p", "tcp"]
            mark += ["--dport", str(PORT), "-j", "MARK", "--set-mark", "7"]
            lab.run("d", ["iptables", "-w", *mark])
            daemon = start_daemon(
                lab, tmp_path / "pylvsd.log", "nfqueue", "--data-plane", data_plane
            )
            _check_runtime(daemon.ctl.status()["details"], data_plane)
            svc = ServiceSpec(fwmark=7, scheduler="rr")
            daemon.ctl.add_service(svc)
            for rip in topo.reals:
                daemon.ctl.add_dest(svc, DestSpec(addr=rip, port=PORT, fwd=int(FWD["nat"])))
            served: Counter[str] = Counter()
            for _ in range(4):
                payload = random_bytes(20_000)
                ident, echoed = tcp_exchange(tcp_open(lab, topo.vip), payload)
                assert sha(echoed) == sha(payload)
                served[ident] += 1
            assert served == {"r1": 2, "r2": 2}
            (info,) = daemon.ctl.services()
            assert info.fwmark == 7 and sum(d.stats[0] for d in info.dests) == 4
            assert daemon.ctl.status()["failures"] == 0
        finally:
            undo_realservers(lab, shorts)
