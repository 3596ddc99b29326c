"""The kernel's IPVS selftest (tools/testing/selftests/net/netfilter/ipvs.sh) with pylvs as IPVS.

Same topology and steps as the script, with its private addresses replaced by documentation
ranges (the VIP stays 207.175.44.110, inside the lab only):

    ns0 (client): bridge br0 = veth01 (to the director) + veth02 (to the real server), cip
    ns1 (director): veth10 gip, veth12 dip, VIP on lo
    ns2 (real server): veth21 rip, veth20 sip (on the client's bridge; removed for NAT)

Every step runs in the script's order: the route to the VIP on the client, ``ip_forward``, then
``ipvsadm -A -t VIP:8080 -s rr`` and ``ipvsadm -a [-m|-i] -t VIP:8080 -r RIP:8080`` (as
``pylvsadm`` command lines, the first one starting pylvsd in the director's namespace as the
kernel loads IPVS on demand; also through the control client), and only then the VIP on the
director's ``lo:1``: the service is added while the director has no route to its address. 32
random bytes are sent with socat and compared with cmp. The kernel has no ``ipip`` module here,
so for tunnel mode the real server runs pylvs's userspace decapsulator once the script's steps
are done (it finds the VIP the script put on ``lo``). The steps take the script's addresses as a
:class:`Family`; test_selftest_v6.py runs them with IPv6 ones.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from lvslab import REPO, pylvs_argv, read_line, start_daemon

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.service import AF_INET, AF_INET6, IPPROTO_TCP, FwdMethod
from pylvs.ctl import ControlClient, connect_if_running
from pylvs.io import netcfg
from pylvs.testing.netns import Lab, wait_until

PORT = 8080


@dataclass(frozen=True)
class Family:
    """The script's addresses in one address family (test_selftest_v6.py has the IPv6 ones)."""

    af: int
    vip: str
    cip: str  # client, on the bridge
    gip: str  # director, client side
    sip: str  # real server, client side (DR/TUN replies)
    dip: str  # director, real server side
    rip: str  # real server
    prefixlen: int

    @property
    def v6(self) -> bool:
        return self.af == AF_INET6

    def hostport(self, addr: str) -> str:
        """ADDR:PORT as ipvsadm and socat write it (IPv6 in brackets)."""
        return f"[{addr}]:{PORT}" if self.v6 else f"{addr}:{PORT}"


V4 = Family(
    af=AF_INET,
    vip="207.175.44.110",
    cip="192.0.2.2",
    gip="192.0.2.1",
    sip="192.0.2.3",
    dip="198.51.100.1",
    rip="198.51.100.2",
    prefixlen=24,
)
VIP, RIP = V4.vip, V4.rip


def _setup(lab: Lab, fam: Family = V4) -> None:
    """ipvs.sh setup(): the three namespaces, the bridge, the addresses; no routes, no VIP."""
    for short in ("ns0", "ns1", "ns2"):
        lab.add_netns(short)
        if fam.v6:
            # Duplicate address detection off before the interfaces exist: usable at once.
            for conf in ("all", "default"):
                _sysctl(lab, short, f"net.ipv6.conf.{conf}.accept_dad", 0)
    n = fam.prefixlen
    lab.veth("ns0", "veth01", "ns1", "veth10", addr_b=f"{fam.gip}/{n}")
    lab.veth("ns0", "veth02", "ns2", "veth20", addr_b=f"{fam.sip}/{n}")
    lab.veth("ns1", "veth12", "ns2", "veth21", addr_a=f"{fam.dip}/{n}", addr_b=f"{fam.rip}/{n}")
    with lab.inside("ns0"):
        netcfg.add_bridge("br0")
        netcfg.set_link_master("veth01", "br0")
        netcfg.set_link_master("veth02", "br0")
        netcfg.set_link_up("br0")
        netcfg.add_address("br0", f"{fam.cip}/{n}")


def _ip(lab: Lab, short: str, *args: str) -> None:
    """``ip netns exec NS ip ARGS``, as the script runs it."""
    lab.run(short, ["ip", *args])


def _sysctl(lab: Lab, short: str, key: str, value: int) -> None:
    with lab.inside(short):
        netcfg.write_sysctl(key, value)


def _listening(lab: Lab, short: str, port: int, fam: Family = V4) -> bool:
    table = lab.run(short, ["cat", "/proc/net/tcp6" if fam.v6 else "/proc/net/tcp"]).stdout.decode()
    return any(
        line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
        for line in table.splitlines()[1:]
    )


def _test_service(lab: Lab, tmp_path: Path, fam: Family = V4) -> None:
    """ipvs.sh test_service: socat 32 random bytes client -> VIP -> real server, then cmp."""
    infile = tmp_path / "in.bin"
    outfile = tmp_path / "out.bin"
    infile.write_bytes(os.urandom(32))
    family = "-6" if fam.v6 else "-4"
    with outfile.open("wb") as out:
        server = lab.popen(
            "ns2", ["socat", "-u", family, f"TCP-LISTEN:{PORT},reuseaddr", "STDOUT"], stdout=out
        )
    wait_until(lambda: _listening(lab, "ns2", PORT, fam), what="socat listening")
    with infile.open("rb") as data:
        lab.run("ns0", ["socat", "-u", family, "STDIN", f"TCP:{fam.hostport(fam.vip)}"], stdin=data)
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


def _script(lab: Lab, mode: str, ipvsadm: Callable[..., None], fam: Family = V4) -> None:
    """test_dr / test_nat / test_tun of ipvs.sh, step by step in the script's order: the virtual
    service is added before the VIP is on the director's lo (so with no route to it), and ``-g``
    is ipvsadm's default forwarding method where the script gives none."""
    if fam.v6:
        _script6(lab, mode, ipvsadm, fam)
        return
    _ip(lab, "ns0", "route", "add", VIP, "via", V4.gip, "dev", "br0")
    if mode == "tun":
        # modprobe ipip / tunl0: not in this kernel; the real server runs pylvs's decapsulator.
        _sysctl(lab, "ns1", "net.ipv4.ip_forward", 0)
        _sysctl(lab, "ns1", "net.ipv4.conf.all.send_redirects", 0)
        _sysctl(lab, "ns1", "net.ipv4.conf.default.send_redirects", 0)
    else:
        _sysctl(lab, "ns1", "net.ipv4.ip_forward", 1)
    ipvsadm("-A", "-t", f"{VIP}:{PORT}", "-s", "rr")
    switch = {"dr": [], "nat": ["-m"], "tun": ["-i"]}[mode]
    ipvsadm("-a", *switch, "-t", f"{VIP}:{PORT}", "-r", f"{RIP}:{PORT}")
    _ip(lab, "ns1", "addr", "add", f"{VIP}/32", "dev", "lo", "label", "lo:1")
    if mode == "nat":
        _ip(lab, "ns2", "link", "del", "veth20")
        _ip(lab, "ns2", "route", "add", "default", "via", V4.dip, "dev", "veth21")
        return
    _sysctl(lab, "ns2", "net.ipv4.conf.all.arp_ignore", 1)
    _sysctl(lab, "ns2", "net.ipv4.conf.all.arp_announce", 2)
    _sysctl(lab, "ns2", "net.ipv4.conf.all.rp_filter", 0)
    _sysctl(lab, "ns2", "net.ipv4.conf.veth21.rp_filter", 0)
    _ip(lab, "ns2", "addr", "add", f"{VIP}/32", "dev", "lo", "label", "lo:1")


def _script6(lab: Lab, mode: str, ipvsadm: Callable[..., None], fam: Family) -> None:
    """The same steps in IPv6: ``forwarding`` for ``ip_forward``; IPv6 has no ``send_redirects``
    switch, no ARP (a VIP on lo is never advertised: Linux answers a Neighbor Solicitation only
    for an address of the interface it came in on, so nothing replaces arp_ignore/arp_announce),
    no rp_filter, and no address labels (``lo:1``)."""
    _ip(lab, "ns0", "route", "add", fam.vip, "via", fam.gip, "dev", "br0")
    _sysctl(lab, "ns1", "net.ipv6.conf.all.forwarding", 0 if mode == "tun" else 1)
    ipvsadm("-A", "-t", fam.hostport(fam.vip), "-s", "rr")
    switch = {"dr": [], "nat": ["-m"], "tun": ["-i"]}[mode]
    ipvsadm("-a", *switch, "-t", fam.hostport(fam.vip), "-r", fam.hostport(fam.rip))
    _ip(lab, "ns1", "addr", "add", f"{fam.vip}/128", "dev", "lo")
    if mode == "nat":
        _ip(lab, "ns2", "link", "del", "veth20")
        _ip(lab, "ns2", "route", "add", "default", "via", fam.dip, "dev", "veth21")
        return
    _ip(lab, "ns2", "addr", "add", f"{fam.vip}/128", "dev", "lo")


def _start_decapsulator(lab: Lab, fam: Family = V4) -> subprocess.Popen[str]:
    decap = lab.popen(
        "ns2",
        pylvs_argv("pylvs.cli.pylvs", "realserver", "--vip", fam.vip, "--mode", "tun"),
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert "decapsulating" in read_line(decap)
    return decap


VIAS = ["pylvsadm", "control"]
MODES = ["dr", "nat", "tun"]


def run_selftest(tmp_path: Path, backend: str, mode: str, via: str, fam: Family) -> None:
    """The script's test for one mode, with ``ipvsadm`` as pylvsadm command lines or as
    control-client calls, then the transfer and the destination's connection counter."""
    with Lab() as lab:
        _setup(lab, fam)
        decap = None
        started = None
        try:
            if via == "pylvsadm":
                if backend != "nfqueue":
                    # pylvsadm starts the default backend; others are started explicitly.
                    started = start_daemon(lab, tmp_path / "pylvsd.log", backend, short="ns1")

                def ipvsadm(*args: str) -> None:
                    _pylvsadm(lab, *args)
            else:
                started = start_daemon(lab, tmp_path / "pylvsd.log", backend, short="ns1")
                ctl = started.ctl

                def ipvsadm(*args: str) -> None:
                    svc = ServiceSpec(
                        af=fam.af, protocol=IPPROTO_TCP, addr=fam.vip, port=PORT, scheduler="rr"
                    )
                    if args[0] == "-A":
                        ctl.add_service(svc)
                    else:
                        methods = {"-m": FwdMethod.MASQ, "-i": FwdMethod.TUNNEL}
                        fwd = methods.get(args[1], FwdMethod.ROUTE)
                        dest = DestSpec(af=fam.af, addr=fam.rip, port=PORT, fwd=int(fwd))
                        ctl.add_dest(svc, dest)

            _script(lab, mode, ipvsadm, fam)
            if mode == "tun":
                # Where the kernel has ipip, tunl0 decapsulates; here pylvs's decapsulator does.
                decap = _start_decapsulator(lab, fam)
            _test_service(lab, tmp_path, fam)
            if via == "pylvsadm":
                listing = _pylvsadm(lab, "-L", "-n", "--stats")
                row = f"  -> {fam.hostport(fam.rip)}".ljust(33) + "        1"
                assert row in listing, listing
            else:
                (info,) = ctl.services()
                assert info.dests[0].stats[0] == 1  # one connection scheduled
        finally:
            if started is not None:
                lab.stop(started.proc)
            elif via == "pylvsadm":
                _stop_started_daemon(lab)
            if decap is not None:
                lab.stop(decap)
                lab.run("ns2", pylvs_argv("pylvs.cli.pylvs", "realserver", "--undo"), cwd=REPO)


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("mode", MODES)
def test_ipvs_selftest(tmp_path: Path, backend: str, mode: str, via: str) -> None:
    run_selftest(tmp_path, backend, mode, via, V4)


SAVED = """-A -t 207.175.44.110:8080 -s rr
-a -t 207.175.44.110:8080 -r 198.51.100.2:8080 -g -w 1
-A -u 203.0.113.50:53 -s wlc -p 300
-a -u 203.0.113.50:53 -r 10.99.0.1:53 -m -w 2
-a -u 203.0.113.50:53 -r 10.99.0.2:53 -i -w 1 --tun-type ipip
"""


def test_saved_rules_with_unroutable_addresses_restore_and_list_the_same(tmp_path: Path) -> None:
    """ipvsadm -R at boot runs before interfaces are configured: every address here has no
    route, and the rule set must restore and save byte-identically, as with kernel IPVS."""
    with Lab() as lab:
        lab.add_netns("ns1")
        try:
            done = lab.run("ns1", [PYLVSADM, "-R"], input=SAVED.encode(), check=False)
            assert done.returncode == 0, done.stderr.decode()
            assert _pylvsadm(lab, "-S", "-n") == SAVED
        finally:
            _stop_started_daemon(lab)


def test_listing_starts_nothing_and_changes_nothing() -> None:
    """In a fresh namespace ``pylvsadm -L -n`` shows the kernel's empty table; before, it
    started pylvsd, which installed its rules."""
    with Lab() as lab:
        lab.add_netns("ns1")
        listing = _pylvsadm(lab, "-L", "-n")
        assert listing.startswith("IP Virtual Server version 1.2.1 (size=4096)\n")
        assert len(listing.splitlines()) == 3
        assert _pylvsadm(lab, "-S", "-n") == ""
        with lab.inside("ns1"):
            assert connect_if_running() is None
        rules = lab.run("ns1", ["iptables", "-w", "-t", "raw", "-S"]).stdout.decode()
        assert "PYLVS" not in rules
