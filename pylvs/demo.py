"""The pylvs demonstration: a whole LVS web farm in network namespaces, in one command.

``scripts/demo`` (as root) brings up the ``farm`` scenario of the lab (two clients, a router, an
active and a standby director running pylvsd as the two nodes of a heartbeat cluster, four real
servers, direct routing), sends a few thousand HTTP requests from the clients, shows how they
spread over the real servers (weighted round robin, then a persistent service), lists the
director's counters with ``pylvsadm -Ln --stats`` run inside the director's namespace, then makes
one real server fail: the director's health check (ldirectord's HTTP check) quiesces it, new
connections avoid it, and when it is repaired the check puts it back. Then the active director
dies (kill -9) in the middle of a long download: heartbeat on the standby takes the VIP over,
the router follows the gratuitous ARP, the connection synchronised to the standby carries on and
the download completes byte-exact; the director comes back and gets the VIP back
(auto_failback). Then it tears everything down (``--keep`` leaves the farm running).

``--engine`` runs the older walk-through instead: the engine alone on generated packets (no
network, no root), showing each forwarding method's rewrite.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from pylvs.cli import pylvsadm
from pylvs.cli.ha import format_status
from pylvs.cli.health import build_table
from pylvs.core import forward
from pylvs.core.control import DestSpec, ServiceSpec, addr_to_text
from pylvs.core.engine import Action, Engine, Verdict
from pylvs.core.packet import parse_frame
from pylvs.core.service import AF_INET, IPPROTO_TCP, FwdMethod
from pylvs.ctl import ControlClient
from pylvs.io import netcfg
from pylvs.lab import runner, show
from pylvs.lab.client import LoadResult, http_load, start_download
from pylvs.lab.state import default_prefix, load_state
from pylvs.lab.topology import LabConfigError, Scenario, load_scenario
from pylvs.testing.netns import TimeoutExpired, wait_until

__all__ = ["engine_walkthrough", "main", "run_farm_demo"]

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


def engine_walkthrough(out: TextIO) -> None:
    """The engine on generated packets: each forwarding method, a spread, a quiesced server."""
    out.write("pylvs: the IPVS engine on generated packets\n")
    for fwd in (FwdMethod.MASQ, FwdMethod.ROUTE, FwdMethod.TUNNEL):
        _show_method(out, fwd)
    _show_spread(out)


# -- the farm -------------------------------------------------------------------------------

_SCENARIO = "farm"


def _step(out: TextIO, n: int, text: str) -> None:
    out.write(f"\n== {n}. {text}\n")
    out.flush()


def _pylvsadm(out: TextIO, prefix: str, node: str, *args: str) -> str:
    """Run pylvsadm inside ``node``'s namespace, the way an administrator on the director would."""
    ns = runner.node_netns(prefix, node)
    argv = ["ip", "netns", "exec", ns, *runner.pylvsadm_argv(), *args]
    shown = " ".join(["ip", "netns", "exec", ns, "pylvsadm", *args])
    out.write(f"$ {shown}\n")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    out.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise runner.LabError(f"pylvsadm {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _load(
    out: TextIO, scenario: Scenario, prefix: str, port: int, count: int, failures_ok: bool = False
) -> LoadResult:
    clients = [runner.node_netns(prefix, n.name) for n in scenario.by_role("client")]
    result = http_load(clients, scenario.vip, port, count)
    out.write(show.load_text(result, f"http://{scenario.vip}:{port}/") + "\n")
    if result.errors and not failures_ok:
        raise runner.LabError(
            f"{sum(result.errors.values())} requests failed: {dict(result.errors)}"
        )
    return result


def _wait_weight(
    prefix: str, node: str, svc: ServiceSpec, addr: str, wanted: Callable[[int], bool]
) -> int:
    """Wait until the director's table gives real server ``addr`` a weight ``wanted`` accepts."""

    def weight() -> int | None:
        with netcfg.in_netns(runner.node_netns(prefix, node)), ControlClient(timeout=5) as ctl:
            for d in ctl.get_service(svc).dests:
                if d.addr == addr:
                    return d.weight if wanted(d.weight) else None
        return None

    try:
        found = wait_until(lambda: weight() is not None, timeout=20, what=f"{addr}'s weight")
    except TimeoutExpired as exc:
        raise runner.LabError(str(exc)) from None
    assert found
    value = weight()
    return value if value is not None else 0


def _log_lines(prefix: str, node: str, text: str) -> list[str]:
    """The lines of ``node``'s pylvsd log that mention ``text``, without the time stamp."""
    state = load_state(prefix)
    rec = state.process(node, "pylvsd") if state else None
    if rec is None:
        return []
    lines = Path(rec.log).read_text(errors="replace").splitlines()
    return [line.split(" ", 3)[-1] for line in lines if text in line]


def _health(out: TextIO, prefix: str, node: str) -> None:
    out.write(f"$ pylvs health --netns {node}\n")
    with netcfg.in_netns(runner.node_netns(prefix, node)), ControlClient(timeout=5) as ctl:
        rows = ctl.request("health")
    web = [r for r in rows if r["check"].startswith("negotiate")]
    console = Console(file=out, width=160, force_terminal=False, color_system=None)
    console.print(build_table(web))


# The download of the failover step: long enough to fail a director in its middle, once its
# connection has reached the standby (the master sync daemon sends within 2 s).
DOWNLOAD_SIZE = 8 << 20
DOWNLOAD_RATE = 2 << 20


def _mac(prefix: str, node: str, iface: str) -> str:
    path = f"/sys/class/net/{iface}/address"
    ns = runner.node_netns(prefix, node)
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "cat", path], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _neigh(prefix: str, router: str, iface: str, addr: str) -> str | None:
    """The MAC the router's neighbour table has for ``addr`` on ``iface``."""
    with netcfg.in_netns(runner.node_netns(prefix, router)):
        mac, _state = netcfg.neigh_lookup(netcfg.link_info(iface).index, addr)
    return None if mac is None else mac.hex(":")


def _wait_neigh(prefix: str, router: str, iface: str, addr: str, mac: str) -> float:
    """Wait until the router sends ``addr`` to ``mac``; returns time.monotonic() then."""
    try:
        wait_until(
            lambda: _neigh(prefix, router, iface, addr) == mac,
            timeout=10,
            interval=0.01,
            what=f"the router's neighbour entry for {addr} to be {mac}",
        )
    except TimeoutExpired as exc:
        raise runner.LabError(str(exc)) from None
    return time.monotonic()


def _synced(prefix: str, node: str, cport: int) -> Any:
    """The connection from client port ``cport`` in ``node``'s table, or None."""
    with netcfg.in_netns(runner.node_netns(prefix, node)), ControlClient(timeout=5) as ctl:
        return next((c for c in ctl.conns() if c.cport == cport and not c.template), None)


def _failover(out: TextIO, scenario: Scenario, prefix: str, step: int) -> None:
    """A director dies in the middle of a download; heartbeat moves the VIP, the synchronised
    connection goes on, the director comes back (see the module docstring)."""
    director = scenario.active_director.name
    standby = next(n.name for n in scenario.by_role("director") if n.standby)
    router = scenario.by_role("router")[0]
    r_iface = scenario.vip_interface_of(router)
    assert r_iface is not None and scenario.heartbeat is not None
    client_node = scenario.by_role("client")[0].name
    vip = scenario.vip
    names = {}
    for name in (director, standby):
        iface = scenario.vip_interface_of(scenario.node(name))
        assert iface is not None
        names[_mac(prefix, name, iface.name)] = f"{name}.{iface.name}"
    mac_of = {v.split(".")[0]: k for k, v in names.items()}
    mib = 1 << 20

    _step(
        out, step, f"{director} dies in the middle of a download: heartbeat fails over to {standby}"
    )
    out.write(
        f"Both directors are nodes of a heartbeat cluster (pylvsd --ha with netns-lab/"
        f"{scenario.heartbeat.name}/): heartbeats every 100 ms on eth0 and on the heartbeat LAN "
        f"eth1, a node is dead after 500 ms of silence. {director} holds the resource group "
        "IPaddr2::192.0.2.100/24/eth0 LVSSyncDaemonSwap::master: the VIP, and the master "
        f"connection sync daemon, which sends every connection to the backup daemon on {standby}.\n"
    )
    before = _neigh(prefix, router.name, r_iface.name, vip)
    out.write(f"$ ip netns exec {prefix}{router.name} ip neigh show {vip}\n")
    out.write(f"{vip} dev {r_iface.name} lladdr {before} ({names.get(before or '', '?')})\n")
    ns = runner.node_netns(prefix, client_node)
    d = start_download(ns, vip, 80, DOWNLOAD_SIZE, DOWNLOAD_RATE)
    if d.error:
        raise runner.LabError(f"the download did not start: {d.error}")
    out.write(
        f"{client_node} downloads {DOWNLOAD_SIZE // mib} MiB from http://{vip}/data/"
        f"{DOWNLOAD_SIZE}?rate={DOWNLOAD_RATE} (paced at {DOWNLOAD_RATE // mib} MiB/s, about "
        f"{DOWNLOAD_SIZE / DOWNLOAD_RATE:.0f} s), client port {d.cport}.\n"
    )
    try:
        conn = wait_until(
            lambda: _synced(prefix, standby, d.cport), timeout=10, what="the synchronised conn"
        )
    except TimeoutExpired as exc:
        raise runner.LabError(str(exc)) from None
    out.write(
        f"{d.seconds:.1f} s after the start {standby} has the connection, from {director}'s "
        "sync daemon:\n"
        f"  {standby}: TCP {conn.state} {conn.caddr}:{conn.cport} -> {conn.vaddr}:{conn.vport}"
        f" -> {conn.daddr}:{conn.dport}\n"
    )
    got = d.received
    out.write(f"$ pylvs lab fail {director}\n")
    result = runner.fail(prefix, director, "kill")
    assert isinstance(result, runner.FailResult) and result.takeover_s is not None
    out.write(
        f"{director}'s pylvsd (pid {result.pid}) killed with SIGKILL after {got / mib:.1f} of "
        f"{DOWNLOAD_SIZE // mib} MiB; like a crashed heartbeat it leaves the VIP configured on "
        f"{director}, whose packets now go nowhere.\n"
    )
    out.write(
        f"{result.holder} holds the VIP {result.takeover_s:.2f} s after the kill "
        "(500 ms deadtime, then IPaddr2). Its pylvsd's log:\n"
    )
    assert result.holder == standby
    for text in (f"node {director}: is dead", "Running IPaddr2", "state = MASTER"):
        for line in _log_lines(prefix, standby, text)[-1:]:
            out.write(f"  {line}\n")
    t_neigh = _wait_neigh(prefix, router.name, r_iface.name, vip, mac_of[standby])
    after = _neigh(prefix, router.name, r_iface.name, vip)
    out.write(
        f"The router's neighbour entry for {vip}: {before} ({names.get(before or '', '?')}) -> "
        f"{after} ({names.get(after or '', '?')}), {t_neigh - result.failed_at:.2f} s after "
        "the kill: the gratuitous ARP of the takeover.\n"
    )
    if not d.wait(30) or not d.ok:
        raise runner.LabError(
            f"the download failed: {d.error or 'incomplete'} ({d.received} of {d.size} bytes, "
            f"sha256 {d.sha256})"
        )
    out.write(
        f"The download completed: {d.received} bytes ({d.size // mib} MiB) in {d.seconds:.1f} s "
        f"from {d.server}, sha256 {d.sha256[:16]}... as expected: byte-exact. Its longest "
        f"wait for data was {d.longest_stall:.2f} s: TCP retransmitted until {standby}, which "
        f"knew the connection, forwarded the client's ACKs to {d.server} again.\n"
    )
    out.write(f"$ pylvs ha --netns {prefix}{standby} status\n")
    with netcfg.in_netns(runner.node_netns(prefix, standby)), ControlClient(timeout=5) as ctl:
        out.write(format_status(ctl.request("ha-status")))
    _pylvsadm(out, prefix, standby, "-L", "--daemon")
    out.write(f"$ pylvs lab heal {director}\n")
    t_heal = time.monotonic()
    healed = runner.heal(prefix, director)
    assert isinstance(healed, runner.HealResult)
    t_back = _wait_neigh(prefix, router.name, r_iface.name, vip, mac_of[director])
    out.write(
        f"{director} comes back as after a reboot: the stale VIP removed, pylvsd and its backup "
        f"sync daemon started again (pid {healed.pid}). auto_failback is on, so {standby} gives "
        f"the group back: the VIP is on {healed.holder} again {healed.seconds:.1f} s after the "
        f"heal began, and the router's entry is back to {mac_of[director]} "
        f"({names[mac_of[director]]}) after {t_back - t_heal:.1f} s.\n"
    )
    _pylvsadm(out, prefix, director, "-L", "--daemon")


def run_farm_demo(out: TextIO, prefix: str, requests: int = 3000, keep: bool = False) -> int:
    """The main demonstration (see the module docstring); returns the exit status."""
    scenario = load_scenario(_SCENARIO)
    director = scenario.active_director.name
    standby = [n.name for n in scenario.by_role("director") if n.standby]
    (svc80, dests80), (svc8080, _dests8080) = scenario.services[0], scenario.services[1]
    first = dests80[0]
    first_name = scenario.owner_of(first.addr)
    started = time.monotonic()
    _step(out, 1, f"Bring up the '{scenario.name}' lab: {scenario.title}")
    out.write(f"$ pylvs lab up {scenario.name}\n")
    runner.up(_SCENARIO, prefix)
    try:
        out.write(show.topology_text(scenario) + "\n")
        ha = ""
        if scenario.heartbeat is not None:
            ha = f", two heartbeat nodes; heartbeat gave the VIP to {director}"
        out.write(
            f"({len(scenario.nodes) + 1} network namespaces named {prefix}*, built in "
            f"{time.monotonic() - started:.1f} s; pylvsd runs on {director} and on "
            f"{', '.join(standby) or 'no standby'}{ha})\n"
        )

        total_w = sum(d.weight for d in dests80)
        _step(out, 2, f"{requests} HTTP requests to http://{scenario.vip}/ from the clients")
        out.write(
            f"The service uses {svc80.scheduler} with weights "
            f"{', '.join(str(d.weight) for d in dests80)}: expect shares of "
            f"{', '.join(f'{d.weight}/{total_w}' for d in dests80)}. Every request is a new "
            "TCP connection; each real server answers with its own name.\n"
        )
        _load(out, scenario, prefix, svc80.port, requests)

        _step(out, 3, f"The director's view: pylvsadm inside {director}")
        _pylvsadm(out, prefix, director, "-L", "-n", "--stats")
        out.write(
            "InPkts only, OutPkts 0: in direct routing the replies go from the real servers "
            "to the router, never through the director.\n"
        )

        _step(out, 4, f"Persistence: port {svc8080.port} is persistent ({svc8080.timeout} s)")
        res = _load(out, scenario, prefix, svc8080.port, max(requests // 10, 40))
        for ns, seen in sorted(res.per_client.items()):
            where = ", ".join(f"{name} x{count}" for name, count in sorted(seen.items()))
            out.write(f"  {ns.removeprefix(prefix)}: {where}\n")
        out.write(
            "Each client stays on one real server: the director keeps a template per "
            "client address (see the templates with `pylvsadm -L -n -c`).\n"
        )

        for name in standby:
            _step(out, 5, f"The standby director {name}: same services, no VIP, no traffic")
            _pylvsadm(out, prefix, name, "-L", "-n", "--stats")
            out.write(
                f"{name} has every service configured but saw no packet: the router sends "
                f"the VIP's traffic to the MAC that answered its ARP request, {director}'s. "
                "Heartbeat moves the VIP (and a gratuitous ARP) to it when "
                f"{director} fails: step 7.\n"
            )

        rs_name = first_name[0].name if first_name else first.addr
        vs = f"{svc80.addr}:{svc80.port}"
        _step(out, 6, f"{rs_name} ({first.addr}) fails: its web server stops")
        out.write(f"$ pylvs lab fail {rs_name}\n")
        runner.fail(prefix, rs_name)
        t_fail = time.monotonic()
        weight = _wait_weight(prefix, director, svc80, first.addr, lambda w: w == 0)
        out.write(
            f"{director}'s health check (GET / on {first.addr}:{first.port} every second, as "
            f"ldirectord's HTTP check) saw it {time.monotonic() - t_fail:.1f} s later and set "
            f"its weight to {weight} (quiescent = true). pylvsd's log says:\n"
        )
        real = f"real server: {first.addr}:{first.port} ("
        for line in _log_lines(prefix, director, real)[-1:]:
            out.write(f"  {line}\n")
        _health(out, prefix, director)
        res = _load(out, scenario, prefix, svc80.port, max(requests // 3, 100), failures_ok=True)
        got = res.servers.get(rs_name, 0)
        refused = sum(res.errors.values())
        out.write(
            f"{rs_name} got {got} of the new connections: with weight 0 the scheduler never "
            "picks it for a new client.\n"
        )
        if refused:
            out.write(
                f"The {refused} failed requests reused a client port of a connection the "
                f"director still tracks for {rs_name}: in DR the director never sees the "
                "server's FIN, so that connection sits in FIN_WAIT, and IPVS sends a SYN on a "
                "known connection to its old real server unless conn_reuse_mode has bit 2 set; "
                f"{rs_name} is down and refuses it. pylvs does the same. The client's next "
                "connection, from another port, is served.\n"
            )
        _pylvsadm(out, prefix, director, "-L", "-n")
        out.write(f"$ pylvs lab repair {rs_name}\n")
        runner.repair(prefix, rs_name)
        t_back = time.monotonic()
        weight = _wait_weight(prefix, director, svc80, first.addr, lambda w: w > 0)
        out.write(
            f"The check passed again {time.monotonic() - t_back:.1f} s later: weight back to "
            f"{weight}.\n"
        )
        for line in _log_lines(prefix, director, real)[-1:]:
            out.write(f"  {line}\n")
        _pylvsadm(out, prefix, director, "-L", "-n", "-t", vs)
        step = 7
        if scenario.heartbeat is not None and standby:
            _failover(out, scenario, prefix, step)
            step += 1
        _step(out, step, "Done" + (": the farm keeps running" if keep else ": tearing down"))
    except BaseException:
        if not keep:
            with contextlib.suppress(Exception):
                runner.down(prefix)
        raise
    if keep:
        out.write(show.hints(scenario, prefix) + "\n")
    else:
        out.write("$ pylvs lab down\n")
        report = runner.down(prefix)
        out.write(
            f"removed {len(report.namespaces)} namespaces and stopped "
            f"{len(report.stopped) + len(report.swept)} processes\n"
        )
    out.write(f"demo finished in {time.monotonic() - started:.1f} s\n")
    return 0


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    p = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n\n")[1])
    p.add_argument("--engine", action="store_true", help="the engine walk-through (no root)")
    p.add_argument("--keep", action="store_true", help="leave the farm running at the end")
    p.add_argument("-n", "--requests", type=int, default=3000, help="HTTP requests (3000)")
    p.add_argument("--prefix", default=default_prefix(), help="lab namespace prefix (lvs-)")
    args = p.parse_args(argv)
    if args.engine:
        engine_walkthrough(out)
        return 0
    if os.geteuid() != 0:
        print(
            "demo: the farm runs in network namespaces and needs root "
            "(`--engine` shows the engine alone without root)",
            file=sys.stderr,
        )
        return 1
    try:
        return run_farm_demo(out, args.prefix, args.requests, args.keep)
    except (runner.LabError, LabConfigError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
