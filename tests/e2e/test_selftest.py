"""The kernel's IPVS selftest (tools/testing/selftests/net/netfilter/ipvs.sh) with pylvs as IPVS.

Same topology and steps as the script, with its private addresses replaced by documentation
ranges (the VIP stays 207.175.44.110, inside the lab only):

    ns0 (client): bridge br0 = veth01 (to the director) + veth02 (to the real server), cip
    ns1 (director): veth10 gip, veth12 dip, VIP on lo
    ns2 (real server): veth21 rip, veth20 sip (on the client's bridge; removed for NAT)

``ipvsadm -A -t VIP:8080 -s rr`` and ``-a -m|-g|-i -t VIP:8080 -r RIP:8080`` are run as
``pylvsadm`` command lines exactly where the script runs ``ipvsadm`` (the first one starts pylvsd
in the director's namespace, as the kernel loads IPVS on demand), and also through the control
client; 32 random bytes are sent with socat and compared with cmp. The kernel has no
``ipip`` module here, so for tunnel mode the real server runs pylvs's userspace decapsulator where
the script loads ``ipip`` and brings ``tunl0`` up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lvslab import REPO, pylvs_argv, read_line, start_daemon

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.service import IPPROTO_TCP, FwdMethod
from pylvs.ctl import ControlClient
from pylvs.io import netcfg
from pylvs.testing.netns import Lab, wait_until

VIP = "207.175.44.110"
CIP = "192.0.2.2"
GIP = "192.0.2.1"
SIP = "192.0.2.3"
DIP = "198.51.100.1"
RIP = "198.51.100.2"
PORT = 8080


def _setup(lab: Lab) -> None:
    for short in ("ns0", "ns1", "ns2"):
        lab.add_netns(short)
    lab.veth("ns0", "veth01", "ns1", "veth10", addr_b=f"{GIP}/24")
    lab.veth("ns0", "veth02", "ns2", "veth20", addr_b=f"{SIP}/24")
    lab.veth("ns1", "veth12", "ns2", "veth21", addr_a=f"{DIP}/24", addr_b=f"{RIP}/24")
    with lab.inside("ns0"):
        netcfg.add_bridge("br0")
        netcfg.set_link_master("veth01", "br0")
        netcfg.set_link_master("veth02", "br0")
        netcfg.set_link_up("br0")
        netcfg.add_address("br0", f"{CIP}/24")
        netcfg.add_route(f"{VIP}/32", GIP, "br0")
    with lab.inside("ns1"):
        netcfg.add_address("lo", f"{VIP}/32")


def _listening(lab: Lab, short: str, port: int) -> bool:
    table = lab.run(short, ["cat", "/proc/net/tcp"]).stdout.decode()
    return any(
        line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
        for line in table.splitlines()[1:]
    )


def _test_service(lab: Lab, tmp_path: Path) -> None:
    """ipvs.sh test_service: socat 32 random bytes client -> VIP -> real server, then cmp."""
    infile = tmp_path / "in.bin"
    outfile = tmp_path / "out.bin"
    infile.write_bytes(os.urandom(32))
    with outfile.open("wb") as out:
        server = lab.popen(
            "ns2", ["socat", "-u", "-4", f"TCP-LISTEN:{PORT},reuseaddr", "STDOUT"], stdout=out
        )
    wait_until(lambda: _listening(lab, "ns2", PORT), what="socat listening")
    with infile.open("rb") as data:
        lab.run("ns0", ["socat", "-u", "-4", "STDIN", f"TCP:{VIP}:{PORT}"], stdin=data)
    server.wait(10)
    assert subprocess.run(["cmp", str(outfile), str(infile)]).returncode == 0


PYLVSADM = str(Path(sys.executable).with_name("pylvsadm"))
IPVSADM_SWITCH = {"nat": "-m", "dr": "-g", "tun": "-i"}


def _pylvsadm(lab: Lab, *args: str) -> str:
    """``ip netns exec ns1 pylvsadm ARGS``, as the selftest runs ``ipvsadm``."""
    done = lab.run("ns1", [PYLVSADM, *args], check=False)
    assert done.returncode == 0, done.stderr.decode()
    return str(done.stdout.decode())


def _stop_started_daemon(lab: Lab) -> None:
    """Stop the pylvsd that pylvsadm started (it detached, so the lab does not own it)."""
    with lab.inside("ns1"), contextlib.suppress(OSError), ControlClient(timeout=5.0) as ctl:
        pid = int(ctl.status()["pid"])
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), what=f"pylvsd {pid} to exit")


@pytest.mark.parametrize("via", ["pylvsadm", "control"])
@pytest.mark.parametrize("mode", ["nat", "dr", "tun"])
def test_ipvs_selftest(tmp_path: Path, backend: str, mode: str, via: str) -> None:
    with Lab() as lab:
        _setup(lab)
        decap = None
        if mode == "nat":
            with lab.inside("ns2"):
                netcfg.del_link("veth20")
                netcfg.add_route("default", DIP, "veth21")
        elif mode == "dr":
            with lab.inside("ns2"):
                netcfg.write_sysctl("net.ipv4.conf.all.arp_ignore", 1)
                netcfg.write_sysctl("net.ipv4.conf.all.arp_announce", 2)
                netcfg.write_sysctl("net.ipv4.conf.all.rp_filter", 0)
                netcfg.write_sysctl("net.ipv4.conf.veth21.rp_filter", 0)
                netcfg.add_address("lo", f"{VIP}/32")
        else:
            with lab.inside("ns1"):
                netcfg.write_sysctl("net.ipv4.ip_forward", 0)
                netcfg.write_sysctl("net.ipv4.conf.all.send_redirects", 0)
                netcfg.write_sysctl("net.ipv4.conf.default.send_redirects", 0)
            with lab.inside("ns2"):
                netcfg.write_sysctl("net.ipv4.conf.veth21.rp_filter", 0)
            decap = lab.popen(
                "ns2",
                pylvs_argv("pylvs.cli.pylvs", "realserver", "--vip", VIP, "--mode", "tun"),
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
            assert "decapsulating" in read_line(decap)
        if via == "pylvsadm":
            started = None
            try:
                if backend != "nfqueue":
                    # pylvsadm starts the default backend; others are started explicitly.
                    started = start_daemon(lab, tmp_path / "pylvsd.log", backend, short="ns1")
                _pylvsadm(lab, "-A", "-t", f"{VIP}:{PORT}", "-s", "rr")
                _pylvsadm(
                    lab, "-a", IPVSADM_SWITCH[mode], "-t", f"{VIP}:{PORT}", "-r", f"{RIP}:{PORT}"
                )
                _test_service(lab, tmp_path)
                listing = _pylvsadm(lab, "-L", "-n", "--stats")
                assert f"  -> {RIP}:{PORT}".ljust(33) + "        1" in listing
            finally:
                if started is not None:
                    lab.stop(started.proc)
                else:
                    _stop_started_daemon(lab)
                if decap is not None:
                    lab.stop(decap)
                    lab.run("ns2", pylvs_argv("pylvs.cli.pylvs", "realserver", "--undo"), cwd=REPO)
            return
        daemon = start_daemon(lab, tmp_path / "pylvsd.log", backend, short="ns1")
        try:
            svc = ServiceSpec(protocol=IPPROTO_TCP, addr=VIP, port=PORT, scheduler="rr")
            fwd = {"nat": FwdMethod.MASQ, "dr": FwdMethod.ROUTE, "tun": FwdMethod.TUNNEL}[mode]
            daemon.ctl.add_service(svc)
            daemon.ctl.add_dest(svc, DestSpec(addr=RIP, port=PORT, fwd=int(fwd)))
            _test_service(lab, tmp_path)
            (info,) = daemon.ctl.services()
            assert info.dests[0].stats[0] == 1  # one connection scheduled
        finally:
            if decap is not None:
                lab.stop(decap)
                lab.run("ns2", pylvs_argv("pylvs.cli.pylvs", "realserver", "--undo"), cwd=REPO)
