"""The connection table: lookups from both directions, persistence templates and timed expiry.

IPVS keeps one entry (``struct ip_vs_conn``) per ``<protocol, caddr:cport, vaddr:vport>`` and finds
it either from a client packet (the *in* key, client -> VIP) or, for NAT, from a real server's reply
(the *out* key, real server -> client). pylvs does the same with two dictionaries keyed by one
integer built from the packet's ``(protocol, saddr, sport, daddr, dport)`` (:func:`flow_key`), so a
packet's key is computed once and looked up in each.

Memory matters (a director may track a million connections), so a :class:`Conn` stores as little
as it can: the in key (from which client and virtual address and ports are derived), the dest
(which gives the real server address and port), and small shared integers for flags, state and
timeout. The out key is derived again when it is needed. The two dictionaries are two-level
(virtual address and port, or real server address and port, then the client's address and port):
for IPv4 every key then fits in 64 bits, a machine integer on PyPy instead of a big integer per
connection and per NAT reply key, and the client part is one object shared by both indexes.

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
    "V6_MARK",
    "Bucket",
    "Conn",
    "ConnIndex",
    "ConnTable",
    "Flows",
    "flow_key",
    "join_parts",
    "new_conn",
    "split_key",
    "split_parts",
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

# The bit that sets IPv6 keys apart from IPv4 ones (above every field of either). An IPv6 key's
# virtual part is ``V6_MARK | proto << 144 | vaddr << 16 | vport`` and its client part
# ``caddr << 16 | cport``: the same two-level indexes as IPv4, with 128-bit addresses.
_V6_MARK = 1 << 300
V6_MARK = _V6_MARK
_MASK48 = (1 << 48) - 1  # an IPv4 address and port
_MASK144 = (1 << 144) - 1  # an IPv6 address and port


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


def split_parts(key: int) -> tuple[int, int]:
    """A client packet's key as (virtual part, client part): the two keys of the in index.

    The virtual part holds the protocol, the destination address and port (for IPv6 also the
    IPv6 mark); the client part the source address and port, ``saddr << 16 | sport``.
    """
    if key & _V6_MARK:
        k = key ^ _V6_MARK
        return _V6_MARK | (k >> 288) << 144 | k & _MASK144, (k >> 144) & _MASK144
    return (key >> 96) << 48 | key & _MASK48, (key >> 48) & _MASK48


def join_parts(vkey: int, ckey: int) -> int:
    """Inverse of :func:`split_parts`: the flow key from its virtual and client parts."""
    if vkey & _V6_MARK:
        v = vkey ^ _V6_MARK
        return _V6_MARK | (v >> 144) << 288 | ckey << 144 | v & _MASK144
    return (vkey >> 48) << 96 | ckey << 48 | vkey & _MASK48


def _split_reply(key: int) -> tuple[int, int]:
    """A reply's key (real server -> client) as (real server part, client part): the two keys
    of the out index. The client part is the destination here, so it equals the connection's."""
    if key & _V6_MARK:
        k = key ^ _V6_MARK
        return _V6_MARK | (k >> 288) << 144 | (k >> 144) & _MASK144, k & _MASK144
    return (key >> 96) << 48 | (key >> 48) & _MASK48, key & _MASK48


def _join_reply(rkey: int, ckey: int) -> int:
    if rkey & _V6_MARK:
        r = rkey ^ _V6_MARK
        return _V6_MARK | (r >> 144) << 288 | (r & _MASK144) << 144 | ckey
    return (rkey >> 48) << 96 | (rkey & _MASK48) << 48 | ckey


class Conn:
    """One tracked connection or persistence template (struct ip_vs_conn).

    ``old_state`` is the state last sent by a sync master (set only once it is synced).

    ``key`` is the in key (client -> virtual). For a template the key is built with cport 0 and
    the template's virtual port (0 for port-zero and fwmark services; a fwmark template puts the
    mark where the virtual address goes, as IPVS does). ``dest`` is the real server.

    The key is kept as its two parts (:func:`split_parts`): ``vkey``, the protocol and virtual
    address and port, is one int object shared by the connections of a virtual address (the
    table makes it so), and ``ckey``, the client's address and port, fits in 64 bits for IPv4.
    A 112-bit key would be a big integer: 44 bytes on CPython, about 88 on PyPy, per connection
    and again for the out key of a NAT connection. ``seen`` is the time of the last timer
    refresh; the connection is due at ``seen + timeout`` (:attr:`expires`). ``seen`` is the
    ``now`` object the packet came with, which the packets of one batch share, where a stored
    deadline would be one float object per connection.
    """

    __slots__ = (
        "bucket",
        "ckey",
        "control",
        "dest",
        "flags",
        "in_pkts",
        "n_control",
        "old_state",
        "seen",
        "state",
        "timeout",
        "vkey",
    )

    old_state: int  # set by synchronisation only, see the class docstring

    def __init__(self, key: int, dest: Dest, flags: int, state: int, timeout: int) -> None:
        self.vkey, self.ckey = split_parts(key)
        self.dest = dest
        self.flags = flags
        self.state = state
        self.timeout = timeout
        self.seen = 0.0
        self.bucket: Bucket | None = None
        self.control: Conn | None = None
        self.n_control = 0
        self.in_pkts = 0

    @property
    def key(self) -> int:
        return join_parts(self.vkey, self.ckey)

    @key.setter
    def key(self, key: int) -> None:
        self.vkey, self.ckey = split_parts(key)

    @property
    def expires(self) -> float:
        """When the timer runs out: the last refresh plus the timeout."""
        return self.seen + self.timeout

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

    def reply_part(self) -> int:
        """The real server part of the out key (protocol, RIP, RS port): the outer key of the
        out index; the client part is ``ckey``, as for the in index."""
        vkey = self.vkey
        dest = self.dest
        shift = 144 if vkey & _V6_MARK else 48
        return (vkey >> shift) << shift | dest.addr << 16 | (dest.port or vkey & 0xFFFF)

    def out_key(self) -> int:
        """The key of the real server's replies: proto, RIP, RS port, caddr, cport."""
        return _join_reply(self.reply_part(), self.ckey)

    @property
    def dport(self) -> int:
        """The real server port: the dest's, or the virtual port for a port-0 dest."""
        port = self.dest.port
        return port if port else self.vkey & 0xFFFF


_new_object = object.__new__


def new_conn(vkey: int, ckey: int, dest: Dest, flags: int, state: int, timeout: int) -> Conn:
    """``Conn(join_parts(vkey, ckey), ...)`` without building and splitting the key (the packet
    path's constructor: it has the parts from the packet)."""
    cp: Conn = _new_object(Conn)
    cp.vkey = vkey
    cp.ckey = ckey
    cp.dest = dest
    cp.flags = flags
    cp.state = state
    cp.timeout = timeout
    cp.seen = 0.0
    cp.bucket = None
    cp.control = None
    cp.n_control = 0
    cp.in_pkts = 0
    return cp


class Flows(dict[int, "Conn"]):
    """The connections of one virtual address and port (in index) or of one real server address
    and port (out index), by client part. ``part`` is the outer key they are filed under; the
    in index hands its object to each connection as ``vkey``, so that one int is shared."""

    __slots__ = ("part",)

    def __init__(self, part: int) -> None:
        super().__init__()
        self.part = part


class ConnIndex:
    """A read-only mapping view of a two-level index, by full flow key (the view the tests,
    listings and synchronisation use; the packet path reads the two levels directly)."""

    __slots__ = ("_join", "_outer", "_split")

    def __init__(
        self,
        outer: dict[int, Flows],
        split: Callable[[int], tuple[int, int]],
        join: Callable[[int, int], int],
    ) -> None:
        self._outer = outer
        self._split = split
        self._join = join

    def get(self, key: int, default: Conn | None = None) -> Conn | None:
        part, ckey = self._split(key)
        flows = self._outer.get(part)
        if flows is None:
            return default
        return flows.get(ckey, default)

    def __getitem__(self, key: int) -> Conn:
        cp = self.get(key)
        if cp is None:
            raise KeyError(key)
        return cp

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self.get(key) is not None

    def __len__(self) -> int:
        return sum(len(flows) for flows in self._outer.values())

    def __iter__(self) -> Iterator[int]:
        join = self._join
        for part, flows in self._outer.items():
            for ckey in flows:
                yield join(part, ckey)

    def keys(self) -> Iterator[int]:
        return iter(self)

    def values(self) -> Iterator[Conn]:
        for flows in self._outer.values():
            yield from flows.values()

    def items(self) -> Iterator[tuple[int, Conn]]:
        join = self._join
        for part, flows in self._outer.items():
            for ckey, cp in flows.items():
                yield join(part, ckey), cp

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ConnIndex):
            return dict(self.items()) == dict(other.items())
        if isinstance(other, dict):
            return dict(self.items()) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dict it stands for

    def __repr__(self) -> str:
        return f"ConnIndex({dict(self.items())!r})"


class ConnTable:
    """Connections by in key and (NAT only) by out key, templates by their key, and the wheel.

    The in index is ``flows_in[vkey][ckey]`` (virtual part, then client part) and the out index
    ``flows_out[reply_part][ckey]``: both inner keys are the client's address and port, one int
    object per connection shared by both, and the outer dicts have one entry per virtual address
    or real server, not per connection. ``conn_in`` and ``conn_out`` view them by full flow key.
    Templates are few and keyed by their full key in ``templates``.

    ``on_expire`` is called for every connection that leaves the table for any reason, after it
    has been unhashed; the engine uses it to unbind the dest and release the controlling template.
    """

    def __init__(self, on_expire: Callable[[Conn], None]) -> None:
        self.flows_in: dict[int, Flows] = {}
        self.flows_out: dict[int, Flows] = {}
        self.conn_in = ConnIndex(self.flows_in, split_parts, join_parts)
        self.conn_out = ConnIndex(self.flows_out, _split_reply, _join_reply)
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
            flows = self.flows_in.get(cp.vkey)
            if flows is None:
                flows = self.flows_in[cp.vkey] = Flows(cp.vkey)
            else:
                cp.vkey = flows.part  # the same value, one object for all
            flows[cp.ckey] = cp
            if not cp.flags & CF_NOOUTPUT:
                self.hash_out(cp)
        cp.seen = now
        self._arm(cp)

    def hash_out(self, cp: Conn) -> None:
        """Make a connection findable by its replies (NAT connections)."""
        part = cp.reply_part()
        flows = self.flows_out.get(part)
        if flows is None:
            flows = self.flows_out[part] = Flows(part)
        flows[cp.ckey] = cp

    def _unhash(self, cp: Conn) -> None:
        if cp.flags & CF_TEMPLATE:
            key = cp.key
            if self.templates.get(key) is cp:
                del self.templates[key]
            return
        _unfile(self.flows_in, cp.vkey, cp.ckey, cp)
        if self.flows_out:  # empty in DR and tunnel tables: no reply part to compute
            _unfile(self.flows_out, cp.reply_part(), cp.ckey, cp)

    def rehash_template(self, cp: Conn, new_key: int) -> None:
        """Move a template to another key (ip_vs_check_template's invalidation)."""
        self._unhash(cp)
        cp.key = new_key
        self.templates[new_key] = cp

    # -- timers --------------------------------------------------------------------------------

    def _arm(self, cp: Conn) -> None:
        tick = math.ceil(cp.seen + cp.timeout)
        bucket = self._wheel.get(tick)
        if bucket is None:
            bucket = self._wheel[tick] = Bucket(tick)
            heapq.heappush(self._ticks, tick)
        bucket.append(cp)
        cp.bucket = bucket

    def refresh(self, cp: Conn, now: float) -> None:
        """Re-arm the timer to ``now + cp.timeout`` (ip_vs_conn_put / mod_timer)."""
        cp.seen = now
        bucket = cp.bucket
        if bucket is not None and now + cp.timeout < bucket.tick - 1:
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
                if cp.seen + cp.timeout > now:
                    self._arm(cp)
                    continue
                if cp.n_control:
                    # A template (or FTP control connection) that still controls connections
                    # does not die: it is re-armed for another 60 s (ip_vs_conn_expire).
                    cp.timeout = 60
                    cp.seen = now
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


def _unfile(index: dict[int, Flows], part: int, ckey: int, cp: Conn) -> None:
    """Remove ``cp`` from ``index[part]`` if it is filed there, and an emptied inner dict."""
    flows = index.get(part)
    if flows is not None and flows.get(ckey) is cp:
        del flows[ckey]
        if not flows:
            del index[part]
