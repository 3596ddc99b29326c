"""Internet checksums: the RFC 1071 sum, RFC 1624 incremental update, TCP/UDP/ICMP checksums.

Every sum here rests on one identity: since 2**16 == 1 (mod 0xFFFF), the one's-complement sum of
the 16-bit big-endian words of some bytes equals their value as one big-endian integer modulo
0xFFFF, with a non-zero total folding to 0xFFFF rather than 0 (RFC 1071 section 2(B): the
end-around carry never produces +0 from non-zero input). So a whole buffer is summed with one
``int.from_bytes`` and one ``%`` (measured: about 5x faster than ``array('H')`` summing), and a
32-bit or 128-bit address can stand in for its 2 or 8 words as a plain ``int``.

On PyPy the big integer of ``int.from_bytes`` is slow (6.4 µs for 1500 bytes against 4.5 µs on
CPython), so there :func:`csum` adds 32-bit little-endian words read with ``struct`` instead, which
the JIT turns into plain loads into a machine integer: the sum of little-endian words times 256
is congruent to the sum of big-endian words (RFC 1071 section 2(B): byte order independence; 256
times a 16-bit value is its byte swap, modulo 0xFFFF). The implementation is chosen at import.

Incremental updates use RFC 1624 equation 3, ``HC' = ~(~HC + ~m + m')``, which is what Linux
``csum_replace4`` / ``inet_proto_csum_replace16`` compute. A consequence worth knowing, shared with
IPVS: an incremental update carries a wrong checksum's error over unchanged; it never repairs a
corrupted packet, it only accounts for the bytes it changed.
"""

from __future__ import annotations

import platform
import struct
from typing import TYPE_CHECKING

from pylvs.core.packet import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    Packet,
)

if TYPE_CHECKING:
    from pylvs.core.packet import Buffer

__all__ = [
    "L4_CHECK_OFFSET",
    "checksum",
    "csum",
    "csum_replace",
    "fold",
    "ip_checksum_ok",
    "ipv4_header_checksum",
    "l4_checksum",
    "l4_checksum_ok",
    "pseudo_header_sum",
    "update16",
    "update32",
    "update128",
]

# Offset of the checksum field from the start of the L4 header.
L4_CHECK_OFFSET = {IPPROTO_TCP: 16, IPPROTO_UDP: 6, IPPROTO_ICMP: 2, IPPROTO_ICMPV6: 2}


def fold(total: int) -> int:
    """Fold a non-negative sum of 16-bit words to 16 bits with end-around carry (RFC 1071)."""
    if total == 0:
        return 0
    r = total % 0xFFFF
    return r if r else 0xFFFF


def csum(data: Buffer, initial: int = 0) -> int:
    """One's-complement sum of ``data`` as 16-bit big-endian words, plus ``initial``, folded.

    An odd trailing byte is padded with a zero byte on the right (RFC 1071 section 4.1).
    ``initial`` may be any non-negative int: a previous :func:`csum` or :func:`pseudo_header_sum`.
    """
    total = int.from_bytes(data, "big")
    if len(data) & 1:
        total <<= 8
    total += initial
    if total == 0:
        return 0
    r = total % 0xFFFF
    return r if r else 0xFFFF


_csum_int = csum  # the reference on every runtime (the tests compare the two)
_LE_WORDS = struct.Struct("<II")


def _csum_words(data: Buffer, initial: int = 0) -> int:
    """:func:`csum` for PyPy: the same result from machine-integer word sums (module docstring)."""
    if type(data) is memoryview:
        # struct reads from bytes are the JIT's fast case (about 5x a read from a memoryview).
        data = data.tobytes()
    n = len(data)
    end = n & ~7
    unpack = _LE_WORDS.unpack_from
    total = 0
    for i in range(0, end, 8):
        a, b = unpack(data, i)
        total += a + b
    # Little-endian sum times 256: the big-endian sum (modulo 0xFFFF). Below 2**63 up to 2 GiB.
    total <<= 8
    for i in range(end, n - 1, 2):
        total += data[i] << 8 | data[i + 1]
    if n & 1:
        total += data[n - 1] << 8
    total += initial
    if total == 0:
        return 0
    r = total % 0xFFFF
    return r if r else 0xFFFF


if platform.python_implementation() == "PyPy":
    csum = _csum_words  # the CPython version above stays the reference


def checksum(data: Buffer, initial: int = 0) -> int:
    """The Internet checksum of ``data``: the complement of :func:`csum`."""
    return csum(data, initial) ^ 0xFFFF


def csum_replace(check: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: the checksum ``check`` after data summing to ``old`` became ``new``.

    ``old`` and ``new`` are word sums of any width: a 16-bit field, a 32-bit IPv4 address, a 128-bit
    IPv6 address, or several of these added together (e.g. ``addr + port``), since all of them
    are congruent to their word sums modulo 0xFFFF.
    """
    total = (check ^ 0xFFFF) + (0xFFFF - old % 0xFFFF) + new
    # The middle term is at least 1, so total is never 0: a zero remainder is a sum of 0xFFFF.
    return 0xFFFF ^ (total % 0xFFFF or 0xFFFF)


# Named for the field width they are used on; one implementation serves all widths.
update16 = csum_replace
update32 = csum_replace
update128 = csum_replace


def pseudo_header_sum(saddr: int, daddr: int, proto: int, length: int) -> int:
    """Word sum of the TCP/UDP/ICMPv6 pseudo header, unfolded (RFC 793, RFC 768, RFC 8200 8.1).

    IPv4 and IPv6 pseudo headers hold the same words (addresses, protocol, length) in different
    layouts, so with addresses as ints one sum serves both.
    """
    return saddr + daddr + proto + length


def ipv4_header_checksum(buf: Buffer, l3: int, hlen: int) -> int:
    """The IPv4 header checksum of the header at ``l3`` as if its checksum field were zero."""
    total = int.from_bytes(buf[l3 : l3 + hlen], "big")
    stored = (buf[l3 + 10] << 8) | buf[l3 + 11]
    return fold(total + 0xFFFF - stored) ^ 0xFFFF


_IPV4_WORDS = struct.Struct("!5I")


def ip_checksum_ok(buf: Buffer, p: Packet) -> bool:
    """True when the IPv4 header checksum verifies; IPv6 has none (always True)."""
    if p.version != 4:
        return True
    if p.hlen == 20:
        # Every packet on AF_PACKET: five words read in place, no slice (PyPy: 20 against 120
        # ns). Their sum is congruent to the 16-bit word sum; all-zero words cannot verify.
        a, b, c, d, e = _IPV4_WORDS.unpack_from(buf, p.l3)
        total: int = a + b + c + d + e
        return total != 0 and total % 0xFFFF == 0
    return csum(buf[p.l3 : p.l3 + p.hlen]) == 0xFFFF


def _l4_sum(buf: Buffer, p: Packet) -> int:
    """Unfolded word sum of the whole L4 segment plus its pseudo header (none for ICMPv4)."""
    if p.is_fragment:
        raise ValueError("a fragment's L4 checksum covers the reassembled datagram")
    if p.proto not in L4_CHECK_OFFSET:
        raise ValueError(f"no checksum known for protocol {p.proto}")
    end = p.l3 + p.total_len
    if p.end < end:
        raise ValueError("the L4 segment is not all present")
    total = int.from_bytes(buf[p.l4 : end], "big")
    if p.l4_len & 1:
        total <<= 8
    if p.proto != IPPROTO_ICMP:
        total += pseudo_header_sum(p.saddr, p.daddr, p.proto, p.l4_len)
    return total


def l4_checksum(buf: Buffer, p: Packet) -> int:
    """The correct TCP / UDP / ICMP / ICMPv6 checksum for ``p``, computed over all its bytes.

    The checksum field itself is left out of the sum. A UDP result of 0 is returned as 0xFFFF,
    since 0 on the wire means "no checksum" (RFC 768; IPVS ``CSUM_MANGLED_0``).
    """
    off = p.l4 + L4_CHECK_OFFSET.get(p.proto, 0)
    total = _l4_sum(buf, p)
    stored = (buf[off] << 8) | buf[off + 1]
    value = fold(total + 0xFFFF - stored) ^ 0xFFFF
    if value == 0 and p.proto == IPPROTO_UDP:
        return 0xFFFF
    return value


def l4_checksum_ok(buf: Buffer, p: Packet) -> bool:
    """True when the L4 checksum verifies.

    A UDP-over-IPv4 checksum of 0 means none was sent and verifies (RFC 768); over IPv6 it is
    invalid (RFC 8200 section 8.1).
    """
    if p.proto == IPPROTO_UDP and p.version == 4:
        off = p.l4 + 6
        if buf[off] == 0 and buf[off + 1] == 0:
            return True
    return fold(_l4_sum(buf, p)) == 0xFFFF
