"""Parse Ethernet, IPv4, IPv6, TCP, UDP, SCTP and ICMP headers in place, without copying.

A parse returns one :class:`Packet`: the offsets of each header inside the caller's buffer and the
header fields IPVS looks at (``ip_vs_fill_iph_skb``, ``ip_vs_in_hook``). Addresses are ``int``
values (32 bits for IPv4, 128 bits for IPv6). Anything that cannot be parsed raises
:class:`ParseError` and nothing else; its ``reason`` names why, so the caller can count drops the
way the kernel counts them.

Rules, from the RFCs and from what Linux accepts on input (``ip_rcv_core``, ``ipv6_rcv``):
- IPv4: version 4, IHL >= 5, ``IHL*4 <= total length <= bytes present``; options are skipped
  (``l4 = l3 + IHL*4``). Bytes beyond the total length (Ethernet padding) are ignored.
- IPv6: payload length must fit in the buffer. Hop-by-hop, routing, destination-options,
  fragment and AH extension headers are skipped (RFC 8200 section 4, RFC 4302, as the kernel's
  ``ipv6_find_hdr``); ``hlen`` includes them.
- Fragments (RFC 791 / RFC 8200 section 4.5): the IP header is parsed and ``is_fragment`` set;
  only the first fragment (offset 0) has its L4 header parsed.
- TCP data offset must be >= 5 and the header must fit in the packet; UDP, SCTP and ICMP need
  their fixed header (8, 12 and 8 bytes). A first fragment too short for its L4 header is refused
  as well (RFC 1858 tiny-fragment rule).
- An unknown L4 protocol is not an error: it parses with ports 0 and the caller decides.
- IPv6 packets report ``df=True``: routers never fragment IPv6 (RFC 8200 section 5), so for PMTU
  purposes every IPv6 packet behaves like an IPv4 packet with DF set.
"""

from __future__ import annotations

import struct
from typing import Union

__all__ = [
    "ETH_HLEN",
    "ETH_P_8021Q",
    "ETH_P_IP",
    "ETH_P_IPV6",
    "ICMPV6_DEST_UNREACH",
    "ICMPV6_ECHO_REPLY",
    "ICMPV6_ECHO_REQUEST",
    "ICMPV6_ERROR_TYPES",
    "ICMPV6_PARAMPROB",
    "ICMPV6_PKT_TOOBIG",
    "ICMPV6_PORT_UNREACH",
    "ICMPV6_TIME_EXCEED",
    "ICMP_DEST_UNREACH",
    "ICMP_ECHO",
    "ICMP_ECHOREPLY",
    "ICMP_ERROR_TYPES",
    "ICMP_EXC_TTL",
    "ICMP_FRAG_NEEDED",
    "ICMP_PARAMETERPROB",
    "ICMP_PORT_UNREACH",
    "ICMP_REDIRECT",
    "ICMP_RELATED_TYPES",
    "ICMP_SOURCE_QUENCH",
    "ICMP_TIME_EXCEEDED",
    "IPPROTO_AH",
    "IPPROTO_DSTOPTS",
    "IPPROTO_ESP",
    "IPPROTO_FRAGMENT",
    "IPPROTO_GRE",
    "IPPROTO_HOPOPTS",
    "IPPROTO_ICMP",
    "IPPROTO_ICMPV6",
    "IPPROTO_IPIP",
    "IPPROTO_IPV6",
    "IPPROTO_NONE",
    "IPPROTO_ROUTING",
    "IPPROTO_SCTP",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "IPV4_HLEN",
    "IPV6_HLEN",
    "IP_DF",
    "IP_MF",
    "IP_OFFMASK",
    "TCP_ACK",
    "TCP_CWR",
    "TCP_ECE",
    "TCP_FIN",
    "TCP_PSH",
    "TCP_RST",
    "TCP_SYN",
    "TCP_URG",
    "Buffer",
    "Packet",
    "ParseError",
    "Reason",
    "parse_frame",
    "parse_icmp_inner",
    "parse_ip",
]

# Ethertypes (include/uapi/linux/if_ether.h).
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_HLEN = 14

# IP protocol numbers (include/uapi/linux/in.h, in6.h).
IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_GRE = 47
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_SCTP = 132

IPV4_HLEN = 20
IPV6_HLEN = 40

# IPv4 fragment field (RFC 791 section 3.1).
IP_DF = 0x4000
IP_MF = 0x2000
IP_OFFMASK = 0x1FFF

# TCP flag bits, byte 13 of the TCP header (RFC 793, RFC 3168 for ECE/CWR).
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10
TCP_URG = 0x20
TCP_ECE = 0x40
TCP_CWR = 0x80

# ICMP types and codes (RFC 792, include/uapi/linux/icmp.h).
ICMP_ECHOREPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_SOURCE_QUENCH = 4
ICMP_REDIRECT = 5
ICMP_ECHO = 8
ICMP_TIME_EXCEEDED = 11
ICMP_PARAMETERPROB = 12
ICMP_PORT_UNREACH = 3  # code of ICMP_DEST_UNREACH
ICMP_FRAG_NEEDED = 4  # code of ICMP_DEST_UNREACH
ICMP_EXC_TTL = 0  # code of ICMP_TIME_EXCEEDED
# Errors that quote the offending packet (RFC 792, RFC 1812 section 4.3.2.3).
ICMP_ERROR_TYPES = frozenset(
    {ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_REDIRECT, ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB}
)
# The only ones IPVS treats as related to a connection (ip_vs_in_icmp / ip_vs_out_icmp).
ICMP_RELATED_TYPES = frozenset({ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_TIME_EXCEEDED})

# ICMPv6 types and codes (RFC 4443).
ICMPV6_DEST_UNREACH = 1
ICMPV6_PKT_TOOBIG = 2
ICMPV6_TIME_EXCEED = 3
ICMPV6_PARAMPROB = 4
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
ICMPV6_PORT_UNREACH = 4  # code of ICMPV6_DEST_UNREACH
ICMPV6_ERROR_TYPES = frozenset(
    {ICMPV6_DEST_UNREACH, ICMPV6_PKT_TOOBIG, ICMPV6_TIME_EXCEED, ICMPV6_PARAMPROB}
)

_IPV6_EXT_HEADERS = frozenset({IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS})
# The headers the walk to the upper layer passes (ipv6_ext_hdr, "no next header" aside).
_IPV6_WALKED = _IPV6_EXT_HEADERS | {IPPROTO_FRAGMENT, IPPROTO_AH}
# Fixed L4 header sizes that must be present to read the ports / type.
_L4_MIN = {IPPROTO_TCP: 20, IPPROTO_UDP: 8, IPPROTO_SCTP: 12, IPPROTO_ICMP: 8, IPPROTO_ICMPV6: 8}

# version/IHL, TOS, total length, id, flags/fragment offset, TTL, protocol, checksum, saddr, daddr
_IPV4 = struct.Struct("!BBHHHBBHII")
# version/class/flow label, payload length, next header, hop limit, saddr (2x64), daddr (2x64)
_IPV6 = struct.Struct("!IHBBQQQQ")
_IPV6_FRAG = struct.Struct("!BxHI")
_TCP = struct.Struct("!HH8xBB")
_PORTS = struct.Struct("!HH")
_ICMP = struct.Struct("!BB")
_U16 = struct.Struct("!H")
# The fast path's one unpack: an IPv4 header without options and the first 14 L4 bytes
# (TCP: ports, data offset, flags; UDP: ports, then bytes that are not used).
_IPV4_L4 = struct.Struct("!BBHHHBBHIIHH8xBB")
# The same up to the ports, for packets shorter than 34 bytes.
_IPV4_PORTS = struct.Struct("!BBHHHBBHIIHH")
# Packet construction without the __init__ call (see _parse_ipv4_fast).
_new_packet = object.__new__
# The common case in one unpack: an IPv4 header without options and the first 14 L4 bytes
# (TCP: ports, data offset, flags; UDP: ports, then bytes that are ignored).
_IPV4_L4 = struct.Struct("!BBHHHBBHIIHH8xBB")
# The same up to the ports, for packets shorter than 34 bytes.
_IPV4_PORTS = struct.Struct("!BBHHHBBHIIHH")
# The same behind an Ethernet header: ethertype first.
_ETH_IPV4_L4 = struct.Struct("!12xHBBHHHBBHIIHH8xBB")
# Packet construction without the __init__ call (see _ipv4_packet).
_new_packet = object.__new__

# The IPv6 fast path's unpack: the fixed header and the first 14 L4 bytes (as _IPV4_L4), and
# the same up to the ports for a packet too short for a TCP header.
_IPV6_L4 = struct.Struct("!IHBBQQQQHH8xBB")
_IPV6_PORTS = struct.Struct("!IHBBQQQQHH")

# Anything the parser reads from without copying.
Buffer = Union[bytes, bytearray, memoryview]  # noqa: UP007 (evaluated at run time, on 3.9 too)


class Reason:
    """Values of :attr:`ParseError.reason`: why a packet could not be parsed."""

    TRUNCATED = "truncated"  # fewer bytes than the fixed IP header
    BAD_VERSION = "bad-version"  # IP version not 4 or 6 (or not the expected one)
    BAD_IHL = "bad-ihl"  # IPv4 IHL < 5, or IHL*4 beyond the bytes present
    BAD_TOTAL_LENGTH = "bad-total-length"  # total length < IHL*4, or beyond the bytes present
    BAD_EXT_HEADER = "bad-ext-header"  # an IPv6 extension header runs past the packet
    BAD_TCP_OFFSET = "bad-tcp-offset"  # TCP data offset < 5, or the header runs past the packet
    TRUNCATED_L4 = "truncated-l4"  # the fixed L4 header is not all there
    UNKNOWN_ETHERTYPE = "unknown-ethertype"  # not IPv4 / IPv6 (ARP, LLDP, ...)
    NOT_ICMP_ERROR = "not-icmp-error"  # parse_icmp_inner on something that quotes nothing
    TRUNCATED_INNER = "truncated-inner"  # quoted packet lacks its IP header or 8 L4 bytes


class ParseError(ValueError):
    """The bytes are not a packet this layer can handle; ``reason`` is a :class:`Reason` value."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Packet:
    """Offsets and header fields of one parsed IP packet inside a caller-owned buffer.

    Offsets are absolute positions in the buffer handed to the parser. ``end`` is where this
    packet's bytes stop (``l3 + total_len``; for a packet quoted in an ICMP error, where the quote
    stops, which may be earlier). Fields that do not apply hold 0, except ``icmp_type`` /
    ``icmp_code`` (-1 when not ICMP) and ``eth`` / ``vlan`` (-1 when there is no Ethernet header /
    no 802.1Q tag). The rewrite functions in :mod:`pylvs.core.forward` change the bytes, not this
    object: parse again to read the rewritten fields.
    """

    __slots__ = (
        "daddr",
        "df",
        "dport",
        "end",
        "eth",
        "frag_offset",
        "hlen",
        "icmp_code",
        "icmp_type",
        "ident",
        "is_fragment",
        "l3",
        "l4",
        "l4_len",
        "more_fragments",
        "proto",
        "saddr",
        "sport",
        "tcp_flags",
        "tos",
        "total_len",
        "ttl",
        "version",
        "vlan",
    )

    def __init__(
        self,
        version: int,
        l3: int,
        hlen: int,
        total_len: int,
        proto: int,
        saddr: int,
        daddr: int,
        ttl: int,
        tos: int,
        df: bool,
        ident: int,
        frag_offset: int,
        more_fragments: bool,
        l4: int,
        sport: int,
        dport: int,
        tcp_flags: int,
        icmp_type: int,
        icmp_code: int,
        end: int,
        eth: int = -1,
        vlan: int = -1,
    ) -> None:
        self.version = version  # 4 or 6
        self.l3 = l3  # offset of the IP header
        self.hlen = hlen  # IP header length, IPv4 options / IPv6 extension headers included
        self.total_len = total_len  # IP total length (IPv6: 40 + payload length)
        self.proto = proto  # L4 protocol (IPv6: the next header after the extension headers)
        self.saddr = saddr
        self.daddr = daddr
        self.ttl = ttl  # IPv6 hop limit
        self.tos = tos  # IPv6 traffic class
        self.df = df  # IPv4 DF bit; always True for IPv6 (see the module docstring)
        self.ident = ident  # IPv4 id / IPv6 fragment header identification, else 0
        self.frag_offset = frag_offset  # in 8-byte units
        self.more_fragments = more_fragments
        self.is_fragment = more_fragments or frag_offset != 0
        self.l4 = l4  # offset of the L4 header (l3 + hlen)
        self.l4_len = total_len - hlen  # L4 header + payload, per the IP length
        self.sport = sport
        self.dport = dport
        self.tcp_flags = tcp_flags
        self.icmp_type = icmp_type
        self.icmp_code = icmp_code
        self.end = end
        self.eth = eth  # offset of the Ethernet header, -1 when parsed from IP
        self.vlan = vlan  # 802.1Q TCI, -1 when untagged

    @property
    def has_l4(self) -> bool:
        """True when the L4 header was parsed (not a later fragment, known protocol)."""
        return self.frag_offset == 0 and self.proto in _L4_MIN

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in sorted(self.__slots__))
        return f"Packet({fields})"


def parse_ip(buf: Buffer, offset: int = 0) -> Packet:
    """Parse the IPv4 or IPv6 packet that starts at ``offset`` in ``buf``."""
    limit = len(buf)
    if limit - offset >= 28:
        p = _parse_ipv4_fast(buf, offset, limit, -1)
        if p is not None:
            return p
        # After the IPv4 attempt, so that IPv4 pays nothing for it.
        if limit - offset >= 48 and buf[offset] >> 4 == 6:
            p = _parse_ipv6_fast(buf, offset, limit)
            if p is not None:
                return p
    return _parse_ip(buf, offset, limit, False)


def parse_frame(buf: Buffer) -> Packet:
    """Parse an Ethernet II frame (optionally with one 802.1Q tag) carrying IPv4 or IPv6."""
    limit = len(buf)
    # Ethertype 0x0800 tested bytewise: cheaper than an unpack for the common case.
    if limit >= ETH_HLEN + 28 and buf[12] == 0x08 and buf[13] == 0x00:
        p = _parse_ipv4_fast(buf, ETH_HLEN, limit, 0)
        if p is not None:
            return p
    if limit < ETH_HLEN:
        raise ParseError(Reason.TRUNCATED, "Ethernet header")
    (ethertype,) = _U16.unpack_from(buf, 12)
    l3 = ETH_HLEN
    vlan = -1
    if ethertype == ETH_P_8021Q:
        if limit < ETH_HLEN + 4:
            raise ParseError(Reason.TRUNCATED, "802.1Q tag")
        vlan, ethertype = _PORTS.unpack_from(buf, 14)
        l3 = ETH_HLEN + 4
    if ethertype == ETH_P_IP:
        p = _parse_ip(buf, l3, limit, False)
        if p.version != 4:
            raise ParseError(Reason.BAD_VERSION, f"version {p.version} in an IPv4 frame")
    elif ethertype == ETH_P_IPV6:
        p = _parse_ip(buf, l3, limit, False)
        if p.version != 6:
            raise ParseError(Reason.BAD_VERSION, f"version {p.version} in an IPv6 frame")
    else:
        raise ParseError(Reason.UNKNOWN_ETHERTYPE, f"0x{ethertype:04x}")
    p.eth = 0
    p.vlan = vlan
    return p


def _parse_ipv4_fast(buf: Buffer, l3: int, limit: int, eth: int) -> Packet | None:
    """The common case in one pass: unfragmented IPv4 without options carrying TCP or UDP.

    Returns None for anything else (including every malformed packet), which then takes the
    general path in :func:`_parse_ip` and gets its precise :class:`ParseError`. The caller
    guarantees 28 bytes from ``l3`` (IPv4 + UDP headers).
    """
    if limit - l3 >= 34:
        # One unpack for the IP header and the L4 fields (two unpacks cost about 0.1 µs more).
        (
            vihl, tos, total_len, ident, frag, ttl, proto, _check, saddr, daddr,
            sport, dport, doff, flags,
        ) = _IPV4_L4.unpack_from(buf, l3)  # fmt: skip
    else:
        # Too short for a TCP header (which the check below then refuses): a minimal UDP packet.
        vihl, tos, total_len, ident, frag, ttl, proto, _check, saddr, daddr, sport, dport = (
            _IPV4_PORTS.unpack_from(buf, l3)
        )
        doff = flags = 0
    if vihl != 0x45 or frag & 0x3FFF or total_len > limit - l3:
        return None
    if proto == IPPROTO_TCP:
        # Data offset (high nibble of doff) at least 5 words and within the total length.
        if total_len < 40 or doff < 0x50 or (doff & 0xF0) >> 2 > total_len - 20:
            return None
    elif proto == IPPROTO_UDP:
        if total_len < 28:
            return None
        flags = 0
    else:
        return None
    # Slot stores after object.__new__: the 22-argument Packet(...) call costs about 0.1 µs more.
    p = _new_packet(Packet)
    p.version = 4
    p.l3 = l3
    p.hlen = IPV4_HLEN
    p.total_len = total_len
    p.proto = proto
    p.saddr = saddr
    p.daddr = daddr
    p.ttl = ttl
    p.tos = tos
    p.df = frag & IP_DF != 0
    p.ident = ident
    p.frag_offset = 0
    p.more_fragments = False
    p.is_fragment = False
    p.l4 = l3 + IPV4_HLEN
    p.l4_len = total_len - IPV4_HLEN
    p.sport = sport
    p.dport = dport
    p.tcp_flags = flags
    p.icmp_type = -1
    p.icmp_code = -1
    p.end = l3 + total_len
    p.eth = eth
    p.vlan = -1
    return p


def _parse_ipv6_fast(buf: Buffer, l3: int, limit: int) -> Packet | None:
    """The IPv6 common case in one unpack: TCP or UDP right after the fixed header.

    Returns None for anything else (extension headers, other protocols, every malformed
    packet), which then takes :func:`_parse_ip`. The caller guarantees 48 bytes from ``l3``.
    """
    if limit - l3 >= 54:
        vtcfl, plen, proto, hop, s_hi, s_lo, d_hi, d_lo, sport, dport, doff, flags = (
            _IPV6_L4.unpack_from(buf, l3)
        )
    else:
        vtcfl, plen, proto, hop, s_hi, s_lo, d_hi, d_lo, sport, dport = _IPV6_PORTS.unpack_from(
            buf, l3
        )
        doff = flags = 0
    if plen > limit - l3 - IPV6_HLEN:
        return None
    if proto == IPPROTO_TCP:
        if plen < 20 or doff < 0x50 or (doff & 0xF0) >> 2 > plen:
            return None
    elif proto == IPPROTO_UDP:
        if plen < 8:
            return None
        flags = 0
    else:
        return None
    p = _new_packet(Packet)
    p.version = 6
    p.l3 = l3
    p.hlen = IPV6_HLEN
    p.total_len = total_len = IPV6_HLEN + plen
    p.proto = proto
    p.saddr = (s_hi << 64) | s_lo
    p.daddr = (d_hi << 64) | d_lo
    p.ttl = hop
    p.tos = (vtcfl >> 20) & 0xFF
    p.df = True
    p.ident = 0
    p.frag_offset = 0
    p.more_fragments = False
    p.is_fragment = False
    p.l4 = l3 + IPV6_HLEN
    p.l4_len = plen
    p.sport = sport
    p.dport = dport
    p.tcp_flags = flags
    p.icmp_type = -1
    p.icmp_code = -1
    p.end = l3 + total_len
    p.eth = -1
    p.vlan = -1
    return p


def parse_icmp_inner(buf: Buffer, p: Packet) -> Packet:
    """Parse the packet quoted in the ICMP / ICMPv6 error ``p`` (RFC 792, RFC 4443 section 2.4).

    Needs the quoted IP header and the first 8 bytes of its L4 header, enough for the ports
    (ip_vs_in_icmp reads no more). The quoted total length may exceed what was quoted; the
    returned packet's ``end`` marks where the quote stops.
    """
    if p.version == 4:
        if p.proto != IPPROTO_ICMP or p.icmp_type not in ICMP_ERROR_TYPES:
            raise ParseError(Reason.NOT_ICMP_ERROR, f"ICMP type {p.icmp_type}")
    elif p.proto != IPPROTO_ICMPV6 or p.icmp_type not in ICMPV6_ERROR_TYPES:
        raise ParseError(Reason.NOT_ICMP_ERROR, f"ICMPv6 type {p.icmp_type}")
    inner = _parse_ip(buf, p.l4 + 8, p.end, True)
    if inner.version != p.version:
        raise ParseError(Reason.BAD_VERSION, "quoted packet of the other IP version")
    return inner


def _parse_ip(buf: Buffer, l3: int, limit: int, quoted: bool) -> Packet:
    """Parse IP at ``l3`` with bytes available up to ``limit``.

    ``quoted`` relaxes the length rules for a packet quoted inside an ICMP error: its total length
    may run past ``limit``, and only 8 bytes of L4 header are required.
    """
    avail = limit - l3
    if avail < IPV4_HLEN:
        raise ParseError(Reason.TRUNCATED_INNER if quoted else Reason.TRUNCATED, f"{avail} bytes")
    version = buf[l3] >> 4
    if version == 4:
        vihl, tos, total_len, ident, frag, ttl, proto, _check, saddr, daddr = _IPV4.unpack_from(
            buf, l3
        )
        hlen = (vihl & 0x0F) << 2
        if hlen < IPV4_HLEN:
            raise ParseError(Reason.BAD_IHL, f"IHL {hlen >> 2}")
        if total_len < hlen:
            raise ParseError(Reason.BAD_TOTAL_LENGTH, f"total length {total_len} < {hlen}")
        if quoted:
            if hlen > avail:
                raise ParseError(Reason.TRUNCATED_INNER, "quoted IP options")
            end = l3 + min(total_len, avail)
        elif total_len > avail:
            raise ParseError(Reason.BAD_TOTAL_LENGTH, f"total length {total_len} > {avail}")
        else:
            end = l3 + total_len
        frag_offset = frag & IP_OFFMASK
        more = frag & IP_MF != 0
        df = frag & IP_DF != 0
    elif version == 6:
        if avail < IPV6_HLEN:
            raise ParseError(Reason.TRUNCATED_INNER if quoted else Reason.TRUNCATED, "IPv6")
        vtcfl, plen, proto, ttl, s_hi, s_lo, d_hi, d_lo = _IPV6.unpack_from(buf, l3)
        tos = (vtcfl >> 20) & 0xFF
        saddr = (s_hi << 64) | s_lo
        daddr = (d_hi << 64) | d_lo
        total_len = IPV6_HLEN + plen
        if quoted:
            end = l3 + min(total_len, avail)
        elif total_len > avail:
            raise ParseError(Reason.BAD_TOTAL_LENGTH, f"total length {total_len} > {avail}")
        else:
            end = l3 + total_len
        df = True
        ident = frag_offset = 0
        more = False
        hlen = IPV6_HLEN
        # RFC 8200 section 4: walk the extension headers the L4 header may hide behind, as
        # ipv6_find_hdr does for IPVS (ip_vs_fill_iph_skb): hop-by-hop, routing, destination
        # options, fragment and AH (ipv6_ext_hdr); ESP and "no next header" end the walk.
        while proto in _IPV6_WALKED:
            pos = l3 + hlen
            if pos + 8 > end:
                raise ParseError(Reason.BAD_EXT_HEADER, f"header {proto} runs past the packet")
            if proto == IPPROTO_FRAGMENT:
                proto, offmf, ident = _IPV6_FRAG.unpack_from(buf, pos)
                frag_offset = offmf >> 3
                more = offmf & 1 != 0
                hlen += 8
                if frag_offset:
                    break  # a later fragment: what follows is payload, not headers
            elif proto == IPPROTO_AH:
                # RFC 4302 section 2.2: the AH length counts 32-bit words, minus 2.
                proto = buf[pos]
                hlen += (buf[pos + 1] + 2) << 2
                if l3 + hlen > end:
                    raise ParseError(Reason.BAD_EXT_HEADER, "AH length runs past the packet")
            else:
                proto = buf[pos]
                hlen += (buf[pos + 1] + 1) << 3
                if l3 + hlen > end:
                    raise ParseError(Reason.BAD_EXT_HEADER, "header length runs past the packet")
    else:
        raise ParseError(Reason.BAD_VERSION, f"version {version}")

    l4 = l3 + hlen
    sport = dport = tcp_flags = 0
    icmp_type = icmp_code = -1
    if frag_offset == 0:
        l4_avail = end - l4
        if proto == IPPROTO_TCP:
            if quoted:
                # RFC 792 guarantees 8 quoted bytes: the ports; flags only if quoted too.
                if l4_avail < 8:
                    raise ParseError(Reason.TRUNCATED_INNER, "quoted TCP header")
                sport, dport = _PORTS.unpack_from(buf, l4)
                if l4_avail >= 14:
                    tcp_flags = buf[l4 + 13]
            else:
                if l4_avail < 20:
                    raise ParseError(Reason.TRUNCATED_L4, f"TCP header, {l4_avail} bytes")
                sport, dport, doff, tcp_flags = _TCP.unpack_from(buf, l4)
                doff = (doff >> 4) << 2
                if doff < 20 or doff > l4_avail:
                    raise ParseError(Reason.BAD_TCP_OFFSET, f"data offset {doff >> 2}")
        elif proto in (IPPROTO_UDP, IPPROTO_SCTP):
            if l4_avail < (8 if quoted else _L4_MIN[proto]):
                raise ParseError(
                    Reason.TRUNCATED_INNER if quoted else Reason.TRUNCATED_L4,
                    f"protocol {proto} header, {l4_avail} bytes",
                )
            sport, dport = _PORTS.unpack_from(buf, l4)
        elif proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            if l4_avail < 8:
                raise ParseError(
                    Reason.TRUNCATED_INNER if quoted else Reason.TRUNCATED_L4,
                    f"ICMP header, {l4_avail} bytes",
                )
            icmp_type, icmp_code = _ICMP.unpack_from(buf, l4)
    return Packet(
        version,
        l3,
        hlen,
        total_len,
        proto,
        saddr,
        daddr,
        ttl,
        tos,
        df,
        ident,
        frag_offset,
        more,
        l4,
        sport,
        dport,
        tcp_flags,
        icmp_type,
        icmp_code,
        end,
    )
