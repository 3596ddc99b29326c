"""ldirectord.cf: the format of ldirectord (resource-agents, "Linux Director v1.186-ha").

The rules follow ldirectord's ``read_config`` and its helpers:

* Global directives start at column 0 as ``key = value`` (spaces around ``=`` optional).
* ``virtual=`` / ``virtual6=`` opens a section; the lines after it belong to it while they are
  indented by at least 4 spaces (a tab counts as 4). A comment line keeps the section open; any
  other line, a blank one included, closes it.
* ``#`` starts a comment (ldirectord strips ``#.*`` from section lines, so a ``#`` cannot appear
  inside a quoted request or receive string either).
* Deprecated directives (``timeout``, ``connecttimeout``) are fatal with ldirectord's messages.

Where ldirectord's unanchored regexes silently accept a malformed value (``virtual=10.0.0.1``
without a port becomes firewall mark 10; ``weight`` is searched anywhere in the rest of a real
line) this parser requires the whole value to be well formed and reports the line instead.
Settings that ldirectord checks by touching the system (opening ``logfile`` or ``monitorfile``,
testing that ``maintenancedir`` exists) are only recorded here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.service import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP

from ._resolve import (
    FORWARD_NAMES,
    MAX_RANGE,
    MAX_REALS,
    MAX_TIMEOUT,
    HostResolver,
    Overrides,
    PortResolver,
    dest_port,
    expand_range,
    finish_virtual,
    netmask_prefix,
    parse_int,
    range_size,
    resolve_host,
    resolve_port,
    sched_flags,
)
from .model import EMAIL_STATUSES, SERVICES, Config, ConfigError, FallbackConfig, RealConfig
from .model import VirtualConfig as _Virtual

__all__ = ["load_ldirectord", "parse_ldirectord"]

_VIRTUAL_RE = re.compile(r"virtual(6)?\s*=\s*(.*)")
_DIRECTIVE_RE = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*)")
_PORT = r"[0-9A-Za-z_-]+"
_V4_PORT_RE = re.compile(rf"(\d+\.\d+\.\d+\.\d+):({_PORT})")
_HOST_PORT_RE = re.compile(rf"([0-9A-Za-z._+-]+):({_PORT})")
_V6_PORT_RE = re.compile(rf"\[([0-9A-Fa-f:.]+)\]:({_PORT})")
_FWMARK_RE = re.compile(r"\d+")
_ADDR = r"\d+\.\d+\.\d+\.\d+|[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]"
_REAL_RE = re.compile(rf"({_ADDR})(?:->({_ADDR}))?(?::({_PORT}))?(?:\s+(.*))?")
_REQ_RECV_RE = re.compile(r'"(.*)"[, ]\s*"(.*)"(.*)')
_FALLBACK_PORT_RE = re.compile(rf":({_PORT})$")

_TRUE_FALSE = {"yes": True, "no": False}
_GLOBAL_FLAGS = ("autoreload", "fork", "supervised", "quiescent", "readdquiescent", "cleanstop")
_STRING_ERRORS = {
    "login": "invalid login string",
    "passwd": "invalid password",
    "database": "invalid database",
    "secret": "invalid secret",
}
_CHECKTYPE_ERROR = (
    'checktype must be "connect", "negotiate", "on", "off", "ping", "external", '
    '"external-perl" or a positive number'
)
_SERVICE_ERROR = "service must be " + ", ".join(SERVICES[:-1]) + " or " + SERVICES[-1]


@dataclass
class _Pending:
    """A real= line kept until the end of its section, when the protocol is final."""

    text: str
    line: int


def _strip_comment(text: str) -> str:
    pos = text.find("#")
    return text if pos < 0 else text[:pos]


def _quoted(value: str) -> str | None:
    """The text between the first and the last double quote of ``"..."``, else None."""
    m = re.match(r'"(.*)"', value)
    return m.group(1) if m else None


def _unquote(value: str) -> str:
    """Strip one pair of enclosing double quotes, if there is one."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


class _Parser:
    def __init__(self, text: str, filename: str, host: HostResolver, port: PortResolver) -> None:
        # Perl reads lines ending in "\n"; "\r" of DOS files is whitespace to its regexes.
        self.lines = [line.rstrip("\r") for line in text.split("\n")]
        self.filename = filename
        self.resolve_host = host
        self.resolve_port = port
        self.cfg = Config(source=filename)
        self.seen: dict[str, int] = {}
        self.reals = 0  # real servers so far, ranges expanded (MAX_REALS)

    def fail(self, line: int, problem: str) -> NoReturn:
        raise ConfigError(self.filename, line, problem)

    def warn(self, line: int, problem: str) -> None:
        self.cfg.warnings.append(f"{self.filename}:{line}: {problem}")

    # --- the file -------------------------------------------------------------------------------

    def parse(self) -> Config:
        i = 0
        while i < len(self.lines):
            raw = self.lines[i]
            m = _VIRTUAL_RE.match(raw)
            if m:
                i = self.virtual_section(i, AF_INET6 if m.group(1) else AF_INET, m.group(2))
                continue
            text = _strip_comment(raw).rstrip()
            if text.strip():
                if text[0].isspace():
                    self.fail(
                        i + 1,
                        f'indented line outside a virtual section: "{text.strip()}" '
                        "(a virtual section ends at the first blank or unindented line)",
                    )
                self.global_line(i + 1, text)
            i += 1
        return self.cfg

    # --- globals --------------------------------------------------------------------------------

    def global_line(self, line: int, text: str) -> None:
        cfg = self.cfg
        if text.rstrip() == "supervised":
            cfg.supervised = True
            self.warn(line, "please update your config not to use a bare supervised directive")
            return
        m = _DIRECTIVE_RE.fullmatch(text)
        if not m:
            self.fail(line, f'Unknown command "{text}"')
        key, value = m.group(1), m.group(2).strip()
        if key == "checktimeout":
            cfg.checktimeout = self.number(line, value, "invalid check timeout value")
        elif key == "negotiatetimeout":
            cfg.negotiatetimeout = self.number(line, value, "invalid negotiate timeout value")
        elif key == "checkinterval":
            cfg.checkinterval = self.number(line, value, "invalid check interval value")
        elif key == "checkcount":
            cfg.checkcount = self.number(line, value, "invalid check count value")
            self.warn(line, _CHECKCOUNT_WARNING)
        elif key == "failurecount":
            cfg.failurecount = self.number(line, value, "invalid failure count value")
        elif key in ("fallback", "fallback6"):
            af = AF_INET6 if key == "fallback6" else AF_INET
            fb = self.fallback(line, value, af, "")
            if af == AF_INET:
                cfg.fallback = fb
            else:
                cfg.fallback6 = fb
        elif key == "fallbackcommand":
            cfg.fallbackcommand = self.nonempty(line, _unquote(value), "invalid fallback command")
        elif key in _GLOBAL_FLAGS:
            flag = self.yes_no(line, value, key)
            if key == "autoreload":
                cfg.autoreload = flag
            elif key == "fork":
                cfg.fork = flag
            elif key == "supervised":
                cfg.supervised = flag
            elif key == "quiescent":
                cfg.quiescent = flag
            elif key == "readdquiescent":
                cfg.readdquiescent = flag
            else:
                cfg.cleanstop = flag
        elif key == "callback":
            cfg.callback = self.required_quotes(line, text, value)
        elif key == "logfile":
            cfg.logfile = self.nonempty(
                line, self.required_quotes(line, text, value), "invalid logfile"
            )
        elif key == "execute":
            cfg.execute.append(self.nonempty(line, _unquote(value), "invalid execute directive"))
        elif key == "emailalert":
            cfg.emailalert = self.emailalert(line, value)
        elif key == "emailalertfreq":
            cfg.emailalertfreq = self.frequency(line, value)
        elif key == "emailalertstatus":
            cfg.emailalertstatus = self.email_status(line, value)
        elif key == "emailalertfrom":
            cfg.emailalertfrom = self.nonempty(line, value, "no email from address specified")
        elif key == "smtp":
            cfg.smtp = self.smtp(line, value)
        elif key == "maintenancedir":
            cfg.maintenancedir = self.nonempty(
                line, _unquote(value), "maintenance directory not specified"
            )
        elif key == "timeout":
            self.fail(
                line,
                "timeout directive deprecated in favour of checktimeout and negotiatetimeout",
            )
        elif key == "connecttimeout":
            self.fail(line, _CONNECTTIMEOUT_ERROR)
        else:
            self.fail(line, f'Unknown command "{text}"')

    # --- value helpers --------------------------------------------------------------------------

    def number(self, line: int, value: str, problem: str, high: int = 2**31 - 1) -> int:
        """A positive integer; ldirectord refuses 0 for counts, intervals and timeouts."""
        n = parse_int(value, 1, high)
        if n is None:
            self.fail(line, problem)
        return n

    def nonempty(self, line: int, value: str, problem: str) -> str:
        if not value:
            self.fail(line, problem)
        return value

    def yes_no(self, line: int, value: str, key: str) -> bool:
        flag = _TRUE_FALSE.get(value)
        if flag is None:
            self.fail(line, f"{key} must be 'yes' or 'no'")
        return flag

    def required_quotes(self, line: int, text: str, value: str) -> str:
        inner = _quoted(value)
        if inner is None:
            # ldirectord only knows the quoted form of these; anything else is not a directive.
            self.fail(line, f'Unknown command "{text}"')
        return inner

    def emailalert(self, line: int, value: str) -> str:
        return self.nonempty(line, _unquote(value), "no email address specified")

    def frequency(self, line: int, value: str) -> int:
        n = parse_int(value)
        if n is None:
            self.fail(line, "invalid email alert frequency")
        return n

    def email_status(self, line: int, value: str) -> frozenset[str]:
        """ldirectord parse_emailalertstatus: a comma list of states, ``all`` or ``none``."""
        names = [n for n in re.split(r"\s*,\s*", value.strip())]
        status: set[str] = set()
        has_none = "none" in names
        for name in names:
            if name == "none":
                continue
            if name == "all":
                status |= EMAIL_STATUSES
            elif name in EMAIL_STATUSES:
                status.add(name)
            else:
                self.fail(line, f'invalid email alert status at: "{name}"')
            if has_none:
                self.fail(line, f'invalid email alert status: "{name}" specified with "none"')
        return frozenset(status)

    def smtp(self, line: int, value: str) -> str:
        m = re.match(r"[0-9A-Za-z._+-]+", value)
        if not m:
            self.fail(line, "invalid SMTP server address")
        return m.group(0)

    def fallback(self, line: int, value: str, af: int, protocol: str) -> FallbackConfig:
        """``host[:port] [gate|masq|ipip]`` (ldirectord parse_fallback), resolved."""
        parts = value.split()
        if not parts or len(parts) > 2:
            self.fail(line, f"invalid fallback server: {value}")
        hostport = parts[0]
        forward = parts[1] if len(parts) == 2 else "gate"
        if forward not in ("gate", "masq", "ipip"):
            self.fail(line, "forward method must be gate, masq or ipip")
        port: int | None = None
        m = _FALLBACK_PORT_RE.search(hostport)
        host = hostport
        if m:
            host = hostport[: m.start()]
            resolved = self.resolve_port(m.group(1), protocol)
            if resolved is None and protocol == "":
                resolved = self.resolve_port(m.group(1), "udp")
            if resolved is None:
                self.fail(line, "invalid port for fallback server")
            port = resolved
        if not host:
            self.fail(line, f"invalid fallback server: {value}")
        addr = self.resolve_host(host, af)
        if addr is None:
            version = "IPv6" if af == AF_INET6 else "IPv4"
            self.fail(
                line,
                f"invalid {version} address or could not resolve for fallback server: {host}",
            )
        return FallbackConfig(af=af, addr=addr, port=port, fwd=FORWARD_NAMES[forward])

    # --- virtual sections -----------------------------------------------------------------------

    def virtual_section(self, index: int, af: int, vattr: str) -> int:
        """Parse ``virtual=`` at ``index`` and its indented lines; return the next line's index."""
        vline = index + 1
        vattr = _strip_comment(vattr).strip()
        host = port_text = ""
        fwmark = 0
        m4 = _V4_PORT_RE.fullmatch(vattr)
        mh = _HOST_PORT_RE.fullmatch(vattr)
        m6 = _V6_PORT_RE.fullmatch(vattr)
        if m4 and af == AF_INET:
            host, port_text = m4.group(1), m4.group(2)
        elif mh:
            host, port_text = mh.group(1), mh.group(2)
        elif _FWMARK_RE.fullmatch(vattr):
            mark = parse_int(vattr, 1, 2**32 - 1)
            if mark is None:
                self.fail(vline, "invalid firewall mark for virtual server")
            fwmark = mark
        elif m6 and af == AF_INET:
            self.fail(vline, 'cannot specify an IPv6 address here. please use "virtual6" instead.')
        elif m6:
            try:
                ipaddress.IPv6Address(m6.group(1))
            except ValueError:
                # ld_read_config: inet_pton(AF_INET6, $v6addr) before any resolving
                self.fail(vline, "invalid ipv6 address for virtual server")
            host, port_text = f"[{m6.group(1)}]", m6.group(2)
        else:
            self.fail(vline, "invalid address for virtual server")

        v = _Virtual(spec=ServiceSpec(af=af, scheduler="wrr"), line=vline)
        if fwmark:
            v.protocol = "fwm"
            v.spec.fwmark = fwmark
        else:
            # ldirectord: udp is the default only for port 53 ("domain").
            v.protocol = "udp" if port_text in ("53", "domain") else "tcp"
        o = Overrides()
        reals: list[_Pending] = []
        persistent: int | None = None
        netmask: tuple[str, int] | None = None
        ops = False

        i = index + 1
        while i < len(self.lines):
            raw = self.lines[i]
            line = i + 1
            if re.match(r"\s*#", raw):
                i += 1
                continue
            text = _strip_comment(raw).replace("\t", "    ").rstrip()
            m = re.match(r" {4,}(\S.*)", text)
            if not m:
                break
            i += 1
            rcmd = m.group(1)
            d = _DIRECTIVE_RE.fullmatch(rcmd)
            if not d:
                self.fail(line, f'Unknown command "{rcmd}"')
            key, value = d.group(1), d.group(2).strip()
            if key in ("real", "real6"):
                if (key == "real6") != (af == AF_INET6):
                    want = "real6" if af == AF_INET6 else "real"
                    self.fail(line, f'cannot specify "{key}" here.  please use "{want}" instead')
                reals.append(_Pending(value, line))
            elif key == "request":
                req = self.required_quotes(line, rcmd, value)
                req = self.nonempty(line, req, "no request string specified")
                v.request = req if req.startswith("/") else "/" + req
            elif key == "receive":
                recv = self.required_quotes(line, rcmd, value)
                v.receive = self.nonempty(line, recv, "invalid receive string")
            elif key == "checktype":
                if value.isascii() and value.isdigit():
                    n = parse_int(value)
                    if n is None:
                        self.fail(line, _CHECKTYPE_ERROR)
                    v.checktype, v.num_connects = "combined", n
                elif value in ("connect", "negotiate", "ping", "off", "on", "external",
                               "external-perl"):  # fmt: skip
                    v.checktype = value
                else:
                    self.fail(line, _CHECKTYPE_ERROR)
            elif key == "checkcommand":
                v.checkcommand = self.nonempty(line, _unquote(value), "invalid check command")
            elif key == "checktimeout":
                o.checktimeout = self.number(line, value, "invalid check timeout")
            elif key == "negotiatetimeout":
                o.negotiatetimeout = self.number(line, value, "invalid negotiate timeout")
            elif key == "connecttimeout":
                self.fail(line, _CONNECTTIMEOUT_ERROR)
            elif key == "checkcount":
                o.checkcount = self.number(line, value, "invalid check count")
                self.warn(line, _CHECKCOUNT_WARNING)
            elif key == "failurecount":
                o.failurecount = self.number(line, value, "invalid failure count")
            elif key == "rise":
                # pylvs only (ldirectord would stop at it): checks in a row to come back up.
                v.rise = self.number(line, value, "invalid rise count")
            elif key == "checkinterval":
                o.checkinterval = self.number(line, value, "invalid checkinterval")
            elif key == "checkport":
                if not (value.isascii() and value.isdigit()):
                    self.fail(line, "invalid port")
                cport = parse_int(value, 1, 65535)
                if cport is None:
                    self.fail(line, "checkport must be in range 1..65535")
                v.checkport = cport
            elif key in ("login", "passwd", "database", "secret"):
                inner = self.required_quotes(line, rcmd, value)
                inner = self.nonempty(line, inner, _STRING_ERRORS[key])
                if key == "login":
                    o.login = inner
                elif key == "passwd":
                    o.passwd = inner
                elif key == "database":
                    v.database = inner
                else:
                    v.secret = inner
            elif key == "load":
                inner = self.required_quotes(line, rcmd, value)
                if not re.search(r"\w", inner):
                    self.fail(line, "invalid string for load testing")
                v.load = inner
            elif key == "scheduler":
                # Any [a-z]+ is accepted: ldirectord leaves unknown names for ipvsadm to refuse.
                if not re.fullmatch(r"[a-z]+", value):
                    self.fail(line, "invalid scheduler, should be only lowercase letters (a-z)")
                v.spec.scheduler = value
            elif key == "persistent":
                timeout = parse_int(value, 1, MAX_TIMEOUT)
                if timeout is None:
                    self.fail(line, "invalid persistent timeout")
                persistent = timeout
            elif key == "netmask":
                netmask = (value, line)
            elif key == "protocol":
                if not re.fullmatch(r"\w+", value):
                    self.fail(line, "invalid protocol")
                if v.protocol == "fwm":
                    if value != "fwm":
                        self.fail(
                            line,
                            "protocol must be fwm if the virtual service is a fwmark (a number)",
                        )
                elif value in ("tcp", "udp"):
                    v.protocol = value
                else:
                    self.fail(
                        line,
                        "protocol must be tcp or udp if the virtual service is an address and port",
                    )
            elif key == "ops":
                ops = self.yes_no(line, value, "ops")
            elif key == "schedflags":
                flags = sched_flags([f for f in re.split(r"\s*,\s*", _unquote(value)) if f])
                if flags is None or not value:
                    self.fail(line, f'invalid schedflags "{value}"')
                v.spec.sched_flags = flags
            elif key == "service":
                if value not in SERVICES:
                    self.fail(line, _SERVICE_ERROR)
                o.service = value
            elif key == "httpmethod":
                if value.upper() not in ("GET", "HEAD"):
                    self.fail(line, "httpmethod must be GET or HEAD")
                v.httpmethod = value.upper()
            elif key == "virtualhost":
                v.virtualhost = self.nonempty(line, _unquote(value), "invalid virtualhost")
            elif key in ("fallback", "fallback6"):
                if (key == "fallback6") != (af == AF_INET6):
                    want = "fallback6" if af == AF_INET6 else "fallback"
                    self.fail(line, f'cannot specify "{key}" here.  please use "{want}" instead')
                o.fallback = self.fallback(line, value, af, "")
            elif key == "fallbackcommand":
                o.fallbackcommand = self.nonempty(line, _unquote(value), "invalid fallback command")
            elif key in ("quiescent", "cleanstop"):
                flag = self.yes_no(line, value, key)
                if key == "quiescent":
                    o.quiescent = flag
                else:
                    o.cleanstop = flag
            elif key == "emailalert":
                o.emailalert = self.emailalert(line, value)
            elif key == "emailalertfreq":
                o.emailalertfreq = self.frequency(line, value)
            elif key == "emailalertstatus":
                o.emailalertstatus = self.email_status(line, value)
            elif key == "monitorfile":
                v.monitorfile = self.nonempty(line, _unquote(value), "invalid monitorfile")
            elif key == "smtp":
                o.smtp = self.smtp(line, value)
            elif key == "servicename":
                v.servicename = _unquote(value)
            elif key == "comment":
                v.comment = _unquote(value)
            else:
                self.fail(line, f'Unknown command "{rcmd}"')

        # Like ldirectord, resolve names only once the protocol is final.
        spec = v.spec
        if not fwmark:
            spec.protocol = IPPROTO_UDP if v.protocol == "udp" else IPPROTO_TCP
            addr = self.resolve_host(host, af)
            port = self.resolve_port(port_text, v.protocol)
            if addr is None or port is None:
                self.fail(vline, "invalid address for virtual service")
            spec.addr, spec.port = addr, port
        spec.ops = ops and v.protocol == "udp"  # ldirectord passes -o for udp services only
        prefix = 128 if af == AF_INET6 else 32
        if netmask is not None:
            parsed_mask = netmask_prefix(netmask[0], af)
            if parsed_mask is None:
                self.fail(
                    netmask[1],
                    "invalid netmask: a prefix length between 1 and 128 is required"
                    if af == AF_INET6
                    else "invalid netmask: dotted quad notation of a contiguous mask is required",
                )
            prefix = parsed_mask
        spec.netmask = 128 if af == AF_INET6 else 32
        if persistent is not None:
            spec.persistent = True
            spec.timeout = persistent
            spec.netmask = prefix  # ldirectord passes -M only together with -p
        for pending in reals:
            v.reals.extend(self.real_line(v, pending))

        ident = v.ident()
        if ident in self.seen:
            self.fail(vline, f"duplicate virtual server (first on line {self.seen[ident]})")
        self.seen[ident] = vline
        finish_virtual(v, o, self.cfg, self.fail)
        self.cfg.virtuals.append(v)
        return i

    def real_line(self, v: _Virtual, pending: _Pending) -> list[RealConfig]:
        """``host[->host][:port] gate|masq|ipip [weight] ["request", "receive"] [l:N] [u:N]``."""
        line, af, spec = pending.line, v.spec.af, v.spec
        m = _REAL_RE.fullmatch(pending.text)
        if not m:
            self.fail(line, "invalid address for real server (wrong format)")
        first, last, port_text, flags = m.group(1), m.group(2), m.group(3), m.group(4) or ""
        addr = self.resolve_host(first, af)
        if addr is None:
            self.fail(line, f"invalid address ({first}) for real server (could not resolve host)")
        port = 0
        if port_text is not None:
            resolved = self.resolve_port(port_text, "")
            if resolved is None:
                self.fail(
                    line, f"invalid port ({port_text}) for real server (could not resolve port)"
                )
            port = resolved
        addrs = [addr]
        if last is not None:
            end = self.resolve_host(last, af)
            if end is None:
                self.fail(
                    line, f"invalid address ({last}) for real server (could not resolve end host)"
                )
            if af == AF_INET6:
                self.fail(line, "Address range for IPv6 is not supported yet")
            size = range_size(addr, end)
            if size <= 0:
                self.fail(
                    line,
                    f"Invalid Range: {addr}->{end}: the first address must not be greater "
                    "than the second",
                )
            if size > MAX_RANGE:
                self.fail(line, f"Invalid Range: {addr}->{end}: more than {MAX_RANGE} addresses")
            addrs = expand_range(addr, end) or []
        self.reals += len(addrs)
        if self.reals > MAX_REALS:
            self.fail(line, f"more than {MAX_REALS} real servers in the file")

        words = flags.split(None, 1)
        if not words or words[0] not in ("gate", "masq", "ipip"):
            self.fail(line, "forward method must be gate, masq or ipip")
        fwd = FORWARD_NAMES[words[0]]
        rest = words[1].strip() if len(words) > 1 else ""
        weight = 1
        if rest and not rest.startswith('"') and not rest.startswith(("l:", "u:")):
            token, _, rest = rest.partition(" ")
            rest = rest.strip()
            # ipvsadm -w: 0..65535.
            parsed = parse_int(token, 0, 65535)
            if parsed is None:
                self.fail(line, f'invalid weight "{token}" in real= line')
            weight = parsed
        request: str | None = None
        receive: str | None = None
        if rest.startswith('"'):
            rr = _REQ_RECV_RE.fullmatch(rest)
            if not rr:
                self.fail(line, f'Invalid real server line, around "{rest}"')
            request = rr.group(1) if rr.group(1).startswith("/") else "/" + rr.group(1)
            receive = rr.group(2)
            rest = rr.group(3).strip()
        lower = upper = 0
        for token in rest.split():
            kind, _, number = token.partition(":")
            threshold = parse_int(number) if kind in ("l", "u") else None
            if threshold is None:
                if kind in ("l", "u"):
                    which = "lower" if kind == "l" else "upper"
                    self.fail(line, f'invalid {which} threshold "{number}" in real= line')
                self.fail(line, f'Invalid real server line, around "{rest}"')
            if kind == "l":
                lower = threshold
            else:
                upper = threshold

        return [
            RealConfig(
                dest=DestSpec(
                    af=af,
                    addr=a,
                    port=dest_port(spec, fwd, port),
                    weight=weight,
                    fwd=fwd,
                    u_threshold=upper,
                    l_threshold=lower,
                ),
                port=port,
                request=request,
                receive=receive,
                line=line,
            )
            for a in addrs
        ]


_CHECKCOUNT_WARNING = (
    "checkcount option is deprecated and slated for removal.  please see 'failurecount'"
)
_CONNECTTIMEOUT_ERROR = "connecttimeout directive deprecated in favour of negotiatetimeout"


def parse_ldirectord(
    text: str,
    filename: str = "<string>",
    *,
    resolve_host: HostResolver = resolve_host,
    resolve_port: PortResolver = resolve_port,
) -> Config:
    """Parse the text of an ldirectord.cf; raise :class:`ConfigError` naming the line on error.

    ``resolve_host(name, af)`` and ``resolve_port(name, protocol)`` turn host and service names
    into address text and port numbers (None if unknown); the defaults use getaddrinfo and
    /etc/services, as ldirectord does.
    """
    return _Parser(text, filename, resolve_host, resolve_port).parse()


def load_ldirectord(path: str | Path) -> Config:
    """Read and parse an ldirectord.cf file."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(name, 0, f"can not open file {name}: {exc.strerror}") from None
    # Perl reads bytes; undecodable bytes can only sit in comments or strings, so keep going.
    return parse_ldirectord(data.decode("utf-8", errors="replace"), name)
