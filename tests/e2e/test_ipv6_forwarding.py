"""IPv6 virtual services end to end: client -> [VIP] -> three real servers through pylvsd, for
every forwarding method (NAT66, DR, IPv6-in-IPv6 tunnel) and protocol, on every backend.

Real servers are socat echo servers (tests/e2e/ipv6lab.py); the data comes back byte-exact, rr
spreads the connections evenly, the director's table shows IPv6 connections, and in DR/TUN the
real servers' replies do not pass the director (no outgoing counters). The backends' ip6tables
rules exist while pylvsd runs and are gone once it stops.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from ipv6lab import farm6, tcp6_exchange, udp6_exchange
from lvslab import random_bytes, sha

from pylvs.testing.netns import Lab

MODES = ["nat", "dr", "tun"]
TCP_CONNS = 6
TCP_PAYLOAD = 128 * 1024


def _ip6tables(lab: Lab, short: str) -> str:
    return str(lab.run(short, ["ip6tables", "-w", "-t", "raw", "-S"]).stdout.decode())


@pytest.mark.parametrize("proto", ["tcp", "udp"])
@pytest.mark.parametrize("mode", MODES)
def test_ipv6_forwarding(tmp_path: Path, backend: str, mode: str, proto: str) -> None:
    with farm6(tmp_path, backend, mode, proto) as f:
        vip = f.topo.vip
        rules = _ip6tables(f.lab, "d")
        chain = "PYLVS" if backend.startswith("nfqueue") else "PYLVS-AF"
        assert f"-A {chain} -d {vip}/128 -p {proto} -m {proto} --dport 8080" in rules, rules
        counts: Counter[str] = Counter()
        if proto == "tcp":
            for _ in range(TCP_CONNS):
                payload = random_bytes(TCP_PAYLOAD)
                ident, echoed = tcp6_exchange(f.lab, vip, payload)
                assert len(echoed) == len(payload) and sha(echoed) == sha(payload)
                counts[ident] += 1
            assert counts == {"r1": 2, "r2": 2, "r3": 2}
        else:
            for _ in range(3):  # one flow per real server (socat UDP6-LISTEN serves one)
                payloads = [random_bytes(n) for n in (1, 100, 1000, 1400, 512)]
                ident, replies = udp6_exchange(f.lab, vip, payloads)
                assert [sha(r) for r in replies] == [sha(p) for p in payloads]
                counts[ident] += 1
            assert counts == {"r1": 1, "r2": 1, "r3": 1}
        conns = [c for c in f.ctl.conns() if not c.template]
        assert conns and all(c.vaddr == vip and c.af == 6 for c in conns), conns
        (info,) = f.ctl.services()
        per_conn = 2 if proto == "tcp" else 1
        for dest in info.dests:
            n, inpkts, outpkts, _inbytes, _outbytes = dest.stats
            assert n == per_conn and inpkts > 0
            if mode == "nat":
                assert outpkts > 0
            else:
                assert outpkts == 0  # DR/TUN: replies go straight to the client
        status = f.ctl.status()
        if mode == "tun" and proto == "tcp":
            # 1500-byte segments + 40 bytes of outer IPv6 > the 1500 path: Packet Too Big.
            assert status["engine"].get("frag_needed", 0) > 0
        f.lab.stop(f.daemon.proc)
        assert "PYLVS" not in _ip6tables(f.lab, "d")
        assert "PYLVS" not in f.lab.run("d", ["iptables", "-w", "-t", "raw", "-S"]).stdout.decode()
