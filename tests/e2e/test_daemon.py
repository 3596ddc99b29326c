"""pylvsd's life cycle: clean stop, kill -9 (fail open), cleanup, reload, misconfiguration."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from lvslab import (
    PORT,
    REPO,
    farm,
    pylvs_argv,
    random_bytes,
    recv_exact,
    setup_realservers,
    start_daemon,
    start_server,
    tcp_exchange,
    tcp_open,
    udp_exchange,
    undo_realservers,
)

from pylvs.cli.pylvsd import log_path
from pylvs.core.control import DestSpec, IPVSError, ServiceSpec
from pylvs.core.service import IPPROTO_TCP, IPPROTO_UDP, FwdMethod
from pylvs.io import netcfg
from pylvs.testing.netns import Lab, build_lvs_lab, wait_until


def _rules(lab: Lab, short: str = "d") -> str:
    raw = lab.run(short, ["iptables", "-w", "-t", "raw", "-S"]).stdout.decode()
    mangle = lab.run(short, ["iptables", "-w", "-t", "mangle", "-S"]).stdout.decode()
    return raw + mangle


def _ip_forward(lab: Lab, short: str = "d") -> str:
    with lab.inside(short):
        return netcfg.read_sysctl("net.ipv4.ip_forward")


def test_sigterm_removes_everything(tmp_path: Path, backend: str) -> None:
    with Lab() as lab:
        topo = build_lvs_lab(lab, 1)
        assert _ip_forward(lab) == "0"
        daemon = start_daemon(lab, tmp_path / "pylvsd.log", backend)
        svc = ServiceSpec(protocol=IPPROTO_TCP, addr=topo.vip, port=PORT, scheduler="rr")
        daemon.ctl.add_service(svc)
        daemon.ctl.add_dest(svc, DestSpec(addr=topo.reals[0], port=PORT, fwd=int(FwdMethod.MASQ)))
        rules = _rules(lab)
        assert f"-d {topo.vip}/32 -p tcp -m tcp --dport {PORT} -j PYLVS-Q" in rules
        not_local = "-m addrtype ! --dst-type LOCAL"
        assert f"-s {topo.reals[0]}/32 -p tcp -m tcp --sport {PORT} {not_local} -j PYLVS-Q" in rules
        assert "--queue-bypass" in rules
        assert _ip_forward(lab) == "1"
        daemon.ctl.close()
        os.kill(daemon.proc.pid, signal.SIGTERM)
        assert daemon.proc.wait(10) == 0
        assert "PYLVS" not in _rules(lab)
        assert _ip_forward(lab) == "0"


def test_kill9_fails_open(tmp_path: Path, backend: str) -> None:
    """kill -9: rules stay; packets to the VIP reach the director's own stack (which resets TCP
    connections to its local VIP); ``pylvsd --cleanup`` removes the rules; a restart serves again.
    """
    with farm(tmp_path, backend, "dr", "tcp", weights=(1,)) as f:
        held = tcp_open(f.lab, f.topo.vip)
        assert recv_exact(held, 8).strip() == b"r1"
        held.sendall(b"x" * 1000)
        assert recv_exact(held, 1000) == b"x" * 1000
        failure: list[BaseException] = []
        stop = threading.Event()

        def keep_sending() -> None:
            try:
                while not stop.is_set():
                    held.sendall(b"y" * 1000)
                    recv_exact(held, 1000)
            except OSError as exc:
                failure.append(exc)

        sender = threading.Thread(target=keep_sending, daemon=True)
        sender.start()
        os.kill(f.daemon.proc.pid, signal.SIGKILL)
        f.daemon.proc.wait(5)
        sender.join(15)
        stop.set()
        # The live connection dies: its next segment reaches the director's stack, which has no
        # socket for it and answers with a RST.
        assert failure and isinstance(failure[0], ConnectionResetError), failure
        assert "PYLVS-Q" in _rules(f.lab)
        # New connections: refused by the director itself (VIP on its lo, nothing listening).
        with pytest.raises(ConnectionRefusedError):
            tcp_open(f.lab, f.topo.vip, timeout=5)
        out = f.lab.run("d", pylvs_argv("pylvs.cli.pylvsd", "--cleanup"), cwd=REPO)
        assert b"removed" in out.stdout
        assert "PYLVS" not in _rules(f.lab)
        # A new pylvsd starts from an empty table and serves new connections.
        daemon = start_daemon(f.lab, tmp_path / "pylvsd2.log", backend)
        assert daemon.ctl.services() == []
        daemon.ctl.add_service(f.svc)
        dest = DestSpec(addr=f.topo.reals[0], port=PORT, fwd=int(FwdMethod.ROUTE))
        daemon.ctl.add_dest(f.svc, dest)
        payload = random_bytes(5000)
        ident, echoed = tcp_exchange(tcp_open(f.lab, f.topo.vip), payload)
        assert (ident, echoed) == ("r1", payload)


def test_sighup_reloads_config(tmp_path: Path, backend: str) -> None:
    """SIGHUP re-reads --config: changed weights apply, existing connections stay tracked."""
    with Lab() as lab:
        topo = build_lvs_lab(lab, 2)
        config = tmp_path / "ldirectord.cf"

        def write(weights: tuple[int, int]) -> None:
            reals = "".join(
                f"\treal={rip}:{PORT} masq {w}\n"
                for rip, w in zip(topo.reals, weights, strict=True)
            )
            config.write_text(
                f"virtual={topo.vip}:{PORT}\n{reals}"
                "\tscheduler=wrr\n\tprotocol=tcp\n\tchecktype=on\n"
            )

        write((1, 1))
        daemon = start_daemon(lab, tmp_path / "pylvsd.log", backend, "--config", str(config))
        (info,) = daemon.ctl.services()
        assert [d.weight for d in info.dests] == [1, 1]
        write((5, 0))
        os.kill(daemon.proc.pid, signal.SIGHUP)
        wait_until(
            lambda: [d.weight for d in daemon.ctl.services()[0].dests] == [5, 0],
            what="reloaded weights",
        )
        config.write_text("this is not a config\n")
        os.kill(daemon.proc.pid, signal.SIGHUP)
        wait_until(lambda: "reload of" in daemon.output(), what="reload error logged")
        assert [d.weight for d in daemon.ctl.services()[0].dests] == [5, 0]
        assert daemon.proc.poll() is None


def _detached_log(lab: Lab) -> Path:
    """Where a detached pylvsd of namespace ``d`` logs when there is no /dev/log."""
    with lab.inside("d"):
        return Path(log_path("pylvsd"))


def test_connect_or_start(tmp_path: Path) -> None:
    """The first control command in a namespace starts a detached pylvsd."""
    with Lab() as lab:
        lab.add_netns("d")
        code = (
            "from pylvs.ctl import connect_or_start\n"
            "c = connect_or_start()\n"
            "print(c.status()['pid'])\n"
        )
        out = lab.run("d", [sys.executable, "-c", code], cwd=REPO, timeout=60)
        pid = int(out.stdout.decode().split()[-1])
        try:
            with lab.inside("d"):
                from pylvs.ctl import ControlClient

                with ControlClient() as ctl:
                    assert ctl.ping()
                    assert ctl.status()["pid"] == pid
        finally:
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not os.path.exists(f"/proc/{pid}"), what="pylvsd exit")
            _detached_log(lab).unlink(missing_ok=True)
        assert "PYLVS" not in _rules(lab)


# -- misconfiguration: a clear message and a non-zero exit -------------------------------------


def _pylvsd(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.run(
        "d",
        pylvs_argv("pylvs.cli.pylvsd", "--foreground", *args),
        check=False,
        text=True,
        cwd=REPO,
        timeout=30,
    )


def test_not_root() -> None:
    with Lab() as lab:
        lab.add_netns("d")
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        proc = lab.run(
            "d",
            [*argv, *pylvs_argv("pylvs.cli.pylvsd", "--foreground")],
            check=False,
            text=True,
            cwd=REPO,
        )
        assert proc.returncode != 0
        assert "must be run as root" in proc.stderr


def test_unknown_interface() -> None:
    with Lab() as lab:
        lab.add_netns("d")
        proc = _pylvsd(lab, "--iface", "nosuch0")
        assert proc.returncode == 1
        assert "unknown interface 'nosuch0'" in proc.stderr
        assert "PYLVS" not in _rules(lab)


def test_nfqueue_unavailable(tmp_path: Path, backend: str) -> None:
    """The queue is taken (by another pylvsd): the second one says so and leaves the rules."""
    with Lab() as lab:
        lab.add_netns("d")
        start_daemon(lab, tmp_path / "pylvsd.log", backend)
        before = _rules(lab)
        proc = _pylvsd(lab, "--socket", "other")
        assert proc.returncode == 1
        assert "cannot bind NFQUEUE 0" in proc.stderr
        assert _rules(lab) == before


def test_already_running(tmp_path: Path, backend: str) -> None:
    with Lab() as lab:
        lab.add_netns("d")
        start_daemon(lab, tmp_path / "pylvsd.log", backend)
        proc = _pylvsd(lab)
        assert proc.returncode == 1
        assert "pylvsd already runs here" in proc.stderr


def test_strict_routes_refuses_what_has_no_route(tmp_path: Path, backend: str) -> None:
    """--strict-routes keeps the earlier refusals (ENETUNREACH) for who wants them."""
    with Lab() as lab:
        lab.add_netns("d")  # only lo: no route to anything
        daemon = start_daemon(lab, tmp_path / "pylvsd.log", backend, "--strict-routes")
        svc = ServiceSpec(protocol=IPPROTO_TCP, addr="203.0.113.99", port=80, scheduler="rr")
        with pytest.raises(IPVSError) as exc:
            daemon.ctl.add_service(svc)
        assert exc.value.errno == errno.ENETUNREACH
        assert "no route to virtual address 203.0.113.99" in str(exc.value)
        with lab.inside("d"):
            netcfg.add_address("lo", "203.0.113.99/32")
        daemon.ctl.add_service(svc)
        with pytest.raises(IPVSError) as exc:
            daemon.ctl.add_dest(svc, DestSpec(addr="198.51.100.77", port=80))
        assert exc.value.errno == errno.ENETUNREACH
        assert "real server 198.51.100.77 is unreachable" in str(exc.value)
        assert daemon.ctl.services()[0].dests == []


def test_unroutable_entries_are_accepted_and_served_once_a_route_appears(
    tmp_path: Path, backend: str
) -> None:
    """IPVS accepts a VIP and a real server with no route; before, pylvs refused both
    (ENETUNREACH). Packets for the unroutable real server are dropped and counted; when the
    route appears (rtnetlink), it is used without a restart."""
    with Lab() as lab:
        topo = build_lvs_lab(lab, 1)
        setup_realservers(lab, topo, "dr", ["r1"])
        try:
            start_server(lab, "r1", "udp")
            with lab.inside("d"):
                netcfg.del_address("lo", f"{topo.vip}/32")
                netcfg.del_address(topo.back_if, f"{topo.director_back}/24")
            daemon = start_daemon(lab, tmp_path / "pylvsd.log", backend)
            svc = ServiceSpec(protocol=IPPROTO_UDP, addr=topo.vip, port=PORT, scheduler="rr")
            daemon.ctl.add_service(svc)
            rip = topo.reals[0]
            daemon.ctl.add_dest(svc, DestSpec(addr=rip, port=PORT, fwd=int(FwdMethod.ROUTE)))
            assert [d.addr for d in daemon.ctl.services()[0].dests] == [rip]
            status = daemon.ctl.status()
            assert status["director"]["unroutable"] == [rip]
            with pytest.raises(AssertionError, match="no UDP reply"):
                udp_exchange(lab, topo.vip, [b"before"])
            assert daemon.ctl.status()["engine"].get("drop_no_route", 0) > 0
            assert "no route" in daemon.output()
            with lab.inside("d"):
                netcfg.add_address("lo", f"{topo.vip}/32")
                netcfg.add_address(topo.back_if, f"{topo.director_back}/24")
            wait_until(
                lambda: daemon.ctl.status()["director"]["unroutable"] == [],
                what="the route to the real server noticed",
            )
            assert udp_exchange(lab, topo.vip, [b"after"]) == ("r1", [b"after"])
        finally:
            undo_realservers(lab, ["r1"])


def test_config_with_unroutable_vip_starts(tmp_path: Path) -> None:
    """A configuration naming an address with no route loads, as ipvsadm -R at boot must."""
    with Lab() as lab:
        lab.add_netns("d")
        config = tmp_path / "ldirectord.cf"
        config.write_text(
            "virtual=203.0.113.99:80\n\treal=198.51.100.7:80 gate\n\tprotocol=tcp\n\tchecktype=on\n"
        )
        daemon = start_daemon(lab, tmp_path / "pylvsd.log", "nfqueue", "--config", str(config))
        (info,) = daemon.ctl.services()
        assert (info.addr, [d.addr for d in info.dests]) == ("203.0.113.99", ["198.51.100.7"])
        proc = _pylvsd(lab, "--socket", "strict", "--queue-num", "1", "--strict-routes",
                       "--config", str(config))  # fmt: skip
        assert proc.returncode == 1
        assert "no route to virtual address 203.0.113.99" in proc.stderr


def test_detached_start_reports_errors() -> None:
    """Without --foreground the start-up error still reaches the caller, with a non-zero exit."""
    with Lab() as lab:
        lab.add_netns("d")
        proc = lab.run(
            "d",
            pylvs_argv("pylvs.cli.pylvsd", "--iface", "nosuch0"),
            check=False,
            text=True,
            cwd=REPO,
            timeout=30,
        )
        assert proc.returncode == 1
        assert "unknown interface 'nosuch0'" in proc.stderr
        _detached_log(lab).unlink(missing_ok=True)


def test_cleanup_after_kill9_restores_the_sysctls(tmp_path: Path) -> None:
    """Before, ``pylvsd --cleanup`` removed the rules but left ip_forward and accept_local at 1,
    and their previous values were saved nowhere."""
    with Lab() as lab:
        topo = build_lvs_lab(lab, 1)
        daemon = start_daemon(lab, tmp_path / "pylvsd.log", "nfqueue")
        svc = ServiceSpec(protocol=IPPROTO_TCP, addr=topo.vip, port=PORT, scheduler="rr")
        daemon.ctl.add_service(svc)
        daemon.ctl.add_dest(svc, DestSpec(addr=topo.reals[0], port=PORT, fwd=int(FwdMethod.MASQ)))
        assert _ip_forward(lab) == "1"
        os.kill(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(5)
        assert _ip_forward(lab) == "1"
        out = lab.run("d", pylvs_argv("pylvs.cli.pylvsd", "--cleanup"), cwd=REPO, text=True)
        assert "restored net.ipv4.ip_forward=0" in out.stdout
        assert _ip_forward(lab) == "0"
        with lab.inside("d"):
            assert netcfg.read_sysctl("net.ipv4.conf.all.accept_local") == "0"
        assert "PYLVS" not in _rules(lab)


def test_bulk_route_lookups_agree_with_the_kernel() -> None:
    """netcfg.routes_get (RTM_GETROUTE written by hand, for large configurations) answers what
    pyroute2's route get answers, for on-link, gatewayed, MTU-limited, local and missing routes."""
    with Lab() as lab:
        topo = build_lvs_lab(lab, 1)
        with lab.inside("d"):
            netcfg.add_route("198.18.0.0/16", topo.router_back)
            lab.run("d", ["ip", "route", "add", "198.19.0.0/16", "via", topo.router_front,
                          "mtu", "1400"])  # fmt: skip
            addrs = [topo.reals[0], "198.18.3.4", "198.19.1.1", topo.vip, topo.director_back,
                     "203.0.113.200", "10.9.9.9"]  # fmt: skip
            bulk = netcfg.routes_get(addrs)
            for addr in addrs:
                try:
                    single: netcfg.RouteInfo | None = netcfg.route_get(addr)
                except netcfg.NoRouteError:
                    single = None
                assert bulk[addr] == single, addr
            assert bulk["198.19.1.1"] is not None and bulk["198.19.1.1"].mtu == 1400
            assert bulk["10.9.9.9"] is None


def test_config_warnings_and_logfile_are_told(tmp_path: Path) -> None:
    """Before, the ldirectord.cf parser's warnings were computed and never logged, and logfile=
    was ignored; the file gets ldirectord's lines in ldirectord's format."""
    with Lab() as lab:
        lab.add_netns("d")
        logfile = tmp_path / "ldirectord.log"
        config = tmp_path / "ldirectord.cf"
        config.write_text(
            f'logfile="{logfile}"\nsupervised\n'
            "virtual=203.0.113.99:80\n\treal=198.51.100.7:80 gate\n\tprotocol=tcp\n"
            "\tchecktype=negotiate\n\tservice=http\n"
        )
        daemon = start_daemon(lab, tmp_path / "pylvsd.log", "nfqueue", "--config", str(config))
        assert daemon.ctl.ping()
        out = daemon.output()
        assert "please update your config not to use a bare supervised directive" in out
        assert "logging to" in out
        # The file gets the daemon's lines from then on, in ldirectord's format.
        lines = wait_until(
            lambda: [x for x in logfile.read_text().splitlines() if "Deleted real server" in x],
            what="the first check's verdict in the logfile",
        )
        lines = logfile.read_text().splitlines()
        assert any("Added virtual server: 203.0.113.99:80" in x for x in lines), lines
        stamp = r"\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\|ldirectord\.cf\|\d+\] "
        assert all(re.match(stamp, x) for x in lines), lines


def test_a_hostile_control_line_leaves_pylvsd_and_its_table(tmp_path: Path) -> None:
    """Before, ``b"[" * 200000`` on @pylvsd raised RecursionError in the control server: the
    daemon exited, its rules and services were gone, and nothing was logged."""
    import socket as socket_module

    from pylvs.ctl import ControlClient

    with Lab() as lab:
        lab.add_netns("d")
        daemon = start_daemon(lab, tmp_path / "pylvsd.log", "nfqueue")
        svc = ServiceSpec(protocol=IPPROTO_TCP, addr="203.0.113.99", port=80)
        daemon.ctl.add_service(svc)
        with lab.inside("d"):
            raw = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM)
        with raw:
            raw.settimeout(10)
            raw.connect("\0pylvsd")
            raw.sendall(b"[" * 200000 + b"\n")
            assert b'"ok": false' in raw.recv(65536)
        clients = []
        for _ in range(300):
            with lab.inside("d"):
                clients.append(ControlClient(timeout=10))
        try:
            assert all(c.ping() for c in clients)
        finally:
            for c in clients:
                c.close()
        assert daemon.proc.poll() is None
        assert [s.port for s in daemon.ctl.services()] == [80]
        assert "PYLVS-Q" in _rules(lab)
