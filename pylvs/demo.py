"""A guided run of the pylvs engine on generated packets (no network needed).

It shows, for each LVS forwarding method, how the director rewrites a client's packets; then it
spreads a few thousand connections over weighted real servers, lists them the way
``ipvsadm -Ln --stats`` does, quiesces one server and shows that new connections avoid it.

Run with ``python -m pylvs.demo``.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from typing import Any, TextIO

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from pylvs.cli import pylvsadm
from pylvs.core import forward
from pylvs.core.control import DestSpec, ServiceSpec, addr_to_text
from pylvs.core.engine import Action, Engine, Verdict
from pylvs.core.packet import parse_frame
from pylvs.core.service import AF_INET, IPPROTO_TCP, FwdMethod

__all__ = ["main"]

VIP = "192.0.2.10"
CLIENT = "198.51.100.7"
DIRECTOR = "203.0.113.254"
DIRECTOR_MAC = "02:00:00:00:00:fe"
REALS = [("203.0.113.1", "02:00:00:00:00:01"), ("203.0.113.2", "02:00:00:00:00:02")]


def _ip(text: str) -> int:
    return int.from_bytes(bytes(int(x) for x in text.split(".")), "big")


def _describe(data: bytes | bytearray) -> str:
    """One line per header, as a student would read them off a capture."""
    layer: Any = IP(bytes(data))
    lines = []
    while isinstance(layer, IP):
        lines.append(f"IP {layer.src} -> {layer.dst} ttl={layer.ttl} proto={layer.proto}")
        if layer.haslayer(TCP) and not isinstance(layer.payload, IP):
            tcp = layer[TCP]
            lines.append(f"TCP {tcp.sport} -> {tcp.dport} flags={tcp.flags}")
            break
        layer = layer.payload
    return " | ".join(lines)


def _farm(fwd: FwdMethod, sched: str = "rr", weights: tuple[int, ...] = (1, 1)) -> Engine:
    engine = Engine(random.Random(7))
    vs = ServiceSpec(protocol=IPPROTO_TCP, addr=VIP, port=80, scheduler=sched)
    engine.add_service(vs)
    for (addr, _mac), weight in zip(REALS, weights, strict=True):
        engine.add_dest(vs, DestSpec(addr=addr, port=80, weight=weight, fwd=int(fwd)))
        engine.set_path(AF_INET, _ip(addr), _ip(DIRECTOR), 1500)
    return engine


def _show_method(out: TextIO, fwd: FwdMethod) -> None:
    engine = _farm(fwd)
    out.write(f"\n== {fwd.label}: a client opens a connection to {VIP}:80\n")
    syn = bytes(IP(src=CLIENT, dst=VIP, ttl=64) / TCP(sport=40000, dport=80, flags="S"))
    out.write(f"  client sends      {_describe(syn)}\n")
    action: Action = engine.handle(syn, 0.0)
    assert action.packet is not None
    if action.verdict == Verdict.ROUTE:
        # Direct routing changes only the Ethernet addresses: build the frame and rewrite it.
        client_frame = Ether(src="02:00:00:00:00:aa", dst=DIRECTOR_MAC) / IP(action.packet)
        frame = bytearray(bytes(client_frame))
        mac = bytes.fromhex(REALS[0][1].replace(":", ""))
        forward.dr_rewrite(frame, mac, bytes.fromhex(DIRECTOR_MAC.replace(":", "")))
        eth = Ether(bytes(frame))
        parse_frame(frame)  # the frame stays a valid Ethernet/IP frame
        out.write(f"  director sends    Ether {eth.src} -> {eth.dst} | ")
        out.write(f"{_describe(action.packet)}\n")
        out.write("  (the IP packet is unchanged but for its TTL; the real server holds the VIP\n")
        out.write("   on lo and answers the client directly)\n")
    elif action.verdict == Verdict.TUNNEL:
        out.write(f"  director sends    {_describe(bytes(action.packet))}\n")
        out.write("  (an outer IP header carries the unchanged packet to the real server, which\n")
        out.write("   unwraps it and answers the client directly from the VIP)\n")
    else:
        out.write(f"  director sends    {_describe(bytes(action.packet))}\n")
        rip = addr_to_text(AF_INET, action.next_hop)
        reply = bytes(IP(src=rip, dst=CLIENT) / TCP(sport=80, dport=40000, flags="SA"))
        out.write(f"  real server says  {_describe(reply)}\n")
        back = engine.handle(reply, 0.01)
        assert back.packet is not None
        out.write(f"  director sends    {_describe(bytes(back.packet))}\n")
        out.write("  (the reply returns through the director, which puts the VIP back)\n")
    state = engine.conns()[0]
    out.write(f"  connection table  {state.state} {state.caddr}:{state.cport} -> ")
    out.write(f"{state.vaddr}:{state.vport} -> {state.daddr}:{state.dport}\n")


def _show_spread(out: TextIO) -> None:
    engine = _farm(FwdMethod.ROUTE, sched="wrr", weights=(3, 1))
    out.write("\n== wrr with weights 3 and 1: 4000 connections from 500 clients\n")
    rng = random.Random(1)
    for i in range(4000):
        client = f"198.51.{100 + rng.randrange(2)}.{rng.randrange(1, 251)}"
        syn = bytes(IP(src=client, dst=VIP) / TCP(sport=20000 + i, dport=80, flags="S"))
        engine.handle(syn, 0.0)
    pylvsadm.main(["-L", "-n", "--stats"], control=engine, stdout=out)
    out.write("\n== weight 0 on 203.0.113.1 (quiescent): 1000 new connections\n")
    quiesce = ["-e", "-t", f"{VIP}:80", "-r", "203.0.113.1:80", "-g", "-w", "0"]
    pylvsadm.main(quiesce, control=engine, stdout=out)
    chosen: Counter[str] = Counter()
    for i in range(1000):
        syn = bytes(IP(src=CLIENT, dst=VIP) / TCP(sport=30000 + i, dport=80, flags="S"))
        chosen[addr_to_text(AF_INET, engine.handle(syn, 1.0).next_hop)] += 1
    for addr, count in sorted(chosen.items()):
        out.write(f"  {addr}: {count} new connections\n")
    pylvsadm.main(["-L", "-n"], control=engine, stdout=out)


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    out.write("pylvs: the IPVS engine on generated packets\n")
    for fwd in (FwdMethod.MASQ, FwdMethod.ROUTE, FwdMethod.TUNNEL):
        _show_method(out, fwd)
    _show_spread(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
