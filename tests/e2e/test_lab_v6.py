"""`pylvs lab` with the IPv6 scenarios (nat6, dr6, tun6): each comes up, carries HTTP and UDP to
every real server over the IPv6 VIP, traces both, and goes down without leaving anything."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylvs.lab import runner
from pylvs.lab.state import lab_run_dir
from pylvs.lab.topology import lab_dir, load_scenario

PREFIX = f"lvs-v{os.getpid() % 100000}-"
VIP = "2001:db8:2::100"


def lab(*args: str, timeout: float = 90) -> str:
    argv = [sys.executable, "-m", "pylvs.cli.pylvs", "lab", "--prefix", PREFIX, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, (
        f"pylvs lab {' '.join(args)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}"
    )
    return proc.stdout


@pytest.fixture
def clean() -> Iterator[None]:
    runner.down(PREFIX)
    yield
    runner.down(PREFIX)
    assert runner.lab_namespaces(PREFIX) == []
    assert runner.lab_pids(PREFIX) == {}
    assert not lab_run_dir(PREFIX).exists()


# What the SYN's trace must show for each forwarding method (see pylvs.lab.trace.changes).
EXPECT = {
    "nat6": [f"IP dst {VIP} -> 2001:db8:3::1", "(DNAT, NAT66)", "IP src 2001:db8:3::1"],
    "dr6": ["new Ethernet header: to rs", "hop limit 63 -> 62"],
    "tun6": ["IP6IP6 header added: 2001:db8:2::2 > 2001:db8:3::1", "IP6IP6 header removed"],
}


@pytest.mark.parametrize("name", ["nat6", "dr6", "tun6"])
def test_ipv6_scenario(name: str, clean: None) -> None:
    scenario = load_scenario(name)
    reals = sorted(n.name for n in scenario.by_role("realserver"))
    lab("up", name)
    out = lab("http", "-n", "60")
    assert f"60 requests to http://[{VIP}]:80/" in out and ", 0 failed" in out
    for real in reals:
        assert real in out, out
    curl = lab("exec", "client1", "--", "curl", "-g", "-s", "-m", "5", f"http://[{VIP}]/")
    assert curl.strip() in reals
    trace = lab("trace")
    for text in EXPECT[name]:
        assert text in trace, trace
    assert "(not captured)" not in trace, trace
    udp = lab("trace", "--udp", "7")
    assert "UDP reply: the answer" in udp and "(not captured)" not in udp, udp
    # The VIP is deprecated on the director: received on, never its connections' source.
    addr = lab("exec", "director1", "--", "ip", "-6", "addr", "show", "dev", "eth0")
    vip_line = next(line for line in addr.splitlines() if f"{VIP}/128" in line)
    assert "deprecated" in vip_line and "nodad" in vip_line, addr
    status = lab("status")
    assert f"{VIP}/128 (VIP)" in status, status
    lab("down")


def test_a_mixed_family_scenario_is_refused_in_one_line(tmp_path: Path) -> None:
    text = (
        (lab_dir() / "nat6.toml").read_text().replace('"2001:db8:1::10/64"', '"198.51.100.10/24"')
    )
    (tmp_path / "mixed.toml").write_text(text)
    (tmp_path / "nat6.pylvs.toml").write_text((lab_dir() / "nat6.pylvs.toml").read_text())
    argv = [sys.executable, "-m", "pylvs.cli.pylvs", "lab", "--prefix", PREFIX, "up"]
    proc = subprocess.run([*argv, str(tmp_path / "mixed.toml")], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert (
        "mixed.toml: node 'client1': interfaces[0].address 198.51.100.10/24 is IPv4" in proc.stderr
    )
    assert runner.lab_namespaces(PREFIX) == []
