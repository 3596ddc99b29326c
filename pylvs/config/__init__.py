"""Configuration files: ldirectord.cf, the native pylvs.toml and keepalived.conf, all parsed into
:class:`Config`.

:func:`load` picks the parser by the file name (``.toml``) or, failing that, by the content (a TOML
file starts with a table header such as ``[global]`` or ``[[virtual]]``; a keepalived.conf with one
of its top-level keywords such as ``global_defs``, ``virtual_server`` or ``vrrp_instance``). A bad
file raises :class:`ConfigError` and never yields a partial configuration, so a reload can keep the
running one.
"""

from __future__ import annotations

from pathlib import Path

from .keepalived import load_keepalived, looks_like_keepalived, parse_keepalived
from .ldirectord import load_ldirectord, parse_ldirectord
from .model import Config, ConfigError, FallbackConfig, RealConfig, VirtualConfig
from .native import load_native, parse_native

__all__ = [
    "Config",
    "ConfigError",
    "FallbackConfig",
    "RealConfig",
    "VirtualConfig",
    "file_format",
    "load",
    "load_keepalived",
    "load_ldirectord",
    "load_native",
    "parse",
    "parse_keepalived",
    "parse_ldirectord",
    "parse_native",
]


def _looks_like_toml(text: str) -> bool:
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.startswith("[")
    return False


def _format_of(text: str, filename: str) -> str:
    if filename.endswith(".toml") or _looks_like_toml(text):
        return "pylvs.toml"
    if looks_like_keepalived(text):
        return "keepalived.conf"
    return "ldirectord.cf"


def file_format(path: str | Path) -> str:
    """Which parser :func:`load` uses for ``path``: ``pylvs.toml``, ``keepalived.conf`` or
    ``ldirectord.cf`` (an unreadable file counts as ldirectord.cf; :func:`load` reports it)."""
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except OSError:
        text = ""
    return _format_of(text, str(path))


def parse(text: str, filename: str = "<string>") -> Config:
    """Parse text as pylvs.toml if the name ends in .toml or the text looks like TOML, as
    keepalived.conf if it starts with a keepalived keyword, else as ldirectord.cf. Includes of a
    keepalived.conf are relative to ``filename``'s directory."""
    kind = _format_of(text, filename)
    if kind == "pylvs.toml":
        return parse_native(text, filename)
    if kind == "keepalived.conf":
        return parse_keepalived(text, filename)
    return parse_ldirectord(text, filename)


def load(path: str | Path) -> Config:
    """Read a configuration file of any of the three formats; raise :class:`ConfigError` if it is
    unusable."""
    name = str(path)
    if name.endswith(".toml"):
        return load_native(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(name, 0, f"can not open file {name}: {exc.strerror}") from None
    text = data.decode("utf-8", errors="replace")
    if _looks_like_toml(text):
        return load_native(path)
    if looks_like_keepalived(text):
        return parse_keepalived(text, name)
    return parse_ldirectord(text, name)
