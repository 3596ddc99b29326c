"""The ipvsadm 1.31 command line: popt's tokenising, ``parse_options()`` and its checks.

Everything here follows ``ipvsadm.c`` (compiled with popt, as distributions build it) so that the
same command line is accepted or refused with the same message and exit status:

* popt permutes: words not starting with ``-`` (and ``-`` itself) are left over and refused later
  with ``unexpected argument``; ``--`` makes every later word a leftover.
* Short options combine (``-Ln``); an option's argument may be glued (``-w5``, ``-w=5``) or be
  the next word, even one starting with ``-``; ``--long=value`` or ``--long value``; long names
  must match exactly.
* ``-p`` has an optional argument: it takes the next word unless that word starts with ``-``.
* The first option must be a command; a later command letter is an ``invalid option``.
* ``commands_v_options`` decides which options each command needs, allows or refuses.

Errors that make ipvsadm call ``exit()`` raise :class:`Exit`; popt errors after the command
(which ipvsadm reports and returns -1 for, so ``-R`` goes on with the next line) raise
:class:`OptionError`.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import socket
from dataclasses import dataclass, field

from pylvs.cli.ipvsadm_format import Fmt
from pylvs.core.control import DaemonSpec
from pylvs.core.service import AF_INET, AF_INET6, DEFAULT_PERSISTENT_TIMEOUT, ServiceFlags

__all__ = [
    "CMD_NAMES",
    "COMMANDS_V_OPTIONS",
    "OPT_NAMES",
    "Cmd",
    "CommandEntry",
    "Exit",
    "Opt",
    "OptionError",
    "generic_opt_check",
    "parse_options",
    "tryhelp_text",
    "usage_text",
    "version_text",
]

IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_SCTP = 132

MAX_TIMEOUT = 86400 * 31  # ipvsadm.c: 31 days
INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1

DEF_SCHED = "wlc"
DEF_MCAST_IFN = "eth0"

# IP_VS_CONN_F_* forwarding methods and IP_VS_TUNNEL_ENCAP_FLAG_* bits.
CONN_F_MASQ = 0
CONN_F_TUNNEL = 2
CONN_F_DROUTE = 3
TUN_FLAG_NOCSUM = 0
TUN_FLAG_CSUM = 1
TUN_FLAG_REMCSUM = 2


class Exit(Exception):
    """ipvsadm ends the process here: ``status`` with ``stdout`` / ``stderr`` text."""

    def __init__(self, status: int, stderr: str = "", stdout: str = "") -> None:
        super().__init__(stderr or stdout)
        self.status = status
        self.stderr = stderr
        self.stdout = stdout


class OptionError(Exception):
    """A popt error after the command option: ``"<word>: <popt message>"``, status -1."""


def fail(status: int, msg: str) -> Exit:
    """``fail()``: the message and a newline on stderr."""
    return Exit(status, stderr=msg + "\n")


class Cmd(enum.IntEnum):
    """CMD_* of ipvsadm.c, in its order (the legality matrix is indexed by ``cmd - 1``)."""

    ADD = 1
    EDIT = 2
    DEL = 3
    FLUSH = 4
    LIST = 5
    ADDDEST = 6
    DELDEST = 7
    EDITDEST = 8
    TIMEOUT = 9
    STARTDAEMON = 10
    STOPDAEMON = 11
    RESTORE = 12
    SAVE = 13
    ZERO = 14


CMD_NAMES = (
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
)


class Opt(enum.IntEnum):
    """OPTC_* of ipvsadm.c: the bit numbers of the options word and the matrix columns."""

    NUMERIC = 0
    CONNECTION = 1
    SERVICE = 2
    SCHEDULER = 3
    PERSISTENT = 4
    NETMASK = 5
    SERVER = 6
    FORWARD = 7
    WEIGHT = 8
    UTHRESHOLD = 9
    LTHRESHOLD = 10
    MCAST = 11
    TIMEOUT = 12
    DAEMON = 13
    STATS = 14
    RATE = 15
    THRESHOLDS = 16
    PERSISTENTCONN = 17
    NOSORT = 18
    SYNCID = 19
    EXACT = 20
    ONEPACKET = 21
    PERSISTENCE_ENGINE = 22
    SCHED_FLAGS = 23
    MCAST_GROUP = 24
    MCAST_PORT = 25
    MCAST_TTL = 26
    SYNC_MAXLEN = 27
    TUN_INFO = 28
    TUN_TYPE = 29
    TUN_PORT = 30
    TUN_NOCSUM = 31
    TUN_CSUM = 32
    TUN_REMCSUM = 33


OPT_NAMES = (
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
)

# commands_v_options[][] of ipvsadm 1.31, one string per command, one character per Opt column:
# '+' compulsory, 'x' illegal, '1' at most one of the '1' options, ' ' optional. Columns 0-33:
# n c svc s p M r fwd w x y mcast tot dmn st rt thr pc srt sid ex ops pe b grp port ttl size
# tinf type tprt nocs csum remc
COMMANDS_V_OPTIONS = (
    "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",  # add-service
    "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",  # edit-service
    "xx+" + "x" * 31,  # delete-service
    "x" * 34,  # flush
    " 11xxxxxxxxx11       xxxxxxx xxxxx",  # list
    "xx+xxx+    xxxxxxxxxxxxxxxxxx     ",  # add-server
    "xx+xxx+" + "x" * 27,  # delete-server
    "xx+xxx+    xxxxxxxxxxxxxxxxxx     ",  # edit-server
    "x" * 34,  # set
    "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx",  # start-daemon
    "x" * 19 + " " + "x" * 14,  # stop-daemon
    "x" * 34,  # restore
    " " + "x" * 33,  # save
    "xx " + "x" * 31,  # zero
)

_TUN_NAMES = ("ipip", "gue", "gre")
_TUN_OPTS = (Opt.TUN_PORT, Opt.TUN_NOCSUM, Opt.TUN_CSUM, Opt.TUN_REMCSUM)
# tunnel_types_v_options[][]: columns tun-port, tun-nocsum, tun-csum, tun-remcsum.
_TUNNEL_TYPES_V_OPTIONS = ("xxxx", "+111", "x11x")


# --- popt ---------------------------------------------------------------------------------------

_ARG_NONE = 0
_ARG_REQUIRED = 1
_ARG_OPTIONAL = 2

POPT_ERROR_NOARG = -10
POPT_ERROR_BADOPT = -11
_POPT_MESSAGES = {POPT_ERROR_NOARG: "missing argument", POPT_ERROR_BADOPT: "unknown option"}


@dataclass(frozen=True)
class _Option:
    long: str
    short: str
    arg: int
    tag: str


# The popt option table of ipvsadm 1.31, in its order. A tag is the short letter, or a long name.
_OPTIONS = (
    _Option("add-service", "A", _ARG_NONE, "A"),
    _Option("edit-service", "E", _ARG_NONE, "E"),
    _Option("delete-service", "D", _ARG_NONE, "D"),
    _Option("clear", "C", _ARG_NONE, "C"),
    _Option("list", "L", _ARG_NONE, "L"),
    _Option("list", "l", _ARG_NONE, "l"),
    _Option("zero", "Z", _ARG_NONE, "Z"),
    _Option("add-server", "a", _ARG_NONE, "a"),
    _Option("edit-server", "e", _ARG_NONE, "e"),
    _Option("delete-server", "d", _ARG_NONE, "d"),
    _Option("set", "", _ARG_NONE, "set"),
    _Option("help", "h", _ARG_NONE, "h"),
    _Option("version", "v", _ARG_NONE, "v"),
    _Option("restore", "R", _ARG_NONE, "R"),
    _Option("save", "S", _ARG_NONE, "S"),
    _Option("start-daemon", "", _ARG_REQUIRED, "start-daemon"),
    _Option("stop-daemon", "", _ARG_REQUIRED, "stop-daemon"),
    _Option("tcp-service", "t", _ARG_REQUIRED, "t"),
    _Option("udp-service", "u", _ARG_REQUIRED, "u"),
    _Option("sctp-service", "", _ARG_REQUIRED, "sctp-service"),
    _Option("fwmark-service", "f", _ARG_REQUIRED, "f"),
    _Option("scheduler", "s", _ARG_REQUIRED, "s"),
    _Option("persistent", "p", _ARG_OPTIONAL, "p"),
    _Option("netmask", "M", _ARG_REQUIRED, "M"),
    _Option("real-server", "r", _ARG_REQUIRED, "r"),
    _Option("masquerading", "m", _ARG_NONE, "m"),
    _Option("ipip", "i", _ARG_NONE, "i"),
    _Option("gatewaying", "g", _ARG_NONE, "g"),
    _Option("weight", "w", _ARG_REQUIRED, "w"),
    _Option("u-threshold", "x", _ARG_REQUIRED, "x"),
    _Option("l-threshold", "y", _ARG_REQUIRED, "y"),
    _Option("numeric", "n", _ARG_NONE, "n"),
    _Option("connection", "c", _ARG_NONE, "c"),
    _Option("mcast-interface", "", _ARG_REQUIRED, "mcast-interface"),
    _Option("syncid", "", _ARG_REQUIRED, "syncid"),
    _Option("timeout", "", _ARG_NONE, "timeout"),
    _Option("daemon", "", _ARG_NONE, "daemon"),
    _Option("stats", "", _ARG_NONE, "stats"),
    _Option("rate", "", _ARG_NONE, "rate"),
    _Option("thresholds", "", _ARG_NONE, "thresholds"),
    _Option("persistent-conn", "", _ARG_NONE, "persistent-conn"),
    _Option("nosort", "", _ARG_NONE, "nosort"),
    _Option("sort", "", _ARG_NONE, "sort"),
    _Option("exact", "X", _ARG_NONE, "X"),
    _Option("ipv6", "6", _ARG_NONE, "6"),
    _Option("ops", "o", _ARG_NONE, "o"),
    _Option("pe", "", _ARG_REQUIRED, "pe"),
    _Option("sched-flags", "b", _ARG_REQUIRED, "b"),
    _Option("mcast-group", "", _ARG_REQUIRED, "mcast-group"),
    _Option("mcast-port", "", _ARG_REQUIRED, "mcast-port"),
    _Option("mcast-ttl", "", _ARG_REQUIRED, "mcast-ttl"),
    _Option("sync-maxlen", "", _ARG_REQUIRED, "sync-maxlen"),
    _Option("tun-info", "", _ARG_NONE, "tun-info"),
    _Option("tun-type", "", _ARG_REQUIRED, "tun-type"),
    _Option("tun-port", "", _ARG_REQUIRED, "tun-port"),
    _Option("tun-nocsum", "", _ARG_NONE, "tun-nocsum"),
    _Option("tun-csum", "", _ARG_NONE, "tun-csum"),
    _Option("tun-remcsum", "", _ARG_NONE, "tun-remcsum"),
)


class _Popt:
    """popt 1.16's ``poptGetNextOpt`` over one argv, for ipvsadm's table (no aliases, no flags)."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.next = 1
        self.next_char: str | None = None
        self.rest_leftover = False
        self.leftovers: list[str] = []
        self.optarg: str | None = None

    def get_next_opt(self) -> str | int:
        """The next option's tag, -1 at the end, or a POPT_ERROR_* code."""
        argv = self.argv
        while True:
            if self.next_char is None and self.next >= len(argv):
                return -1
            opt: _Option | None = None
            long_arg: str | None = None
            if self.next_char is None:
                word = argv[self.next]
                self.next += 1
                if self.rest_leftover or not word.startswith("-") or word == "-":
                    self.leftovers.append(word)
                    continue
                if word == "--":
                    self.rest_leftover = True
                    continue
                if word.startswith("--"):
                    name, eq, value = word[2:].partition("=")
                    if eq:
                        long_arg = value
                    opt = next((o for o in _OPTIONS if o.long == name), None)
                    if opt is None:
                        return POPT_ERROR_BADOPT
                else:
                    # A single dash never names a long option here (no POPT_ARGFLAG_ONEDASH).
                    self.next_char = word[1:]
            if opt is None:
                chars = self.next_char or ""
                self.next_char = None
                opt = next((o for o in _OPTIONS if o.short and chars[:1] == o.short), None)
                if opt is None:
                    return POPT_ERROR_BADOPT
                rest = chars[1:]
                if rest:
                    self.next_char = rest[1:] if rest[0] == "=" else rest
            if opt.arg != _ARG_NONE:
                if long_arg is not None:
                    self.optarg = long_arg
                elif self.next_char is not None:
                    self.optarg = self.next_char
                    self.next_char = None
                elif self.next >= len(argv):
                    if opt.arg != _ARG_OPTIONAL:
                        return POPT_ERROR_NOARG
                    self.optarg = None
                elif opt.arg == _ARG_OPTIONAL and argv[self.next].startswith("-"):
                    self.optarg = None
                else:
                    self.optarg = argv[self.next]
                    self.next += 1
            return opt.tag

    def bad_option(self) -> str:
        """``poptBadOption(con, POPT_BADOPTION_NOALIAS)``: the argv word last consumed."""
        return self.argv[self.next - 1]

    def get_arg(self) -> str | None:
        """``poptGetArg``: the next leftover word."""
        return self.leftovers.pop(0) if self.leftovers else None


# --- value parsers ------------------------------------------------------------------------------

_STRTOL_RE = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)\Z")


def _c_int(text: str, base: int = 10) -> int:
    """``int(text, base)`` for a digit string of any length, as C's strtol/strtoul read it: a
    value of more than 40 significant digits is out of every range (strtol's ERANGE), so it
    saturates at 2**130 instead of meeting int()'s 4,300-digit limit."""
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-").lstrip("0") or "0"
    if len(body) > 40:
        return sign << 130
    return sign * int(body, base)


def string_to_number(text: str, low: int, high: int) -> int:
    """``string_to_number()``: a whole strtol() base-10 parse within [low, high], else -1."""
    m = _STRTOL_RE.match(text)
    if m is None:
        return -1
    number = _c_int(m.group(1))
    return number if low <= number <= high else -1


def parse_timeout(text: str | None, low: int, high: int) -> int:
    if text is None:
        return DEFAULT_PERSISTENT_TIMEOUT
    value = string_to_number(text, low, high)
    if value == -1:
        raise fail(2, f"invalid timeout value `{text}' specified")
    return value


def parse_fwmark(text: str) -> int:
    m = _STRTOL_RE.match(text)
    value = _c_int(m.group(1)) if m else 0
    if m is None or value <= 0 or value > UINT_MAX:
        raise fail(2, f"invalid fwmark value `{text}' specified")
    return value


def _strtoul_part(text: str) -> int | None:
    """One part of an inet_aton() address, read as C's strtoul base 0: 0x hex, 0 octal, decimal."""
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
        return _c_int(text[2:], 16)
    if re.fullmatch(r"0[0-7]*", text):
        return _c_int(text, 8)
    if re.fullmatch(r"[1-9][0-9]*", text):
        return _c_int(text)
    return None


def inet_aton(text: str) -> int | None:
    """glibc ``inet_aton()``: ``a``, ``a.b``, ``a.b.c`` or ``a.b.c.d`` (each part C-style), the
    last part filling the remaining bytes; anything after a whitespace is ignored, as in glibc.
    Host-order value or None."""
    body = re.split(r"[ \t\n\v\f\r]", text, maxsplit=1)[0]
    parts = body.split(".")
    if len(parts) > 4 or any(p == "" for p in parts):
        return None
    nums: list[int] = []
    for part in parts:
        value = _strtoul_part(part)
        if value is None:
            return None
        nums.append(value)
    last_bits = 32 - 8 * (len(nums) - 1)
    if any(v > 0xFF for v in nums[:-1]) or nums[-1] >= (1 << last_bits):
        return None
    value = 0
    for v in nums[:-1]:
        value = (value << 8) | v
    return (value << last_bits) | nums[-1]


def host_to_addr(name: str) -> int | None:
    """``host_to_addr()``: ``gethostbyname`` (IPv4 only), None when it does not resolve."""
    try:
        return int(ipaddress.IPv4Address(socket.gethostbyname(name)))
    except (OSError, ValueError, TypeError):  # UnicodeError is a ValueError
        return None


def service_to_port(name: str, protocol: int) -> int:
    proto = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_SCTP: "sctp"}.get(protocol)
    if proto is None or not name:
        return -1
    try:
        return socket.getservbyname(name, proto)
    except (OSError, ValueError, TypeError):
        return -1


def _inet_pton6(text: str) -> int | None:
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, ValueError, TypeError):
        return None


SERVICE_NONE = 0
SERVICE_ADDR = 1
SERVICE_PORT = 2


@dataclass
class ParsedAddr:
    af: int = AF_INET
    addr: str = ""
    port: int = 0


def parse_service(text: str, protocol: int) -> tuple[int, ParsedAddr]:
    """``parse_service()``: ``host[:port]``, ``[v6addr]:port`` or a bare IPv6 address.

    Returns the SERVICE_* bits and what was read. Quirks kept: an all-digit word is refused,
    ``[addr]`` needs ``:port`` after it, and an IPv4 address in brackets loses its port.
    """
    result = ParsedAddr()
    if all(c in "0123456789" for c in text):
        return SERVICE_NONE, result
    buf = text
    portp: str | None = None
    if buf.startswith("["):
        buf = buf[1:]
        close = buf.find("]")
        if close < 0:
            return SERVICE_NONE, result
        after = buf[close + 1 :]
        buf = buf[:close]
        if not after.startswith(":"):
            return SERVICE_NONE, result
        portp = after[1:]
    addr6 = _inet_pton6(buf)
    if addr6 is not None:
        result.af = AF_INET6
        result.addr = str(ipaddress.IPv6Address(addr6))
    else:
        colon = buf.rfind(":")
        if colon >= 0:
            portp = buf[colon + 1 :]
            buf = buf[:colon]
        else:
            portp = None
        addr4 = inet_aton(buf)
        if addr4 is None:
            addr4 = host_to_addr(buf)
        if addr4 is None:
            return SERVICE_NONE, result
        result.af = AF_INET
        result.addr = str(ipaddress.IPv4Address(addr4))
    parse = SERVICE_ADDR
    if portp is not None:
        parse |= SERVICE_PORT
        port = string_to_number(portp, 0, 65535)
        if port == -1:
            port = service_to_port(portp, protocol)
        if port == -1:
            return SERVICE_NONE, result
        result.port = port
    return parse, result


def parse_netmask(text: str) -> int | None:
    """``parse_netmask()``: dotted quad (inet_aton) or a host name; host-order mask or None."""
    value = inet_aton(text)
    if value is None:
        value = host_to_addr(text)
    return value


def _atoi(text: str) -> int:
    m = re.match(r"[ \t\n\v\f\r]*([+-]?[0-9]+)", text)
    return _c_int(m.group(1)) if m else 0


def parse_sched_flags(sched: str, arg: str) -> int:
    """``parse_sched_flags()``: comma-separated names; sh-*/mh-* need their scheduler."""
    sched = sched or DEF_SCHED
    flags = 0
    names = [n for n in arg.split(",") if n] or [""]
    for name in names:
        if name == "flag-1":
            flags |= ServiceFlags.SCHED1
        elif name == "flag-2":
            flags |= ServiceFlags.SCHED2
        elif name == "flag-3":
            flags |= ServiceFlags.SCHED3
        elif name in ("sh-fallback", "sh-port", "mh-fallback", "mh-port"):
            flags |= ServiceFlags.SCHED1 if name.endswith("fallback") else ServiceFlags.SCHED2
            if sched != name[:2]:
                raise fail(2, f"incompatible scheduler flag `{name}'")
        else:
            raise fail(2, f"invalid scheduler flag `{name}'")
    return flags


# --- the command entry --------------------------------------------------------------------------


@dataclass
class ServiceEntry:
    """``ipvs_service_t`` as ipvsadm fills it. ``netmask`` is a host-order IPv4 mask, or a prefix
    length once the service is IPv6 (the C field holds either)."""

    af: int = AF_INET
    protocol: int = 0
    addr: str = ""
    port: int = 0
    fwmark: int = 0
    sched_name: str = ""
    flags: int = 0
    timeout: int = 0
    netmask: int = 0xFFFFFFFF
    pe_name: str = ""


@dataclass
class DestEntry:
    """``ipvs_dest_t`` as ipvsadm fills it (weight 1 and direct routing by default)."""

    af: int = AF_INET
    addr: str = ""
    port: int = 0
    conn_flags: int = CONN_F_DROUTE
    weight: int = 1
    u_threshold: int = 0
    l_threshold: int = 0
    tun_type: int = 0
    tun_port: int = 0
    tun_flags: int = 0


def _empty_daemon() -> DaemonSpec:
    """``ipvs_daemon_t`` zeroed, as ipvsadm starts it (the interface default is applied later)."""
    return DaemonSpec(state="", mcast_ifn="")


@dataclass
class CommandEntry:
    """``struct ipvs_command_entry`` plus the options word and the print format."""

    cmd: Cmd | None = None
    svc: ServiceEntry = field(default_factory=ServiceEntry)
    dest: DestEntry = field(default_factory=DestEntry)
    timeouts: tuple[int, int, int] = (0, 0, 0)
    daemon: DaemonSpec = field(default_factory=_empty_daemon)
    options: int = 0
    fmt: Fmt = Fmt.NONE

    def has(self, opt: Opt) -> bool:
        return bool(self.options & (1 << opt))

    def set_option(self, opt: Opt) -> None:
        if self.has(opt):
            raise fail(2, f"multiple '{OPT_NAMES[opt]}' options specified")
        self.options |= 1 << opt


_PROTOCOL_OF_TAG = {"t": IPPROTO_TCP, "u": IPPROTO_UDP, "sctp-service": IPPROTO_SCTP}
_FIRST_COMMANDS = {
    "A": Cmd.ADD,
    "E": Cmd.EDIT,
    "D": Cmd.DEL,
    "a": Cmd.ADDDEST,
    "e": Cmd.EDITDEST,
    "d": Cmd.DELDEST,
    "C": Cmd.FLUSH,
    "L": Cmd.LIST,
    "l": Cmd.LIST,
    "Z": Cmd.ZERO,
    "set": Cmd.TIMEOUT,
    "R": Cmd.RESTORE,
    "S": Cmd.SAVE,
    "start-daemon": Cmd.STARTDAEMON,
    "stop-daemon": Cmd.STOPDAEMON,
}
_FORMAT_OF_TAG = {
    "stats": (Opt.STATS, Fmt.STATS),
    "rate": (Opt.RATE, Fmt.RATE),
    "thresholds": (Opt.THRESHOLDS, Fmt.THRESHOLDS),
    "persistent-conn": (Opt.PERSISTENTCONN, Fmt.PERSISTENTCONN),
    "nosort": (Opt.NOSORT, Fmt.NOSORT),
    "X": (Opt.EXACT, Fmt.EXACT),
    "tun-info": (Opt.TUN_INFO, Fmt.TUN_INFO),
    "n": (Opt.NUMERIC, Fmt.NUMERIC),
}


def parse_options(argv: list[str], program: str) -> CommandEntry:
    """``parse_options()`` of ipvsadm.c: argv (``argv[0]`` is the program) to a command entry."""
    ce = CommandEntry()
    popt = _Popt(argv)
    first = popt.get_next_opt()
    if isinstance(first, int):
        raise Exit(255, stderr=tryhelp_text(program))
    if first == "h":
        raise Exit(0, stdout=usage_text(program))
    if first == "v":
        raise Exit(0, stdout=version_text())
    if first not in _FIRST_COMMANDS:
        raise Exit(255, stderr=tryhelp_text(program))
    ce.cmd = _FIRST_COMMANDS[first]
    if first in ("start-daemon", "stop-daemon"):
        if popt.optarg in ("master", "backup"):
            ce.daemon.state = popt.optarg
        elif first == "start-daemon":
            raise fail(2, "illegal start-daemon parameter specified")
        else:
            # sic: ipvsadm's message for --stop-daemon
            raise fail(2, "illegal start_daemon specified")

    sched_flags_arg = ""
    while True:
        tag = popt.get_next_opt()
        if isinstance(tag, int):
            if tag < -1:
                raise OptionError(f"{popt.bad_option()}: {_POPT_MESSAGES[tag]}")
            break
        optarg = popt.optarg or ""
        _apply_option(ce, tag, popt.optarg, optarg, popt)
        if tag == "b":
            sched_flags_arg = optarg

    if ce.cmd == Cmd.TIMEOUT:
        values = [popt.get_arg() for _ in range(3)]
        if any(v is None for v in values):
            raise fail(2, "--set option requires 3 timeout values")
        tcp, tcpfin, udp = (parse_timeout(v, 0, MAX_TIMEOUT) for v in values)
        ce.timeouts = (tcp, tcpfin, udp)
    extra = popt.get_arg()
    if extra is not None:
        raise fail(2, f"unexpected argument {extra}")
    if sched_flags_arg:
        ce.svc.flags &= ~int(ServiceFlags.SCHED1 | ServiceFlags.SCHED2 | ServiceFlags.SCHED3)
        ce.svc.flags |= parse_sched_flags(ce.svc.sched_name, sched_flags_arg)
    return ce


def _apply_option(ce: CommandEntry, tag: str, raw: str | None, optarg: str, popt: _Popt) -> None:
    """One iteration of the option loop of ``parse_options()``."""
    svc, dest = ce.svc, ce.dest
    if tag in _PROTOCOL_OF_TAG:
        ce.set_option(Opt.SERVICE)
        svc.protocol = _PROTOCOL_OF_TAG[tag]
        parse, parsed = parse_service(optarg, svc.protocol)
        if not parse & SERVICE_ADDR:
            raise fail(2, "illegal virtual server address[:port] specified")
        svc.af, svc.addr = parsed.af, parsed.addr
        if parsed.af == AF_INET6:
            svc.netmask = 128
        if parse & SERVICE_PORT:
            svc.port = parsed.port
    elif tag == "f":
        ce.set_option(Opt.SERVICE)
        # ipvsadm sets a sane protocol even though a fwmark service does not use it.
        svc.af = AF_INET
        svc.protocol = IPPROTO_TCP
        svc.fwmark = parse_fwmark(optarg)
    elif tag == "s":
        ce.set_option(Opt.SCHEDULER)
        svc.sched_name = optarg[:15]  # IP_VS_SCHEDNAME_MAXLEN - 1
    elif tag == "p":
        ce.set_option(Opt.PERSISTENT)
        svc.flags |= ServiceFlags.PERSISTENT
        svc.timeout = parse_timeout(raw, 1, MAX_TIMEOUT)
    elif tag == "M":
        ce.set_option(Opt.NETMASK)
        if svc.af != AF_INET6:
            mask = parse_netmask(optarg)
            if mask is None:
                raise fail(2, "illegal virtual server persistent mask specified")
            svc.netmask = mask
        else:
            svc.netmask = _atoi(optarg)
            if not 1 <= svc.netmask <= 128:
                raise fail(2, "illegal ipv6 netmask specified")
    elif tag == "r":
        ce.set_option(Opt.SERVER)
        parse, parsed = parse_service(optarg, svc.protocol)
        # t_dest starts as a copy of the service, so an unparsed part keeps the service's value.
        dest.af = parsed.af if parse & SERVICE_ADDR else svc.af
        dest.addr = parsed.addr if parse & SERVICE_ADDR else svc.addr
        dest.port = parsed.port if parse & SERVICE_PORT else svc.port
        if not parse & SERVICE_ADDR:
            raise fail(2, "illegal real server address[:port] specified")
    elif tag in ("i", "g", "m"):
        ce.set_option(Opt.FORWARD)
        dest.conn_flags = {"i": CONN_F_TUNNEL, "g": CONN_F_DROUTE, "m": CONN_F_MASQ}[tag]
    elif tag == "w":
        ce.set_option(Opt.WEIGHT)
        dest.weight = string_to_number(optarg, 0, 65535)
        if dest.weight == -1:
            raise fail(2, "illegal weight specified")
    elif tag == "x":
        ce.set_option(Opt.UTHRESHOLD)
        dest.u_threshold = string_to_number(optarg, 0, INT_MAX)
        if dest.u_threshold == -1:
            raise fail(2, "illegal u_threshold specified")
    elif tag == "y":
        ce.set_option(Opt.LTHRESHOLD)
        dest.l_threshold = string_to_number(optarg, 0, INT_MAX)
        if dest.l_threshold == -1:
            raise fail(2, "illegal l_threshold specified")
    elif tag == "c":
        ce.set_option(Opt.CONNECTION)
    elif tag in _FORMAT_OF_TAG:
        opt, fmt = _FORMAT_OF_TAG[tag]
        ce.set_option(opt)
        ce.fmt |= fmt
    elif tag == "mcast-interface":
        ce.set_option(Opt.MCAST)
        ce.daemon.mcast_ifn = optarg[:15]
    elif tag == "syncid":
        ce.set_option(Opt.SYNCID)
        ce.daemon.syncid = string_to_number(optarg, 0, 255)
        if ce.daemon.syncid == -1:
            raise fail(2, "illegal syncid specified")
    elif tag == "timeout":
        ce.set_option(Opt.TIMEOUT)
    elif tag == "daemon":
        ce.set_option(Opt.DAEMON)
    elif tag == "sort":
        pass  # sorting is the default; kept for compatibility
    elif tag == "6":
        if not svc.fwmark:
            raise fail(2, "-6 used before -f\n")
        svc.af = AF_INET6
        svc.netmask = 128
    elif tag == "o":
        ce.set_option(Opt.ONEPACKET)
        svc.flags |= ServiceFlags.ONEPACKET
    elif tag == "pe":
        ce.set_option(Opt.PERSISTENCE_ENGINE)
        svc.pe_name = optarg[:16]
    elif tag == "b":
        ce.set_option(Opt.SCHED_FLAGS)
    elif tag == "mcast-group":
        ce.set_option(Opt.MCAST_GROUP)
        ce.daemon.mcast_group = _parse_mcast_group(optarg)
    elif tag == "mcast-port":
        ce.set_option(Opt.MCAST_PORT)
        ce.daemon.mcast_port = string_to_number(optarg, 1, 65535)
        if ce.daemon.mcast_port == -1:
            raise fail(2, "illegal mcast-port specified")
    elif tag == "mcast-ttl":
        ce.set_option(Opt.MCAST_TTL)
        ce.daemon.mcast_ttl = string_to_number(optarg, 1, 255)
        if ce.daemon.mcast_ttl == -1:
            raise fail(2, "illegal mcast-ttl specified")
    elif tag == "sync-maxlen":
        ce.set_option(Opt.SYNC_MAXLEN)
        ce.daemon.sync_maxlen = string_to_number(optarg, 1, 65535 - 20 - 8)
        if ce.daemon.sync_maxlen == -1:
            raise fail(2, "illegal sync-maxlen specified")
    elif tag == "tun-type":
        ce.set_option(Opt.TUN_TYPE)
        if optarg not in _TUN_NAMES:
            raise fail(2, "illegal tunnel type specified")
        dest.tun_type = _TUN_NAMES.index(optarg)
    elif tag == "tun-port":
        ce.set_option(Opt.TUN_PORT)
        dest.tun_port = string_to_number(optarg, 1, 65535)
        if dest.tun_port == -1:
            raise fail(2, "illegal tunnel port specified")
    elif tag == "tun-nocsum":
        ce.set_option(Opt.TUN_NOCSUM)
        dest.tun_flags |= TUN_FLAG_NOCSUM
    elif tag == "tun-csum":
        ce.set_option(Opt.TUN_CSUM)
        dest.tun_flags |= TUN_FLAG_CSUM
    elif tag == "tun-remcsum":
        ce.set_option(Opt.TUN_REMCSUM)
        dest.tun_flags |= TUN_FLAG_REMCSUM
    else:
        # A second command, -h or -v after the command.
        raise fail(2, f"invalid option `{popt.bad_option()}'")


def _parse_mcast_group(text: str) -> str:
    if ":" in text:
        value = _inet_pton6(text)
        if value is None or not ipaddress.IPv6Address(value).is_multicast:
            raise fail(2, f"invalid IPv6 mcast-group `{text}'")
        return str(ipaddress.IPv6Address(value))
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError, TypeError):
        raise fail(2, f"invalid IPv4 mcast-group `{text}'") from None
    addr = ipaddress.IPv4Address(packed)
    if not addr.is_multicast:
        raise fail(2, f"invalid IPv4 mcast-group `{text}'")
    return str(addr)


def generic_opt_check(cmd: Cmd, options: int) -> None:
    """``generic_opt_check()``: walk the matrix columns in order; the first violation wins."""
    row = COMMANDS_V_OPTIONS[cmd - 1]
    name = CMD_NAMES[cmd - 1]
    last = -1
    for j, rule in enumerate(row):
        if not options & (1 << j):
            if rule == "+":
                raise fail(
                    2, f"You need to supply the '{OPT_NAMES[j]}' option for the '{name}' command"
                )
            continue
        if rule == "x":
            raise fail(2, f"Illegal '{OPT_NAMES[j]}' option with the '{name}' command")
        if rule == "1":
            if last < 0:
                last = j
                continue
            raise fail(
                2,
                f"The option '{OPT_NAMES[j]}' conflicts with the '{OPT_NAMES[last]}' option "
                f"in the '{name}' command",
            )


def tunnel_opt_check(tun_type: int, options: int) -> None:
    """``tunnel_opt_check()``: which tunnel options each encapsulation needs or refuses."""
    row = _TUNNEL_TYPES_V_OPTIONS[tun_type]
    name = _TUN_NAMES[tun_type]
    last = -1
    for rule, opt in zip(row, _TUN_OPTS, strict=True):
        if not options & (1 << opt):
            if rule == "+":
                raise fail(
                    2,
                    f"You need to supply the '{OPT_NAMES[opt]}' option "
                    f"for the '{name}' tunnel type",
                )
            continue
        if rule == "x":
            raise fail(2, f"Illegal '{OPT_NAMES[opt]}' option with the '{name}' tunnel type")
        if rule == "1":
            if last < 0:
                last = opt
                continue
            raise fail(
                2,
                f"The option '{OPT_NAMES[opt]}' conflicts with the '{OPT_NAMES[last]}' option "
                f"in the '{name}' tunnel type",
            )


# --- help texts ---------------------------------------------------------------------------------

_SCHEDULERS = "rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh"
_PE_LIST = "sip"


def version_text() -> str:
    """ipvsadm's ``-v`` line, kept verbatim because scripts parse it."""
    return "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"


def tryhelp_text(program: str) -> str:
    return f"Try `{program} -h' or '{program} --help' for more information.\n"


def usage_text(program: str) -> str:
    """``usage_exit()``: the version line and ipvsadm's help, with the program name as invoked."""
    p = program
    return (
        version_text() + "Usage:\n"
        f"  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] "
        "[--pe persistence_engine] [-b sched-flags]\n"
        f"  {p} -D virtual-service\n"
        f"  {p} -C\n"
        f"  {p} -R\n"
        f"  {p} -S [-n]\n"
        f"  {p} -a|e virtual-service -r server-address [options]\n"
        f"  {p} -d virtual-service -r server-address\n"
        f"  {p} -L|l [virtual-service] [options]\n"
        f"  {p} -Z [virtual-service]\n"
        f"  {p} --set tcp tcpfin udp\n"
        f"  {p} --start-daemon {{master|backup}} [daemon-options]\n"
        f"  {p} --stop-daemon {{master|backup}}\n"
        f"  {p} -h\n\n"
        "Commands:\n"
        "Either long or short options are allowed.\n"
        "  --add-service     -A        add virtual service with options\n"
        "  --edit-service    -E        edit virtual service with options\n"
        "  --delete-service  -D        delete virtual service\n"
        "  --clear           -C        clear the whole table\n"
        "  --restore         -R        restore rules from stdin\n"
        "  --save            -S        save rules to stdout\n"
        "  --add-server      -a        add real server with options\n"
        "  --edit-server     -e        edit real server with options\n"
        "  --delete-server   -d        delete real server\n"
        "  --list            -L|-l     list the table\n"
        "  --zero            -Z        zero counters in a service or all services\n"
        "  --set tcp tcpfin udp        set connection timeout values\n"
        "  --start-daemon              start connection sync daemon\n"
        "  --stop-daemon               stop connection sync daemon\n"
        "  --help            -h        display this help message\n\n"
        "virtual-service:\n"
        "  --tcp-service|-t  service-address   service-address is host[:port]\n"
        "  --udp-service|-u  service-address   service-address is host[:port]\n"
        "  --sctp-service    service-address   service-address is host[:port]\n"
        "  --fwmark-service|-f fwmark          fwmark is an integer greater than zero\n"
        "\n"
        "Options:\n"
        "  --ipv6         -6                   fwmark entry uses IPv6\n"
        f"  --scheduler    -s scheduler         one of {_SCHEDULERS},\n"
        f"                                      the default scheduler is {DEF_SCHED}.\n"
        f"  --pe            engine              alternate persistence engine may be {_PE_LIST},\n"
        "                                      not set by default.\n"
        "  --persistent   -p [timeout]         persistent service\n"
        "  --netmask      -M netmask           persistent granularity mask\n"
        "  --real-server  -r server-address    server-address is host (and port)\n"
        "  --gatewaying   -g                   gatewaying (direct routing) (default)\n"
        "  --ipip         -i                   ipip encapsulation (tunneling)\n"
        "  --masquerading -m                   masquerading (NAT)\n"
        "  --tun-type      type                one of ipip|gue|gre,\n"
        "                                      the default tunnel type is ipip.\n"
        "  --tun-port      port                tunnel destination port\n"
        "  --tun-nocsum                        tunnel encapsulation without checksum\n"
        "  --tun-csum                          tunnel encapsulation with checksum\n"
        "  --tun-remcsum                       tunnel encapsulation with remote checksum\n"
        "  --weight       -w weight            capacity of real server\n"
        "  --u-threshold  -x uthreshold        upper threshold of connections\n"
        "  --l-threshold  -y lthreshold        lower threshold of connections\n"
        "  --connection   -c                   output of current IPVS connections\n"
        "  --timeout                           output of timeout (tcp tcpfin udp)\n"
        "  --daemon                            output of daemon information\n"
        "  --stats                             output of statistics information\n"
        "  --rate                              output of rate information\n"
        "  --exact                             expand numbers (display exact values)\n"
        "  --thresholds                        output of thresholds information\n"
        "  --persistent-conn                   output of persistent connection info\n"
        "  --tun-info                          output of tunnel information\n"
        "  --nosort                            disable sorting output of service/server entries\n"
        "  --sort                              does nothing, for backwards compatibility\n"
        "  --ops          -o                   one-packet scheduling\n"
        "  --numeric      -n                   numeric output of addresses and ports\n"
        "  --sched-flags  -b flags             scheduler flags (comma-separated)\n"
        "Daemon Options:\n"
        "  --syncid sid                        syncid for connection sync (default=255)\n"
        "  --sync-maxlen length                Max sync message length (default=1472)\n"
        "  --mcast-interface interface         multicast interface for connection sync\n"
        "  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n"
        "  --mcast-port port                   UDP port (default=8848)\n"
        "  --mcast-ttl ttl                     Multicast TTL (default=1)\n"
    )
