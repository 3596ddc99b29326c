"""The control surface of the engine: what ipvsadm can ask of IPVS, and what it gets back.

This mirrors ``ip_vs_ctl.c``: requests are plain dataclasses (:class:`ServiceSpec`,
:class:`DestSpec`), refusals are :class:`IPVSError` carrying the errno the kernel would return (so
``pylvsadm`` can print the same message ipvsadm prints for it), and listings are plain,
JSON-friendly snapshots (:class:`ServiceInfo`, :class:`DestInfo`, :class:`ConnInfo`) that the
control socket can carry as is.

Addresses cross this boundary as text (``"192.0.2.1"``, ``"2001:db8::1"``); the core keeps them as
integers.

:data:`OPERATIONS` is the one table of the control operations: their names, their arguments with the
:class:`Codec` that carries each across the control socket (and checks its types on the way in:
a request is untrusted input), the codec of the result, and what an operation touches. The
control socket's dispatch, its client, the forwarding to data-plane worker processes and the test
fakes are all driven by it, so adding an operation is one row here (plus its implementation in
:class:`pylvs.core.ipvs.IPVS` and its typed signature in :class:`ControlAPI`).
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from pylvs.core.service import AF_INET, AF_INET6, DEFAULT_PERSISTENT_TIMEOUT

__all__ = [
    "OPERATIONS",
    "OPERATION_BY_NAME",
    "Codec",
    "ConnInfo",
    "ControlAPI",
    "DaemonInfo",
    "DaemonSpec",
    "DestInfo",
    "DestSpec",
    "IPVSError",
    "Operation",
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

    ``limit`` marks a refusal of pylvs's own, of something kernel IPVS would accept (a backend
    that cannot serve a fwmark service, for example): ipvsadm has no message for it, so
    ``detail`` is what the operator is told.
    """

    def __init__(self, err: int, op: str = "", detail: str = "", limit: bool = False) -> None:
        self.errno = err
        self.op = op
        self.detail = detail
        self.limit = limit
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


# -- the operation table -------------------------------------------------------------------------

# Text fields of a request are names, addresses and states: nothing longer is legitimate.
_MAX_TEXT = 256


class Codec:
    """How one argument or result crosses the control socket.

    ``encode`` makes JSON-ready data of a value; ``decode`` makes the value again and, because a
    request comes from outside, checks every type on the way (TypeError with a message naming
    ``what``); ranges and meanings are the engine's to check, with IPVS's errnos.
    """

    def encode(self, value: Any) -> Any:
        return value

    def decode(self, data: Any, what: str) -> Any:
        return data


class _Spec(Codec):
    """A request dataclass (ServiceSpec, DestSpec, Timeouts, DaemonSpec): a JSON object whose
    fields each have the type of the field's default; missing fields take the default."""

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.types: dict[str, type[Any]] = {f.name: type(f.default) for f in fields(cls)}

    def encode(self, value: Any) -> Any:
        return asdict(value)

    def decode(self, data: Any, what: str) -> Any:
        name = self.cls.__name__
        if not isinstance(data, dict):
            raise TypeError(f"{what}: expected an object ({name})")
        unknown = sorted(str(k) for k in data if k not in self.types)
        if unknown:
            raise TypeError(f"{what}: unknown {name} fields: {', '.join(unknown)}")
        for key, value in data.items():
            expected = self.types[key]
            # bool is an int in Python and int is no bool: both are checked exactly.
            if type(value) is not expected:
                raise TypeError(f"{what}.{key}: expected {expected.__name__}")
            if isinstance(value, str) and (len(value) > _MAX_TEXT or "\0" in value):
                raise TypeError(f"{what}.{key}: not a valid name or address")
        return self.cls(**data)


class _Optional(Codec):
    def __init__(self, inner: Codec) -> None:
        self.inner = inner

    def encode(self, value: Any) -> Any:
        return None if value is None else self.inner.encode(value)

    def decode(self, data: Any, what: str) -> Any:
        return None if data is None else self.inner.decode(data, what)


class _Text(Codec):
    def decode(self, data: Any, what: str) -> Any:
        if not isinstance(data, str) or len(data) > _MAX_TEXT:
            raise TypeError(f"{what}: expected a string")
        return data


class _Listing(Codec):
    """A result: a dataclass (or a list of them) rebuilt by ``build`` on the client side."""

    def __init__(self, build: Callable[[Any], Any], many: bool) -> None:
        self.build = build
        self.many = many

    def encode(self, value: Any) -> Any:
        return [asdict(v) for v in value] if self.many else asdict(value)

    def decode(self, data: Any, what: str) -> Any:
        return [self.build(d) for d in data] if self.many else self.build(data)


class _Stats(Codec):
    """total_stats: ((conns, inpkts, outpkts, inbytes, outbytes), (cps, inpps, ...))."""

    def encode(self, value: Any) -> Any:
        stats, rates = value
        return [list(stats), list(rates)]

    def decode(self, data: Any, what: str) -> Any:
        stats, rates = data
        return tuple(stats), tuple(rates)


NOTHING = Codec()
SERVICE = _Spec(ServiceSpec)
DEST = _Spec(DestSpec)
TIMEOUTS = _Spec(Timeouts)
DAEMON = _Spec(DaemonSpec)
TEXT = _Text()


@dataclass(frozen=True)
class Operation:
    """One control operation.

    ``params``: (name, codec) of each argument in order (an ``_Optional`` one may be left out).
    ``replicated``: every data-plane engine applies it (each worker process has its own engine).
    ``rules``: it changes services or real servers, so the backend's packet rules follow.
    """

    name: str
    params: tuple[tuple[str, Codec], ...] = ()
    result: Codec = NOTHING
    replicated: bool = False
    rules: bool = False

    def encode_args(self, args: Sequence[Any]) -> dict[str, Any]:
        if len(args) > len(self.params):
            raise TypeError(f"{self.name}() takes {len(self.params)} arguments")
        return {self.params[i][0]: self.params[i][1].encode(v) for i, v in enumerate(args)}

    def decode_args(self, data: dict[str, Any]) -> list[Any]:
        unknown = sorted(str(k) for k in data if k not in dict(self.params))
        if unknown:
            raise TypeError(f"{self.name}: unknown arguments: {', '.join(unknown)}")
        values = []
        for name, codec in self.params:
            if name not in data and not isinstance(codec, _Optional):
                raise TypeError(f"{self.name}: missing argument {name!r}")
            values.append(codec.decode(data.get(name), name))
        return values


def _service_info(data: Any) -> ServiceInfo:
    return ServiceInfo.from_dict(data)


OPERATIONS: tuple[Operation, ...] = (
    Operation("add_service", (("spec", SERVICE),), replicated=True, rules=True),
    Operation("edit_service", (("spec", SERVICE),), replicated=True, rules=True),
    Operation("del_service", (("spec", SERVICE),), replicated=True, rules=True),
    Operation("add_dest", (("svc", SERVICE), ("dest", DEST)), replicated=True, rules=True),
    Operation("edit_dest", (("svc", SERVICE), ("dest", DEST)), replicated=True, rules=True),
    Operation("del_dest", (("svc", SERVICE), ("dest", DEST)), replicated=True, rules=True),
    Operation("flush", replicated=True, rules=True),
    Operation("zero", (("svc", _Optional(SERVICE)),), replicated=True),
    Operation("set_timeouts", (("timeouts", TIMEOUTS),), replicated=True),
    Operation("get_timeouts", result=_Listing(lambda d: Timeouts(**d), many=False)),
    Operation("services", result=_Listing(_service_info, many=True)),
    Operation("get_service", (("spec", SERVICE),), _Listing(_service_info, many=False)),
    Operation("conns", result=_Listing(lambda d: ConnInfo(**d), many=True)),
    Operation("total_stats", result=_Stats()),
    Operation("start_daemon", (("spec", DAEMON),)),
    Operation("stop_daemon", (("state", TEXT),)),
    Operation("daemons", result=_Listing(lambda d: DaemonInfo(**d), many=True)),
)
OPERATION_BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}
