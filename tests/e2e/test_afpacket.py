"""The AF_PACKET backend's own behaviour: its DROP rules, a crash (fail closed), fanout workers.

The forwarding cases (NAT, DR, TUN x TCP, UDP, and the kernel selftest) run for this backend
through the ``backend`` parameter of the whole suite (conftest.py).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import pytest
from lvslab import (
    FWD,
    PORT,
    PROTO,
    REPO,
    farm,
    pylvs_argv,
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
from pylvs.core.service import IPPROTO_TCP, FwdMethod
from pylvs.daemon import pypy_runtime
from pylvs.io import netcfg
from pylvs.testing.netns import Lab, build_lvs_lab, wait_until


def _raw_rules(lab: Lab, short: str = "d") -> str:
    return str(lab.run(short, ["iptables", "-w", "-t", "raw", "-S"]).stdout.decode())


def test_rules_follow_services_and_go_on_stop(tmp_path: Path) -> None:
    with Lab() as lab:
        topo = build_lvs_lab(lab, 1)
        daemon = start_daemon(lab, tmp_path / "pylvsd.log", "afpacket")
        rules = _raw_rules(lab)
        assert f"-A PREROUTING -i {topo.front_if} -j PYLVS-AF" in rules
        assert f"-A PREROUTING -i {topo.back_if} -j PYLVS-AF" in rules
        svc = ServiceSpec(protocol=IPPROTO_TCP, addr=topo.vip, port=PORT, scheduler="rr")
        daemon.ctl.add_service(svc)
        dest = DestSpec(addr=topo.reals[0], port=PORT, fwd=int(FwdMethod.MASQ))
        daemon.ctl.add_dest(svc, dest)
        rules = _raw_rules(lab)
        assert f"-A PYLVS-AF -d {topo.vip}/32 -p tcp -m tcp --dport {PORT} -j DROP" in rules
        reply = f"-s {topo.reals[0]}/32 -p tcp -m tcp --sport {PORT}"
        assert f"-A PYLVS-AF {reply} -m addrtype ! --dst-type LOCAL -j DROP" in rules
        # pylvs sends NAT packets itself: the kernel is not asked to forward.
        with lab.inside("d"):
            assert netcfg.read_sysctl("net.ipv4.ip_forward") == "0"
        daemon.ctl.del_service(svc)
        assert "-A PYLVS-AF -" not in _raw_rules(lab)
        daemon.ctl.close()
        os.kill(daemon.proc.pid, signal.SIGTERM)
        assert daemon.proc.wait(10) == 0
        assert "PYLVS" not in _raw_rules(lab)


def test_kill9_fails_closed(tmp_path: Path) -> None:
    """kill -9: the DROP rules stay, so the VIP's traffic is dropped (not answered by the
    director's stack); ``pylvsd --cleanup`` removes them and a new pylvsd serves again."""
    with farm(tmp_path, "afpacket", "dr", "tcp", weights=(1,)) as f:
        ident, echoed = tcp_exchange(tcp_open(f.lab, f.topo.vip), b"x" * 1000)
        assert (ident, echoed) == ("r1", b"x" * 1000)
        os.kill(f.daemon.proc.pid, signal.SIGKILL)
        f.daemon.proc.wait(5)
        assert "PYLVS-AF" in _raw_rules(f.lab)
        with pytest.raises(TimeoutError):
            tcp_open(f.lab, f.topo.vip, timeout=2)
        out = f.lab.run("d", pylvs_argv("pylvs.cli.pylvsd", "--cleanup"), cwd=REPO)
        assert b"removed" in out.stdout
        assert "PYLVS" not in _raw_rules(f.lab)
        daemon = start_daemon(f.lab, tmp_path / "pylvsd2.log", "afpacket")
        daemon.ctl.add_service(f.svc)
        dest = DestSpec(addr=f.topo.reals[0], port=PORT, fwd=int(FwdMethod.ROUTE))
        daemon.ctl.add_dest(f.svc, dest)
        payload = random_bytes(5000)
        assert tcp_exchange(tcp_open(f.lab, f.topo.vip), payload) == ("r1", payload)


@pytest.mark.parametrize("data_plane", ["cpython", "pypy"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_fanout_workers_nat(tmp_path: Path, proto: str, data_plane: str) -> None:
    """Two workers: both directions of every NAT connection meet on one worker, and the control
    socket lists every worker's connections with summed counters; forked from pylvsd, or
    started on the PyPy environment (``--data-plane pypy``)."""
    if data_plane == "pypy" and pypy_runtime() is None:
        pytest.skip("no PyPy environment (.venv-pypy): scripts/setup builds it")
    with Lab() as lab:
        topo = build_lvs_lab(lab, 3)
        shorts = ["r1", "r2", "r3"]
        try:
            setup_realservers(lab, topo, "nat", shorts)
            for short in shorts:
                start_server(lab, short, proto)
            args = ["--workers", "2", "--data-plane", data_plane]
            daemon = start_daemon(lab, tmp_path / "pylvsd.log", "afpacket", *args)
            status = daemon.ctl.status()
            details = status["details"]
            assert details["workers"] == 2 and len(details["worker_pids"]) == 2
            if data_plane == "pypy":
                for pid in details["worker_pids"]:
                    assert "pypy" in os.readlink(f"/proc/{pid}/exe")
            svc = ServiceSpec(protocol=PROTO[proto], addr=topo.vip, port=PORT, scheduler="rr")
            daemon.ctl.add_service(svc)
            for rip in topo.reals:
                dest = DestSpec(addr=rip, port=PORT, fwd=int(FWD["nat"]))
                daemon.ctl.add_dest(svc, dest)
            served: Counter[str] = Counter()
            n = 12
            for _ in range(n):
                if proto == "tcp":
                    payload = random_bytes(20000)
                    ident, echoed = tcp_exchange(tcp_open(lab, topo.vip), payload)
                    assert sha(echoed) == sha(payload)
                else:
                    payloads = [random_bytes(k) for k in (10, 1000)]
                    ident, replies = udp_exchange(lab, topo.vip, payloads)
                    assert replies == payloads
                served[ident] += 1
            assert sum(served.values()) == n and len(served) >= 2
            conns = [c for c in daemon.ctl.conns() if not c.template]
            assert len(conns) == n
            (info,) = daemon.ctl.services()
            assert sum(d.stats[0] for d in info.dests) == n
            assert all(d.stats[2] > 0 for d in info.dests if d.stats[0])  # replies seen (outpkts)
            stats = daemon.ctl.status()
            assert stats["handled"] > 0 and stats["failures"] == 0
        finally:
            undo_realservers(lab, shorts)


def test_dr_serves_again_after_refused_sends(tmp_path: Path) -> None:
    """The director's back link loses carrier under load: every send() of the transmit ring is
    refused (ENOBUFS) and the kernel keeps the refused frames marked, so the ring fills up. Once
    the link is back, UDP and TCP through the VIP must work again (a ring that only called send()
    for newly queued frames stayed full for good: every packet after it was dropped)."""
    with farm(tmp_path, "afpacket", "dr", "udp", weights=(1,)) as f:
        lab, topo = f.lab, f.topo
        start_server(lab, "r1", "tcp")
        tcp_svc = ServiceSpec(protocol=IPPROTO_TCP, addr=topo.vip, port=PORT, scheduler="rr")
        f.daemon.ctl.add_service(tcp_svc)
        dest = DestSpec(addr=topo.reals[0], port=PORT, fwd=int(FwdMethod.ROUTE))
        f.daemon.ctl.add_dest(tcp_svc, dest)
        assert udp_exchange(lab, topo.vip, [b"before"]) == ("r1", [b"before"])
        # The switch's end of the director's back link (third port made by build_lvs_lab).
        sw_port = "sw2"
        with lab.inside("c"):
            blast = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with blast:
            lab.run("sw", ["ip", "link", "set", sw_port, "down"])
            try:
                # Far more datagrams than the transmit ring has slots (1024).
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    for _ in range(100):
                        blast.sendto(b"x" * 18, (topo.vip, PORT))
            finally:
                lab.run("sw", ["ip", "link", "set", sw_port, "up"])
        status = f.daemon.ctl.status()
        details = status["details"]
        assert details["tx_device_drops"] > 0 and details["tx_ring_full"] > 0, status

        def udp_served() -> bool:
            try:
                return udp_exchange(lab, topo.vip, [b"after"]) == ("r1", [b"after"])
            except AssertionError:
                return False

        wait_until(udp_served, timeout=12, what="UDP through the VIP")
        payload = random_bytes(20000)
        assert tcp_exchange(tcp_open(lab, topo.vip), payload) == ("r1", payload)
        status = f.daemon.ctl.status()
        assert status["failures"] == 0 and status["details"]["tx_pending"] == 0, status


PYLVSADM = str(Path(__import__("sys").executable).with_name("pylvsadm"))


def test_workers_keep_persistence(tmp_path: Path) -> None:
    """With --workers 2, every connection of a persistent client reaches the worker holding its
    template. Before, the fanout hash covered the client port, so one client's connections were
    scheduled by both workers, each with its own template (and, with twos, its own choice)."""
    with Lab() as lab:
        topo = build_lvs_lab(lab, 3)
        shorts = ["r1", "r2", "r3"]
        clients = [f"192.0.2.{20 + i}" for i in range(8)]
        try:
            setup_realservers(lab, topo, "nat", shorts)
            for short in shorts:
                start_server(lab, short, "tcp")
            with lab.inside("c"):
                for addr in clients:
                    netcfg.add_address("c0", f"{addr}/24")
            daemon = start_daemon(lab, tmp_path / "pylvsd.log", "afpacket", "--workers", "2")
            svc = ServiceSpec(protocol=IPPROTO_TCP, addr=topo.vip, port=PORT, scheduler="twos",
                              persistent=True, timeout=300)  # fmt: skip
            daemon.ctl.add_service(svc)
            for rip in topo.reals:
                daemon.ctl.add_dest(svc, DestSpec(addr=rip, port=PORT, fwd=int(FWD["nat"])))
            chosen: dict[str, set[str]] = {}
            for addr in clients:
                for _ in range(4):
                    with lab.inside("c"):
                        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.settimeout(10)
                    sock.bind((addr, 0))
                    sock.connect((topo.vip, PORT))
                    ident, echoed = tcp_exchange(sock, b"p" * 100)
                    assert echoed == b"p" * 100
                    chosen.setdefault(addr, set()).add(ident)
            assert all(len(servers) == 1 for servers in chosen.values()), chosen
            templates = [c for c in daemon.ctl.conns() if c.template]
            assert sorted(t.caddr for t in templates) == sorted(clients)
        finally:
            undo_realservers(lab, shorts)


def test_what_this_backend_cannot_serve_is_refused_with_the_reason(tmp_path: Path) -> None:
    """Before, a fwmark service was accepted and never served, and starting a sync daemon with
    workers printed ipvsadm's generic "Invalid operation" line."""
    with Lab() as lab:
        build_lvs_lab(lab, 1)
        start_daemon(lab, tmp_path / "pylvsd.log", "afpacket", "--workers", "2")
        done = lab.run("d", [PYLVSADM, "-A", "-f", "1", "-s", "rr"], check=False, text=True)
        assert done.returncode == 255
        assert "afpacket backend cannot serve fwmark services" in done.stderr
        assert lab.run("d", [PYLVSADM, "-S", "-n"], text=True).stdout == ""
        sync = [PYLVSADM, "--start-daemon", "master", "--mcast-interface", "d-front"]
        done = lab.run("d", sync, check=False, text=True)
        assert done.returncode == 255
        assert "--workers 2" in done.stderr and "connection synchronisation" in done.stderr
