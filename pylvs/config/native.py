"""pylvs.toml: the native configuration format.

One file describes everything ``ipvsadm`` can set up (services by TCP/UDP address and port or by
firewall mark, IPv4 and IPv6, scheduler and its flags, persistence timeout and netmask, one-packet
scheduling, persistence engine, the ``--set`` timeouts; real servers with forwarding method,
weight, thresholds and tunnel encapsulation) together with ldirectord's health-check settings,
under ldirectord's names and with ldirectord's fallbacks. docs/configuration.md has the reference.

Values must have their TOML type (a port is an integer, a flag a boolean); unknown keys are errors,
so that a typo is never silently ignored. Error messages name the line of the offending key.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any, NoReturn

from pylvs.core.control import DestSpec, ServiceSpec, Timeouts
from pylvs.core.service import (
    AF_INET,
    AF_INET6,
    DEFAULT_PERSISTENT_TIMEOUT,
    IPPROTO_TCP,
    IPPROTO_UDP,
    FwdMethod,
    TunType,
)

from ._resolve import (
    FORWARD_NAMES,
    INT_MAX,
    MAX_RANGE,
    MAX_REALS,
    MAX_TIMEOUT,
    Overrides,
    dest_port,
    expand_range,
    finish_virtual,
    netmask_prefix,
    range_size,
    resolve_host,
    sched_flags,
)
from .model import (
    EMAIL_STATUSES,
    SERVICES,
    Config,
    ConfigError,
    FallbackConfig,
    RealConfig,
    VirtualConfig,
)

__all__ = ["load_native", "parse_native"]

_TOP_KEYS = frozenset({"global", "timeouts", "virtual"})
_GLOBAL_INTS = ("checkinterval", "checktimeout", "negotiatetimeout", "checkcount", "failurecount")
_GLOBAL_BOOLS = ("autoreload", "fork", "supervised", "quiescent", "readdquiescent", "cleanstop")
_GLOBAL_STRS = (
    "callback", "fallbackcommand", "logfile", "emailalert", "emailalertfrom", "smtp",
    "maintenancedir",
)  # fmt: skip
_GLOBAL_KEYS = frozenset(
    (*_GLOBAL_INTS, *_GLOBAL_BOOLS, *_GLOBAL_STRS, "fallback", "fallback6", "execute",
     "emailalertfreq", "emailalertstatus")
)  # fmt: skip
_VIRTUAL_KEYS = frozenset({
    "address", "port", "protocol", "fwmark", "family", "scheduler", "sched_flags", "persistent",
    "netmask", "ops", "pe", "real",
    "checktype", "service", "request", "receive", "httpmethod", "virtualhost", "checkport",
    "login", "passwd", "database", "secret", "load", "checkcommand", "checktimeout",
    "negotiatetimeout", "checkcount", "failurecount", "checkinterval", "quiescent", "cleanstop",
    "rise", "misc_path", "misc_dynamic", "fallback", "fallbackcommand", "emailalert",
    "emailalertfreq", "emailalertstatus", "smtp", "monitorfile", "servicename", "comment",
})  # fmt: skip
_REAL_KEYS = frozenset({
    "address", "port", "forward", "weight", "u_threshold", "l_threshold", "tun_type", "tun_port",
    "tun_csum", "request", "receive",
})  # fmt: skip
_FALLBACK_KEYS = frozenset({"address", "port", "forward"})
_CHECKTYPES = ("connect", "negotiate", "ping", "off", "on", "external", "external-perl", "misc")
_TUN_TYPES = {"ipip": int(TunType.IPIP), "gue": int(TunType.GUE), "gre": int(TunType.GRE)}
# IP_VS_TUNNEL_ENCAP_FLAG_{NOCSUM,CSUM,REMCSUM} (include/uapi/linux/ip_vs.h), ipvsadm --tun-*.
_TUN_CSUM = {"nocsum": 0, "csum": 1, "remcsum": 2}

_TYPE_NAMES = {
    bool: "a boolean", int: "an integer", str: "a string", list: "an array", dict: "a table",
    float: "a float",
}  # fmt: skip


class _Lines:
    """Where each key of a TOML document sits, for error messages (tomllib gives no positions).

    Sections are named as the parser names them: ``global``, ``virtual[0]``,
    ``virtual[0].real[1]``, ``virtual[0].fallback``. Keys written as dotted keys or inside inline
    tables fall back on the line of their section's header.
    """

    _ARRAY = re.compile(r"\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]")
    _TABLE = re.compile(r"\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
    _KEY = re.compile(r"\s*([A-Za-z0-9_-]+)\s*=")

    def __init__(self, text: str) -> None:
        self.keys: dict[tuple[str, str], int] = {}
        self.headers: dict[str, int] = {}
        section = ""
        virtual = real = -1
        for number, line in enumerate(text.split("\n"), start=1):
            m = self._ARRAY.match(line)
            if m:
                name = m.group(1)
                if name == "virtual":
                    virtual += 1
                    real = -1
                    section = f"virtual[{virtual}]"
                elif name == "virtual.real":
                    real += 1
                    section = f"virtual[{virtual}].real[{real}]"
                else:
                    section = name
                self.headers.setdefault(section, number)
                continue
            m = self._TABLE.match(line)
            if m:
                name = m.group(1)
                if name.startswith("virtual.") and virtual >= 0:
                    section = f"virtual[{virtual}].{name[len('virtual.') :]}"
                else:
                    section = name
                self.headers.setdefault(section, number)
                continue
            m = self._KEY.match(line)
            if m:
                self.keys.setdefault((section, m.group(1)), number)

    def find(self, section: str, key: str | None = None) -> int:
        if key is not None and (section, key) in self.keys:
            return self.keys[(section, key)]
        while section:
            if section in self.headers:
                return self.headers[section]
            section = section.rpartition(".")[0]
        return 0


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class _Builder:
    def __init__(self, text: str, filename: str, data: dict[str, Any]) -> None:
        self.filename = filename
        self.lines = _Lines(text)
        self.data = data
        self.cfg = Config(source=filename)
        self.reals = 0  # real servers so far, ranges expanded (MAX_REALS)

    def fail(self, section: str, key: str | None, problem: str) -> NoReturn:
        raise ConfigError(self.filename, self.lines.find(section, key), problem)

    # --- typed access ---------------------------------------------------------------------------

    def check_keys(self, section: str, table: dict[str, Any], allowed: frozenset[str]) -> None:
        for key in table:
            if key not in allowed:
                self.fail(section, key, f'unknown key "{key}" in [{section}]')

    def typed(self, section: str, table: dict[str, Any], key: str, kind: type) -> Any:
        value = table.get(key)
        # bool is an int subclass in Python; TOML keeps them apart, and so do we.
        if value is not None and (type(value) is not kind):
            self.fail(
                section,
                key,
                f"{section}.{key} must be {_TYPE_NAMES[kind]}, not {_type_name(value)}",
            )
        return value

    def integer(
        self, section: str, table: dict[str, Any], key: str, low: int = 0, high: int = INT_MAX
    ) -> int | None:
        value: int | None = self.typed(section, table, key, int)
        if value is not None and not low <= value <= high:
            self.fail(section, key, f"{section}.{key} must be in {low}..{high}, not {value}")
        return value

    def boolean(self, section: str, table: dict[str, Any], key: str) -> bool | None:
        value: bool | None = self.typed(section, table, key, bool)
        return value

    def string(
        self, section: str, table: dict[str, Any], key: str, empty: bool = False
    ) -> str | None:
        value: str | None = self.typed(section, table, key, str)
        if value is not None and not value and not empty:
            self.fail(section, key, f"{section}.{key} must not be empty")
        return value

    def strings(self, section: str, table: dict[str, Any], key: str) -> list[str] | None:
        value = table.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(section, key, f"{section}.{key} must be a string or an array of strings")
        return list(value)

    def subtable(self, section: str, table: dict[str, Any], key: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.typed(section, table, key, dict)
        return value

    # --- document -------------------------------------------------------------------------------

    def build(self) -> Config:
        self.check_keys("", self.data, _TOP_KEYS)
        glob = self.subtable("", self.data, "global")
        if glob is not None:
            self.globals(glob)
        timeouts = self.subtable("", self.data, "timeouts")
        if timeouts is not None:
            self.check_keys("timeouts", timeouts, frozenset({"tcp", "tcpfin", "udp"}))
            self.cfg.timeouts = Timeouts(
                tcp=self.integer("timeouts", timeouts, "tcp") or 0,
                tcpfin=self.integer("timeouts", timeouts, "tcpfin") or 0,
                udp=self.integer("timeouts", timeouts, "udp") or 0,
            )
        virtuals = self.data.get("virtual", [])
        if not isinstance(virtuals, list) or not all(isinstance(v, dict) for v in virtuals):
            self.fail("virtual", None, "virtual must be an array of tables ([[virtual]])")
        seen: dict[str, int] = {}
        for index, table in enumerate(virtuals):
            v = self.virtual(f"virtual[{index}]", table)
            ident = v.ident()
            if ident in seen:
                self.fail(f"virtual[{index}]", None, f"duplicate virtual server {ident}")
            seen[ident] = index
            self.cfg.virtuals.append(v)
        return self.cfg

    def globals(self, g: dict[str, Any]) -> None:
        cfg, sec = self.cfg, "global"
        self.check_keys(sec, g, _GLOBAL_KEYS)
        if (n := self.integer(sec, g, "checkinterval", 1)) is not None:
            cfg.checkinterval = n
        cfg.checktimeout = self.integer(sec, g, "checktimeout", 1)
        cfg.negotiatetimeout = self.integer(sec, g, "negotiatetimeout", 1)
        if (n := self.integer(sec, g, "checkcount", 1)) is not None:
            cfg.checkcount = n
        if (n := self.integer(sec, g, "failurecount", 1)) is not None:
            cfg.failurecount = n
        if (n := self.integer(sec, g, "emailalertfreq")) is not None:
            cfg.emailalertfreq = n
        for key in _GLOBAL_BOOLS:
            flag = self.boolean(sec, g, key)
            if flag is not None:
                setattr(cfg, key, flag)
        cfg.callback = self.string(sec, g, "callback")
        cfg.fallbackcommand = self.string(sec, g, "fallbackcommand")
        cfg.logfile = self.string(sec, g, "logfile") or cfg.logfile
        cfg.emailalert = self.string(sec, g, "emailalert") or ""
        cfg.emailalertfrom = self.string(sec, g, "emailalertfrom")
        cfg.smtp = self.string(sec, g, "smtp")
        cfg.maintenancedir = self.string(sec, g, "maintenancedir")
        cfg.execute = self.strings(sec, g, "execute") or []
        if (status := self.email_status(sec, g)) is not None:
            cfg.emailalertstatus = status
        for key, af in (("fallback", AF_INET), ("fallback6", AF_INET6)):
            table = self.subtable(sec, g, key)
            if table is not None:
                fb = self.fallback(f"{sec}.{key}", table, af)
                if af == AF_INET:
                    cfg.fallback = fb
                else:
                    cfg.fallback6 = fb

    def email_status(self, sec: str, table: dict[str, Any]) -> frozenset[str] | None:
        names = self.strings(sec, table, "emailalertstatus")
        if names is None:
            return None
        if names == ["none"]:
            return frozenset()
        status: set[str] = set()
        for name in names:
            if name == "all":
                status |= EMAIL_STATUSES
            elif name in EMAIL_STATUSES:
                status.add(name)
            else:
                self.fail(sec, "emailalertstatus", f'invalid email alert status "{name}"')
        return frozenset(status)

    def forward(self, sec: str, table: dict[str, Any], default: str) -> int:
        name = self.string(sec, table, "forward") or default
        if name not in FORWARD_NAMES:
            self.fail(
                sec,
                "forward",
                f'{sec}.forward must be gate, masq or ipip (or route, tunnel), not "{name}"',
            )
        return FORWARD_NAMES[name]

    def address(self, sec: str, table: dict[str, Any], af: int | None) -> tuple[int, str]:
        name = self.string(sec, table, "address")
        if name is None:
            self.fail(sec, None, f"{sec} needs an address")
        try:
            ip = ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            ip = None
        if ip is not None:
            return (AF_INET if ip.version == 4 else AF_INET6), str(ip)
        addr = resolve_host(name, af or AF_INET)
        if addr is None:
            self.fail(sec, "address", f'{sec}.address: cannot resolve "{name}"')
        return (af or AF_INET), addr

    def fallback(self, sec: str, table: dict[str, Any], af: int) -> FallbackConfig:
        self.check_keys(sec, table, _FALLBACK_KEYS)
        fam, addr = self.address(sec, table, af)
        if fam != af:
            self.fail(sec, "address", f"{sec}.address is not an IPv{af} address")
        port = self.integer(sec, table, "port", 0, 65535)
        return FallbackConfig(af=af, addr=addr, port=port, fwd=self.forward(sec, table, "gate"))

    # --- virtual services -----------------------------------------------------------------------

    def virtual(self, sec: str, t: dict[str, Any]) -> VirtualConfig:
        self.check_keys(sec, t, _VIRTUAL_KEYS)
        fwmark = self.integer(sec, t, "fwmark", 1, 2**32 - 1)
        family = self.string(sec, t, "family")
        if family is not None and family not in ("inet", "inet6"):
            self.fail(sec, "family", f'{sec}.family must be "inet" or "inet6"')
        spec = ServiceSpec(scheduler="wlc")
        v = VirtualConfig(spec=spec, line=self.lines.find(sec))
        if fwmark is not None:
            for key in ("address", "port", "protocol"):
                if key in t:
                    self.fail(sec, key, f"{sec}: a fwmark service has no {key}")
            spec.fwmark = fwmark
            spec.af = AF_INET6 if family == "inet6" else AF_INET
            v.protocol = "fwm"
        else:
            if "address" not in t or "port" not in t:
                self.fail(sec, None, f"{sec} needs address and port, or fwmark")
            if family is not None:
                self.fail(sec, "family", f"{sec}.family is only for fwmark services")
            spec.af, spec.addr = self.address(sec, t, None)
            spec.port = self.integer(sec, t, "port", 0, 65535) or 0
            # ldirectord's default: udp for DNS, tcp otherwise.
            proto = self.string(sec, t, "protocol") or ("udp" if spec.port == 53 else "tcp")
            if proto not in ("tcp", "udp"):
                self.fail(sec, "protocol", f'{sec}.protocol must be "tcp" or "udp"')
            v.protocol = proto
            spec.protocol = IPPROTO_UDP if proto == "udp" else IPPROTO_TCP

        scheduler = self.string(sec, t, "scheduler")
        if scheduler is not None:
            if not re.fullmatch(r"[a-z]+", scheduler):
                self.fail(sec, "scheduler", f'{sec}.scheduler: "{scheduler}" is not a name')
            spec.scheduler = scheduler
        names = self.strings(sec, t, "sched_flags")
        if names is not None:
            flags = sched_flags(names)
            if flags is None:
                self.fail(sec, "sched_flags", f"{sec}.sched_flags: unknown flag in {names}")
            spec.sched_flags = flags
        persistent = t.get("persistent")
        if persistent is not None:
            if type(persistent) is bool:
                spec.persistent = persistent
            else:
                timeout = self.integer(sec, t, "persistent", 1, MAX_TIMEOUT)
                spec.persistent, spec.timeout = True, timeout or DEFAULT_PERSISTENT_TIMEOUT
        spec.netmask = 128 if spec.af == AF_INET6 else 32
        mask = t.get("netmask")
        if mask is not None:
            prefix = netmask_prefix(str(mask), spec.af) if type(mask) in (int, str) else None
            if prefix is None:
                self.fail(
                    sec, "netmask", f"{sec}.netmask must be a prefix length or an IPv4 netmask"
                )
            spec.netmask = prefix
        ops = self.boolean(sec, t, "ops")
        if ops:
            # ipvsadm: one-packet scheduling is for UDP services (and fwmark ones).
            if v.protocol == "tcp":
                self.fail(sec, "ops", "one-packet scheduling (ops) is only for UDP services")
            spec.ops = True
        pe = self.string(sec, t, "pe")
        if pe is not None:
            if not re.fullmatch(r"[a-z]+", pe):
                self.fail(sec, "pe", f'{sec}.pe "{pe}" is not a persistence engine name')
            # IPVS has one (sip, ip_vs_pe_sip); pylvs has none yet, and the engine would refuse
            # the service when the file is applied: say so here, with the line.
            self.fail(sec, "pe", f'{sec}.pe "{pe}": persistence engines are not supported')

        o = self.checks(sec, t, v)
        reals = t.get("real", [])
        if not isinstance(reals, list) or not all(isinstance(r, dict) for r in reals):
            self.fail(sec, "real", f"{sec}.real must be an array of tables ([[virtual.real]])")
        for index, table in enumerate(reals):
            v.reals.extend(self.real(f"{sec}.real[{index}]", table, spec))

        def fail(line: int, problem: str) -> NoReturn:
            raise ConfigError(self.filename, line, problem)

        finish_virtual(v, o, self.cfg, fail)
        return v

    def checks(self, sec: str, t: dict[str, Any], v: VirtualConfig) -> Overrides:
        """The health-check settings of a virtual (ldirectord's names and meanings)."""
        o = Overrides()
        checktype = t.get("checktype")
        if checktype is not None:
            if type(checktype) is int and 0 <= checktype <= INT_MAX:
                v.checktype, v.num_connects = "combined", checktype
            elif checktype in _CHECKTYPES:
                v.checktype = checktype
            else:
                self.fail(
                    sec,
                    "checktype",
                    f"{sec}.checktype must be one of {', '.join(_CHECKTYPES)} or a number",
                )
        service = self.string(sec, t, "service")
        if service is not None and service not in SERVICES:
            known = ", ".join(SERVICES)
            self.fail(sec, "service", f'{sec}.service "{service}" is not one of {known}')
        o.service = service
        request = self.string(sec, t, "request")
        if request is not None:
            v.request = request if request.startswith("/") else "/" + request
        v.receive = self.string(sec, t, "receive", empty=True) or ""
        method = self.string(sec, t, "httpmethod")
        if method is not None:
            if method.upper() not in ("GET", "HEAD"):
                self.fail(sec, "httpmethod", f"{sec}.httpmethod must be GET or HEAD")
            v.httpmethod = method.upper()
        v.virtualhost = self.string(sec, t, "virtualhost")
        v.checkport = self.integer(sec, t, "checkport", 1, 65535)
        o.login = self.string(sec, t, "login")
        o.passwd = self.string(sec, t, "passwd")
        v.database = self.string(sec, t, "database") or ""
        v.secret = self.string(sec, t, "secret") or ""
        v.load = self.string(sec, t, "load")
        v.checkcommand = self.string(sec, t, "checkcommand") or v.checkcommand
        o.checktimeout = self.integer(sec, t, "checktimeout", 1)
        o.negotiatetimeout = self.integer(sec, t, "negotiatetimeout", 1)
        o.checkcount = self.integer(sec, t, "checkcount", 1)
        o.failurecount = self.integer(sec, t, "failurecount", 1)
        v.rise = self.integer(sec, t, "rise", 1) or 1
        misc_path = self.string(sec, t, "misc_path")
        if misc_path is not None:
            v.checkcommand = misc_path
        v.misc_dynamic = bool(self.boolean(sec, t, "misc_dynamic"))
        if v.checktype == "misc" and misc_path is None:
            self.fail(sec, "misc_path", f"{sec}.misc_path is needed with checktype misc")
        o.checkinterval = self.integer(sec, t, "checkinterval", 1)
        o.quiescent = self.boolean(sec, t, "quiescent")
        o.cleanstop = self.boolean(sec, t, "cleanstop")
        table = self.subtable(sec, t, "fallback")
        if table is not None:
            o.fallback = self.fallback(f"{sec}.fallback", table, v.spec.af)
        o.fallbackcommand = self.string(sec, t, "fallbackcommand")
        o.emailalert = self.string(sec, t, "emailalert")
        o.emailalertfreq = self.integer(sec, t, "emailalertfreq")
        o.emailalertstatus = self.email_status(sec, t)
        o.smtp = self.string(sec, t, "smtp")
        v.monitorfile = self.string(sec, t, "monitorfile")
        v.servicename = self.string(sec, t, "servicename", empty=True)
        v.comment = self.string(sec, t, "comment", empty=True)
        return o

    def real(self, sec: str, t: dict[str, Any], spec: ServiceSpec) -> list[RealConfig]:
        self.check_keys(sec, t, _REAL_KEYS)
        name = self.string(sec, t, "address")
        if name is None:
            self.fail(sec, None, f"{sec} needs an address")
        fwd = self.forward(sec, t, "gate")
        first, arrow, last = name.partition("->")
        af, addr = self.address(sec, {"address": first.strip()}, spec.af)
        # A dest of another family than its service needs a tunnel (IPVS mixed-family support:
        # ip_vs_ctl.c refuses it for other methods, ipvsadm says so before asking the kernel).
        if af != spec.af and fwd != FwdMethod.TUNNEL:
            self.fail(
                sec,
                "address",
                f"{sec}.address: a real server of another address family needs forward = ipip "
                "(Different address family is allowed only for tunneling servers)",
            )
        addrs = [addr]
        if arrow:
            end_af, end = self.address(sec, {"address": last.strip()}, spec.af)
            if af != AF_INET or end_af != AF_INET or not 0 < range_size(addr, end) <= MAX_RANGE:
                self.fail(sec, "address", f'{sec}.address: invalid IPv4 range "{name}"')
            addrs = expand_range(addr, end) or []
        self.reals += len(addrs)
        if self.reals > MAX_REALS:
            self.fail(sec, "address", f"{sec}: more than {MAX_REALS} real servers in the file")
        port = self.integer(sec, t, "port", 0, 65535) or 0
        weight = self.integer(sec, t, "weight", 0, 65535)
        upper = self.integer(sec, t, "u_threshold") or 0
        lower = self.integer(sec, t, "l_threshold") or 0
        tun_type = tun_port = tun_flags = 0
        tun_name = self.string(sec, t, "tun_type")
        tun_port_value = self.integer(sec, t, "tun_port", 1, 65535)
        csum = self.string(sec, t, "tun_csum")
        if (tun_name or tun_port_value or csum) and fwd != FwdMethod.TUNNEL:
            self.fail(sec, "tun_type", f"{sec}: tunnel settings need forward = ipip")
        if tun_name is not None:
            if tun_name not in _TUN_TYPES:
                self.fail(sec, "tun_type", f'{sec}.tun_type must be "ipip", "gue" or "gre"')
            tun_type = _TUN_TYPES[tun_name]
            if tun_type != TunType.IPIP:
                # ipvsadm knows them; pylvs encapsulates in IPIP only.
                self.fail(
                    sec, "tun_type", f"{sec}.tun_type {tun_name} is not supported (only ipip)"
                )
        # ipvsadm: GUE needs a destination port; the other encapsulations have none.
        if tun_type == TunType.GUE:
            if tun_port_value is None:
                self.fail(sec, "tun_type", f"{sec}: tun_type gue needs tun_port")
            tun_port = tun_port_value
        elif tun_port_value is not None:
            self.fail(sec, "tun_port", f"{sec}.tun_port is only for tun_type gue")
        if csum is not None:
            if csum not in _TUN_CSUM:
                self.fail(sec, "tun_csum", f'{sec}.tun_csum must be "nocsum", "csum" or "remcsum"')
            if tun_type == TunType.IPIP:
                self.fail(sec, "tun_csum", f"{sec}.tun_csum is only for tun_type gue or gre")
            tun_flags = _TUN_CSUM[csum]
        request = self.string(sec, t, "request")
        if request is not None and not request.startswith("/"):
            request = "/" + request
        receive = self.string(sec, t, "receive", empty=True)
        line = self.lines.find(sec)
        return [
            RealConfig(
                dest=DestSpec(
                    af=af,
                    addr=a,
                    port=dest_port(spec, fwd, port),
                    weight=1 if weight is None else weight,
                    fwd=fwd,
                    u_threshold=upper,
                    l_threshold=lower,
                    tun_type=tun_type,
                    tun_port=tun_port,
                    tun_flags=tun_flags,
                ),
                port=port,
                request=request,
                receive=receive,
                line=line,
            )
            for a in addrs
        ]


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def parse_native(text: str, filename: str = "<string>") -> Config:
    """Parse the text of a pylvs.toml; raise :class:`ConfigError` naming the line on error."""
    try:
        data = tomllib.loads(text)
    except ValueError as exc:
        # TOMLDecodeError, and the ValueError of an integer of more than 4,300 digits (the
        # int() limit), which tomllib lets out as it is.
        if not isinstance(exc, tomllib.TOMLDecodeError):
            raise ConfigError(filename, 0, f"TOML: {str(exc)[:200]}") from None
        message = str(exc)
        m = _TOML_POSITION.search(message)
        if m:
            problem = f"{message[: m.start()]} (column {m.group(2)})"
            raise ConfigError(filename, int(m.group(1)), f"TOML: {problem}") from None
        message = message.replace(" (at end of document)", " at end of document")
        raise ConfigError(filename, text.count("\n") + 1, f"TOML: {message}") from None
    return _Builder(text, filename, data).build()


def load_native(path: str | Path) -> Config:
    """Read and parse a pylvs.toml file."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(name, 0, f"can not open file {name}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(name, line, "TOML: the file is not UTF-8 text") from None
    return parse_native(text, name)
