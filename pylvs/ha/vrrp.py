"""pylvsd's VRRP: the ``vrrp_instance``s of a keepalived.conf, run as keepalived 2.2.7 runs them.

The protocol itself is pure (:class:`pylvs.core.vrrp.VRRPInstance`,
:class:`pylvs.core.vrrpgroup.SyncGroup`); this module is the I/O around it, in threads of its
own so that a busy data plane never delays an advertisement:

* the **VRRP thread** owns one raw IPv4 socket for protocol 112 per interface
  (``SO_BINDTODEVICE``, joined to 224.0.0.18 on that interface, ``IP_MULTICAST_LOOP`` off so an
  instance never hears itself, ``IP_HDRINCL``: the core builds the whole datagram as keepalived's
  ``vrrp_build_ip4`` does, TOS 0xc0, TTL 255), an rtnetlink socket for link changes
  (``track_interface`` and the instance's own interface), and the timers. It hands every
  datagram to the instance of its VRID, calls ``tick`` at the deadline, and performs the actions
  in order: adverts, the virtual addresses (through :mod:`pylvs.io.netcfg`, with ``dev``,
  ``label``, ``scope`` and ``brd`` as written), gratuitous ARP bursts (keepalived's frames,
  :func:`pylvs.core.vrrpmsg.gratuitous_arp`, sent back to back by
  :func:`pylvs.io.garp.send_frames`), log lines (keepalived's words);
* the **notify thread** runs ``notify_master`` / ``_backup`` / ``_fault`` / ``_stop`` and the
  generic ``notify`` (``notify INSTANCE|GROUP NAME STATE PRIORITY``), never waiting for them
  except ``_stop`` at shutdown (1 s, ``child_killed_thread``);
* one **script thread** per ``vrrp_script`` runs it every ``interval`` (killed after ``timeout``)
  and feeds the rise/fall result (:class:`ScriptState`, keepalived's
  ``vrrp_script_child_thread``) back to the VRRP thread.

``lvs_sync_daemon IF INSTANCE`` follows the instance (keepalived ``vrrp_init_state``,
``ipvs_syncd_master`` / ``ipvs_syncd_backup``): the backup sync daemon starts with the instance,
becoming MASTER stops it and starts the master daemon, leaving MASTER does the reverse, and
shutdown stops the daemon of the current role. The daemon does it on its loop
(:data:`SyncdHook`).
"""

from __future__ import annotations

import grp
import ipaddress
import logging
import os
import pwd
import queue
import selectors
import signal
import socket
import stat
import struct
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pylvs.config._ka_reader import quoted_escaped
from pylvs.config.kamodel import (
    KeepalivedConfig,
    LvsSyncDaemon,
    VirtualAddress,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
)
from pylvs.core import vrrpmsg
from pylvs.core.ndisc import unsolicited_na
from pylvs.core.vrrp import (
    BACKUP,
    FAULT,
    MASTER,
    STOP,
    AddAddresses,
    InstanceConfig,
    Log,
    Notify,
    RemoveAddresses,
    Send,
    SendGarp,
    Tracker,
    VRRPInstance,
)
from pylvs.core.vrrpgroup import SyncGroup
from pylvs.io import garp, netcfg
from pylvs.loop import OwnThreads

__all__ = [
    "Placement",
    "ScriptState",
    "SyncdPlan",
    "VRRPConfigError",
    "VRRPService",
    "instance_config",
    "placements",
    "script_argv",
    "syncd_event",
    "syncd_plan",
]

log = logging.getLogger("pylvs.vrrp")

_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
_IP_MULTICAST_ALL = 49
ETH_P_IPV6 = 0x86DD
_LOG_KEEP = 50
_STOP_SCRIPT_WAIT = 1.0  # notify_stop: system_call_script(..., TIMER_HZ, ...)


class VRRPConfigError(Exception):
    """A vrrp_instance pylvs cannot run as written (the message is for the operator)."""


# -- pure: from the keepalived.conf model to the state machine's configuration ---------------


@dataclass(frozen=True)
class Placement:
    """Where and how one virtual address goes (``ADDR[/PREFIX] [brd B] [dev D] [scope S]
    [label L]``); keepalived's default prefix is /32 and the device the instance's interface."""

    addr: str
    prefix: int
    dev: str
    brd: str | None = None
    scope: str | None = None
    label: str | None = None


def _placement(va: VirtualAddress, default_dev: str) -> Placement:
    six = ":" in va.addr
    prefix = (128 if six else 32) if va.prefix is None else va.prefix
    brd = va.brd
    if six:
        brd = None  # IPv6 has no broadcast (keepalived ignores brd for it)
    elif brd == "+":  # ip(8): the network's broadcast address
        brd = str(ipaddress.IPv4Network(f"{va.addr}/{prefix}", strict=False).broadcast_address)
    elif brd == "-":
        brd = None
    return Placement(va.addr, prefix, va.dev or default_dev, brd, va.scope, va.label)


def placements(vi: VrrpInstance, default_dev: str) -> tuple[Placement, ...]:
    """The virtual addresses (``virtual_ipaddress`` then ``virtual_ipaddress_excluded``)."""
    return tuple(
        _placement(va, default_dev)
        for va in [*vi.virtual_ipaddress, *vi.virtual_ipaddress_excluded]
    )


def script_argv(text: str) -> list[str]:
    """A script string as keepalived splits it into a program and arguments, no shell
    (``set_script_params_array``: quotes and escapes, :func:`quoted_escaped`); [] if it
    cannot be read (an unterminated quote: keepalived ignores the script)."""
    return quoted_escaped(text) or []


def _family(vi: VrrpInstance) -> int:
    """The instance's address family as keepalived sets it: from the first
    ``virtual_ipaddress``, else ``unicast_src_ip`` / ``mcast_src_ip`` / the first unicast peer,
    else the first excluded address; IPv4 when nothing says."""
    firsts = [va.addr for va in vi.virtual_ipaddress[:1]]
    firsts += [a for a in (vi.unicast_src_ip, vi.mcast_src_ip) if a]
    firsts += [p.addr for p in vi.unicast_peer[:1]]
    firsts += [va.addr for va in vi.virtual_ipaddress_excluded[:1]]
    return 6 if firsts and ":" in firsts[0] else 4


def _check_v6(vi: VrrpInstance, family: int) -> None:
    """keepalived's family rules: every ``virtual_ipaddress`` and unicast address of the
    instance's family (``virtual_ipaddress_excluded`` may hold either); for multicast IPv6 the
    first VIP should be link local (RFC 5798 5.2.9: an error in ``vrrp_strict`` mode, a log line
    otherwise, ``vrrp_complete_instance``)."""
    want = "IPv6" if family == 6 else "IPv4"
    for addr in [va.addr for va in vi.virtual_ipaddress] + [p.addr for p in vi.unicast_peer]:
        if (":" in addr) != (family == 6):
            raise VRRPConfigError(
                f"({vi.name}) address family must match VRRP instance [{addr}]: the instance is "
                f"{want}"
            )
    for src in (vi.unicast_src_ip, vi.mcast_src_ip):
        if src and (":" in src) != (family == 6):
            raise VRRPConfigError(f"({vi.name}) {src} is not an {want} address")
    if family == 6 and not vi.unicast_peer and vi.virtual_ipaddress:
        first = ipaddress.IPv6Address(vi.virtual_ipaddress[0].addr)
        if not first.is_link_local:
            if vi.strict_mode:
                raise VRRPConfigError(f"({vi.name}) the first IPv6 VIP address must be link local")
            log.info("(%s) the first IPv6 VIP address should be link local", vi.name)


def instance_config(
    vi: VrrpInstance,
    ka: KeepalivedConfig,
    src: str,
    link_up: Callable[[str], bool] = lambda name: True,
    group: VrrpSyncGroup | None = None,
) -> InstanceConfig:
    """The :class:`InstanceConfig` of one ``vrrp_instance`` (globals and, for a sync group
    member, the group's ``track_interface`` / ``track_script`` applied); ``src`` is the
    instance's source address (``unicast_src_ip``, ``mcast_src_ip`` or the interface's primary
    address); ``link_up`` tells the tracked interfaces' state at start."""
    g = ka.global_defs
    if vi.virtual_router_id is None:
        raise VRRPConfigError(f"({vi.name}) the virtual router id must be set")
    family = _family(vi)
    _check_v6(vi, family)
    iface = vi.interface or g.default_interface or "eth0"
    trackers: list[Tracker] = []
    if not vi.dont_track_primary:
        trackers.append(Tracker(iface, 0, up=link_up(iface)))
    seen = {t.name for t in trackers}
    track_if = list(vi.track_interface) + (list(group.track_interface) if group else [])
    for ti in track_if:
        if ti.name in seen:
            continue
        seen.add(ti.name)
        trackers.append(Tracker(ti.name, ti.weight, ti.reverse, up=link_up(ti.name)))
    track_sc = list(vi.track_script) + (list(group.track_script) if group else [])
    for ts in track_sc:
        script = ka.vrrp_scripts.get(ts.name)
        if script is None or ts.name in seen:
            continue  # the parser warned about an unknown script already
        seen.add(ts.name)
        weight = script.weight if ts.weight is None else ts.weight
        up = False if script.init_fail else None
        trackers.append(Tracker(ts.name, weight, ts.reverse != script.reverse, up=up))
    auth_type, auth_pass = vrrpmsg.AUTH_NONE, ""
    if vi.authentication is not None and vi.version == 2:
        if vi.authentication.auth_type == "AH":
            raise VRRPConfigError(f"({vi.name}) auth_type AH is not supported by pylvs")
        auth_type, auth_pass = vrrpmsg.AUTH_PASS, vi.authentication.auth_pass
    mcast = g.vrrp_mcast_group4 if family == 4 else g.vrrp_mcast_group6
    default_group = vrrpmsg.MCAST_GROUP4 if family == 4 else vrrpmsg.MCAST_GROUP6
    return InstanceConfig(
        name=vi.name,
        vrid=vi.virtual_router_id,
        src=src,
        vips=tuple(va.addr for va in vi.virtual_ipaddress),
        excluded_vips=tuple(va.addr for va in vi.virtual_ipaddress_excluded),
        priority=vi.priority,
        state=vi.state,
        version=vi.version,
        family=family,
        advert_int=vi.advert_int,
        nopreempt=vi.nopreempt,
        preempt_delay=vi.preempt_delay,
        auth_type=auth_type,
        auth_pass=auth_pass,
        unicast_peers=tuple(
            vrrpmsg.UnicastPeer(
                p.addr,
                0 if p.min_ttl is None else p.min_ttl,
                255 if p.max_ttl is None else p.max_ttl,
            )
            for p in vi.unicast_peer
        ),
        unicast_ttl=vi.unicast_ttl,
        check_unicast_src=g.vrrp_check_unicast_src,
        mcast_group=""
        if ipaddress.ip_address(mcast) == ipaddress.ip_address(default_group)
        else mcast,
        interface="" if vi.dont_track_primary else iface,
        trackers=tuple(trackers),
        garp_master_delay=vi.garp_master_delay,
        garp_master_repeat=vi.garp_master_repeat,
        garp_master_refresh=vi.garp_master_refresh,
        garp_master_refresh_repeat=vi.garp_master_refresh_repeat,
        garp_lower_prio_delay=vi.garp_lower_prio_delay,
        garp_lower_prio_repeat=vi.garp_lower_prio_repeat,
        lower_prio_no_advert=g.vrrp_lower_prio_no_advert,
        higher_prio_send_advert=g.vrrp_higher_prio_send_advert,
        down_timer_adverts=g.vrrp_down_timer_adverts,
        skip_check_adv_addr=g.vrrp_skip_check_adv_addr,
    )


# -- pure: vrrp_script results (vrrp_scheduler.c vrrp_init_script, vrrp_script_child_thread) --


@dataclass
class ScriptState:
    """The rise/fall counter of one ``vrrp_script``. ``result`` runs 0..rise+fall-1: the script
    is up from ``rise`` on. At start one success is enough (``result = rise - 1``), unless
    ``init_fail`` (``result = 0``: the script counts as failed until it has risen)."""

    rise: int = 1
    fall: int = 1
    init_fail: bool = False
    result: int = field(init=False)
    initial: bool = field(init=False, default=True)  # SCRIPT_INIT_STATE_INIT / _FAILED

    def __post_init__(self) -> None:
        self.result = 0 if self.init_fail else self.rise - 1

    @property
    def up(self) -> bool | None:
        """What the trackers see: None while a script (without init_fail) has not run."""
        if self.initial:
            return False if self.init_fail else None
        return self.result >= self.rise

    def record(self, success: bool) -> bool | None:
        """One run's outcome; returns the new state when it changes (keepalived logs
        ``VRRP_Script(NAME) succeeded`` / ``failed`` and updates the priorities), else None."""
        changed: bool | None = None
        top = self.rise + self.fall - 1
        if success:
            if self.result < self.rise - 1:
                self.result += 1
            elif self.result != top:
                if self.result < self.rise:
                    changed = True
                self.result = top
        else:
            if self.result > self.rise:
                self.result -= 1
            else:
                if self.result == self.rise or (self.initial and not self.init_fail):
                    changed = False
                self.result = 0
        self.initial = False
        return changed


# -- pure: the lvs_sync_daemon that follows an instance ------------------------------------------


@dataclass(frozen=True)
class SyncdPlan:
    """``lvs_sync_daemon IF INSTANCE [id N] [maxlen N] [port N] [ttl N] [group IP]`` resolved:
    the sync id defaults to the instance's VRID (vrrp.c)."""

    instance: str
    interface: str
    syncid: int
    maxlen: int = 0
    port: int = 0
    ttl: int = 0
    group: str = ""


def syncd_plan(ka: KeepalivedConfig) -> tuple[SyncdPlan | None, list[str]]:
    """The sync daemon plan of a configuration, and what keepalived would say about it."""
    sd: LvsSyncDaemon | None = ka.global_defs.lvs_sync_daemon
    if sd is None:
        return None, []
    if not sd.instance:
        return None, [
            f"{ka.source}:{sd.line}: lvs_sync_daemon {sd.interface} names no vrrp instance - "
            "not started"
        ]
    for vi in ka.vrrp_instances:
        if vi.name == sd.instance:
            syncid = vi.virtual_router_id if sd.syncid is None else sd.syncid
            return SyncdPlan(
                sd.instance,
                sd.interface,
                syncid or 0,
                sd.maxlen or 0,
                sd.port or 0,
                sd.ttl or 0,
                sd.group or "",
            ), []
    return None, [
        f"{ka.source}:{sd.line}: Unable to find vrrp instance {sd.instance} for lvs_syncd - "
        "clearing lvs_syncd config"
    ]


def syncd_event(before: str, after: str) -> str | None:
    """What an instance's state change does to its sync daemons: ``master`` (stop the backup
    daemon, start the master: ``ipvs_syncd_master`` in ``vrrp_state_become_master``),
    ``backup`` (the reverse, ``vrrp_state_leave_master``), ``stop`` (shutdown: the daemon of the
    current role stops), or None (BACKUP <-> FAULT keeps the backup daemon)."""
    if after == before:
        return None
    if after == STOP:
        return "stop"
    if after == MASTER:
        return "master"
    if before == MASTER:
        return "backup"
    return None


# A callable the daemon gives: (event, plan) with event "start" (the backup daemon at start),
# "master", "backup" or "stop"; it must not block (the daemon runs it on its loop).
SyncdHook = Callable[[str, SyncdPlan], None]


# -- the service ---------------------------------------------------------------------------------

Unit = VRRPInstance | SyncGroup


@dataclass
class _Built:
    """One configuration turned into runnable pieces (before any I/O)."""

    instances: dict[str, VRRPInstance]
    models: dict[str, VrrpInstance]
    placements: dict[str, tuple[Placement, ...]]
    groups: dict[str, SyncGroup]
    group_models: dict[str, VrrpSyncGroup]
    keys: dict[str, Any]  # unit name (instance or group) -> what must be equal to keep it
    interfaces: dict[str, str]  # instance -> interface


def _script_key(s: VrrpScript) -> tuple[Any, ...]:
    return (s.script, s.interval, s.timeout, s.rise, s.fall, s.user, s.group, s.init_fail)


def _vi_key(vi: VrrpInstance, cfg: InstanceConfig, pl: tuple[Placement, ...]) -> tuple[Any, ...]:
    notify = (vi.notify_master, vi.notify_backup, vi.notify_fault, vi.notify_stop, vi.notify)
    return (cfg, pl, notify)


def source_address(ifname: str, family: int) -> str | None:
    """An instance's own source address when the file gives none: the interface's primary IPv4
    address, or for IPv6 its link-local address (keepalived's ``ifp->sin6_addr``; RFC 5798
    5.1.2.1: adverts come from the link-local address). None: it has none, or no interface."""
    if family == 6:
        return netcfg.link_ipv6_linklocal(ifname)
    return netcfg.link_ipv4_address(ifname)


def build(
    ka: KeepalivedConfig, source_address: Callable[[str, int], str | None] = source_address
) -> _Built:
    """Every instance and sync group of ``ka``; ``source_address(ifname, family)`` gives an
    interface's own address (:func:`source_address`)."""
    in_group = {name: sg for sg in ka.vrrp_sync_groups for name in sg.group}
    instances: dict[str, VRRPInstance] = {}
    models: dict[str, VrrpInstance] = {}
    pls: dict[str, tuple[Placement, ...]] = {}
    keys: dict[str, Any] = {}
    ifaces: dict[str, str] = {}
    g = ka.global_defs
    for vi in ka.vrrp_instances:
        iface = vi.interface or g.default_interface or "eth0"
        family = _family(vi)
        src = vi.unicast_src_ip or vi.mcast_src_ip or source_address(iface, family)
        if not src:
            if not netcfg.link_exists(iface):
                raise VRRPConfigError(f"({vi.name}) interface {iface} doesn't exist")
            what = "IPv4 address" if family == 4 else "IPv6 link-local address"
            raise VRRPConfigError(f"({vi.name}) interface {iface} has no {what}")
        group = in_group.get(vi.name)
        cfg = instance_config(vi, ka, src, netcfg.link_running, group)
        try:
            inst = VRRPInstance(cfg)
        except ValueError as exc:
            raise VRRPConfigError(str(exc)) from None
        instances[vi.name] = inst
        models[vi.name] = vi
        pls[vi.name] = placements(vi, iface)
        keys[vi.name] = _vi_key(vi, cfg, pls[vi.name])
        ifaces[vi.name] = iface
    groups: dict[str, SyncGroup] = {}
    group_models: dict[str, VrrpSyncGroup] = {}
    for sg in ka.vrrp_sync_groups:
        members = [instances[n] for n in sg.group if n in instances]
        if not members:
            continue
        groups[sg.name] = SyncGroup(sg.name, members)
        group_models[sg.name] = sg
        notify = (sg.notify_master, sg.notify_backup, sg.notify_fault, sg.notify_stop, sg.notify)
        keys[sg.name] = (tuple(keys[m.cfg.name] for m in members), notify)
    return _Built(instances, models, pls, groups, group_models, keys, ifaces)


def _sock_key(ifname: str, family: int) -> str:
    """The name of an interface's socket for a family ("eth0", "eth0/inet6")."""
    return ifname if family == 4 else f"{ifname}/inet6"


class _VrrpSocket:
    """The raw protocol-112 IPv4 socket of one interface (keepalived ``open_vrrp_send_socket``
    / ``open_vrrp_read_socket``)."""

    family = 4

    def __init__(self, ifname: str, groups: Sequence[str]) -> None:
        self.ifname = ifname
        index = netcfg.link_info(ifname).index
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, vrrpmsg.IPPROTO_VRRP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, ifname.encode())
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, vrrpmsg.VRRP_TTL)
            # Only the groups joined on this socket (keepalived: IP_MULTICAST_ALL off).
            sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
            mreqn = struct.pack("=4s4si", b"\0" * 4, b"\0" * 4, index)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            for group in groups:
                mreq = struct.pack("=4s4si", socket.inet_aton(group), b"\0" * 4, index)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.groups = tuple(groups)
        self.sent = self.received = self.errors = 0

    def send(self, action: Send) -> None:
        try:
            self.sock.sendto(action.packet, (action.dest, 0))
            self.sent += 1
        except OSError as exc:
            self._error(action.dest, exc)

    def _error(self, dest: str, exc: OSError) -> None:
        self.errors += 1
        if self.errors <= 3:
            log.warning("VRRP: cannot send on %s to %s: %s", self.ifname, dest, exc)

    def receive(self) -> tuple[bytes, str, str, int | None] | None:
        """One datagram as the core's ``receive`` takes it: (data, src, dst, ttl); None when
        there is nothing more to read."""
        try:
            data, _addr = self.sock.recvfrom(65535)
        except OSError:  # BlockingIOError included: nothing more
            return None
        self.received += 1
        if len(data) < 20 or len(data) < (data[0] & 0x0F) * 4 + 2:
            return b"", "", "", None
        src = socket.inet_ntoa(data[12:16])
        dst = socket.inet_ntoa(data[16:20])
        return data, src, dst, data[8]

    def vrid(self, data: bytes) -> int:
        return data[(data[0] & 0x0F) * 4 + 1]

    def close(self) -> None:
        self.sock.close()


# socket.h / in6.h values Python does not name on every version
_IPV6_CHECKSUM = getattr(socket, "IPV6_CHECKSUM", 7)
_IPV6_MULTICAST_ALL = 29
_IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
_IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
_IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
_IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)


class _Vrrp6Socket(_VrrpSocket):
    """The raw IPv6 protocol-112 socket of one interface, as keepalived opens it
    (``open_vrrp_send_socket`` / ``open_vrrp_read_socket``, ``vrrp_if.c``): bound to the
    interface, joined to ff02::12 there, multicast loop off, multicast hop limit 255 and
    traffic class 0xc0; ``IPV6_CHECKSUM`` at offset 6 (the kernel fills the VRRP checksum with
    the IPv6 pseudo header on send and drops a bad one on receipt); ``IPV6_RECVHOPLIMIT`` and
    ``IPV6_RECVPKTINFO`` so that the hop limit and the destination (multicast or not) reach
    the receive checks. The kernel builds the IPv6 header: each advert goes with an
    ``IPV6_PKTINFO`` naming the source (the link-local address) and the interface
    (``vrrp_build_ancillary_data``), and for unicast an ``IPV6_HOPLIMIT`` of ``unicast_ttl``."""

    family = 6

    def __init__(self, ifname: str, groups: Sequence[str]) -> None:
        self.ifname = ifname
        self.index = index = netcfg.link_info(ifname).index
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, vrrpmsg.IPPROTO_VRRP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, ifname.encode())
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_CHECKSUM, 6)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, vrrpmsg.VRRP_TTL)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_TCLASS, vrrpmsg.VRRP_TOS)
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MULTICAST_ALL, 0)
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVPKTINFO, 1)
            for group in groups:
                mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", index)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.groups = tuple(groups)
        self.sent = self.received = self.errors = 0

    def send(self, action: Send) -> None:
        pktinfo = socket.inet_pton(socket.AF_INET6, action.src) + struct.pack("@I", self.index)
        cmsgs = [(socket.IPPROTO_IPV6, _IPV6_PKTINFO, pktinfo)]
        if not ipaddress.IPv6Address(action.dest).is_multicast:
            cmsgs.append((socket.IPPROTO_IPV6, _IPV6_HOPLIMIT, struct.pack("@i", action.ttl)))
        try:
            self.sock.sendmsg([action.message], cmsgs, 0, (action.dest, 0, 0, self.index))
            self.sent += 1
        except OSError as exc:
            self._error(action.dest, exc)

    def receive(self) -> tuple[bytes, str, str, int | None] | None:
        try:
            data, ancdata, _flags, addr = self.sock.recvmsg(65535, 256)
        except OSError:
            return None
        self.received += 1
        dst, hops = "", None
        for level, kind, value in ancdata:
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == _IPV6_HOPLIMIT and len(value) >= 4:
                hops = struct.unpack("@i", value[:4])[0]
            elif kind == _IPV6_PKTINFO and len(value) >= 16:
                dst = socket.inet_ntop(socket.AF_INET6, value[:16])
        src = str(addr[0]).split("%")[0]
        if len(data) < 2:
            return b"", "", "", None
        return data, src, dst, hops

    def vrid(self, data: bytes) -> int:
        return data[1]


@dataclass
class _NotifyJob:
    argv: list[str]
    uid: int | None
    gid: int | None
    wait: float = 0.0  # notify_stop: wait so long (then kill), else never


class VRRPService(OwnThreads):
    """The VRRP instances of one keepalived.conf (see the module docstring)."""

    name = "vrrp"

    def __init__(
        self,
        ka: KeepalivedConfig,
        syncd: SyncdHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ka = ka
        self.clock = clock
        self.syncd_hook = syncd
        self.syncd, notes = syncd_plan(ka)
        for note in notes:
            log.warning("%s", note)
        self.built = build(ka)
        self.sockets: dict[str, _VrrpSocket] = {}
        self.monitor: netcfg.RouteMonitor | None = None
        self.link_state: dict[str, bool] = {}
        self.scripts: dict[str, ScriptState] = {}
        self.script_info: dict[str, dict[str, Any]] = {}
        self._script_threads: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._commands: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._notify_jobs: queue.Queue[_NotifyJob | None] = queue.Queue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._threads: list[threading.Thread] = []
        self._running = False
        self.stopped = threading.Event()  # shutdown complete (adverts sent, addresses gone)
        self.shutting_down = False
        self.last_state: dict[str, str] = {}
        self.since: dict[str, float] = {}
        self.changes: dict[str, int] = {}
        self.logs: deque[str] = deque(maxlen=_LOG_KEEP)
        self._snapshot: dict[str, Any] = {}
        self._src_iface: dict[str, str] = {}
        self._addr_place: dict[str, Placement] = {}
        self._index_maps()

    # -- life --------------------------------------------------------------------------------

    def start(self) -> None:
        self.monitor = netcfg.RouteMonitor()
        self._open_sockets()
        self._running = True
        self._snapshot = self._status()
        for target, name in ((self._vrrp, "vrrp"), (self._notifier, "vrrp-notify")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()
        self._start_scripts()
        log.info(
            "VRRP: %d instance(s) on %s",
            len(self.built.instances),
            ", ".join(sorted(self.sockets)) or "no interface",
        )

    def reload(self, ka: KeepalivedConfig) -> None:
        """SIGHUP: the new configuration; unchanged instances (and groups) keep their state.
        Raises VRRPConfigError (the running configuration stays) if it cannot run."""
        built = build(ka)
        self._command("reload", (ka, built))

    def begin_shutdown(self) -> None:
        """keepalived's SIGTERM: masters send priority 0 and drop their addresses; every
        instance notifies STOP; :attr:`stopped` is set when it is done."""
        self.shutting_down = True
        self._command("shutdown", None)

    def close(self) -> None:
        self._running = False
        for _thread, stop in self._script_threads.values():
            stop.set()
        self._notify_jobs.put(None)
        self._wake()
        for thread in self._threads:
            thread.join(timeout=5.0)
        for thread, _stop in self._script_threads.values():
            thread.join(timeout=3.0)
        self._script_threads = {}
        for s in self.sockets.values():
            s.close()
        self.sockets = {}
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        self._wake_r.close()
        self._wake_w.close()

    # -- the loop component (OwnThreads: the service lives in its own threads) -------------

    def status(self) -> dict[str, Any]:
        snap = self._snapshot
        return {
            name: {k: inst[k] for k in ("state", "priority", "effective_priority", "master")}
            for name, inst in snap.get("instances", {}).items()
        }

    def vrrp_status(self) -> dict[str, Any]:
        return dict(self._snapshot)

    # -- wiring helpers ----------------------------------------------------------------------

    def _index_maps(self) -> None:
        b = self.built
        self._src_iface = {}
        self._addr_place = {}
        for name, inst in b.instances.items():
            self._src_iface.setdefault(inst.cfg.src, _sock_key(b.interfaces[name], inst.cfg.family))
            for p in b.placements[name]:
                self._addr_place[p.addr] = p
        self._group_of = {m.cfg.name: g for g in b.groups.values() for m in g.members}
        self._units: list[Unit] = list(b.groups.values()) + [
            inst for name, inst in b.instances.items() if name not in self._group_of
        ]
        tracked: dict[str, list[str]] = {}
        for name, inst in b.instances.items():
            for tname in inst.trackers:
                tracked.setdefault(tname, []).append(name)
        self._tracked = tracked
        self._script_names = {n for n in tracked if n in self.ka.vrrp_scripts}

    def _open_sockets(self) -> None:
        # one socket per interface and family: (interface, family) -> multicast groups
        want: dict[tuple[str, int], set[str]] = {}
        for name, inst in self.built.instances.items():
            family = inst.cfg.family
            groups = want.setdefault((self.built.interfaces[name], family), set())
            if not inst.cfg.unicast_peers:
                default = vrrpmsg.MCAST_GROUP4 if family == 4 else vrrpmsg.MCAST_GROUP6
                groups.add(inst.cfg.mcast_group or default)
        keys = {_sock_key(ifname, family): (ifname, family) for ifname, family in want}
        for key in list(self.sockets):
            if key not in keys or set(self.sockets[key].groups) != want[keys[key]]:
                self.sockets.pop(key).close()
        for key, (ifname, family) in keys.items():
            if key not in self.sockets:
                kind = _VrrpSocket if family == 4 else _Vrrp6Socket
                try:
                    self.sockets[key] = kind(ifname, sorted(want[(ifname, family)]))
                except (OSError, netcfg.NetcfgError) as exc:
                    raise VRRPConfigError(
                        f"cannot open the VRRP socket on {ifname}: {exc}"
                    ) from None
        for tname in self._tracked:
            if tname not in self.ka.vrrp_scripts:
                self.link_state[tname] = netcfg.link_running(tname)

    def _command(self, op: str, arg: Any) -> None:
        self._commands.put((op, arg))
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # -- the VRRP thread -------------------------------------------------------------------------

    def _vrrp(self) -> None:
        sel = selectors.DefaultSelector()
        registered: dict[int, Any] = {}

        def register() -> None:
            for key in list(sel.get_map().values()):
                sel.unregister(key.fileobj)
            sel.register(self._wake_r, selectors.EVENT_READ, None)
            if self.monitor is not None:
                sel.register(self.monitor.sock, selectors.EVENT_READ, "links")
            for s in self.sockets.values():
                sel.register(s.sock, selectors.EVENT_READ, s)
            registered.clear()

        register()
        self._startup()
        try:
            while self._running:
                timeout = 1.0
                deadline = self._deadline()
                if deadline is not None:
                    timeout = min(1.0, max(0.0, deadline - self.clock()))
                for key, _mask in sel.select(timeout):
                    data = key.data
                    if data is None:
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except OSError:
                            pass
                    elif data == "links":
                        assert self.monitor is not None
                        routing, _neigh = self.monitor.drain()
                        if routing:
                            self._links_changed()
                    else:
                        self._read(data)
                if self._drain_commands():
                    register()
                now = self.clock()
                for unit in list(self._units):
                    due = unit.deadline()
                    if due is not None and due <= now:
                        self._do(unit.tick(now))
                self._snapshot = self._status()
        except Exception:
            log.exception("VRRP thread failed")
            raise
        finally:
            sel.close()

    def _startup(self) -> None:
        now = self.clock()
        if self.syncd is not None and self.syncd_hook is not None:
            self.syncd_hook("start", self.syncd)
        for name, inst in self.built.instances.items():
            self.last_state[name] = inst.state
            self.since[name] = now
        for unit in self._units:
            self._do(unit.start(now))
        self._snapshot = self._status()

    def _deadline(self) -> float | None:
        times = [t for t in (u.deadline() for u in self._units) if t is not None]
        return min(times) if times else None

    def _read(self, vs: _VrrpSocket) -> None:
        while True:
            got = vs.receive()
            if got is None:
                return
            data, src, dst, ttl = got
            if not data:
                continue
            vrid = vs.vrid(data)
            now = self.clock()
            for name, inst in self.built.instances.items():
                if (
                    inst.cfg.vrid != vrid
                    or inst.cfg.family != vs.family
                    or self.built.interfaces[name] != vs.ifname
                ):
                    continue
                group = self._group_of.get(name)
                if group is not None:
                    self._do(group.receive(name, data, now, src, dst, ttl))
                else:
                    self._do(inst.receive(data, now, src, dst, ttl))

    def _links_changed(self) -> None:
        for tname in list(self.link_state):
            up = netcfg.link_running(tname)
            if up != self.link_state[tname]:
                self.link_state[tname] = up
                log.info("Netlink reports %s %s", tname, "up" if up else "down")
                self._set_track(tname, up)

    def _set_track(self, tname: str, up: bool) -> None:
        now = self.clock()
        for name in self._tracked.get(tname, []):
            inst = self.built.instances[name]
            group = self._group_of.get(name)
            if group is not None:
                self._do(group.set_track(name, tname, up, now))
            else:
                self._do(inst.set_track(tname, up, now))

    def _drain_commands(self) -> bool:
        """Commands from other threads; True if the sockets changed (a reload)."""
        changed = False
        while True:
            try:
                op, arg = self._commands.get_nowait()
            except queue.Empty:
                return changed
            if op == "script":
                name, up = arg
                self._set_track(name, up)
            elif op == "shutdown":
                self._shutdown()
            elif op == "reload":
                self._reload(*arg)
                changed = True

    def _shutdown(self) -> None:
        now = self.clock()
        for unit in self._units:
            self._do(unit.shutdown(now))
        self._snapshot = self._status()
        self._notify_jobs.put(None)  # the notify thread runs what is queued, then says stopped

    def _reload(self, ka: KeepalivedConfig, new: _Built) -> None:
        """SIGHUP, as keepalived's ``reload_vrrp_thread`` / ``clear_diff_vrrp`` /
        ``restore_vrrp_state``: an unchanged instance (or sync group) runs on untouched; a
        changed one that is still the same router (``vrrp_exist``: VRID, interface, unicast
        or not and the unicast source) takes the new configuration but keeps its state, its
        addresses (new ones added with a GARP burst, dropped ones removed) and, as a MASTER,
        sends an advert at once with its new priority; a removed one releases its addresses
        (priority 0 first if MASTER) and notifies FAULT (keepalived's DELETED, reported as
        FAULT without ``notify_deleted``); a new one starts. A changed sync group restarts."""
        now = self.clock()
        old = self.built
        kept = {uname for uname, key in new.keys.items() if old.keys.get(uname) == key}
        grouped_new = {n for sg in ka.vrrp_sync_groups for n in sg.group}
        carried: dict[str, VRRPInstance] = {}  # new instance name -> the old one it continues
        for name, inst in new.instances.items():
            if name in kept or name in grouped_new:
                continue
            for oname, oinst in old.instances.items():
                if oname in kept or oname in self._group_of or oinst in carried.values():
                    continue
                if _same_router(oinst, old.interfaces[oname], inst, new.interfaces[name]):
                    carried[name] = oinst
                    break
        going = list(carried.values())
        for unit in self._units:
            uname = unit.name if isinstance(unit, SyncGroup) else unit.cfg.name
            if uname in kept or any(unit is o for o in going):
                continue
            if isinstance(unit, SyncGroup):
                self._do(unit.shutdown(now))
            else:
                before = unit.state
                self._do(_deleted(before, unit.shutdown(now)))
        # Addresses a continued instance no longer has: removed while the old placements hold.
        for name, oinst in carried.items():
            gone = tuple(a for a in oinst.addresses if a not in new.instances[name].addresses)
            if oinst.vipset and gone:
                self._do([RemoveAddresses(gone)])
        # Keep the running objects of unchanged units.
        for uname in kept:
            if uname in old.groups:
                new.groups[uname] = old.groups[uname]
                for m in old.groups[uname].members:
                    new.instances[m.cfg.name] = m
            elif uname in old.instances and uname not in grouped_new:
                new.instances[uname] = old.instances[uname]
        self.ka = ka
        self.built = new
        self.syncd, notes = syncd_plan(ka)
        for note in notes:
            log.warning("%s", note)
        self._index_maps()
        self._open_sockets()
        for name, oinst in carried.items():
            self._do(_carry_over(oinst, new.instances[name], now))
            self.last_state[name] = new.instances[name].state
        for unit in self._units:
            uname = unit.name if isinstance(unit, SyncGroup) else unit.cfg.name
            if uname in kept or uname in carried:
                continue
            for name in self._members(unit):
                self.last_state[name] = self.built.instances[name].state
                self.since[name] = now
            self._do(unit.start(now))
        for inst in self.built.instances.values():
            # a kept instance hears the current result of its scripts
            for tname in inst.trackers:
                st = self.scripts.get(tname)
                if st is not None and st.up is not None and inst.track_up.get(tname) != st.up:
                    self._set_track(tname, st.up)
        self._start_scripts()
        log.info(
            "VRRP: reloaded: %d instance(s), kept %s, reconfigured %s",
            len(new.instances),
            ", ".join(sorted(kept)) or "none",
            ", ".join(sorted(carried)) or "none",
        )

    def _members(self, unit: Unit) -> list[str]:
        if isinstance(unit, SyncGroup):
            return [m.cfg.name for m in unit.members]
        return [unit.cfg.name]

    # -- actions --------------------------------------------------------------------------------

    def _do(self, actions: list[object]) -> None:
        for action in actions:
            if isinstance(action, Send):
                ifname = self._src_iface.get(action.src)
                vs = self.sockets.get(ifname or "")
                if vs is not None:
                    vs.send(action)
            elif isinstance(action, AddAddresses):
                # The state has changed already: vrrp-status says so before the addresses
                # change, so that it never lags them (a client that sees the VIP sees MASTER).
                self._snapshot = self._status()
                self._addresses(action.addresses, add=True)
            elif isinstance(action, RemoveAddresses):
                self._snapshot = self._status()
                self._addresses(action.addresses, add=False)
            elif isinstance(action, SendGarp):
                self._garp(action.addresses, action.count)
            elif isinstance(action, Notify):
                self._notify(action)
            elif isinstance(action, Log):
                if action.detail:
                    log.debug("%s", action.text)
                else:
                    log.info("%s", action.text)
                    self.logs.append(action.text)
        self._follow_states()
        if actions:
            self._snapshot = self._status()

    def _follow_states(self) -> None:
        now = self.clock()
        for name, inst in self.built.instances.items():
            before = self.last_state.get(name, inst.state)
            if inst.state == before:
                continue
            self.last_state[name] = inst.state
            self.since[name] = now
            self.changes[name] = self.changes.get(name, 0) + 1
            plan = self.syncd
            if plan is not None and plan.instance == name and self.syncd_hook is not None:
                event = syncd_event(before, inst.state)
                if event is not None:
                    self.syncd_hook(event, plan)

    def _addresses(self, addresses: Sequence[str], add: bool) -> None:
        for addr in addresses:
            p = self._addr_place.get(addr)
            if p is None:
                continue
            try:
                if add:
                    # keepalived adds IPv6 VIPs with IFA_F_NODAD (``netlink_ipaddress``): usable
                    # at once, and no collision with a killed master that still holds them
                    netcfg.add_address(
                        p.dev, p.addr, p.prefix, p.label, p.brd, nodad=":" in p.addr, scope=p.scope
                    )
                else:
                    netcfg.del_address(p.dev, p.addr, p.prefix)
            except Exception as exc:  # pyroute2 raises NetlinkError, KeyError, ...
                log.error(
                    "VRRP: cannot %s %s/%d %s %s: %s",
                    "add" if add else "remove",
                    p.addr,
                    p.prefix,
                    "on" if add else "from",
                    p.dev,
                    exc,
                )

    def _garp(self, addresses: Sequence[str], count: int) -> None:
        """``vrrp_send_link_update``: ``count`` rounds, one frame per address per round: a
        gratuitous ARP for an IPv4 address, an unsolicited neighbour advertisement for an IPv6
        one (``ndisc_send_unsolicited_na``; keepalived's garp settings drive both)."""
        by_dev: dict[tuple[str, int], list[str]] = {}
        for addr in addresses:
            p = self._addr_place.get(addr)
            if p is not None:
                by_dev.setdefault((p.dev, 6 if ":" in addr else 4), []).append(addr)
        for (dev, family), addrs in by_dev.items():
            try:
                mac = netcfg.link_info(dev).mac
                if family == 4:
                    frames = [vrrpmsg.gratuitous_arp(mac, a) for _ in range(count) for a in addrs]
                    garp.send_frames(dev, frames)
                else:
                    router = netcfg.ipv6_forwarding(dev)
                    frames = [unsolicited_na(mac, a, router) for _ in range(count) for a in addrs]
                    garp.send_frames(dev, frames, ETH_P_IPV6)
            except (OSError, netcfg.NetcfgError) as exc:
                what = "gratuitous ARP" if family == 4 else "neighbour advertisements"
                log.error("VRRP: cannot send %s on %s: %s", what, dev, exc)

    def _notify(self, action: Notify) -> None:
        if action.group:
            model: Any = self.built.group_models.get(action.name)
        else:
            model = self.built.models.get(action.name)
        if model is None:
            return
        specific = {
            MASTER: model.notify_master,
            BACKUP: model.notify_backup,
            FAULT: model.notify_fault,
            STOP: model.notify_stop,
        }.get(action.state)
        wait = _STOP_SCRIPT_WAIT if action.state == STOP else 0.0
        if specific:
            self._queue_script(specific, [], wait)
        if model.notify and action.state in (MASTER, BACKUP, FAULT, STOP):
            self._queue_script(model.notify, list(action.argv), wait)

    def _queue_script(self, text: str, extra: list[str], wait: float) -> None:
        argv = script_argv(text)
        if not argv:
            return
        who = self._script_user(None, None)
        if who is None or not self._secure(argv[0], who[0]):
            return
        self._notify_jobs.put(_NotifyJob(argv + extra, who[0], who[1], wait))

    def _script_user(self, user: str | None, group: str | None) -> tuple[int, int] | None:
        """The uid/gid a script runs as: its own ``user``, else global ``script_user``, else
        root; with ``enable_script_security`` and no ``script_user``, keepalived_script."""
        g = self.ka.global_defs
        name = user or g.script_user
        gname = group if user else g.script_group
        if name is None and g.enable_script_security:
            name = "keepalived_script"
        if name is None:
            return 0, 0
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            if g.enable_script_security and not user and not g.script_user:
                return 0, 0  # keepalived: "Unable to set default user" -> root
            log.error("VRRP: unknown script user %s - script disabled", name)
            return None
        gid = pw.pw_gid
        if gname:
            try:
                gid = grp.getgrnam(gname).gr_gid
            except KeyError:
                log.error("VRRP: unknown script group %s - script disabled", gname)
                return None
        return pw.pw_uid, gid

    def _secure(self, program: str, uid: int) -> bool:
        """``check_script_secure`` (enable_script_security): a script run as root must not be
        writable, nor its directories, by anyone but root."""
        if not self.ka.global_defs.enable_script_security or uid != 0:
            return True
        path = os.path.abspath(program)
        while True:
            try:
                st = os.stat(path)
            except OSError:
                return True  # not found: the run reports it
            writable = st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            if writable and not (os.path.isdir(path) and st.st_mode & stat.S_ISVTX):
                log.error(
                    "SECURITY VIOLATION - script %s is writable by a non-root user - disabling",
                    program,
                )
                return False
            parent = os.path.dirname(path)
            if parent == path:
                return True
            path = parent

    # -- the notify thread ---------------------------------------------------------------------

    def _notifier(self) -> None:
        children: list[subprocess.Popen[bytes]] = []
        while True:
            job = self._notify_jobs.get()
            children = [c for c in children if c.poll() is None]
            if job is None:
                if self.shutting_down:
                    self.stopped.set()
                if not self._running or self.shutting_down:
                    return
                continue
            proc = _spawn(job.argv, job.uid, job.gid)
            if proc is None:
                continue
            if job.wait:
                try:
                    proc.wait(job.wait)
                except subprocess.TimeoutExpired:
                    _kill_group(proc, signal.SIGKILL)
                    proc.wait()
            else:
                children.append(proc)

    # -- the script threads ------------------------------------------------------------------

    def _start_scripts(self) -> None:
        wanted = {n: self.ka.vrrp_scripts[n] for n in self._script_names}
        for name in list(self._script_threads):
            old = self.script_info.get(name, {}).get("key")
            if name not in wanted or old != _script_key(wanted[name]):
                thread, stop = self._script_threads.pop(name)
                stop.set()
                self.scripts.pop(name, None)
        for name, script in wanted.items():
            if name in self._script_threads:
                continue
            self.scripts[name] = ScriptState(script.rise, script.fall, script.init_fail)
            self.script_info[name] = {"key": _script_key(script), "last_exit": None, "runs": 0}
            stop = threading.Event()
            thread = threading.Thread(
                target=self._script_loop,
                args=(script, stop),
                name=f"vrrp-script-{name}",
                daemon=True,
            )
            self._script_threads[name] = (thread, stop)
            thread.start()

    def _script_loop(self, script: VrrpScript, stop: threading.Event) -> None:
        state = self.scripts[script.name]
        info = self.script_info[script.name]
        argv = script_argv(script.script)
        who = self._script_user(script.user, script.group)
        if not argv or who is None or not self._secure(argv[0], who[0]):
            log.error("VRRP_Script(%s) cannot be run - disabled", script.name)
            return
        timeout = script.timeout or script.interval
        while not stop.is_set() and self._running:
            started = time.monotonic()
            success, status, kind = _run_script(argv, who, timeout)
            info["runs"] += 1
            if status != info["last_exit"] and status is not None:
                log.info("Script `%s` now returning %d", script.name, status)
            info["last_exit"] = status
            changed = state.record(success)
            if changed is not None:
                log.info("VRRP_Script(%s) %s", script.name, kind)
                self.logs.append(f"VRRP_Script({script.name}) {kind}")
                self._command("script", (script.name, changed))
            stop.wait(max(0.0, started + script.interval - time.monotonic()))

    # -- what ``vrrp-status`` shows -----------------------------------------------------------

    def _status(self) -> dict[str, Any]:
        now = self.clock()
        instances: dict[str, Any] = {}
        for name, inst in self.built.instances.items():
            cfg = inst.cfg
            master = cfg.src if inst.state == MASTER else inst.master_saddr
            instances[name] = {
                "state": inst.state,
                "vrid": cfg.vrid,
                "interface": self.built.interfaces[name],
                "version": cfg.version,
                "advert_int": cfg.advert_int,
                "priority": inst.base_priority,
                "effective_priority": inst.effective_priority,
                "master": master,
                "src": cfg.src,
                "vips": [f"{p.addr}/{p.prefix}" for p in self.built.placements[name]],
                "vips_set": inst.vipset,
                "trackers": dict(inst.track_up),
                "since": round(now - self.since.get(name, now), 3),
                "transitions": self.changes.get(name, 0),
                "counters": dict(inst.counters),
            }
        plan = self.syncd
        sync = None
        if plan is not None:
            st = self.built.instances.get(plan.instance)
            sync = {
                "instance": plan.instance,
                "interface": plan.interface,
                "syncid": plan.syncid,
                "role": "master" if st is not None and st.state == MASTER else "backup",
            }
        return {
            "instances": instances,
            "groups": {
                name: {"state": g.state, "members": [m.cfg.name for m in g.members]}
                for name, g in self.built.groups.items()
            },
            "scripts": {
                name: {
                    "up": st.up,
                    "last_exit": self.script_info.get(name, {}).get("last_exit"),
                    "runs": self.script_info.get(name, {}).get("runs", 0),
                }
                for name, st in self.scripts.items()
            },
            "sync_daemon": sync,
            "sockets": {
                n: {"sent": s.sent, "received": s.received, "errors": s.errors}
                for n, s in self.sockets.items()
            },
            "log": list(self.logs),
        }


# -- reload: an instance that goes on with a new configuration ---------------------------------


def _same_router(old: VRRPInstance, old_if: str, new: VRRPInstance, new_if: str) -> bool:
    """keepalived's ``vrrp_exist``: the same VRID and family on the same interface, both
    multicast or both unicast from the same source address."""
    a, b = old.cfg, new.cfg
    if (a.vrid, a.family, old_if) != (b.vrid, b.family, new_if):
        return False
    if bool(a.unicast_peers) != bool(b.unicast_peers):
        return False
    return not a.unicast_peers or a.src == b.src


def _deleted(before: str, actions: list[object]) -> list[object]:
    """A removed instance's shutdown as keepalived's ``clear_diff_vrrp`` notifies it: FAULT
    (its DELETED state; ``notify_deleted`` is not supported), nothing if it was FAULT."""
    out: list[object] = []
    for action in actions:
        if isinstance(action, Notify) and action.state == STOP and not action.group:
            if before == FAULT:
                continue
            action = Notify(action.name, FAULT, action.priority)
        out.append(action)
    return out


def _carry_over(old: VRRPInstance, new: VRRPInstance, now: float) -> list[object]:
    """``restore_vrrp_state`` and ``vrrp_init_state`` on reload: ``new`` (the new
    configuration) takes over the running state of ``old``. Returns the actions: the addresses
    it gains (with a GARP burst) when it holds them, and a MASTER's immediate advert."""
    new.state = old.state
    new.wantstate = old.wantstate
    new.master_saddr = old.master_saddr
    new.master_priority = old.master_priority
    new.ip_id = old.ip_id
    new.counters = old.counters
    new.notifies_sent = old.notifies_sent
    new.preempt_time = old.preempt_time
    if new.cfg.version == old.cfg.version and new.state == BACKUP:
        new.master_adver_int_us = old.master_adver_int_us
    for name in new.track_up:
        if name in old.track_up and new.trackers[name].weight == old.trackers[name].weight:
            new.track_up[name] = old.track_up[name]
    new.total_priority = new._total()
    if new.base_priority != vrrpmsg.PRIO_OWNER:
        new.effective_priority = min(max(new.total_priority, 1), vrrpmsg.PRIO_OWNER - 1)
    new.ms_down_timer_us = new._ms_down()
    new.vipset = old.vipset
    out: list[object] = []
    added = tuple(a for a in new.addresses if a not in old.addresses)
    if new.vipset and added:
        out += [AddAddresses(added), SendGarp(new.addresses, new.cfg.garp_master_repeat or 1)]
    if new.state == MASTER:
        new.garp_refresh_at = old.garp_refresh_at
        new.sands = now  # reload_master: vrrp_init_instance_sands sends at once
    elif new.state == BACKUP:
        new.sands = now + new.ms_down_timer_us / 1_000_000  # a full Master_Down
    else:
        new.sands = None
    return out


# -- running programs ------------------------------------------------------------------------


def _spawn(argv: list[str], uid: int | None, gid: int | None) -> subprocess.Popen[bytes] | None:
    kwargs: dict[str, Any] = {}
    if uid is not None and uid != os.getuid():
        kwargs["user"] = uid
    if gid is not None and gid != os.getgid():
        kwargs["group"] = gid
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            **kwargs,
        )
    except OSError as exc:
        log.error("VRRP: cannot run %s: %s", argv[0], exc)
        return None


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except OSError:
        pass


def _run_script(
    argv: list[str], who: tuple[int, int], timeout: float
) -> tuple[bool, int | None, str]:
    """One run: (success, exit status, keepalived's word: succeeded / failed / timed_out).
    Past ``timeout`` the process group gets SIGTERM, then SIGKILL 2 s later."""
    proc = _spawn(argv, *who)
    if proc is None:
        return False, None, "failed"
    try:
        status = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            _kill_group(proc, signal.SIGKILL)
            proc.wait()
        _kill_group(proc, signal.SIGKILL)
        return False, None, "timed_out"
    if status == 0:
        return True, 0, "succeeded"
    return False, status if status > 0 else None, "failed"
