"""keepalived.conf (keepalived 2.2.7): parsed into :class:`~pylvs.config.kamodel.KeepalivedConfig`
and, for its IPVS part, into the :class:`~pylvs.config.model.Config` the daemon applies.

The grammar (comments, ``include``, ``$VAR``, ``@`` lines, quotes, blocks) is in
:mod:`pylvs.config._ka_reader`. The keywords, their ranges, defaults and messages follow
keepalived's ``check_parser.c``, ``check_*.c``, ``vrrp_parser.c``, ``global_parser.c`` and the
validation in ``check_data.c`` / ``vrrp.c``.

What keepalived does with a problem decides what pylvs does with it:

* keepalived reports it and runs with the value ignored or reset (``keepalived -t`` exits 5):
  for a value it ignores (an invalid number, address, scheduler, a missing parameter...) pylvs
  refuses the file (:class:`ConfigError` ``file:line: message``, keepalived's text), because a
  director must not serve a farm other than the one written. Where keepalived's result is
  well defined (an unknown keyword, which it skips; "no protocol set - defaulting to UDP"; a
  virtual server without real servers, which it drops) pylvs does the same and records
  keepalived's message in ``warnings``.
* keepalived cannot run it (exit 4: a file it cannot read, an unbalanced block): ConfigError.

Interfaces are not looked up (keepalived's "interface ... doesn't exist" needs the machine the
file is for). Keywords keepalived knows but pylvs does not act on are accepted and listed in
:attr:`KeepalivedConfig.unused`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import pwd
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from pylvs.core.control import DestSpec, ServiceSpec, Timeouts
from pylvs.core.service import (
    AF_INET,
    AF_INET6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    FwdMethod,
    ServiceFlags,
    TunType,
)

from ._ka_reader import Node, quoted_escaped, read_tree
from ._resolve import MAX_RANGE, MAX_REALS, MAX_TIMEOUT
from .kamodel import (
    AuthConfig,
    BfdCheck,
    Checker,
    DnsCheck,
    FileCheck,
    GlobalDefs,
    HttpCheck,
    HttpUrl,
    KeepalivedConfig,
    LvsSyncDaemon,
    MiscCheck,
    PingCheck,
    RealServer,
    SmtpCheck,
    SmtpHost,
    SorryServer,
    TcpCheck,
    TrackedInterface,
    TrackedScript,
    TrackFile,
    UdpCheck,
    UnicastPeer,
    VirtualAddress,
    VirtualServer,
    VirtualServerGroup,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
    VsgEntry,
)
from .model import Config, ConfigError, RealConfig, VirtualConfig

__all__ = [
    "KeepalivedConfig",
    "load_keepalived",
    "looks_like_keepalived",
    "parse_keepalived",
    "parse_keepalived_model",
    "to_config",
]

# check_parser.c lvs_schedulers[].
SCHEDULERS = (
    "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos",
)  # fmt: skip
# ip_vs.h IPVS_WEIGHT_MAX: the kernel's dest weight is an int (ipvsadm alone stops at 65535).
IPVS_WEIGHT_LIMIT = 2**31 - 1
IPVS_FWMARK_MAX = 2**32 - 1
UINT_MAX = 2**32 - 1
# timer.h TIMER_MAX_SEC (preempt_delay's limit); read_timer's limits are in microseconds:
# TIMER_MAXIMUM (ULONG_MAX - 1) when none is given, UINT_MAX for connect_timeout.
TIMER_MAX_SEC = 1000
TIMER_MAXIMUM = (2**64 - 2) / 1e6
UINT_MAX_USEC = (2**32 - 1) / 1e6
# vrrp.h: VRRP_PRIO_OWNER, VRRP_PRIO_DFL.
PRIO_OWNER = 255
PRIO_DFL = 100
_FORWARD = {"NAT": int(FwdMethod.MASQ), "DR": int(FwdMethod.ROUTE), "TUN": int(FwdMethod.TUNNEL)}
_SCHED_FLAG_BITS = {
    "flag-1": int(ServiceFlags.SCHED1),
    "flag-2": int(ServiceFlags.SCHED2),
    "flag-3": int(ServiceFlags.SCHED3),
    "sh-fallback": int(ServiceFlags.SCHED1),
    "sh-port": int(ServiceFlags.SCHED2),
    "mh-fallback": int(ServiceFlags.SCHED1),
    "mh-port": int(ServiceFlags.SCHED2),
}
_TRUE_FALSE = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}
_DNS_TYPES = ("A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA")
_HTTP_PROTOCOLS = ("1.0", "1.0C", "1.0K", "1.1")
_REGEX_OPTIONS = (
    "allow_empty_class", "alt_bsux", "auto_callout", "caseless", "dollar_endonly", "dotall",
    "dupnames", "extended", "extended_more", "firstline", "match_unset_backref", "multiline",
    "never_backslash_c", "never_ucp", "never_utf", "no_auto_capture", "no_auto_possess",
    "no_dotstar_anchor", "no_start_optimize", "ucp", "ungreedy", "utf",
)  # fmt: skip

# Top-level keywords keepalived knows (global_parser.c install_keyword_root, vrrp_parser.c,
# check_parser.c, bfd_parser.c) that pylvs accepts without using them.
_ROOT_UNUSED = frozenset(
    {
        "linkbeat_use_polling", "net_namespace", "net_namespace_ipvs", "namespace_with_ipsets",
        "use_pid_dir", "instance", "child_wait_time", "SSL", "static_ipaddress",
        "static_routes", "static_rules", "vrrp_track_process", "garp_group", "bfd_instance",
        "track_group",
    }
)  # fmt: skip

_GLOBAL_UNUSED = frozenset(
    {
        "process_names", "process_name", "vrrp_process_name", "checker_process_name",
        "lvs_process_name", "bfd_process_name", "startup_script", "startup_script_timeout",
        "shutdown_script", "shutdown_script_timeout", "max_auto_priority",
        "min_auto_priority_delay", "no_email_faults",
        "disable_local_igmp", "vrrp_garp_extra_if", "vrrp_vmac_garp_intvl", "vrrp_iptables",
        "vrrp_ipsets", "nftables", "nftables_priority", "nftables_ifindex", "nftables_ipvs",
        "nftables_ipvs_priority", "nftables_ipvs_start_fwmark", "nftables_counters",
        "vrrp_priority", "vrrp_no_swap", "vrrp_rt_priority", "vrrp_cpu_affinity",
        "vrrp_rlimit_rttime", "vrrp_rlimit_rtime", "notify_fifo", "notify_fifo_script",
        "vrrp_notify_fifo", "vrrp_notify_fifo_script", "vrrp_notify_priority_changes",
        "fifo_write_vrrp_states_on_reload", "lvs_notify_fifo", "lvs_notify_fifo_script",
        "checker_priority", "checker_no_swap", "checker_rt_priority", "checker_cpu_affinity",
        "checker_rlimit_rttime", "checker_rlimit_rtime", "bfd_priority", "bfd_no_swap",
        "bfd_rt_priority", "bfd_cpu_affinity", "bfd_rlimit_rttime", "bfd_rlimit_rtime",
        "snmp_socket", "enable_traps", "enable_snmp_vrrp", "enable_snmp_keepalived",
        "enable_snmp_rfc", "enable_snmp_rfcv2", "enable_snmp_rfcv3", "enable_snmp_checker",
        "enable_dbus", "dbus_service_name", "vrrp_netlink_cmd_rcv_bufs",
        "vrrp_netlink_cmd_rcv_bufs_force", "vrrp_netlink_monitor_rcv_bufs",
        "vrrp_netlink_monitor_rcv_bufs_force", "process_monitor_rcv_bufs",
        "process_monitor_rcv_bufs_force", "lvs_netlink_cmd_rcv_bufs",
        "lvs_netlink_cmd_rcv_bufs_force", "lvs_netlink_monitor_rcv_bufs",
        "lvs_netlink_monitor_rcv_bufs_force", "rs_init_notifies", "no_checker_emails",
        "vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier", "vrrp_startup_delay",
        "log_unknown_vrids", "vmac_prefix", "vmac_addr_prefix", "umask", "random_seed",
        "reload_check_config", "reload_time_file", "reload_repeat", "reload_file",
        "include_check", "config_save_dir", "tmp_config_directory", "data_use_instance",
        "lvs_flush_on_stop", "linkbeat_use_polling", "net_namespace", "net_namespace_ipvs",
        "namespace_with_ipsets", "use_pid_dir", "instance", "child_wait_time",
    }
)  # fmt: skip

_VRRP_UNUSED = frozenset(
    {
        "use_vmac_addr", "use_ipvlan", "unicast_fault_no_peer", "check_unicast_src",
        "old_unicast_checksum", "native_ipv6", "vrf", "track_file", "track_process",
        "track_bfd", "mcast_dst_ip", "track_src_ip", "promote_secondaries",
        "linkbeat_use_polling", "virtual_rules", "skip_check_adv_addr", "debug",
        "notify_deleted", "notify_master_rx_lower_pri", "notify_priority_changes",
        "down_timer_adverts", "garp_extra_if", "vmac_garp_intvl", "lower_prio_no_advert",
        "higher_prio_send_advert", "kernel_rx_buf_size",
    }
)  # fmt: skip

_SYNC_UNUSED = frozenset(
    {"track_file", "track_process", "track_bfd", "global_tracking",
     "sync_group_tracking_weight", "notify_priority_changes"}
)  # fmt: skip

Handler = Callable[[Node, Any], None]


def _is_v6(text: str) -> bool:
    return ":" in text


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _uint_text(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        return None
    return int(text)


_DECIMAL_RE = re.compile(r"(\d{1,12})(?:\.(\d{0,6}))?|\.(\d{1,6})")


def _decimal_text(text: str) -> float | None:
    """keepalived read_decimal_unsigned_strvec: digits with up to 6 decimals (microseconds)."""
    if not _DECIMAL_RE.fullmatch(text):
        return None
    return float(text)


def _fill(problem: str, value: str) -> str:
    """Put the offending word into a message at its last ``{v}`` (names written earlier into
    the message by an f-string may contain ``{v}`` themselves)."""
    head, sep, tail = problem.rpartition("{v}")
    return head + value + tail if sep else problem


# Keywords read and checked as keepalived checks them (with its errors and warnings) that pylvs
# does not act on: `--check` lists them with the keywords it skips (``KeepalivedConfig.unused``).
CHECKED_NOT_RUN = frozenset(
    {
        "use_vmac",  # no macvlan in this kernel: the interface's own MAC is used
        "vmac_xmit_base",
        "accept",
        "no_accept",
        "vrrp_garp_interval",
        "vrrp_min_garp",
        "notification_email",  # no e-mail alerts
        "notification_email_from",
        "smtp_server",
        "smtp_connect_timeout",
        "smtp_alert",
        "smtp_alert_vrrp",
        "smtp_alert_checker",
        "ha_suspend",
        "lvs_flush",  # pylvsd starts with an empty table and removes what it added at stop
        "lvs_flush_onstop",
    }
)


class _Parser:
    def __init__(self, cfg: KeepalivedConfig) -> None:
        self.cfg = cfg
        # Values written in the file, for keepalived's inheritance (checker <- rs <- vs).
        self.written: dict[int, dict[str, Any]] = {}

    # --- reporting ---------------------------------------------------------------------------

    def fail(self, n: Node, problem: str) -> NoReturn:
        raise ConfigError(n.file, n.line, problem)

    def warn(self, n: Node, problem: str) -> None:
        where = f"{n.file}:{n.line}" if n.line > 0 else n.file
        self.cfg.warnings.append(f"{where}: {problem}")

    def keep(self, n: Node, extra: dict[str, list[str]]) -> None:
        """A keyword keepalived knows that pylvs accepts without acting on it."""
        extra[n.keyword] = n.words[1:]
        self.cfg.unused.append(f"{n.file}:{n.line}: {n.keyword}")

    def mark(self, obj: object, key: str, value: Any) -> None:
        self.written.setdefault(id(obj), {})[key] = value

    def given(self, obj: object, key: str) -> Any:
        return self.written.get(id(obj), {}).get(key)

    # --- words -------------------------------------------------------------------------------

    def arg(self, n: Node, i: int = 1) -> str:
        if i >= len(n.words):
            # parser.c null_strvec(): keepalived exits on this one.
            self.fail(
                n,
                f"*** Configuration line starting `{n.words[0]}` is missing a parameter after "
                f"keyword `{n.words[i - 1]}` at word position {i + 1}",
            )
        return n.words[i]

    def rest(self, n: Node, i: int = 1) -> str:
        self.arg(n, i)
        return " ".join(n.words[i:])

    def uint(self, n: Node, i: int, low: int, high: int, problem: str) -> int:
        text = self.arg(n, i)
        value = _uint_text(text)
        if value is None or not low <= value <= high:
            self.fail(n, _fill(problem, text))
        return value

    def sint(self, n: Node, i: int, low: int, high: int, problem: str) -> int:
        text = self.arg(n, i)
        neg = text.startswith("-")
        value = _uint_text(text[1:] if neg or text.startswith("+") else text)
        if value is None or not low <= (-value if neg else value) <= high:
            self.fail(n, _fill(problem, text))
        return -value if neg else value

    def timer(
        self, n: Node, i: int, low: float, problem: str, high: float = TIMER_MAXIMUM
    ) -> float:
        text = self.arg(n, i)
        value = _decimal_text(text)
        if value is None or not low <= value <= high:
            self.fail(n, _fill(problem, text))
        return value

    def true_false(self, n: Node, problem: str) -> bool:
        """An optional yes/no after a flag keyword (parser.c check_true_false)."""
        if len(n.words) < 2:
            return True
        value = _TRUE_FALSE.get(n.words[1])
        if value is None:
            self.fail(n, _fill(problem, n.words[1]))
        return value

    def address(self, n: Node, text: str, problem: str) -> str:
        ip = _ip(text)
        if ip is None:
            self.fail(n, _fill(problem, text))
        return str(ip)

    def port(self, n: Node, text: str, problem: str) -> int:
        value = _uint_text(text)
        if value is None or value > 65535:
            self.fail(n, _fill(problem, text))
        return value

    def block(self, n: Node) -> list[Node]:
        if n.block is None:
            self.fail(n, f"Missing '{{' at beginning of configuration block {n.keyword}")
        return n.block

    def walk(
        self,
        n: Node,
        obj: Any,
        table: dict[str, Handler],
        unused: frozenset[str] = frozenset(),
        extra: dict[str, list[str]] | None = None,
    ) -> None:
        for child in self.block(n):
            handler = table.get(child.keyword)
            if handler is not None:
                handler(child, obj)
                if child.keyword in CHECKED_NOT_RUN:
                    self.cfg.unused.append(f"{child.file}:{child.line}: {child.keyword}")
            elif child.keyword in unused and extra is not None:
                self.keep(child, extra)
            else:
                # parser.c process_stream(): logged, the line (and its block) skipped.
                self.warn(child, f"Unknown keyword '{child.keyword}'")

    # --- generic handlers --------------------------------------------------------------------

    def set_flag(self, attr: str, problem: str = "Invalid {v}") -> Handler:
        def h(n: Node, obj: Any) -> None:
            setattr(obj, attr, self.true_false(n, problem))

        return h

    def set_str(self, attr: str) -> Handler:
        def h(n: Node, obj: Any) -> None:
            setattr(obj, attr, self.arg(n))

        return h

    def set_rest(self, attr: str) -> Handler:
        def h(n: Node, obj: Any) -> None:
            setattr(obj, attr, self.rest(n))

        return h

    def set_uint(self, attr: str, low: int, high: int, problem: str) -> Handler:
        def h(n: Node, obj: Any) -> None:
            setattr(obj, attr, self.uint(n, 1, low, high, problem))

        return h

    def set_timer(
        self, attr: str, low: float, problem: str, high: float = TIMER_MAXIMUM
    ) -> Handler:
        def h(n: Node, obj: Any) -> None:
            setattr(obj, attr, self.timer(n, 1, low, problem, high))

        return h

    def set_script(self, attr: str, owner: str) -> Handler:
        def h(n: Node, obj: Any) -> None:
            if getattr(obj, attr) is not None:
                self.fail(
                    n, f"({owner}) {n.keyword} script already specified - ignoring {n.words[1:]}"
                )
            setattr(obj, attr, self.script_text(n))

        return h

    def script_text(self, n: Node) -> str:
        """A notify script line as keepalived's ``notify_script_init`` reads it: the line
        again with quotes and escapes (``"/bin/sh -c \\"exit 0\\""``); the script string is the
        second word; a ``USER [GROUP]`` after it is reported as not used."""
        words = quoted_escaped(n.raw) if n.raw is not None else None
        if not words or len(words) < 2:
            return self.rest(n)
        if len(words) > 2:
            self.warn(n, f"{n.keyword}: user/group {' '.join(words[2:])} not used by pylvs")
        return words[1]

    def written_timer(
        self, key: str, low: float, problem: str, high: float = TIMER_MAXIMUM
    ) -> Handler:
        def h(n: Node, obj: Any) -> None:
            self.mark(obj, key, self.timer(n, 1, low, problem, high))

        return h

    def written_uint(self, key: str, low: int, problem: str) -> Handler:
        def h(n: Node, obj: Any) -> None:
            self.mark(obj, key, self.uint(n, 1, low, UINT_MAX, problem))

        return h

    def written_flag(self, key: str, problem: str) -> Handler:
        def h(n: Node, obj: Any) -> None:
            self.mark(obj, key, self.true_false(n, problem))

        return h

    # --- the file ----------------------------------------------------------------------------

    def top(self, nodes: list[Node]) -> None:
        for n in nodes:
            kw = n.keyword
            if kw == "global_defs":
                self.walk(
                    n,
                    self.cfg.global_defs,
                    self.global_table(),
                    _GLOBAL_UNUSED,
                    self.cfg.global_defs.extra,
                )
            elif kw == "virtual_server":
                self.virtual_server(n)
            elif kw == "virtual_server_group":
                self.virtual_server_group(n)
            elif kw == "vrrp_instance":
                self.vrrp_instance(n)
            elif kw == "vrrp_sync_group":
                self.vrrp_sync_group(n)
            elif kw == "vrrp_script":
                self.vrrp_script(n)
            elif kw in ("track_file", "vrrp_track_file"):
                self.track_file(n)
            elif kw in _ROOT_UNUSED or kw in _GLOBAL_UNUSED:
                self.keep(n, self.cfg.extra)
            else:
                self.warn(n, f"Unknown keyword '{kw}'")

    # --- global_defs -------------------------------------------------------------------------

    def global_table(self) -> dict[str, Handler]:
        t: dict[str, Handler] = {
            "router_id": self.set_str("router_id"),
            "notification_email_from": self.set_str("notification_email_from"),
            "notification_email": self.g_emails,
            "smtp_server": self.g_smtp_server,
            "smtp_helo_name": self.set_str("smtp_helo_name"),
            "smtp_connect_timeout": self.set_timer(
                "smtp_connect_timeout", 1, "smtp_connect_timeout '{v}' invalid"
            ),
            "smtp_alert": self.set_flag("smtp_alert", "Invalid value '{v}' for smtp_alert"),
            "smtp_alert_vrrp": self.set_flag(
                "smtp_alert_vrrp", "Invalid value '{v}' for smtp_alert_vrrp"
            ),
            "smtp_alert_checker": self.set_flag(
                "smtp_alert_checker", "Invalid value '{v}' for smtp_alert_checker"
            ),
            "enable_script_security": self.set_flag("enable_script_security"),
            "checker_log_all_failures": self.set_flag("checker_log_all_failures"),
            "script_user": self.g_script_user,
            "default_interface": self.set_str("default_interface"),
            "dynamic_interfaces": self.set_flag("dynamic_interfaces"),
            "vrrp_version": self.set_uint("vrrp_version", 2, 3, "Unknown VRRP version {v}"),
            "vrrp_strict": self.set_flag("vrrp_strict"),
            "vrrp_mcast_group4": self.g_mcast(4),
            "vrrp_mcast_group6": self.g_mcast(6),
            "vrrp_garp_master_delay": self.set_timer(
                "vrrp_garp_master_delay", 0, "vrrp_garp_master_delay '{v}' invalid"
            ),
            "vrrp_garp_master_repeat": self.set_uint(
                "vrrp_garp_master_repeat", 0, UINT_MAX, "vrrp_garp_master_repeat '{v}' invalid"
            ),
            "vrrp_garp_master_refresh": self.set_timer(
                "vrrp_garp_master_refresh", 0, "vrrp_garp_master_refresh '{v}' invalid"
            ),
            "vrrp_garp_master_refresh_repeat": self.set_uint(
                "vrrp_garp_master_refresh_repeat",
                0,
                UINT_MAX,
                "vrrp_garp_master_refresh_repeat '{v}' invalid",
            ),
            "vrrp_garp_lower_prio_delay": self.set_timer(
                "vrrp_garp_lower_prio_delay", 0, "vrrp_garp_lower_prio_delay '{v}' invalid"
            ),
            "vrrp_garp_lower_prio_repeat": self.set_uint(
                "vrrp_garp_lower_prio_repeat",
                0,
                UINT_MAX,
                "Invalid vrrp_garp_lower_prio_repeat '{v}'",
            ),
            "vrrp_garp_interval": self.set_timer(
                "vrrp_garp_interval", 0, "vrrp_garp_interval '{v}' invalid", 1.0
            ),
            "vrrp_gna_interval": self.set_timer(
                "vrrp_gna_interval", 0, "vrrp_gna_interval '{v}' invalid", 1.0
            ),
            "vrrp_min_garp": self.set_flag("vrrp_min_garp"),
            "vrrp_lower_prio_no_advert": self.set_flag("vrrp_lower_prio_no_advert"),
            "vrrp_higher_prio_send_advert": self.set_flag("vrrp_higher_prio_send_advert"),
            "vrrp_skip_check_adv_addr": self.set_flag("vrrp_skip_check_adv_addr"),
            "vrrp_check_unicast_src": self.set_flag("vrrp_check_unicast_src"),
            "vrrp_down_timer_adverts": self.set_uint(
                "vrrp_down_timer_adverts", 1, 100, "Invalid vrrp_down_timer_adverts [1:100] '{v}'"
            ),
            "lvs_sync_daemon": self.g_lvs_syncd,
            "lvs_timeouts": self.g_lvs_timeouts,
            "lvs_flush": self.set_flag("lvs_flush"),
            "lvs_flush_onstop": self.set_flag("lvs_flush_onstop"),
        }
        return t

    def g_emails(self, n: Node, g: GlobalDefs) -> None:
        if not self.block(n):
            self.warn(n, "Warning - empty notification_email block")
        for child in self.block(n):
            g.notification_email.extend(child.words)
            if child.block is not None:
                self.fail(child, "Unexpected '{'")

    def g_smtp_server(self, n: Node, g: GlobalDefs) -> None:
        text = self.arg(n)
        ip = _ip(text)
        if ip is None and not re.fullmatch(r"[A-Za-z0-9.-]+", text):
            self.fail(n, f"Invalid smtp server {text}")
        g.smtp_server = str(ip) if ip is not None else text
        if len(n.words) > 2:
            g.smtp_server_port = self.port(n, n.words[2], "Invalid smtp server port {v}")

    def g_script_user(self, n: Node, g: GlobalDefs) -> None:
        g.script_user = self.arg(n)
        g.script_group = n.words[2] if len(n.words) > 2 else None

    def g_mcast(self, version: int) -> Handler:
        def h(n: Node, g: GlobalDefs) -> None:
            ip = _ip(self.arg(n))
            if ip is None or ip.version != version or not ip.is_multicast:
                self.fail(n, f"vrrp_mcast_group{version} '{n.words[1]}' is invalid")
            setattr(g, f"vrrp_mcast_group{version}", str(ip))

        return h

    def g_lvs_syncd(self, n: Node, g: GlobalDefs) -> None:
        if g.lvs_sync_daemon is not None:
            self.fail(n, "lvs_sync_daemon has already been specified - ignoring")
        if len(n.words) < 2:
            self.fail(n, "lvs_sync_daemon requires interface")
        if len(n.words[1]) >= 16:
            self.fail(n, f"lvs_sync_daemon interface name '{n.words[1]}' too long - ignoring")
        sd = LvsSyncDaemon(interface=n.words[1], line=n.line)
        i = 2
        limits = {
            "id": (0, 255),
            "maxlen": (1, 65535 - 20 - 8),
            "port": (1, 65535),
            "ttl": (1, 255),
        }
        while i < len(n.words):
            word = n.words[i]
            if word in limits or word in ("inst", "group"):
                if i + 1 >= len(n.words):
                    self.fail(n, f"No value specified for lvs_sync_daemon {word} - ignoring")
                value = n.words[i + 1]
                if word == "inst":
                    sd.instance = value
                elif word == "group":
                    sd.group = self.address(
                        n, value, "Invalid lvs_sync_daemon group {v} - ignoring"
                    )
                else:
                    low, high = limits[word]
                    name = "syncid" if word == "id" else f"lvs_sync_daemon {word}"
                    number = self.uint(n, i + 1, low, high, f"Invalid {name} ({{v}}) - ignoring")
                    setattr(sd, "syncid" if word == "id" else word, number)
                i += 2
            elif i == 2:
                sd.instance = word  # the old form: lvs_sync_daemon IF INSTANCE ...
                i += 1
            else:
                self.fail(n, f"Unknown option {word} specified for lvs_sync_daemon")
        g.lvs_sync_daemon = sd

    def g_lvs_timeouts(self, n: Node, g: GlobalDefs) -> None:
        if len(n.words) < 3:
            self.fail(n, "lvs_timeouts requires at least one option")
        i = 1
        while i < len(n.words):
            word = n.words[i]
            if word not in ("tcp", "tcpfin", "udp"):
                self.fail(n, f"Unknown option {word} specified for lvs_timeouts")
            if i + 1 >= len(n.words):
                self.fail(n, f"No value specified for lvs_timeout {word} - ignoring")
            g.lvs_timeouts[word] = self.uint(
                n, i + 1, 0, MAX_TIMEOUT, f"Invalid lvs_timeout {word} ({{v}}) - ignoring"
            )
            i += 2

    # --- virtual_server_group ----------------------------------------------------------------

    def virtual_server_group(self, n: Node) -> None:
        name = self.arg(n)
        vsg = VirtualServerGroup(name=name, line=n.line)
        for e in self.block(n):
            vsg.entries.append(self.vsg_entry(e, name))
        if not vsg.entries:
            self.warn(n, f"virtual server group {name} has no entries - removing")
            return
        if name in self.cfg.virtual_server_groups:
            self.fail(n, f"virtual server group {name} already defined")
        self.cfg.virtual_server_groups[name] = vsg

    def vsg_entry(self, e: Node, group: str) -> VsgEntry:
        if e.block is not None:
            self.fail(e, "Unexpected '{'")
        if e.keyword == "fwmark":
            mark = self.uint(
                e,
                1,
                1,
                UINT_MAX,
                # keepalived's range starts at 0, but IPVS has no firewall-mark service 0.
                f"({group}): fwmark '{{v}}' must be in [1, {UINT_MAX}] - ignoring",
            )
            family = e.words[2] if len(e.words) > 2 else None
            if family not in (None, "inet", "inet6"):
                self.fail(e, f"({group}): fwmark '{mark}' family {family} unknown - ignoring")
            return VsgEntry(fwmark=mark, family=family, line=e.line)
        text = e.keyword
        port = 0
        if len(e.words) > 1:
            port = self.port(
                e, e.words[1], f"Invalid virtual server group IP address {text} {{v}} - skipping"
            )
        first, sep, end = text.partition("-")
        ip = _ip(first)
        if ip is None or "/" in text:
            self.fail(e, f"Invalid virtual server group IP address {text} - skipping")
        if not sep:
            return VsgEntry(addr=str(ip), port=port, line=e.line)
        # keepalived's range: the last byte (IPv4) or the last 16-bit group (IPv6) of the first
        # address runs up to END (check_data.c alloc_vsg_entry).
        if ip.version == 4:
            value = _uint_text(end)
            low = int(ip) & 0xFF
            high = 255
            step_mask = 0xFF
        else:
            value = int(end, 16) if re.fullmatch(r"[0-9A-Fa-f]{1,4}", end) else None
            low = int(ip) & 0xFFFF
            high = 0xFFFF
            step_mask = 0xFFFF
        if value is None or value > high:
            self.fail(e, f"Invalid range end {text} - skipping")
        if value < low:
            self.fail(e, f"Address range end is less than address range start - {text} - skipping")
        last = type(ip)((int(ip) & ~step_mask) | value)
        return VsgEntry(addr=str(ip), last=str(last), port=port, line=e.line)

    # --- virtual_server ----------------------------------------------------------------------

    def vs_table(self) -> dict[str, Handler]:
        return {
            "ip_family": self.vs_ip_family,
            "retry": self.written_uint("retry", 1, "retry value invalid - {v}"),
            "delay_before_retry": self.written_timer(
                "delay_before_retry",
                0,
                "virtual server delay before retry '{v}' invalid - ignoring",
            ),
            "warmup": self.written_timer(
                "warmup", 0, "virtual server warmup '{v}' invalid - ignoring"
            ),
            "connect_timeout": self.set_timer(
                "connect_timeout",
                0.000001,
                "virtual server connect_timeout {v} invalid - ignoring",
                UINT_MAX_USEC,
            ),
            "delay_loop": self.set_timer(
                "delay_loop", 0.000001, "virtual server delay loop '{v}' invalid - ignoring"
            ),
            "inhibit_on_failure": self.set_flag(
                "inhibit_on_failure", "Invalid inhibit_on_failure parameter {v}"
            ),
            "lb_algo": self.vs_sched,
            "lvs_sched": self.vs_sched,
            "hashed": self.vs_hashed,
            "ops": self.vs_flag,
            "flag-1": self.vs_flag,
            "flag-2": self.vs_flag,
            "flag-3": self.vs_flag,
            "sh-port": self.vs_flag,
            "sh-fallback": self.vs_flag,
            "mh-port": self.vs_flag,
            "mh-fallback": self.vs_flag,
            "lb_kind": self.vs_method,
            "lvs_method": self.vs_method,
            "persistence_engine": self.vs_pe,
            "persistence_timeout": self.vs_pto,
            "persistence_granularity": self.vs_pgr,
            "protocol": self.vs_protocol,
            "ha_suspend": self.set_flag("ha_suspend"),
            "smtp_alert": self.set_flag(
                "smtp_alert", "Invalid virtual_server smtp_alert parameter {v}"
            ),
            "virtualhost": self.set_str("virtualhost"),
            "alpha": self.set_flag("alpha", "Invalid alpha parameter {v}"),
            "omega": self.set_flag("omega", "Invalid omega parameter {v}"),
            "quorum_up": self.set_script("quorum_up", "virtual server"),
            "quorum_down": self.set_script("quorum_down", "virtual server"),
            "quorum": self.set_uint(
                "quorum", 1, UINT_MAX, f"Quorum {{v}} must be in [1, {UINT_MAX}]. Setting to 1."
            ),
            "hysteresis": self.set_uint(
                "hysteresis", 0, UINT_MAX, f"Hysteresis {{v}} must be in [0, {UINT_MAX}] - ignoring"
            ),
            "weight": self.set_uint(
                "weight",
                1,
                IPVS_WEIGHT_LIMIT,
                f"Virtual server weight {{v}} is outside range 1-{IPVS_WEIGHT_LIMIT}",
            ),
            "sorry_server": self.vs_sorry,
            "sorry_server_inhibit": self.vs_sorry_inhibit,
            "sorry_server_lvs_method": self.vs_sorry_method,
            "real_server": self.real_server,
        }

    def virtual_server(self, n: Node) -> None:
        vs = VirtualServer(line=n.line, file=n.file)
        first = self.arg(n)
        if first == "group":
            vs.group = self.arg(n, 2)
        elif first == "fwmark":
            vs.fwmark = self.uint(
                n,
                2,
                1,
                IPVS_FWMARK_MAX,
                # keepalived's range starts at 0, but IPVS has no firewall-mark service 0.
                f"virtual server fwmark '{{v}}' must be in [1, {IPVS_FWMARK_MAX}] - ignoring",
            )
        else:
            ip = _ip(first)
            port_text = n.words[2] if len(n.words) > 2 else "0"
            port = _uint_text(port_text)
            if ip is None or port is None or port > 65535:
                self.fail(n, f"Invalid virtual server IP address {first} {port_text} - skipping")
            vs.addr = str(ip)
            vs.port = port
            vs.ip_family = "inet6" if ip.version == 6 else "inet"
        self.walk(n, vs, self.vs_table(), frozenset({"snmp_name"}), vs.extra)
        self.finish_vs(n, vs)

    def vs_ip_family(self, n: Node, vs: VirtualServer) -> None:
        family = self.arg(n)
        if family not in ("inet", "inet6"):
            self.fail(n, f"unknown address family {family}")
        if vs.ip_family is not None and vs.ip_family != family:
            self.fail(n, f"Virtual server specified family {family} conflicts with server family")
        vs.ip_family = family

    def vs_sched(self, n: Node, vs: VirtualServer) -> None:
        name = self.arg(n)
        if name not in SCHEDULERS:
            self.fail(n, f"Invalid lvs_scheduler '{name}' - ignoring")
        vs.lvs_sched = name
        self.mark(vs, "sched", True)

    def vs_hashed(self, n: Node, vs: VirtualServer) -> None:
        # check_parser.c: "hashed" is the flag IPVS always sets; keepalived ignores it now.
        self.keep(n, vs.extra)

    def vs_flag(self, n: Node, vs: VirtualServer) -> None:
        kw = n.keyword
        if kw == "ops":
            vs.ops = True
            return
        if kw.startswith(("sh-", "mh-")) and vs.lvs_sched != kw[:2]:
            if vs.lvs_sched in ("sh", "mh"):
                return  # check_parser.c lbflags_handler: the other scheduler's flag is ignored
            self.fail(n, f"{kw} only applies to sh scheduler - ignoring")
        if kw not in vs.sched_flags:
            vs.sched_flags.append(kw)

    def forwarding(self, n: Node, who: str) -> tuple[str, list[str]]:
        """check_parser.c svr_forwarding_handler: ``NAT|DR|TUN [type ipip|gue port N|gre]
        [nocsum|csum|remcsum]``."""
        method = self.arg(n)
        if method not in _FORWARD:
            self.fail(n, f"PARSER : unknown [{method}] routing method for {who} server.")
        tunnel = n.words[2:]
        if tunnel and method != "TUN":
            self.fail(n, f"Invalid tunnel option {tunnel[0]} for {who} server.")
        i = 0
        kind = "ipip"
        while i < len(tunnel):
            word = tunnel[i]
            if word == "type":
                if i + 1 >= len(tunnel):
                    self.fail(n, f"Missing tunnel type for {who} server.")
                kind = tunnel[i + 1]
                if kind not in ("ipip", "gue", "gre"):
                    self.fail(n, f"Unknown tunnel type {kind} for {who} server.")
                i += 2
                if kind == "gue":
                    if i + 1 >= len(tunnel) or tunnel[i] != "port":
                        self.fail(n, f"Missing port for {who} server gue tunnel.")
                    gue_port = self.port(
                        n, tunnel[i + 1], f"Invalid gue tunnel port {{v}} for {who} server."
                    )
                    if gue_port == 0:
                        self.fail(n, f"Invalid gue tunnel port 0 for {who} server.")
                    i += 2
            elif word in ("nocsum", "csum", "remcsum"):
                if kind == "ipip" and word != "nocsum":
                    self.fail(n, "ipip tunnels do not support checksum option.")
                if kind == "gre" and word == "remcsum":
                    self.fail(n, "gre tunnels do not support remote checksum option.")
                i += 1
            else:
                self.fail(n, f"Invalid tunnel option {word} for {who} server.")
        if kind != "ipip":
            # pylvs encapsulates in IPIP only (the native format says the same).
            self.fail(n, f"tunnel type {kind} is not supported by pylvs (only ipip)")
        return method, tunnel

    def vs_method(self, n: Node, vs: VirtualServer) -> None:
        vs.lvs_method, vs.tunnel = self.forwarding(n, "virtual")
        self.mark(vs, "method", True)

    def vs_pe(self, n: Node, vs: VirtualServer) -> None:
        name = self.arg(n)
        if name != "sip":
            self.fail(n, f"unknown persistence_engine {name}")
        # IPVS has one engine (ip_vs_pe_sip); pylvs has none, and its engine refuses pe_name.
        self.fail(n, "persistence_engine sip is not supported by pylvs")

    def vs_pto(self, n: Node, vs: VirtualServer) -> None:
        if len(n.words) < 2:
            vs.persistence_timeout = 360  # IPVS_SVC_PERSISTENT_TIMEOUT
            return
        vs.persistence_timeout = self.uint(n, 1, 1, MAX_TIMEOUT, "persistence_timeout invalid")

    def vs_pgr(self, n: Node, vs: VirtualServer) -> None:
        text = self.arg(n)
        family = vs.ip_family or ("inet" if "." in text else "inet6")
        if family == "inet6":
            self.uint(n, 1, 1, 128, "Invalid IPv6 persistence_granularity specified - {v}")
        else:
            try:
                mask = int(ipaddress.IPv4Address(text))
            except ValueError:
                self.fail(n, f"Invalid IPv4 persistence_granularity specified - {text}")
            # keepalived takes any mask; ServiceSpec carries a prefix length, so pylvs needs a
            # contiguous one.
            prefix = bin(mask).count("1")
            if mask != (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF:
                self.fail(n, f"IPv4 persistence_granularity netmask is not solid - {text}")
        vs.persistence_granularity = text
        if vs.ip_family is None:
            vs.ip_family = family
        if vs.persistence_timeout is None:
            vs.persistence_timeout = 360

    def vs_protocol(self, n: Node, vs: VirtualServer) -> None:
        name = self.arg(n).upper()
        if name not in ("TCP", "UDP", "SCTP"):
            self.fail(n, f"Unknown protocol {n.words[1]} - ignoring")
        if name == "SCTP":
            self.fail(n, "protocol SCTP is not supported by pylvs")
        vs.protocol = name

    def vs_sorry(self, n: Node, vs: VirtualServer) -> None:
        addr = self.address(n, self.arg(n), "Invalid sorry server IP address {v} - skipping")
        port = 0
        if len(n.words) > 2:
            port = self.port(
                n, n.words[2], f"Invalid sorry server IP address {addr} {{v}} - skipping"
            )
        vs.sorry_server = SorryServer(addr=addr, port=port, line=n.line)

    def vs_sorry_inhibit(self, n: Node, vs: VirtualServer) -> None:
        if vs.sorry_server is None:
            self.fail(n, "Ignoring sorry_server inhibit used before or without sorry_server")
        vs.sorry_server.inhibit = True

    def vs_sorry_method(self, n: Node, vs: VirtualServer) -> None:
        if vs.sorry_server is None:
            self.fail(n, "sorry_server forwarding used without sorry_server")
        vs.sorry_server.lvs_method, _tunnel = self.forwarding(n, "sorry")

    # --- real_server -------------------------------------------------------------------------

    def rs_table(self) -> dict[str, Handler]:
        t: dict[str, Handler] = {
            "weight": self.rs_weight,
            "lvs_method": self.rs_method,
            "uthreshold": self.set_uint(
                "uthreshold", 0, UINT_MAX, "Invalid real_server uthreshold '{v}' - ignoring"
            ),
            "lthreshold": self.set_uint(
                "lthreshold", 0, UINT_MAX, "Invalid real_server lthreshold '{v}' - ignoring"
            ),
            "inhibit_on_failure": self.written_flag(
                "inhibit", "Invalid inhibit_on_failure parameter {v}"
            ),
            "notify_up": self.set_script("notify_up", "real server"),
            "notify_down": self.set_script("notify_down", "real server"),
            "alpha": self.written_flag("alpha", "Invalid alpha parameter {v}"),
            "retry": self.written_uint("retry", 1, "retry value invalid - {v}"),
            "delay_before_retry": self.written_timer(
                "delay_before_retry", 0, "real server delay_before_retry '{v}' invalid - ignoring"
            ),
            "warmup": self.written_timer(
                "warmup", 0, "real server warmup '{v}' invalid - ignoring"
            ),
            "connect_timeout": self.written_timer(
                "connect_timeout",
                0.000001,
                "real server connect_timeout {v} invalid - ignoring",
                UINT_MAX_USEC,
            ),
            "delay_loop": self.written_timer(
                "delay_loop", 0.000001, "real server delay_loop '{v}' invalid - ignoring"
            ),
            "smtp_alert": self.set_flag(
                "smtp_alert", "Invalid real_server smtp_alert parameter {v}"
            ),
            "virtualhost": self.set_str("virtualhost"),
        }
        for kind in (
            "TCP_CHECK",
            "HTTP_GET",
            "SSL_GET",
            "SMTP_CHECK",
            "DNS_CHECK",
            "MISC_CHECK",
            "UDP_CHECK",
            "PING_CHECK",
            "FILE_CHECK",
            "BFD_CHECK",
        ):
            t[kind] = self.checker
        return t

    def real_server(self, n: Node, vs: VirtualServer) -> None:
        text = self.arg(n)
        ip = _ip(text)
        port_text = n.words[2] if len(n.words) > 2 else None
        port = _uint_text(port_text) if port_text is not None else 0
        if ip is None or port is None or port > 65535:
            self.fail(n, f"Invalid real server ip address/port {text}/{port_text} - skipping")
        rs = RealServer(addr=str(ip), port=port, line=n.line, file=n.file)
        if n.block is None:
            # A real server without a block: keepalived takes it with its defaults.
            n.block = []
        self.walk(n, rs, self.rs_table(), frozenset({"snmp_name"}), rs.extra)
        vs.real_servers.append(rs)

    def rs_weight(self, n: Node, rs: RealServer) -> None:
        rs.weight = self.uint(
            n,
            1,
            0,
            IPVS_WEIGHT_LIMIT,
            f"Real server weight {{v}} is outside range 0-{IPVS_WEIGHT_LIMIT}",
        )
        self.mark(rs, "weight", True)

    def rs_method(self, n: Node, rs: RealServer) -> None:
        rs.lvs_method, tunnel = self.forwarding(n, "real")
        self.mark(rs, "tunnel", tunnel)

    # --- checkers ----------------------------------------------------------------------------

    def checker(self, n: Node, rs: RealServer) -> None:
        kind = n.keyword
        c: Checker
        if kind == "TCP_CHECK":
            c = TcpCheck()
        elif kind in ("HTTP_GET", "SSL_GET"):
            c = HttpCheck(kind=kind, ssl=kind == "SSL_GET")
        elif kind == "SMTP_CHECK":
            c = SmtpCheck()
        elif kind == "DNS_CHECK":
            c = DnsCheck()
        elif kind == "MISC_CHECK":
            c = MiscCheck()
        elif kind == "UDP_CHECK":
            c = UdpCheck()
        elif kind == "PING_CHECK":
            c = PingCheck()
        elif kind == "FILE_CHECK":
            c = FileCheck()
        else:
            c = BfdCheck()
        c.line = n.line
        c.file = n.file
        table = self.checker_common(
            connection=kind not in ("MISC_CHECK", "FILE_CHECK", "BFD_CHECK")
        )
        if isinstance(c, HttpCheck):
            table.update(
                nb_get_retry=self.http_nb_get_retry,
                virtualhost=self.set_str("virtualhost"),
                http_protocol=self.http_protocol,
                enable_sni=self.set_flag("enable_sni"),
                fast_recovery=self.set_flag("fast_recovery"),
                url=self.http_url,
            )
        elif isinstance(c, SmtpCheck):
            table.update(helo_name=self.set_str("helo_name"), host=self.smtp_host)
        elif isinstance(c, DnsCheck):
            table.update(type=self.dns_type, name=self.set_str("name"))
        elif isinstance(c, MiscCheck):
            table.update(
                misc_path=self.set_rest("misc_path"),
                misc_timeout=self.set_timer(
                    "misc_timeout", 0.000001, "Invalid misc_timeout value '{v}'"
                ),
                misc_dynamic=self.set_flag("misc_dynamic"),
                user=self.misc_user,
            )
        elif isinstance(c, UdpCheck):
            table.update(
                payload=self.udp_payload,
                require_reply=self.udp_require_reply,
                min_reply_length=self.set_uint(
                    "min_reply_length", 0, 65535, "UDP_CHECK min_reply_length '{v}' invalid"
                ),
                max_reply_length=self.set_uint(
                    "max_reply_length", 0, 65535, "UDP_CHECK max_reply_length '{v}' invalid"
                ),
            )
        elif isinstance(c, FileCheck):
            table.update(track_file=self.set_str("track_file"), weight=self.file_weight)
        elif isinstance(c, BfdCheck):
            table = {
                "name": self.set_str("name"),
                "alpha": self.written_flag("alpha", "Invalid alpha parameter {v}"),
            }
        if n.block is None:
            n.block = []
        self.walk(n, c, table)
        if isinstance(c, MiscCheck) and not c.misc_path:
            self.fail(n, "No script path has been specified for MISC_CHECKER - skipping")
        if isinstance(c, FileCheck) and not c.track_file:
            self.fail(n, "FILE_CHECK has no track_file specified - ignoring")
        if isinstance(c, FileCheck) and c.track_file not in self.cfg.track_files:
            # check_file.c track_file_handler: the track_file block must come first; the
            # checker is then dropped (file_end_handler). pylvs keeps it in the model and the
            # checker component ignores it.
            self.warn(n, f"track_file {c.track_file} not found")
            self.warn(n, "FILE_CHECK has no track_file specified - ignoring")
        if isinstance(c, BfdCheck) and not c.name:
            self.fail(n, "BFD_CHECK has no name specified - ignoring")
        if isinstance(c, HttpCheck) and not c.urls:
            self.fail(n, f"An {kind} checker must have at least one url")
        if isinstance(c, UdpCheck) and c.min_reply_length > c.max_reply_length:
            self.fail(n, "UDP_CHECK min_reply length greater than max_reply_length - ignoring")
        rs.checkers.append(c)

    def checker_common(self, connection: bool) -> dict[str, Handler]:
        t: dict[str, Handler] = {
            "retry": self.written_uint("retry", 0, "Invalid retry connection value '{v}'"),
            "delay_before_retry": self.written_timer(
                "delay_before_retry", 0, "Invalid delay_before_retry connection value '{v}'"
            ),
            "warmup": self.written_timer("warmup", 0, "Invalid warmup connection value '{v}'"),
            "delay_loop": self.written_timer(
                "delay_loop", 0.000001, "delay_loop '{v}' is invalid - ignoring"
            ),
            "alpha": self.written_flag("alpha", "Invalid alpha parameter {v}"),
            "log_all_failures": self.set_flag(
                "log_all_failures", "Invalid log_all_failures parameter {v}"
            ),
        }
        if connection:
            t.update(self.connection_table())
        return t

    def connection_table(self) -> dict[str, Handler]:
        return {
            "connect_ip": self.co_ip("connect_ip", "Invalid connect_ip address {v} - ignoring"),
            "connect_port": self.co_port("connect_port", "Invalid connect_port {v} - ignoring"),
            "bindto": self.co_ip("bindto", "Invalid bindto address {v} - ignoring"),
            "bind_port": self.co_port("bind_port", "Invalid bind_port {v} - ignoring"),
            "bind_if": self.co_bind_if,
            "connect_timeout": self.written_timer(
                "connect_timeout", 0.000001, "connect_timeout {v} invalid - ignoring", UINT_MAX_USEC
            ),
            "fwmark": self.set_uint("fwmark", 0, UINT_MAX, "Invalid fwmark connection value '{v}'"),
        }

    def co_ip(self, attr: str, problem: str) -> Handler:
        def h(n: Node, obj: Any) -> None:
            setattr(obj, attr, self.address(n, self.arg(n), problem))

        return h

    def co_port(self, attr: str, problem: str) -> Handler:
        def h(n: Node, obj: Any) -> None:
            setattr(obj, attr, self.port(n, self.arg(n), problem))

        return h

    def co_bind_if(self, n: Node, obj: Any) -> None:
        name = self.arg(n)
        if len(name) >= 16:
            self.fail(n, f"Interface name {name} is too long - ignoring")
        obj.bind_if = name

    def http_nb_get_retry(self, n: Node, c: HttpCheck) -> None:
        self.warn(n, "nb_get_retry is deprecated - please use 'retry'")
        self.mark(c, "retry", self.uint(n, 1, 0, UINT_MAX, "Invalid nb_get_retry value '{v}'"))

    def http_protocol(self, n: Node, c: HttpCheck) -> None:
        value = self.arg(n)
        if value not in _HTTP_PROTOCOLS:
            self.fail(n, f"Invalid http_protocol specified - {value}")
        c.http_protocol = value

    def http_url(self, n: Node, c: HttpCheck) -> None:
        url = HttpUrl(line=n.line)
        codes: list[tuple[int, int]] = []

        def path(m: Node, u: HttpUrl) -> None:
            u.path = self.arg(m)

        def digest(m: Node, u: HttpUrl) -> None:
            text = self.arg(m)
            if not re.fullmatch(r"[0-9A-Fa-f]{32}", text):
                self.fail(m, f"digest '{text}' invalid length or characters - ignoring")
            u.digest = text.lower()

        def status(m: Node, u: HttpUrl) -> None:
            self.arg(m)
            for word in m.words[1:]:
                low_text, _, high_text = word.partition("-")
                low = _uint_text(low_text)
                high = _uint_text(high_text) if high_text else low
                if low is None or high is None or not 100 <= low <= high <= 599:
                    self.fail(m, f"Invalid HTTP_GET status code range '{word}' - ignoring")
                codes.append((low, high))

        def regex(m: Node, u: HttpUrl) -> None:
            u.regex = self.rest(m)
            try:
                re.compile(u.regex)
            except (re.error, RecursionError, OverflowError) as exc:
                # keepalived compiles with PCRE2; Python's re differs in corner cases.
                self.fail(m, f"Invalid regex: '{u.regex}' ({exc})")

        def options(m: Node, u: HttpUrl) -> None:
            for word in m.words[1:]:
                if word not in _REGEX_OPTIONS:
                    self.fail(m, f"Unknown regex option {word}")
                u.regex_options.append(word)

        def offset(attr: str) -> Handler:
            def h(m: Node, u: HttpUrl) -> None:
                setattr(u, attr, self.uint(m, 1, 0, UINT_MAX, f"Invalid {attr} '{{v}}'"))

            return h

        table: dict[str, Handler] = {
            "path": path,
            "digest": digest,
            "status_code": status,
            "virtualhost": self.set_str("virtualhost"),
            "regex": regex,
            "regex_no_match": self.set_flag("regex_no_match"),
            "regex_options": options,
            "regex_min_offset": offset("regex_min_offset"),
            "regex_max_offset": offset("regex_max_offset"),
            "regex_stack": lambda m, u: self.keep(m, c.extra),
        }
        self.walk(n, url, table)
        if url.path is None:
            self.fail(n, "Path has not been specified for url - ignoring")
        if codes:
            url.status_code = codes
        if (
            url.regex_min_offset is not None
            and url.regex_max_offset is not None
            and url.regex_min_offset > url.regex_max_offset
        ):
            self.fail(n, "regex min offset is greater than max offset - ignoring")
        c.urls.append(url)

    def smtp_host(self, n: Node, c: SmtpCheck) -> None:
        host = SmtpHost(line=n.line)
        table = self.connection_table()
        table["connect_timeout"] = self.set_timer(
            "connect_timeout", 0.000001, "connect_timeout {v} invalid - ignoring", UINT_MAX_USEC
        )
        self.walk(n, host, table)
        c.hosts.append(host)

    def dns_type(self, n: Node, c: DnsCheck) -> None:
        value = self.arg(n).upper()
        if value not in _DNS_TYPES:
            self.fail(n, f"DNS_CHECK: Unknown type {n.words[1]}")
        c.type = value

    def misc_user(self, n: Node, c: MiscCheck) -> None:
        c.user = self.arg(n)
        c.group = n.words[2] if len(n.words) > 2 else None

    def udp_payload(self, n: Node, c: UdpCheck) -> None:
        c.payload = self.hex_bytes(n, "payload")

    def udp_require_reply(self, n: Node, c: UdpCheck) -> None:
        c.require_reply = self.hex_bytes(n, "require_reply") if len(n.words) > 1 else b""

    def hex_bytes(self, n: Node, what: str) -> bytes:
        """check_udp.c: the payload is hex digits (an odd count is padded with a 0)."""
        text = "".join(n.words[1:])
        self.arg(n)
        if not re.fullmatch(r"[0-9A-Fa-f]+", text):
            self.fail(n, f"UDP_CHECK {what} invalid hex string '{text}'")
        if len(text) % 2:
            text += "0"
        return bytes.fromhex(text)

    def file_weight(self, n: Node, c: FileCheck) -> None:
        c.weight = self.sint(
            n, 1, -IPVS_WEIGHT_LIMIT, IPVS_WEIGHT_LIMIT, "FILE_CHECK weight {v} is invalid"
        )
        if len(n.words) > 2:
            if n.words[2] != "reverse":
                self.fail(n, f"FILE_CHECK unknown weight option {n.words[2]}")
            c.reverse = True

    # --- checks after the block (check_data.c validate_check_config) -------------------------

    def finish_vs(self, n: Node, vs: VirtualServer) -> None:
        name = vs.name()
        if not vs.real_servers:
            self.warn(n, f"Virtual server {name} has no real servers - ignoring")
            return
        if vs.ha_suspend and (vs.fwmark is not None or vs.group is not None):
            self.warn(
                n,
                f"Virtual server {name}: cannot use ha_suspend with fwmarks - clearing ha_suspend",
            )
            vs.ha_suspend = False
        if vs.fwmark is None:
            if vs.protocol is None and vs.group is None:
                self.warn(n, f"Virtual server {name}: no protocol set - defaulting to UDP")
                vs.protocol = "UDP"
                name = vs.name()
            if vs.ops and vs.protocol != "UDP":
                self.warn(
                    n, f"Virtual server {name}: one packet scheduling requires UDP - resetting"
                )
                vs.ops = False
            if vs.port == 0 and vs.persistence_timeout is None and vs.group is None:
                self.warn(
                    n,
                    f"Virtual server {name}: zero port only valid for persistent services - "
                    "setting",
                )
                vs.persistence_timeout = 360
        elif vs.protocol is not None:
            self.warn(
                n,
                f"Warning: Virtual server {name}: protocol specified for fwmark - protocol will "
                "be ignored",
            )
            vs.protocol = None
        if not self.given(vs, "sched"):
            self.warn(n, f"Virtual server {name}: no scheduler set, setting default 'wlc'")
        method_set = bool(self.given(vs, "method"))
        seen: dict[tuple[str, int], int] = {}
        weight_sum = 0
        for rs in list(vs.real_servers):
            af = "inet6" if _is_v6(rs.addr) else "inet"
            if vs.ip_family is None:
                vs.ip_family = af
            elif af != vs.ip_family and (rs.lvs_method or vs.lvs_method) != "TUN":
                self.fail(
                    Node(["real_server"], rs.file, rs.line),
                    f"Address family of virtual server and real server {rs.addr} don't match - "
                    "skipping real server.",
                )
            if rs.lvs_method is None:
                if not method_set:
                    self.warn(
                        n, f"Virtual server {name}: no forwarding method set, setting default NAT"
                    )
                    method_set = True
                rs.lvs_method = vs.lvs_method
            if vs.fwmark is not None and rs.port:
                self.warn(
                    Node(["real_server"], rs.file, rs.line),
                    f"WARNING - fwmark virtual server {name}, real server {rs.addr} has port "
                    "specified - clearing",
                )
                rs.port = 0
            elif (
                vs.fwmark is None
                and vs.group is None
                and rs.lvs_method in ("DR", "TUN")
                and rs.port not in (0, vs.port)
            ):
                self.warn(
                    Node(["real_server"], rs.file, rs.line),
                    f"WARNING - virtual server {name} and real server {rs.addr} ports don't match "
                    "- resetting",
                )
                rs.port = vs.port
            key = (rs.addr, rs.port)
            if key in seen:
                self.warn(
                    Node(["real_server"], rs.file, rs.line),
                    f"VS {name}: real server {rs.addr}:{rs.port} is duplicated - removing second "
                    "rs",
                )
                vs.real_servers.remove(rs)
                continue
            seen[key] = rs.line
            if not self.given(rs, "weight"):
                rs.weight = vs.weight
            if rs.lthreshold > rs.uthreshold and rs.uthreshold:
                # ip_vs_ctl.c ip_vs_add_dest(): ERANGE when l_threshold > u_threshold.
                self.fail(
                    Node(["real_server"], rs.file, rs.line),
                    "lower threshold is higher than upper threshold",
                )
            self.resolve_rs(vs, rs)
            weight_sum += rs.weight
        if vs.sorry_server is not None:
            ss = vs.sorry_server
            af = "inet6" if _is_v6(ss.addr) else "inet"
            if af != vs.ip_family and (ss.lvs_method or vs.lvs_method) != "TUN":
                self.fail(
                    n,
                    f"Address family of virtual server and sorry server {ss.addr} don't match - "
                    "skipping sorry server.",
                )
        if vs.quorum > weight_sum:
            self.warn(
                n,
                f"Warning - quorum {vs.quorum} for {name} exceeds total weight of real servers "
                f"{weight_sum}, reducing quorum to {weight_sum}",
            )
            vs.quorum = max(weight_sum, 1)
        if vs.hysteresis >= vs.quorum and vs.hysteresis:
            self.warn(
                n,
                f"Virtual server {name}: hysteresis {vs.hysteresis} >= quorum {vs.quorum}; "
                f"setting hysteresis to {vs.quorum - 1}",
            )
            vs.hysteresis = vs.quorum - 1
        if vs.ip_family is None:
            vs.ip_family = "inet"
        vs.retry = self.given(vs, "retry")
        vs.delay_before_retry = self.given(vs, "delay_before_retry")
        vs.warmup = self.given(vs, "warmup")
        self.cfg.virtual_servers.append(vs)

    def resolve_rs(self, vs: VirtualServer, rs: RealServer) -> None:
        """check_data.c: real server values default to the virtual server's, checker values
        to the real server's, else to the checker type's defaults."""

        def pick(key: str, default: Any) -> Any:
            value = self.given(rs, key)
            return default if value is None else value

        rs.alpha = pick("alpha", vs.alpha)
        rs.inhibit_on_failure = pick("inhibit", vs.inhibit_on_failure)
        rs_retry = pick("retry", self.given(vs, "retry"))
        rs_timeout = pick("connect_timeout", vs.connect_timeout)
        rs_delay = pick("delay_loop", vs.delay_loop)
        rs_warmup = pick("warmup", self.given(vs, "warmup"))
        rs_dbr = pick("delay_before_retry", self.given(vs, "delay_before_retry"))
        for c in rs.checkers:
            mine = self.written.get(id(c), {})
            c.alpha = mine.get("alpha", rs.alpha)
            default_retry = 3 if c.kind == "DNS_CHECK" else 0 if c.kind == "MISC_CHECK" else 1
            c.retry = mine.get("retry", rs_retry if rs_retry is not None else default_retry)
            c.connect_timeout = mine.get("connect_timeout", rs_timeout)
            c.delay_loop = mine.get("delay_loop", rs_delay)
            c.warmup = mine.get("warmup", rs_warmup if rs_warmup is not None else c.delay_loop)
            default_dbr = 3.0 if isinstance(c, HttpCheck) else 0.0 if c.kind == "DNS_CHECK" else 1.0
            if "delay_before_retry" in mine:
                c.delay_before_retry = mine["delay_before_retry"]
            elif rs_dbr is not None:
                c.delay_before_retry = rs_dbr
            else:
                c.delay_before_retry = default_dbr or c.delay_loop
            if isinstance(c, SmtpCheck):
                for host in c.hosts:
                    if host.connect_timeout is None:
                        host.connect_timeout = c.connect_timeout

    # --- VRRP --------------------------------------------------------------------------------

    def vrrp_table(self, owner: str) -> dict[str, Handler]:
        return {
            "state": self.v_state,
            "interface": self.v_interface,
            "dont_track_primary": self.set_flag("dont_track_primary"),
            "track_interface": self.v_track_interface,
            "track_script": self.v_track_script,
            "mcast_src_ip": self.co_ip("mcast_src_ip", f"({owner}) invalid mcast_src_ip {{v}}"),
            "unicast_src_ip": self.co_ip(
                "unicast_src_ip", f"({owner}) invalid unicast_src_ip {{v}}"
            ),
            "unicast_peer": self.v_unicast_peer,
            "unicast_ttl": self.set_uint(
                "unicast_ttl", 0, 255, f"({owner}): TTL '{{v}}' not valid - must be between 0 & 255"
            ),
            "virtual_router_id": self.set_uint(
                "virtual_router_id",
                1,
                255,
                f"({owner}): VRID '{{v}}' not valid - must be between 1 & 255",
            ),
            "version": self.set_uint("version", 2, 3, f"({owner}): Version must be either 2 or 3"),
            "priority": self.set_uint(
                "priority",
                1,
                PRIO_OWNER,
                f"({owner}) Priority not valid! must be between 1 & {PRIO_OWNER}. Using default "
                f"{PRIO_DFL}",
            ),
            "advert_int": self.v_advert_int,
            "virtual_ipaddress": self.v_vips("virtual_ipaddress"),
            "virtual_ipaddress_excluded": self.v_vips("virtual_ipaddress_excluded"),
            "virtual_routes": self.v_routes,
            "accept": self.v_accept,
            "no_accept": self.v_accept,
            "strict_mode": self.set_flag("strict_mode", f"({owner}) invalid strict_mode {{v}}"),
            "preempt": self.v_preempt,
            "nopreempt": self.v_preempt,
            "preempt_delay": self.set_timer(
                "preempt_delay",
                0,
                f"({owner}) Preempt_delay not valid! must be between 0-{TIMER_MAX_SEC}",
                TIMER_MAX_SEC,
            ),
            "notify_master": self.set_script("notify_master", owner),
            "notify_backup": self.set_script("notify_backup", owner),
            "notify_fault": self.set_script("notify_fault", owner),
            "notify_stop": self.set_script("notify_stop", owner),
            "notify": self.set_script("notify", owner),
            "smtp_alert": self.set_flag("smtp_alert", f"({owner}) invalid smtp_alert {{v}}"),
            "use_vmac": self.v_use_vmac,
            "vmac_xmit_base": self.set_flag("vmac_xmit_base"),
            "lvs_sync_daemon_interface": self.v_lvs_syncd_if,
            "garp_master_delay": self.written_timer(
                "garp_master_delay", 0, f"({owner}): garp_master_delay '{{v}}' invalid - ignoring"
            ),
            "garp_master_refresh": self.written_timer(
                "garp_master_refresh",
                0,
                f"({owner}): Invalid garp_master_refresh '{{v}}' - ignoring",
            ),
            "garp_master_repeat": self.written_uint(
                "garp_master_repeat", 1, f"({owner}): garp_master_repeat '{{v}}' invalid - ignoring"
            ),
            "garp_master_refresh_repeat": self.written_uint(
                "garp_master_refresh_repeat",
                1,
                f"({owner}): garp_master_refresh_repeat '{{v}}' invalid - ignoring",
            ),
            "garp_lower_prio_delay": self.written_timer(
                "garp_lower_prio_delay",
                0,
                f"({owner}): garp_lower_prio_delay '{{v}}' invalid - ignoring",
            ),
            "garp_lower_prio_repeat": self.written_uint(
                "garp_lower_prio_repeat", 0, f"({owner}): Invalid garp_lower_prio_repeat '{{v}}'"
            ),
            "authentication": self.v_auth,
        }

    def vrrp_instance(self, n: Node) -> None:
        name = self.arg(n)
        if any(v.name == name for v in self.cfg.vrrp_instances):
            self.fail(n, f"vrrp_instance {name} defined more than once")
        v = VrrpInstance(name=name, line=n.line, file=n.file)
        self.walk(n, v, self.vrrp_table(name), _VRRP_UNUSED, v.extra)
        self.finish_vrrp(n, v)
        self.cfg.vrrp_instances.append(v)

    def v_state(self, n: Node, v: VrrpInstance) -> None:
        state = self.arg(n)
        if state not in ("MASTER", "BACKUP"):
            self.fail(n, f"({v.name}) unknown state '{state}', defaulting to BACKUP")
        if state == "BACKUP" and self.given(v, "state") == "MASTER":
            self.fail(n, f"({v.name}) state previously set as MASTER - ignoring BACKUP")
        v.state = state
        self.mark(v, "state", state)

    def v_interface(self, n: Node, v: VrrpInstance) -> None:
        name = self.arg(n)
        if len(name) >= 16:
            self.fail(n, f"({v.name}) interface name {name} too long")
        if name == "lo":
            # vrrp_parser.c vrrp_int_handler (keepalived then drops the interface).
            self.fail(n, f"({v.name}) cannot use a loopback interface (lo) for vrrp - ignoring")
        v.interface = name

    def tracked_weight(self, n: Node, owner: str, what: str) -> tuple[int | None, bool]:
        weight: int | None = None
        reverse = False
        i = 1
        while i < len(n.words):
            word = n.words[i]
            if word == "weight":
                weight = self.sint(
                    n,
                    i + 1,
                    -253,
                    253,
                    f"({owner}) weight for {what} must be between [-253..253] inclusive. "
                    "Ignoring...",
                )
                i += 2
            elif word == "reverse" and weight is not None:
                reverse = True
                i += 1
            else:
                self.fail(n, f"({owner}) unknown track {what} option '{word}'")
        return weight, reverse

    def v_track_interface(self, n: Node, v: Any) -> None:
        for e in self.block(n):
            weight, reverse = self.tracked_weight(e, v.name, f"interface {e.keyword}")
            v.track_interface.append(
                TrackedInterface(name=e.keyword, weight=weight or 0, reverse=reverse, line=e.line)
            )

    def v_track_script(self, n: Node, v: Any) -> None:
        for e in self.block(n):
            weight, reverse = self.tracked_weight(e, v.name, f"script {e.keyword}")
            v.track_script.append(
                TrackedScript(name=e.keyword, weight=weight, reverse=reverse, line=e.line)
            )

    def v_unicast_peer(self, n: Node, v: VrrpInstance) -> None:
        for e in self.block(n):
            peer = UnicastPeer(
                addr=self.address(
                    e, e.keyword, f"({v.name}) VRRP unicast peer address invalid {{v}}"
                ),
                line=e.line,
            )
            i = 1
            while i < len(e.words):
                word = e.words[i]
                if word not in ("min_ttl", "max_ttl"):
                    self.fail(e, f"({v.name}) Unknown unicast peer option {word}")
                setattr(peer, word, self.uint(e, i + 1, 0, 255, f"({v.name}) invalid {word} {{v}}"))
                i += 2
            v.unicast_peer.append(peer)

    def v_advert_int(self, n: Node, v: VrrpInstance) -> None:
        value = self.timer(
            n, 1, 0, f"({v.name}) Advert interval ({{v}}) not valid! Must be > 0 - ignoring", 4096
        )
        if value <= 0:
            self.fail(
                n, f"({v.name}) Advert interval ({n.words[1]}) not valid! Must be > 0 - ignoring"
            )
        v.advert_int = value
        self.mark(v, "advert_int", n)

    def vip(self, e: Node, owner: str) -> VirtualAddress:
        """vrrp_ipaddress.c parse_ipaddress + alloc_ipaddress options."""
        text = e.keyword
        addr_text, _, prefix_text = text.partition("/")
        ip = _ip(addr_text)
        if ip is None:
            self.fail(e, f"VRRP parsed invalid IP {text}. skipping IP...")
        prefix: int | None = None
        if prefix_text:
            prefix = _uint_text(prefix_text)
            if prefix is None or prefix > (32 if ip.version == 4 else 128):
                self.fail(e, f"VRRP parsed invalid IP {text}. skipping IP...")
        va = VirtualAddress(addr=str(ip), prefix=prefix, line=e.line)
        i = 1
        words = e.words
        while i < len(words):
            word = words[i]
            if word in ("dev", "scope", "label", "brd", "broadcast", "peer", "preferred_lft"):
                if i + 1 >= len(words):
                    self.fail(e, f"({owner}) {word} requires a value")
                value = words[i + 1]
                if word == "dev":
                    va.dev = value
                elif word == "scope":
                    if (
                        value not in ("site", "link", "host", "nowhere", "global")
                        and _uint_text(value) is None
                    ):
                        self.fail(e, f"Invalid scope '{value}' specified for {text} - ignoring")
                    va.scope = value
                elif word == "label":
                    if len(value) >= 16:
                        self.fail(e, f"Label '{value}' is too long - ignoring")
                    va.label = value
                elif word in ("brd", "broadcast"):
                    if value not in ("-", "+"):
                        self.address(
                            e,
                            value,
                            "VRRP is trying to assign invalid broadcast {v}. skipping VIP...",
                        )
                    va.brd = value
                else:
                    va.options += [word, value]
                i += 2
            elif (
                word
                in (
                    "no_track",
                    "home",
                    "-nodad",
                    "nodad",
                    "noprefixroute",
                    "autojoin",
                    "track",
                )
                or word == "use_vmac"
            ):
                va.options.append(word)
                i += 1
            else:
                self.fail(e, f"Unknown configuration entry '{word}' for ip address - ignoring")
        return va

    def v_vips(self, attr: str) -> Handler:
        def h(n: Node, v: VrrpInstance) -> None:
            for e in self.block(n):
                if e.block is not None:
                    self.fail(e, "Unexpected '{'")
                getattr(v, attr).append(self.vip(e, v.name))

        return h

    def v_routes(self, n: Node, v: VrrpInstance) -> None:
        for e in self.block(n):
            v.virtual_routes.append(list(e.words))
        self.cfg.unused.append(f"{n.file}:{n.line}: virtual_routes")

    def v_accept(self, n: Node, v: VrrpInstance) -> None:
        v.accept = n.keyword == "accept"

    def v_preempt(self, n: Node, v: VrrpInstance) -> None:
        v.nopreempt = n.keyword == "nopreempt"

    def v_use_vmac(self, n: Node, v: VrrpInstance) -> None:
        v.use_vmac = True
        for word in n.words[1:]:
            if re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", word):
                self.keep(n, v.extra)  # a MAC address of its own: not modelled
            elif len(word) >= 16 or not re.fullmatch(r"[A-Za-z0-9_.-]+", word):
                self.fail(
                    n, f"VMAC interface name '{word}' too long or invalid characters - ignoring"
                )
            else:
                v.vmac_name = word

    def v_lvs_syncd_if(self, n: Node, v: VrrpInstance) -> None:
        self.warn(
            n, f"({v.name}) Specifying lvs_sync_daemon_interface against a vrrp is deprecated."
        )
        g = self.cfg.global_defs
        if g.lvs_sync_daemon is None:
            g.lvs_sync_daemon = LvsSyncDaemon(interface=self.arg(n), instance=v.name, line=n.line)

    def v_auth(self, n: Node, v: VrrpInstance) -> None:
        auth = AuthConfig()

        def auth_type(m: Node, a: AuthConfig) -> None:
            value = self.arg(m)
            if value not in ("PASS", "AH"):
                self.fail(m, f"({v.name}) unknown authentication type '{value}'")
            a.auth_type = value

        def auth_pass(m: Node, a: AuthConfig) -> None:
            value = self.arg(m)
            if len(value) > 8:
                self.warn(m, f"({v.name}) Truncating auth_pass to 8 characters")
            a.auth_pass = value[:8]

        self.walk(n, auth, {"auth_type": auth_type, "auth_pass": auth_pass})
        v.authentication = auth

    def finish_vrrp(self, n: Node, v: VrrpInstance) -> None:
        """vrrp.c vrrp_complete_instance: defaults from global_defs and the checks."""
        g = self.cfg.global_defs
        name = v.name
        if v.virtual_router_id is None:
            self.fail(n, f"({name}) the virtual router id must be set")
        if v.interface is None and not v.unicast_peer:
            self.fail(n, f"({name}) Unknown interface!")
        v6 = any(_is_v6(a.addr) for a in v.virtual_ipaddress)
        version_set = any(c.keyword == "version" for c in self.block(n))
        if v6:
            if version_set and v.version == 2:
                self.fail(n, f"({name}) cannot use IPv6 with VRRP version 2; setting version 3")
            v.version = 3
        elif not version_set:
            v.version = g.vrrp_version
        if not v.virtual_ipaddress:
            self.warn(n, f"({name}) No VIP specified; at least one is sensible")
        if not any(c.keyword == "priority" for c in self.block(n)):
            v.priority = PRIO_OWNER if self.given(v, "state") == "MASTER" else PRIO_DFL
        if self.given(v, "state") is None:
            v.state = "MASTER" if v.priority == PRIO_OWNER else "BACKUP"
        v.strict_mode = v.strict_mode or g.vrrp_strict
        if v.authentication is not None:
            if v.strict_mode:
                self.fail(n, f"({name}) Strict mode does not support authentication. Ignoring.")
            if v.version == 3:
                self.fail(n, f"({name}) VRRP version 3 does not support authentication. Ignoring.")
            if not v.authentication.auth_pass:
                self.fail(n, f"({name}) Authentication specified but no password given. Ignoring")
            if v.authentication.auth_type == "AH" and v6:
                self.fail(n, f"({name}) Cannot use AH authentication with IPv6.")
            if (
                v.authentication.auth_type == "AH"
                and v.state == "MASTER"
                and v.priority != PRIO_OWNER
            ):
                # keepalived needs an advert for the AH sequence number before taking over.
                self.warn(
                    n,
                    f"({name}) Initial state master is incompatible with AH authentication - "
                    "clearing",
                )
                v.state = "BACKUP"
        if v.unicast_peer and v.strict_mode:
            self.fail(n, f"({name}) Unicast peers are not supported in strict mode")
        if v.unicast_peer and not v.unicast_src_ip and not v.interface:
            self.fail(n, f"({name}): Unicast instances must have unicast_src_ip or interface")
        if not v.unicast_peer and any(c.keyword == "unicast_ttl" for c in self.block(n)):
            self.warn(n, f"({name}): Cannot use unicast_ttl without unicast peers - resetting")
        if v.nopreempt and v.priority == PRIO_OWNER:
            self.fail(
                n,
                f"({name}) nopreempt is incompatible with priority {PRIO_OWNER}. Resetting "
                "nopreempt",
            )
        if v.nopreempt and v.state == "MASTER":
            self.warn(
                n,
                f"({name}) Warning - nopreempt will not work with initial state MASTER - clearing",
            )
            v.nopreempt = False
        if v.preempt_delay and v.state == "MASTER":
            self.warn(
                n,
                f"({name}) Warning - preempt delay will not work with initial state MASTER - "
                "clearing",
            )
            v.preempt_delay = 0.0
        if v.accept is None:
            v.accept = True if v.priority == PRIO_OWNER else not v.strict_mode
        # Advertisement interval (vrrp.c): whole seconds in v2 (< 256), centiseconds in v3.
        adv: Node | None = self.given(v, "advert_int")
        if v.version == 2:
            if v.advert_int >= 256:
                self.fail(
                    adv or n,
                    f"({name}) VRRPv2 advertisement interval {v.advert_int:.2f}s is out of range. "
                    "Must be less than 256s.",
                )
            if v.advert_int != int(v.advert_int):
                self.fail(
                    adv or n,
                    f"({name}) VRRPv2 advertisement interval {v.advert_int:f}s must be an integer.",
                )
        else:
            if v.advert_int >= 40.96:
                self.fail(
                    adv or n,
                    f"({name}) VRRPv3 advertisement interval {v.advert_int:.2f}s is out of range. "
                    "Must be less than 40.96s.",
                )
            if round(v.advert_int * 1e6) % 10000:
                self.fail(
                    adv or n,
                    f"({name}) VRRPv3 advertisement interval {v.advert_int:f}s must be in units "
                    "of 10ms",
                )
        # GARP settings: the instance's own, else the global ones.
        v.garp_master_delay = self.given_or(v, "garp_master_delay", g.vrrp_garp_master_delay)
        v.garp_master_repeat = self.given_or(v, "garp_master_repeat", g.vrrp_garp_master_repeat)
        v.garp_master_refresh = self.given_or(v, "garp_master_refresh", g.vrrp_garp_master_refresh)
        v.garp_master_refresh_repeat = self.given_or(
            v, "garp_master_refresh_repeat", g.vrrp_garp_master_refresh_repeat
        )
        low_delay = g.vrrp_garp_lower_prio_delay
        low_repeat = g.vrrp_garp_lower_prio_repeat
        v.garp_lower_prio_delay = self.given_or(
            v, "garp_lower_prio_delay", v.garp_master_delay if low_delay is None else low_delay
        )
        v.garp_lower_prio_repeat = self.given_or(
            v, "garp_lower_prio_repeat", v.garp_master_repeat if low_repeat is None else low_repeat
        )
        if v.vmac_xmit_base and not v.use_vmac:
            self.warn(n, f"({name}) vmac_xmit_base is only valid with a vmac - ignoring")
            v.vmac_xmit_base = False

    def given_or(self, obj: object, key: str, default: Any) -> Any:
        value = self.given(obj, key)
        return default if value is None else value

    def vrrp_sync_group(self, n: Node) -> None:
        name = self.arg(n)
        sg = VrrpSyncGroup(name=name, line=n.line, file=n.file)

        def group(m: Node, s: VrrpSyncGroup) -> None:
            for e in self.block(m):
                s.group.extend(e.words)

        table: dict[str, Handler] = {
            "group": group,
            "notify_master": self.set_script("notify_master", f"vrrp group {name}"),
            "notify_backup": self.set_script("notify_backup", f"vrrp group {name}"),
            "notify_fault": self.set_script("notify_fault", f"vrrp group {name}"),
            "notify_stop": self.set_script("notify_stop", f"vrrp group {name}"),
            "notify": self.set_script("notify", f"vrrp group {name}"),
            "smtp_alert": self.set_flag("smtp_alert"),
            "track_interface": self.v_track_interface,
            "track_script": self.v_track_script,
        }
        self.walk(n, sg, table, _SYNC_UNUSED, sg.extra)
        if not sg.group:
            self.warn(n, f"Sync group {name} has no virtual router(s) - removing")
            return
        if len(sg.group) == 1:
            self.warn(
                n,
                f"Sync group {name} has only 1 virtual router(s) - this probably isn't what you "
                "want",
            )
        self.cfg.vrrp_sync_groups.append(sg)

    def track_file(self, n: Node) -> None:
        """trackers/track_file.c ``track_file_handler`` and its sub-keywords; the block is
        dropped (with keepalived's message) when it has no ``file``."""
        if n.keyword == "vrrp_track_file":
            self.warn(n, '"vrrp_track_file" is deprecated, please use "track_file"')
        name = self.arg(n)
        tf = TrackFile(name=name, line=n.line, file=n.file)

        def path(m: Node, t: TrackFile) -> None:
            if t.path:
                self.warn(m, f"File already set for track file {name} - ignoring {m.words[1:]}")
                return
            t.path = self.rest(m)

        def weight(m: Node, t: TrackFile) -> None:
            text = self.arg(m)
            value = _uint_text(text.lstrip("-+"))
            if value is not None and text.startswith("-"):
                value = -value
            if value is None or not -254 <= value <= 254:
                self.warn(
                    m,
                    f"Weight ({text}) for track_file {name} must be between [-254..254] "
                    "inclusive. Ignoring...",
                )
                value = 1
            t.weight = value
            if len(m.words) > 2:
                if m.words[2] == "reverse":
                    t.reverse = True
                else:
                    self.warn(m, f"track_file {name} unknown weight option {m.words[2]}")

        def init_file(m: Node, t: TrackFile) -> None:
            t.init_file, t.init_value, t.init_overwrite = True, 0, False
            for word in m.words[1:]:
                if word[:1].isdigit() or word[:1] == "-":
                    digits = _uint_text(word.lstrip("-"))
                    if digits is None or digits > 2**31:
                        self.warn(m, f"Track file {name} init value {word} is invalid")
                        t.init_value = 0
                        continue
                    t.init_value = -digits if word.startswith("-") else digits
                    if not -254 <= t.init_value <= 254:
                        self.warn(
                            m,
                            f"Track file {name} init value {t.init_value} is outside sensible "
                            "range [-254, 254]",
                        )
                elif word == "overwrite":
                    t.init_overwrite = True
                else:
                    self.warn(m, f"Unknown track file init option {word}")

        if n.block is None:
            n.block = []
        self.walk(n, tf, {"file": path, "weight": weight, "init_file": init_file})
        if not tf.path:
            self.warn(n, f"No file set for track_file {name} - ignoring")
            return
        self.cfg.track_files[name] = tf

    def vrrp_script(self, n: Node) -> None:
        name = self.arg(n)
        s = VrrpScript(name=name, line=n.line, file=n.file)

        def weight(m: Node, sc: VrrpScript) -> None:
            sc.weight = self.sint(
                m, 1, -253, 253, f"vrrp_script {name} weight {{v}} must be in [-253, 253]"
            )
            if len(m.words) > 2:
                if m.words[2] != "reverse":
                    self.fail(m, f"vrrp_script {name} unknown weight option {m.words[2]}")
                sc.reverse = True

        def user(m: Node, sc: VrrpScript) -> None:
            sc.user = self.arg(m)
            sc.group = m.words[2] if len(m.words) > 2 else None

        def count(attr: str) -> Handler:
            def h(m: Node, sc: VrrpScript) -> None:
                setattr(
                    sc,
                    attr,
                    self.uint(
                        m,
                        1,
                        1,
                        UINT_MAX,
                        f"({name}): vrrp script {attr} value '{{v}}' invalid, defaulting to 1",
                    ),
                )

            return h

        table: dict[str, Handler] = {
            "script": self.set_rest("script"),
            "interval": self.set_timer(
                "interval",
                1,
                f"({name}): vrrp script interval '{{v}}' must be between 1 and "
                f"{int(UINT_MAX_USEC)} - ignoring",
                UINT_MAX_USEC,
            ),
            "timeout": self.set_timer(
                "timeout", 0.000001, f"({name}): vrrp script timeout '{{v}}' invalid - ignoring"
            ),
            "weight": weight,
            "rise": count("rise"),
            "fall": count("fall"),
            "user": user,
            "init_fail": self.set_flag("init_fail"),
        }
        self.walk(n, s, table)
        if not s.script:
            self.warn(n, f"No script set for vrrp_script {name} - removing")
            return
        self.cfg.vrrp_scripts[name] = s

    # --- cross references --------------------------------------------------------------------

    def ignored_weights(self, v: VrrpInstance, sg: VrrpSyncGroup | None) -> None:
        """vrrp.c vrrp_complete_instance: members of a sync group (without
        sync_group_tracking_weight) and address owners do not use tracking weights."""
        sync = sg is not None and "sync_group_tracking_weight" not in sg.extra
        if not sync and v.priority != PRIO_OWNER:
            return
        reason = "SYNC group" if sync else "address owner"
        where = Node([v.name], v.file, v.line)
        kept_ifs = []
        for ti in v.track_interface:
            if ti.weight:
                self.warn(
                    where,
                    f"({v.name}) ignoring {ti.name} tracked interface "
                    f"{'weight ' if sync else ''}due to {reason}",
                )
                if not sync:
                    continue
                ti.weight = 0
            kept_ifs.append(ti)
        v.track_interface = kept_ifs
        kept = []
        for ts in v.track_script:
            script = self.cfg.vrrp_scripts.get(ts.name)
            weight = ts.weight if ts.weight is not None else (script.weight if script else 0)
            if weight:
                self.warn(
                    where,
                    f"({v.name}) ignoring tracked script {ts.name} with weights due to "
                    f"{'SYNC group' if sync else 'address_owner'}",
                )
                continue
            kept.append(ts)
        v.track_script = kept

    def script_security(self) -> None:
        """vrrp.c / check_data.c: scripts that keepalived would run as root without
        ``enable_script_security`` (keepalived -t exits 6). Like keepalived, this only counts
        scripts whose file exists on this machine."""
        cfg = self.cfg
        g = cfg.global_defs
        if g.enable_script_security:
            # notify.c set_default_script_user: scripts run as script_user, by default
            # keepalived_script; keepalived drops the scripts if that user does not exist here.
            user = g.script_user or "keepalived_script"
            try:
                pwd.getpwnam(user)
            except KeyError:
                misc = any(
                    isinstance(c, MiscCheck)
                    for vs in cfg.virtual_servers
                    for rs in vs.real_servers
                    for c in rs.checkers
                )
                if cfg.vrrp_scripts or misc:
                    where = Node([""], cfg.source, 0)
                    self.warn(where, f"Unable to set default user {user} for script")
            return
        vrrp: list[str | None] = [s.script for s in cfg.vrrp_scripts.values()]
        for inst in cfg.vrrp_instances:
            vrrp += [inst.notify_master, inst.notify_backup, inst.notify_fault]
            vrrp += [inst.notify_stop, inst.notify]
        for sg in cfg.vrrp_sync_groups:
            vrrp += [sg.notify_master, sg.notify_backup, sg.notify_fault, sg.notify_stop, sg.notify]
        check: list[str | None] = []
        for vs in cfg.virtual_servers:
            check += [vs.quorum_up, vs.quorum_down]
            for rs in vs.real_servers:
                check += [rs.notify_up, rs.notify_down]
                check += [c.misc_path for c in rs.checkers if isinstance(c, MiscCheck)]
        where = Node([""], cfg.source, 0)
        if any(_program(c) for c in vrrp):
            self.warn(
                where,
                "SECURITY VIOLATION - scripts are being executed but script_security not enabled.",
            )
        if any(_program(c) for c in check):
            self.warn(
                where,
                "SECURITY VIOLATION - check scripts are being executed but script_security not "
                "enabled.",
            )

    def finish(self) -> None:
        cfg = self.cfg
        for vs in cfg.virtual_servers:
            where = Node(["virtual_server"], vs.file, vs.line)
            group = cfg.virtual_server_groups.get(vs.group or "")
            if vs.group is not None and group is None:
                self.fail(where, f"Virtual server group {vs.group} specified but not configured")
            # check_data.c: a group with addresses needs a protocol as an address service does.
            if group is not None and vs.protocol is None and any(e.addr for e in group.entries):
                self.warn(where, f"Virtual server {vs.name()}: no protocol set - defaulting to UDP")
                vs.protocol = "UDP"
        names = {v.name: v for v in cfg.vrrp_instances}
        for sg in cfg.vrrp_sync_groups:
            for member in sg.group:
                inst = names.get(member)
                if inst is None:
                    self.fail(
                        Node([sg.name], sg.file, sg.line),
                        f"Unable to find vrrp instance {member} for sync group {sg.name}",
                    )
                inst.sync_group = sg.name
        groups = {sg.name: sg for sg in cfg.vrrp_sync_groups}
        for v in cfg.vrrp_instances:
            self.ignored_weights(v, groups.get(v.sync_group or ""))
        used: set[str] = set()
        for v in cfg.vrrp_instances:
            for ts in v.track_script:
                if ts.name not in cfg.vrrp_scripts:
                    self.warn(
                        Node([ts.name], v.file, ts.line),
                        f"({v.name}) track script {ts.name} not found, ignoring...",
                    )
                used.add(ts.name)
        for sg in cfg.vrrp_sync_groups:
            used.update(ts.name for ts in sg.track_script)
        for s in cfg.vrrp_scripts.values():
            if s.name not in used:
                self.warn(Node([s.name], s.file, s.line), f"Warning - script {s.name} is not used")
        # vrrp.c: two instances on one interface and family cannot share a VRID.
        seen: dict[tuple[str | None, bool, int | None], VrrpInstance] = {}
        for v in cfg.vrrp_instances:
            key = (
                v.interface,
                any(_is_v6(a.addr) for a in v.virtual_ipaddress),
                v.virtual_router_id,
            )
            if key in seen and not v.unicast_peer:
                self.fail(
                    Node([v.name], v.file, v.line),
                    f"({v.name}) duplicate VRID conflict with {seen[key].name} VRID "
                    f"{v.virtual_router_id}",
                )
            seen[key] = v
        self.script_security()
        sd = cfg.global_defs.lvs_sync_daemon
        if sd is not None and sd.instance is not None and sd.instance not in names:
            self.fail(
                Node(["lvs_sync_daemon"], cfg.source, sd.line),
                f"Unable to find vrrp instance {sd.instance} for lvs_sync_daemon",
            )


def _program(command: str | None) -> str | None:
    """The file a script line runs (its first word, searched in $PATH as keepalived does when
    it has no '/'), if it exists here."""
    if not command:
        return None
    first = command.split()[0]
    if "/" not in first:
        return shutil.which(first)
    return first if os.path.isfile(first) else None


def parse_keepalived_model(
    text: str, filename: str = "<string>", config_id: str | None = None
) -> KeepalivedConfig:
    """Parse keepalived.conf text into the keepalived model; raise :class:`ConfigError`."""
    nodes, files, notes = read_tree(text, filename, config_id)
    cfg = KeepalivedConfig(source=filename, files=files)
    # What keepalived only logs (include patterns that matched nothing): not a problem.
    cfg.notes.extend(notes)
    p = _Parser(cfg)
    p.top(nodes)
    p.finish()
    return cfg


# --- the IPVS part as a pylvs Config ----------------------------------------------------------


def _fwd(method: str | None) -> int:
    return _FORWARD[method or "NAT"]


def _service_specs(vs: VirtualServer, groups: dict[str, VirtualServerGroup]) -> list[ServiceSpec]:
    """One ServiceSpec per IPVS service keepalived creates: the virtual server itself, or each
    address (ranges expanded) and fwmark of its group."""
    flags = 0
    for name in vs.sched_flags:
        flags |= _SCHED_FLAG_BITS[name]
    protocol = IPPROTO_UDP if vs.protocol == "UDP" else IPPROTO_TCP
    persistent = vs.persistence_timeout is not None
    af = AF_INET6 if vs.ip_family == "inet6" else AF_INET
    netmask = 128 if af == AF_INET6 else 32
    if vs.persistence_granularity is not None:
        if af == AF_INET6:
            netmask = int(vs.persistence_granularity)
        else:
            netmask = bin(int(ipaddress.IPv4Address(vs.persistence_granularity))).count("1")
    base = ServiceSpec(
        af=af,
        protocol=protocol,
        scheduler=vs.lvs_sched,
        persistent=persistent,
        timeout=vs.persistence_timeout or 360,
        netmask=netmask,
        sched_flags=flags,
        ops=vs.ops,
    )
    if vs.group is None:
        if vs.fwmark is not None:
            return [dataclasses.replace(base, fwmark=vs.fwmark, protocol=0)]
        return [dataclasses.replace(base, addr=vs.addr or "", port=vs.port)]
    out: list[ServiceSpec] = []
    for e in groups[vs.group].entries:
        if e.fwmark is not None:
            fam = AF_INET6 if (e.family or vs.ip_family) == "inet6" else AF_INET
            out.append(dataclasses.replace(base, fwmark=e.fwmark, protocol=0, af=fam))
            continue
        assert e.addr is not None
        first = ipaddress.ip_address(e.addr)
        last = ipaddress.ip_address(e.last) if e.last else first
        fam = AF_INET6 if first.version == 6 else AF_INET
        for value in range(int(first), int(last) + 1):
            addr = str(type(first)(value))
            out.append(dataclasses.replace(base, af=fam, addr=addr, port=e.port or vs.port))
    return out


def _service_count(vs: VirtualServer, groups: dict[str, VirtualServerGroup]) -> int:
    if vs.group is None:
        return 1
    count = 0
    for e in groups[vs.group].entries:
        if e.fwmark is not None or e.addr is None or e.last is None:
            count += 1
        else:
            first, last = ipaddress.ip_address(e.addr), ipaddress.ip_address(e.last)
            count += int(last) - int(first) + 1
    return count


def to_config(ka: KeepalivedConfig, source: str | None = None) -> Config:
    """The IPVS part of ``ka`` as a :class:`Config` the daemon applies; ``Config.keepalived``
    is ``ka`` for everything else.

    Each virtual gets ``checktype = "on"`` (its reals are in the table as configured): the
    keepalived checkers are in ``ka`` for the checker component to run. keepalived's
    ``inhibit_on_failure`` is ldirectord's ``quiescent``; its ``sorry_server`` is the fallback.
    """
    cfg = Config(source=source or ka.source, keepalived=ka)
    cfg.warnings.extend(ka.warnings)
    timeouts = ka.global_defs.lvs_timeouts
    if timeouts:
        cfg.timeouts = Timeouts(
            tcp=timeouts.get("tcp", 0), tcpfin=timeouts.get("tcpfin", 0), udp=timeouts.get("udp", 0)
        )
    total = 0
    services = 0
    seen: dict[tuple[int, int, int, str, int], int] = {}
    for vs in ka.virtual_servers:
        # Counted before anything is expanded: a group of many large ranges must not exhaust
        # the director's memory at start or on SIGHUP.
        services += _service_count(vs, ka.virtual_server_groups)
        if services > MAX_RANGE:
            raise ConfigError(
                vs.file, vs.line, f"more than {MAX_RANGE} IPVS services in the configuration"
            )
        specs = _service_specs(vs, ka.virtual_server_groups)
        for spec in specs:
            key = spec.key()
            if key in seen:
                raise ConfigError(
                    vs.file,
                    vs.line,
                    f"virtual server {vs.name()} duplicates the service of line {seen[key]}",
                )
            seen[key] = vs.line
            proto = "fwm" if spec.fwmark else ("udp" if spec.protocol == IPPROTO_UDP else "tcp")
            v = VirtualConfig(spec=spec, protocol=proto, line=vs.line, checktype="on")
            v.quiescent = vs.inhibit_on_failure or all(
                r.inhibit_on_failure for r in vs.real_servers
            )
            for rs in vs.real_servers:
                fwd = _fwd(rs.lvs_method or vs.lvs_method)
                # keepalived: a real server without a port uses the service's port; DR/TUN
                # dests of an address service must use it (ipvsadm's rule too).
                port = rs.port
                if not spec.fwmark and (port == 0 or fwd != FwdMethod.MASQ):
                    port = spec.port
                dest = DestSpec(
                    af=AF_INET6 if _is_v6(rs.addr) else AF_INET,
                    addr=rs.addr,
                    port=port,
                    weight=rs.weight,
                    fwd=fwd,
                    u_threshold=rs.uthreshold,
                    l_threshold=rs.lthreshold,
                    tun_type=int(TunType.IPIP),
                )
                v.reals.append(RealConfig(dest=dest, port=rs.port, line=rs.line))
            total += len(v.reals)
            if total > MAX_REALS:
                raise ConfigError(
                    vs.file, vs.line, f"more than {MAX_REALS} real servers in the configuration"
                )
            ss = vs.sorry_server
            if ss is not None:
                fwd = _fwd(ss.lvs_method or vs.lvs_method)
                port = ss.port if ss.port and fwd == FwdMethod.MASQ else spec.port
                v.fallback = DestSpec(
                    af=AF_INET6 if _is_v6(ss.addr) else AF_INET,
                    addr=ss.addr,
                    port=0 if spec.fwmark else port,
                    weight=1,
                    fwd=fwd,
                )
            cfg.virtuals.append(v)
    cfg.not_run.extend(_not_run_yet(ka))
    return cfg


def _not_run_yet(ka: KeepalivedConfig) -> list[str]:
    """What this pylvs parses and checks in a keepalived.conf but does not act on yet, said once
    per kind where it first appears, so nobody believes a farm is checked or failed over."""
    out = []
    checkers = [c for vs in ka.virtual_servers for rs in vs.real_servers for c in rs.checkers]
    # pylvs.health.kamonitor runs the others (pylvs.health.kakeeper.RUNNABLE_CHECKERS).
    for kind, why in (("BFD_CHECK", "needs keepalived's BFD process"),):
        refused = [c for c in checkers if c.kind == kind]
        if refused:
            c = refused[0]
            out.append(
                f"{c.file or ka.source}:{c.line}: {kind} is not supported by pylvs ({why}): "
                f"{len(refused)} checker(s) ignored, their real servers count them as up"
            )
    # pylvs.ha.vrrp runs the vrrp_instances (and lvs_sync_daemon); these parts it does not.
    for what, attr in (
        ("use_vmac is not run by pylvs yet: the interface's own MAC address is used", "use_vmac"),
        ("virtual_routes are not installed by pylvs yet", "virtual_routes"),
    ):
        users = [vi for vi in ka.vrrp_instances if getattr(vi, attr)]
        if users:
            vi = users[0]
            out.append(f"{vi.file or ka.source}:{vi.line}: ({vi.name}) {what}")
    # IPv6 vrrp_instances run too (VRRPv3 over IPv6, unsolicited neighbour advertisements).
    return out


def parse_keepalived(text: str, filename: str = "<string>", config_id: str | None = None) -> Config:
    """Parse keepalived.conf text into a :class:`Config` (with ``Config.keepalived`` set)."""
    return to_config(parse_keepalived_model(text, filename, config_id))


def load_keepalived(path: str | Path, config_id: str | None = None) -> Config:
    """Read a keepalived.conf (and its includes); raise :class:`ConfigError` if unusable."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            name, 0, f"Unable to read configuration file {name}: {exc.strerror}"
        ) from None
    return parse_keepalived(data.decode("utf-8", errors="replace"), name, config_id)


# Top-level keywords that only a keepalived.conf has (ldirectord.cf has key=value lines, TOML
# has [tables]).
_KA_START_RE = re.compile(
    r"(global_defs|virtual_server|virtual_server_group|vrrp_instance|vrrp_sync_group|vrrp_script"
    r"|static_ipaddress|static_routes|static_rules|include|vrrp_track_process|track_file"
    r"|vrrp_track_file|SSL|net_namespace|linkbeat_use_polling)\b"
)


def looks_like_keepalived(text: str) -> bool:
    """Whether the first significant line is a keepalived.conf keyword (``!`` and ``#``
    comments, ``$VAR=`` definitions and ``@`` lines are skipped)."""
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped or stripped[0] in "!#$@":
            continue
        if stripped.startswith("include") and "=" in stripped:
            return False  # ldirectord? no such key; a TOML key "include = ..." is not ours
        return _KA_START_RE.match(stripped) is not None
    return False
