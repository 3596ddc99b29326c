"""Hash helpers shared by the hashing schedulers (dh, sh, lblc, lblcr, mh).

IPVS hashes IPv6 addresses by XOR-folding the four 32-bit words into one (``addr_fold`` in
``ip_vs_dh.c``, ``ip_vs_sh.c``, ``ip_vs_lblc.c``, ``ip_vs_lblcr.c``, ``ip_vs_mh.c``) and then works
on the host-order value (``ntohl(addr_fold)``). Addresses in pylvs are already host-order integers,
so the fold is a XOR of the four 32-bit slices of the 128-bit value.
"""

from __future__ import annotations

from pylvs.core.service import AF_INET6

__all__ = ["GOLDEN_RATIO_32", "addr_fold", "hash_32"]

# include/linux/hash.h, kernels >= 4.7.
GOLDEN_RATIO_32 = 0x61C88647


def hash_32(val: int, bits: int) -> int:
    """``hash_32(val, bits)``: the top ``bits`` bits of ``val * GOLDEN_RATIO_32`` (mod 2**32)."""
    return ((val * GOLDEN_RATIO_32) & 0xFFFFFFFF) >> (32 - bits)


def addr_fold(af: int, addr: int) -> int:
    """``ntohl(addr_fold)`` for an address of family ``af``.

    For AF_INET the kernel reads ``addr->ip``, the first 32-bit word of ``union nf_inet_addr``;
    an IPv6 dest of an IPv4 service (tunnel mode) is therefore hashed by its top 32 bits.
    """
    if af == AF_INET6:
        return (addr ^ (addr >> 32) ^ (addr >> 64) ^ (addr >> 96)) & 0xFFFFFFFF
    if addr > 0xFFFFFFFF:
        return addr >> 96
    return addr
