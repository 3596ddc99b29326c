"""Lab scenarios: the topology data model and the loader of ``netns-lab/<name>.toml``.

A scenario names its LANs (layer-2 segments, each a bridge), its nodes with their role and their
interfaces on those LANs, the virtual IP, the forwarding method, the pylvsd configuration the
directors run (a ``pylvs.toml`` beside the scenario) and, optionally, a heartbeat directory beside
it (``ha.cf``, ``authkeys``, ``haresources``) that makes the directors a heartbeat cluster whose
resource is the VIP. The loader checks everything it can before
anything is built, so a mistake in a file is reported with the file's name and the field at fault
instead of as a half-built lab. The file format is described in ``netns-lab/README.md``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pylvs.config import ConfigError
from pylvs.config import load as load_config
from pylvs.config.heartbeat import (
    HaConfig,
    ResourceGroup,
    UcastMedium,
    parse_authkeys,
    parse_ha_cf,
    parse_haresources,
    parse_ipaddr_arg,
)
from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.service import FwdMethod

__all__ = [
    "HA_FILES",
    "METHODS",
    "ROLES",
    "Interface",
    "LabConfigError",
    "Lan",
    "Node",
    "Scenario",
    "find_scenario",
    "lab_dir",
    "list_scenarios",
    "load_scenario",
    "parse_scenario",
]

ROLES = ("client", "router", "director", "realserver")
METHODS = {"nat": FwdMethod.MASQ, "dr": FwdMethod.ROUTE, "tun": FwdMethod.TUNNEL}
# Node names become namespace names and, with the interface name, switch port names, which must
# fit IFNAMSIZ (16 bytes with the NUL): "<node>-<if>" with a 10-character node and "eth0".
_NODE_NAME = re.compile(r"[a-z][a-z0-9]{0,9}\Z")
_LAN_NAME = re.compile(r"[a-z][a-z0-9]{0,9}\Z")
_SWITCH = "switch"  # the namespace holding the LAN bridges
HA_FILES = ("ha.cf", "authkeys", "haresources")  # what a scenario's heartbeat directory holds


class LabConfigError(ValueError):
    """A scenario file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Lan:
    """A layer-2 segment: a bridge in the switch namespace."""

    name: str
    subnet: ipaddress.IPv4Network


@dataclass(frozen=True)
class Interface:
    name: str
    lan: str
    address: ipaddress.IPv4Interface

    @property
    def ip(self) -> str:
        return str(self.address.ip)


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    interfaces: tuple[Interface, ...]
    gateway: str | None = None
    standby: bool = False
    http: tuple[int, ...] = ()
    udp_echo: tuple[int, ...] = ()

    def port(self, iface: Interface) -> str:
        """The name of the switch port (the veth end in the switch namespace) of ``iface``."""
        return f"{self.name}-{iface.name}"

    @property
    def addresses(self) -> list[str]:
        return [iface.ip for iface in self.interfaces]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    method: str
    vip: str
    path: Path
    config_path: Path
    lans: tuple[Lan, ...]
    nodes: tuple[Node, ...]
    services: list[tuple[ServiceSpec, list[DestSpec]]] = field(default_factory=list)
    # The heartbeat directory (``heartbeat = "farm.ha"``): the directors run pylvsd --ha with it
    # and heartbeat, not the builder, puts the VIP on a director.
    heartbeat: Path | None = None
    auto_failback: str = ""  # ha.cf's, with heartbeat

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def by_role(self, role: str) -> list[Node]:
        return [node for node in self.nodes if node.role == role]

    @property
    def active_director(self) -> Node:
        return next(n for n in self.by_role("director") if not n.standby)

    @property
    def vip_interface(self) -> Interface:
        """The active director's interface on the VIP's LAN (the loader checks there is one)."""
        vip = ipaddress.IPv4Address(self.vip)
        return next(i for i in self.active_director.interfaces if vip in i.address.network)

    def vip_interface_of(self, node: Node) -> Interface | None:
        """``node``'s interface on the VIP's LAN (every director has one), or None."""
        vip = ipaddress.IPv4Address(self.vip)
        return next((i for i in node.interfaces if vip in i.address.network), None)

    def lan(self, name: str) -> Lan:
        return next(lan for lan in self.lans if lan.name == name)

    def owner_of(self, address: str) -> tuple[Node, Interface] | None:
        for node in self.nodes:
            for iface in node.interfaces:
                if iface.ip == address:
                    return node, iface
        return None


def lab_dir() -> Path:
    """Where the scenario files are: ``$PYLVS_LAB_DIR``, else ``netns-lab/`` of the source tree,
    else ``<prefix>/share/pylvs/netns-lab`` where a built pylvs installs them."""
    env = os.environ.get("PYLVS_LAB_DIR")
    if env:
        return Path(env)
    source = Path(__file__).resolve().parent.parent.parent / "netns-lab"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "pylvs" / "netns-lab"


def list_scenarios() -> list[str]:
    """The scenario names in :func:`lab_dir` (``*.toml`` that are not ``*.pylvs.toml``)."""
    return sorted(
        p.name.removesuffix(".toml")
        for p in lab_dir().glob("*.toml")
        if not p.name.endswith(".pylvs.toml")
    )


def find_scenario(name_or_path: str) -> Path:
    """A path given as is, else ``<lab_dir>/<name>.toml``."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or os.sep in name_or_path:
        return path
    return lab_dir() / f"{name_or_path}.toml"


def load_scenario(name_or_path: str) -> Scenario:
    """Read and check a scenario; :class:`LabConfigError` says what is wrong."""
    path = find_scenario(name_or_path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        known = ", ".join(list_scenarios()) or "none"
        raise LabConfigError(f"{path}: no such scenario (known: {known})") from None
    except OSError as exc:
        raise LabConfigError(f"{path}: {exc.strerror}") from None
    return parse_scenario(text, path)


class _Reader:
    """Typed access to the TOML tables, with errors that name the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str) -> LabConfigError:
        return LabConfigError(f"{self.path.name}: {message}")

    def get(
        self, table: dict[str, Any], key: str, kind: type, where: str, default: Any = None
    ) -> Any:
        if key not in table:
            if default is None:
                raise self.fail(f"{where}{key} is missing")
            return default
        value = table[key]
        # bool is an int in Python; a port written as `true` is a mistake, not 1.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{where}{key} must be {kind.__name__}, not {type(value).__name__}")
        return value

    def unknown(self, table: dict[str, Any], allowed: set[str], where: str) -> None:
        extra = sorted(set(table) - allowed)
        if extra:
            raise self.fail(
                f"{where}unknown key {extra[0]!r} (known: {', '.join(sorted(allowed))})"
            )


def _ports(r: _Reader, table: dict[str, Any], key: str, where: str) -> tuple[int, ...]:
    ports = r.get(table, key, list, where, default=[])
    for port in ports:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise r.fail(f"{where}{key}: {port!r} is not a port number")
    return tuple(ports)


def _parse_lans(r: _Reader, data: dict[str, Any]) -> tuple[Lan, ...]:
    lans: list[Lan] = []
    for i, table in enumerate(r.get(data, "lan", list, "")):
        where = f"lan[{i}]."
        if not isinstance(table, dict):
            raise r.fail(f"lan[{i}] must be a table")
        r.unknown(table, {"name", "subnet"}, where)
        name = r.get(table, "name", str, where)
        if not _LAN_NAME.match(name):
            raise r.fail(f"{where}name {name!r}: use a-z and digits, at most 10 characters")
        try:
            subnet = ipaddress.IPv4Network(r.get(table, "subnet", str, where))
        except ValueError as exc:
            raise r.fail(f"{where}subnet: {exc}") from None
        if any(lan.name == name for lan in lans):
            raise r.fail(f"{where}name: LAN {name!r} is defined twice")
        for other in lans:
            if subnet.overlaps(other.subnet):
                raise r.fail(f"{where}subnet {subnet} overlaps LAN {other.name!r} ({other.subnet})")
        lans.append(Lan(name, subnet))
    return tuple(lans)


def _parse_node(r: _Reader, i: int, table: Any, lans: dict[str, Lan]) -> Node:
    if not isinstance(table, dict):
        raise r.fail(f"node[{i}] must be a table")
    where = f"node[{i}]."
    allowed = {"name", "role", "interfaces", "gateway", "standby", "http", "udp_echo"}
    r.unknown(table, allowed, where)
    name = r.get(table, "name", str, where)
    if not _NODE_NAME.match(name) or name == _SWITCH:
        raise r.fail(
            f"{where}name {name!r}: use a-z and digits, at most 10 characters, not {_SWITCH!r}"
        )
    where = f"node {name!r}: "
    role = r.get(table, "role", str, where)
    if role not in ROLES:
        raise r.fail(f"{where}role {role!r} is not one of {', '.join(ROLES)}")
    ifaces: list[Interface] = []
    for j, spec in enumerate(r.get(table, "interfaces", list, where)):
        iwhere = f"{where}interfaces[{j}]."
        if not isinstance(spec, dict):
            raise r.fail(f"{where}interfaces[{j}] must be a table")
        r.unknown(spec, {"name", "lan", "address"}, iwhere)
        ifname = r.get(spec, "name", str, iwhere, default=f"eth{j}")
        lan_name = r.get(spec, "lan", str, iwhere)
        if lan_name not in lans:
            raise r.fail(f"{iwhere}lan {lan_name!r} is not defined")
        text = r.get(spec, "address", str, iwhere)
        if "/" not in text:
            raise r.fail(f"{iwhere}address {text!r} needs a prefix length (e.g. /24)")
        try:
            address = ipaddress.IPv4Interface(text)
        except ValueError as exc:
            raise r.fail(f"{iwhere}address: {exc}") from None
        if address.ip not in lans[lan_name].subnet or address.network != lans[lan_name].subnet:
            raise r.fail(
                f"{iwhere}address {text} is not in LAN {lan_name!r} ({lans[lan_name].subnet})"
            )
        if any(iface.name == ifname for iface in ifaces):
            raise r.fail(f"{iwhere}name {ifname!r} is used twice")
        ifaces.append(Interface(ifname, lan_name, address))
    if not ifaces:
        raise r.fail(f"{where}a node needs at least one interface")
    gateway = table.get("gateway")
    if gateway is not None:
        gateway = r.get(table, "gateway", str, where)
        try:
            gw = ipaddress.IPv4Address(gateway)
        except ValueError as exc:
            raise r.fail(f"{where}gateway: {exc}") from None
        if not any(gw in iface.address.network for iface in ifaces):
            raise r.fail(f"{where}gateway {gateway} is not on any of the node's LANs")
    standby = r.get(table, "standby", bool, where, default=False)
    if standby and role != "director":
        raise r.fail(f"{where}only a director can be a standby")
    http = _ports(r, table, "http", where)
    udp_echo = _ports(r, table, "udp_echo", where)
    if (http or udp_echo) and role != "realserver":
        raise r.fail(f"{where}http and udp_echo servers run on real servers only")
    return Node(name, role, tuple(ifaces), gateway, standby, http, udp_echo)


def parse_scenario(text: str, path: Path) -> Scenario:
    """Parse and check scenario ``text`` read from ``path`` (used to find its pylvsd config)."""
    r = _Reader(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise r.fail(f"not valid TOML: {exc}") from None
    r.unknown(data, {"name", "title", "method", "vip", "config", "heartbeat", "lan", "node"}, "")
    name = r.get(data, "name", str, "")
    title = r.get(data, "title", str, "", default=name)
    method = r.get(data, "method", str, "")
    if method not in METHODS:
        raise r.fail(f"method {method!r} is not one of {', '.join(METHODS)}")
    vip_text = r.get(data, "vip", str, "")
    try:
        vip = ipaddress.IPv4Address(vip_text)
    except ValueError as exc:
        raise r.fail(f"vip: {exc}") from None
    lans = _parse_lans(r, data)
    lan_map = {lan.name: lan for lan in lans}
    nodes: list[Node] = []
    for i, table in enumerate(r.get(data, "node", list, "")):
        node = _parse_node(r, i, table, lan_map)
        if any(n.name == node.name for n in nodes):
            raise r.fail(f"node {node.name!r} is defined twice")
        nodes.append(node)
    seen: dict[str, str] = {}
    for node in nodes:
        for iface in node.interfaces:
            if iface.ip in seen:
                raise r.fail(f"address {iface.ip} is on both {seen[iface.ip]!r} and {node.name!r}")
            seen[iface.ip] = node.name
    if str(vip) in seen:
        raise r.fail(f"vip {vip} is also the address of node {seen[str(vip)]!r}")
    for role in ROLES:
        if not any(n.role == role for n in nodes):
            raise r.fail(f"a scenario needs at least one {role} node")
    active = [n for n in nodes if n.role == "director" and not n.standby]
    if len(active) != 1:
        raise r.fail(f"exactly one director must be active (not standby), found {len(active)}")
    vip_lans = [lan.name for lan in active[0].interfaces if vip in lan.address.network]
    if not vip_lans:
        # The active director answers ARP for the VIP on that LAN (LVS-HOWTO: the VIP lives on
        # the director's outward interface; the router finds it by ARP).
        raise r.fail(f"vip {vip} is not in a subnet of the active director's interfaces")
    if method == "nat":
        # Replies must return through the director to be source-NATed back to the VIP.
        director_ips = {a for n in nodes if n.role == "director" for a in n.addresses}
        for node in nodes:
            if node.role == "realserver" and node.gateway not in director_ips:
                raise r.fail(
                    f"node {node.name!r}: in a nat scenario a real server's gateway must be a "
                    "director's address"
                )
    config_name = r.get(data, "config", str, "")
    config_path = path.parent / config_name
    try:
        services = load_config(config_path).services()
    except ConfigError as exc:
        raise r.fail(f"config: {exc}") from None
    reals = {addr for n in nodes if n.role == "realserver" for addr in n.addresses}
    for spec, dests in services:
        if spec.addr != str(vip):
            raise r.fail(
                f"config {config_name}: virtual {spec.addr}:{spec.port} is not the vip {vip}"
            )
        for dest in dests:
            if dest.addr not in reals:
                raise r.fail(
                    f"config {config_name}: real {dest.addr} is not a realserver node's address"
                )
            if dest.fwd != METHODS[method]:
                raise r.fail(
                    f"config {config_name}: real {dest.addr} of {spec.addr}:{spec.port} "
                    f"does not use the scenario's method {method}"
                )
    ha_dir: Path | None = None
    auto_failback = ""
    if "heartbeat" in data:
        ha_name = r.get(data, "heartbeat", str, "")
        ha_dir = path.parent / ha_name
        auto_failback = _check_heartbeat(r, ha_name, ha_dir, nodes, str(vip))
    return Scenario(
        name=name,
        title=title,
        method=method,
        vip=str(vip),
        path=path,
        config_path=config_path,
        lans=lans,
        nodes=tuple(nodes),
        services=services,
        heartbeat=ha_dir,
        auto_failback=auto_failback,
    )


def _check_heartbeat(r: _Reader, ha_name: str, ha_dir: Path, nodes: list[Node], vip: str) -> str:
    """The heartbeat directory fits the scenario: its nodes are the directors, its media the
    directors' interfaces and addresses, and its one resource group puts the VIP on the active
    director's VIP interface. Returns ha.cf's ``auto_failback``."""
    texts = {}
    for name in HA_FILES:
        try:
            texts[name] = (ha_dir / name).read_text()
        except OSError as exc:
            raise r.fail(f"heartbeat {ha_name}/{name}: {exc.strerror or exc}") from None
    directors = [n for n in nodes if n.role == "director"]
    names = {n.name for n in directors}
    try:
        configs: list[HaConfig] = [
            parse_ha_cf(texts["ha.cf"], f"{ha_name}/ha.cf", d.name) for d in directors
        ]
        parse_authkeys(texts["authkeys"], f"{ha_name}/authkeys")
        groups: list[ResourceGroup] = parse_haresources(
            texts["haresources"], f"{ha_name}/haresources", configs[0].nodes
        )
    except ConfigError as exc:
        raise r.fail(f"heartbeat {exc}") from None
    ha = configs[0]
    if set(ha.nodes) != names:
        raise r.fail(
            f"heartbeat {ha_name}/ha.cf: nodes {' '.join(ha.nodes)} are not the directors "
            f"{' '.join(sorted(names))}"
        )
    owners = {i.ip: (n, i) for n in directors for i in n.interfaces}
    for medium in ha.media:
        if not isinstance(medium, UcastMedium):
            continue
        owner = owners.get(medium.peer)
        if owner is None or owner[1].name != medium.dev:
            raise r.fail(
                f"heartbeat {ha_name}/ha.cf line {medium.line}: ucast {medium.dev} {medium.peer}"
                f" is not a director's address on its {medium.dev}"
            )
    vip_groups = [
        g
        for g in groups
        if any(
            res.name in ("IPaddr", "IPaddr2") and parse_ipaddr_arg(res.args[0]).ip == vip
            for res in g.resources
        )
    ]
    if len(vip_groups) != 1:
        raise r.fail(
            f"heartbeat {ha_name}/haresources: one resource group must hold the vip {vip}, "
            f"found {len(vip_groups)}"
        )
    (group,) = vip_groups
    active = next(n for n in directors if not n.standby)
    if group.node != active.name:
        raise r.fail(
            f"heartbeat {ha_name}/haresources: the vip's group prefers {group.node}, but the "
            f"active (not standby) director is {active.name}"
        )
    vip_ip = ipaddress.IPv4Address(vip)
    for res in group.resources:
        if res.name not in ("IPaddr", "IPaddr2"):
            continue
        spec = parse_ipaddr_arg(res.args[0])
        for director in directors:
            iface = next((i for i in director.interfaces if vip_ip in i.address.network), None)
            if iface is None or (spec.iface is not None and spec.iface != iface.name):
                raise r.fail(
                    f"heartbeat {ha_name}/haresources: {res} does not fit {director.name}, "
                    f"whose interface on the vip's LAN is {iface.name if iface else 'missing'}"
                )
    return ha.auto_failback
