"""Rules both parsers share: ipvsadm's view of dests and netmasks, ldirectord's fallbacks."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.service import AF_INET, AF_INET6, FwdMethod, ServiceFlags

from .model import (
    DEFAULT_CHECKTIMEOUT,
    DEFAULT_NEGOTIATETIMEOUT,
    Config,
    FallbackConfig,
    VirtualConfig,
    port_to_service,
)

__all__ = [
    "FORWARD_NAMES",
    "INT_MAX",
    "MAX_RANGE",
    "MAX_REALS",
    "MAX_TIMEOUT",
    "SCHED_FLAG_NAMES",
    "Fail",
    "HostResolver",
    "Overrides",
    "PortResolver",
    "dest_port",
    "expand_range",
    "finish_virtual",
    "local_hostname",
    "netmask_prefix",
    "parse_int",
    "range_size",
    "resolve_host",
    "resolve_port",
    "sched_flags",
]

Fail = Callable[[int, str], NoReturn]
HostResolver = Callable[[str, int], "str | None"]
PortResolver = Callable[[str, str], "int | None"]

INT_MAX = 2**31 - 1
# ipvsadm.c MAX_TIMEOUT (31 days): the longest persistence timeout ipvsadm accepts.
MAX_TIMEOUT = 86400 * 31
# A real-server range expands to one dest per address; bound it so a typo cannot exhaust memory.
MAX_RANGE = 65536
# Real servers in one configuration file, all ranges together: a file of many large ranges must
# not exhaust the director's memory at start or on SIGHUP.
MAX_REALS = 65536

# ldirectord forwarding names, plus ipvsadm's for the native format.
FORWARD_NAMES: dict[str, int] = {
    "gate": int(FwdMethod.ROUTE),
    "route": int(FwdMethod.ROUTE),
    "masq": int(FwdMethod.MASQ),
    "ipip": int(FwdMethod.TUNNEL),
    "tunnel": int(FwdMethod.TUNNEL),
}

# ipvsadm -b: sh-/mh- flags are aliases of the generic flag-N bits (ipvsadm.c parse_sched_flags).
SCHED_FLAG_NAMES: dict[str, int] = {
    "flag-1": int(ServiceFlags.SCHED1),
    "flag-2": int(ServiceFlags.SCHED2),
    "flag-3": int(ServiceFlags.SCHED3),
    "sh-fallback": int(ServiceFlags.SCHED1),
    "sh-port": int(ServiceFlags.SCHED2),
    "mh-fallback": int(ServiceFlags.SCHED1),
    "mh-port": int(ServiceFlags.SCHED2),
}


def parse_int(text: str, low: int = 0, high: int = INT_MAX) -> int | None:
    """A plain decimal in [low, high], else None (the length check keeps int() cheap and safe)."""
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    value = int(text)
    return value if low <= value <= high else None


def resolve_host(name: str, af: int) -> str | None:
    """Address text of an IP literal or host name of family ``af`` (ld_gethostbyname)."""
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        return str(ip) if (ip.version == 4) == (af == AF_INET) else None
    # Numbers and dots that are not a dotted quad would reach inet_aton's legacy forms ("1.2.3").
    if not name or all(c.isdigit() or c == "." for c in name) or ":" in name:
        return None
    family = socket.AF_INET if af == AF_INET else socket.AF_INET6
    try:
        infos = socket.getaddrinfo(name, None, family, socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return None
    for info in infos:
        return str(ipaddress.ip_address(info[4][0]))
    return None


def resolve_port(name: str, protocol: str) -> int | None:
    """A port number or an /etc/services name (ldirectord ld_getservbyname: numbers 0..65535)."""
    if name.isascii() and name.isdigit():
        return parse_int(name, 0, 65535)
    try:
        if protocol in ("tcp", "udp"):
            return socket.getservbyname(name, protocol)
        return socket.getservbyname(name)
    except (OSError, UnicodeError, ValueError):
        return None


def range_size(first: str, last: str) -> int:
    """How many IPv4 addresses ``first->last`` names (0 or less when first > last): checked
    before :func:`expand_range`, so a range of millions costs nothing to refuse."""
    return int(ipaddress.IPv4Address(last)) - int(ipaddress.IPv4Address(first)) + 1


def expand_range(first: str, last: str) -> list[str] | None:
    """Every IPv4 address from first to last inclusive, or None if first > last or the range
    has more than MAX_RANGE addresses."""
    if not 0 < range_size(first, last) <= MAX_RANGE:
        return None
    lo = int(ipaddress.IPv4Address(first))
    return [str(ipaddress.IPv4Address(lo + n)) for n in range(range_size(first, last))]


def netmask_prefix(text: str, af: int) -> int | None:
    """ldirectord's netmask (dotted quad for IPv4, prefix 1..128 for IPv6) as a prefix length.

    ServiceSpec carries a prefix length, so an IPv4 mask must be contiguous; a prefix length is
    also accepted for IPv4, as ipvsadm -M does.
    """
    if af == AF_INET6:
        return parse_int(text, 1, 128)
    if "." not in text:
        return parse_int(text, 1, 32)
    try:
        mask = int(ipaddress.IPv4Address(text))
    except ValueError:
        return None
    prefix = bin(mask).count("1")
    return prefix if mask == (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF else None


def sched_flags(names: list[str]) -> int | None:
    flags = 0
    for name in names:
        bit = SCHED_FLAG_NAMES.get(name)
        if bit is None:
            return None
        flags |= bit
    return flags


def dest_port(spec: ServiceSpec, fwd: int, port: int) -> int:
    """The port ipvsadm sends for a dest: gate/ipip dests of an address service always use the
    service port (ipvsadm.c: "The destination port must be equal to the service port"), and a dest
    given without a port takes the service port too."""
    if spec.fwmark:
        return port
    if fwd in (FwdMethod.ROUTE, FwdMethod.TUNNEL) or port == 0:
        return spec.port
    return port


def local_hostname() -> str:
    """$HOSTNAME, else the node name, as ldirectord uses it in default FTP/SIP credentials."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


@dataclass
class Overrides:
    """Per-virtual settings that fall back on a global one when absent (None)."""

    checktimeout: int | None = None
    negotiatetimeout: int | None = None
    checkcount: int | None = None
    failurecount: int | None = None
    checkinterval: int | None = None
    quiescent: bool | None = None
    cleanstop: bool | None = None
    fallback: FallbackConfig | None = None
    fallbackcommand: str | None = None
    emailalert: str | None = None
    emailalertfreq: int | None = None
    emailalertstatus: frozenset[str] | None = None
    smtp: str | None = None
    service: str | None = None
    login: str | None = None
    passwd: str | None = None


def _first(*values: int | None) -> int | None:
    for value in values:
        if value is not None:
            return value
    return None


def finish_virtual(v: VirtualConfig, o: Overrides, cfg: Config, fail: Fail) -> None:
    """Resolve a virtual's settings against the globals (ldirectord ld_setup / fallback_find) and
    apply the checks ipvsadm or IPVS would make when the service and its dests are added."""
    spec = v.spec
    # checktimeout and negotiatetimeout are each other's defaults (ld_setup): virtual, the other
    # virtual value, the global, the other global, the built-in value.
    v.checktimeout = (
        _first(o.checktimeout, o.negotiatetimeout, cfg.checktimeout, cfg.negotiatetimeout)
        or DEFAULT_CHECKTIMEOUT
    )
    v.negotiatetimeout = (
        _first(o.negotiatetimeout, o.checktimeout, cfg.negotiatetimeout, cfg.checktimeout)
        or DEFAULT_NEGOTIATETIMEOUT
    )
    v.checkcount = _first(o.checkcount, cfg.checkcount) or 1
    v.failurecount = _first(o.failurecount, cfg.failurecount) or 1
    # A per-virtual checkinterval is honoured only by forked children (fork=yes).
    if o.checkinterval is not None and not cfg.fork:
        cfg.warnings.append(f"checkinterval in virtual service {v.ident()} ignored when fork=no")
    v.checkinterval = (
        o.checkinterval if (o.checkinterval is not None and cfg.fork) else (cfg.checkinterval)
    )
    v.quiescent = o.quiescent if o.quiescent is not None else cfg.quiescent
    v.cleanstop = o.cleanstop if o.cleanstop is not None else cfg.cleanstop
    v.fallbackcommand = o.fallbackcommand if o.fallbackcommand is not None else cfg.fallbackcommand
    v.emailalert = o.emailalert if o.emailalert is not None else cfg.emailalert
    v.emailalertfreq = o.emailalertfreq if o.emailalertfreq is not None else cfg.emailalertfreq
    v.emailalertstatus = (
        o.emailalertstatus if o.emailalertstatus is not None else cfg.emailalertstatus
    )
    v.smtp = o.smtp if o.smtp is not None else cfg.smtp

    if o.service is not None:
        v.service = o.service
    elif spec.fwmark:
        v.service = "none"
    else:
        v.service = port_to_service(spec.port)
    hostname = ""
    if v.service in ("ftp", "sip") and not (o.login and o.passwd):
        hostname = local_hostname()
    v.login = o.login or ""
    v.passwd = o.passwd or ""
    if v.service == "ftp":
        v.login = v.login or "anonymous"
        v.passwd = v.passwd or f"ldirectord@{hostname}"
    elif v.service == "sip":
        v.login = v.login or f"ldirectord@{hostname}"

    # Fallback: the virtual's own, else the global one of its family with the virtual's port.
    fb = o.fallback
    if fb is None:
        fb = cfg.fallback6 if spec.af == AF_INET6 else cfg.fallback
    if fb is not None:
        port = fb.port if fb.port else spec.port
        v.fallback = DestSpec(
            af=fb.af, addr=fb.addr, port=dest_port(spec, fb.fwd, port), weight=1, fwd=fb.fwd
        )

    # ipvsadm: "Zero port specified for non-persistent service".
    if not spec.fwmark and spec.port == 0 and not spec.persistent:
        fail(v.line, "Zero port specified for non-persistent service")
    seen: dict[tuple[str, int], int] = {}
    for real in v.reals:
        d = real.dest
        # ip_vs_ctl.c ip_vs_add_dest() refuses this with ERANGE, even when u_threshold is 0.
        if d.l_threshold > d.u_threshold:
            fail(real.line, "lower threshold is higher than upper threshold")
        key = (d.addr, d.port)
        if key in seen:
            host = f"[{d.addr}]" if d.af == AF_INET6 else d.addr
            fail(real.line, f"duplicate real server {host}:{d.port} (first on line {seen[key]})")
        seen[key] = real.line
