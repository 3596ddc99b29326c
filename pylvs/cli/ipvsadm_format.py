"""What ``ipvsadm`` 1.31 prints, byte for byte, as pure functions of listing snapshots.

Every function here renders :class:`~pylvs.core.control.ServiceInfo` / :class:`ConnInfo` lists into
text with the printf formats of ``ipvsadm.c`` (``print_title``, ``print_service_entry``,
``print_largenum``, ``print_conn``, ``list_timeout``) and the ordering of ``libipvs.c``
(``ipvs_cmp_services`` / ``ipvs_cmp_dests`` sorted by glibc's merge-sort ``qsort``).
Name lookups for the non-numeric mode go through a :class:`Namer`, so tests can pin them.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from pylvs.core.control import ConnInfo, DaemonInfo, DestInfo, ServiceInfo, Timeouts
from pylvs.core.service import AF_INET6, FwdMethod, ServiceFlags

__all__ = [
    "IPVS_SIZE",
    "IPVS_VERSION",
    "Fmt",
    "Namer",
    "SystemNamer",
    "addrport_to_anyname",
    "cmp_dests",
    "cmp_services",
    "format_conns",
    "format_daemons",
    "format_listing",
    "format_service",
    "format_timeout",
    "inet_ntop",
    "largenum",
    "netmask_text",
    "protocol_name",
    "qsort",
    "sort_dests",
    "sort_services",
]

IPVS_VERSION = "1.2.1"
IPVS_SIZE = 4096  # the connection hash table size the header reports

IPPROTO_IP = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132

# Kernel address family numbers: the sort compares them, so IPv4 (2) sorts before IPv6 (10).
_KERNEL_AF = {4: 2, 6: 10}

_SCHED_FLAGS_MASK = ServiceFlags.SCHED1 | ServiceFlags.SCHED2 | ServiceFlags.SCHED3


class Fmt(enum.IntFlag):
    """ipvsadm's FMT_* printing flags."""

    NONE = 0
    NUMERIC = 0x0001
    RULE = 0x0002
    STATS = 0x0004
    RATE = 0x0008
    THRESHOLDS = 0x0010
    PERSISTENTCONN = 0x0020
    NOSORT = 0x0040
    EXACT = 0x0080
    TUN_INFO = 0x0100


class Namer(Protocol):
    """Reverse lookups for the non-numeric mode; ``None`` means "print it numerically"."""

    def host(self, af: int, addr: str) -> str | None: ...
    def service(self, port: int, protocol: int) -> str | None: ...


_PROTO_DB_NAME = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_SCTP: "sctp"}


class SystemNamer:
    """``gethostbyaddr`` and ``getservbyport`` as ipvsadm uses them, each answer cached for the run
    so a listing of many dests on one host costs one lookup."""

    def __init__(self) -> None:
        self._hosts: dict[str, str | None] = {}
        self._services: dict[tuple[int, int], str | None] = {}

    def host(self, af: int, addr: str) -> str | None:
        if addr not in self._hosts:
            try:
                self._hosts[addr] = socket.gethostbyaddr(addr)[0]
            except (OSError, UnicodeError):
                self._hosts[addr] = None
        return self._hosts[addr]

    def service(self, port: int, protocol: int) -> str | None:
        key = (port, protocol)
        if key not in self._services:
            name: str | None = None
            proto = _PROTO_DB_NAME.get(protocol)
            if proto is not None:
                try:
                    name = socket.getservbyport(port, proto)
                except (OSError, OverflowError):
                    name = None
            self._services[key] = name
        return self._services[key]


def inet_ntop(af: int, addr: str) -> str:
    """The text glibc's ``inet_ntop`` gives for an address.

    IPv6: the longest run of two or more zero words is compressed (the first one on ties), and
    ``::a.b.c.d`` and ``::ffff:a.b.c.d`` keep their dotted tail.
    """
    if af != AF_INET6:
        return str(ipaddress.IPv4Address(addr))
    value = int(ipaddress.IPv6Address(addr))
    words = [(value >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    best_base, best_len = -1, 0
    cur_base, cur_len = -1, 0
    for i, word in enumerate(words):
        if word == 0:
            if cur_base == -1:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
        elif cur_base != -1:
            if best_base == -1 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if cur_base != -1 and (best_base == -1 or cur_len > best_len):
        best_base, best_len = cur_base, cur_len
    if best_base != -1 and best_len < 2:
        best_base = -1
    out = ""
    i = 0
    while i < 8:
        if best_base != -1 and best_base <= i < best_base + best_len:
            if i == best_base:
                out += ":"
            i += 1
            continue
        if i != 0:
            out += ":"
        if i == 6 and best_base == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
            out += str(ipaddress.IPv4Address(value & 0xFFFFFFFF))
            break
        out += f"{words[i]:x}"
        i += 1
    if best_base != -1 and best_base + best_len == 8:
        out += ":"
    return out


def netmask_text(prefix: int) -> str:
    """A prefix length as the dotted quad ``inet_ntoa`` prints for the mask."""
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix > 0 else 0
    return str(ipaddress.IPv4Address(mask))


def protocol_name(protocol: int) -> str:
    """``protocol_name()`` of ipvsadm.c: the service column's protocol."""
    return {IPPROTO_TCP: "TCP", IPPROTO_UDP: "UDP", IPPROTO_SCTP: "SCTP"}.get(protocol, "?")


def _conn_protocol_name(protocol: int) -> str:
    """``ip_vs_proto_name()``: what /proc/net/ip_vs_conn shows, and so what ``-Lc`` prints."""
    names = {
        IPPROTO_IP: "IP",
        IPPROTO_UDP: "UDP",
        IPPROTO_TCP: "TCP",
        IPPROTO_SCTP: "SCTP",
        IPPROTO_ICMP: "ICMP",
        IPPROTO_ICMPV6: "ICMPv6",
    }
    return names.get(protocol, f"IP_{protocol}")


def addrport_to_anyname(
    af: int, addr: str, port: int, protocol: int, fmt: Fmt, namer: Namer | None
) -> str:
    """``addrport_to_anyname()``: ``addr:port`` (IPv6 in brackets), names unless numeric; the C
    buffer is 60 bytes, so at most 59 characters survive."""
    open_b, close_b = ("", "") if af != AF_INET6 else ("[", "]")
    host: str | None = None
    serv: str | None = None
    if not (fmt & Fmt.NUMERIC) and namer is not None:
        host = namer.host(af, addr)
        serv = namer.service(port, protocol)
    text = f"{open_b}{host or inet_ntop(af, addr)}{close_b}:{serv or port}"
    return text[:59]


def largenum(value: int, fmt: Fmt) -> str:
    """``print_largenum()``: 9 columns, K/M/G/T above 10^8, or ``--exact`` widths."""
    if fmt & Fmt.EXACT:
        digits = str(value)
        width = 9 if len(digits) <= 8 else len(digits) + 1
        return digits.rjust(width)
    if value < 100_000_000:
        return f"{value:9d}"
    if value < 1_000_000_000:
        return f"{value // 1000:8d}K"
    if value < 100_000_000_000:
        return f"{value // 1_000_000:8d}M"
    if value < 100_000_000_000_000:
        return f"{value // 1_000_000_000:8d}G"
    return f"{value // 1_000_000_000_000:8d}T"


# --- sorting -----------------------------------------------------------------------------------


def _int32(value: int) -> int:
    """A C ``int`` receiving an unsigned 32-bit difference: wraps at 2^31 (the sort quirk)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _addr_words(af: int, addr: str) -> list[int]:
    """The address as the four host-order words of ``union nf_inet_addr`` (IPv4 fills word 0)."""
    if af != AF_INET6:
        return [int(ipaddress.IPv4Address(addr)), 0, 0, 0]
    value = int(ipaddress.IPv6Address(addr))
    return [(value >> (96 - 32 * i)) & 0xFFFFFFFF for i in range(4)]


def _cmp_addr(af1: int, addr1: str, af2: int, addr2: str) -> int:
    w1 = _addr_words(af1, addr1)
    w2 = _addr_words(af2, addr2)
    if af1 == AF_INET6:
        r = 0
        for i in range(4):
            r = _int32(w1[i] - w2[i])
            if r:
                break
        return r
    return _int32(w1[0] - w2[0])


def cmp_services(s1: ServiceInfo, s2: ServiceInfo) -> int:
    """``ipvs_cmp_services``: fwmark, af, protocol, address (wrapping int), port."""
    r = _int32(s1.fwmark - s2.fwmark)
    if r:
        return r
    r = _KERNEL_AF.get(s1.af, s1.af) - _KERNEL_AF.get(s2.af, s2.af)
    if r:
        return r
    r = s1.protocol - s2.protocol
    if r:
        return r
    if not s1.fwmark:
        r = _cmp_addr(s1.af, s1.addr, s2.af, s2.addr)
        if r:
            return r
    return s1.port - s2.port


def cmp_dests(d1: DestInfo, d2: DestInfo) -> int:
    """``ipvs_cmp_dests``: address (wrapping int, by the first dest's family), then port."""
    r = _cmp_addr(d1.af, d1.addr, d2.af, d2.addr)
    if r:
        return r
    return d1.port - d2.port


_T = TypeVar("_T")


def qsort(items: Sequence[_T], cmp: Callable[[_T, _T], int]) -> list[_T]:
    """glibc's ``qsort`` (``msort_with_tmp``): top-down merge sort, left half ``n // 2``, taking
    from the left on ``cmp <= 0``. The comparators are not transitive, so only this exact
    algorithm reproduces ipvsadm's order."""
    items = list(items)
    n = len(items)
    if n <= 1:
        return items
    n1 = n // 2
    left = qsort(items[:n1], cmp)
    right = qsort(items[n1:], cmp)
    out: list[_T] = []
    i = j = 0
    while i < len(left) and j < len(right):
        if cmp(left[i], right[j]) <= 0:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def sort_services(services: Sequence[ServiceInfo]) -> list[ServiceInfo]:
    return qsort(services, cmp_services)


def sort_dests(dests: Sequence[DestInfo]) -> list[DestInfo]:
    return qsort(dests, cmp_dests)


# --- service listing ----------------------------------------------------------------------------

_TUN_NAMES = ("ipip", "gue", "gre")
_TUN_FLAGS = ("-c", "+c", "r+c")
_TUN_FLAG_OPTS = ("--tun-nocsum", "--tun-csum", "--tun-remcsum")


def _title(fmt: Fmt) -> str:
    """``print_title()``."""
    head = "Prot LocalAddress:Port"
    if fmt & Fmt.STATS:
        cols = ("Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
        return f"{head:<33}" + "".join(f" {c:>8}" for c in cols) + "\n  -> RemoteAddress:Port\n"
    if fmt & Fmt.RATE:
        cols = ("CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
        return f"{head:<33}" + "".join(f" {c:>8}" for c in cols) + "\n  -> RemoteAddress:Port\n"
    if fmt & Fmt.THRESHOLDS:
        return (
            f"{head:<33} {'Uthreshold':<10} {'Lthreshold':<10} {'ActiveConn':<10} "
            f"{'InActConn':<10}\n  -> RemoteAddress:Port\n"
        )
    if fmt & Fmt.PERSISTENTCONN:
        return (
            f"{head:<33} {'Weight':<9} {'PersistConn':<11} {'ActiveConn':<10} "
            f"{'InActConn':<10}\n  -> RemoteAddress:Port\n"
        )
    if fmt & Fmt.TUN_INFO:
        return (
            "Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
        )
    if not fmt & Fmt.RULE:
        return (
            "Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        )
    return ""


def _sched_flags_text(svc: ServiceInfo) -> str:
    """``print_sched_flags()``: names depend on the scheduler (sh-*, mh-*, else flag-N)."""
    names: list[str] = []
    if svc.scheduler == "sh":
        if svc.flags & ServiceFlags.SCHED1:
            names.append("sh-fallback")
        if svc.flags & ServiceFlags.SCHED2:
            names.append("sh-port")
    elif svc.scheduler == "mh":
        if svc.flags & ServiceFlags.SCHED1:
            names.append("mh-fallback")
        if svc.flags & ServiceFlags.SCHED2:
            names.append("mh-port")
    else:
        if svc.flags & ServiceFlags.SCHED1:
            names.append("flag-1")
        if svc.flags & ServiceFlags.SCHED2:
            names.append("flag-2")
        if svc.flags & ServiceFlags.SCHED3:
            names.append("flag-3")
    return ",".join(names)


def _fwd_name(fwd: int) -> str:
    try:
        return FwdMethod(fwd & 0x7).label
    except ValueError:
        return "(null)"


def _fwd_switch(fwd: int) -> str:
    return {int(FwdMethod.MASQ): "-m", int(FwdMethod.TUNNEL): "-i"}.get(fwd & 0x7, "-g")


def _tun_info(dest: DestInfo) -> str:
    """``fwd_tun_info()``: the TunnelInfo column, ``n/a`` unless a tunnel dest."""
    if dest.fwd & 0x7 != FwdMethod.TUNNEL or not 0 <= dest.tun_type <= 2:
        return "n/a"
    flags = _TUN_FLAGS[dest.tun_flags] if 0 <= dest.tun_flags <= 2 else "(null)"
    if dest.tun_type == 0:
        return "ipip"
    if dest.tun_type == 1:
        return f"gue:{dest.tun_port}:{flags}"[:15]
    return f"gre:{flags}"[:15]


def _tunnel_rule(svc_name: str, dname: str, dest: DestInfo) -> str:
    """``print_tunnel_rule()``: ``-S`` line of a tunnel dest with its encapsulation."""
    base = f"-a {svc_name} -r {dname} {_fwd_switch(dest.fwd)} -w {dest.weight}"
    flag_opt = _TUN_FLAG_OPTS[dest.tun_flags] if 0 <= dest.tun_flags <= 2 else "(null)"
    if dest.tun_type == 2:
        return f"{base} --tun-type gre {flag_opt}\n"
    if dest.tun_type == 1:
        return f"{base} --tun-type gue --tun-port {dest.tun_port} {flag_opt}\n"
    if dest.tun_type == 0:
        return f"{base} --tun-type ipip\n"
    return f"{base}\n"


def _dest_counters(dest: DestInfo) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Dest stats as libipvs 1.31 reads them: it parses the dest's 64-bit stats attribute with the
    32-bit parser, so conns, packets and rates keep their low 32 bits; bytes stay whole."""
    low = 0xFFFFFFFF
    conns, inpkts, outpkts, inbytes, outbytes = dest.stats
    stats = (conns & low, inpkts & low, outpkts & low, inbytes, outbytes)
    rates = tuple(r & low for r in dest.rates)
    return stats, rates


def format_service(svc: ServiceInfo, fmt: Fmt, namer: Namer | None = None) -> str:
    """``print_service_entry()``: the service line and its dest lines."""
    if svc.fwmark:
        if fmt & Fmt.RULE:
            svc_name = f"-f {svc.fwmark} -6" if svc.af == AF_INET6 else f"-f {svc.fwmark}"
        else:
            svc_name = f"FWM  {svc.fwmark} IPv6" if svc.af == AF_INET6 else f"FWM  {svc.fwmark}"
    else:
        vname = addrport_to_anyname(svc.af, svc.addr, svc.port, svc.protocol, fmt, namer)
        if fmt & Fmt.RULE:
            stype = {IPPROTO_TCP: "-t", IPPROTO_UDP: "-u", IPPROTO_SCTP: "--sctp-service"}.get(
                svc.protocol, "--xxx-service"
            )
            svc_name = f"{stype} {vname}"
        else:
            svc_name = f"{protocol_name(svc.protocol):<4} {vname}"
            if svc.af != AF_INET6:
                svc_name = svc_name[:33]

    out: list[str] = []
    persistent = bool(svc.flags & ServiceFlags.PERSISTENT)
    if fmt & Fmt.RULE:
        line = f"-A {svc_name} -s {svc.scheduler}"
        if persistent:
            line += f" -p {svc.timeout}"
            if svc.af != AF_INET6 and svc.netmask != 32:
                line += f" -M {netmask_text(svc.netmask)}"
            if svc.af == AF_INET6 and svc.netmask != 128:
                line += f" -M {svc.netmask}"
        if svc.pe_name:
            line += f" --pe {svc.pe_name}"
        if svc.flags & ServiceFlags.ONEPACKET:
            line += " -o"
        if svc.flags & _SCHED_FLAGS_MASK:
            line += " -b " + _sched_flags_text(svc)
    elif fmt & Fmt.STATS:
        line = f"{svc_name:<33}" + "".join(largenum(v, fmt) for v in svc.stats)
    elif fmt & Fmt.RATE:
        line = f"{svc_name:<33}" + "".join(largenum(v, fmt) for v in svc.rates)
    else:
        line = f"{svc_name} {svc.scheduler}"
        if svc.flags & _SCHED_FLAGS_MASK:
            line += f" ({_sched_flags_text(svc)})"
        if persistent:
            line += f" persistent {svc.timeout}"
            if svc.af != AF_INET6 and svc.netmask != 32:
                line += f" mask {netmask_text(svc.netmask)}"
            if svc.af == AF_INET6 and svc.netmask != 128:
                line += f" mask {svc.netmask}"
            if svc.pe_name:
                line += f" pe {svc.pe_name}"
        if svc.flags & ServiceFlags.ONEPACKET:
            line += " ops"
    out.append(line + "\n")

    # ipvsadm creates fwmark services with protocol TCP, so their dest ports resolve as tcp names.
    dest_protocol = svc.protocol or (IPPROTO_TCP if svc.fwmark else 0)
    dests = list(svc.dests) if fmt & Fmt.NOSORT else sort_dests(svc.dests)
    for dest in dests:
        dname = addrport_to_anyname(dest.af, dest.addr, dest.port, dest_protocol, fmt, namer)
        if not fmt & Fmt.RULE and dest.af != AF_INET6:
            dname = dname[:28]
        stats, rates = _dest_counters(dest)
        if fmt & Fmt.RULE:
            if dest.fwd & 0x7 == FwdMethod.TUNNEL:
                out.append(_tunnel_rule(svc_name, dname, dest))
            else:
                out.append(f"-a {svc_name} -r {dname} {_fwd_switch(dest.fwd)} -w {dest.weight}\n")
        elif fmt & Fmt.STATS:
            out.append(f"  -> {dname:<28}" + "".join(largenum(v, fmt) for v in stats) + "\n")
        elif fmt & Fmt.RATE:
            out.append(
                f"  -> {dname:<28} {rates[0]:8d} {rates[1]:8d} {rates[2]:8d}"
                + largenum(rates[3], fmt)
                + largenum(rates[4], fmt)
                + "\n"
            )
        elif fmt & Fmt.THRESHOLDS:
            out.append(
                f"  -> {dname:<28} {dest.u_threshold:<10} {dest.l_threshold:<10} "
                f"{dest.activeconns:<10} {dest.inactconns:<10}\n"
            )
        elif fmt & Fmt.PERSISTENTCONN:
            out.append(
                f"  -> {dname:<28} {dest.weight:<9} {dest.persistconns:<11} "
                f"{dest.activeconns:<10} {dest.inactconns:<10}\n"
            )
        elif fmt & Fmt.TUN_INFO:
            out.append(
                f"  -> {dname:<28} {_fwd_name(dest.fwd):<7} {_tun_info(dest):<13} "
                f"{dest.weight:<6} {dest.activeconns:<10} {dest.inactconns:<10}\n"
            )
        else:
            out.append(
                f"  -> {dname:<28} {_fwd_name(dest.fwd):<7} {dest.weight:<6} "
                f"{dest.activeconns:<10} {dest.inactconns:<10}\n"
            )
    return "".join(out)


def format_listing(
    services: Sequence[ServiceInfo], fmt: Fmt, namer: Namer | None = None, *, header: bool = True
) -> str:
    """``list_all()`` (``-L``, ``-S``): version header unless saving, title, sorted services.

    ``header=False`` with one service gives ``list_service()`` (``-L -t ...``), which has no
    version line.
    """
    out: list[str] = []
    if header and not fmt & Fmt.RULE:
        out.append(f"IP Virtual Server version {IPVS_VERSION} (size={IPVS_SIZE})\n")
    ordered = list(services) if fmt & Fmt.NOSORT else sort_services(services)
    out.append(_title(fmt))
    for svc in ordered:
        out.append(format_service(svc, fmt, namer))
    return "".join(out)


# --- connections and timeouts -------------------------------------------------------------------


def _conn_af(addr: str) -> int:
    return AF_INET6 if ":" in addr else 4


def format_conns(conns: Sequence[ConnInfo], fmt: Fmt, namer: Namer | None = None) -> str:
    """``list_conn()`` / ``print_conn()``: ``-Lc``, with the pe columns under ``--persistent-conn``.

    The pe columns appear on a row only when the entry has persistence-engine data (the /proc line
    then has 11 fields); the title's destination column is 18 wide but the row's 16, as in ipvsadm.
    """
    out = ["IPVS connection entries\n"]
    if fmt & Fmt.PERSISTENTCONN:
        out.append(
            f"pro expire {'state':<11} {'source':<18} {'virtual':<18} {'destination':<18} "
            f"{'pe name':<16} pe_data\n"
        )
    else:
        out.append(f"pro expire {'state':<11} {'source':<18} {'virtual':<18} destination\n")
    for conn in conns:
        proto = _conn_protocol_name(conn.protocol)
        # ipvsadm maps the /proc protocol text back to a number for the service-name lookup.
        lookup_proto = {"TCP": IPPROTO_TCP, "UDP": IPPROTO_UDP, "SCTP": IPPROTO_SCTP}.get(proto, 0)
        af = AF_INET6 if conn.af == AF_INET6 else 4
        vaddr = conn.vaddr
        if conn.template and conn.fwmark:
            # A fwmark template holds the mark in its first address word (ip_vs_sched_persist).
            if af == AF_INET6:
                vaddr = str(ipaddress.IPv6Address(conn.fwmark << 96))
            else:
                vaddr = str(ipaddress.IPv4Address(conn.fwmark))
        cname = addrport_to_anyname(af, conn.caddr, conn.cport, lookup_proto, fmt, namer)
        vname = addrport_to_anyname(af, vaddr, conn.vport, lookup_proto, fmt, namer)
        daf = _conn_af(conn.daddr)
        dname = addrport_to_anyname(daf, conn.daddr, conn.dport, lookup_proto, fmt, namer)
        expires = max(conn.expires, 0) & 0xFFFFFFFF
        expire_str = f"{expires // 60:02d}:{expires % 60:02d}"
        state = conn.state.split()[0] if conn.state.strip() else conn.state
        if fmt & Fmt.PERSISTENTCONN and conn.pe_name and conn.pe_data:
            out.append(
                f"{proto:<3} {expire_str:<6} {state:<11} {cname:<18} {vname:<18} {dname:<16} "
                f"{conn.pe_name:<18} {conn.pe_data.split()[0]}\n"
            )
        else:
            out.append(f"{proto:<3} {expire_str:<6} {state:<11} {cname:<18} {vname:<18} {dname}\n")
    return "".join(out)


def format_timeout(timeouts: Timeouts) -> str:
    """``list_timeout()``."""
    return f"Timeout (tcp tcpfin udp): {timeouts.tcp} {timeouts.tcpfin} {timeouts.udp}\n"


def format_daemons(daemons: Sequence[DaemonInfo]) -> str:
    """``list_daemon()``: one ``print_sync_daemon`` line per running daemon, master first.

    maxlen, port and ttl are printed when non-zero and the group when one is set, which a
    running daemon always has (the kernel fills in its defaults).
    """
    out = []
    for d in daemons:
        line = f"{d.state} sync daemon (mcast={d.mcast_ifn}, syncid={d.syncid}"
        if d.sync_maxlen:
            line += f", maxlen={d.sync_maxlen}"
        if d.mcast_group:
            line += f", group={d.mcast_group}"
        if d.mcast_port:
            line += f", port={d.mcast_port}"
        if d.mcast_ttl:
            line += f", ttl={d.mcast_ttl}"
        out.append(line + ")\n")
    return "".join(out)
