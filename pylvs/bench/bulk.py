"""Bulk TCP through the director: iperf3, one stream and four, in Gbit/s.

The iperf3 client runs in the sender and sends to the VIP (pylvs DR and NAT, and plain kernel
forwarding, where the director routes the VIP to the receiver) or to the director's own address
(HAProxy in TCP mode on the director). The server runs in the receiver, on every address (the
real servers' and the VIP on ``lo``), started for one test (``-1``) and stopped after it, so a
test that broke off never leaves it busy for the next. Both iperf3 ends are pinned to CPU 0 and
the director's process (pylvsd, HAProxy) to CPU 1, as in the packet-rate steps.

The figure is the receiver's rate (iperf3's ``sum_received``): what got through the director.
Whatever the interfaces' offloads are (:func:`offloads` says which are on), the test itself
does not change: with TSO/GSO/GRO on, the kernel hands the director frames larger than the MTU,
and a data plane that cannot take them shows it here as a low rate or a failed test.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from pylvs.bench.lab import BenchLab
from pylvs.testing.netns import wait_until

__all__ = ["IPERF_PORT", "OFFLOAD_FEATURES", "iperf3", "offloads", "parse_ethtool_features",
           "parse_iperf3", "start_haproxy_tcp"]  # fmt: skip

IPERF_PORT = 5201
# ethtool -k names of the offloads that change what a packet socket sees, and their short names.
OFFLOAD_FEATURES = {
    "tcp-segmentation-offload": "tso",
    "generic-segmentation-offload": "gso",
    "generic-receive-offload": "gro",
    "large-receive-offload": "lro",
    "rx-gro-list": "gro-list",
    "rx-udp-gro-forwarding": "udp-gro-fwd",
    "tx-checksumming": "tx-csum",
    "rx-checksumming": "rx-csum",
}


def parse_ethtool_features(text: str) -> list[str]:
    """The short names of :data:`OFFLOAD_FEATURES` that ``ethtool -k`` output says are on."""
    on: list[str] = []
    for line in text.splitlines():
        name, _, value = line.strip().partition(":")
        short = OFFLOAD_FEATURES.get(name)
        if short is not None and value.split()[:1] == ["on"]:
            on.append(short)
    return on


def offloads(lab: BenchLab) -> dict[str, list[str]]:
    """Interface -> the offloads on there, for the four interfaces of the lab."""
    t = lab.topo
    out: dict[str, list[str]] = {}
    for short, ifname in (("s", t.sender_if), ("d", t.front_if), ("d", t.back_if),
                          ("r", t.receiver_if)):  # fmt: skip
        res = lab.run(short, ["ethtool", "-k", ifname], check=False)
        out[ifname] = parse_ethtool_features(res.stdout.decode(errors="replace"))
    return out


def parse_iperf3(text: str) -> dict[str, Any]:
    """Gbit/s received and retransmissions from ``iperf3 -J`` output; ValueError on a failed
    test (iperf3's own ``error``, or no result)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"iperf3 gave no JSON: {text.strip()[:200]!r}") from None
    if data.get("error"):
        raise ValueError(f"iperf3: {data['error']}")
    end = data.get("end", {})
    received = end.get("sum_received")
    if not received or "bits_per_second" not in received:
        raise ValueError("iperf3 reported no received sum")
    sent = end.get("sum_sent", {})
    return {
        "gbit_s": round(received["bits_per_second"] / 1e9, 3),
        "retransmits": int(sent.get("retransmits", 0)),
        "seconds": round(float(received.get("seconds", 0.0)), 2),
    }


def _listening(lab: BenchLab, short: str, port: int) -> bool:
    """A TCP socket listens on ``port`` (IPv4, or IPv6 dual-stack as iperf3's ``::``)."""
    table = lab.run(short, ["cat", "/proc/net/tcp", "/proc/net/tcp6"]).stdout.decode()
    return any(
        line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
        for line in table.splitlines()
        if line.split() and line.split()[0].endswith(":")
    )


def iperf3(lab: BenchLab, addr: str, seconds: int, streams: int) -> dict[str, Any]:
    """One iperf3 test from the sender to ``addr`` with ``streams`` parallel streams."""
    server = lab.popen(
        "r",
        ["taskset", "-c", "0", "iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _listening(lab, "r", IPERF_PORT), timeout=10, what="iperf3 -s")
        argv = [
            "taskset", "-c", "0", "iperf3", "-c", addr, "-p", str(IPERF_PORT),
            "-t", str(seconds), "-P", str(streams), "-J", "--connect-timeout", "3000",
        ]  # fmt: skip
        start = time.monotonic()
        try:
            res = lab.run("s", argv, check=False, timeout=seconds + 20)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"iperf3 -P {streams} to {addr} did not finish") from None
        result = parse_iperf3(res.stdout.decode(errors="replace"))
        result["streams"] = streams
        result["wall_s"] = round(time.monotonic() - start, 1)
        return result
    finally:
        lab.stop(server)


def start_haproxy_tcp(lab: BenchLab, workdir: Path) -> subprocess.Popen[Any]:
    """HAProxy for the bulk test: TCP mode on the director's front address, port
    :data:`IPERF_PORT`, round robin over the real servers; one thread, pinned to CPU 1."""
    t = lab.topo
    conf = workdir / "haproxy-bulk.cfg"
    servers = "".join(
        f"  server r{i} {rip}:{IPERF_PORT}\n" for i, rip in enumerate(t.reals, start=1)
    )
    conf.write_text(
        "global\n  maxconn 4000\n  nbthread 1\n"
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
        f"frontend fe\n  bind {t.director_front}:{IPERF_PORT}\n  default_backend be\n"
        f"backend be\n  balance roundrobin\n{servers}"
    )
    proc = lab.popen(
        "d", ["taskset", "-c", "1", "haproxy", "-db", "-f", str(conf)], stdout=subprocess.DEVNULL
    )
    wait_until(lambda: _listening(lab, "d", IPERF_PORT), timeout=10, what="haproxy")
    return proc
