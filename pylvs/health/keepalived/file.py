"""FILE_CHECK's side of the host (keepalived ``trackers/track_file.c``): reading a track file,
``init_file``, and watching the files with inotify.

A FILE_CHECK never runs on a timer: keepalived watches the directory of each ``track_file``
with inotify (``IN_CLOSE_WRITE | IN_DELETE | IN_MOVE``) and reads the file again as soon as it is
written or moved in; a file deleted or moved away counts as 0. What a value does to the real
server is :meth:`pylvs.health.kakeeper.KaKeeper.file_changed`.

The file holds an integer as C's ``strtol(buf, NULL, 0)`` reads it (leading blanks, a sign,
``0x`` hex or ``0`` octal, then whatever follows is ignored; no digits at all is 0); a value
outside the 32-bit range is logged and ignored, as keepalived does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
import struct
from dataclasses import dataclass

from pylvs.config.kamodel import TrackFile

__all__ = ["Inotify", "TrackFileWatch", "init_track_file", "parse_value", "read_value"]

log = logging.getLogger("pylvs.keepalived")

# <sys/inotify.h>
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_DELETE = 0x00000200
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

_STRTOL_RE = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def parse_value(data: bytes) -> int | None:
    """``strtol(buf, NULL, 0)`` and track_file.c's range check: None for a value keepalived
    ignores (outside INT32_MIN..INT32_MAX+1, or beyond a C long)."""
    m = _STRTOL_RE.match(data)
    if m is None:
        return 0  # no digits: strtol returns 0
    digits = m.group(2)
    if digits[:2].lower() == b"0x":
        value = int(digits[2:], 16)
    elif digits.startswith(b"0"):
        value = int(digits, 8)
    else:
        value = int(digits)
    if m.group(1) == b"-":
        value = -value
    if not LONG_MIN <= value <= LONG_MAX or not INT32_MIN <= value <= INT32_MAX + 1:
        return None
    return value


def read_value(path: str) -> int | None:
    """``process_track_file``: the file's value (0 when it cannot be read or is empty)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        data = os.read(fd, 127)
    except OSError:
        return 0
    finally:
        os.close(fd)
    if not data:
        return 0
    value = parse_value(data)
    if value is None:
        log.info("Invalid number read from %s - ignoring", path)
    return value


def init_track_file(tf: TrackFile, reload: bool) -> None:
    """``track_file_end_handler``'s ``init_file``: write the value when the file does not exist,
    or (``overwrite``) always, except on a reload."""
    if not tf.init_file:
        return
    try:
        st = os.stat(tf.path)
    except OSError:
        st = None
    if st is not None:
        if not tf.init_overwrite:
            return
        if not os.path.isfile(tf.path):
            log.error("Cannot initialise track file %s - it is not a regular file", tf.name)
            return
        if reload:
            return
    try:
        with open(tf.path, "w", encoding="ascii") as f:
            f.write(f"{tf.init_value}\n")
    except OSError:
        log.error("Unable to initialise track file %s", tf.name)


def resolve(tf: TrackFile) -> str | None:
    """``init_track_files``: the file's real path; a missing file is fine when its directory
    exists (None: it does not, and the track file is dropped)."""
    if os.path.exists(tf.path):
        return os.path.realpath(tf.path)
    head, tail = os.path.split(tf.path)
    directory = os.path.realpath(head or ".")
    if not os.path.isdir(directory):
        log.error("Track file directory for %s does not exist - removing", tf.name)
        return None
    return os.path.join(directory, tail)


class Inotify:
    """The three inotify calls, through libc (the standard library has no binding)."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = self.libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd: int = fd

    def add_watch(self, directory: str, mask: int) -> int:
        wd: int = self.libc.inotify_add_watch(self.fd, os.fsencode(directory), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), directory)
        return wd

    def read(self) -> list[tuple[int, int, str]]:
        """The events waiting: (watch descriptor, mask, file name)."""
        out: list[tuple[int, int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            except InterruptedError:
                continue
            pos = 0
            while pos + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
                raw = data[pos + _EVENT.size : pos + _EVENT.size + length]
                out.append((wd, mask, os.fsdecode(raw.rstrip(b"\0"))))
                pos += _EVENT.size + length

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class _Watched:
    name: str
    path: str
    wd: int
    part: str  # the file name within its directory


class TrackFileWatch:
    """The track files of one configuration, watched (``init_track_files``)."""

    def __init__(self, files: list[TrackFile]) -> None:
        self.inotify: Inotify | None = None
        self.files: list[_Watched] = []
        self.values: dict[str, int] = {}  # what was read at start, by track_file name
        for tf in files:
            path = resolve(tf)
            if path is None:
                continue
            if self.inotify is None:
                try:
                    self.inotify = Inotify()
                except OSError as exc:
                    log.error("Unable to monitor track files: %s", exc.strerror)
                    break
            directory, part = os.path.split(path)
            try:
                wd = self.inotify.add_watch(
                    directory, IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
                )
            except OSError as exc:
                log.error("track file %s is not accessible - ignoring (%s)", tf.name, exc.strerror)
                continue
            self.files.append(_Watched(tf.name, path, wd, part))
            value = read_value(path) if os.path.exists(path) else 0
            self.values[tf.name] = value if value is not None else 0

    def fileno(self) -> int | None:
        return self.inotify.fd if self.inotify is not None else None

    def changes(self) -> list[tuple[str, int]]:
        """``process_inotify``: (track_file name, new value) for each event on a watched file."""
        if self.inotify is None:
            return []
        out: list[tuple[str, int]] = []
        for wd, mask, name in self.inotify.read():
            if mask & IN_ISDIR:
                continue
            for w in self.files:
                if w.wd != wd or w.part != name:
                    continue
                if mask & (IN_MOVED_FROM | IN_DELETE):
                    out.append((w.name, 0))  # the file has disappeared: its value is 0
                elif mask & (IN_MOVED_TO | IN_CLOSE_WRITE):
                    value = read_value(w.path)
                    if value is not None:
                        out.append((w.name, value))
        return out

    def close(self) -> None:
        if self.inotify is not None:
            self.inotify.close()
            self.inotify = None
