"""Lab scenarios: the topology data model and the loader of ``netns-lab/<name>.toml``.

A scenario names its LANs (layer-2 segments, each a bridge), its nodes with their role and their
interfaces on those LANs, the virtual IP, the forwarding method, the pylvsd configuration the
directors run (a ``pylvs.toml`` beside the scenario) and, optionally, a heartbeat directory beside
it (``ha.cf``, ``authkeys``, ``haresources``) that makes the directors a heartbeat cluster whose
resource is the VIP. Instead of the ``pylvs.toml`` (and of heartbeat), a keepalived directory
beside the scenario may hold one ``keepalived.conf`` per director, ``<node>.conf``: each director
runs ``pylvsd --config <node>.conf``, its ``virtual_server``s the IPVS table and its
``vrrp_instance`` the VIP. A scenario is IPv4 or IPv6 (every LAN, address, gateway and the VIP of
one family: :attr:`Scenario.family`). The loader checks everything it can before
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
from pylvs.config.keepalived import load_keepalived, looks_like_keepalived
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
    "VrrpSetup",
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
KA_SUFFIX = ".conf"  # a keepalived directory holds <director>.conf for every director


class LabConfigError(ValueError):
    """A scenario file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Lan:
    """A layer-2 segment: a bridge in the switch namespace."""

    name: str
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Interface:
    name: str
    lan: str
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface

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
class VrrpSetup:
    """What the lab needs to know of the directors' keepalived.conf files (the loader checks
    that they agree): the ``vrrp_instance`` holding the VIP and the ``lvs_sync_daemon``."""

    instance: str  # the vrrp_instance's name, the same on every director (VI_1)
    vrid: int  # its virtual_router_id
    version: int  # VRRP version 2 or 3
    advert_int: float
    priorities: dict[str, int]  # director -> its priority in that instance
    sync_interface: str | None = None  # lvs_sync_daemon's interface, None: no sync daemon
    syncid: int | None = None  # lvs_sync_daemon's id (keepalived's default: the VRID)
    preempt: bool = True  # the active director takes the VIP back (no nopreempt)


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
    # The keepalived directory (``keepalived = "farmka.keepalived"``): each director runs
    # pylvsd --config <its keepalived.conf> (``configs``) and VRRP, not the builder, puts the
    # VIP on the master.
    keepalived: Path | None = None
    configs: dict[str, Path] = field(default_factory=dict)  # director -> keepalived.conf
    vrrp: VrrpSetup | None = None

    @property
    def vip_by_ha(self) -> bool:
        """Whether heartbeat or VRRP moves the VIP (the builder puts it nowhere)."""
        return self.heartbeat is not None or self.keepalived is not None

    def config_of(self, node: Node) -> Path:
        """The configuration ``node``'s pylvsd runs: its keepalived.conf, or the scenario's."""
        return self.configs.get(node.name, self.config_path)

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
        vip = ipaddress.ip_address(self.vip)
        return next(i for i in self.active_director.interfaces if vip in i.address.network)

    def vip_interface_of(self, node: Node) -> Interface | None:
        """``node``'s interface on the VIP's LAN (every director has one), or None."""
        vip = ipaddress.ip_address(self.vip)
        return next((i for i in node.interfaces if vip in i.address.network), None)

    @property
    def family(self) -> int:
        """4 or 6: the IP version of every address of the scenario (the loader checks)."""
        return ipaddress.ip_address(self.vip).version

    @property
    def vip_prefixlen(self) -> int:
        """The VIP is a host address: /32, /128 for IPv6."""
        return 128 if self.family == 6 else 32

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
            subnet = ipaddress.ip_network(r.get(table, "subnet", str, where))
        except ValueError as exc:
            raise r.fail(f"{where}subnet: {exc}") from None
        if any(lan.name == name for lan in lans):
            raise r.fail(f"{where}name: LAN {name!r} is defined twice")
        for other in lans:
            if subnet.version != other.subnet.version:
                raise r.fail(
                    f"{where}subnet {subnet} is IPv{subnet.version} but LAN {other.name!r} is "
                    f"IPv{other.subnet.version} ({other.subnet}): a scenario is IPv4 or IPv6"
                )
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
            raise r.fail(f"{iwhere}address {text!r} needs a prefix length (e.g. /24, /64)")
        try:
            address = ipaddress.ip_interface(text)
        except ValueError as exc:
            raise r.fail(f"{iwhere}address: {exc}") from None
        if address.version != lans[lan_name].subnet.version:
            raise r.fail(
                f"{iwhere}address {text} is IPv{address.version} but LAN {lan_name!r} is "
                f"IPv{lans[lan_name].subnet.version} ({lans[lan_name].subnet})"
            )
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
            gw = ipaddress.ip_address(gateway)
        except ValueError as exc:
            raise r.fail(f"{where}gateway: {exc}") from None
        gateway = str(gw)  # the canonical text (IPv6: compressed, lower case)
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
    keys = {"name", "title", "method", "vip", "config", "heartbeat", "keepalived", "lan", "node"}
    r.unknown(data, keys, "")
    name = r.get(data, "name", str, "")
    title = r.get(data, "title", str, "", default=name)
    method = r.get(data, "method", str, "")
    if method not in METHODS:
        raise r.fail(f"method {method!r} is not one of {', '.join(METHODS)}")
    vip_text = r.get(data, "vip", str, "")
    try:
        vip = ipaddress.ip_address(vip_text)
    except ValueError as exc:
        raise r.fail(f"vip: {exc}") from None
    lans = _parse_lans(r, data)
    if lans and lans[0].subnet.version != vip.version:
        raise r.fail(
            f"vip {vip} is IPv{vip.version} but the LANs are IPv{lans[0].subnet.version}: "
            "a scenario is IPv4 or IPv6"
        )
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
    if "heartbeat" in data and "keepalived" in data:
        raise r.fail("heartbeat and keepalived exclude each other: choose one to move the vip")
    ka_dir: Path | None = None
    configs: dict[str, Path] = {}
    vrrp: VrrpSetup | None = None
    if "keepalived" in data:
        # The virtual servers are in each director's keepalived.conf, next to its VRRP.
        if "config" in data:
            raise r.fail(
                "config and keepalived exclude each other: with keepalived the virtual servers "
                "are the virtual_server blocks of the directors' keepalived.conf files"
            )
        ka_name = r.get(data, "keepalived", str, "")
        ka_dir = path.parent / ka_name
        configs, vrrp, services = _check_keepalived(r, ka_name, ka_dir, nodes, method, str(vip))
        config_path = configs[active[0].name]
    else:
        config_name = r.get(data, "config", str, "")
        config_path = path.parent / config_name
        try:
            services = load_config(config_path).services()
        except ConfigError as exc:
            raise r.fail(f"config: {exc}") from None
        _check_services(r, f"config {config_name}", services, nodes, method, str(vip))
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
        keepalived=ka_dir,
        configs=configs,
        vrrp=vrrp,
    )


def _check_services(
    r: _Reader,
    where: str,
    services: list[tuple[ServiceSpec, list[DestSpec]]],
    nodes: list[Node],
    method: str,
    vip: str,
) -> None:
    """Every virtual service is on the VIP and sends to real-server nodes by the scenario's
    forwarding method."""
    reals = {addr for n in nodes if n.role == "realserver" for addr in n.addresses}
    for spec, dests in services:
        if spec.addr != vip:
            raise r.fail(f"{where}: virtual {spec.addr}:{spec.port} is not the vip {vip}")
        for dest in dests:
            if dest.addr not in reals:
                raise r.fail(f"{where}: real {dest.addr} is not a realserver node's address")
            if dest.fwd != METHODS[method]:
                raise r.fail(
                    f"{where}: real {dest.addr} of {spec.addr}:{spec.port} "
                    f"does not use the scenario's method {method}"
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
    vip_ip = ipaddress.ip_address(vip)
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


@dataclass(frozen=True)
class _VipInstance:
    """One director's vrrp_instance holding the VIP, and its lvs_sync_daemon."""

    name: str
    vrid: int
    version: int
    advert_int: float
    priority: int
    sync_interface: str | None
    syncid: int | None
    preempt: bool


# What the directors' instances must have in common (label, _VipInstance attribute): a peer
# with another VRID is another virtual router, and another version's adverts are dropped
# (vrrp.c vrrp_check_packet), as are VRRPv2 adverts with another advert_int (VRRPv3 only logs
# "advertisement interval mismatch": the lab wants them equal all the same).
_MUST_AGREE = (
    ("the instance's name", "name"),
    ("virtual_router_id", "vrid"),
    ("the VRRP version", "version"),
    ("advert_int", "advert_int"),
    ("lvs_sync_daemon interface", "sync_interface"),
    ("lvs_sync_daemon id", "syncid"),
)


def _check_keepalived(
    r: _Reader, ka_name: str, ka_dir: Path, nodes: list[Node], method: str, vip: str
) -> tuple[dict[str, Path], VrrpSetup, list[tuple[ServiceSpec, list[DestSpec]]]]:
    """The keepalived directory fits the scenario: one keepalived.conf per director
    (``<node>.conf``), each parsed as pylvsd parses it, with the same virtual servers (on the
    VIP, to the real-server nodes, by the scenario's method) and one ``vrrp_instance`` holding
    the VIP on the director's interface in the VIP's LAN; the instances agree (name, VRID,
    version), the active director has the highest priority, and ``lvs_sync_daemon`` (if any)
    names that instance and an interface of the director. Returns the files, the VRRP set-up
    and the services."""
    if not ka_dir.is_dir():
        raise r.fail(f"keepalived {ka_name}: no such directory beside {r.path.name}")
    directors = [n for n in nodes if n.role == "director"]
    director_ips = {i.ip: n.name for n in directors for i in n.interfaces}
    configs: dict[str, Path] = {}
    found: dict[str, _VipInstance] = {}
    services: list[tuple[ServiceSpec, list[DestSpec]]] = []
    first_services: tuple[str, list[tuple[ServiceSpec, list[DestSpec]]]] | None = None
    for director in directors:
        where = f"keepalived {ka_name}/{director.name}{KA_SUFFIX}"
        conf = ka_dir / f"{director.name}{KA_SUFFIX}"
        try:
            text = conf.read_text(errors="replace")
        except OSError as exc:
            raise r.fail(
                f"{where}: {exc.strerror or exc} (every director needs its keepalived.conf)"
            ) from None
        if not looks_like_keepalived(text):
            raise r.fail(
                f"{where}: not a keepalived.conf (its first keyword should be global_defs, "
                "vrrp_instance, virtual_server, ...)"
            )
        try:
            config = load_keepalived(conf)
        except ConfigError as exc:
            raise r.fail(f"keepalived {exc}") from None
        ka = config.keepalived
        assert ka is not None  # load_keepalived always sets it
        these = config.services()
        _check_services(r, where, these, nodes, method, vip)
        if first_services is None:
            first_services = (director.name, these)
            services = these
        elif _service_keys(these) != _service_keys(first_services[1]):
            raise r.fail(
                f"{where}: its virtual servers are not those of {first_services[0]}{KA_SUFFIX} "
                "(both directors must serve the same, whichever is the VRRP master)"
            )
        names = [i.name for i in director.interfaces]
        vip_iface = next(
            i for i in director.interfaces if ipaddress.ip_address(vip) in i.address.network
        )
        holding = [
            vi for vi in ka.vrrp_instances if any(a.addr == vip for a in vi.virtual_ipaddress)
        ]
        if len(holding) != 1:
            raise r.fail(
                f"{where}: one vrrp_instance must have the vip {vip} in its virtual_ipaddress, "
                f"found {len(holding)}"
            )
        (vi,) = holding
        at = f"{where} line {vi.line}: vrrp_instance {vi.name}"
        if vi.interface not in names:
            raise r.fail(
                f"{at}: interface {vi.interface} is not an interface of {director.name} "
                f"({', '.join(names)})"
            )
        address = next(a for a in vi.virtual_ipaddress if a.addr == vip)
        dev = address.dev or vi.interface
        if dev != vip_iface.name:
            raise r.fail(
                f"{at}: the vip would go on {dev}, but {director.name}'s interface on the vip's "
                f"LAN is {vip_iface.name}"
            )
        if vi.unicast_src_ip is not None and vi.unicast_src_ip not in director.addresses:
            raise r.fail(f"{at}: unicast_src_ip {vi.unicast_src_ip} is not {director.name}'s")
        for peer in vi.unicast_peer:
            if director_ips.get(peer.addr, director.name) == director.name:
                raise r.fail(
                    f"{at} line {peer.line}: unicast_peer {peer.addr} is not another director's "
                    "address"
                )
        sync = ka.global_defs.lvs_sync_daemon
        sync_iface: str | None = None
        syncid: int | None = None
        if sync is not None:
            if sync.interface not in names:
                raise r.fail(
                    f"{where} line {sync.line}: lvs_sync_daemon interface {sync.interface} is not "
                    f"an interface of {director.name} ({', '.join(names)})"
                )
            if sync.instance != vi.name:
                raise r.fail(
                    f"{where} line {sync.line}: lvs_sync_daemon follows {sync.instance}, not the "
                    f"vip's instance {vi.name}"
                )
            # vrrp.c vrrp_complete_init: without ``id`` the sync daemons use the VRID.
            sync_iface, syncid = (
                sync.interface,
                sync.syncid if sync.syncid is not None else vi.virtual_router_id,
            )
        assert vi.virtual_router_id is not None  # the parser refuses an instance without one
        configs[director.name] = conf
        found[director.name] = _VipInstance(
            vi.name,
            vi.virtual_router_id,
            vi.version,
            vi.advert_int,
            vi.priority,
            sync_iface,
            syncid,
            not vi.nopreempt,
        )
    first, *others = directors
    ref = found[first.name]
    for other in others:
        theirs = found[other.name]
        for label, attr in _MUST_AGREE:
            mine, its = getattr(ref, attr), getattr(theirs, attr)
            if mine != its:
                raise r.fail(
                    f"keepalived {ka_name}: {label} is {_none(mine)} in {first.name}{KA_SUFFIX} "
                    f"but {_none(its)} in {other.name}{KA_SUFFIX} (the vip's vrrp_instance must "
                    "be the same virtual router on every director)"
                )
    priorities = {name: inst.priority for name, inst in found.items()}
    active = next(n for n in directors if not n.standby)
    best = max(priorities.values())
    if priorities[active.name] != best or list(priorities.values()).count(best) > 1:
        listed = ", ".join(f"{n} {p}" for n, p in priorities.items())
        raise r.fail(
            f"keepalived {ka_name}: the active (not standby) director {active.name} must have the "
            f"highest priority in {ref.name}, alone (priorities: {listed})"
        )
    setup = VrrpSetup(
        instance=ref.name,
        vrid=ref.vrid,
        version=ref.version,
        advert_int=ref.advert_int,
        priorities=priorities,
        sync_interface=ref.sync_interface,
        syncid=ref.syncid,
        preempt=found[active.name].preempt,
    )
    return configs, setup, services


def _none(value: object) -> str:
    return "none" if value is None else str(value)


def _service_keys(services: list[tuple[ServiceSpec, list[DestSpec]]]) -> list[tuple[Any, ...]]:
    return sorted(
        (spec.key(), sorted((d.addr, d.port, d.fwd, d.weight) for d in dests))
        for spec, dests in services
    )
