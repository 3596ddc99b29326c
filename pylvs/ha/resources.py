"""The resources of haresources, started, stopped and asked about as heartbeat's ResourceManager
does (``acquireresourcegroup``, ``giveupresourcegroup``, ``we_own_resource``).

* ``IPaddr``/``IPaddr2`` and a bare address: :class:`pylvs.ha.ipaddr.IPaddr2`.
* ``ldirectord::FILE``: this pylvsd loads FILE's virtual services and health checks (heartbeat's
  ``resource.d/ldirectord FILE start`` starts an ldirectord on it); a relative FILE is looked up
  in the ha.d directory, then in its ``conf/`` (as ldirectord does in /etc/ha.d).
* ``LVSSyncDaemonSwap::master|backup``: the connection sync daemons follow the resource:
  start = stop the backup daemon and start the master one, stop = the reverse (heartbeat 2's
  ``resource.d/LVSSyncDaemonSwap``).
* Anything else: ``resource.d/NAME`` of the ha.d directory, else ``/etc/init.d/NAME``, run with
  the resource's arguments and ``start``, ``stop`` or ``status``; ``status`` output with
  "running" or "OK" (and not "not running") means held, as ``we_own_resource`` reads it.

A group is taken left to right, a resource already held is left alone; a failed start gives the
group up again ("CRIT: Giving up resources due to failure of ..."). A group is given up right
to left; a stop that fails is logged and the next resource is stopped all the same.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pylvs.config.heartbeat import Resource, ResourceGroup, parse_ipaddr_arg
from pylvs.ha.ipaddr import IPaddr2
from pylvs.io import garp

__all__ = ["Agent", "DirectorHooks", "GroupRunner", "ResourceError", "make_agent"]

log = logging.getLogger("pylvs.ha")

SCRIPT_TIMEOUT = 60.0


class ResourceError(Exception):
    """A resource could not be started, stopped or asked about."""


class Agent(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def running(self) -> bool: ...


class DirectorHooks(Protocol):
    """What the daemon does for resources that live inside pylvsd (run on its main loop)."""

    def load_ldirectord(self, path: str) -> None: ...
    def unload_ldirectord(self, path: str) -> None: ...
    def ldirectord_loaded(self, path: str) -> bool: ...
    def sync_swap(self, role: str, action: str) -> None: ...
    def sync_running(self, role: str) -> bool: ...


@dataclass
class _IPAgent:
    ip: IPaddr2
    arp: BackgroundArp | None = None

    def start(self) -> None:
        self.ip.start()

    def stop(self) -> None:
        if self.arp is not None:
            self.arp.cancel(self.ip.spec.ip)
        self.ip.stop()

    def running(self) -> bool:
        return self.ip.status() == "running"


@dataclass
class _LdirectordAgent:
    path: str
    hooks: DirectorHooks

    def start(self) -> None:
        self.hooks.load_ldirectord(self.path)

    def stop(self) -> None:
        self.hooks.unload_ldirectord(self.path)

    def running(self) -> bool:
        return self.hooks.ldirectord_loaded(self.path)


@dataclass
class _SyncSwapAgent:
    role: str
    hooks: DirectorHooks

    def start(self) -> None:
        self.hooks.sync_swap(self.role, "start")

    def stop(self) -> None:
        self.hooks.sync_swap(self.role, "stop")

    def running(self) -> bool:
        return self.hooks.sync_running(self.role)


_NOT_RUNNING = re.compile(r"not\s.*running", re.IGNORECASE)
_RUNNING = re.compile(r"running|OK", re.IGNORECASE)


@dataclass
class _ScriptAgent:
    script: str
    args: tuple[str, ...]

    def _run(self, action: str) -> subprocess.CompletedProcess[str]:
        argv = [self.script, *self.args, action]
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ResourceError(f"{' '.join(argv)}: {exc}") from None

    def start(self) -> None:
        done = self._run("start")
        if done.returncode != 0:
            raise ResourceError(f"Return code {done.returncode} from {self.script}")

    def stop(self) -> None:
        done = self._run("stop")
        if done.returncode != 0:
            raise ResourceError(f"Return code {done.returncode} from {self.script}")

    def running(self) -> bool:
        out = self._run("status").stdout
        return bool(_RUNNING.search(out)) and not _NOT_RUNNING.search(out)


def _find_file(ha_dir: str, name: str) -> str:
    if os.path.isabs(name):
        return name
    for base in (Path(ha_dir), Path(ha_dir) / "conf"):
        if (base / name).exists():
            return str(base / name)
    return str(Path(ha_dir) / name)


class BackgroundArp:
    """IPaddr2 runs ``send_arp`` in the background (its 5 requests and 5 replies take a
    second), so the group goes on with its next resource at once; its stop kills a running
    ``send_arp``, so a node that gave the address up stops announcing it."""

    def __init__(self) -> None:
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def announce(self, iface: str, ip: str) -> int:
        cancel = threading.Event()
        with self._lock:
            old = self._running.pop(ip, None)
            if old is not None:
                old.set()
            self._running[ip] = cancel

        six = ":" in ip  # IPv6: send_ua's unsolicited neighbour advertisements
        what = "unsolicited neighbour advertisements" if six else "gratuitous ARP frames"

        def send() -> None:
            try:
                if six:
                    sent = garp.announce_na(iface, ip, cancel=cancel)
                else:
                    sent = garp.announce(iface, ip, cancel=cancel)
                log.info("IPaddr2: %d %s sent for %s on %s", sent, what, ip, iface)
            except (OSError, ValueError) as exc:
                log.error("IPaddr2: %s for %s on %s: %s", what, ip, iface, exc)
            finally:
                with self._lock:
                    if self._running.get(ip) is cancel:
                        del self._running[ip]

        threading.Thread(target=send, name=f"send_arp {ip}", daemon=True).start()
        return 0

    def cancel(self, ip: str) -> None:
        with self._lock:
            event = self._running.pop(ip, None)
        if event is not None:
            event.set()


def make_agent(
    resource: Resource,
    ha_dir: str,
    hooks: DirectorHooks | None,
    announce: Callable[[str, str], int] | None = None,
    arp: BackgroundArp | None = None,
) -> Agent:
    """The agent that starts, stops and looks at one resource."""
    if resource.name in ("IPaddr", "IPaddr2", "IPv6addr"):
        if len(resource.args) > 1 and ":" in resource.args[0]:
            # ResourceManager turns every "::" into an argument break, so heartbeat itself
            # cannot take such an address: say so rather than configure half of it.
            raise ResourceError(
                f"{resource}: an IPv6 address written with '::' is split by heartbeat at the "
                "'::' (resource arguments are separated by '::'): write it in full, "
                "e.g. 2001:db8:0:0:0:0:0:100/64/eth0"
            )
        if not resource.args:
            raise ResourceError(f"{resource.name} needs an address")
        try:
            spec = parse_ipaddr_arg(resource.args[0])
        except ValueError as exc:
            raise ResourceError(f"{resource}: {exc}") from None
        if announce is not None:
            return _IPAgent(IPaddr2(spec, announce=announce))
        arp = arp or BackgroundArp()
        return _IPAgent(IPaddr2(spec, announce=arp.announce), arp)
    if resource.name == "ldirectord" and hooks is not None:
        name = resource.args[0] if resource.args else "ldirectord.cf"
        return _LdirectordAgent(_find_file(ha_dir, name), hooks)
    if resource.name == "LVSSyncDaemonSwap" and hooks is not None:
        role = resource.args[0] if resource.args else ""
        if role not in ("master", "backup"):
            raise ResourceError(f"LVSSyncDaemonSwap needs master or backup: {resource}")
        return _SyncSwapAgent(role, hooks)
    for base in (Path(ha_dir) / "resource.d", Path("/etc/init.d")):
        script = base / resource.name
        if script.is_file() and os.access(script, os.X_OK):
            return _ScriptAgent(str(script), resource.args)
    raise ResourceError(f"Cannot locate resource script {resource.name}")


class GroupRunner:
    """Takes and gives up haresources groups (ResourceManager's takegroup/givegroup/status)."""

    def __init__(
        self,
        groups: Sequence[ResourceGroup],
        ha_dir: str,
        hooks: DirectorHooks | None = None,
        announce: Callable[[str, str], int] | None = None,
    ) -> None:
        self.groups = {g.key: g for g in groups}
        self.agents: dict[str, list[tuple[str, Agent]]] = {}
        self.arp = BackgroundArp()
        for group in groups:
            self.agents[group.key] = [
                (str(r), make_agent(r, ha_dir, hooks, announce, self.arp)) for r in group.resources
            ]

    def running(self, key: str) -> bool:
        """``ResourceManager status KEY``: whether the group's first resource is held."""
        agents = self.agents.get(key)
        if not agents:
            return False
        try:
            return agents[0][1].running()
        except Exception as exc:
            log.error("status of %s: %s", agents[0][0], exc)
            return False

    def take(self, key: str) -> None:
        agents = self.agents.get(key, [])
        log.info("info: Acquiring resource group: %s", self._line(key))
        for name, agent in agents:
            try:
                if agent.running():
                    continue
                log.info("info: Running %s start", name)
                agent.start()
            except Exception as exc:
                log.error("ERROR: %s: %s", name, exc)
                log.critical("CRIT: Giving up resources due to failure of %s", name)
                self.give(key)
                return

    def give(self, key: str) -> None:
        agents = self.agents.get(key, [])
        log.info("info: Releasing resource group: %s", self._line(key))
        for name, agent in reversed(agents):
            try:
                log.info("info: Running %s stop", name)
                agent.stop()
            except Exception as exc:
                log.error("ERROR: %s stop: %s", name, exc)

    def _line(self, key: str) -> str:
        group = self.groups.get(key)
        if group is None:
            return key
        return " ".join([group.node, *(str(r) for r in group.resources)])
