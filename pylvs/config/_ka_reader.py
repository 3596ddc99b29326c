"""keepalived.conf lexing: files, ``include``, comments, ``$VAR`` definitions, ``@`` lines, and
the ``{ }`` block tree. The rules follow keepalived 2.2.7 ``lib/parser.c``:

* ``decomment``: leading blanks go; ``!`` or ``#`` outside double quotes starts a comment;
  ``\\#`` and ``\\!`` outside quotes are the plain characters.
* ``@ID word...`` is used only when the configuration id is ``ID`` (``-i ID``; none by
  default, so such lines are skipped), ``@^ID word...`` only when it is not.
* ``$NAME=value`` defines a parameter; later ``$NAME`` and ``${NAME}`` are replaced by it.
  keepalived's multi-line definitions, ``${_RANDOM}``-style built-ins, ``~SEQ`` and ``~LST`` are
  not supported (a line using them is reported).
* ``include PATTERN`` reads the files the glob matches, in sorted order; a relative pattern is
  relative to the including file's directory (keepalived changes into that directory). A pattern
  that matches nothing is only logged by keepalived ("Config files missing"); pylvs notes it.
* ``alloc_strvec_r``: words are split at blanks; ``"..."`` is one word without its quotes.
  ``read_line`` splits a line at each ``{`` and ``}`` outside quotes, so ``a { b } c`` is the
  lines ``a``, ``{``, ``b``, ``}``, ``c``; the parser here builds the block tree from them.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .model import ConfigError

__all__ = ["MAX_INCLUDE_DEPTH", "Node", "quoted_escaped", "read_tree"]

# keepalived has no limit but loops forever on a self-include; 32 levels is far beyond any use.
MAX_INCLUDE_DEPTH = 32
# A file of huge lines or millions of lines must not exhaust the director's memory on SIGHUP.
MAX_LINE = 64 * 1024
MAX_FILES = 1000

_DEF_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)")
_USE_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass
class Node:
    """One keyword line and, if a ``{`` followed it, its block."""

    words: list[str]
    file: str
    line: int
    block: list[Node] | None = None
    # The decommented line (None when braces cut it into several nodes): keepalived re-reads
    # script lines from it with quotes and escapes (alloc_strvec_quoted_escaped).
    raw: str | None = None

    @property
    def keyword(self) -> str:
        return self.words[0]


@dataclass
class _Segment:
    words: list[str]
    file: str
    line: int
    raw: str | None = None


def _decomment(text: str, fail: _Fail) -> str:
    """keepalived ``decomment``: strip leading blanks and the comment; keep quotes."""
    text = text.lstrip(" \t")
    out: list[str] = []
    quote = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            quote = not quote
        elif c == "\\" and i + 1 < n:
            if not quote and text[i + 1] in "#!":
                out.append(text[i + 1])
                i += 2
                continue
            out.append(text[i : i + 2])
            i += 2
            continue
        elif not quote and c in "!#":
            break
        out.append(c)
        i += 1
    if quote:
        fail(f"Unterminated quote '{text}'")
    result = "".join(out)
    if result.endswith("\\") and not result.endswith("\\\\"):
        # A trailing backslash stays, glued to the last word (decomment's "cont").
        return result[:-1].rstrip(" \t") + "\\"
    return result.rstrip(" \t")


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_HEX = "0123456789abcdefABCDEF"


def quoted_escaped(text: str) -> list[str] | None:
    """keepalived ``alloc_strvec_quoted_escaped``, how script lines are read (the line, then
    the script string again): words split at blanks; ``"..."`` and ``'...'`` quote (adjacent
    text joins the word); a backslash escapes the next character, inside quotes too (``\\n``,
    ``\\t``, ``\\xHH``, ``\\cX``, ``\\NNN`` octal ...; any other character stands for
    itself). None for an unterminated quote or a trailing backslash (keepalived ignores the
    script)."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\f\v\r\n":
            i += 1
        if i >= n:
            break
        out: list[str] = []
        quote = ""
        while i < n:
            c = text[i]
            if c == "\\":
                i += 1
                if i >= n:
                    return None
                c = text[i]
                if c == "x" and i + 1 < n and text[i + 1] in _HEX:
                    j = i + 1
                    while j < n and text[j] in _HEX:
                        j += 1
                    out.append(chr(int(text[i + 1 : j], 16) & 0xFF))
                    i = j
                elif c == "c" and i + 1 < n:
                    out.append(chr(ord(text[i + 1]) & 0x1F))
                    i += 2
                elif "0" <= c <= "7":
                    j = i
                    while j < n and j < i + 3 and "0" <= text[j] <= "7":
                        j += 1
                    out.append(chr(int(text[i:j], 8) & 0xFF))
                    i = j
                else:
                    out.append(_ESCAPES.get(c, c))
                    i += 1
            elif quote:
                if c == quote:
                    quote = ""
                else:
                    out.append(c)
                i += 1
            elif c in "\"'":
                quote = c
                i += 1
            elif c in " \t\f\v\r\n":
                break
            else:
                out.append(c)
                i += 1
        if quote:
            return None
        words.append("".join(out))
    return words


class _Fail:
    def __init__(self, file: str) -> None:
        self.file = file
        self.line = 0

    def __call__(self, problem: str) -> None:
        raise ConfigError(self.file, self.line, problem)


def _split(text: str, fail: _Fail) -> list[list[str]]:
    """Words of one decommented line, cut into segments at each brace outside quotes."""
    segments: list[list[str]] = []
    words: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t\f\v\r":
            i += 1
        elif c == '"':
            end = text.find('"', i + 1)
            if end < 0:
                fail(f"Unmatched quote: '{text}'")
            words.append(text[i + 1 : end])
            i = end + 1
        elif c in "{}":
            if words:
                segments.append(words)
                words = []
            segments.append([c])
            i += 1
        else:
            start = i
            while i < n and text[i] not in ' \t\f\v\r"{}':
                i += 1
            words.append(text[start:i])
    if words:
        segments.append(words)
    return segments


class _Reader:
    def __init__(self, config_id: str | None) -> None:
        self.config_id = config_id
        self.defs: dict[str, str] = {}
        self.files: list[str] = []
        self.notes: list[str] = []

    def _substitute(self, text: str, fail: _Fail) -> str:
        def value(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            return self.defs.get(name, m.group(0))

        # A definition may use another; bound the rounds so that $A=$A cannot loop.
        for _ in range(8):
            new = _USE_RE.sub(value, text)
            if new == text:
                return new
            text = new
            if len(text) > MAX_LINE:
                fail("Parameter substitution on line would exceed maximum line length")
        return text

    def segments(self, path: str, text: str, depth: int) -> Iterator[_Segment]:
        if len(self.files) >= MAX_FILES:
            raise ConfigError(path, 0, f"more than {MAX_FILES} configuration files")
        self.files.append(path)
        fail = _Fail(path)
        for number, raw in enumerate(text.split("\n"), 1):
            fail.line = number
            if len(raw) > MAX_LINE:
                fail(f"line longer than {MAX_LINE} characters")
            line = _decomment(raw.rstrip("\r"), fail)
            if not line:
                continue
            if line.startswith("@"):
                m = re.match(r"@(\^?)([^ \t]*)[ \t]+(.*)", line)
                if m is None:
                    continue  # keepalived: "We need something after the system_id"
                mismatch = self.config_id is None or m.group(2) != self.config_id
                if mismatch != bool(m.group(1)):
                    continue
                line = m.group(3).strip(" \t")
            if line.startswith("$"):
                m = _DEF_RE.fullmatch(line)
                if m:
                    value = m.group(2).strip(" \t")
                    if value.endswith("\\"):
                        fail("multi-line parameter definitions are not supported by pylvs")
                    self.defs[m.group(1)] = self._substitute(value, fail)
                    continue
            if line.startswith("~SEQ") or line.startswith("~LST"):
                fail("~SEQ and ~LST are not supported by pylvs")
            if "$" in line and self.defs:
                line = _decomment(self._substitute(line, fail), fail)
                if not line:
                    continue
            if re.match(r"include[rmwba]?[ \t]", line):
                pattern = line.split(None, 1)[1].strip()
                yield from self.include(path, number, pattern, depth)
                continue
            parts = _split(line, fail)
            for words in parts:
                yield _Segment(words, path, number, line if len(parts) == 1 else None)

    def include(self, path: str, line: int, pattern: str, depth: int) -> Iterator[_Segment]:
        if depth >= MAX_INCLUDE_DEPTH:
            raise ConfigError(path, line, f"include nesting deeper than {MAX_INCLUDE_DEPTH}")
        if not os.path.isabs(pattern):
            base = os.path.dirname(path) if "/" in path else ""
            pattern = os.path.join(base, pattern) if base else pattern
        names = sorted(glob.glob(pattern))
        if not names:
            # keepalived: log_message "Config files missing" (no configuration error).
            self.notes.append(f"{path}:{line}: Config files missing '{pattern}'.")
            return
        for name in names:
            if os.path.isdir(name):
                continue
            try:
                data = Path(name).read_bytes()
            except OSError:
                raise ConfigError(path, line, f"Unable to read configuration file {name}") from None
            yield from self.segments(name, data.decode("utf-8", errors="replace"), depth + 1)


def read_tree(
    text: str, filename: str, config_id: str | None = None
) -> tuple[list[Node], list[str], list[str]]:
    """Parse ``text`` (the file ``filename``) into its top-level nodes; also return the files
    read and notes (include patterns that matched nothing)."""
    reader = _Reader(config_id)
    root: list[Node] = []
    stack: list[tuple[list[Node], Node | None]] = [(root, None)]
    for seg in reader.segments(filename, text, 0):
        current, _owner = stack[-1]
        if seg.words == ["{"]:
            last = current[-1] if current else None
            if last is None or last.block is not None:
                raise ConfigError(seg.file, seg.line, "Unexpected '{'")
            last.block = []
            stack.append((last.block, last))
        elif seg.words == ["}"]:
            if len(stack) == 1:
                raise ConfigError(seg.file, seg.line, "Extra '}' found")
            stack.pop()
        else:
            current.append(Node(seg.words, seg.file, seg.line, raw=seg.raw))
    if len(stack) > 1:
        missing = len(stack) - 1
        owner = stack[1][1]
        assert owner is not None
        raise ConfigError(
            owner.file,
            owner.line,
            f"There are {missing} missing '}}'s or extra '{{'s (block '{owner.keyword}')",
        )
    return root, reader.files, reader.notes
