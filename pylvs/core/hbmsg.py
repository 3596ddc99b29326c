"""Linux-HA heartbeat 3.0.6 messages as they travel between nodes, and their signatures.

The format is heartbeat's ``msgfmt netstring`` (Debian's default; learned from captures of two
real 3.0.6 nodes, see ``tests/data/heartbeat-3.0.6-ucast-sha1.pcap``). One UDP datagram::

    ###\\n
    11:(0)t=status,10:(0)st=init,9:(0)dt=bb8, ... ,50:(0)auth=1 c27096f7...,
    %%%\\n
    42:1 649ebbd8...,

Between ``###\\n`` and ``%%%\\n`` each field is a netstring ``LEN:(TYPE)name=value,`` where TYPE 0
is a string and 1 binary bytes (``srcuuid``); numbers such as ``seq``, ``hg``, ``ts`` and ``dt``
are hexadecimal strings. Two signatures, both made with the ``authkeys`` method and key:

* the ``auth=N HEX`` field: over the other fields written one per line, ``name=value\\n`` for a
  string, ``(1)name=<base64>\\n`` for binary bytes;
* the trailer, a netstring ``N HEX`` after ``%%%\\n``: over every byte from ``###\\n`` to
  ``%%%\\n`` inclusive.

``md5`` and ``sha1`` are HMACs with the key. The codec is sans-I/O: bytes in, a
:class:`HBMessage` out, and back; :func:`decode` checks the format and, given the keys, both
signatures, and raises :class:`HBMessageError` with the reason for anything else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = [
    "BINARY",
    "STRING",
    "AuthKey",
    "HBMessage",
    "HBMessageError",
    "decode",
    "encode",
]

STRING = 0
BINARY = 1

_START = b"###\n"
_END = b"%%%\n"
_MAX_FIELDS = 256  # heartbeat's MAXMSG is 40,000 bytes; far fewer fields than this in practice
_DIGESTS = {"md5": hashlib.md5, "sha1": hashlib.sha1}


class HBMessageError(ValueError):
    """A datagram that is not a well-formed, correctly signed heartbeat message."""


def _crc_table() -> list[int]:
    # The CRC-32 of POSIX cksum: polynomial 0x04C11DB7, most significant bit first.
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else (c << 1)
        table.append(c & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc(data: bytes) -> str:
    """heartbeat's ``crc`` authentication (HBauth/crc.c): that CRC without the length, inverted,
    in lower-case hex. It proves nothing about the sender: it only catches corruption."""
    c = 0
    for byte in data:
        c = ((c << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((c >> 24) ^ byte) & 0xFF]
    return f"{~c & 0xFFFFFFFF:x}"


class AuthKey:
    """One ``authkeys`` entry: its number, method (``crc``, ``md5`` or ``sha1``) and secret
    (none for ``crc``)."""

    def __init__(self, num: int, method: str, secret: bytes) -> None:
        if method not in _DIGESTS and method != "crc":
            raise ValueError(f"authentication method {method!r} is not supported")
        self.num = num
        self.method = method
        self.secret = secret

    def sign(self, data: bytes) -> str:
        if self.method == "crc":
            return crc(data)
        return hmac.new(self.secret, data, _DIGESTS[self.method]).hexdigest()

    def __repr__(self) -> str:
        return f"AuthKey({self.num}, {self.method!r}, <secret>)"


Field = tuple[str, int, bytes]


class HBMessage:
    """The fields of one message, in order (names may repeat only as heartbeat never does)."""

    def __init__(self, fields: list[Field] | None = None) -> None:
        self.fields: list[Field] = list(fields or [])

    def get(self, name: str) -> str | None:
        """A string field's value, or None."""
        for fname, ftype, value in self.fields:
            if fname == name:
                return value.decode("utf-8", "replace") if ftype == STRING else None
        return None

    def raw(self, name: str) -> bytes | None:
        for fname, _ftype, value in self.fields:
            if fname == name:
                return value
        return None

    def hex(self, name: str) -> int | None:
        """A hexadecimal number field (``seq``, ``hg``, ``ts``, ``dt``), or None."""
        text = self.get(name)
        if text is None:
            return None
        try:
            return int(text, 16)
        except ValueError:
            raise HBMessageError(f"field {name}={text!r} is not a hexadecimal number") from None

    def as_dict(self) -> dict[str, str]:
        """The string fields by name (binary ones as hexadecimal), for logs and tests."""
        return {
            name: value.decode("utf-8", "replace") if ftype == STRING else value.hex()
            for name, ftype, value in self.fields
        }

    def __repr__(self) -> str:
        return f"HBMessage({self.as_dict()!r})"


def _netstring(data: bytes, pos: int) -> tuple[bytes, int]:
    colon = data.find(b":", pos, pos + 7)
    if colon < 0 or not data[pos:colon].isdigit():
        raise HBMessageError(f"bad netstring length at byte {pos}")
    length = int(data[pos:colon])
    start = colon + 1
    end = start + length
    if end >= len(data) or data[end : end + 1] != b",":
        raise HBMessageError(f"netstring at byte {pos} overruns the message or lacks its comma")
    return data[start:end], end + 1


def _auth_text(fields: list[Field]) -> bytes:
    """What the ``auth`` field signs: the other fields, one ``name=value`` line each."""
    out = []
    for name, ftype, value in fields:
        if name == "auth":
            continue
        if ftype == STRING:
            out.append(name.encode() + b"=" + value + b"\n")
        else:
            out.append(b"(%d)" % ftype + name.encode() + b"=" + base64.b64encode(value) + b"\n")
    return b"".join(out)


def _check_signature(text: str, data: bytes, keys: dict[int, AuthKey], what: str) -> None:
    num_text, _, digest = text.partition(" ")
    if not (num_text.isascii() and num_text.isdigit()):
        raise HBMessageError(f"{what} signature {text!r} has no key number")
    key = keys.get(int(num_text))
    if key is None:
        raise HBMessageError(f"{what} signature uses key {num_text}, which authkeys lacks")
    if not hmac.compare_digest(key.sign(data).encode(), digest.encode("utf-8", "replace")):
        raise HBMessageError(f"{what} signature does not match (key {num_text} {key.method})")


def decode(data: bytes, keys: dict[int, AuthKey] | None = None) -> HBMessage:
    """Parse one datagram; with ``keys`` (authkeys by number) both signatures must verify."""
    if not data.startswith(_START):
        raise HBMessageError("not a heartbeat message (no ###)")
    pos = len(_START)
    fields: list[Field] = []
    while not data.startswith(_END, pos):
        if len(fields) >= _MAX_FIELDS:
            raise HBMessageError("too many fields")
        item, pos = _netstring(data, pos)
        if not item.startswith(b"(") or b")" not in item[:4]:
            raise HBMessageError(f"field {item[:20]!r} has no type")
        close = item.index(b")")
        if not item[1:close].isdigit():
            raise HBMessageError(f"field {item[:20]!r} has a bad type")
        ftype = int(item[1:close])
        name, eq, value = item[close + 1 :].partition(b"=")
        if not eq or not name:
            raise HBMessageError(f"field {item[:20]!r} has no name=value")
        if ftype not in (STRING, BINARY):
            raise HBMessageError(f"field {name!r} has type {ftype}, which pylvs does not read")
        try:
            fname = name.decode("ascii")
        except UnicodeDecodeError:
            raise HBMessageError(f"field name {name!r} is not ASCII") from None
        fields.append((fname, ftype, value))
    body_end = pos + len(_END)
    trailer, end = _netstring(data, body_end)
    if end != len(data):
        raise HBMessageError("bytes after the trailer")
    msg = HBMessage(fields)
    if keys is not None:
        auth = msg.get("auth")
        if auth is None:
            raise HBMessageError("unsigned message (no auth field)")
        _check_signature(auth, _auth_text(fields), keys, "auth field")
        _check_signature(trailer.decode("ascii", "replace"), data[:body_end], keys, "trailer")
    return msg


def encode(fields: list[Field], key: AuthKey) -> bytes:
    """A signed datagram of ``fields`` (without ``auth``; it is added last, as heartbeat does)."""
    plain = [f for f in fields if f[0] != "auth"]
    auth = f"{key.num} {key.sign(_auth_text(plain))}".encode()
    parts = [_START]
    for name, ftype, value in [*plain, ("auth", STRING, auth)]:
        item = b"(%d)" % ftype + name.encode() + b"=" + value
        parts.append(b"%d:" % len(item) + item + b",")
    parts.append(_END)
    body = b"".join(parts)
    trailer = f"{key.num} {key.sign(body)}".encode()
    return body + b"%d:" % len(trailer) + trailer + b","
