"""The IPVS state and its control operations (the part of ip_vs_ctl.c that ipvsadm talks to).

:class:`IPVS` holds the virtual services, their real servers, the connection table, the timeouts
and the sysctls, and implements :class:`pylvs.core.control.ControlAPI` with the kernel's rules and
errno values. The packet path (:class:`pylvs.core.engine.Engine`) builds on it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pylvs.core import tcpstate
from pylvs.core.conntrack import (
    CF_FWD_MASK,
    CF_INACTIVE,
    CF_INVALID,
    CF_NOOUTPUT,
    CF_TEMPLATE,
    Conn,
    ConnTable,
    flow_key,
)
from pylvs.core.control import (
    ConnInfo,
    DaemonInfo,
    DaemonSpec,
    DestInfo,
    DestSpec,
    IPVSError,
    ServiceInfo,
    ServiceSpec,
    Timeouts,
    addr_from_text,
    addr_to_text,
)
from pylvs.core.schedulers import SchedulerError, create
from pylvs.core.service import (
    AF_INET,
    AF_INET6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    Dest,
    FwdMethod,
    RateEstimator,
    Service,
    ServiceFlags,
    Stats,
    TunType,
)
from pylvs.core.sync import (
    DEFAULT_MCAST_GROUP,
    DEFAULT_MCAST_PORT,
    DEFAULT_MCAST_TTL,
    IP_VS_CONN_F_BACKUP_MASK,
    IP_VS_CONN_F_SYNC,
    STATE_BACKUP,
    STATE_MASTER,
    SYNC_THRESHOLD,
    SyncConn,
    SyncMaster,
    clamp_maxlen,
    default_maxlen,
    flags_from_wire,
)

__all__ = ["IPVS", "Sysctls"]

_FWD_METHODS = frozenset(int(m) for m in FwdMethod)
_TUN_TYPES = frozenset(int(t) for t in TunType)

# The kernel refuses timeouts above INT_MAX / HZ; ipvsadm itself caps at 31 days.
_MAX_TIMEOUT = 2147483647 // 1000
_INT_MAX = 2147483647


@dataclass
class Sysctls:
    """The /proc/sys/net/ipv4/vs/* switches that change the packet path (ipvs-sysctl.rst)."""

    expire_nodest_conn: int = 0
    expire_quiescent_template: int = 0
    sloppy_tcp: int = 0
    conn_reuse_mode: int = 1


class IPVS:
    """Services, dests, connections and timeouts, with ipvsadm's control operations."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng if rng is not None else random.Random()
        self.sysctls = Sysctls()
        self.services_list: list[Service] = []
        self._by_addr: dict[tuple[int, int, int, int], Service] = {}
        self._by_mark: dict[tuple[int, int], Service] = {}
        # Deleted dests still referenced by connections, by (service key, dest key): re-adding the
        # same dest revives it with its counters (ip_vs_trash_get_dest).
        self._trash: dict[tuple[tuple[int, int, int, int, int], tuple[int, int, int]], Dest] = {}
        self.table = ConnTable(self._unbind)
        self.stats = Stats()
        self.stats0 = Stats()
        self.est = RateEstimator()
        # Per-state TCP timeouts (seconds) and the UDP timeout.
        self.tcp_timeouts = list(tcpstate.DEFAULT_TIMEOUTS)
        self.udp_timeout = 300
        # Route facts towards real servers, filled by the backend: (af, addr) -> (src, mtu).
        self.paths: dict[tuple[int, int], tuple[int, int]] = {}
        # The time of the last packet or tick, for listings of time left.
        self.now = 0.0
        # Connection synchronisation (ip_vs_sync.c): the master's send buffer, which the packet
        # path feeds while a master runs, and the configuration of each running daemon.
        self.sync_master: SyncMaster | None = None
        self.sync_daemons: dict[str, DaemonInfo] = {}
        # Inside bulk(): the services whose scheduler must be updated at its end (by id), and
        # those whose dest list still holds removed dests.
        self._bulk: dict[int, Service] | None = None
        self._bulk_compact: set[int] = set()

    # -- lookups -------------------------------------------------------------------------------

    def find_service(self, af: int, proto: int, addr: int, port: int, mark: int) -> Service | None:
        """ip_vs_service_find: fwmark first, then the exact service, then a port-zero service."""
        if mark:
            svc = self._by_mark.get((af, mark))
            if svc is not None:
                return svc
        svc = self._by_addr.get((af, proto, addr, port))
        if svc is None and port:
            svc = self._by_addr.get((af, proto, addr, 0))
        return svc

    def _svc_of(self, spec: ServiceSpec, op: str) -> tuple[int, int, int, int, int]:
        """The internal key (fwmark, af, protocol, addr, port) of a request; EINVAL if malformed."""
        if spec.af not in (AF_INET, AF_INET6):
            raise IPVSError(errno.EAFNOSUPPORT, op, f"unsupported address family {spec.af}")
        if spec.fwmark:
            if not 0 < spec.fwmark <= 0xFFFFFFFF:
                raise IPVSError(errno.EINVAL, op, f"bad firewall mark {spec.fwmark}")
            return (spec.fwmark, spec.af, 0, 0, 0)
        if spec.protocol not in (IPPROTO_TCP, IPPROTO_UDP):
            raise IPVSError(errno.EAFNOSUPPORT, op, f"unsupported protocol {spec.protocol}")
        try:
            af, addr = addr_from_text(spec.addr)
        except ValueError:
            raise IPVSError(errno.EINVAL, op, f"bad address {spec.addr!r}") from None
        if not 0 <= spec.port <= 0xFFFF:
            raise IPVSError(errno.EINVAL, op, f"bad port {spec.port}")
        return (0, af, spec.protocol, addr, spec.port)

    def _lookup(self, spec: ServiceSpec, op: str) -> Service:
        fwmark, af, proto, addr, port = self._svc_of(spec, op)
        svc = (
            self._by_mark.get((af, fwmark))
            if fwmark
            else self._by_addr.get((af, proto, addr, port))
        )
        if svc is None:
            raise IPVSError(errno.ESRCH, op)
        return svc

    # -- services ------------------------------------------------------------------------------

    def add_service(self, spec: ServiceSpec) -> None:
        op = "add_service"
        fwmark, af, proto, addr, port = self._svc_of(spec, op)
        existing = (
            self._by_mark.get((af, fwmark))
            if fwmark
            else self._by_addr.get((af, proto, addr, port))
        )
        if existing is not None:
            raise IPVSError(errno.EEXIST, op)
        svc = Service(af=af, protocol=proto, addr=addr, port=port, fwmark=fwmark)
        self._apply_service(svc, spec, op)
        self.services_list.append(svc)
        if fwmark:
            self._by_mark[(af, fwmark)] = svc
        else:
            self._by_addr[(af, proto, addr, port)] = svc

    def edit_service(self, spec: ServiceSpec) -> None:
        op = "update_service"
        svc = self._lookup(spec, op)
        self._apply_service(svc, spec, op)

    def _apply_service(self, svc: Service, spec: ServiceSpec, op: str) -> None:
        if spec.pe_name:
            # The only kernel persistence engine is "sip"; pylvs has none yet.
            raise IPVSError(errno.ENOENT, op, f"persistence engine {spec.pe_name!r} not found")
        bits = 32 if svc.af == AF_INET else 128
        if not 0 <= spec.netmask <= bits:
            raise IPVSError(errno.EINVAL, op, f"bad netmask /{spec.netmask}")
        if spec.persistent and not 1 <= spec.timeout <= _MAX_TIMEOUT:
            raise IPVSError(errno.EINVAL, op, f"bad persistence timeout {spec.timeout}")
        flags = ServiceFlags(
            spec.sched_flags & (ServiceFlags.SCHED1 | ServiceFlags.SCHED2 | ServiceFlags.SCHED3)
        )
        if spec.persistent:
            flags |= ServiceFlags.PERSISTENT
        if spec.ops:
            flags |= ServiceFlags.ONEPACKET
        if svc.scheduler is None or spec.scheduler != svc.sched_name:
            old = svc.sched_name
            svc.sched_name = spec.scheduler
            try:
                svc.scheduler = create(spec.scheduler, svc, self.rng)
            except SchedulerError:
                svc.sched_name = old
                raise IPVSError(
                    errno.ENOENT, op, f"scheduler {spec.scheduler!r} not found"
                ) from None
        svc.flags = flags
        svc.timeout = spec.timeout if spec.persistent else 0
        svc.netmask = spec.netmask
        svc.pe_name = spec.pe_name
        svc.scheduler.update(svc)

    def del_service(self, spec: ServiceSpec) -> None:
        svc = self._lookup(spec, "del_service")
        self._remove_service(svc)

    def _remove_service(self, svc: Service, unlist: bool = True) -> None:
        for dest in svc.dests:
            self._retire_dest(svc, dest)
        svc.dests = []
        svc.dest_index.clear()
        if self._bulk is not None:
            self._bulk.pop(id(svc), None)
        if unlist:
            self.services_list.remove(svc)
        if svc.fwmark:
            del self._by_mark[(svc.af, svc.fwmark)]
        else:
            del self._by_addr[(svc.af, svc.protocol, svc.addr, svc.port)]

    def flush(self) -> None:
        """ipvsadm -C: delete every service (connections stay until they expire)."""
        for svc in self.services_list:
            self._remove_service(svc, unlist=False)
        self.services_list = []

    # -- dests ---------------------------------------------------------------------------------

    def _dest_key(
        self, svc: Service, spec: DestSpec, op: str, deleting: bool = False
    ) -> tuple[int, int, int]:
        try:
            af, addr = addr_from_text(spec.addr)
        except ValueError:
            raise IPVSError(errno.EINVAL, op, f"bad address {spec.addr!r}") from None
        if not 0 <= spec.port <= 0xFFFF:
            raise IPVSError(errno.EINVAL, op, f"bad port {spec.port}")
        if af != svc.af and not deleting:
            # ip_vs_genl_set_cmd: a real server of the other family only in tunnel mode (IPv4
            # in IPv6, IPv6 in IPv4), and not while a sync daemon runs ("the synchronization
            # protocol is incompatible with mixed family services"); EINVAL otherwise.
            if spec.fwd != FwdMethod.TUNNEL:
                raise IPVSError(
                    errno.EINVAL, op, "a real server of another address family needs tunnel mode"
                )
            if self.sync_daemons:
                raise IPVSError(
                    errno.EINVAL, op, "mixed address families are not possible with a sync daemon"
                )
        return (af, addr, spec.port)

    def _check_dest_spec(self, spec: DestSpec, op: str) -> None:
        if not 0 <= spec.weight <= _INT_MAX:
            raise IPVSError(errno.ERANGE, op, "weight out of range")
        if spec.u_threshold < 0 or spec.l_threshold < 0:
            raise IPVSError(errno.ERANGE, op, "threshold out of range")
        if spec.u_threshold and spec.l_threshold > spec.u_threshold:
            # "lower threshold is higher than upper threshold" (ip_vs_add_dest/edit_dest)
            raise IPVSError(errno.ERANGE, op, "lower threshold is higher than upper threshold")
        if spec.fwd not in (FwdMethod.MASQ, FwdMethod.LOCALNODE, FwdMethod.TUNNEL, FwdMethod.ROUTE):
            raise IPVSError(errno.EINVAL, op, f"bad forwarding method {spec.fwd}")
        if spec.tun_type not in _TUN_TYPES or not 0 <= spec.tun_port <= 0xFFFF:
            raise IPVSError(errno.EINVAL, op, "bad tunnel type or port")
        if not 0 <= spec.tun_flags <= 0x7:
            raise IPVSError(errno.EINVAL, op, f"bad tunnel flags {spec.tun_flags}")
        if spec.fwd == FwdMethod.TUNNEL and spec.tun_type != TunType.IPIP:
            # Kernel IPVS also encapsulates in GUE and GRE; pylvs sends IPIP only.
            name = TunType(spec.tun_type).name.lower()
            raise IPVSError(
                errno.EOPNOTSUPP, op, f"tunnel type {name} is not supported (only ipip)", True
            )

    def add_dest(self, svc_spec: ServiceSpec, spec: DestSpec) -> None:
        op = "add_dest"
        svc = self._lookup(svc_spec, op)
        self._check_dest_spec(spec, op)
        af, addr, port = self._dest_key(svc, spec, op)
        if af == AF_INET6 and not _ipv6_unicast(addr):
            # ip_vs_new_dest: an IPv6 real server must be a unicast address that is not
            # link-local (which would need a scope); the kernel lets a local address of the
            # director pass too, which the core cannot tell.
            raise IPVSError(errno.EINVAL, op, f"{spec.addr} is not a global unicast address")
        if svc.find_dest(af, addr, port) is not None:
            raise IPVSError(errno.EEXIST, op)
        dest = self._trash.pop((svc.key, (af, addr, port)), None)
        if dest is None:
            dest = Dest(af=af, addr=addr, port=port)
        dest.available = True
        dest.svc = svc
        path = self.paths.get((af, addr))
        if path is not None:
            dest.path_src, dest.path_mtu = path
        self._apply_dest(dest, spec)
        svc.dests.append(dest)
        svc.dest_index[dest.key] = dest
        self._dests_changed(svc)

    def edit_dest(self, svc_spec: ServiceSpec, spec: DestSpec) -> None:
        op = "update_dest"
        svc = self._lookup(svc_spec, op)
        self._check_dest_spec(spec, op)
        dest = svc.find_dest(*self._dest_key(svc, spec, op))
        if dest is None:
            raise IPVSError(errno.ENOENT, op)
        self._apply_dest(dest, spec)
        self._dests_changed(svc)

    def _apply_dest(self, dest: Dest, spec: DestSpec) -> None:
        """__ip_vs_update_dest: new settings apply to new connections; existing ones keep theirs."""
        dest.set_weight(spec.weight)
        dest.fwd = FwdMethod(spec.fwd)
        dest.tun_type = TunType(spec.tun_type)
        dest.tun_port = spec.tun_port
        dest.tun_flags = spec.tun_flags
        if spec.u_threshold == 0 or spec.u_threshold > dest.u_threshold:
            dest.overloaded = False
        dest.u_threshold = spec.u_threshold
        dest.l_threshold = spec.l_threshold

    def del_dest(self, svc_spec: ServiceSpec, spec: DestSpec) -> None:
        op = "del_dest"
        svc = self._lookup(svc_spec, op)
        dest = svc.find_dest(*self._dest_key(svc, spec, op, deleting=True))
        if dest is None:
            raise IPVSError(errno.ENOENT, op)
        self._remove_dest(svc, dest)

    def _remove_dest(self, svc: Service, dest: Dest) -> None:
        del svc.dest_index[dest.key]
        if self._bulk is None:
            svc.dests.remove(dest)
        else:
            self._bulk_compact.add(id(svc))  # list.remove per dest would be quadratic
        self._retire_dest(svc, dest)
        self._dests_changed(svc)

    def _retire_dest(self, svc: Service, dest: Dest) -> None:
        """A deleted dest serves no new connection; while connections refer to it, it waits in
        the trash, where adding it again revives it (ip_vs_trash_get_dest)."""
        dest.available = False
        if dest.activeconns or dest.inactconns or dest.persistconns:
            self._trash[(svc.key, dest.key)] = dest

    def _dests_changed(self, svc: Service) -> None:
        """The scheduler learns of changed dests (IPVS calls update_service per change); in
        :meth:`bulk` once per service, at the end."""
        if self._bulk is not None:
            self._bulk[id(svc)] = svc
            return
        assert svc.scheduler is not None
        svc.scheduler.update(svc)

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """A block of control operations (a configuration being applied) whose scheduler updates
        and list compaction happen once per service at its end, so applying N real servers
        takes time linear in N. No packet is handled inside the block (the loop runs it)."""
        if self._bulk is not None:
            yield
            return
        self._bulk = {}
        self._bulk_compact = set()
        try:
            yield
        finally:
            changed, compact = self._bulk, self._bulk_compact
            self._bulk = None
            for key, svc in changed.items():
                if key in compact:
                    svc.dests = _compacted(svc)
                if svc.scheduler is not None:
                    svc.scheduler.update(svc)

    def purge_trash(self) -> None:
        """Forget deleted dests that no connection refers to any more."""
        for key, dest in list(self._trash.items()):
            if not (dest.activeconns or dest.inactconns or dest.persistconns):
                del self._trash[key]

    def set_path(self, af: int, daddr: int, src: int, mtu: int) -> None:
        """Record the route source address and MTU towards a real server."""
        self.set_paths([(af, daddr, src, mtu)])

    def set_paths(self, paths: list[tuple[int, int, int, int]]) -> None:
        """:meth:`set_path` for many real servers at once: one pass over the dests."""
        changed: dict[tuple[int, int], tuple[int, int]] = {}
        for af, daddr, src, mtu in paths:
            changed[(af, daddr)] = (src, mtu)
        self.paths.update(changed)
        for svc in self.services_list:
            for dest in svc.dests:
                path = changed.get((dest.af, dest.addr))
                if path is not None:
                    dest.path_src, dest.path_mtu = path

    # -- connections: binding to dests (ip_vs_bind_dest / ip_vs_unbind_dest) ---------------------

    def _bind(self, cp: Conn) -> None:
        dest = cp.dest
        if cp.flags & CF_TEMPLATE:
            dest.persistconns += 1
        elif cp.flags & CF_INACTIVE:
            dest.inactconns += 1
        else:
            dest.activeconns += 1
        dest.update_overload()

    def _unbind(self, cp: Conn) -> None:
        dest = cp.dest
        if cp.flags & CF_TEMPLATE:
            dest.persistconns -= 1
        elif cp.flags & CF_INACTIVE:
            dest.inactconns -= 1
        else:
            dest.activeconns -= 1
        dest.update_overload()
        ctl = cp.control
        if ctl is not None:
            ctl.n_control -= 1
            cp.control = None

    # -- counters and timeouts -----------------------------------------------------------------

    def zero(self, svc: ServiceSpec | None = None) -> None:
        """ipvsadm -Z: the listed counters restart from zero (a snapshot is kept, as kstats0)."""
        if svc is not None:
            services = [self._lookup(svc, "zero_service")]
        else:
            services = self.services_list
            self.stats0 = Stats(*self.stats.as_tuple())
            self.est.reset(self.stats)
        for s in services:
            s.stats0 = Stats(*s.stats.as_tuple())
            s.est.reset(s.stats)
            for dest in s.dests:
                dest.stats0 = Stats(*dest.stats.as_tuple())
                dest.est.reset(dest.stats)

    def set_timeouts(self, timeouts: Timeouts) -> None:
        for value in (timeouts.tcp, timeouts.tcpfin, timeouts.udp):
            if not 0 <= value <= _MAX_TIMEOUT:
                raise IPVSError(errno.EINVAL, "set_timeout")
        if timeouts.tcp:
            self.tcp_timeouts[tcpstate.TCP_ESTABLISHED] = timeouts.tcp
        if timeouts.tcpfin:
            self.tcp_timeouts[tcpstate.TCP_FIN_WAIT] = timeouts.tcpfin
        if timeouts.udp:
            self.udp_timeout = timeouts.udp

    def get_timeouts(self) -> Timeouts:
        return Timeouts(
            self.tcp_timeouts[tcpstate.TCP_ESTABLISHED],
            self.tcp_timeouts[tcpstate.TCP_FIN_WAIT],
            self.udp_timeout,
        )

    def run_estimator(self) -> None:
        """One 2-second sample of every estimator (estimation_timer)."""
        self.est.sample(self.stats)
        for svc in self.services_list:
            svc.est.sample(svc.stats)
            for dest in svc.dests:
                dest.est.sample(dest.stats)

    # -- listings ------------------------------------------------------------------------------

    def services(self) -> list[ServiceInfo]:
        return [self._service_info(svc) for svc in self.services_list]

    def get_service(self, spec: ServiceSpec) -> ServiceInfo:
        return self._service_info(self._lookup(spec, "get_service"))

    def _service_info(self, svc: Service) -> ServiceInfo:
        dests = [
            DestInfo(
                af=d.af,
                addr=addr_to_text(d.af, d.addr),
                port=d.port,
                fwd=int(d.fwd),
                weight=d.weight,
                u_threshold=d.u_threshold,
                l_threshold=d.l_threshold,
                activeconns=d.activeconns,
                inactconns=d.inactconns,
                persistconns=d.persistconns,
                tun_type=int(d.tun_type),
                tun_port=d.tun_port,
                tun_flags=d.tun_flags,
                stats=d.shown_stats().as_tuple(),
                rates=d.est.rates(),
            )
            # Inside bulk() removed dests wait in svc.dests for the compaction at its end.
            for d in (svc.dests if self._bulk is None else _compacted(svc))
        ]
        return ServiceInfo(
            af=svc.af,
            protocol=svc.protocol,
            addr=addr_to_text(svc.af, svc.addr) if not svc.fwmark else "",
            port=svc.port,
            fwmark=svc.fwmark,
            scheduler=svc.sched_name,
            flags=int(svc.flags),
            timeout=svc.timeout,
            netmask=svc.netmask,
            pe_name=svc.pe_name,
            stats=svc.shown_stats().as_tuple(),
            rates=svc.est.rates(),
            dests=dests,
        )

    def total_stats(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        s, z = self.stats, self.stats0
        now, zeroed = s.as_tuple(), z.as_tuple()  # five counters each (no zip strict on 3.9)
        shown = tuple(now[i] - zeroed[i] for i in range(len(now)))
        return (shown, self.est.rates())

    def conns(self) -> list[ConnInfo]:
        out = []
        now = self.now
        for cp in self.table.iter_all():
            af, proto, caddr, cport, vaddr, vport = cp.fields
            dest = cp.dest
            template = bool(cp.flags & CF_TEMPLATE)
            fwmark = 0
            if template:
                state = "NONE"
                if proto == 0:
                    # A fwmark template carries the mark where the virtual address goes.
                    fwmark, vaddr = vaddr, 0
                dport = dest.port
            else:
                state = tcpstate.STATE_NAMES[cp.state] if proto == IPPROTO_TCP else "UDP"
                dport = cp.dport
            if cp.flags & CF_INVALID:
                vport = dport = 0xFFFF
            out.append(
                ConnInfo(
                    protocol=proto,
                    af=af,
                    caddr=addr_to_text(af, caddr),
                    cport=cport,
                    vaddr=addr_to_text(af, vaddr),
                    vport=vport,
                    daddr=addr_to_text(dest.af, dest.addr),
                    dport=dport,
                    state=state,
                    expires=max(0, int(cp.expires - now)),
                    fwd=cp.flags & 0x7,
                    template=template,
                    fwmark=fwmark,
                )
            )
        return out

    # -- connection synchronisation (start_sync_thread, ip_vs_proc_conn) ------------------------

    def start_daemon(self, spec: DaemonSpec, mtu: int = 1500) -> None:
        """Record a sync daemon, with the kernel's defaults; ``mtu`` is the multicast
        interface's (the host side checks the interface and opens the socket)."""
        op = "start_daemon"
        states = {"master": STATE_MASTER, "backup": STATE_BACKUP}
        if spec.state not in states:
            raise IPVSError(errno.EINVAL, op, f"bad sync daemon state {spec.state!r}")
        state = states[spec.state]
        group = spec.mcast_group or DEFAULT_MCAST_GROUP
        try:
            ip = ipaddress.ip_address(group)
        except ValueError:
            raise IPVSError(errno.EINVAL, op, f"bad multicast group {group!r}") from None
        if not ip.is_multicast:
            raise IPVSError(errno.EINVAL, op, f"{group} is not a multicast group")
        if not 0 <= spec.syncid <= 255 or not 0 <= spec.mcast_port <= 0xFFFF:
            raise IPVSError(errno.EINVAL, op)
        if not 0 <= spec.mcast_ttl <= 255 or not 0 <= spec.sync_maxlen <= 0xFFFF:
            raise IPVSError(errno.EINVAL, op)
        ipv6 = ip.version == 6
        if spec.sync_maxlen:
            maxlen = clamp_maxlen(state, spec.sync_maxlen, ipv6)
        else:
            maxlen = default_maxlen(state, mtu, ipv6)
        if spec.state in self.sync_daemons:
            raise IPVSError(errno.EEXIST, op)
        info = DaemonInfo(
            state=spec.state,
            mcast_ifn=spec.mcast_ifn,
            syncid=spec.syncid,
            sync_maxlen=maxlen,
            mcast_group=str(ip),
            mcast_port=spec.mcast_port or DEFAULT_MCAST_PORT,
            mcast_ttl=spec.mcast_ttl or DEFAULT_MCAST_TTL,
        )
        self.sync_daemons[spec.state] = info
        if state == STATE_MASTER:
            self.sync_master = SyncMaster(spec.syncid, maxlen)

    def stop_daemon(self, state: str) -> None:
        if state not in ("master", "backup"):
            raise IPVSError(errno.EINVAL, "stop_daemon", f"bad sync daemon state {state!r}")
        if self.sync_daemons.pop(state, None) is None:
            raise IPVSError(errno.ESRCH, "stop_daemon")
        if state == "master":
            # Records not yet sent are dropped, as the kernel's master thread does on exit.
            self.sync_master = None

    def daemons(self) -> list[DaemonInfo]:
        """Running sync daemons, the master first (ip_vs_genl_dump_daemons)."""
        return [self.sync_daemons[s] for s in ("master", "backup") if s in self.sync_daemons]

    def apply_synced(self, records: Iterable[SyncConn], now: float) -> int:
        """Create or update connections from a sync message (ip_vs_proc_conn); returns how many
        were applied. They are flagged SYNC, keep the state and timeout they came with, and are
        bound to the real server of a matching service when there is one; otherwise to a real
        server of their own that belongs to no service, so they are still forwarded."""
        self.now = now
        applied = 0
        for rec in records:
            if self._apply_synced_conn(rec, now):
                applied += 1
        return applied

    def _apply_synced_conn(self, rec: SyncConn, now: float) -> bool:
        flags = flags_from_wire((rec.flags & IP_VS_CONN_F_BACKUP_MASK) | IP_VS_CONN_F_SYNC)
        if flags & CF_FWD_MASK not in _FWD_METHODS:
            return False
        template = bool(flags & CF_TEMPLATE)
        key = flow_key(rec.af, rec.protocol, rec.caddr, rec.cport, rec.vaddr, rec.vport)
        table = self.table
        if template:
            cp = table.templates.get(key)
        else:
            cp = table.conn_in.get(key)
            if cp is not None and (cp.dport != rec.dport or cp.dest.addr != rec.daddr):
                if flags & CF_INACTIVE:
                    # The end of a connection this one has already replaced: ignore it.
                    return False
                table.expire_now(cp)
                cp = None
        if cp is None:
            dest = self._synced_dest(rec, flags)
            if dest is None:
                dest = Dest(af=rec.af, addr=rec.daddr, port=rec.dport, fwd=FwdMethod(flags & 7))
                path = self.paths.get((rec.af, rec.daddr))
                if path is not None:
                    dest.path_src, dest.path_mtu = path
            else:
                flags = _dest_conn_flags(flags, dest)
            cp = Conn(key, dest, flags, rec.state, self._synced_timeout(rec, template))
            self._bind(cp)
            table.add(cp, now)
        else:
            dest = cp.dest
            if not template and (cp.flags ^ flags) & CF_INACTIVE:
                if flags & CF_INACTIVE:
                    dest.activeconns -= 1
                    dest.inactconns += 1
                else:
                    dest.activeconns += 1
                    dest.inactconns -= 1
            # Only the activity bit is taken from an update (IP_VS_CONN_F_BACKUP_UPD_MASK).
            cp.flags = (cp.flags & ~CF_INACTIVE) | (flags & CF_INACTIVE)
            if dest.svc is None:
                self._try_bind_synced(cp, rec)
            cp.state = rec.state
            cp.timeout = self._synced_timeout(rec, template)
            table.refresh(cp, now)
        cp.old_state = rec.state
        cp.in_pkts = SYNC_THRESHOLD
        return True

    def _synced_timeout(self, rec: SyncConn, template: bool) -> int:
        """The message's timeout (version 1); version 0 carries none: the protocol's timeout for
        the state, 3 minutes for a template."""
        if rec.timeout:
            return min(rec.timeout, _MAX_TIMEOUT)
        if template:
            return 3 * 60
        if rec.protocol == IPPROTO_TCP:
            return self.tcp_timeouts[rec.state]
        return self.udp_timeout

    def _synced_dest(self, rec: SyncConn, flags: int) -> Dest | None:
        """ip_vs_find_dest: the real server of the service the record's virtual address names."""
        svc = self.find_service(rec.af, rec.protocol, rec.vaddr, rec.vport, rec.fwmark)
        if svc is None:
            return None
        port = rec.dport
        if rec.fwmark and flags & CF_FWD_MASK != FwdMethod.MASQ:
            port = 0
        dest = svc.find_dest(rec.af, rec.daddr, port)
        if dest is None:
            dest = svc.find_dest(rec.af, rec.daddr, port ^ rec.dport)
        return dest

    def _try_bind_synced(self, cp: Conn, rec: SyncConn) -> None:
        """ip_vs_try_bind_dest: a connection synced before its service existed joins it now."""
        dest = self._synced_dest(rec, cp.flags)
        if dest is None:
            return
        old_flags = cp.flags
        self._unbind(cp)
        cp.dest = dest
        cp.flags = _dest_conn_flags(old_flags, dest)
        self._bind(cp)
        if old_flags & CF_NOOUTPUT and not cp.flags & CF_NOOUTPUT:
            # Now a NAT connection: its replies must find it.
            self.table.hash_out(cp)

    # -- templates -----------------------------------------------------------------------------

    def template_key(self, svc: Service, proto: int, caddr: int, vaddr: int, vport: int) -> int:
        """The key of the persistence template for a client (ip_vs_sched_persist).

        fwmark services: <IPPROTO_IP, caddr&mask, 0, fwmark, 0>; port-zero services:
        <proto, caddr&mask, 0, vaddr, 0>; otherwise <proto, caddr&mask, 0, vaddr, vport>.
        """
        snet = svc.mask_client(caddr)
        if svc.fwmark:
            return flow_key(svc.af, 0, snet, 0, svc.fwmark, 0)
        if svc.port == 0:
            return flow_key(svc.af, proto, snet, 0, vaddr, 0)
        return flow_key(svc.af, proto, snet, 0, vaddr, vport)

    def check_template(self, ct: Conn) -> bool:
        """ip_vs_check_template: is the template's dest still usable for new connections?

        An unusable template is re-keyed with vport/dport 65535 so it never matches again, and
        lives on until its timer runs out.
        """
        dest = ct.dest
        if dest.available and not (self.sysctls.expire_quiescent_template and dest.weight == 0):
            return True
        if not ct.flags & CF_INVALID:
            af, proto, caddr, _cport, vaddr, _vport = ct.fields
            ct.flags |= CF_INVALID
            self.table.rehash_template(ct, flow_key(af, proto, caddr, 0, vaddr, 0xFFFF))
        return False


def _ipv6_unicast(addr: int) -> bool:
    """``ipv6_addr_type`` has IPV6_ADDR_UNICAST and not IPV6_ADDR_LINKLOCAL: not the unspecified
    address, multicast (ff00::/8), link-local (fe80::/10) or IPv4-mapped (::ffff:0:0/96)."""
    if addr == 0 or addr >> 120 == 0xFF or addr >> 118 == 0x3FA:
        return False
    return addr >> 32 != 0xFFFF


def _compacted(svc: Service) -> list[Dest]:
    """``svc.dests`` without the dests removed in bulk; a dest removed and added again in the
    block sits where it was added last (IPVS appends a re-added dest)."""
    seen: set[int] = set()
    kept: list[Dest] = []
    for dest in reversed(svc.dests):
        if id(dest) in seen or svc.dest_index.get(dest.key) is not dest:
            continue
        seen.add(id(dest))
        kept.append(dest)
    kept.reverse()
    return kept


def _dest_conn_flags(flags: int, dest: Dest) -> int:
    """ip_vs_bind_dest for a synced connection: the forwarding method (and with it NOOUTPUT)
    comes from the real server it is bound to; the activity bit stays as synced."""
    fwd = int(dest.fwd)
    flags = (flags & ~(CF_FWD_MASK | CF_NOOUTPUT)) | fwd
    if fwd != FwdMethod.MASQ:
        flags |= CF_NOOUTPUT
    return flags
