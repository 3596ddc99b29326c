"""The parsed configuration shared by the ldirectord.cf and the native TOML parsers.

A :class:`Config` is the whole file: ldirectord's global settings plus one
:class:`VirtualConfig` per virtual service. Each virtual carries the ServiceSpec that
``ipvsadm -A`` would send, its real servers (a DestSpec each, as ``ipvsadm -a`` would send it)
and the health-check settings of ldirectord with every per-virtual default and fallback already
resolved, so that the health checker never has to know where a value came from.

Parsers never hand out a partial :class:`Config`: a bad file raises :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pylvs.core.control import DestSpec, ServiceSpec, Timeouts
from pylvs.core.service import AF_INET6, FwdMethod

if TYPE_CHECKING:
    from .kamodel import KeepalivedConfig

__all__ = [
    "CHECKTYPES",
    "DEFAULT_CHECKTIMEOUT",
    "DEFAULT_NEGOTIATETIMEOUT",
    "EMAIL_STATUSES",
    "SERVICES",
    "Config",
    "ConfigError",
    "FallbackConfig",
    "RealConfig",
    "VirtualConfig",
    "port_to_service",
    "service_to_port",
]

# ldirectord set_defaults(): $DEFAULT_CHECKTIMEOUT / $DEFAULT_NEGOTIATETIMEOUT.
DEFAULT_CHECKTIMEOUT = 5
DEFAULT_NEGOTIATETIMEOUT = 30

# checktype values; a number N is stored as "combined" with num_connects = N, as ldirectord does.
# "misc" is keepalived's MISC_CHECK (native format only): checkcommand run with no arguments.
CHECKTYPES = (
    "connect", "negotiate", "ping", "off", "on", "external", "external-perl", "combined", "misc",
)  # fmt: skip

# The negotiate services ldirectord knows (read_config, "service must be ...").
SERVICES = (
    "dns", "ftp", "http", "https", "http_proxy", "imap", "imaps", "ldap", "ldaps", "mysql", "nntp",
    "none", "oracle", "pgsql", "pop", "pops", "radius", "simpletcp", "sip", "smtp", "submission",
)  # fmt: skip

# Daemon states an email alert may be sent in (parse_emailalertstatus).
EMAIL_STATUSES = frozenset({"starting", "running", "stopping", "reloading"})

# ldirectord ld_port_to_service / ld_service_to_port.
_PORT_SERVICES = {
    21: "ftp", 25: "smtp", 53: "dns", 80: "http", 110: "pop", 119: "nntp", 143: "imap",
    389: "ldap", 443: "https", 587: "submission", 636: "ldaps", 993: "imaps", 995: "pops",
    1521: "oracle", 1812: "radius", 3128: "http_proxy", 3306: "mysql", 5060: "sip", 5432: "pgsql",
}  # fmt: skip
_SERVICE_PORTS = {name: port for port, name in _PORT_SERVICES.items()}


def port_to_service(port: int) -> str:
    """The negotiate service ldirectord assumes for a virtual port (``none`` when unknown)."""
    return _PORT_SERVICES.get(port, "none")


def service_to_port(service: str) -> int | None:
    """The well-known port of a negotiate service, used for checks when the real's port is 0."""
    return _SERVICE_PORTS.get(service)


class ConfigError(ValueError):
    """A configuration file that cannot be used, with the place and the reason.

    ``str()`` reads ``<file>:<line>: <problem>`` (``<file>: <problem>`` when no line applies), e.g.
    ``ldirectord.cf:12: invalid weight "abc" in real= line``.
    """

    def __init__(self, filename: str, line: int, problem: str) -> None:
        self.filename = filename
        self.line = line
        self.problem = problem
        where = f"{filename}:{line}" if line > 0 else filename
        super().__init__(f"{where}: {problem}")


@dataclass
class FallbackConfig:
    """A global ``fallback=`` / ``fallback6=``: the port is None when the line gave none, in which
    case each virtual uses its own port (ldirectord ``fallback_find``)."""

    af: int
    addr: str
    port: int | None
    fwd: int = int(FwdMethod.ROUTE)


@dataclass
class RealConfig:
    """One real server: what ``ipvsadm -a`` gets, plus the per-real check overrides.

    ``port`` is the port written in the file (0 when omitted). ``dest.port`` may differ from it:
    ipvsadm forces the service port for gate/ipip dests of non-fwmark services, and ldirectord still
    checks the written port.
    """

    dest: DestSpec
    port: int = 0
    request: str | None = None
    receive: str | None = None
    line: int = 0


@dataclass
class VirtualConfig:
    """One virtual service with its reals and fully resolved health-check settings."""

    spec: ServiceSpec
    reals: list[RealConfig] = field(default_factory=list)
    protocol: str = "tcp"  # tcp | udp | fwm (ldirectord's names)
    line: int = 0
    # Health check (ldirectord names and defaults).
    checktype: str = "negotiate"
    num_connects: int = 0  # checktype=N: a negotiate check after every N connect checks
    service: str = "none"
    request: str = "/"
    receive: str = ""
    httpmethod: str = "GET"
    virtualhost: str | None = None
    checkport: int | None = None
    login: str = ""
    passwd: str = ""
    database: str = ""
    secret: str = ""
    load: str | None = None
    checkcommand: str = "/bin/true"
    checktimeout: int = DEFAULT_CHECKTIMEOUT
    negotiatetimeout: int = DEFAULT_NEGOTIATETIMEOUT
    checkcount: int = 1
    failurecount: int = 1
    checkinterval: int = 10
    # Beyond ldirectord: checks a down server must pass in a row before it comes back (GLB's
    # rise; ldirectord has 1), and MISC_CHECK's misc_dynamic (exit 2..255 sets weight exit-2).
    rise: int = 1
    misc_dynamic: bool = False
    # Reaction to a down real, fallback and notification (each resolved against the globals).
    quiescent: bool = False
    cleanstop: bool = True
    fallback: DestSpec | None = None
    fallbackcommand: str | None = None
    emailalert: str = ""
    emailalertfreq: int = 0
    emailalertstatus: frozenset[str] = EMAIL_STATUSES
    smtp: str | None = None
    monitorfile: str | None = None
    servicename: str | None = None
    comment: str | None = None

    def dests(self) -> list[DestSpec]:
        """Copies of the reals' DestSpecs, in file order."""
        return [dataclasses.replace(r.dest) for r in self.reals]

    def request_for(self, real: RealConfig) -> str:
        return real.request if real.request is not None else self.request

    def receive_for(self, real: RealConfig) -> str:
        return real.receive if real.receive is not None else self.receive

    def check_port(self, real: RealConfig) -> int:
        """The port a check connects to (ldirectord ``ld_checkport``): checkport, else the real's
        written port, else the service's well-known port, else the dest port."""
        if self.checkport is not None:
            return self.checkport
        if real.port > 0:
            return real.port
        known = service_to_port(self.service)
        return known if known is not None else real.dest.port

    def ident(self) -> str:
        """ldirectord's virtual id (``get_virtual_id_str``): ``tcp:192.0.2.1:80``, ``fwm:1``."""
        if self.spec.fwmark:
            six = "6" if self.spec.af == AF_INET6 else ""
            return f"fwm{six}:{self.spec.fwmark}"
        host = f"[{self.spec.addr}]" if self.spec.af == AF_INET6 else self.spec.addr
        return f"{self.protocol}:{host}:{self.spec.port}"


@dataclass
class Config:
    """A whole configuration file: global settings and the virtual services, in file order."""

    source: str = "<string>"
    virtuals: list[VirtualConfig] = field(default_factory=list)
    # ldirectord globals with their set_defaults() values. checktimeout/negotiatetimeout stay None
    # when unset, because each falls back on the other before the built-in default.
    checkinterval: int = 10
    checktimeout: int | None = None
    negotiatetimeout: int | None = None
    checkcount: int = 1
    failurecount: int = 1
    autoreload: bool = False
    callback: str | None = None
    fallback: FallbackConfig | None = None
    fallback6: FallbackConfig | None = None
    fallbackcommand: str | None = None
    # None: not set in the file (ldirectord would log to /var/log/ldirectord.log; pylvsd keeps its
    # own logging then). A path, or a syslog facility such as "local0".
    logfile: str | None = None
    execute: list[str] = field(default_factory=list)
    fork: bool = False
    supervised: bool = False
    quiescent: bool = False  # the code's default; ldirectord's man page wrongly says yes
    readdquiescent: bool = False
    emailalert: str = ""
    emailalertfreq: int = 0
    emailalertstatus: frozenset[str] = EMAIL_STATUSES
    emailalertfrom: str | None = None
    cleanstop: bool = True
    smtp: str | None = None
    maintenancedir: str | None = None
    # ipvsadm --set tcp tcpfin udp (native format only; None leaves the engine's timeouts alone).
    timeouts: Timeouts | None = None
    # Non-fatal remarks ldirectord would log with config_warn() (keepalived: what it reports
    # and runs anyway).
    warnings: list[str] = field(default_factory=list)
    # What the file asks for that this pylvs parses but does not do yet (said at every load).
    not_run: list[str] = field(default_factory=list)
    # A keepalived.conf: everything beyond IPVS (checkers, quorum, VRRP), else None.
    keepalived: KeepalivedConfig | None = None

    def services(self) -> list[tuple[ServiceSpec, list[DestSpec]]]:
        """The ipvsadm-level view: each virtual service with all its configured reals (copies)."""
        return [(dataclasses.replace(v.spec), v.dests()) for v in self.virtuals]
