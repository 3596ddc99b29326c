"""The packet rewrites IPVS performs when it forwards (ip_vs_xmit.c, ip_vs_core.c).

Two kinds of function live here, and the difference matters to callers:

- **In place** (``nat_in``, ``nat_out``, ``nat_icmp_in``, ``nat_icmp_out``, ``dr_rewrite``,
  ``decrement_ttl``): the packet keeps its length, so the bytes are rewritten inside the caller's
  writable buffer (a ``bytearray``, or a writable ``memoryview`` such as a ring slot) and nothing
  is returned. The :class:`~pylvs.core.packet.Packet` passed in is not updated; parse again to
  read the new fields.
- **Building** (``tun_encap``, ``icmp_port_unreachable``, ``icmp_frag_needed``,
  ``icmp_time_exceeded``): the result has a different length, so a new ``bytearray`` holding an
  IP packet (no Ethernet header) is returned and the input is left alone.

Checksums are updated incrementally (RFC 1624, as ``ip_vs_nat_xmit`` does with
``tcp_fast_csum_update`` / ``udp_fast_csum_update``): a packet that arrived with a wrong checksum
leaves with a checksum wrong by the same amount, so the receiver still drops it. A UDP checksum of
0 ("none", RFC 768) stays 0; an update that computes 0 writes 0xFFFF (``CSUM_MANGLED_0``).

Fragments: a first fragment carries the L4 header and its checksum, which covers the pseudo header
of the whole datagram, so updating it incrementally stays correct; a later fragment gets only its
addresses rewritten. Together the rewritten fragments reassemble into a valid datagram.
"""

from __future__ import annotations

import platform
import struct
from typing import Union

from pylvs.core.checksum import checksum, csum, csum_replace, ip_checksum_ok, pseudo_header_sum
from pylvs.core.packet import (
    ICMP_DEST_UNREACH,
    ICMP_ERROR_TYPES,
    ICMP_EXC_TTL,
    ICMP_FRAG_NEEDED,
    ICMP_PORT_UNREACH,
    ICMP_TIME_EXCEEDED,
    ICMPV6_DEST_UNREACH,
    ICMPV6_PKT_TOOBIG,
    ICMPV6_PORT_UNREACH,
    ICMPV6_TIME_EXCEED,
    IP_DF,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_IPIP,
    IPPROTO_IPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV4_HLEN,
    IPV6_HLEN,
    Buffer,
    Packet,
)

__all__ = [
    "ICMPV6_QUOTE_MAX",
    "ICMP_QUOTE_MAX",
    "ICMP_TTL",
    "IPIP_OVERHEAD",
    "ForwardError",
    "MutableBuffer",
    "decrement_ttl",
    "dr_rewrite",
    "icmp_frag_needed",
    "icmp_port_unreachable",
    "icmp_time_exceeded",
    "ip_checksum_ok",
    "may_send_icmp_error",
    "nat_icmp_in",
    "nat_icmp_out",
    "nat_in",
    "nat_out",
    "partial_csum_nat",
    "partial_csum_nat6",
    "partial_csum_replace4",
    "tun_encap",
    "tun_needs_frag",
]

# Writable storage the in-place rewrites accept.
MutableBuffer = Union[bytearray, memoryview]  # noqa: UP007 (evaluated at run time, on 3.9 too)

# Bytes the IPIP outer header adds (the tunnel overhead subtracted from the path MTU).
IPIP_OVERHEAD = IPV4_HLEN
# TTL of ICMP errors the director originates (sysctl_ip_default_ttl / ipv6 hop_limit default).
ICMP_TTL = 64
# RFC 1812 section 4.3.2.3 (and Linux icmp_send): quote as much as fits in a 576-byte datagram.
ICMP_QUOTE_MAX = 576 - IPV4_HLEN - 8
# RFC 4443 section 2.4(c): an ICMPv6 error must not exceed the minimum IPv6 MTU, 1280 bytes.
ICMPV6_QUOTE_MAX = 1280 - IPV6_HLEN - 8

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
# version/IHL, TOS, total length, id, flags/fragment offset, TTL, protocol, checksum, saddr, daddr
_IPV4 = struct.Struct("!BBHHHBBHII")
# version/class/flow label, payload length, next header, hop limit, saddr (2x64), daddr (2x64)
_IPV6 = struct.Struct("!IHBBQQQQ")
_ICMP = struct.Struct("!BBHI")
# IPv4 header checksum, source and destination address (offset 10).
_CHECK_ADDRS = struct.Struct("!HII")
# IPv4 TTL, protocol and header checksum (offset 8).
_TTL_CHECK = struct.Struct("!BBH")
# Ethernet destination and source addresses.
_MACS = struct.Struct("6s6s")
_MASK64 = (1 << 64) - 1
# Linux icmp_send: errors carry RT_TOS(tos) | IPTOS_PREC_INTERNETCONTROL.
_IPTOS_TOS_MASK = 0x1E
_IPTOS_PREC_INTERNETCONTROL = 0xC0


class ForwardError(ValueError):
    """A rewrite that cannot be applied to this packet; ``reason`` says why."""

    UNSUPPORTED_PROTOCOL = "unsupported-protocol"
    TOO_BIG = "too-big"
    BAD_ADDRESS = "bad-address"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _l4_check_offset(proto: int) -> int:
    return 16 if proto == IPPROTO_TCP else 6


def nat_in(buf: MutableBuffer, p: Packet, daddr: int, dport: int) -> None:
    """DNAT a request to the real server: ``daddr:dport`` replace the VIP and vport (in place).

    ip_vs_nat_xmit / tcp_dnat_handler / udp_dnat_handler: IPv4 header checksum and the TCP/UDP
    checksum (whose pseudo header holds the address) are updated incrementally.
    """
    proto = p.proto
    if proto != IPPROTO_TCP and proto != IPPROTO_UDP:
        raise ForwardError(ForwardError.UNSUPPORTED_PROTOCOL, f"protocol {proto}")
    l3 = p.l3
    old = p.daddr
    if p.version == 4:
        # Header checksum and both addresses in one unpack and one pack (fewer struct calls).
        check, saddr, _ = _CHECK_ADDRS.unpack_from(buf, l3 + 10)
        # csum_replace(check, old, daddr), inlined: this runs for every NAT packet.
        check = 0xFFFF ^ (((check ^ 0xFFFF) + 0xFFFF - old % 0xFFFF + daddr) % 0xFFFF or 0xFFFF)
        _CHECK_ADDRS.pack_into(buf, l3 + 10, check, saddr, daddr)
    else:
        buf[l3 + 24 : l3 + 40] = daddr.to_bytes(16, "big")
    if p.frag_offset:
        return
    l4 = p.l4
    _U16.pack_into(buf, l4 + 2, dport)
    off = l4 + (16 if proto == IPPROTO_TCP else 6)
    (check,) = _U16.unpack_from(buf, off)
    if check == 0 and proto == IPPROTO_UDP:
        return
    # csum_replace(check, old + p.dport, daddr + dport), inlined.
    old += p.dport
    check = 0xFFFF ^ (((check ^ 0xFFFF) + 0xFFFF - old % 0xFFFF + daddr + dport) % 0xFFFF or 0xFFFF)
    _U16.pack_into(buf, off, check or 0xFFFF if proto == IPPROTO_UDP else check)


def nat_out(buf: MutableBuffer, p: Packet, saddr: int, sport: int) -> None:
    """SNAT a reply from the real server: ``saddr:sport`` (the VIP and vport) replace its source.

    ip_vs_out_hook / handle_response / tcp_snat_handler / udp_snat_handler (in place).
    """
    proto = p.proto
    if proto != IPPROTO_TCP and proto != IPPROTO_UDP:
        raise ForwardError(ForwardError.UNSUPPORTED_PROTOCOL, f"protocol {proto}")
    l3 = p.l3
    old = p.saddr
    if p.version == 4:
        # As in nat_in: one unpack and one pack, the checksum update inlined.
        check, _, daddr = _CHECK_ADDRS.unpack_from(buf, l3 + 10)
        check = 0xFFFF ^ (((check ^ 0xFFFF) + 0xFFFF - old % 0xFFFF + saddr) % 0xFFFF or 0xFFFF)
        _CHECK_ADDRS.pack_into(buf, l3 + 10, check, saddr, daddr)
    else:
        buf[l3 + 8 : l3 + 24] = saddr.to_bytes(16, "big")
    if p.frag_offset:
        return
    l4 = p.l4
    _U16.pack_into(buf, l4, sport)
    off = l4 + (16 if proto == IPPROTO_TCP else 6)
    (check,) = _U16.unpack_from(buf, off)
    if check == 0 and proto == IPPROTO_UDP:
        return
    # csum_replace(check, old + p.sport, saddr + sport), inlined.
    old += p.sport
    check = 0xFFFF ^ (((check ^ 0xFFFF) + 0xFFFF - old % 0xFFFF + saddr + sport) % 0xFFFF or 0xFFFF)
    _U16.pack_into(buf, off, check or 0xFFFF if proto == IPPROTO_UDP else check)


def nat_icmp_in(buf: MutableBuffer, p: Packet, inner: Packet, daddr: int, dport: int) -> None:
    """Rewrite an ICMP error from a client about a masqueraded reply, for the real server.

    The quoted packet is a reply the director sent as VIP:vport; ip_vs_nat_icmp (``inout=0``) sets
    outer daddr := RIP and quoted saddr:sport := RIP:dport, so the real server recognises its own
    packet. ``inner`` is :func:`~pylvs.core.packet.parse_icmp_inner` of ``p`` (in place).
    """
    _nat_icmp(buf, p, inner, daddr, dport, False)


def nat_icmp_out(buf: MutableBuffer, p: Packet, inner: Packet, saddr: int, sport: int) -> None:
    """Rewrite an ICMP error from a real server about a client's request, for the client.

    ip_vs_nat_icmp (``inout=1``): outer saddr := VIP and quoted daddr:dport := VIP:vport, so the
    client sees an error about the packet it sent to the VIP (in place).
    """
    _nat_icmp(buf, p, inner, saddr, sport, True)


def _nat_icmp(
    buf: MutableBuffer, p: Packet, inner: Packet, addr: int, port: int, outbound: bool
) -> None:
    """Shared body of nat_icmp_in / nat_icmp_out.

    Besides what ip_vs_nat_icmp rewrites (outer and quoted addresses, quoted port, both IP header
    checksums, the ICMP checksum), the quoted TCP/UDP checksum is updated when the quote reaches
    it, so a quote that holds the whole segment stays internally valid.
    """
    v4 = p.version == 4
    if outbound:
        outer_off, inner_off, port_off = (12, 16, 2) if v4 else (8, 24, 2)
        outer_old, inner_old, port_old = p.saddr, inner.daddr, inner.dport
    else:
        outer_off, inner_off, port_off = (16, 12, 0) if v4 else (24, 8, 0)
        outer_old, inner_old, port_old = p.daddr, inner.saddr, inner.sport
    # Bytes of the ICMP message that can change: quoted IP header up to the quoted L4 checksum.
    # The region starts 8 bytes into the ICMP message, so its words line up with the message's.
    region_start = inner.l3
    region_end = min(inner.end, inner.l4 + 18)
    sum_before = csum(buf[region_start:region_end])

    if v4:
        _U32.pack_into(buf, p.l3 + outer_off, addr)
        (check,) = _U16.unpack_from(buf, p.l3 + 10)
        _U16.pack_into(buf, p.l3 + 10, csum_replace(check, outer_old, addr))
        _U32.pack_into(buf, inner.l3 + inner_off, addr)
        (check,) = _U16.unpack_from(buf, inner.l3 + 10)
        _U16.pack_into(buf, inner.l3 + 10, csum_replace(check, inner_old, addr))
    else:
        raw = addr.to_bytes(16, "big")
        buf[p.l3 + outer_off : p.l3 + outer_off + 16] = raw
        buf[inner.l3 + inner_off : inner.l3 + inner_off + 16] = raw

    proto = inner.proto
    if inner.frag_offset == 0 and proto in (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP):
        _U16.pack_into(buf, inner.l4 + port_off, port)
        if proto != IPPROTO_SCTP:  # SCTP's CRC32c is not quoted in 8 bytes; IPVS leaves it too
            off = inner.l4 + _l4_check_offset(proto)
            if off + 2 <= inner.end:
                (check,) = _U16.unpack_from(buf, off)
                if not (check == 0 and proto == IPPROTO_UDP):
                    check = csum_replace(check, inner_old + port_old, addr + port)
                    if check == 0 and proto == IPPROTO_UDP:
                        check = 0xFFFF
                    _U16.pack_into(buf, off, check)

    sum_after = csum(buf[region_start:region_end])
    icmp_off = p.l4 + 2
    (check,) = _U16.unpack_from(buf, icmp_off)
    if v4:
        check = csum_replace(check, sum_before, sum_after)
    else:
        # The ICMPv6 pseudo header holds the outer address that changed too (RFC 4443 2.3).
        check = csum_replace(check, sum_before + outer_old, sum_after + addr)
    _U16.pack_into(buf, icmp_off, check)


def dr_rewrite(frame: MutableBuffer, dst_mac: bytes, src_mac: bytes) -> None:
    """Direct routing (ip_vs_dr_xmit): only the Ethernet addresses change (in place).

    The IP packet, still addressed to the VIP, is untouched; the real server accepts it because
    it holds the VIP on a non-ARPing interface.
    """
    if len(dst_mac) != 6 or len(src_mac) != 6:
        raise ForwardError(ForwardError.BAD_ADDRESS, "MAC addresses are 6 bytes")
    try:
        # One pack_into: measured 0.1 µs against 0.4 µs for two bytearray slice stores.
        _MACS.pack_into(frame, 0, dst_mac, src_mac)
    except struct.error:
        # "6s" takes bytes and bytearray only (or the frame is shorter than 12 bytes).
        frame[0:6] = dst_mac
        frame[6:12] = src_mac


def decrement_ttl(buf: MutableBuffer, p: Packet) -> bool:
    """Decrement the IPv4 TTL / IPv6 hop limit in place, as ip_vs_xmit.c ``decrement_ttl`` does.

    Returns False and leaves the packet alone when the TTL is <= 1: it would reach zero, and the
    caller should answer with :func:`icmp_time_exceeded`. The IPv4 header checksum is updated
    incrementally (``ip_decrease_ttl``).
    """
    l3 = p.l3
    if p.version == 4:
        ttl, proto, check = _TTL_CHECK.unpack_from(buf, l3 + 8)
        if ttl <= 1:
            return False
        # TTL is the high byte of the 16-bit word it shares with the protocol, so the word sum
        # drops by 0x100: csum_replace(check, ttl << 8, (ttl - 1) << 8) is this, inlined.
        check = 0xFFFF ^ (((check ^ 0xFFFF) + 0xFEFF) % 0xFFFF or 0xFFFF)
        _TTL_CHECK.pack_into(buf, l3 + 8, ttl - 1, proto, check)
        return True
    hop_limit = buf[l3 + 7]
    if hop_limit <= 1:
        return False
    buf[l3 + 7] = hop_limit - 1
    return True


_decrement_ttl_struct = decrement_ttl  # kept under its own name for the tests on PyPy


def _decrement_ttl_bytewise(buf: MutableBuffer, p: Packet) -> bool:
    """:func:`decrement_ttl` for PyPy, where struct on a bytearray (the engine's copy) costs
    about 60 ns and these byte reads and stores 7 (on CPython they cost 10% more than the
    unpack and pack)."""
    l3 = p.l3
    if p.version == 4:
        ttl = buf[l3 + 8]
        if ttl <= 1:
            return False
        check = buf[l3 + 10] << 8 | buf[l3 + 11]
        check = 0xFFFF ^ (((check ^ 0xFFFF) + 0xFEFF) % 0xFFFF or 0xFFFF)
        buf[l3 + 8] = ttl - 1
        buf[l3 + 10] = check >> 8
        buf[l3 + 11] = check & 0xFF
        return True
    hop_limit = buf[l3 + 7]
    if hop_limit <= 1:
        return False
    buf[l3 + 7] = hop_limit - 1
    return True


if platform.python_implementation() == "PyPy":
    decrement_ttl = _decrement_ttl_bytewise


def _ecn_encapsulate(tos: int) -> int:
    """INET_ECN_encapsulate (RFC 6040 full functionality): copy ECN, but CE becomes ECT(0)."""
    if tos & 0x03 == 0x03:
        return (tos & 0xFC) | 0x02
    return tos


def tun_encap(
    packet: Buffer, p: Packet, saddr: int, daddr: int, ident: int, outer_version: int = 4
) -> bytearray:
    """IPIP encapsulation (ip_vs_tunnel_xmit, ipip_build): a new outer IP header on ``p``.

    Returns a new IP packet: outer header from ``saddr`` (the director) to ``daddr`` (the real
    server), protocol IPIP for an IPv4 inner packet and IPv6 (41) for an IPv6 one, TTL and TOS
    copied from the inner header (ECN per RFC 6040), DF copied from an IPv4 inner header
    (``ip_vs_prepare_tunneled_skb``; IPv6 inner packets get DF clear), id ``ident``. With
    ``outer_version=6`` the outer header is IPv6 (ip_vs_tunnel_xmit_v6) and ``ident`` is unused.
    Any Ethernet header and trailing padding around ``p`` are dropped. The TTL is read from the
    bytes, so a :func:`decrement_ttl` applied just before is carried into the outer header.
    """
    length = p.total_len
    tos = _ecn_encapsulate(p.tos)
    # TTL from the bytes, not from p: a decrement_ttl just before must be carried outside.
    if p.version == 4:
        next_proto = IPPROTO_IPIP
        frag = IP_DF if p.df else 0
        ttl = packet[p.l3 + 8]
    else:
        next_proto = IPPROTO_IPV6
        frag = 0
        ttl = packet[p.l3 + 7]
    if outer_version == 4:
        total = IPV4_HLEN + length
        if total > 0xFFFF:
            raise ForwardError(ForwardError.TOO_BIG, f"{total} bytes with the IPIP header")
        out = bytearray(total)
        # The header's word sum, written out instead of re-reading the bytes.
        words = 0x4500 + tos + total + ident + frag + (ttl << 8) + next_proto + saddr + daddr
        check = (words % 0xFFFF or 0xFFFF) ^ 0xFFFF
        _IPV4.pack_into(out, 0, 0x45, tos, total, ident, frag, ttl, next_proto, check, saddr, daddr)
        out[IPV4_HLEN:] = packet[p.l3 : p.l3 + length]
        return out
    out = bytearray(IPV6_HLEN + length)
    _IPV6.pack_into(
        out,
        0,
        (6 << 28) | (tos << 20),
        length,
        next_proto,
        ttl,
        saddr >> 64,
        saddr & _MASK64,
        daddr >> 64,
        daddr & _MASK64,
    )
    out[IPV6_HLEN:] = packet[p.l3 : p.l3 + length]
    return out


def tun_needs_frag(p: Packet, mtu: int, overhead: int = IPIP_OVERHEAD) -> bool:
    """True when ``p`` may not be fragmented and will not fit ``mtu`` once encapsulated.

    ensure_mtu_is_adequate: the director then sends :func:`icmp_frag_needed` with
    ``mtu - overhead`` and drops the packet. IPv6 packets always count as DF.
    """
    return p.df and p.total_len + overhead > mtu


def may_send_icmp_error(p: Packet) -> bool:
    """Whether an ICMP error may be sent about ``p`` (RFC 1122 3.2.2, RFC 4443 2.4(e)).

    Never about a later fragment, about an ICMP error, or to a source that is unspecified,
    multicast or broadcast (Linux icmp_send / icmp6_send make the same checks).
    """
    if p.frag_offset:
        return False
    if p.version == 4:
        if p.proto == IPPROTO_ICMP and p.icmp_type in ICMP_ERROR_TYPES:
            return False
        return p.saddr != 0 and p.saddr < 0xE0000000 and p.daddr < 0xE0000000
    if p.proto == IPPROTO_ICMPV6 and 0 <= p.icmp_type < 128:
        return False
    return p.saddr != 0 and p.saddr >> 120 != 0xFF


def icmp_port_unreachable(packet: Buffer, p: Packet, src: int, ident: int = 0) -> bytearray:
    """ICMP port unreachable (ICMPv6 port unreachable) from ``src`` about ``p``.

    What ip_vs_leave sends when no real server can take a new connection.
    """
    if p.version == 4:
        return _icmp_error(packet, p, src, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, ident)
    return _icmp_error(packet, p, src, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, 0, ident)


def icmp_frag_needed(packet: Buffer, p: Packet, src: int, mtu: int, ident: int = 0) -> bytearray:
    """ICMP fragmentation needed (RFC 1191) / ICMPv6 packet too big (RFC 4443 3.2) about ``p``.

    ``mtu`` is written as given: pass the MTU the sender must use, i.e. the path MTU already
    reduced by any tunnel overhead (ensure_mtu_is_adequate receives it reduced the same way).
    """
    if p.version == 4:
        return _icmp_error(packet, p, src, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu & 0xFFFF, ident)
    return _icmp_error(packet, p, src, ICMPV6_PKT_TOOBIG, 0, mtu, ident)


def icmp_time_exceeded(packet: Buffer, p: Packet, src: int, ident: int = 0) -> bytearray:
    """ICMP time exceeded in transit / ICMPv6 hop limit exceeded, about ``p``."""
    if p.version == 4:
        return _icmp_error(packet, p, src, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0, ident)
    return _icmp_error(packet, p, src, ICMPV6_TIME_EXCEED, 0, 0, ident)


def _icmp_error(
    packet: Buffer, p: Packet, src: int, icmp_type: int, code: int, rest: int, ident: int
) -> bytearray:
    """Build an ICMP(v6) error from ``src`` to ``p.saddr`` quoting the start of ``p``."""
    present = p.end - p.l3
    if p.version == 4:
        qlen = min(present, ICMP_QUOTE_MAX)
        total = IPV4_HLEN + 8 + qlen
        tos = (p.tos & _IPTOS_TOS_MASK) | _IPTOS_PREC_INTERNETCONTROL
        out = bytearray(total)
        words = 0x4500 + tos + total + ident + (ICMP_TTL << 8) + IPPROTO_ICMP + src + p.saddr
        check = (words % 0xFFFF or 0xFFFF) ^ 0xFFFF
        _IPV4.pack_into(
            out, 0, 0x45, tos, total, ident, 0, ICMP_TTL, IPPROTO_ICMP, check, src, p.saddr
        )
        _ICMP.pack_into(out, IPV4_HLEN, icmp_type, code, 0, rest)
        out[IPV4_HLEN + 8 :] = packet[p.l3 : p.l3 + qlen]
        _U16.pack_into(out, IPV4_HLEN + 2, checksum(memoryview(out)[IPV4_HLEN:]))
        return out
    qlen = min(present, ICMPV6_QUOTE_MAX)
    plen = 8 + qlen
    out = bytearray(IPV6_HLEN + plen)
    dst = p.saddr
    _IPV6.pack_into(
        out,
        0,
        6 << 28,
        plen,
        IPPROTO_ICMPV6,
        ICMP_TTL,
        src >> 64,
        src & _MASK64,
        dst >> 64,
        dst & _MASK64,
    )
    _ICMP.pack_into(out, IPV6_HLEN, icmp_type, code, 0, rest)
    out[IPV6_HLEN + 8 :] = packet[p.l3 : p.l3 + qlen]
    pseudo = pseudo_header_sum(src, dst, IPPROTO_ICMPV6, plen)
    _U16.pack_into(out, IPV6_HLEN + 2, checksum(memoryview(out)[IPV6_HLEN:], pseudo))
    return out


# -- partial checksums (CHECKSUM_PARTIAL: segmentation / checksum offload) -------------------------
#
# A frame whose transport checksum the device (or the kernel's software GSO) still has to complete
# (VIRTIO_NET_HDR_F_NEEDS_CSUM on an AF_PACKET socket with PACKET_VNET_HDR) carries in its TCP/UDP
# checksum field only the folded sum of the pseudo header, *not* complemented (tcp_v4_send_check:
# ``th->check = ~tcp_v4_check(len, saddr, daddr, 0)``). The device later adds the sum of the
# transport header and data and complements the total. Rewriting such a packet follows
# inet_proto_csum_replace4 / inet_proto_csum_replace2 (net/core/utils.c) for CHECKSUM_PARTIAL:
#
# * an address (part of the pseudo header): ``*sum = ~csum_fold(csum_partial({~from, to},
#   csum_unfold(*sum)))``, i.e. the field, taken as a plain one's-complement sum, gains
#   ``~from + to``;
# * a port (transport data, summed by the device): the field is left alone.
#
# The IPv4 header checksum is never offloaded and is updated as usual.


def partial_csum_replace4(check: int, old: int, new: int) -> int:
    """A partial (non-complemented) checksum field after a 32-bit pseudo-header word changed
    from ``old`` to ``new`` (inet_proto_csum_replace4 with CHECKSUM_PARTIAL and pseudohdr)."""
    # One's-complement sum modulo 0xFFFF; "or 0xFFFF" keeps csum_fold's result range (a sum
    # that includes ~old is never +0).
    return (check + 0xFFFF - old % 0xFFFF + new) % 0xFFFF or 0xFFFF


def partial_csum_nat(
    buf: MutableBuffer, check_off: int, check: int, old_saddr: int, old_daddr: int
) -> None:
    """Write the partial checksum of the IPv4 packet ``buf`` (at ``check_off``) for the addresses
    it has now, from the value ``check`` the field had when its addresses were ``old_saddr`` and
    ``old_daddr`` (in place).

    For a packet whose checksum is partial, call it after ``nat_in`` / ``nat_out`` with the field
    as it was before them: their full-checksum update (which also covers the ports) is replaced
    by the partial one, which covers the addresses only.
    """
    _ip_check, saddr, daddr = _CHECK_ADDRS.unpack_from(buf, 10)
    check = partial_csum_replace4(check, old_saddr, saddr)
    _U16.pack_into(buf, check_off, partial_csum_replace4(check, old_daddr, daddr))


def partial_csum_nat6(
    buf: MutableBuffer, check_off: int, check: int, old_saddr: int, old_daddr: int
) -> None:
    """:func:`partial_csum_nat` for an IPv6 packet: the 128-bit addresses of the pseudo header
    (RFC 8200 section 8.1; inet_proto_csum_replace16) changed from ``old_saddr`` / ``old_daddr``
    to what ``buf`` holds at bytes 8-40 now."""
    new_s = int.from_bytes(buf[8:24], "big")
    new_d = int.from_bytes(buf[24:40], "big")
    for old, new in ((old_saddr, new_s), (old_daddr, new_d)):
        if old == new:
            continue
        for shift in (96, 64, 32, 0):
            check = partial_csum_replace4(
                check, (old >> shift) & 0xFFFFFFFF, (new >> shift) & 0xFFFFFFFF
            )
    _U16.pack_into(buf, check_off, check)
