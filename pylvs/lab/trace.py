"""``pylvs lab trace``: one exchange captured at every hop, and how its headers change on the way.

tcpdump runs on every interface of every node (inside the namespaces; the pcap files go to the
lab's run directory), a client makes one HTTP request (or one UDP echo) to the VIP, and the
captures are read back with dpkt. The packets of that one connection are picked out by the
client's address and port (for IPIP, those of the inner packet) and printed in time order, hop by
hop: the Ethernet addresses (named after the interface that owns them), the IP addresses, ports
and TTL, and what changed since the previous hop. That is the whole difference between the
forwarding methods, seen on the wire:

* NAT: the director rewrites the destination address (VIP -> real server) and, on the way back,
  the source (real server -> VIP); the reply passes the director.
* DR: the director rewrites only the Ethernet destination; the IP packet is untouched; the reply
  goes from the real server straight to the router.
* TUN: the director wraps the packet in a second IP header to the real server; the reply goes
  straight back, as in DR.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

from pylvs.io import netcfg
from pylvs.lab.runner import LabError, node_netns
from pylvs.lab.state import ProcessRecord, lab_run_dir, load_state, save_state
from pylvs.lab.topology import Scenario
from pylvs.testing.netns import TimeoutExpired, wait_until

__all__ = [
    "Capture",
    "Seen",
    "Stage",
    "TraceResult",
    "changes",
    "decode_frame",
    "format_trace",
    "pick_stages",
    "read_capture",
    "run_trace",
]

_TCP_FLAGS = ((0x02, "S"), (0x10, "A"), (0x08, "P"), (0x01, "F"), (0x04, "R"))
_SYN, _ACK = 0x02, 0x10
_IPPROTO_IPIP = 4
_RAW_LINKTYPES = (12, 14, 101)  # DLT_RAW on the various platforms, LINKTYPE_RAW in files
_TUN_DEVICE = "pylvs-tun0"  # the userspace IPIP decapsulator's TUN device (pylvs realserver)


@dataclass(frozen=True)
class Capture:
    """One capture point: an interface of a node, its MAC (None for a TUN device), its pcap."""

    node: str
    iface: str
    mac: str | None
    pcap: str


@dataclass(frozen=True)
class Seen:
    """One packet as seen at one capture point (inner headers when tunnelled)."""

    time: float
    node: str
    iface: str
    direction: str  # "sent" or "recv"
    eth_src: str | None
    eth_dst: str | None
    outer: tuple[str, str, int] | None  # IPIP outer src, dst, ttl
    src: str
    dst: str
    ttl: int
    proto: str
    sport: int
    dport: int
    flags: str = ""
    length: int = 0

    def headers(self) -> tuple[object, ...]:
        """Everything the wire shows, without where and when it was seen."""
        return (
            self.eth_src,
            self.eth_dst,
            self.outer,
            self.src,
            self.dst,
            self.ttl,
            self.sport,
            self.dport,
        )


@dataclass(frozen=True)
class Stage:
    """One packet of the exchange (the SYN, the SYN-ACK, ...) followed through the network."""

    title: str
    seen: list[Seen]


@dataclass
class TraceResult:
    scenario: str
    method: str
    vip: str
    client: str
    server: str
    stages: list[Stage]
    mac_names: dict[str, str]
    hop_counts: list[tuple[str, int, int]] = field(default_factory=list)  # where, to, from server
    pcaps: list[str] = field(default_factory=list)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _flags(value: int) -> str:
    return "".join(letter for bit, letter in _TCP_FLAGS if value & bit)


def decode_frame(
    data: bytes, node: str, iface: str, own_mac: str | None, ts: float, raw: bool = False
) -> Seen | None:
    """An Ethernet frame (or a raw IP packet from a TUN device) -> :class:`Seen`; None if it is
    not IPv4 TCP/UDP (nor IPIP carrying it)."""
    eth_src = eth_dst = None
    try:
        if raw:
            ip = dpkt.ip.IP(data)
        else:
            eth = dpkt.ethernet.Ethernet(data)
            eth_src, eth_dst = _mac(eth.src), _mac(eth.dst)
            ip = eth.data
    except (dpkt.UnpackError, ValueError):
        return None
    if not isinstance(ip, dpkt.ip.IP):
        return None
    outer = None
    if ip.p == _IPPROTO_IPIP:
        outer = (socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst), int(ip.ttl))
        try:
            ip = ip.data if isinstance(ip.data, dpkt.ip.IP) else dpkt.ip.IP(bytes(ip.data))
        except (dpkt.UnpackError, ValueError):
            return None
    l4 = ip.data
    if isinstance(l4, dpkt.tcp.TCP):
        proto, flags = "TCP", _flags(l4.flags)
    elif isinstance(l4, dpkt.udp.UDP):
        proto, flags = "UDP", ""
    else:
        return None
    # What the decapsulator writes into a TUN device is received by the kernel.
    direction = "sent" if not raw and eth_src == own_mac else "recv"
    return Seen(
        time=ts,
        node=node,
        iface=iface,
        direction=direction,
        eth_src=eth_src,
        eth_dst=eth_dst,
        outer=outer,
        src=socket.inet_ntoa(ip.src),
        dst=socket.inet_ntoa(ip.dst),
        ttl=int(ip.ttl),
        proto=proto,
        sport=int(l4.sport),
        dport=int(l4.dport),
        flags=flags,
        length=len(l4.data),
    )


def read_capture(capture: Capture) -> list[Seen]:
    """Every IPv4 TCP/UDP packet of one pcap file."""
    seen = []
    with open(capture.pcap, "rb") as f:
        try:
            reader = dpkt.pcap.Reader(f)
        except (ValueError, dpkt.NeedData):
            return []  # tcpdump was stopped before it wrote the file header
        raw = reader.datalink() in _RAW_LINKTYPES
        for ts, data in reader:
            item = decode_frame(
                bytes(data), capture.node, capture.iface, capture.mac, float(ts), raw
            )
            if item is not None:
                seen.append(item)
    return seen


def _order(items: list[Seen]) -> list[Seen]:
    # Same time stamp: a packet is sent before it is received.
    return sorted(items, key=lambda s: (s.time, s.direction != "sent"))


def pick_stages(seen: list[Seen], client_ip: str, cport: int, proto: str) -> list[Stage]:
    """The packets of the client's one connection, grouped into the stages worth following.

    TCP: the SYN (client -> service) and the SYN-ACK (server -> client); UDP: the request and the
    reply. A packet seen twice at the same place (a retransmission) counts once.
    """
    to_server = [s for s in seen if s.proto == proto and s.src == client_ip and s.sport == cport]
    to_client = [s for s in seen if s.proto == proto and s.dst == client_ip and s.dport == cport]
    if proto == "TCP":
        first = [s for s in to_server if s.flags == "S"]
        second = [s for s in to_client if "S" in s.flags and "A" in s.flags]
        titles = ("SYN: client -> virtual service", "SYN-ACK: the answer")
    else:
        first = [s for s in to_server if s.length]
        second = [s for s in to_client if s.length]
        titles = ("UDP request: client -> virtual service", "UDP reply: the answer")
    stages = []
    for title, items in zip(titles, (first, second), strict=True):
        once: dict[tuple[str, str, str], Seen] = {}
        for item in _order(items):
            once.setdefault((item.node, item.iface, item.direction), item)
        stages.append(Stage(title, _order(list(once.values()))))
    return stages


def changes(prev: Seen | None, cur: Seen, mac_names: dict[str, str], method: str = "") -> list[str]:
    """What is different in ``cur`` from the previous sighting of the same packet."""
    if prev is None:
        return []
    notes = []
    if cur.outer is not None and prev.outer is None:
        notes.append(f"IPIP header added: {cur.outer[0]} > {cur.outer[1]}, packet inside unchanged")
    elif cur.outer is None and prev.outer is not None:
        notes.append("IPIP header removed")
    elif cur.outer != prev.outer and cur.outer is not None and prev.outer is not None:
        if cur.outer[:2] != prev.outer[:2]:
            notes.append(
                f"IPIP header {prev.outer[0]} > {prev.outer[1]} -> {cur.outer[0]} > {cur.outer[1]}"
            )
        if cur.outer[2] != prev.outer[2]:
            notes.append(f"outer TTL {prev.outer[2]} -> {cur.outer[2]}")
    if cur.dst != prev.dst:
        tag = " (DNAT)" if method == "nat" else ""
        notes.append(f"IP dst {prev.dst} -> {cur.dst}{tag}")
    if cur.src != prev.src:
        tag = " (SNAT)" if method == "nat" else ""
        notes.append(f"IP src {prev.src} -> {cur.src}{tag}")
    if (cur.sport, cur.dport) != (prev.sport, prev.dport):
        notes.append(f"ports {prev.sport} > {prev.dport} -> {cur.sport} > {cur.dport}")
    if cur.ttl != prev.ttl:
        notes.append(f"TTL {prev.ttl} -> {cur.ttl}")
    new_link = (cur.eth_src, cur.eth_dst) != (prev.eth_src, prev.eth_dst)
    same_addresses = not any(n.startswith(("IP ", "IPIP")) for n in notes)
    if cur.eth_dst is not None and prev.eth_dst is not None and new_link and same_addresses:
        # Only the link layer is new: a router's hop, or a DR director's MAC rewrite.
        notes.append(f"new Ethernet header: to {_name(cur.eth_dst, mac_names)}")
    return notes


def _name(mac: str | None, mac_names: dict[str, str]) -> str:
    if mac is None:
        return "-"
    return mac_names.get(mac, mac)


def _ip_column(s: Seen) -> str:
    inner = f"{s.src}:{s.sport} > {s.dst}:{s.dport}"
    if s.outer is not None:
        return f"[IPIP {s.outer[0]} > {s.outer[1]} ttl {s.outer[2]}] {inner}"
    return inner


def format_trace(result: TraceResult) -> str:
    """The hop-by-hop story of a :class:`TraceResult`, for a terminal."""
    out = [
        f"trace: {result.client} -> {result.vip} ({result.scenario}, method {result.method}); "
        f"answered by {result.server}",
    ]
    for stage in result.stages:
        out.append("")
        out.append(stage.title)
        if not stage.seen:
            out.append("  (not captured)")
            continue
        prev: Seen | None = None
        for k, s in enumerate(stage.seen, 1):
            where = f"{s.node}/{s.iface}"
            eth = f"{_name(s.eth_src, result.mac_names)} > {_name(s.eth_dst, result.mac_names)}"
            if s.eth_src is None:
                eth = "(no Ethernet: TUN device)"
            flags = f" [{s.flags}]" if s.flags else ""
            headers = f"{_ip_column(s)}{flags} ttl {s.ttl}"
            line = f"  {k:>2} {where:<18} {s.direction:<4}  {eth:<31} {headers}"
            if prev is not None and s.direction == "recv" and s.headers() == prev.headers():
                line = f"  {k:>2} {where:<18} recv  (the same frame)"
            out.append(line)
            for note in changes(prev, s, result.mac_names, result.method):
                out.append(f"  {'':>2} {'':<18}       ^ {note}")
            prev = s
    if result.hop_counts:
        out.append("")
        out.append("packets of this connection at each capture point (to server / to client):")
        for where, to_server, to_client in result.hop_counts:
            out.append(f"  {where:<20} {to_server:>3} / {to_client:<3}")
    if result.pcaps:
        out.append("")
        out.append(f"pcap files: {os.path.dirname(result.pcaps[0])}/*.pcap (tcpdump -r, wireshark)")
    return "\n".join(out)


# -- capturing ------------------------------------------------------------------------------


def _exchange_tcp(ns: str, vip: str, port: int) -> tuple[str, int, str]:
    """One HTTP GET from namespace ``ns``; returns (client address, client port, server name)."""
    with netcfg.in_netns(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(5.0)
        try:
            sock.connect((vip, port))
            caddr, cport = sock.getsockname()
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {vip}\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        except OSError as exc:
            raise LabError(f"no service answers at {vip}:{port}/tcp ({_why(exc)})") from None
    body = data.partition(b"\r\n\r\n")[2].decode(errors="replace").strip()
    return caddr, cport, body


def _exchange_udp(ns: str, vip: str, port: int) -> tuple[str, int, str]:
    with netcfg.in_netns(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.settimeout(2.0)
        sock.connect((vip, port))
        caddr, cport = sock.getsockname()
        for _attempt in range(3):
            try:
                sock.send(b"trace")
                data = sock.recv(65535)
            except TimeoutError:
                continue
            except OSError as exc:  # ICMP port unreachable: ECONNREFUSED on a connected socket
                raise LabError(f"no service answers at {vip}:{port}/udp ({_why(exc)})") from None
            return caddr, cport, data.partition(b" ")[0].decode()
    raise LabError(f"no service answers at {vip}:{port}/udp (no reply to 3 datagrams)")


def _why(exc: OSError) -> str:
    return "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()


def _capture_points(prefix: str, scenario: Scenario, out_dir: Path) -> list[Capture]:
    points = []
    for node in scenario.nodes:
        ns = node_netns(prefix, node.name)
        with netcfg.in_netns(ns):
            names = [i.name for i in node.interfaces]
            if netcfg.link_exists(_TUN_DEVICE):
                names.append(_TUN_DEVICE)
            for name in names:
                mac = None if name == _TUN_DEVICE else _mac(netcfg.link_info(name).mac)
                points.append(
                    Capture(node.name, name, mac, str(out_dir / f"{node.name}-{name}.pcap"))
                )
    return points


def run_trace(
    prefix: str,
    scenario: Scenario,
    client: str,
    tcp_port: int = 80,
    udp_port: int | None = None,
    out_dir: Path | None = None,
) -> TraceResult:
    """Capture one exchange from ``client`` to the VIP at every hop (see the module docstring)."""
    state = load_state(prefix)
    if state is None or not state.ready:
        raise LabError(f"no lab with prefix {prefix!r} is up")
    if client not in [n.name for n in scenario.by_role("client")]:
        raise LabError(f"{client!r} is not a client node of {scenario.name}")
    out_dir = out_dir or lab_run_dir(prefix) / "trace"
    out_dir.mkdir(parents=True, exist_ok=True)
    points = _capture_points(prefix, scenario, out_dir)
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for point in points:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(point.pcap)
            err = Path(point.pcap).with_suffix(".log")
            argv = [
                "ip", "netns", "exec", node_netns(prefix, point.node),
                "tcpdump", "-i", point.iface, "-n", "-U", "--immediate-mode", "-s", "256",
                "--time-stamp-precision=nano", "-w", point.pcap, "ip",
            ]  # fmt: skip
            with err.open("w") as errf:
                proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errf)
            procs.append((proc, err))
            state.processes.append(ProcessRecord(point.node, "tcpdump", proc.pid, argv, str(err)))
        save_state(state)

        def listening() -> bool:
            for proc, err in procs:
                if proc.poll() is not None:
                    raise LabError(f"tcpdump failed: {err.read_text().strip()}")
            return all("listening on" in err.read_text() for _p, err in procs)

        try:
            wait_until(listening, timeout=10, interval=0.05, what="tcpdump on every interface")
        except TimeoutExpired as exc:
            raise LabError(str(exc)) from None
        ns = node_netns(prefix, client)
        if udp_port is not None:
            caddr, cport, server = _exchange_udp(ns, scenario.vip, udp_port)
            proto = "UDP"
        else:
            caddr, cport, server = _exchange_tcp(ns, scenario.vip, tcp_port)
            proto = "TCP"
        time.sleep(0.3)  # the last segments (FIN, ACK) reach every hop
    finally:
        for proc, _err in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)  # tcpdump flushes and closes its file
        for proc, _err in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        pids = {p.pid for p, _e in procs}
        state.processes = [r for r in state.processes if r.pid not in pids]
        save_state(state)
    seen = [s for point in points for s in read_capture(point)]
    mac_names = {p.mac: f"{p.node}.{p.iface}" for p in points if p.mac}
    flow = [
        s
        for s in seen
        if s.proto == proto and cport in (s.sport, s.dport) and caddr in (s.src, s.dst)
    ]
    counts = []
    for point in points:
        here = [s for s in flow if (s.node, s.iface) == (point.node, point.iface)]
        up = sum(1 for s in here if s.src == caddr)
        if here:
            counts.append((f"{point.node}/{point.iface}", up, len(here) - up))
    return TraceResult(
        scenario=scenario.name,
        method=scenario.method,
        vip=scenario.vip,
        client=f"{client} {caddr}:{cport}",
        server=server,
        stages=pick_stages(seen, caddr, cport, proto),
        mac_names=mac_names,
        hop_counts=counts,
        pcaps=[p.pcap for p in points],
    )
