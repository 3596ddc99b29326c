"""Pictures and text for a lab: the topology (text and graphviz), the status, a load result."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pylvs.core.service import FwdMethod
from pylvs.lab.client import LoadResult
from pylvs.lab.runner import NodeStatus
from pylvs.lab.state import DEFAULT_PREFIX
from pylvs.lab.topology import Node, Scenario

__all__ = [
    "FAILED_ON_PURPOSE",
    "ShowError",
    "hints",
    "load_text",
    "render",
    "services_text",
    "status_text",
    "to_dot",
    "topology_text",
]

METHOD_NAMES = {
    "dr": "direct routing (LVS-DR, ipvsadm -g)",
    "nat": "masquerading (LVS-NAT, ipvsadm -m)",
    "tun": "IPIP tunnelling (LVS-TUN, ipvsadm -i)",
}
_PROTO = {6: "TCP", 17: "UDP"}
_COLOURS = {
    "client": "#dbe9f6",
    "router": "#eeeeee",
    "director": "#fde0b6",
    "realserver": "#d5efd0",
}


# The processes `pylvs lab fail` stopped or killed: not running, and meant to be so.
FAILED_ON_PURPOSE = ("servers-stopped", "pylvsd-killed", "pylvsd-stopped")


class ShowError(Exception):
    """A picture cannot be made (no graphviz, unknown format)."""


def _hostport(addr: str, port: int) -> str:
    """``192.0.2.100:80``, ``[2001:db8:2::100]:80`` (as ipvsadm -Ln writes them)."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _node_label(scenario: Scenario, node: Node) -> str:
    role = node.role
    if node.role == "director" and scenario.vrrp is not None:
        role = f"director, VRRP priority {scenario.vrrp.priorities[node.name]}"
    elif node.role == "director":
        role = "director, standby" if node.standby else "director, active"
    return f"{node.name} ({role})"


def services_text(scenario: Scenario) -> list[str]:
    """The virtual services of the directors' configuration, ipvsadm style, with node names."""
    lines = []
    for spec, dests in scenario.services:
        extra = f" persistent {spec.timeout}" if spec.persistent else ""
        lines.append(
            f"{_PROTO.get(spec.protocol, spec.protocol)}  {_hostport(spec.addr, spec.port)} "
            f"{spec.scheduler}{extra}"
        )
        for dest in dests:
            owner = scenario.owner_of(dest.addr)
            name = owner[0].name if owner else "?"
            label = FwdMethod(dest.fwd).label
            lines.append(
                f"  -> {_hostport(dest.addr, dest.port)} ({name}) {label} weight {dest.weight}"
            )
    return lines


def topology_text(scenario: Scenario) -> str:
    """The scenario as text: each LAN with what is attached to it, then the services."""
    config = f"pylvsd configuration {scenario.config_path.name}"
    if scenario.keepalived is not None:
        config = "pylvsd runs each director's keepalived.conf"
    out = [
        f"{scenario.name}: {scenario.title}",
        f"forwarding: {METHOD_NAMES[scenario.method]}; VIP {scenario.vip}; {config}",
    ]
    vrrp = scenario.vrrp
    if scenario.keepalived is not None and vrrp is not None:
        files = ", ".join(p.name for p in scenario.configs.values())
        priorities = ", ".join(f"{n} {p}" for n, p in vrrp.priorities.items())
        sync = (
            f"lvs_sync_daemon on {vrrp.sync_interface} (syncid {vrrp.syncid}) follows it"
            if vrrp.sync_interface is not None
            else "no lvs_sync_daemon"
        )
        out.append(
            f"keepalived: {scenario.keepalived.name}/ ({files}): vrrp_instance {vrrp.instance}, "
            f"virtual_router_id {vrrp.vrid}, VRRPv{vrrp.version}, advert_int {vrrp.advert_int:g} "
            f"s; priorities {priorities}: the MASTER holds the VIP; {sync}"
        )
    if scenario.heartbeat is not None:
        out.append(
            f"heartbeat: {scenario.heartbeat.name}/ (ha.cf, authkeys, haresources): the directors "
            f"are a cluster, the VIP its resource; preferred node "
            f"{scenario.active_director.name}, auto_failback {scenario.auto_failback}"
        )
    out.append("")
    vip_iface = scenario.vip_interface
    width = max(len(f"{lan.name} {lan.subnet}") for lan in scenario.lans)
    for lan in scenario.lans:
        members = [
            (node, iface)
            for node in scenario.nodes
            for iface in node.interfaces
            if iface.lan == lan.name
        ]
        head = f"{lan.name} {lan.subnet}".ljust(width)
        for k, (node, iface) in enumerate(members):
            branch = "──┬─" if k == 0 else "  ├─" if k < len(members) - 1 else "  └─"
            if len(members) == 1:
                branch = "────"
            lead = head if k == 0 else " " * width
            note = ""
            if node is scenario.active_director and iface == vip_iface:
                note = f" + VIP {scenario.vip}"
                if scenario.heartbeat is not None:
                    note += " (heartbeat's resource)"
                if scenario.vrrp is not None:
                    note += " (when VRRP MASTER)"
            if node.role == "realserver" and scenario.method in ("dr", "tun"):
                note = f" (VIP {scenario.vip} on lo)"
            gw = f", gateway {node.gateway}" if node.gateway else ""
            out.append(
                f"{lead} {branch} {_node_label(scenario, node)}: {iface.name} {iface.ip}{note}{gw}"
            )
        out.append("")
    if scenario.vrrp is not None:
        for node in scenario.by_role("director"):
            other = scenario.vip_interface_of(node)
            if node is not scenario.active_director and other is not None:
                out.append(f"{node.name} takes the VIP on {other.name} when it becomes MASTER")
        out.append("")
    out.append("virtual services (on every director):")
    out += [f"  {line}" for line in services_text(scenario)]
    for node in scenario.by_role("realserver"):
        servers = [f"HTTP :{p}" for p in node.http] + [f"UDP echo :{p}" for p in node.udp_echo]
        out.append(f"{node.name} runs {', '.join(servers) or 'nothing'}")
    return "\n".join(out)


def _depths(scenario: Scenario) -> dict[str, int]:
    """Rank of every node and LAN, breadth first from the clients: the picture reads top-down."""
    depth: dict[str, int] = {f"node:{n.name}": 0 for n in scenario.by_role("client")}
    frontier = list(depth)
    while frontier:
        nxt = []
        for key in frontier:
            kind, name = key.split(":", 1)
            if kind == "node":
                neighbours = [f"lan:{i.lan}" for i in scenario.node(name).interfaces]
            else:
                neighbours = [
                    f"node:{n.name}"
                    for n in scenario.nodes
                    if any(i.lan == name for i in n.interfaces)
                ]
            for other in neighbours:
                if other not in depth:
                    depth[other] = depth[key] + 1
                    nxt.append(other)
        frontier = nxt
    return depth


def to_dot(scenario: Scenario) -> str:
    """The topology as a graphviz graph: nodes are boxes coloured by role, LANs are ellipses."""
    depth = _depths(scenario)
    lines = [
        f'graph "{scenario.name}" {{',
        f'  label="{scenario.name}: {METHOD_NAMES[scenario.method]}, VIP {scenario.vip}";',
        "  labelloc=t; fontname=Helvetica; nodesep=0.3; ranksep=0.5;",
        "  node [fontname=Helvetica fontsize=11]; edge [fontname=Helvetica fontsize=9];",
    ]
    for lan in scenario.lans:
        lines.append(f'  "lan:{lan.name}" [shape=ellipse label="{lan.name}\\n{lan.subnet}"];')
    for node in scenario.nodes:
        label = _node_label(scenario, node)
        if node is scenario.active_director:
            label += f"\\nholds VIP {scenario.vip}"
            if scenario.vrrp is not None:
                label += " (VRRP MASTER)"
        elif node.role == "realserver":
            services = [f"http:{p}" for p in node.http] + [f"udp echo:{p}" for p in node.udp_echo]
            label += "\\n" + " ".join(services)
            if scenario.method in ("dr", "tun"):
                label += f"\\nlo {scenario.vip} (no ARP)"
        style = "filled,dashed" if node.standby else "filled"
        lines.append(
            f'  "node:{node.name}" [shape=box style="{style}" '
            f'fillcolor="{_COLOURS[node.role]}" label="{label}"];'
        )
    for node in scenario.nodes:
        for iface in node.interfaces:
            a, b = f"node:{node.name}", f"lan:{iface.lan}"
            if depth.get(a, 0) > depth.get(b, 0):
                a, b = b, a
            lines.append(f'  "{a}" -- "{b}" [label="{iface.name} {iface.ip}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def picture_format(output: Path) -> str:
    """The graphviz format for a picture file name; ShowError for one it cannot write."""
    fmt = output.suffix.lstrip(".").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ShowError(f"{output}: use a .svg, .png or .pdf file name")
    return fmt


def render(scenario: Scenario, output: Path) -> None:
    """Write the picture with graphviz ``dot``; the format is the file's suffix (svg, png)."""
    fmt = picture_format(output)
    dot = shutil.which("dot")
    if dot is None:
        raise ShowError("graphviz `dot` is not installed (scripts/setup installs it); try --dot")
    proc = subprocess.run(
        [dot, f"-T{fmt}", "-o", str(output)],
        input=to_dot(scenario),
        text=True,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ShowError(f"dot failed: {proc.stderr.strip()}")


def status_text(scenario: Scenario, rows: list[NodeStatus]) -> str:
    out = [f"scenario {scenario.name}: {METHOD_NAMES[scenario.method]}, VIP {scenario.vip}"]
    for row in rows:
        here = "" if row.exists else "  [namespace MISSING]"
        out.append(f"  {row.node:<10} {row.role:<21} netns {row.netns}{here}")
        for addr in row.addresses:
            out.append(f"  {'':<10}   {addr}")
        for what, pid, alive in row.processes:
            if alive:
                state = "running"
            elif what in FAILED_ON_PURPOSE:
                state = "not running (`pylvs lab fail`)"
            else:
                state = "NOT RUNNING"
            out.append(f"  {'':<10}   {what} pid {pid} {state}")
        for line in row.detail.splitlines():
            out.append(f"  {'':<10}   {line}")
    return "\n".join(out)


def hints(scenario: Scenario, prefix: str) -> str:
    """The commands to look around a running lab."""
    lab = "pylvs lab" if prefix == DEFAULT_PREFIX else f"pylvs lab --prefix {prefix}"
    director = scenario.active_director.name
    client = scenario.by_role("client")[0].name
    lines = [
        "look around:",
        f"  {lab} status",
        # curl -g: the brackets of an IPv6 URL are not a glob.
        f"  {lab} exec {client} -- curl -g -s 'http://[{scenario.vip}]/'"
        if ":" in scenario.vip
        else f"  {lab} exec {client} -- curl -s http://{scenario.vip}/",
        f"  {lab} http -n 1000",
        f"  {lab} exec {director} -- pylvsadm -Ln --stats",
        f"  {lab} trace",
        f"  pylvs top --netns {prefix}{director}",
    ]
    if scenario.heartbeat is not None:
        lines += [
            f"  pylvs ha --netns {prefix}{director} status",
            f"  {lab} fail {director}    (kill -9 of its pylvsd; --how link pulls its cables)",
            f"  {lab} heal {director}",
        ]
    if scenario.vrrp is not None:
        lines += [
            f"  pylvs vrrp --netns {prefix}{director} status",
            f"  {lab} fail {director}    (kill -9 of its pylvsd; --how term stops it cleanly,"
            " --how link pulls its cables)",
            f"  {lab} heal {director}",
        ]
    lines.append(f"  {lab} down")
    return "\n".join(lines)


def load_text(result: LoadResult, url: str) -> str:
    failed = sum(result.errors.values())
    out = [
        f"{result.ok + failed} requests to {url} in {result.seconds:.1f} s "
        f"({result.rate:.0f}/s), {failed} failed"
    ]
    total = max(result.ok, 1)
    for name, count in sorted(result.servers.items()):
        share = count / total
        out.append(f"  {name:<8} {count:>6}  {share:6.1%}  {'#' * round(share * 40)}")
    for kind, count in sorted(result.errors.items()):
        out.append(f"  error {kind}: {count}")
    return "\n".join(out)
