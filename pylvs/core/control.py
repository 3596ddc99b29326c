"""The control surface of the engine: what ipvsadm can ask of IPVS, and what it gets back.

This mirrors ``ip_vs_ctl.c``: requests are plain dataclasses (:class:`ServiceSpec`,
:class:`DestSpec`), refusals are :class:`IPVSError` carrying the errno the kernel would return (so
``pylvsadm`` can print the same message ipvsadm prints for it), and listings are plain,
JSON-friendly snapshots (:class:`ServiceInfo`, :class:`DestInfo`, :class:`ConnInfo`) that the
control socket can carry as is.

Addresses cross this boundary as text (``"192.0.2.1"``, ``"2001:db8::1"``); the core keeps them as
integers.
"""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pylvs.core.service import AF_INET, AF_INET6, DEFAULT_PERSISTENT_TIMEOUT

__all__ = [
    "ConnInfo",
    "ControlAPI",
    "DaemonInfo",
    "DaemonSpec",
    "DestInfo",
    "DestSpec",
    "IPVSError",
    "ServiceInfo",
    "ServiceSpec",
    "Timeouts",
    "addr_from_text",
    "addr_to_text",
]


class IPVSError(Exception):
    """A refused control operation, with the errno IPVS would have returned.

    ``op`` names the operation as libipvs does (``add_service``, ``update_service``,
    ``del_service``, ``zero_service``, ``add_dest``, ``update_dest``, ``del_dest``,
    ``set_timeout``, ...) because ipvsadm's message depends on both (``ipvs_strerror``).
    """

    def __init__(self, err: int, op: str = "", detail: str = "") -> None:
        self.errno = err
        self.op = op
        self.detail = detail
        super().__init__(detail or f"{op}: {errno.errorcode.get(err, err)}")


def addr_from_text(text: str) -> tuple[int, int]:
    """``"192.0.2.1"`` -> ``(AF_INET, 0xC0000201)``; ValueError if it is not an IP address."""
    ip = ipaddress.ip_address(text)
    return (AF_INET if ip.version == 4 else AF_INET6, int(ip))


def addr_to_text(af: int, addr: int) -> str:
    if af == AF_INET:
        return str(ipaddress.IPv4Address(addr))
    return str(ipaddress.IPv6Address(addr))


@dataclass
class ServiceSpec:
    """What ``ipvsadm -A``/``-E`` sends: the service's identity and its settings.

    Identity: ``fwmark`` > 0, or ``(protocol, addr, port)``. ``persistent`` with ``timeout``
    seconds;
    ``netmask`` is a prefix length (ipvsadm's ``-M 255.255.255.0`` arrives as 24).
    ``sched_flags`` is the IP_VS_SVC_F_SCHED1/2/3 bits; ``ops`` is one-packet scheduling.
    """

    af: int = AF_INET
    protocol: int = 0
    addr: str = ""
    port: int = 0
    fwmark: int = 0
    scheduler: str = "wlc"
    persistent: bool = False
    timeout: int = DEFAULT_PERSISTENT_TIMEOUT
    netmask: int = 32
    sched_flags: int = 0
    ops: bool = False
    pe_name: str = ""

    def key(self) -> tuple[int, int, int, str, int]:
        return (self.fwmark, self.af, self.protocol, self.addr, self.port)


@dataclass
class DestSpec:
    """What ``ipvsadm -a``/``-e`` sends for one real server.

    ``fwd`` is a :class:`pylvs.core.service.FwdMethod` value (ROUTE = 3 is ipvsadm's default).
    """

    af: int = AF_INET
    addr: str = ""
    port: int = 0
    weight: int = 1
    fwd: int = 3
    u_threshold: int = 0
    l_threshold: int = 0
    tun_type: int = 0
    tun_port: int = 0
    tun_flags: int = 0


@dataclass
class DestInfo:
    """One real server as listed. ``stats`` = (conns, inpkts, outpkts, inbytes, outbytes) since the
    last zero; ``rates`` = (cps, inpps, outpps, inbps, outbps) from the estimator."""

    af: int
    addr: str
    port: int
    fwd: int
    weight: int
    u_threshold: int
    l_threshold: int
    activeconns: int
    inactconns: int
    persistconns: int
    tun_type: int = 0
    tun_port: int = 0
    tun_flags: int = 0
    stats: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    rates: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)


@dataclass
class ServiceInfo:
    """One virtual service as listed, with its dests in insertion order."""

    af: int
    protocol: int
    addr: str
    port: int
    fwmark: int
    scheduler: str
    flags: int
    timeout: int
    netmask: int
    pe_name: str = ""
    stats: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    rates: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    dests: list[DestInfo] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceInfo:
        data = dict(data)
        dests = [
            DestInfo(**{**d, "stats": tuple(d["stats"]), "rates": tuple(d["rates"])})
            for d in data.pop("dests")
        ]
        data["stats"] = tuple(data["stats"])
        data["rates"] = tuple(data["rates"])
        return cls(**data, dests=dests)


@dataclass
class ConnInfo:
    """One entry of the connection table as ``ipvsadm -Lc`` lists it.

    ``expires`` is the whole seconds left before expiry; ``state`` the IPVS state name
    (``ESTABLISHED``, ``UDP``, ``NONE`` for templates, ...). ``template`` marks a persistence
    template.
    """

    protocol: int
    af: int
    caddr: str
    cport: int
    vaddr: str
    vport: int
    daddr: str
    dport: int
    state: str
    expires: int
    fwd: int
    template: bool = False
    fwmark: int = 0
    pe_name: str = ""
    pe_data: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Timeouts:
    """The three timeouts ``ipvsadm --set`` changes, in seconds (0 in a request = leave as is)."""

    tcp: int = 900
    tcpfin: int = 120
    udp: int = 300


@dataclass
class DaemonSpec:
    """What ``ipvsadm --start-daemon`` sends (struct ipvs_daemon_user).

    ``state`` is ``"master"`` or ``"backup"``; zero or empty fields take the kernel's defaults
    (group 224.0.0.81, port 8848, TTL 1, maxlen from the interface's MTU).
    """

    state: str = "master"
    mcast_ifn: str = "eth0"
    syncid: int = 0
    sync_maxlen: int = 0
    mcast_group: str = ""
    mcast_port: int = 0
    mcast_ttl: int = 0


@dataclass
class DaemonInfo:
    """A running sync daemon as ``ipvsadm -L --daemon`` lists it, defaults filled in."""

    state: str
    mcast_ifn: str
    syncid: int
    sync_maxlen: int
    mcast_group: str
    mcast_port: int
    mcast_ttl: int


class ControlAPI(Protocol):
    """The operations ``pylvsadm`` needs, served by the engine in-process or by pylvsd.

    Every method raises :class:`IPVSError` where IPVS would refuse (``EEXIST`` for a service
    that already exists, ``ESRCH`` for a missing service, ``ENOENT`` for a missing dest or
    scheduler, ...). ``start_daemon`` refuses a second daemon of the same state with ``EEXIST``,
    ``stop_daemon`` one that does not run with ``ESRCH``.
    """

    def add_service(self, spec: ServiceSpec) -> None: ...
    def edit_service(self, spec: ServiceSpec) -> None: ...
    def del_service(self, spec: ServiceSpec) -> None: ...
    def add_dest(self, svc: ServiceSpec, dest: DestSpec) -> None: ...
    def edit_dest(self, svc: ServiceSpec, dest: DestSpec) -> None: ...
    def del_dest(self, svc: ServiceSpec, dest: DestSpec) -> None: ...
    def flush(self) -> None: ...
    def zero(self, svc: ServiceSpec | None = None) -> None: ...
    def set_timeouts(self, timeouts: Timeouts) -> None: ...
    def get_timeouts(self) -> Timeouts: ...
    def services(self) -> list[ServiceInfo]: ...
    def get_service(self, spec: ServiceSpec) -> ServiceInfo: ...
    def conns(self) -> list[ConnInfo]: ...
    def total_stats(self) -> tuple[tuple[int, ...], tuple[int, ...]]: ...
    def start_daemon(self, spec: DaemonSpec) -> None: ...
    def stop_daemon(self, state: str) -> None: ...
    def daemons(self) -> list[DaemonInfo]: ...
