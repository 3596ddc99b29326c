"""Configuration files: ldirectord.cf and the native pylvs.toml, both parsed into :class:`Config`.

:func:`load` picks the parser by the file name (``.toml``) or, failing that, by the content (a TOML
file starts with a table header such as ``[global]`` or ``[[virtual]]``). A bad file raises
:class:`ConfigError` and never yields a partial configuration, so a reload can keep the running one.
"""

from __future__ import annotations

from pathlib import Path

from .ldirectord import load_ldirectord, parse_ldirectord
from .model import Config, ConfigError, FallbackConfig, RealConfig, VirtualConfig
from .native import load_native, parse_native

__all__ = [
    "Config",
    "ConfigError",
    "FallbackConfig",
    "RealConfig",
    "VirtualConfig",
    "load",
    "load_ldirectord",
    "load_native",
    "parse",
    "parse_ldirectord",
    "parse_native",
]


def _looks_like_toml(text: str) -> bool:
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.startswith("[")
    return False


def parse(text: str, filename: str = "<string>") -> Config:
    """Parse text as pylvs.toml if the name ends in .toml or the text looks like TOML, else as
    ldirectord.cf."""
    if filename.endswith(".toml") or _looks_like_toml(text):
        return parse_native(text, filename)
    return parse_ldirectord(text, filename)


def load(path: str | Path) -> Config:
    """Read a configuration file of either format; raise :class:`ConfigError` if it is unusable."""
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
    return parse_ldirectord(text, name)
