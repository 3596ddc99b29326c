"""The two implementations of decrement_ttl (struct on CPython, byte stores on PyPy) agree."""

from __future__ import annotations

import random

from pylvs.core.forward import _decrement_ttl_bytewise, _decrement_ttl_struct
from pylvs.core.packet import parse_frame
from pylvs.testing.packets import frame, tcp


def test_both_decrement_ttl_implementations_agree() -> None:
    rng = random.Random(3)
    raw = bytes(frame(tcp("198.51.100.1", "192.0.2.10", 40000, 80)))
    for ttl in (0, 1, 2, 64, 255):
        for _ in range(40):
            buf = bytearray(raw)
            buf[14 + 8] = ttl
            # Any stored checksum: an incremental update carries its error over unchanged.
            buf[14 + 10 : 14 + 12] = rng.randbytes(2)
            p = parse_frame(buf)
            a, b = bytearray(buf), bytearray(buf)
            assert _decrement_ttl_struct(a, p) == _decrement_ttl_bytewise(b, p) == (ttl > 1)
            assert a == b
            assert (a == buf) == (ttl <= 1)
    six = bytearray(bytes(frame(tcp("2001:db8::1", "2001:db8::10", 1, 80))))
    p6 = parse_frame(six)
    a, b = bytearray(six), bytearray(six)
    assert _decrement_ttl_struct(a, p6) and _decrement_ttl_bytewise(b, p6) and a == b
