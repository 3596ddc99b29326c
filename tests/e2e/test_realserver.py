"""``pylvs realserver``: host preparation, its undo, and the userspace IPIP decapsulator."""

from __future__ import annotations

import socket
import subprocess

from lvslab import REPO, pylvs_argv, read_line

from pylvs.io import netcfg
from pylvs.testing.netns import Lab, wait_until

VIP = "203.0.113.10"


def _sysctls(lab: Lab, keys: list[str]) -> list[str]:
    with lab.inside("r"):
        return [netcfg.read_sysctl(k) for k in keys]


def test_dr_setup_and_undo() -> None:
    keys = [
        "net.ipv4.conf.all.arp_ignore",
        "net.ipv4.conf.all.arp_announce",
        "net.ipv4.conf.lo.arp_ignore",
        "net.ipv4.conf.lo.arp_announce",
        "net.ipv4.conf.all.rp_filter",
        "net.ipv4.conf.eth0.rp_filter",
    ]
    with Lab() as lab:
        lab.add_netns("r")
        lab.add_netns("x")
        lab.veth("r", "eth0", "x", "eth0", addr_a="198.51.100.11/24")
        with lab.inside("r"):
            netcfg.write_sysctl("net.ipv4.conf.eth0.rp_filter", 1)
        before = _sysctls(lab, keys)
        lab.run("r", pylvs_argv("pylvs.cli.pylvs", "realserver", "--vip", VIP, "--mode", "dr"))
        assert _sysctls(lab, keys) == ["1", "2", "1", "2", "0", "0"]
        with lab.inside("r"):
            assert netcfg.has_address("lo", VIP)
        again = lab.run(
            "r",
            pylvs_argv("pylvs.cli.pylvs", "realserver", "--vip", VIP, "--mode", "dr"),
            check=False,
        )
        assert again.returncode == 1 and b"--undo" in again.stderr
        lab.run("r", pylvs_argv("pylvs.cli.pylvs", "realserver", "--undo"))
        assert _sysctls(lab, keys) == before
        with lab.inside("r"):
            assert not netcfg.has_address("lo", VIP)


def test_nat_setup_and_undo() -> None:
    with Lab() as lab:
        lab.add_netns("r")
        lab.add_netns("x")
        lab.veth("r", "eth0", "x", "eth0", addr_a="198.51.100.11/24", addr_b="198.51.100.1/24")
        argv = ["realserver", "--vip", VIP, "--mode", "nat", "--director", "198.51.100.1"]
        lab.run("r", pylvs_argv("pylvs.cli.pylvs", *argv), cwd=REPO)
        with lab.inside("r"):
            assert netcfg.default_gateway() == "198.51.100.1"
        lab.run("r", pylvs_argv("pylvs.cli.pylvs", "realserver", "--undo"), cwd=REPO)
        with lab.inside("r"):
            assert netcfg.default_gateway() is None
        bad = lab.run(
            "r",
            pylvs_argv(
                "pylvs.cli.pylvs",
                "realserver",
                "--vip",
                VIP,
                "--mode",
                "nat",
                "--director",
                "192.0.2.99",
            ),
            check=False,
            cwd=REPO,
        )
        assert bad.returncode == 1 and b"director 192.0.2.99 is not reachable" in bad.stderr


def test_ipip_decapsulator_delivers_inner_packet() -> None:
    """An IPIP packet to the real server reaches a UDP socket bound to the VIP."""
    from scapy.all import IP, UDP, raw

    with Lab() as lab:
        lab.add_netns("r")
        lab.add_netns("d")
        lab.veth("d", "eth0", "r", "eth0", addr_a="198.51.100.1/24", addr_b="198.51.100.11/24")
        decap = lab.popen(
            "r",
            pylvs_argv("pylvs.cli.pylvs", "realserver", "--vip", VIP, "--mode", "tun"),
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            assert "decapsulating" in read_line(decap)
            with lab.inside("r"):
                listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            listener.bind((VIP, 9999))
            listener.settimeout(5)
            inner = IP(src="192.0.2.2", dst=VIP, ttl=63) / UDP(sport=1234, dport=9999) / b"tun!"
            outer = IP(src="198.51.100.1", dst="198.51.100.11", proto=4) / inner
            with lab.inside("d"):
                sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            with sender, listener:
                sender.sendto(raw(outer), ("198.51.100.11", 0))
                data, peer = listener.recvfrom(100)
            assert data == b"tun!" and peer == ("192.0.2.2", 1234)
        finally:
            assert lab.stop(decap) == 0
            lab.run("r", pylvs_argv("pylvs.cli.pylvs", "realserver", "--undo"), cwd=REPO)
        with lab.inside("r"):
            wait_until(lambda: not netcfg.link_exists("pylvs-tun0"), what="TUN device gone")


def test_realserver_says_what_it_did_and_brings_lo_up() -> None:
    """Before, it printed nothing on success and left lo down in a fresh namespace (where the
    VIP on lo then accepts nothing)."""
    with Lab() as lab:
        lab.add_netns("r")
        lab.run("r", ["ip", "link", "set", "lo", "down"])
        done = lab.run(
            "r", pylvs_argv("pylvs.cli.pylvs", "realserver", "--vip", VIP, "--mode", "dr"),
            text=True,
        )  # fmt: skip
        assert done.stdout == (
            f"pylvs realserver: dr real server: {VIP}/32 on lo (lo brought up), arp_ignore=1 "
            "arp_announce=2 on all and lo, rp_filter=0; --undo reverts it\n"
        )
        with lab.inside("r"):
            assert netcfg.link_is_up("lo")
        lab.run("r", pylvs_argv("pylvs.cli.pylvs", "realserver", "--undo"))
        with lab.inside("r"):
            assert not netcfg.link_is_up("lo")
