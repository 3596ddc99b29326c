"""SipHash-c-d in pure Python, and the kernel's ``hsiphash`` built on it.

SipHash (Aumasson and Bernstein, 2012) with ``c`` compression rounds per 8-byte block and ``d``
finalisation rounds. SipHash-2-4 is the PRF of the paper. Linux ``lib/siphash.c`` on 64-bit
machines defines ``hsiphash`` (the "half" hash for hash tables) as SipHash-1-3 with two 64-bit key
words, truncated to its low 32 bits; the mh scheduler hashes with it (``ip_vs_mh.c``). 32-bit
kernels use HalfSipHash-1-3 instead, which gives different values; pylvs follows the 64-bit ones.

Keys are given as the two little-endian 64-bit words ``k0``, ``k1`` (``siphash_key_t.key[0..1]``).
"""

from __future__ import annotations

__all__ = ["hsiphash", "hsiphash_u32", "siphash", "siphash24"]

_M64 = 0xFFFFFFFFFFFFFFFF

# "somepseudorandomlygeneratedbytes", the initialisation constants of the paper.
_C0 = 0x736F6D6570736575
_C1 = 0x646F72616E646F6D
_C2 = 0x6C7967656E657261
_C3 = 0x7465646279746573


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _M64
    v1 = ((v1 << 13) | (v1 >> 51)) & _M64
    v1 ^= v0
    v0 = ((v0 << 32) | (v0 >> 32)) & _M64
    v2 = (v2 + v3) & _M64
    v3 = ((v3 << 16) | (v3 >> 48)) & _M64
    v3 ^= v2
    v0 = (v0 + v3) & _M64
    v3 = ((v3 << 21) | (v3 >> 43)) & _M64
    v3 ^= v0
    v2 = (v2 + v1) & _M64
    v1 = ((v1 << 17) | (v1 >> 47)) & _M64
    v1 ^= v2
    v2 = ((v2 << 32) | (v2 >> 32)) & _M64
    return v0, v1, v2, v3


def siphash(k0: int, k1: int, data: bytes, c_rounds: int = 2, d_rounds: int = 4) -> int:
    """SipHash-``c_rounds``-``d_rounds`` of ``data`` under key (k0, k1); a 64-bit integer."""
    v0 = _C0 ^ k0
    v1 = _C1 ^ k1
    v2 = _C2 ^ k0
    v3 = _C3 ^ k1
    length = len(data)
    full = length - (length % 8)
    for i in range(0, full, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        for _ in range(c_rounds):
            v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
    # The last block holds the remaining bytes and the message length (mod 256) in its top byte.
    b = ((length & 0xFF) << 56) | int.from_bytes(data[full:], "little")
    v3 ^= b
    for _ in range(c_rounds):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= 0xFF
    for _ in range(d_rounds):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def siphash24(k0: int, k1: int, data: bytes) -> int:
    """SipHash-2-4, the variant of the paper (and of the kernel's ``siphash``)."""
    return siphash(k0, k1, data, 2, 4)


def hsiphash(k0: int, k1: int, data: bytes) -> int:
    """The kernel's 64-bit ``hsiphash``: SipHash-1-3 truncated to a u32."""
    return siphash(k0, k1, data, 1, 3) & 0xFFFFFFFF


def hsiphash_u32(k0: int, k1: int, value: int) -> int:
    """``hsiphash(&value, 4, key)`` for a u32 in host (little-endian) byte order.

    This is what ``ip_vs_mh_hashkey`` computes, on every mh scheduling decision: a fixed 4-byte
    input needs no block loop. The result equals ``hsiphash(k0, k1, value.to_bytes(4,
    "little"))``.
    """
    v0 = _C0 ^ k0
    v1 = _C1 ^ k1
    v2 = _C2 ^ k0
    v3 = _C3 ^ k1
    b = (4 << 56) | (value & 0xFFFFFFFF)
    v3 ^= b
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= 0xFF
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return (v0 ^ v1 ^ v2 ^ v3) & 0xFFFFFFFF
