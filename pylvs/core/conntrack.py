"""The connection table: lookups from both directions, persistence templates and timed expiry.

IPVS keeps one entry (``struct ip_vs_conn``) per ``<protocol, caddr:cport, vaddr:vport>`` and finds
it either from a client packet (the *in* key, client -> VIP) or, for NAT, from a real server's reply
(the *out* key, real server -> client). pylvs does the same with two dictionaries keyed by one
integer built from the packet's ``(protocol, saddr, sport, daddr, dport)`` (:func:`flow_key`), so a
packet's key is computed once and looked up in each.

Memory matters (a director may track a million connections), so a :class:`Conn` stores as little
as it can: the in key (from which client and virtual address and ports are derived), the dest
(which gives the real server address and port), and small shared integers for flags, state and
timeout. The out key is derived again when it is needed.

Expiry costs in proportion to what expires, not to the table size: connections sit in one-second
buckets of a timer wheel. Refreshing a connection only moves its deadline; the connection is
moved to its new bucket when its old bucket comes due (as ``mod_timer`` does lazily), or at once
when its deadline moves earlier (a state change to a shorter timeout).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator

from pylvs.core.service import AF_INET, Dest

__all__ = [
    "CF_INACTIVE",
    "CF_INVALID",
    "CF_NOOUTPUT",
    "CF_ONE_PACKET",
    "CF_SYNC",
    "CF_TEMPLATE",
    "Bucket",
    "Conn",
    "ConnTable",
    "flow_key",
    "split_key",
]

# Connection flags. The forwarding method (FwdMethod) sits in the low 3 bits as in IPVS; the other
# bits are pylvs's own compact layout (all values stay below 256, so CPython shares the int
# objects between connections). They map onto IP_VS_CONN_F_* where the wire needs them.
CF_FWD_MASK = 0x07
CF_INACTIVE = 0x08  # IP_VS_CONN_F_INACTIVE: counted in inactconns
CF_NOOUTPUT = 0x10  # IP_VS_CONN_F_NOOUTPUT: no reply seen (DR/TUN always)
CF_TEMPLATE = 0x20  # IP_VS_CONN_F_TEMPLATE: persistence template
CF_ONE_PACKET = 0x40  # IP_VS_CONN_F_ONE_PACKET: not hashed, expires after its packet
CF_INVALID = 0x80  # template invalidated by ip_vs_check_template (vport/dport shown as 65535)
# IP_VS_CONN_F_SYNC: created by a backup from a sync message. The one bit above 255: only a
# backup's synced connections carry it.
CF_SYNC = 0x100

_V6_MARK = 1 << 300


def flow_key(af: int, proto: int, saddr: int, sport: int, daddr: int, dport: int) -> int:
    """One integer for a flow as a packet sees it: (protocol, source, destination).

    A client packet's key is its connection's in key; a real server's reply has the key
    ``flow_key(proto, daddr, dport, caddr, cport)``, the connection's out key.
    """
    if af == AF_INET:
        return ((((proto << 32 | saddr) << 16 | sport) << 32 | daddr) << 16) | dport
    return _V6_MARK | ((((proto << 128 | saddr) << 16 | sport) << 128 | daddr) << 16) | dport


def split_key(key: int) -> tuple[int, int, int, int, int, int]:
    """Inverse of :func:`flow_key`: (af, proto, saddr, sport, daddr, dport)."""
    if key & _V6_MARK:
        key ^= _V6_MARK
        return (
            6,
            key >> 288,
            (key >> 160) & ((1 << 128) - 1),
            (key >> 144) & 0xFFFF,
            (key >> 16) & ((1 << 128) - 1),
            key & 0xFFFF,
        )
    return (
        AF_INET,
        key >> 96,
        (key >> 64) & 0xFFFFFFFF,
        (key >> 48) & 0xFFFF,
        (key >> 16) & 0xFFFFFFFF,
        key & 0xFFFF,
    )


class Bucket(list["Conn"]):
    """The connections due in one second of the timer wheel."""

    __slots__ = ("tick",)

    def __init__(self, tick: int) -> None:
        super().__init__()
        self.tick = tick


class Conn:
    """One tracked connection or persistence template (struct ip_vs_conn).

    ``old_state`` is the state last sent by a sync master (set only once it is synced).

    ``key`` is the in key (client -> virtual). For a template the key is built with cport 0 and
    the template's virtual port (0 for port-zero and fwmark services; a fwmark template puts the
    mark where the virtual address goes, as IPVS does). ``dest`` is the real server.
    """

    __slots__ = (
        "bucket",
        "control",
        "dest",
        "expires",
        "flags",
        "in_pkts",
        "key",
        "n_control",
        "old_state",
        "state",
        "timeout",
    )

    old_state: int  # set by synchronisation only, see the class docstring

    def __init__(self, key: int, dest: Dest, flags: int, state: int, timeout: int) -> None:
        self.key = key
        self.dest = dest
        self.flags = flags
        self.state = state
        self.timeout = timeout
        self.expires = 0.0
        self.bucket: Bucket | None = None
        self.control: Conn | None = None
        self.n_control = 0
        self.in_pkts = 0

    @property
    def fwd(self) -> int:
        return self.flags & CF_FWD_MASK

    @property
    def is_template(self) -> bool:
        return bool(self.flags & CF_TEMPLATE)

    @property
    def fields(self) -> tuple[int, int, int, int, int, int]:
        """(af, proto, caddr, cport, vaddr, vport) from the key."""
        return split_key(self.key)

    def out_key(self) -> int:
        key = self.key
        dest = self.dest
        if not key & _V6_MARK:
            # IPv4, split_key and flow_key inlined (runs for every new NAT connection):
            # proto, RIP, RS port, caddr, cport.
            return (
                (((key >> 96) << 32 | dest.addr) << 16 | (dest.port or key & 0xFFFF)) << 32
                | (key >> 64) & 0xFFFFFFFF
            ) << 16 | (key >> 48) & 0xFFFF
        af, proto, caddr, cport, _vaddr, _vport = split_key(key)
        return flow_key(af, proto, dest.addr, self.dport, caddr, cport)

    @property
    def dport(self) -> int:
        """The real server port: the dest's, or the virtual port for a port-0 dest."""
        port = self.dest.port
        return port if port else self.key & 0xFFFF


class ConnTable:
    """Connections by in key and (NAT only) by out key, templates by their key, and the wheel.

    ``on_expire`` is called for every connection that leaves the table for any reason, after it
    has been unhashed; the engine uses it to unbind the dest and release the controlling template.
    """

    def __init__(self, on_expire: Callable[[Conn], None]) -> None:
        self.conn_in: dict[int, Conn] = {}
        self.conn_out: dict[int, Conn] = {}
        self.templates: dict[int, Conn] = {}
        self._wheel: dict[int, Bucket] = {}
        self._ticks: list[int] = []
        self._on_expire = on_expire

    def __len__(self) -> int:
        return len(self.conn_in) + len(self.templates)

    # -- hashing -------------------------------------------------------------------------------

    def add(self, cp: Conn, now: float) -> None:
        """Hash a new connection (or template) and arm its timer at ``now + cp.timeout``."""
        if cp.flags & CF_TEMPLATE:
            self.templates[cp.key] = cp
        else:
            self.conn_in[cp.key] = cp
            if not cp.flags & CF_NOOUTPUT:
                self.conn_out[cp.out_key()] = cp
        cp.expires = now + cp.timeout
        self._arm(cp)

    def hash_out(self, cp: Conn) -> None:
        """Make a connection findable by its replies (NAT connections)."""
        self.conn_out[cp.out_key()] = cp

    def _unhash(self, cp: Conn) -> None:
        if cp.flags & CF_TEMPLATE:
            if self.templates.get(cp.key) is cp:
                del self.templates[cp.key]
            return
        if self.conn_in.get(cp.key) is cp:
            del self.conn_in[cp.key]
        out = cp.out_key()
        if self.conn_out.get(out) is cp:
            del self.conn_out[out]

    def rehash_template(self, cp: Conn, new_key: int) -> None:
        """Move a template to another key (ip_vs_check_template's invalidation)."""
        self._unhash(cp)
        cp.key = new_key
        self.templates[new_key] = cp

    # -- timers --------------------------------------------------------------------------------

    def _arm(self, cp: Conn) -> None:
        tick = math.ceil(cp.expires)
        bucket = self._wheel.get(tick)
        if bucket is None:
            bucket = self._wheel[tick] = Bucket(tick)
            heapq.heappush(self._ticks, tick)
        bucket.append(cp)
        cp.bucket = bucket

    def refresh(self, cp: Conn, now: float) -> None:
        """Re-arm the timer to ``now + cp.timeout`` (ip_vs_conn_put / mod_timer)."""
        expires = now + cp.timeout
        cp.expires = expires
        bucket = cp.bucket
        if bucket is not None and expires < bucket.tick - 1:
            # The deadline moved earlier than its bucket: move it now (the old entry goes stale).
            self._arm(cp)

    def expire_now(self, cp: Conn) -> None:
        """Remove a connection at once (ip_vs_conn_expire_now)."""
        if cp.bucket is None:
            return
        cp.bucket = None
        self._unhash(cp)
        self._on_expire(cp)

    def next_deadline(self) -> float | None:
        return float(self._ticks[0]) if self._ticks else None

    def expire(self, now: float) -> int:
        """Expire what is due at ``now``; return how many connections left the table.

        Work is proportional to the entries of the buckets that came due.
        """
        expired = 0
        ticks = self._ticks
        wheel = self._wheel
        while ticks and ticks[0] <= now:
            tick = heapq.heappop(ticks)
            bucket = wheel.pop(tick)
            for cp in bucket:
                if cp.bucket is not bucket:
                    continue  # moved to an earlier bucket, or already removed
                if cp.expires > now:
                    self._arm(cp)
                    continue
                if cp.n_control:
                    # A template (or FTP control connection) that still controls connections
                    # does not die: it is re-armed for another 60 s (ip_vs_conn_expire).
                    cp.timeout = 60
                    cp.expires = now + 60
                    self._arm(cp)
                    continue
                cp.bucket = None
                self._unhash(cp)
                self._on_expire(cp)
                expired += 1
        return expired

    def flush(self) -> None:
        """Remove every connection and template."""
        for cp in list(self.iter_all()):
            self.expire_now(cp)
        self._wheel.clear()
        self._ticks.clear()

    def iter_all(self) -> Iterator[Conn]:
        yield from self.conn_in.values()
        yield from self.templates.values()
