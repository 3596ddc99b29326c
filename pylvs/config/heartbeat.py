"""The three files of a Linux-HA heartbeat 3.0.6 release-1 cluster: ha.cf, authkeys, haresources.

The rules are heartbeat's own, read from ``heartbeat/config.c`` (``parse_config``,
``add_option``, ``init_config`` and the ``set_*`` functions of ``Directives[]``),
``heartbeat/auth.c`` (``parse_authfile``), the HBcomm plugins (``bcast``, ``ucast``, ``mcast``,
``serial``, ``ping``, ``ping_group``) and the ``ResourceManager`` script:

* **ha.cf** is read line by line and applied in order. ``#`` cuts the line anywhere. The first word
  is the directive (case-sensitive; ``udp`` is the old name of ``bcast``); for the ordinary
  directives every value, split on blanks *and commas*, is applied in turn (``node a b``
  declares two nodes, ``keepalive 1,2`` sets 1 s then 2 s). ``mcast``, ``ucast``,
  ``ping_group``, ``stonith``, ``stonith_host``, ``apiauth``, ``respawn`` and ``failfast`` take
  the whole rest of the line.
  Because directives act as they are read, ``udpport`` must come before the ``bcast``/``ucast``
  lines: each of these plugins takes the port once, when its first medium is created, so a later
  ``udpport`` changes nothing for them (heartbeat warns ``udpport setting must precede media
  statements``). The whole-file checks of ``init_config`` run after the last line.
* **authkeys** must not be group or world readable; ``auth N`` selects the key used for signing and
  must come before the ``N method secret`` line it names, as in ``parse_authfile``.
* **haresources** holds one resource group per logical line, as ``ResourceManager``'s ``ipres``
  reads it: comments stripped first, then lines ending in ``\\`` joined.

heartbeat logs every bad line and refuses to start at the end; these parsers raise
:class:`HeartbeatConfigError` at the first one, with heartbeat's message where it has one. Checks
that need the running system (the interface of a medium exists, a ``respawn`` user and program
exist, a ``ping`` host resolves) are left to the daemon; only their syntax is checked here.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
import socket
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from pylvs.core.hbmsg import AuthKey

from .model import ConfigError

__all__ = [
    "DEFAULT_UDPPORT",
    "KNOWN_DIRECTIVES",
    "Authkeys",
    "BcastMedium",
    "HaConfig",
    "HeartbeatConfigError",
    "IPAddrSpec",
    "McastMedium",
    "Medium",
    "OtherMedium",
    "PingNode",
    "Resource",
    "ResourceGroup",
    "Respawn",
    "SerialMedium",
    "UcastMedium",
    "default_udpport",
    "get_msec",
    "load_authkeys",
    "load_ha_cf",
    "load_haresources",
    "parse_authkeys",
    "parse_ha_cf",
    "parse_haresources",
    "parse_ipaddr_arg",
]


class HeartbeatConfigError(ConfigError):
    """A heartbeat file that cannot be used: ``<file>:<line>: <problem>`` (no line for the checks
    that concern the whole file, such as ``No heartbeat media defined``)."""


# heartbeat.h: UDPPORT and HA_SERVICENAME; MAXMEDIA, MAXNODE, MAXAUTH.
DEFAULT_UDPPORT = 694
HA_SERVICENAME = "ha-cluster"
MAXMEDIA = 64
MAXNODE = 100
MAXAUTH = 16

# heartbeat.h WHITESPACE / DELIMS: tokens of ordinary directives are also split on commas.
_WHITESPACE = " \t\n\r\f"
_DELIMS = ", \t\n\r\f"
_DELIMS_RE = re.compile(r"[, \t\n\r\f]+")


# Directives[] of config.c whose value pylvs does not use: accepted (and checked where heartbeat
# checks them), then listed in HaConfig.unused.
_UNUSED_OPTION_DIRECTIVES = (
    "cluster", "quorum_server", "watchdog", "baud", "nice_failback", "rtprio", "hbgenmethod",
    "realtime", "normalpoll", "conn_logd_time", "use_apphbd", "log_badpack", "syslogmsgfmt",
    "coredumps", "coreroot", "crm_daemon_dir", "crmd_spawns_pengine", "autojoin", "uuidfrom",
    "compression", "compression_threshold", "traditional_compression", "env",
    "max_rexmit_delay", "record_config_changes", "record_pengine_inputs", "enable_config_writes",
    "memreserve",
)  # fmt: skip
_USED_OPTION_DIRECTIVES = (
    "node", "hopfudge", "keepalive", "deadtime", "deadping", "initdead", "warntime", "udpport",
    "logfacility", "logfile", "debugfile", "auto_failback", "debug", "msgfmt", "use_logd",
    "crm", "pacemaker",
)  # fmt: skip
# WLdirectives[] of config.c: the rest of the line is one value.
_WHOLE_LINE_DIRECTIVES = ("stonith", "stonith_host", "apiauth", "respawn", "failfast")
# The HBcomm plugins of Debian's heartbeat 3.0.6 (hbaping is not built there, so it is illegal).
_OPTION_MEDIA = ("bcast", "serial", "ping", "ping6")
_WHOLE_LINE_MEDIA = ("mcast", "ucast", "ping_group", "mcast6", "ucast6")
_UNUSED_MEDIA = ("serial", "ping6", "mcast6", "ucast6")
_UNUSED = frozenset(_UNUSED_OPTION_DIRECTIVES + _WHOLE_LINE_DIRECTIVES + _UNUSED_MEDIA)
KNOWN_DIRECTIVES = frozenset(
    _UNUSED_OPTION_DIRECTIVES
    + _USED_OPTION_DIRECTIVES
    + _WHOLE_LINE_DIRECTIVES
    + _OPTION_MEDIA
    + _WHOLE_LINE_MEDIA
)

# cl_str_to_boolean (cluster-glue cl_misc.c), case-insensitive.
_TRUE = frozenset({"true", "on", "yes", "y", "1"})
_FALSE = frozenset({"false", "off", "no", "n", "0"})

# cl_syslogfac_str2int: the syslog facility names; "none" means no syslog.
_FACILITIES = frozenset(
    {"auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "security",
     "syslog", "user", "uucp"} | {f"local{i}" for i in range(8)}
)  # fmt: skip

# StringToBaud.
_BAUDS = frozenset({9600, 19200, 38400, 57600, 115200, 230400, 460800})


def _bool(value: str) -> bool | None:
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return None


def _atoi(value: str) -> int:
    """C ``atoi``: leading blanks, an optional sign and digits; 0 when there are none."""
    m = re.match(r"[ \t\n\r\f\v]*([+-]?[0-9]+)", value)
    return int(m.group(1)) if m else 0


def get_msec(value: str) -> int:
    """heartbeat's time syntax (cluster-glue ``cl_get_msec``): milliseconds, or -1 when invalid.

    A bare number is seconds (``2``, ``1.7``, ``.5``); ``ms`` and ``us`` suffixes (any case,
    optionally after blanks) make it milliseconds or microseconds. The result is rounded to the
    nearest millisecond. As in C, digits and dots are taken up to the first other character and
    read as far as they form a number (``1.2.3`` is 1.2 s).
    """
    cp = value.lstrip(_WHITESPACE)
    if not cp or cp[0] not in "0123456789.":
        return -1
    m = re.match(r"[0-9.]*", cp)
    assert m is not None
    number, units = m.group(0), cp[m.end() :].lstrip(_WHITESPACE)
    low = units.lower()
    if low.startswith("ms"):
        multiplier, divisor = 1, 1
    elif low.startswith("us"):
        multiplier, divisor = 1, 1000
    elif units and units[0] not in "\r\n":
        return -1
    else:
        multiplier, divisor = 1000, 1
    num = re.match(r"[0-9]*(?:\.[0-9]*)?", number)
    text = num.group(0) if num else ""
    seconds = float(text) if text not in ("", ".") else 0.0  # atof
    return int(seconds * multiplier / divisor + 0.5)


def default_udpport() -> int:
    """The port of ``ha-cluster/udp`` in /etc/services, else 694 (``init_config``)."""
    try:
        return socket.getservbyname(HA_SERVICENAME, "udp")
    except OSError:
        return DEFAULT_UDPPORT


# --------------------------------------------------------------------------------------------
# ha.cf


@dataclass(frozen=True)
class BcastMedium:
    """``bcast dev``: UDP broadcast on ``dev`` to ``port`` (one medium per interface named)."""

    dev: str
    port: int
    line: int = 0


@dataclass(frozen=True)
class McastMedium:
    """``mcast dev group port ttl loop``; the port is the line's own, udpport does not apply."""

    dev: str
    group: str
    port: int
    ttl: int
    loop: int
    line: int = 0


@dataclass(frozen=True)
class UcastMedium:
    """``ucast dev peer``. A line whose peer is one of this node's own addresses is kept: the
    daemon ignores it, so that the same ha.cf serves every node."""

    dev: str
    peer: str
    port: int
    line: int = 0


@dataclass(frozen=True)
class SerialMedium:
    """``serial /dev/ttyS0`` at ``baud`` (deprecated ring; listed in ``unused``)."""

    device: str
    baud: int
    line: int = 0


@dataclass(frozen=True)
class OtherMedium:
    """A medium heartbeat knows and pylvs does not speak (``mcast6``, ``ucast6``), as written."""

    kind: str
    args: tuple[str, ...]
    line: int = 0


Medium = BcastMedium | McastMedium | UcastMedium | SerialMedium | OtherMedium


@dataclass(frozen=True)
class PingNode:
    """A pseudo-node: ``ping host`` (named by the host) or ``ping_group name host...`` (up while
    any host answers). ``kind`` is ``ping``, ``ping6`` or ``ping_group``."""

    name: str
    hosts: tuple[str, ...]
    kind: str = "ping"
    line: int = 0


@dataclass(frozen=True)
class Respawn:
    """``respawn user /path args`` (``failfast``: the same, but the node reboots if it dies)."""

    user: str
    command: str
    path: str
    failfast: bool = False
    line: int = 0


@dataclass
class HaConfig:
    """A validated ha.cf with ``init_config``'s defaults filled in. Times are milliseconds."""

    filename: str
    nodename: str
    nodes: list[str] = field(default_factory=list)
    media: list[Medium] = field(default_factory=list)
    keepalive_ms: int = 1000
    deadtime_ms: int = 30000
    warntime_ms: int = 15000
    initdead_ms: int = 30000
    deadping_ms: int = 30000
    udpport: int = DEFAULT_UDPPORT
    auto_failback: str = "legacy"
    ping_nodes: list[PingNode] = field(default_factory=list)
    respawn: list[Respawn] = field(default_factory=list)
    logfile: str | None = None
    debugfile: str | None = None
    logfacility: str | None = None
    use_logd: bool = False
    debug: int = 0
    hopfudge: int = 1
    msgfmt: str = "classic"
    autojoin: str = "none"
    unused: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _HaCfParser:
    def __init__(self, filename: str, nodename: str) -> None:
        self.filename = filename
        self.cfg = HaConfig(filename=filename, nodename=nodename)
        self.lineno = 0
        self.set: dict[str, int] = {}  # directive -> last line it was given on
        self.plugin_port: dict[str, int] = {}  # bcast/ucast: port taken by the first medium
        self.pacemaker_seen = False
        self.nice_failback = False  # config.c's global: True once auto_failback is on/off
        self.baud: int | None = None
        self.watchdog: str | None = None
        self.apiauth: set[str] = set()
        self.any_media = False
        self.use_logd: bool | None = None
        self.facility_set = False
        self.initdead_set = False
        self.deadping_set = False
        self.warntime_set = False

    # -- helpers

    def fail(self, problem: str, line: int | None = None) -> NoReturn:
        raise HeartbeatConfigError(self.filename, self.lineno if line is None else line, problem)

    def warn(self, problem: str, line: int | None = None) -> None:
        where = self.lineno if line is None else line
        prefix = f"{self.filename}:{where}" if where > 0 else self.filename
        self.cfg.warnings.append(f"{prefix}: {problem}")

    def unused(self, name: str) -> None:
        if name not in self.cfg.unused:
            self.cfg.unused.append(name)

    def add_media(self, medium: Medium) -> None:
        if len(self.cfg.media) + len(self.cfg.ping_nodes) >= MAXMEDIA:
            self.fail(f"Too many media specified (> {MAXMEDIA})")
        self.cfg.media.append(medium)
        self.any_media = True

    def add_node(self, name: str) -> None:
        name = name.lower()  # add_node: inplace_ascii_strdown
        if len(self.cfg.nodes) + len(self.cfg.ping_nodes) >= MAXNODE:
            self.fail(f"too many nodes (> {MAXNODE})")
        if name not in self.cfg.nodes:
            self.cfg.nodes.append(name)

    def add_ping(self, node: PingNode) -> None:
        if len(self.cfg.media) + len(self.cfg.ping_nodes) >= MAXMEDIA:
            self.fail(f"Too many media specified (> {MAXMEDIA})")
        if len(self.cfg.nodes) + len(self.cfg.ping_nodes) >= MAXNODE:
            self.fail(f"too many nodes (> {MAXNODE})")
        self.cfg.ping_nodes.append(node)
        self.any_media = True

    def port_for(self, plugin: str) -> int:
        # bcast_init / ucast_init read udpport once, when the plugin makes its first medium.
        if plugin not in self.plugin_port:
            self.plugin_port[plugin] = self.cfg.udpport if "udpport" in self.set else -1
        port = self.plugin_port[plugin]
        return port if port > 0 else default_udpport()

    def time(self, name: str, value: str, minimum: int) -> int:
        ms = get_msec(value)
        if ms < minimum:
            if name == "warntime":
                self.fail(f"Warn time [{value}] is invalid.")  # set_warntime_ms
            self.fail(f"invalid {name} [{value}]")
        return ms

    # -- the file

    def parse(self, text: str) -> HaConfig:
        for self.lineno, raw in enumerate(text.split("\n"), start=1):
            bp = raw.lstrip(_WHITESPACE)
            bp = bp.split("#", 1)[0]
            bp = re.split(r"[\r\n]", bp, maxsplit=1)[0]
            if not bp:
                continue
            m = re.match(r"[^ \t\n\r\f]*", bp)
            assert m is not None
            directive = m.group(0)
            if directive == "udp":
                self.warn("WARNING: directive 'udp' replaced by 'bcast'")
                directive = "bcast"
            if directive not in KNOWN_DIRECTIVES:
                self.fail(f"Illegal directive [{directive}] in {self.filename}")
            rest = bp[m.end() :].lstrip(_DELIMS)
            if directive in _WHOLE_LINE_MEDIA:
                self.whole_line_medium(directive, rest)
            elif directive in _WHOLE_LINE_DIRECTIVES:
                self.whole_line(directive, rest)
                self.any_media = True  # parse_config sets any_media_statements_yet here too
            else:
                for option in _DELIMS_RE.split(rest):
                    if option:
                        self.option(directive, option)
            if directive in _UNUSED and directive != "respawn":
                self.unused(directive)
            self.set[directive] = self.lineno
        self.finish()
        return self.cfg

    def option(self, name: str, value: str) -> None:  # add_option and the set_* functions
        cfg = self.cfg
        if name == "node":
            self.add_node(value)
        elif name == "keepalive":
            cfg.keepalive_ms = self.time(name, value, 1)
        elif name == "deadtime":
            cfg.deadtime_ms = self.time(name, value, 0)
        elif name == "deadping":
            cfg.deadping_ms = self.time(name, value, 0)
            self.deadping_set = True
        elif name == "initdead":
            cfg.initdead_ms = self.time(name, value, 0)
            self.initdead_set = True
        elif name == "warntime":
            cfg.warntime_ms = self.time(name, value, 1)
            self.warntime_set = True
        elif name == "udpport":
            port = _atoi(value)
            if port <= 0 or port > 65535:
                self.fail(f"invalid port [{value}] specified.")  # set_udpport
            cfg.udpport = port
            if self.plugin_port:
                self.warn("udpport setting must precede media statements")
        elif name == "hopfudge":
            cfg.hopfudge = _atoi(value)
            if not 0 <= cfg.hopfudge < 256:
                self.fail(f"invalid hopfudge [{value}]")
        elif name == "debug":
            cfg.debug = _atoi(value)
            if not 0 <= cfg.debug < 256:
                self.fail(f"invalid debug level [{value}]")
        elif name == "logfacility":
            if value != "none" and value not in _FACILITIES:
                self.fail(f"Log facility({value}) not valid")  # set_facility
            cfg.logfacility = None if value == "none" else value
            self.facility_set = value != "none"
        elif name == "logfile":
            cfg.logfile = value
        elif name == "debugfile":
            cfg.debugfile = value
        elif name == "use_logd":
            flag = _bool(value)
            if flag is None:
                self.fail(f"cl_str_to_boolean failed[{value}]")  # check_logd_usage
            self.use_logd = flag
        elif name == "auto_failback":
            flag = _bool(value)
            if flag is None and value.lower() != "legacy":
                self.fail(f"invalid auto_failback [{value}]: on, off or legacy")
            cfg.auto_failback = "legacy" if flag is None else ("on" if flag else "off")
            self.nice_failback = flag is not None
        elif name == "nice_failback":
            if _bool(value) is None:
                self.fail(f"invalid nice_failback [{value}]")
            self.warn(
                "nice_failback flag is obsolete. Use auto_failback {on, off, legacy} instead."
            )
            # set_nice_failback looks at the current setting, not at its own value.
            cfg.auto_failback = "off" if self.nice_failback else "legacy"
            self.nice_failback = cfg.auto_failback == "off"
        elif name == "msgfmt":
            if value not in ("classic", "netstring"):
                self.fail(f"invalid msgfmt [{value}]: classic or netstring")
            cfg.msgfmt = value
        elif name in ("crm", "pacemaker"):
            self.pacemaker(value)
        elif name in ("bcast", "serial", "ping", "ping6"):
            self.option_medium(name, value)
        else:
            self.unused_option(name, value)

    def pacemaker(self, value: str) -> None:  # set_release2mode / set_pcmk_support
        if self.pacemaker_seen:
            self.fail("pacemaker/crm directive used multiple times!")
        self.pacemaker_seen = True
        low = value.lower()
        flag = _bool(value)
        if low in ("minimal", "manual", "respawn", "ccm-only", "valgrind") or flag:
            self.fail(
                f"crm/pacemaker {value} is not supported: pylvs manages resources release-1 style"
                " (haresources); set 'crm off'"
            )
        if flag is None:
            self.fail(f"invalid crm/pacemaker value [{value}]")

    def option_medium(self, name: str, value: str) -> None:
        if name == "bcast":
            self.add_media(BcastMedium(value, self.port_for("bcast"), self.lineno))
        elif name == "serial":
            if not value.startswith("/"):
                self.fail(f"Serial port not full pathname [{value}] in config file")
            self.add_media(SerialMedium(value, self.baud or 19200, self.lineno))
        else:  # ping / ping6: a pseudo-node named by the host
            self.add_ping(PingNode(value.lower(), (value,), name, self.lineno))

    def whole_line_medium(self, name: str, rest: str) -> None:
        toks = rest.split()
        if not toks:
            return  # the plugins' parse functions accept an empty line and add nothing
        dev = toks[0]
        if name == "ucast":
            if len(toks) < 2:
                self.fail(f"ucast: [{dev}] missing target IP address/hostname")
            self.add_media(UcastMedium(dev, toks[1], self.port_for("ucast"), self.lineno))
        elif name == "mcast":
            self.mcast(toks)
        elif name == "ping_group":
            if len(toks) < 2:
                self.fail(f"ping_group [{dev}] has no hosts")
            self.add_ping(PingNode(dev.lower(), tuple(toks[1:]), "ping_group", self.lineno))
        else:  # mcast6 / ucast6
            if len(toks) < 2:
                self.fail(f"{name} [{dev}] missing {name} address")
            self.add_media(OtherMedium(name, tuple(toks), self.lineno))

    def mcast(self, toks: list[str]) -> None:  # mcast_parse
        dev = toks[0]
        if len(toks) < 2:
            self.fail(f"mcast [{dev}] missing mcast address")
        group = toks[1]
        try:
            addr = ipaddress.IPv4Address(group)
        except ValueError:
            addr = None
        if addr is None or not addr.is_multicast:
            self.fail(f"mcast [{dev}] bad addr [{group}]")
        names = ("port", "ttl", "loop")
        limits = (65535, 4, 1)  # get_port; "ttl > 4" and "loop > 1" are refused
        values: list[int] = []
        for i, (what, top) in enumerate(zip(names, limits, strict=True)):
            if len(toks) < 3 + i:
                self.fail(f"mcast [{dev}] missing {what}")
            tok = toks[2 + i]
            if not re.fullmatch(r"[0-9]+", tok) or int(tok) > top or (i == 0 and int(tok) == 0):
                self.fail(f"mcast [{dev}] bad {what} [{tok}]")
            values.append(int(tok))
        port, ttl, loop = values
        self.add_media(McastMedium(dev, str(addr), port, ttl, loop, self.lineno))

    def whole_line(self, name: str, rest: str) -> None:
        toks = rest.split()
        if name in ("respawn", "failfast"):  # add_client_child_base
            if not toks:
                self.fail("Invalid uid [] specified for client child")
            user = toks[0]
            command = rest[len(user) :].strip(_WHITESPACE)
            if not command.startswith("/"):
                self.fail(f"Client child command [{command}] is not full pathname")
            self.cfg.respawn.append(
                Respawn(user, command, command.split()[0], name == "failfast", self.lineno)
            )
        elif name == "stonith":
            if not toks:
                self.fail("No Stonith type given")
        elif name == "stonith_host":
            if not toks:
                self.fail("No Stonith hostname argument given")
            if len(toks) < 2:
                self.fail("No Stonith type given")
        else:  # apiauth client [uid=list] [gid=list]
            self.apiauth_line(rest.strip(_WHITESPACE), toks)

    def apiauth_line(self, line: str, toks: list[str]) -> None:  # set_api_authorization
        def bad(why: str = "") -> NoReturn:
            self.fail(f"{why}Invalid apiauth directive [{line}]")

        if not toks:
            bad()
        client, lists = toks[0], toks[1:]
        seen: set[str] = set()
        for tok in lists:
            kind = tok[:4]
            if kind not in ("uid=", "gid="):
                bad("Missing uid or gid in apiauth: ")
            if kind in seen:
                bad(f"Duplicate {kind[:3]} list in apiauth: ")
            seen.add(kind)
        if not seen:
            bad()
        if client in self.apiauth:
            self.fail(f"Duplicate apiauth directive for API client {client}: [{line}]")
        self.apiauth.add(client)

    def unused_option(self, name: str, value: str) -> None:
        if name in ("crm_daemon_dir", "crmd_spawns_pengine") and self.pacemaker_seen:
            self.fail(f"If you specify {name}, it must come before the pacemaker directive")
        booleans = (
            "realtime", "use_apphbd", "log_badpack", "syslogmsgfmt", "coredumps",
            "traditional_compression", "record_config_changes", "record_pengine_inputs",
            "enable_config_writes", "normalpoll", "crmd_spawns_pengine",
        )  # fmt: skip
        positive = ("compression_threshold", "max_rexmit_delay", "memreserve")
        if name in booleans and _bool(value) is None:
            self.fail(f"{name}: Invalid directive value {value}")
        elif name in positive and _atoi(value) <= 0:
            self.fail(f"invalid {name} [{value}]")
        elif name == "baud":
            if self.baud is not None:
                self.fail("Baudrate multiply specified.")
            if _atoi(value) not in _BAUDS:
                self.fail(f"invalid baudrate [{value}] specified.")
            self.baud = _atoi(value)
            if self.any_media:
                self.warn("baudrate setting must precede media statements")
        elif name == "watchdog":
            if self.watchdog is not None:
                self.fail("Watchdog device multiply specified.")
            self.watchdog = value
        elif name == "rtprio" and not 1 <= _atoi(value) <= 99:
            self.fail(f"Illegal realtime priority [{value}]")
        elif name == "hbgenmethod" and value not in ("file", "time"):
            self.fail(f"Illegal hb generation method [{value}]")
        elif name == "autojoin":
            if value.lower() not in ("none", "other", "any"):
                self.fail(f"Invalid autojoin directive [{value}]")
            self.cfg.autojoin = value.lower()
        elif name == "uuidfrom" and value not in ("file", "nodename"):
            self.fail(f"Invalid uuidfrom directive [{value}]")
        elif name == "conn_logd_time" and get_msec(value) <= 0:
            self.fail(f"invalid conn_logd_time [{value}]")
        elif name == "env" and not value.split("=", 1)[0]:
            self.fail(f"set_env: invalid nvpair({value})")

    # -- init_config's checks, in its order

    def finish(self) -> None:
        cfg = self.cfg
        line = self.set
        if not cfg.media and not cfg.ping_nodes:
            self.fail("No heartbeat media defined", 0)
        if not self.warntime_set:
            cfg.warntime_ms = cfg.deadtime_ms // 2
        if not cfg.nodes and cfg.autojoin != "any":
            self.fail("no nodes defined", 0)
        if cfg.nodename not in cfg.nodes:
            if cfg.autojoin != "any":
                self.fail(f"Current node [{cfg.nodename}] not in configuration!", 0)
            self.add_node(cfg.nodename)
            self.warn(f"Current node [{cfg.nodename}] added to configuration.", 0)
        if cfg.deadtime_ms <= 2 * cfg.keepalive_ms:
            self.fail(
                f"Dead time [{cfg.deadtime_ms}] is too small compared to keeplive"
                f" [{cfg.keepalive_ms}]",
                line.get("deadtime", line.get("keepalive", 0)),
            )
        if not self.initdead_set:
            if cfg.deadtime_ms > 10000:
                cfg.initdead_ms = cfg.deadtime_ms
            elif cfg.deadtime_ms < 6000:
                cfg.initdead_ms = 12000
            else:
                cfg.initdead_ms = 2 * cfg.deadtime_ms
        if cfg.initdead_ms < cfg.deadtime_ms:
            self.fail(
                f"Initial dead time [{cfg.initdead_ms}] is smaller than deadtime"
                f" [{cfg.deadtime_ms}]",
                line.get("initdead", 0),
            )
        elif cfg.initdead_ms < 10000:
            self.warn(f"Initial dead time [{cfg.initdead_ms} ms] may be too small!", 0)
        if not self.deadping_set:
            cfg.deadping_ms = cfg.deadtime_ms
        elif cfg.deadping_ms <= 2 * cfg.keepalive_ms:
            self.fail(
                f"Ping dead time [{cfg.deadping_ms}] is too small compared to keeplive"
                f" [{cfg.keepalive_ms}]",
                line.get("deadping", 0),
            )
        if "udpport" not in self.set:
            cfg.udpport = default_udpport()
        if cfg.auto_failback == "legacy":
            self.warn("Deprecated 'legacy' auto_failback option selected.", 0)
        # check_logd_usage
        if cfg.logfile is None and cfg.debugfile is None and not self.facility_set:
            if self.use_logd is False:
                self.fail("No log entry found in ha.cf and use_logd is set to off", 0)
            cfg.use_logd = True
        else:
            cfg.use_logd = bool(self.use_logd)
        # r1_style_valid
        if cfg.autojoin != "none":
            self.fail(
                "R1 style resource management conflicts with autojoin set;"
                " You need either unset autojoin or enable crm",
                line.get("autojoin", 0),
            )


def parse_ha_cf(text: str, filename: str = "ha.cf", nodename: str | None = None) -> HaConfig:
    """Parse ha.cf text for the node ``nodename`` (default ``uname -n``, lower-cased as heartbeat
    does)."""
    name = (nodename if nodename is not None else os.uname().nodename).lower()
    return _HaCfParser(filename, name).parse(text)


def load_ha_cf(path: str | Path, nodename: str | None = None) -> HaConfig:
    """Read and parse an ha.cf file."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise HeartbeatConfigError(str(p), 0, f"Cannot open config file [{p}]: {exc}") from exc
    return parse_ha_cf(text, str(p), nodename)


# --------------------------------------------------------------------------------------------
# authkeys


@dataclass
class Authkeys:
    """A parsed authkeys file: the signing key ``auth N`` selects and every key, by number."""

    filename: str
    selected: AuthKey
    keys: dict[int, AuthKey]
    auth_line: int = 0

    def signing_key(self) -> AuthKey:
        """The key ``auth N`` selects: the one this node signs with."""
        return self.selected


# sscanf(bp, "auth %d") and sscanf(bp, "%d%s%s") of parse_authfile.
_AUTH_RE = re.compile(r"auth\s*([+-]?[0-9]+)")
_KEY_RE = re.compile(r"([+-]?[0-9]+)\s*(\S+)(?:\s+(\S+))?")


def parse_authkeys(text: str, filename: str = "authkeys") -> Authkeys:
    """Parse authkeys text as ``parse_authfile`` does (no permission check: see
    :func:`load_authkeys`)."""
    authnum = -1
    auth_line = 0
    selected: AuthKey | None = None
    keys: dict[int, AuthKey] = {}

    def fail(line: int, problem: str) -> NoReturn:
        raise HeartbeatConfigError(filename, line, problem)

    for lineno, raw in enumerate(text.split("\n"), start=1):
        bp = raw.lstrip(_WHITESPACE)
        if not bp or bp[0] == "#":
            continue
        shown = raw.rstrip("\r")
        if bp[0] == "a":
            m = _AUTH_RE.match(bp)
            if not m:
                fail(lineno, f"Invalid auth line [{shown}] in {filename}")
            authnum, auth_line = int(m.group(1)), lineno
            continue
        m = _KEY_RE.match(bp)
        if not m:
            fail(lineno, f"Auth line [{shown}] is invalid.")
        num, method, secret = int(m.group(1)), m.group(2), m.group(3) or ""
        if not 0 <= num < MAXAUTH:
            fail(lineno, f"Invalid authnum [{num}] in {filename}")
        if method not in ("crc", "md5", "sha1"):
            fail(lineno, f"Invalid authtype [{method}]")
        if method == "crc" and secret:
            fail(lineno, f"Auth method [{method}] doesn't use a key")
        if method != "crc" and not secret:
            fail(lineno, f"Auth method [{method}] requires a key")
        key = AuthKey(num, method, secret.encode("utf-8", "surrogateescape"))
        keys[num] = key
        if num == authnum:  # the auth line must come first
            selected = key
    if selected is None:
        if authnum < 0:
            fail(0, f"Missing auth directive in keyfile [{filename}]")
        fail(0, f"Auth Key [{authnum}] not found in keyfile [{filename}]")
    return Authkeys(filename, selected, keys, auth_line)


def load_authkeys(path: str | Path) -> Authkeys:
    """Read an authkeys file, refusing it when group or world may read it (``parse_authfile``)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = f.read()
    except OSError as exc:
        raise HeartbeatConfigError(str(p), 0, f"Cannot open keyfile [{p}].  Stop.") from exc
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        raise HeartbeatConfigError(str(p), 0, f"Bad permissions on keyfile [{p}], 600 recommended.")
    return parse_authkeys(data.decode("utf-8", "surrogateescape"), str(p))


# --------------------------------------------------------------------------------------------
# haresources


@dataclass(frozen=True)
class Resource:
    """One resource: the script ``name`` and its arguments (``IPaddr2::10.0.0.1/24/eth0``)."""

    name: str
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "::".join((self.name, *self.args))


@dataclass(frozen=True)
class ResourceGroup:
    """A logical haresources line: the preferred node and its resources, started left to right."""

    node: str
    resources: tuple[Resource, ...]
    line: int = 0
    # ResourceManager's name for the group: its first resource as written (``listkeys``), the
    # ``ipaddr`` of ip-request messages.
    key: str = ""


def _is_ip(token: str) -> bool:
    # ResourceManager isip: case $1 in [0-9]*.[0-9]*.[0-9]*.[0-9]*)
    return fnmatch.fnmatchcase(token, "[0-9]*.[0-9]*.[0-9]*.[0-9]*")


def _resource(token: str) -> Resource:
    # canonname / resource2script / resource2arg: a bare IP is IPaddr::IP; "::" separates args.
    if "::" not in token:
        if _is_ip(token):
            return Resource("IPaddr", (token,))
        return Resource(token)
    name, _, rest = token.partition("::")
    return Resource(name, tuple(a for a in rest.split("::") if a))


def parse_haresources(
    text: str, filename: str = "haresources", nodes: Iterable[str] | None = None
) -> list[ResourceGroup]:
    """Parse haresources text. With ``nodes`` (ha.cf's), an unknown preferred node is refused with
    ``parse_ha_resources``' message; IPaddr/IPaddr2 arguments are checked with
    :func:`parse_ipaddr_arg`."""
    known = None if nodes is None else {n.lower() for n in nodes}
    groups: list[ResourceGroup] = []
    pending: list[str] = []
    start = 0
    lines = text.split("\n")
    for lineno, raw in enumerate(lines, start=1):
        part = raw.split("#", 1)[0]  # comments are stripped before lines are joined
        if not pending:
            start = lineno
        if part.endswith("\\") and lineno < len(lines):
            pending.append(part[:-1])
            continue
        logical = "".join(pending) + (part[:-1] if part.endswith("\\") else part)
        pending = []
        toks = logical.split()
        if not toks:
            continue
        node = toks[0].lower()  # ipres: $1 = tolower($1)
        if known is not None and node not in known:
            raise HeartbeatConfigError(filename, start, f"Bad nodename in {filename} [{toks[0]}]")
        resources = tuple(_resource(t) for t in toks[1:])
        for res in resources:
            if res.name in ("IPaddr", "IPaddr2"):
                if len(res.args) != 1:
                    raise HeartbeatConfigError(
                        filename, start, f"{res.name} needs one argument: {res}"
                    )
                try:
                    parse_ipaddr_arg(res.args[0])
                except ValueError as exc:
                    raise HeartbeatConfigError(filename, start, str(exc)) from None
        if not resources:
            continue  # heartbeat accepts a bare node name; ResourceManager finds no group in it
        groups.append(ResourceGroup(node, resources, start, toks[1]))
    return groups


def load_haresources(path: str | Path, nodes: Iterable[str] | None = None) -> list[ResourceGroup]:
    """Read and parse a haresources file."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise HeartbeatConfigError(str(p), 0, f"Cannot open resources file [{p}]: {exc}") from exc
    return parse_haresources(text, str(p), nodes)


@dataclass(frozen=True)
class IPAddrSpec:
    """An IPaddr/IPaddr2 argument ``ip[/bits[/iface[:label]][/broadcast]]``.

    ``prefixlen``, ``iface`` and ``broadcast`` are None when not written: IPaddr2 then takes the
    prefix length and interface from the route to the address, and uses ``brd +`` (the highest
    address of the subnet; none for /31 and /32), which :meth:`broadcast_for` computes.
    """

    ip: str
    prefixlen: int | None = None
    iface: str | None = None
    label: str | None = None
    broadcast: str | None = None

    def broadcast_for(self, prefixlen: int) -> str | None:
        """The broadcast address to configure with ``prefixlen``: the written one, else brd +."""
        if self.broadcast is not None:
            return self.broadcast
        if prefixlen >= 31:
            return None
        net = ipaddress.IPv4Network(f"{self.ip}/{prefixlen}", strict=False)
        return str(net.broadcast_address)


def parse_ipaddr_arg(arg: str) -> IPAddrSpec:
    """Split an IPaddr/IPaddr2 argument as the heartbeat wrappers in resource.d do: the third
    field is the broadcast address when it starts with a digit, else the interface (optionally
    ``iface:label``) followed by the broadcast. The netmask may be bits or dotted. Raises
    ValueError with the reason."""
    fields = arg.split("/")
    try:
        # IPv6 too (IPaddr2 FAMILY=inet6 when the address has a ":"; IPv6addr)
        parsed = ipaddress.ip_address(fields[0])
    except ValueError:
        raise ValueError(f"invalid IP address [{fields[0]}] in [{arg}]") from None
    ip = str(parsed)
    most = 32 if parsed.version == 4 else 128
    prefixlen: int | None = None
    iface: str | None = None
    label: str | None = None
    broadcast: str | None = None
    if len(fields) > 1 and fields[1]:
        mask = fields[1]
        try:
            if mask.isdigit():
                prefixlen = int(mask)
                if prefixlen > most:
                    raise ValueError
            elif parsed.version == 6:
                raise ValueError
            else:
                prefixlen = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
        except ValueError:
            raise ValueError(f"invalid netmask [{mask}] in [{arg}]") from None
    if len(fields) > 2 and fields[2]:
        third = fields[2]
        if third[0].isdigit():
            broadcast = third
        else:
            iface, _, lbl = third.partition(":")
            label = lbl or None
            if len(fields) > 3 and fields[3]:
                broadcast = fields[3]
    if broadcast is not None and parsed.version == 6:
        raise ValueError(f"an IPv6 address has no broadcast address [{broadcast}] in [{arg}]")
    if broadcast is not None:
        try:
            broadcast = str(ipaddress.IPv4Address(broadcast))
        except ValueError:
            raise ValueError(f"invalid broadcast address [{broadcast}] in [{arg}]") from None
    return IPAddrSpec(ip, prefixlen, iface, label, broadcast)
