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

IPv6 (the ``nat6``, ``dr6``, ``tun6`` scenarios) reads the same way: NAT66 rewrites the IPv6
addresses, DR only the MAC, and the tunnels are named by their two families (IPIP: IPv4 in IPv4,
IP6IP6 and IPIP6: IPv6 and IPv4 in IPv6, SIT: IPv6 in IPv4); the TTL is the hop limit there. ICMP
and ICMPv6 errors quoting a packet of the connection (Packet Too Big, unreachable) are a stage of
their own; neighbour discovery and echo are decoded but never part of a connection.
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
    "icmp_errors",
    "pick_stages",
    "read_capture",
    "run_trace",
]

_TCP_FLAGS = ((0x02, "S"), (0x10, "A"), (0x08, "P"), (0x01, "F"), (0x04, "R"))
_SYN, _ACK = 0x02, 0x10
_IPPROTO_IPIP = 4  # IPv4 inside (IPv4 in IPv4: "ipip"; in IPv6: "ipip6", RFC 2473)
_IPPROTO_TCP, _IPPROTO_UDP = 6, 17
_IPPROTO_IPV6 = 41  # IPv6 inside (in IPv6: "ip6ip6", RFC 2473; in IPv4: "sit", RFC 4213)
# (outer is IPv6, inner is IPv6) -> the name of the tunnel; Linux's names for its devices.
_TUNNELS = {
    (False, False): "IPIP",
    (False, True): "SIT",
    (True, False): "IPIP6",
    (True, True): "IP6IP6",
}
_ICMP_TYPES = {0: "echo-reply", 3: "unreachable", 8: "echo-request", 11: "time-exceeded"}
_ICMP_ERRORS = (3, 4, 11, 12)
# RFC 4443 2.1 and RFC 4861 4: the error messages (types 1-4) are the ones IPVS relays.
_ICMP6_TYPES = {
    1: "unreachable",
    2: "packet-too-big",
    3: "time-exceeded",
    4: "parameter-problem",
    128: "echo-request",
    129: "echo-reply",
    133: "router-solicitation",
    134: "router-advertisement",
    135: "neighbor-solicitation",
    136: "neighbor-advertisement",
    137: "redirect",
}
_ICMP6_ERRORS = (1, 2, 3, 4)
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
    outer: tuple[str, str, int] | None  # IP-in-IP outer src, dst, ttl (hop limit)
    src: str
    dst: str
    ttl: int
    proto: str
    sport: int
    dport: int
    flags: str = ""  # TCP flags; for ICMP the type's name (sport, dport: type, code)
    length: int = 0
    version: int = 4  # of the (inner) IP header
    tunnel: str = ""  # with ``outer``: IPIP, IP6IP6, IPIP6 (IPv4 in IPv6) or SIT (IPv6 in IPv4)
    quoted: tuple[str, str, int, int] | None = None  # an ICMP error's packet: src, dst, ports

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


def _addr(raw: bytes) -> str:
    """An IPv4 (4 bytes) or IPv6 (16 bytes) address as text (IPv6 compressed, RFC 5952)."""
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def _hops(ip: dpkt.ip.IP | dpkt.ip6.IP6) -> int:
    """IPv4's TTL or IPv6's hop limit (RFC 8200 3: the same job, another name)."""
    return int(ip.hlim) if isinstance(ip, dpkt.ip6.IP6) else int(ip.ttl)


def _parse_ip(data: bytes) -> dpkt.ip.IP | dpkt.ip6.IP6 | None:
    """A raw IP packet, by the version in its first nibble."""
    if not data:
        return None
    try:
        if data[0] >> 4 == 6:
            return dpkt.ip6.IP6(data)
        if data[0] >> 4 == 4:
            return dpkt.ip.IP(data)
    except (dpkt.UnpackError, ValueError):
        return None
    return None


def _inner(ip: dpkt.ip.IP | dpkt.ip6.IP6) -> dpkt.ip.IP | dpkt.ip6.IP6 | None:
    """The packet carried by an IP-in-IP packet (dpkt may have decoded it already)."""
    if isinstance(ip.data, (dpkt.ip.IP, dpkt.ip6.IP6)):
        return ip.data
    return _parse_ip(bytes(ip.data))


def _quoted(icmp: dpkt.icmp.ICMP | dpkt.icmp6.ICMP6) -> tuple[str, str, int, int] | None:
    """The start of the packet an ICMP error quotes (RFC 792, RFC 4443 2.4: as much of the
    offending packet as fits): its addresses and, for TCP/UDP, its ports."""
    # Both ICMP error bodies are 4 bytes (unused, or the MTU of Packet Too Big) and the packet.
    body = bytes(icmp.data)[4:] if not isinstance(icmp.data, bytes) else icmp.data[4:]
    inner = _parse_ip(body)
    if inner is None:
        return None
    sport = dport = 0
    l4 = bytes(inner.data) if not isinstance(inner.data, bytes) else inner.data
    if inner.p in (_IPPROTO_TCP, _IPPROTO_UDP) and len(l4) >= 4:
        sport, dport = int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
    return _addr(inner.src), _addr(inner.dst), sport, dport


def decode_frame(
    data: bytes, node: str, iface: str, own_mac: str | None, ts: float, raw: bool = False
) -> Seen | None:
    """An Ethernet frame (or a raw IP packet from a TUN device) -> :class:`Seen`; None if it is
    not IPv4 or IPv6 TCP/UDP/ICMP (nor an IP-in-IP packet carrying one)."""
    eth_src = eth_dst = None
    try:
        if raw:
            ip = _parse_ip(data)
        else:
            eth = dpkt.ethernet.Ethernet(data)
            eth_src, eth_dst = _mac(eth.src), _mac(eth.dst)
            ip = eth.data
    except (dpkt.UnpackError, ValueError):
        return None
    if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
        return None
    outer = None
    tunnel = ""
    if ip.p in (_IPPROTO_IPIP, _IPPROTO_IPV6):
        # IPVS's tunnel mode (ip_vs_tunnel_xmit, ip_vs_tunnel_xmit_v6) wraps the packet in an
        # outer header of the real server's family: one of the four kinds below.
        outer_v6 = isinstance(ip, dpkt.ip6.IP6)
        inner = _inner(ip)
        if inner is None:
            return None
        tunnel = _TUNNELS[(outer_v6, isinstance(inner, dpkt.ip6.IP6))]
        outer = (_addr(ip.src), _addr(ip.dst), _hops(ip))
        ip = inner
    l4 = ip.data
    quoted = None
    if isinstance(l4, dpkt.tcp.TCP):
        proto, flags, sport, dport = "TCP", _flags(l4.flags), int(l4.sport), int(l4.dport)
    elif isinstance(l4, dpkt.udp.UDP):
        proto, flags, sport, dport = "UDP", "", int(l4.sport), int(l4.dport)
    elif isinstance(l4, (dpkt.icmp.ICMP, dpkt.icmp6.ICMP6)):
        v6 = isinstance(l4, dpkt.icmp6.ICMP6)
        proto = "ICMPv6" if v6 else "ICMP"
        names = _ICMP6_TYPES if v6 else _ICMP_TYPES
        flags = names.get(int(l4.type), f"type {int(l4.type)}")
        sport, dport = int(l4.type), int(l4.code)
        if int(l4.type) in (_ICMP6_ERRORS if v6 else _ICMP_ERRORS):
            quoted = _quoted(l4)
    else:
        return None
    # What the decapsulator writes into a TUN device is received by the kernel.
    direction = "sent" if not raw and eth_src == own_mac else "recv"
    payload = l4.data if isinstance(l4.data, bytes) else bytes(l4.data)
    return Seen(
        time=ts,
        node=node,
        iface=iface,
        direction=direction,
        eth_src=eth_src,
        eth_dst=eth_dst,
        outer=outer,
        src=_addr(ip.src),
        dst=_addr(ip.dst),
        ttl=_hops(ip),
        proto=proto,
        sport=sport,
        dport=dport,
        flags=flags,
        length=len(payload),
        version=6 if isinstance(ip, dpkt.ip6.IP6) else 4,
        tunnel=tunnel,
        quoted=quoted,
    )


def read_capture(capture: Capture) -> list[Seen]:
    """Every IPv4 and IPv6 TCP/UDP/ICMP packet of one pcap file."""
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
    stages = [_once(title, items) for title, items in zip(titles, (first, second), strict=True)]
    errors = icmp_errors(seen, client_ip, cport)
    if errors:
        stages.append(_once("ICMP errors about this connection", errors))
    return stages


def _once(title: str, items: list[Seen]) -> Stage:
    once: dict[tuple[str, str, str], Seen] = {}
    for item in _order(items):
        once.setdefault((item.node, item.iface, item.direction), item)
    return Stage(title, _order(list(once.values())))


def icmp_errors(seen: list[Seen], client_ip: str, cport: int) -> list[Seen]:
    """The ICMP and ICMPv6 errors (unreachable, packet too big, ...) that quote a packet of the
    client's connection, in either direction: IPVS relays them to the other side
    (ip_vs_in_icmp, ip_vs_in_icmp_v6), rewritten as the connection's packets are."""
    return [
        s
        for s in seen
        if s.quoted is not None
        and (
            (s.quoted[0] == client_ip and s.quoted[2] == cport)
            or (s.quoted[1] == client_ip and s.quoted[3] == cport)
        )
    ]


def changes(prev: Seen | None, cur: Seen, mac_names: dict[str, str], method: str = "") -> list[str]:
    """What is different in ``cur`` from the previous sighting of the same packet."""
    if prev is None:
        return []
    notes = []
    hops = "hop limit" if cur.version == 6 else "TTL"
    if cur.outer is not None and prev.outer is None:
        notes.append(
            f"{cur.tunnel} header added: {cur.outer[0]} > {cur.outer[1]}, packet inside unchanged"
        )
    elif cur.outer is None and prev.outer is not None:
        notes.append(f"{prev.tunnel} header removed")
    elif cur.outer != prev.outer and cur.outer is not None and prev.outer is not None:
        if cur.outer[:2] != prev.outer[:2]:
            notes.append(
                f"{cur.tunnel} header {prev.outer[0]} > {prev.outer[1]} -> "
                f"{cur.outer[0]} > {cur.outer[1]}"
            )
        if cur.outer[2] != prev.outer[2]:
            outer_hops = "hop limit" if ":" in cur.outer[0] else "TTL"
            notes.append(f"outer {outer_hops} {prev.outer[2]} -> {cur.outer[2]}")
    addresses_changed = bool(notes)
    # IPVS's NAT for IPv6 (ip_vs_nat_xmit_v6) is NAT66: the same one-to-one rewrite as for IPv4.
    nat = ", NAT66" if cur.version == 6 else ""
    if cur.dst != prev.dst:
        tag = f" (DNAT{nat})" if method == "nat" else ""
        notes.append(f"IP dst {prev.dst} -> {cur.dst}{tag}")
        addresses_changed = True
    if cur.src != prev.src:
        tag = f" (SNAT{nat})" if method == "nat" else ""
        notes.append(f"IP src {prev.src} -> {cur.src}{tag}")
        addresses_changed = True
    if (cur.sport, cur.dport) != (prev.sport, prev.dport):
        notes.append(f"ports {prev.sport} > {prev.dport} -> {cur.sport} > {cur.dport}")
    if cur.ttl != prev.ttl:
        notes.append(f"{hops} {prev.ttl} -> {cur.ttl}")
    new_link = (cur.eth_src, cur.eth_dst) != (prev.eth_src, prev.eth_dst)
    same_addresses = not addresses_changed
    if cur.eth_dst is not None and prev.eth_dst is not None and new_link and same_addresses:
        # Only the link layer is new: a router's hop, or a DR director's MAC rewrite.
        notes.append(f"new Ethernet header: to {_name(cur.eth_dst, mac_names)}")
    return notes


def _name(mac: str | None, mac_names: dict[str, str]) -> str:
    if mac is None:
        return "-"
    return mac_names.get(mac, mac)


def _endpoint(addr: str, port: int) -> str:
    """``192.0.2.1:80``, ``[2001:db8::1]:80`` (RFC 5952 6: brackets around an IPv6 address)."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _ip_column(s: Seen) -> str:
    if s.proto in ("ICMP", "ICMPv6"):
        inner = f"{s.src} > {s.dst} {s.proto} {s.flags}"
        if s.quoted is not None:
            q = s.quoted
            inner += f" about {_endpoint(q[0], q[2])} > {_endpoint(q[1], q[3])}"
    else:
        inner = f"{_endpoint(s.src, s.sport)} > {_endpoint(s.dst, s.dport)}"
    if s.outer is not None:
        hops = "hlim" if ":" in s.outer[0] else "ttl"
        return f"[{s.tunnel} {s.outer[0]} > {s.outer[1]} {hops} {s.outer[2]}] {inner}"
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
            flags = f" [{s.flags}]" if s.flags and not s.proto.startswith("ICMP") else ""
            headers = f"{_ip_column(s)}{flags} {'hlim' if s.version == 6 else 'ttl'} {s.ttl}"
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


def _family(vip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in vip else socket.AF_INET


def _exchange_tcp(ns: str, vip: str, port: int) -> tuple[str, int, str]:
    """One HTTP GET from namespace ``ns``; returns (client address, client port, server name)."""
    with netcfg.in_netns(ns):
        sock = socket.socket(_family(vip), socket.SOCK_STREAM)
    with sock:
        sock.settimeout(5.0)
        try:
            sock.connect((vip, port))
            caddr, cport = sock.getsockname()[:2]  # IPv6: (addr, port, flowinfo, scope_id)
            host = f"[{vip}]" if ":" in vip else vip
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        except OSError as exc:
            raise LabError(f"no service answers at {vip}:{port}/tcp ({_why(exc)})") from None
    body = data.partition(b"\r\n\r\n")[2].decode(errors="replace").strip()
    return caddr, cport, body


def _exchange_udp(ns: str, vip: str, port: int) -> tuple[str, int, str]:
    with netcfg.in_netns(ns):
        sock = socket.socket(_family(vip), socket.SOCK_DGRAM)
    with sock:
        sock.settimeout(2.0)
        sock.connect((vip, port))
        caddr, cport = sock.getsockname()[:2]
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
                "--time-stamp-precision=nano", "-w", point.pcap, "ip", "or", "ip6",
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
        client=f"{client} {_endpoint(caddr, cport)}",
        server=server,
        stages=pick_stages(seen, caddr, cport, proto),
        mac_names=mac_names,
        hop_counts=counts,
        pcaps=[p.pcap for p in points],
    )
