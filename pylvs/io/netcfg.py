"""The one module that changes the host: namespaces, links, addresses, routes, sysctls, neighbours.

Everything goes through pyroute2 (netlink) or ``/proc/sys``; nothing here runs ``ip``. Functions
act on the network namespace of the calling thread; :func:`in_netns` moves the calling thread into
a named namespace for the duration of a ``with`` block (``setns(2)`` is per thread), so the lab
builder and the tests can configure several namespaces from one process.

Errors that a user can cause (unknown interface, no route) raise :class:`NetcfgError` with a message
meant to be printed as is.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import ipaddress
import os
import socket
import struct
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2 import netns as _pr_netns
from pyroute2.netlink.exceptions import NetlinkError

__all__ = [
    "NUD_VALID",
    "LinkInfo",
    "NetcfgError",
    "NoRouteError",
    "RouteInfo",
    "RouteMonitor",
    "add_address",
    "add_bridge",
    "add_route",
    "add_veth",
    "create_netns",
    "default_gateway",
    "del_address",
    "del_link",
    "del_route",
    "disable_offloads",
    "has_address",
    "in_netns",
    "link_exists",
    "link_info",
    "link_ipv4_address",
    "link_is_up",
    "link_names",
    "link_running",
    "link_stats",
    "neigh_lookup",
    "neigh_probe",
    "netns_cookie",
    "netns_exists",
    "open_tun",
    "read_sysctl",
    "remove_netns",
    "replace_default_route",
    "route_get",
    "routes_get",
    "set_link_down",
    "set_link_master",
    "set_link_up",
    "write_sysctl",
]

_CLONE_NEWNET = 0x40000000
_NETNS_RUN_DIR = "/run/netns"

# NUD_* (include/uapi/linux/neighbour.h): states in which the entry holds a usable link address.
_NUD_REACHABLE = 0x02
_NUD_STALE = 0x04
_NUD_DELAY = 0x08
_NUD_PROBE = 0x10
_NUD_NOARP = 0x40
_NUD_PERMANENT = 0x80
NUD_VALID = _NUD_REACHABLE | _NUD_STALE | _NUD_DELAY | _NUD_PROBE | _NUD_NOARP | _NUD_PERMANENT

# RTN_* route types (include/uapi/linux/rtnetlink.h)
_RTN_UNICAST = 1
_RTN_LOCAL = 2
_RTN_UNREACHABLE = 7

# TUNSETIFF and flags (include/uapi/linux/if_tun.h)
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000


class NetcfgError(Exception):
    """A host configuration step that cannot be done, with a message for the operator."""


class NoRouteError(NetcfgError):
    """The kernel has no route to the address."""


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the ``with`` body in network namespace ``name`` (``None``: stay where we are).

    Only the calling thread moves; sockets opened inside keep the namespace after the block.
    """
    if name is None:
        yield
        return
    path = os.path.join(_NETNS_RUN_DIR, name)
    try:
        target = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise NetcfgError(f"network namespace {name!r} does not exist") from None
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(here)
    finally:
        os.close(target)
        os.close(here)


def create_netns(name: str) -> None:
    _pr_netns.create(name)


def remove_netns(name: str) -> None:
    if netns_exists(name):
        _pr_netns.remove(name)


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(_NETNS_RUN_DIR, name))


_SO_NETNS_COOKIE = 71  # include/uapi/asm-generic/socket.h (Linux 5.14+)


def netns_cookie() -> int:
    """The calling thread's network namespace cookie.

    Cookies are never reused while the system runs (inode numbers of deleted namespaces are), so a
    file named after one cannot be mistaken for another namespace's.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, _SO_NETNS_COOKIE, 8), "little")


@contextlib.contextmanager
def _ipr() -> Iterator[Any]:
    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _ifindex(ipr: Any, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise NetcfgError(f"unknown interface {ifname!r}")
    return int(found[0])


@dataclass(frozen=True)
class LinkInfo:
    index: int
    name: str
    mac: bytes
    mtu: int


def link_info(ifname_or_index: str | int) -> LinkInfo:
    """Index, name, MAC address and MTU of one interface; NetcfgError if it does not exist."""
    with _ipr() as ipr:
        if isinstance(ifname_or_index, str):
            index = _ifindex(ipr, ifname_or_index)
        else:
            index = ifname_or_index
        try:
            msg = ipr.get_links(index)[0]
        except Exception as exc:
            raise NetcfgError(f"unknown interface index {index}") from exc
        mac_text = msg.get_attr("IFLA_ADDRESS") or "00:00:00:00:00:00"
        return LinkInfo(
            index=index,
            name=str(msg.get_attr("IFLA_IFNAME")),
            mac=bytes.fromhex(mac_text.replace(":", "")),
            mtu=int(msg.get_attr("IFLA_MTU") or 1500),
        )


def link_ipv4_address(ifname: str) -> str | None:
    """The first IPv4 address of an interface, or None when it has none (or does not exist)."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        for msg in ipr.get_addr(family=socket.AF_INET, index=found[0]):
            addr = msg.get_attr("IFA_ADDRESS")
            if addr:
                return str(addr)
    return None


def link_broadcast(ifname: str) -> str | None:
    """The broadcast address of an interface's first IPv4 address (``SIOCGIFBRDADDR``)."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        for msg in ipr.get_addr(family=socket.AF_INET, index=found[0]):
            brd = msg.get_attr("IFA_BROADCAST")
            if brd:
                return str(brd)
    return None


def link_is_up(ifname: str) -> bool:
    """Whether the interface is administratively up (IFF_UP)."""
    with _ipr() as ipr:
        msg = ipr.get_links(_ifindex(ipr, ifname))[0]
        return bool(int(msg["flags"]) & 0x1)


def link_running(ifname: str) -> bool:
    """Whether the interface is up and has carrier (IFF_UP and IFF_RUNNING: keepalived's
    ``IF_ISUP``); False when it does not exist."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return False
        flags = int(ipr.get_links(found[0])[0]["flags"])
        return flags & 0x41 == 0x41  # IFF_UP | IFF_RUNNING


def set_link_down(ifname: str) -> None:
    with _ipr() as ipr:
        ipr.link("set", index=_ifindex(ipr, ifname), state="down")


def link_exists(ifname: str) -> bool:
    with _ipr() as ipr:
        return bool(ipr.link_lookup(ifname=ifname))


def link_names() -> list[str]:
    with _ipr() as ipr:
        return [str(msg.get_attr("IFLA_IFNAME")) for msg in ipr.get_links()]


def set_link_up(ifname: str, mtu: int | None = None) -> None:
    with _ipr() as ipr:
        index = _ifindex(ipr, ifname)
        if mtu is None:
            ipr.link("set", index=index, state="up")
        else:
            ipr.link("set", index=index, state="up", mtu=mtu)


def add_veth(ifname: str, peer: str, peer_netns: str | None = None) -> None:
    """A veth pair; the peer end is moved into ``peer_netns`` when given."""
    peer_spec: dict[str, Any] = {"ifname": peer}
    if peer_netns is not None:
        peer_spec["net_ns_fd"] = peer_netns
    with _ipr() as ipr:
        ipr.link("add", ifname=ifname, kind="veth", peer=peer_spec)


def add_bridge(ifname: str) -> None:
    with _ipr() as ipr:
        ipr.link("add", ifname=ifname, kind="bridge")


def set_link_master(ifname: str, master: str) -> None:
    with _ipr() as ipr:
        ipr.link("set", index=_ifindex(ipr, ifname), master=_ifindex(ipr, master))


def del_link(ifname: str) -> None:
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if found:
            ipr.link("del", index=found[0])


def _split(addr: str, prefixlen: int | None) -> tuple[str, int]:
    iface = ipaddress.ip_interface(addr if prefixlen is None else f"{addr}/{prefixlen}")
    return str(iface.ip), int(iface.network.prefixlen)


def has_address(ifname: str, addr: str) -> bool:
    ip = str(ipaddress.ip_address(addr.split("/")[0]))
    with _ipr() as ipr:
        index = _ifindex(ipr, ifname)
        return any(msg.get_attr("IFA_ADDRESS") == ip for msg in ipr.get_addr(index=index))


# ``ip addr add ... scope NAME`` (rtnetlink's rt_scope_t).
_SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}


def add_address(
    ifname: str,
    addr: str,
    prefixlen: int | None = None,
    label: str | None = None,
    broadcast: str | None = None,
    nodad: bool = False,
    deprecated: bool = False,
    scope: str | None = None,
) -> bool:
    """Add ``addr`` (``"192.0.2.1/24"`` or address + prefixlen), with an ``ip addr`` label
    (``eth0:vip``), broadcast address and ``scope`` (a name such as ``host`` / ``link`` /
    ``global``, or a number: a VRRP ``virtual_ipaddress`` line's) if given, and for IPv6
    ``nodad`` (``IFA_F_NODAD``: no duplicate address detection, usable at once) and
    ``deprecated`` (``preferred_lft 0``: still received on, but never chosen as a source, RFC
    6724 5 rule 3); False if it was already there."""
    ip, plen = _split(addr, prefixlen)
    if has_address(ifname, ip):
        return False
    extra: dict[str, Any] = {}
    if label is not None:
        extra["label"] = label
    if broadcast is not None:
        extra["broadcast"] = broadcast
    if nodad and ":" in ip:
        extra["flags"] = IFA_F_NODAD
    if deprecated and ":" in ip:
        extra["preferred_lft"] = 0  # valid_lft stays forever
    if scope is not None:
        extra["scope"] = _SCOPES[scope] if scope in _SCOPES else int(scope)
    with _ipr() as ipr:
        ipr.addr("add", index=_ifindex(ipr, ifname), address=ip, prefixlen=plen, **extra)
    return True


# ``ip addr add ... nodad`` and the states ``ip -6 addr`` shows (include/uapi/linux/if_addr.h).
IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40


def link_ipv6_linklocal(ifname: str) -> str | None:
    """The interface's IPv6 link-local address (fe80::/10; keepalived's IPv6 VRRP source), or
    None when it has none yet or does not exist. A tentative one (DAD not done) counts: the
    kernel will not send from it yet, so callers that send wait with
    :func:`ipv6_address_tentative`."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        for msg in ipr.get_addr(family=socket.AF_INET6, index=found[0]):
            addr = msg.get_attr("IFA_ADDRESS")
            if addr and ipaddress.IPv6Address(addr).is_link_local:
                return str(addr)
    return None


def ipv6_address_flags(ifname: str, addr: str) -> int | None:
    """The ``IFA_F_*`` flags of an IPv6 address on an interface (None: not there)."""
    ip = ipaddress.IPv6Address(addr.split("/")[0])
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        for msg in ipr.get_addr(family=socket.AF_INET6, index=found[0]):
            local = msg.get_attr("IFA_ADDRESS")
            if local and ipaddress.IPv6Address(local) == ip:
                flags = msg.get_attr("IFA_FLAGS")
                return int(msg["flags"] if flags is None else flags)
    return None


def ipv6_address_tentative(ifname: str, addr: str) -> bool:
    """Whether duplicate address detection still runs for the address (``tentative``)."""
    flags = ipv6_address_flags(ifname, addr)
    return flags is not None and bool(flags & IFA_F_TENTATIVE) and not flags & IFA_F_DADFAILED


def ipv6_forwarding(ifname: str) -> bool:
    """``net.ipv6.conf.IF.forwarding``: the interface routes IPv6 (the Router flag of the
    neighbour advertisements sent for it); False if it cannot be read."""
    try:
        return read_sysctl(f"net/ipv6/conf/{ifname}/forwarding").strip() not in ("", "0")
    except (OSError, NetcfgError):
        return False


def interfaces_with(addr: str) -> list[str]:
    """The interfaces that hold ``addr`` (IPv4 or IPv6), by name."""
    ip = str(ipaddress.ip_address(addr))
    with _ipr() as ipr:
        indexes = {int(m["index"]) for m in ipr.get_addr() if m.get_attr("IFA_ADDRESS") == ip}
        return sorted(
            str(link.get_attr("IFLA_IFNAME"))
            for link in ipr.get_links()
            if link["index"] in indexes
        )


def connected_network(addr: str) -> tuple[str, int] | None:
    """IPaddr2's ``findif``: the interface and prefix length of a configured IPv4 (or, for an
    IPv6 ``addr``, IPv6) network that contains ``addr`` (the most specific, ``lo`` never), or
    None."""
    ip = ipaddress.ip_address(addr)
    family, host = (socket.AF_INET, 32) if ip.version == 4 else (socket.AF_INET6, 128)
    best: tuple[int, str] | None = None
    with _ipr() as ipr:
        names = {int(link["index"]): str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()}
        for msg in ipr.get_addr(family=family):
            name = names.get(int(msg["index"]), "")
            local = msg.get_attr("IFA_ADDRESS")
            plen = int(msg["prefixlen"])
            if name == "lo" or not local or plen >= host:
                continue
            if ip in ipaddress.ip_network(f"{local}/{plen}", strict=False) and (
                best is None or plen > best[0]
            ):
                best = (plen, name)
    return None if best is None else (best[1], best[0])


def del_address(ifname: str, addr: str, prefixlen: int | None = None) -> bool:
    """Remove ``addr``; False if it was not there."""
    ip, plen = _split(addr, prefixlen)
    if not link_exists(ifname) or not has_address(ifname, ip):
        return False
    with _ipr() as ipr:
        ipr.addr("del", index=_ifindex(ipr, ifname), address=ip, prefixlen=plen)
    return True


def add_route(dst: str, gateway: str | None = None, ifname: str | None = None) -> None:
    """Add a route (``dst`` ``"default"`` or a prefix) via ``gateway`` and/or out of ``ifname``."""
    kwargs: dict[str, Any] = {"dst": "0.0.0.0/0" if dst == "default" else dst}
    if gateway is not None:
        kwargs["gateway"] = gateway
    with _ipr() as ipr:
        if ifname is not None:
            kwargs["oif"] = _ifindex(ipr, ifname)
        ipr.route("add", **kwargs)


def del_route(dst: str, gateway: str | None = None) -> bool:
    """Remove a route; False if there was none (``default`` with an IPv6 ``gateway``: the IPv6
    default route)."""
    default = "::/0" if gateway is not None and ":" in gateway else "0.0.0.0/0"
    kwargs: dict[str, Any] = {"dst": default if dst == "default" else dst}
    if gateway is not None:
        kwargs["gateway"] = gateway
    with _ipr() as ipr:
        try:
            ipr.route("del", **kwargs)
        except Exception:
            return False
    return True


@dataclass(frozen=True)
class RouteInfo:
    """What ``ip route get ADDR`` answers: output interface, preferred source, next hop, MTU."""

    dst: str
    oif: int
    src: str
    gateway: str | None
    mtu: int
    local: bool

    @property
    def next_hop(self) -> str:
        return self.gateway or self.dst


def route_get(addr: str) -> RouteInfo:
    """The kernel's route to ``addr``; NoRouteError when there is none (or it is unreachable)."""
    ip = str(ipaddress.ip_address(addr))
    with _ipr() as ipr:
        return _route_get(ipr, ip)


# RTM_GETROUTE by hand, for many addresses at once: pyroute2 spends about 0.5 ms on each "ip route
# get" and as much on the link's MTU, which makes 16,384 real servers a 16-second start. The
# requests are written back to back on one socket and the kernel answers each in microseconds.
_RTM_NEWROUTE = 24
_RTM_GETROUTE = 26
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_RTA_DST, _RTA_OIF, _RTA_GATEWAY, _RTA_PREFSRC, _RTA_METRICS = 1, 4, 5, 7, 8
_RTAX_MTU = 2
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")


def routes_get(addrs: Iterable[str]) -> dict[str, RouteInfo | None]:
    """:func:`route_get` for many IPv4 and IPv6 addresses (None: no route, or no address)."""
    ips: dict[int, str] = {}
    out: dict[str, RouteInfo | None] = {}
    for seq, addr in enumerate(addrs, 1):
        out[addr] = None
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            continue
        ips[seq] = addr
    if not ips:
        return out
    mtus = {index: mtu for index, mtu in _link_mtus().items()}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as sock:
        sock.bind((0, 0))
        sock.settimeout(5.0)
        pending = dict(ips)
        batch = list(ips.items())
        for start in range(0, len(batch), 256):  # bounded by the socket buffers
            chunk = batch[start : start + 256]
            sock.sendall(b"".join(_route_request(seq, addr) for seq, addr in chunk))
            want = {seq for seq, _addr in chunk}
            while want:
                data = sock.recv(1 << 20)
                for seq, route in _route_replies(data, pending, mtus):
                    want.discard(seq)
                    out[pending[seq]] = route
    return out


def _route_request(seq: int, addr: str) -> bytes:
    if ":" in addr:
        family, packed = socket.AF_INET6, socket.inet_pton(socket.AF_INET6, addr)
    else:
        family, packed = socket.AF_INET, socket.inet_aton(addr)
    attr = _RTATTR.pack(4 + len(packed), _RTA_DST) + packed
    body = _RTMSG.pack(family, len(packed) * 8, 0, 0, 0, 0, 0, 0, 0) + attr
    return _NLMSG_HDR.pack(16 + len(body), _RTM_GETROUTE, _NLM_F_REQUEST, seq, 0) + body


def _addr_attr(data: bytes) -> str:
    """An RTA_GATEWAY / RTA_PREFSRC value as text (4 bytes: IPv4, 16: IPv6)."""
    if len(data) == 16:
        return socket.inet_ntop(socket.AF_INET6, data)
    return socket.inet_ntoa(data)


def _route_replies(
    data: bytes, pending: dict[int, str], mtus: dict[int, int]
) -> Iterator[tuple[int, RouteInfo | None]]:
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, seq, _pid = _NLMSG_HDR.unpack_from(data, offset)
        if length < 16:
            return
        body = data[offset + 16 : offset + length]
        offset += (length + 3) & ~3
        if seq not in pending:
            continue
        if kind == _NLMSG_ERROR or kind != _RTM_NEWROUTE:
            yield seq, None  # ENETUNREACH and the like
            continue
        _fam, _dl, _sl, _tos, _table, _proto, _scope, rtype, _fl = _RTMSG.unpack_from(body)
        if rtype not in (_RTN_UNICAST, _RTN_LOCAL):
            yield seq, None
            continue
        attrs: dict[int, bytes] = {}
        pos = _RTMSG.size
        while pos + 4 <= len(body):
            alen, atype = _RTATTR.unpack_from(body, pos)
            if alen < 4:
                break
            attrs[atype & 0x3FFF] = body[pos + 4 : pos + alen]
            pos += (alen + 3) & ~3
        oif = struct.unpack("=I", attrs[_RTA_OIF])[0] if _RTA_OIF in attrs else 0
        mtu = _metric_mtu(attrs.get(_RTA_METRICS, b"")) or mtus.get(oif, 1500)
        gateway = _addr_attr(attrs[_RTA_GATEWAY]) if _RTA_GATEWAY in attrs else None
        src = _addr_attr(attrs[_RTA_PREFSRC]) if _RTA_PREFSRC in attrs else ""
        ip = pending[seq]
        yield seq, RouteInfo(str(ipaddress.ip_address(ip)), oif, src, gateway, mtu,
                             rtype == _RTN_LOCAL)  # fmt: skip


def _metric_mtu(data: bytes) -> int:
    pos = 0
    while pos + 4 <= len(data):
        alen, atype = _RTATTR.unpack_from(data, pos)
        if alen < 8:
            return 0
        if atype == _RTAX_MTU:
            return int(struct.unpack_from("=I", data, pos + 4)[0])
        pos += (alen + 3) & ~3
    return 0


def _link_mtus() -> dict[int, int]:
    with _ipr() as ipr:
        return {int(m["index"]): int(m.get_attr("IFLA_MTU") or 1500) for m in ipr.get_links()}


def _route_get(ipr: Any, ip: str) -> RouteInfo:
    try:
        msg = ipr.route("get", dst=ip)[0]
    except Exception as exc:
        raise NoRouteError(f"no route to {ip}") from exc
    if msg["type"] not in (_RTN_UNICAST, _RTN_LOCAL):
        raise NoRouteError(f"no route to {ip}")
    oif = int(msg.get_attr("RTA_OIF") or 0)
    mtu = 0
    metrics = msg.get_attr("RTA_METRICS")
    if metrics is not None:
        mtu = int(metrics.get_attr("RTAX_MTU") or 0)
    if not mtu and oif:
        link = ipr.get_links(oif)[0]
        mtu = int(link.get_attr("IFLA_MTU") or 1500)
    return RouteInfo(
        dst=ip,
        oif=oif,
        src=str(msg.get_attr("RTA_PREFSRC") or ""),
        gateway=msg.get_attr("RTA_GATEWAY"),
        mtu=mtu or 1500,
        local=msg["type"] == _RTN_LOCAL,
    )


def neigh_lookup(ifindex: int, addr: str) -> tuple[bytes | None, int]:
    """The link address the kernel neighbour table holds for ``addr`` on ``ifindex``.

    Returns ``(mac, nud_state)``; ``mac`` is None when there is no entry or the entry is not usable
    (INCOMPLETE, FAILED).
    """
    with _ipr() as ipr:
        # One RTM_GETNEIGH for the address (``ip neigh get``): get_neighbours() would dump the
        # whole table and filter it here, which costs O(table) per real server added.
        try:
            msgs = ipr.neigh("get", dst=addr, ifindex=ifindex)
        except NetlinkError as exc:
            if exc.code in (errno.ENOENT, errno.ENODEV):
                return None, 0
            raise
        for msg in msgs:
            lladdr = msg.get_attr("NDA_LLADDR")
            state = int(msg["state"])
            if lladdr and state & NUD_VALID:
                return bytes.fromhex(lladdr.replace(":", "")), state
            return None, state
    return None, 0


def neigh_probe(addr: str, ifindex: int = 0) -> None:
    """Make the kernel resolve ``addr`` (ARP, or IPv6 neighbour discovery: RFC 4861 section
    7.2.2): send one empty UDP datagram to its discard port.

    Any packet routed to the address starts neighbour resolution; the datagram itself is discarded
    (or answered with ICMP port unreachable) by the target. ``ifindex`` is the scope of an IPv6
    link-local address (a router's ``fe80::`` address as next hop).
    """
    if ":" in addr:
        scope = ifindex if addr.lower().startswith("fe80") else 0
        sock6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        with sock6, contextlib.suppress(OSError):
            sock6.sendto(b"", (addr, 9, 0, scope))
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(b"", (addr, 9))


def _sysctl_path(key: str) -> str:
    # Interface names may contain dots (vlan devices), so "/"-separated keys are accepted as well.
    parts = key.split("/") if "/" in key else key.split(".")
    return os.path.join("/proc/sys", *parts)


def read_sysctl(key: str) -> str:
    """``net.ipv4.ip_forward`` or ``net/ipv4/conf/veth0.1/rp_filter`` -> current value as text."""
    with open(_sysctl_path(key)) as f:
        return f.read().strip()


def write_sysctl(key: str, value: str | int) -> str:
    """Set a sysctl; returns the previous value so the caller can restore it."""
    path = _sysctl_path(key)
    try:
        with open(path) as f:
            old = f.read().strip()
        with open(path, "w") as f:
            f.write(f"{value}\n")
    except FileNotFoundError:
        raise NetcfgError(f"no sysctl {key}") from None
    return old


def open_tun(ifname: str) -> int:
    """Create (or attach to) TUN device ``ifname`` without packet information; returns its fd.

    The device lives as long as the fd is open (it is not made persistent).
    """
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        ifr = struct.pack("16sH22x", ifname.encode(), _IFF_TUN | _IFF_NO_PI)
        fcntl.ioctl(fd, _TUNSETIFF, ifr)
    except OSError:
        os.close(fd)
        raise
    return fd


def disable_offloads(ifname: str) -> None:
    """Turn segmentation/checksum offloads off, so tapped frames are real wire frames.

    ethtool features are not exposed by rtnetlink; this runs the ``ethtool`` tool.
    """
    features = ["tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off"]
    subprocess.run(
        ["ethtool", "-K", ifname, *features],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def link_stats(ifname: str) -> dict[str, int]:
    """The interface counters (IFLA_STATS64: rx_packets, tx_packets, rx_bytes, ...)."""
    with _ipr() as ipr:
        msg = ipr.get_links(_ifindex(ipr, ifname))[0]
        stats = msg.get_attr("IFLA_STATS64") or msg.get_attr("IFLA_STATS")
        return {key: int(value) for key, value in stats.items() if isinstance(value, int)}


def default_gateway(family: int = socket.AF_INET) -> str | None:
    """The gateway of the IPv4 (``family`` AF_INET6: IPv6) default route of the main table."""
    with _ipr() as ipr:
        for msg in ipr.get_default_routes(family=family):
            gateway = msg.get_attr("RTA_GATEWAY")
            if gateway:
                return str(gateway)
    return None


def replace_default_route(gateway: str) -> None:
    """Make ``gateway`` the default route of its family (IPv4, or IPv6 for an IPv6 address)."""
    with _ipr() as ipr:
        ipr.route("replace", dst="::/0" if ":" in gateway else "0.0.0.0/0", gateway=gateway)


# rtnetlink multicast groups (include/uapi/linux/rtnetlink.h, RTMGRP_*) and message types.
_RTMGRP_LINK = 0x1
_RTMGRP_NEIGH = 0x4
_RTMGRP_IPV4_IFADDR = 0x10
_RTMGRP_IPV4_ROUTE = 0x40
_RTMGRP_IPV6_IFADDR = 0x100
_RTMGRP_IPV6_ROUTE = 0x400
_RTM_NEWNEIGH = 28
_RTM_DELNEIGH = 29
_NLMSG_HDR = struct.Struct("=IHHII")


class RouteMonitor:
    """Tells when the kernel's links, addresses, routes or neighbours change (rtnetlink groups).

    Only the kinds of change are read, not their content: whoever watches re-reads what it needs
    (:func:`route_get`, :func:`neigh_lookup`). :meth:`drain` returns ``(routing, neighbours)``:
    whether a link, address or route changed, and whether a neighbour did. An overrun socket
    (ENOBUFS: changes were lost) counts as both.
    """

    def __init__(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 0)
        try:
            groups = _RTMGRP_LINK | _RTMGRP_NEIGH | _RTMGRP_IPV4_IFADDR | _RTMGRP_IPV4_ROUTE
            # IPv6 addresses and routes too: IPv6 real servers' paths follow them (set_path(6)).
            groups |= _RTMGRP_IPV6_IFADDR | _RTMGRP_IPV6_ROUTE
            sock.bind((0, groups))
        except OSError:
            sock.close()
            raise
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> tuple[bool, bool]:
        routing = neighbours = False
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return routing, neighbours
            except OSError:
                return True, True  # ENOBUFS: something was lost, assume everything changed
            offset = 0
            while offset + _NLMSG_HDR.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSG_HDR.unpack_from(data, offset)
                if kind in (_RTM_NEWNEIGH, _RTM_DELNEIGH):
                    neighbours = True
                else:
                    routing = True
                if length < _NLMSG_HDR.size:
                    break
                offset += (length + 3) & ~3

    def close(self) -> None:
        self.sock.close()
