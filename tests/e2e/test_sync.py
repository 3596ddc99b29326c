"""Connection synchronisation between two directors: a master pylvsd multicasts its connections,
a backup pylvsd on the same LAN learns them (``ipvsadm --start-daemon master|backup``).

One LAN (a bridge in lab namespace ``sw``) joins the client ``c``, the master director ``d``, the
backup director ``b`` and the real server ``r1`` (direct routing). The VIP is on the master only,
so the client's traffic goes through it; the backup has the same service, to bind the synced
connections to its real server.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from lvslab import PORT, REPO, pylvs_argv, recv_exact, start_daemon, start_server

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.service import IPPROTO_TCP, FwdMethod
from pylvs.io import netcfg
from pylvs.testing.netns import Lab, wait_until

VIP = "203.0.113.10"
CLIENT = "192.0.2.2"
MASTER = "192.0.2.1"
BACKUP = "192.0.2.3"
RIP = "192.0.2.11"


def _lan(lab: Lab) -> None:
    for short in ("sw", "c", "d", "b", "r1"):
        lab.add_netns(short)
    with lab.inside("sw"):
        netcfg.add_bridge("br0")
        netcfg.set_link_up("br0")
    hosts = [("c", CLIENT), ("d", MASTER), ("b", BACKUP), ("r1", RIP)]
    for n, (short, addr) in enumerate(hosts):
        lab.veth("sw", f"sw{n}", short, "eth0", addr_b=f"{addr}/24")
        with lab.inside("sw"):
            netcfg.set_link_master(f"sw{n}", "br0")
    with lab.inside("c"):
        netcfg.add_route(f"{VIP}/32", MASTER)
    with lab.inside("d"):
        netcfg.add_address("lo", f"{VIP}/32")
        netcfg.write_sysctl("net.ipv4.conf.all.send_redirects", 0)


def _pylvsadm(lab: Lab, short: str, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.run(short, pylvs_argv("pylvs.cli.pylvsadm", *args), check=False, cwd=REPO, text=True)


def test_backup_learns_the_masters_connection(tmp_path: Path, backend: str) -> None:
    """With afpacket the sync daemons run in the data-plane worker (PyPy where installed)."""
    with Lab() as lab:
        _lan(lab)
        lab.run(
            "r1",
            pylvs_argv("pylvs.cli.pylvs", "realserver", "--vip", VIP, "--mode", "dr"),
            cwd=REPO,
        )
        try:
            start_server(lab, "r1", "tcp")
            master = start_daemon(lab, tmp_path / "master.log", backend, short="d")
            backup = start_daemon(lab, tmp_path / "backup.log", backend, short="b")
            svc = ServiceSpec(protocol=IPPROTO_TCP, addr=VIP, port=PORT, scheduler="rr")
            for daemon in (master, backup):
                daemon.ctl.add_service(svc)
                daemon.ctl.add_dest(svc, DestSpec(addr=RIP, port=PORT, fwd=int(FwdMethod.ROUTE)))

            started = time.monotonic()
            master_start = _pylvsadm(
                lab, "d", "--start-daemon", "master", "--mcast-interface", "eth0"
            )
            assert (master_start.returncode, master_start.stderr) == (0, "")
            backup_start = _pylvsadm(
                lab, "b", "--start-daemon", "backup", "--mcast-interface", "eth0"
            )
            assert (backup_start.returncode, backup_start.stderr) == (0, "")
            again = _pylvsadm(lab, "d", "--start-daemon", "master", "--mcast-interface", "eth0")
            assert (again.returncode, again.stderr) == (255, "Daemon has already run\n")
            nodev = _pylvsadm(lab, "d", "--start-daemon", "backup", "--mcast-interface", "nosuch0")
            assert (nodev.returncode, nodev.stderr) == (255, "No such device\n")

            assert _pylvsadm(lab, "d", "-L", "--daemon").stdout == (
                "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, "
                "port=8848, ttl=1)\n"
            )
            assert _pylvsadm(lab, "b", "-L", "--daemon").stdout == (
                "backup sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, "
                "port=8848, ttl=1)\n"
            )

            # A client connection through the master: SYN, ACK, data (its third packet is
            # when an ESTABLISHED connection is synced, sync_threshold "3 50").
            with lab.inside("c"):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.connect((VIP, PORT))
            cport = sock.getsockname()[1]
            assert recv_exact(sock, 8).decode().strip() == "r1"
            sock.sendall(b"hello")
            assert recv_exact(sock, 5) == b"hello"

            expected = f"ESTABLISHED {CLIENT}:{cport}"

            def backup_has_it() -> str | None:
                out = _pylvsadm(lab, "b", "-L", "-n", "-c").stdout
                return out if expected in out else None

            sent_at = time.monotonic()
            listing = wait_until(backup_has_it, timeout=8, interval=0.2, what="synced connection")
            synced_after = time.monotonic() - sent_at
            row = next(line for line in listing.splitlines() if expected in line)
            assert row.split()[4:] == [f"{VIP}:{PORT}", f"{RIP}:{PORT}"]
            assert row.startswith("TCP ")
            # The timeout came with the message: ESTABLISHED's 900 s, counting down.
            assert row.split()[1] == "15:00" or row.split()[1].startswith("14:"), row
            # Sent within IPVS_SYNC_FLUSH_TIME (2 s) plus a poll.
            assert synced_after < 4.0, synced_after
            # The master lists the same connection.
            assert expected in _pylvsadm(lab, "d", "-L", "-n", "-c").stdout
            sock.close()

            for short, state in (("d", "master"), ("b", "backup")):
                stop = _pylvsadm(lab, short, "--stop-daemon", state)
                assert (stop.returncode, stop.stderr) == (0, "")
                assert _pylvsadm(lab, short, "-L", "--daemon").stdout == ""
                again = _pylvsadm(lab, short, "--stop-daemon", state)
                assert (again.returncode, again.stderr) == (255, "No daemon is running\n")
            assert time.monotonic() - started < 30
            for daemon in (master, backup):
                assert lab.stop(daemon.proc) == 0
        finally:
            lab.run(
                "r1", pylvs_argv("pylvs.cli.pylvs", "realserver", "--undo"), cwd=REPO, check=False
            )
