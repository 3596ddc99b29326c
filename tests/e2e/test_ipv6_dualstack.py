"""A dual-stack director: one IPv4 and one IPv6 virtual service on the same port, each over the
same three real servers, with traffic through both at once.

The IPv6 lab (tests/e2e/ipv6lab.py) gets the IPv4 lab's addresses too (pylvs.testing.netns
LvsTopology: front 192.0.2.0/24, back 198.51.100.0/24, VIP 203.0.113.10), so every real server
has an IPv4 and an IPv6 address and runs a socat echo server on each family. The services are
configured with ``pylvsadm`` command lines in the director's namespace:

    -A -t 203.0.113.10:8080 -s rr          -a -t 203.0.113.10:8080 -r 198.51.100.1N:8080 -m|-g|-i
    -A -t [2001:db8:10::10]:8080 -s rr     -a -t [2001:db8:10::10]:8080 -r [2001:db8:2::1N]:8080 ...

``tun-mixed`` is the one mixed-family case IPVS accepts (ip_vs_ctl.c: a destination of the
other family only with tunnel forwarding): the IPv6 service tunnels to the real servers' IPv4
addresses (IPv6-in-IPv4, protocol 41), so both services share the very same destinations.
Six TCP transfers per service run concurrently and come back byte-exact; rr gives each real
server two of each service, and ``pylvsadm -L -n --stats --exact`` shows the per-service and
per-destination counters.
"""

from __future__ import annotations

import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ipv6lab import Lab6, build_lab6, start_socat, tcp6_exchange
from lvslab import random_bytes, setup_realservers, sha, start_daemon, undo_realservers

from pylvs.io import netcfg
from pylvs.testing.netns import Lab, LvsTopology

PORT = 8080
CONNS = 6  # per service: two per real server with rr
PAYLOAD = 64 * 1024
PYLVSADM = str(Path(sys.executable).with_name("pylvsadm"))
SWITCH = {"nat": "-m", "dr": "-g", "tun": "-i", "tun-mixed": "-i"}


def _add_ipv4(lab: Lab, topo6: Lab6) -> LvsTopology:
    """The IPv4 lab's addresses and routes on the IPv6 lab's interfaces (build_lvs_lab's)."""
    topo = LvsTopology(
        reals=tuple(f"198.51.100.{11 + i}" for i in range(len(topo6.reals))),
        front_if=topo6.front_if,
        back_if=topo6.back_if,
    )
    with lab.inside("sw"):
        netcfg.add_address("brf", f"{topo.router_front}/24")
        netcfg.add_address("brb", f"{topo.router_back}/24")
        netcfg.write_sysctl("net.ipv4.ip_forward", 1)
    with lab.inside("c"):
        netcfg.add_address("c0", f"{topo.client}/24")
        netcfg.add_route(f"{topo.vip}/32", topo.director_front)
        netcfg.add_route("default", topo.router_front)
    with lab.inside("d"):
        netcfg.add_address(topo.front_if, f"{topo.director_front}/24")
        netcfg.add_address(topo.back_if, f"{topo.director_back}/24")
        netcfg.add_address("lo", f"{topo.vip}/32")
        netcfg.write_sysctl("net.ipv4.conf.all.send_redirects", 0)
        netcfg.write_sysctl("net.ipv4.conf.default.send_redirects", 0)
    for i, rip in enumerate(topo.reals):
        with lab.inside(f"r{i + 1}"):
            netcfg.add_address("eth0", f"{rip}/24")
            netcfg.add_route("default", topo.router_back)
    return topo


def _setup_ipv6_realserver(lab: Lab, short: str, topo6: Lab6, mode: str) -> None:
    """The IPv6 half of a real server (``pylvs realserver`` did the IPv4 one, and runs the
    decapsulator, which reads every IP-in-IP encapsulation): the IPv6 VIP on lo for DR and
    tunnels, the director as IPv6 default gateway for NAT."""
    with lab.inside(short):
        if mode == "nat":
            netcfg.replace_default_route(topo6.director_back)
        else:
            netcfg.add_address("lo", f"{topo6.vip}/128")


def _pylvsadm(lab: Lab, *args: str) -> str:
    done = lab.run("d", [PYLVSADM, *args], check=False)
    assert done.returncode == 0, done.stderr.decode()
    return str(done.stdout.decode())


def _hostport(addr: str) -> str:
    return f"[{addr}]:{PORT}" if ":" in addr else f"{addr}:{PORT}"


def _stats(listing: str) -> dict[str, dict[str, list[int]]]:
    """``-L -n --stats --exact`` as {service: {"": service counters, dest: dest counters}}
    (Conns, InPkts, OutPkts, InBytes, OutBytes)."""
    table: dict[str, dict[str, list[int]]] = {}
    service = ""
    for line in listing.splitlines()[3:]:
        fields = line.split()
        if line.startswith("  -> "):
            table[service][fields[1]] = [int(v) for v in fields[2:]]
        else:
            service = fields[1]
            table[service] = {"": [int(v) for v in fields[2:]]}
    return table


@pytest.mark.parametrize("mode", ["nat", "dr", "tun", "tun-mixed"])
def test_dual_stack_services_share_real_servers(tmp_path: Path, backend: str, mode: str) -> None:
    with Lab() as lab:
        topo6 = build_lab6(lab)
        topo4 = _add_ipv4(lab, topo6)
        shorts = [f"r{i + 1}" for i in range(len(topo6.reals))]
        fwd = "tun" if mode == "tun-mixed" else mode
        try:
            setup_realservers(lab, topo4, fwd, shorts)
            for short, rip4, rip6 in zip(shorts, topo4.reals, topo6.reals, strict=True):
                _setup_ipv6_realserver(lab, short, topo6, fwd)
                start_socat(lab, short, "tcp", rip4 if mode == "nat" else topo4.vip)
                start_socat(lab, short, "tcp", rip6 if mode == "nat" else topo6.vip)
            daemon = start_daemon(lab, tmp_path / "pylvsd.log", backend)
            dests6 = topo4.reals if mode == "tun-mixed" else topo6.reals
            services = {topo4.vip: topo4.reals, topo6.vip: dests6}
            for vip, rips in services.items():
                _pylvsadm(lab, "-A", "-t", _hostport(vip), "-s", "rr")
                for rip in rips:
                    _pylvsadm(lab, "-a", "-t", _hostport(vip), "-r", _hostport(rip), SWITCH[mode])

            jobs = [(vip, random_bytes(PAYLOAD)) for _ in range(CONNS) for vip in services]
            with ThreadPoolExecutor(len(jobs)) as pool:
                results = list(pool.map(lambda job: tcp6_exchange(lab, *job), jobs))
            counts: dict[str, Counter[str]] = {vip: Counter() for vip in services}
            for (vip, payload), (ident, echoed) in zip(jobs, results, strict=True):
                assert len(echoed) == len(payload) and sha(echoed) == sha(payload), (vip, ident)
                counts[vip][ident] += 1
            for vip in services:
                assert counts[vip] == {"r1": 2, "r2": 2, "r3": 2}, (vip, counts)

            listing = _pylvsadm(lab, "-L", "-n", "--stats", "--exact")
            table = _stats(listing)
            assert sorted(table) == sorted(_hostport(vip) for vip in services), listing
            for vip, rips in services.items():
                rows = table[_hostport(vip)]
                assert sorted(rows) == sorted(["", *(_hostport(rip) for rip in rips)]), listing
                assert rows[""][0] == CONNS, listing
                for rip in rips:
                    conns, inpkts, outpkts, inbytes, outbytes = rows[_hostport(rip)]
                    assert conns == 2, listing
                    # Two payloads in, plus the headers: the client side went through us.
                    assert inpkts > 0 and inbytes > 2 * PAYLOAD, listing
                    if mode == "nat":
                        assert outpkts > 0 and outbytes > 2 * PAYLOAD, listing
                    else:
                        assert outpkts == 0 and outbytes == 0, listing  # replies bypass us
            lab.stop(daemon.proc)
        finally:
            undo_realservers(lab, shorts)
