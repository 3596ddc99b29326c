"""What pylvsd changed on the host and must put back, kept in a file so that it survives a crash.

pylvsd sets ``net.ipv4.ip_forward`` and ``net.ipv4.conf.all.accept_local`` while a masquerading
real server exists (NFQUEUE backend). A clean stop restores them from memory; after ``kill -9``
nothing runs, so the previous values are also written to
``/run/pylvs/pylvsd-<socket>-<netns cookie>.json`` when they are changed, and
``pylvsd --cleanup`` restores them from there. The namespace cookie (never reused while the system
runs) keeps the files of different namespaces apart.
"""

from __future__ import annotations

import contextlib
import json
import os

from pylvs.io import netcfg

__all__ = ["path", "restore", "save"]

_DIR = "/run/pylvs"


def path(socket_name: str) -> str:
    return os.path.join(_DIR, f"pylvsd-{socket_name}-{netcfg.netns_cookie()}.json")


def save(socket_name: str, sysctls: dict[str, str]) -> None:
    """Record the values to restore (an empty dict removes the file)."""
    target = path(socket_name)
    if not sysctls:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        return
    os.makedirs(_DIR, exist_ok=True)
    tmp = target + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"sysctls": sysctls}, f)
    os.replace(tmp, target)


def restore(socket_name: str) -> dict[str, str]:
    """Put back what a previous pylvsd of this namespace recorded; returns what was restored."""
    target = path(socket_name)
    try:
        with open(target) as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        return {}
    restored: dict[str, str] = {}
    sysctls = data.get("sysctls", {}) if isinstance(data, dict) else {}
    for key, value in sysctls.items() if isinstance(sysctls, dict) else ():
        with contextlib.suppress(OSError, netcfg.NetcfgError):
            netcfg.write_sysctl(str(key), str(value))
            restored[str(key)] = str(value)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)
    return restored
