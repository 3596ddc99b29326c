"""The kernel's IPVS selftest (tools/testing/selftests/net/netfilter/ipvs.sh) in IPv6.

The script tests IPv4 only; this is its topology and its steps (test_selftest.py, whose helpers
it runs) with IPv6 documentation addresses:

    ns0 (client): bridge br0 = veth01 + veth02, 2001:db8:1::2
    ns1 (director): veth10 2001:db8:1::1, veth12 2001:db8:2::1, VIP 2001:db8:10::10 on lo
    ns2 (real server): veth21 2001:db8:2::2, veth20 2001:db8:1::3 (removed for NAT)

``pylvsadm -A -t [VIP]:8080 -s rr``, ``pylvsadm -a [-m|-i] -t [VIP]:8080 -r [RIP]:8080`` (or the
same through the control client) before the VIP is on the director; 32 random bytes with socat,
compared with cmp; the real server's IPv6-in-IPv6 traffic is decapsulated by pylvs's
userspace decapsulator (this kernel has no ip6tnl).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_selftest import MODES, VIAS, Family, run_selftest

from pylvs.core.service import AF_INET6

V6 = Family(
    af=AF_INET6,
    vip="2001:db8:10::10",
    cip="2001:db8:1::2",
    gip="2001:db8:1::1",
    sip="2001:db8:1::3",
    dip="2001:db8:2::1",
    rip="2001:db8:2::2",
    prefixlen=64,
)


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("mode", MODES)
def test_ipvs_selftest_v6(tmp_path: Path, backend: str, mode: str, via: str) -> None:
    run_selftest(tmp_path, backend, mode, via, V6)
