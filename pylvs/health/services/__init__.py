"""ldirectord's ``negotiate`` checks, one module per service (``service=`` in ldirectord.cf).

Each module has ``check(target, timeout) -> str`` (see :mod:`pylvs.health.check`). Modules are
imported when a check first needs them, so a client library that is not installed only matters to
the services that use it, and then as a clear reason rather than an import error at start.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from pylvs.health.check import CheckFailed, CheckTarget

__all__ = ["MODULES", "negotiate"]

# ldirectord service -> the module of this package that checks it.
MODULES = {
    "http": "http",
    "https": "http",
    "http_proxy": "http",
    "smtp": "smtp",
    "submission": "smtp",
    "pop": "pop",
    "pops": "pop",
    "imap": "imap",
    "imaps": "imap",
    "ftp": "ftp",
    "dns": "dns",
    "ldap": "ldap",
    "ldaps": "ldap",
    "nntp": "nntp",
    "sip": "sip",
    "radius": "radius",
    "simpletcp": "simpletcp",
    "mysql": "sql",
    "pgsql": "sql",
    "oracle": "sql",
    "none": "none",
}


def _load(service: str) -> Callable[[CheckTarget, float], str]:
    name = MODULES.get(service)
    if name is None:
        raise CheckFailed(f"unknown service {service!r}")
    module = importlib.import_module(f"{__name__}.{name}")
    check: Callable[[CheckTarget, float], str] = module.check
    return check


def negotiate(target: CheckTarget, timeout: float) -> str:
    """Run the negotiate check of ``target.service``."""
    return _load(target.service)(target, timeout)
