"""The typed model of a keepalived.conf (keepalived 2.2.7's keywords), as the parser in
:mod:`pylvs.config.keepalived` builds it.

Each record keeps keepalived's names. Durations are seconds (``float``: keepalived's timers take
decimals); keepalived's defaults are filled in, so a consumer (the VRRP state machine, the checker
component) never has to know whether a value was written or defaulted. The IPVS part of a
keepalived.conf also becomes a :class:`pylvs.config.model.Config` (see ``to_config``); everything
IPVS has no field for (checkers, quorum, sorry server, VRRP) is only here.

Keywords keepalived accepts that pylvs parses but does not model are kept, with their words, in
the ``extra`` dictionary of the block they appear in (and listed in
:attr:`KeepalivedConfig.unused`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CHECKER_KINDS",
    "AuthConfig",
    "BfdCheck",
    "Checker",
    "DnsCheck",
    "FileCheck",
    "GlobalDefs",
    "HttpCheck",
    "HttpUrl",
    "KeepalivedConfig",
    "LvsSyncDaemon",
    "MiscCheck",
    "PingCheck",
    "RealServer",
    "SmtpCheck",
    "SmtpHost",
    "SorryServer",
    "TcpCheck",
    "TrackFile",
    "TrackedInterface",
    "TrackedScript",
    "UdpCheck",
    "UnicastPeer",
    "VirtualAddress",
    "VirtualServer",
    "VirtualServerGroup",
    "VrrpInstance",
    "VrrpScript",
    "VrrpSyncGroup",
    "VsgEntry",
]

# keepalived check_*.c: the checker block keywords.
CHECKER_KINDS = (
    "TCP_CHECK", "HTTP_GET", "SSL_GET", "SMTP_CHECK", "DNS_CHECK", "MISC_CHECK", "UDP_CHECK",
    "PING_CHECK", "FILE_CHECK", "BFD_CHECK",
)  # fmt: skip

Extra = dict[str, list[str]]


@dataclass
class LvsSyncDaemon:
    """global_defs ``lvs_sync_daemon IF [INSTANCE] [id N] [maxlen N] [port N] [ttl N]
    [group IP]``: keepalived starts both the master and the backup IPVS sync daemon and follows
    the VRRP instance's role. ``syncid`` None = the instance's VRID (keepalived's default)."""

    interface: str
    instance: str | None = None
    syncid: int | None = None
    maxlen: int | None = None
    port: int | None = None
    ttl: int | None = None
    group: str | None = None
    line: int = 0


@dataclass
class GlobalDefs:
    """``global_defs { }`` with keepalived's defaults (global_data.c init_global_data)."""

    router_id: str | None = None  # None: keepalived uses the host name
    notification_email: list[str] = field(default_factory=list)
    notification_email_from: str | None = None
    smtp_server: str | None = None
    smtp_server_port: int = 25
    smtp_helo_name: str | None = None
    smtp_connect_timeout: float = 30.0
    smtp_alert: bool | None = None
    smtp_alert_vrrp: bool | None = None
    smtp_alert_checker: bool | None = None
    enable_script_security: bool = False
    checker_log_all_failures: bool = False  # every checker's log_all_failures
    script_user: str | None = None
    script_group: str | None = None
    default_interface: str | None = None
    dynamic_interfaces: bool = False
    # VRRP defaults every instance inherits.
    vrrp_version: int = 2
    vrrp_strict: bool = False
    vrrp_mcast_group4: str = "224.0.0.18"
    vrrp_mcast_group6: str = "ff02::12"
    vrrp_garp_master_delay: float = 5.0
    vrrp_garp_master_repeat: int = 5
    vrrp_garp_master_refresh: float = 0.0  # 0: no periodic refresh
    vrrp_garp_master_refresh_repeat: int = 1
    vrrp_garp_lower_prio_delay: float | None = None  # None: garp_master_delay
    vrrp_garp_lower_prio_repeat: int | None = None  # None: garp_master_repeat
    vrrp_garp_interval: float = 0.0
    vrrp_gna_interval: float = 0.0
    vrrp_min_garp: bool = False
    vrrp_lower_prio_no_advert: bool = False
    vrrp_higher_prio_send_advert: bool = False
    vrrp_skip_check_adv_addr: bool = False
    vrrp_check_unicast_src: bool = False
    vrrp_down_timer_adverts: int = 3
    # IPVS.
    lvs_sync_daemon: LvsSyncDaemon | None = None
    lvs_timeouts: dict[str, int] = field(default_factory=dict)  # tcp / tcpfin / udp seconds
    lvs_flush: bool = False
    lvs_flush_onstop: bool = False
    extra: Extra = field(default_factory=dict)


# --- checkers ------------------------------------------------------------------------------


@dataclass
class Checker:
    """What every checker has (check_api.c). Timing values are resolved as keepalived's
    check_data.c does: the checker's own, else its real server's, else its virtual server's,
    else the checker type's default (retry 1, DNS 3, MISC 0; delay_before_retry 3 s for HTTP/SSL,
    1 s otherwise, delay_loop for DNS; connect_timeout 5 s; delay_loop 60 s; warmup =
    delay_loop)."""

    kind: str = ""
    line: int = 0
    file: str = ""
    # Connection options (not for MISC_CHECK, FILE_CHECK, BFD_CHECK).
    connect_ip: str | None = None
    connect_port: int | None = None
    bindto: str | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    fwmark: int | None = None
    connect_timeout: float = 5.0
    retry: int = 1
    delay_before_retry: float = 1.0
    warmup: float = 60.0
    delay_loop: float = 60.0
    alpha: bool = False
    log_all_failures: bool = False
    extra: Extra = field(default_factory=dict)


@dataclass
class TcpCheck(Checker):
    kind: str = "TCP_CHECK"


@dataclass
class HttpUrl:
    """One ``url { }`` of HTTP_GET/SSL_GET. ``status_code``: inclusive ranges; empty in the file
    means keepalived's default 200-299."""

    path: str | None = None
    digest: str | None = None  # lower-case hex MD5, as genhash prints it
    status_code: list[tuple[int, int]] = field(default_factory=lambda: [(200, 299)])
    virtualhost: str | None = None
    regex: str | None = None
    regex_no_match: bool = False
    regex_options: list[str] = field(default_factory=list)
    regex_min_offset: int | None = None
    regex_max_offset: int | None = None
    line: int = 0


@dataclass
class HttpCheck(Checker):
    kind: str = "HTTP_GET"
    ssl: bool = False
    urls: list[HttpUrl] = field(default_factory=list)
    virtualhost: str | None = None  # None: the real server's, else the virtual server's
    http_protocol: str = "1.0"  # 1.0 | 1.0C (Connection: close) | 1.1 | 1.0K (keep-alive)
    enable_sni: bool = False
    fast_recovery: bool = False


@dataclass
class SmtpHost:
    """A ``host { }`` of SMTP_CHECK: connection options of its own."""

    connect_ip: str | None = None
    connect_port: int | None = None
    bindto: str | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    fwmark: int | None = None
    connect_timeout: float | None = None  # None: the checker's
    line: int = 0


@dataclass
class SmtpCheck(Checker):
    kind: str = "SMTP_CHECK"
    helo_name: str | None = None  # None: keepalived sends "smtpchecker.keepalived.org"
    hosts: list[SmtpHost] = field(default_factory=list)


@dataclass
class DnsCheck(Checker):
    kind: str = "DNS_CHECK"
    retry: int = 3
    type: str = "SOA"
    name: str = "."


@dataclass
class MiscCheck(Checker):
    kind: str = "MISC_CHECK"
    retry: int = 0
    misc_path: str = ""
    misc_timeout: float | None = None  # None: delay_loop (keepalived)
    misc_dynamic: bool = False
    user: str | None = None
    group: str | None = None


@dataclass
class UdpCheck(Checker):
    kind: str = "UDP_CHECK"
    payload: bytes | None = None
    require_reply: bytes | None = None  # b"" when given without a value: any reply
    min_reply_length: int = 0
    max_reply_length: int = 255


@dataclass
class PingCheck(Checker):
    kind: str = "PING_CHECK"


@dataclass
class FileCheck(Checker):
    """FILE_CHECK (check_file.c): follows the top-level ``track_file`` of that name. With
    ``weight`` 0 a non-zero value in the file is down (with ``reverse``: a zero value); else the
    value * ``weight`` (negated with ``reverse``) is added to the real server's weight.
    ``weight`` None: the track_file's weight and reverse."""

    kind: str = "FILE_CHECK"
    track_file: str = ""
    weight: int | None = None
    reverse: bool = False


@dataclass
class TrackFile:
    """A top-level ``track_file NAME { file PATH; weight N [reverse]; init_file [VALUE]
    [overwrite] }`` (trackers/track_file.c): a file holding an integer that FILE_CHECKs (and
    VRRP instances) follow. ``weight`` (-254..254, default 1) and ``reverse`` are the defaults of
    the checkers that name it; ``init_file``: write ``init_value`` at start when the file does
    not exist, or always (but not on a reload) with ``overwrite``."""

    name: str
    path: str = ""
    weight: int = 1
    reverse: bool = False
    init_file: bool = False
    init_value: int = 0
    init_overwrite: bool = False
    line: int = 0
    file: str = ""


@dataclass
class BfdCheck(Checker):
    kind: str = "BFD_CHECK"
    name: str = ""


# --- virtual servers -----------------------------------------------------------------------


@dataclass
class SorryServer:
    addr: str
    port: int = 0
    lvs_method: str | None = None  # None: the virtual server's
    inhibit: bool = False
    line: int = 0


@dataclass
class RealServer:
    addr: str
    port: int = 0  # 0: none written (keepalived then uses the virtual server's port)
    weight: int = 1
    lvs_method: str | None = None  # None: the virtual server's
    uthreshold: int = 0
    lthreshold: int = 0
    inhibit_on_failure: bool = False
    notify_up: str | None = None
    notify_down: str | None = None
    alpha: bool = False
    smtp_alert: bool | None = None
    virtualhost: str | None = None
    checkers: list[Checker] = field(default_factory=list)
    line: int = 0
    file: str = ""
    extra: Extra = field(default_factory=dict)


@dataclass
class VsgEntry:
    """One line of a virtual_server_group: an address (or IPv4/IPv6 range ``first``..``last``)
    with a port, or a firewall mark."""

    addr: str | None = None
    last: str | None = None  # the end of a range, None for a single address
    port: int = 0
    fwmark: int | None = None
    family: str | None = None  # fwmark entries: "inet" | "inet6" | None
    line: int = 0


@dataclass
class VirtualServerGroup:
    name: str
    entries: list[VsgEntry] = field(default_factory=list)
    line: int = 0


@dataclass
class VirtualServer:
    """``virtual_server IP PORT | fwmark N | group NAME { }``."""

    addr: str | None = None
    port: int = 0
    fwmark: int | None = None
    group: str | None = None
    ip_family: str | None = None  # inet | inet6, from the file or the addresses
    lvs_sched: str = "wlc"  # keepalived IPVS_DEF_SCHED
    ops: bool = False
    sched_flags: list[str] = field(default_factory=list)  # flag-1.. / sh-port ...
    lvs_method: str = "NAT"
    tunnel: list[str] = field(default_factory=list)  # TUN type words (type ipip|gue|gre ...)
    persistence_engine: str | None = None
    persistence_timeout: int | None = None  # None: not persistent
    persistence_granularity: str | None = None
    protocol: str | None = None  # TCP | UDP | SCTP; None for fwmark
    ha_suspend: bool = False
    smtp_alert: bool | None = None
    virtualhost: str | None = None
    alpha: bool = False
    omega: bool = False
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: str | None = None
    quorum_down: str | None = None
    weight: int = 1  # default weight of the real servers
    inhibit_on_failure: bool = False
    connect_timeout: float = 5.0
    delay_loop: float = 60.0
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    sorry_server: SorryServer | None = None
    real_servers: list[RealServer] = field(default_factory=list)
    line: int = 0
    file: str = ""
    extra: Extra = field(default_factory=dict)

    def name(self) -> str:
        """keepalived's FMT_VS: ``[IP]:proto:PORT``, ``FWM N``, ``[GROUP]:0``."""
        if self.group is not None:
            return f"[{self.group}]:{self.port}"
        if self.fwmark is not None:
            return f"FWM {self.fwmark}"
        proto = (self.protocol or "none").lower()
        return f"[{self.addr}]:{proto}:{self.port}"


# --- VRRP ----------------------------------------------------------------------------------


@dataclass
class VirtualAddress:
    """A ``virtual_ipaddress`` line: ``ADDR[/PREFIX] [brd IP] [dev IF] [scope S] [label L] ...``.
    ``prefix`` None: none written (keepalived uses /32, /128)."""

    addr: str
    prefix: int | None = None
    brd: str | None = None
    dev: str | None = None
    scope: str | None = None
    label: str | None = None
    options: list[str] = field(default_factory=list)  # no_track, home, -nodad, ...
    line: int = 0


@dataclass
class UnicastPeer:
    addr: str
    min_ttl: int | None = None
    max_ttl: int | None = None
    line: int = 0


@dataclass
class TrackedInterface:
    name: str
    weight: int = 0  # 0: a fault takes the instance to FAULT
    reverse: bool = False
    line: int = 0


@dataclass
class TrackedScript:
    name: str
    weight: int | None = None  # None: the vrrp_script's weight
    reverse: bool = False
    line: int = 0


@dataclass
class AuthConfig:
    auth_type: str = "PASS"  # PASS | AH
    auth_pass: str = ""  # the first 8 characters are sent


@dataclass
class VrrpScript:
    """``vrrp_script NAME { }`` (defaults: interval 1 s, weight 0, rise 1, fall 1)."""

    name: str
    script: str = ""
    interval: float = 1.0
    timeout: float | None = None  # None: interval
    weight: int = 0
    reverse: bool = False
    rise: int = 1
    fall: int = 1
    user: str | None = None
    group: str | None = None
    init_fail: bool = False
    line: int = 0
    file: str = ""


@dataclass
class VrrpInstance:
    """``vrrp_instance NAME { }`` with keepalived's defaults, the globals applied (version,
    strict mode, garp settings); ``priority`` is 255 for ``state MASTER`` without a priority
    and 100 otherwise (vrrp.c vrrp_complete_instance)."""

    name: str
    state: str = "BACKUP"  # MASTER | BACKUP, as written or derived from the priority
    interface: str | None = None
    virtual_router_id: int | None = None
    priority: int = 100
    advert_int: float = 1.0
    version: int = 2
    virtual_ipaddress: list[VirtualAddress] = field(default_factory=list)
    virtual_ipaddress_excluded: list[VirtualAddress] = field(default_factory=list)
    virtual_routes: list[list[str]] = field(default_factory=list)  # raw words of each route
    nopreempt: bool = False
    preempt_delay: float = 0.0
    authentication: AuthConfig | None = None
    mcast_src_ip: str | None = None
    unicast_src_ip: str | None = None
    unicast_peer: list[UnicastPeer] = field(default_factory=list)
    unicast_ttl: int = 255
    track_interface: list[TrackedInterface] = field(default_factory=list)
    track_script: list[TrackedScript] = field(default_factory=list)
    dont_track_primary: bool = False
    notify_master: str | None = None
    notify_backup: str | None = None
    notify_fault: str | None = None
    notify_stop: str | None = None
    notify: str | None = None
    smtp_alert: bool | None = None
    use_vmac: bool = False
    vmac_name: str | None = None  # None: keepalived's vrrp.<VRID>
    vmac_xmit_base: bool = False
    garp_master_delay: float = 5.0
    garp_master_repeat: int = 5
    garp_master_refresh: float = 0.0
    garp_master_refresh_repeat: int = 1
    garp_lower_prio_delay: float = 5.0
    garp_lower_prio_repeat: int = 5
    accept: bool | None = None  # None: keepalived's default (accept unless strict mode)
    strict_mode: bool = False
    sync_group: str | None = None
    line: int = 0
    file: str = ""
    extra: Extra = field(default_factory=dict)


@dataclass
class VrrpSyncGroup:
    name: str
    group: list[str] = field(default_factory=list)
    notify_master: str | None = None
    notify_backup: str | None = None
    notify_fault: str | None = None
    notify_stop: str | None = None
    notify: str | None = None
    smtp_alert: bool | None = None
    track_interface: list[TrackedInterface] = field(default_factory=list)
    track_script: list[TrackedScript] = field(default_factory=list)
    line: int = 0
    file: str = ""
    extra: Extra = field(default_factory=dict)


@dataclass
class KeepalivedConfig:
    """A whole keepalived.conf (with its includes).

    ``warnings``: what keepalived reports but runs anyway (``file:line: message``, keepalived's
    texts: unknown keywords, values it resets); ``unused``: keywords keepalived knows that pylvs
    accepts without acting on them (``file:line: keyword``); ``notes``: what keepalived only
    logs (an include pattern that matches nothing); ``files``: every file read.
    """

    source: str = "<string>"
    global_defs: GlobalDefs = field(default_factory=GlobalDefs)
    virtual_servers: list[VirtualServer] = field(default_factory=list)
    virtual_server_groups: dict[str, VirtualServerGroup] = field(default_factory=dict)
    vrrp_instances: list[VrrpInstance] = field(default_factory=list)
    vrrp_sync_groups: list[VrrpSyncGroup] = field(default_factory=list)
    vrrp_scripts: dict[str, VrrpScript] = field(default_factory=dict)
    track_files: dict[str, TrackFile] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: Extra = field(default_factory=dict)

    def real_server_count(self) -> int:
        return sum(len(vs.real_servers) for vs in self.virtual_servers)
