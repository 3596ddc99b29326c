"""A classic BPF interpreter for the programs pylvs builds (tests only).

It runs a program of :mod:`pylvs.io.rings` over packet bytes as the kernel would
(``net/core/filter.c`` for the instructions used there): loads are big-endian, a load past the
end of the packet ends the program with 0, ``SKF_AD_PKTTYPE`` reads the packet type given.
"""

from __future__ import annotations

from collections.abc import Sequence

from pylvs.io.rings import SKF_AD_PKTTYPE, Bpf

__all__ = ["BpfError", "run"]

_M32 = 0xFFFFFFFF


class BpfError(Exception):
    """An instruction this interpreter does not know, or a jump out of the program."""


class _OutOfPacket(Exception):
    pass


def _load(data: bytes, offset: int, size: int) -> int:
    if offset < 0 or offset + size > len(data):
        raise _OutOfPacket
    return int.from_bytes(data[offset : offset + size], "big")


def run(program: Sequence[Bpf], data: bytes, pkttype: int = 0) -> int:
    """The program's return value for ``data``."""
    a = x = 0
    pc = 0
    try:
        while True:
            if not 0 <= pc < len(program):
                raise BpfError(f"pc {pc} outside the program")
            code, jt, jf, k = program[pc]
            pc += 1
            signed_k = k - (1 << 32) if k & 0x80000000 else k
            if code == 0x20:  # LD W ABS
                a = pkttype if signed_k == SKF_AD_PKTTYPE else _load(data, k, 4)
            elif code == 0x28:  # LD H ABS
                a = _load(data, k, 2)
            elif code == 0x30:  # LD B ABS
                a = _load(data, k, 1)
            elif code == 0x48:  # LD H IND
                a = _load(data, x + k, 2)
            elif code == 0xB1:  # LDX B MSH: 4 * (data[k] & 0xf)
                x = (_load(data, k, 1) & 0xF) * 4
            elif code == 0x01:  # LDX IMM
                x = k
            elif code == 0x07:  # TAX
                x = a
            elif code == 0x15:  # JEQ K
                pc += jt if a == k else jf
            elif code == 0x05:  # JA
                pc += k
            elif code == 0x06:  # RET K
                return k
            elif code == 0x16:  # RET A
                return a
            elif code == 0xAC:  # ALU XOR X
                a = (a ^ x) & _M32
            elif code == 0x24:  # ALU MUL K
                a = (a * k) & _M32
            elif code == 0x74:  # ALU RSH K
                a = a >> k
            elif code == 0x54:  # ALU AND K
                a = a & k
            else:
                raise BpfError(f"unknown instruction {code:#x}")
    except _OutOfPacket:
        return 0
