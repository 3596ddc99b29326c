"""Bring a lab scenario up and down, and report on it.

``up`` builds the network (:mod:`pylvs.lab.builder`), prepares the real servers with
:mod:`pylvs.realserver`, and starts the lab's programs inside the namespaces, each in its own
session so that it outlives the command: the HTTP/UDP echo servers on the real servers, the
userspace IPIP decapsulator on TUN real servers, and pylvsd on every director (the standby too,
with the same configuration but without the VIP). Every pid is written to the state file
(:mod:`pylvs.lab.state`) as soon as the process exists.

With a heartbeat directory (``heartbeat = "farm.ha"``) the directors are a heartbeat cluster:
each pylvsd runs with ``--ha`` (a copy of the directory in the lab's run directory, authkeys mode
600) and a backup connection sync daemon, the active director first, and heartbeat puts the VIP
on one of them. With a keepalived directory (``keepalived = "farmka.keepalived"``) each director
runs ``pylvsd --config <its keepalived.conf>`` instead, the preferred one (highest priority)
first, and VRRP elects the master that holds the VIP; the file's ``lvs_sync_daemon`` makes
pylvsd run the connection sync daemon that fits its VRRP state. :func:`fail` then makes a
director fail (``kill``: kill -9 of its pylvsd, the VIP left on it as a crashed heartbeat or
keepalived leaves it; ``term``: SIGTERM, a clean stop that hands the VIP over; ``link``: its
cables pulled, a partition) and :func:`heal` brings it back.

``down`` stops those processes by pid, then any other process still inside one of the lab's
namespaces (whatever runs there was started in the lab: by ``pylvs lab exec``, or a pylvsd that
``pylvsadm`` started), then deletes the namespaces, which takes their veths, bridges, addresses,
routes and iptables rules with them. It works from the prefix alone when the state file is gone or
the build crashed half-way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pylvs import realserver
from pylvs.core.control import DaemonSpec, IPVSError
from pylvs.ctl import ControlClient
from pylvs.io import netcfg
from pylvs.lab.builder import SWITCH, build_network, namespaces
from pylvs.lab.state import (
    LabState,
    ProcessRecord,
    check_prefix,
    lab_run_dir,
    load_state,
    remove_run_dir,
    save_state,
)
from pylvs.lab.topology import Node, Scenario, VrrpSetup, load_scenario
from pylvs.testing.netns import Lab, TimeoutExpired, wait_until

__all__ = [
    "DIRECTOR_FAILURES",
    "SYNC_ID",
    "DirectorView",
    "DownReport",
    "FailResult",
    "HealResult",
    "LabError",
    "NodeStatus",
    "cluster_view",
    "down",
    "exec_argv",
    "fail",
    "heal",
    "lab_namespaces",
    "lab_pids",
    "node_netns",
    "pylvsadm_argv",
    "repair",
    "running_scenario",
    "status",
    "up",
    "vip_holders",
]

_NETNS_DIR = "/run/netns"
_START_TIMEOUT = 20.0
_HA_TIMEOUT = 30.0  # heartbeat: start-up (initdead 2 s), takeover, failback, partition restart
SYNC_ID = 1  # the connection sync daemons' syncid with heartbeat


class LabError(Exception):
    """The lab cannot do what was asked; the message says why."""


def node_netns(prefix: str, node: str) -> str:
    return prefix + node


def lab_namespaces(prefix: str) -> list[str]:
    """The namespaces whose name starts with ``prefix`` (what a lab with that prefix made)."""
    try:
        return sorted(n for n in os.listdir(_NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def _ns_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def lab_pids(prefix: str) -> dict[int, str]:
    """Every process inside one of the lab's namespaces -> that namespace's name.

    A namespace is identified by the device and inode of its nsfs file; ``/proc/PID/ns/net`` of a
    process in it has the same pair.
    """
    ids = {}
    for name in lab_namespaces(prefix):
        ident = _ns_id(os.path.join(_NETNS_DIR, name))
        if ident is not None:
            ids[ident] = name
    found: dict[int, str] = {}
    if not ids:
        return found
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ident = _ns_id(f"/proc/{entry}/ns/net")
            if ident in ids:
                found[int(entry)] = ids[ident]
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _stop_pids(pids: list[int], timeout: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL what is left after ``timeout``; returns the pids signalled."""
    signalled = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)  # a frozen one (pylvs lab fail --hang) must run to exit
            signalled.append(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in signalled):
        time.sleep(0.05)
    for pid in signalled:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return signalled


# -- up -------------------------------------------------------------------------------------


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def pylvsadm_argv() -> list[str]:
    """The venv's ``pylvsadm`` (or ``python -m pylvs.cli.pylvsadm``)."""
    here = os.path.join(os.path.dirname(sys.executable), "pylvsadm")
    return [here] if os.access(here, os.X_OK) else _python("-m", "pylvs.cli.pylvsadm")


def _start(lab: Lab, state: LabState, node: str, what: str, argv: list[str]) -> ProcessRecord:
    log = lab_run_dir(state.prefix) / f"{node}-{what}.log"
    with log.open("w") as out:
        proc = lab.popen(
            node,
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own session: the process outlives `pylvs lab up` and ignores the terminal's ^C.
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    rec = ProcessRecord(node=node, what=what, pid=proc.pid, argv=argv, log=str(log))
    state.processes.append(rec)
    save_state(state)
    return rec


def _wait_log(rec: ProcessRecord, text: str) -> None:
    def ready() -> bool:
        content = Path(rec.log).read_text(errors="replace")
        if text in content:
            return True
        if not _alive(rec.pid):
            raise LabError(f"{rec.what} on {rec.node} exited: {content.strip()[-500:]}")
        return False

    try:
        wait_until(ready, timeout=_START_TIMEOUT, interval=0.05, what=f"{rec.what} on {rec.node}")
    except TimeoutExpired as exc:
        raise LabError(str(exc)) from None


def _wait_answers(lab: Lab, rec: ProcessRecord) -> None:
    """Until pylvsd answers on its control socket (its heartbeat, if any, has started)."""

    def ready() -> bool:
        if not _alive(rec.pid):
            log = Path(rec.log).read_text(errors="replace").strip()
            raise LabError(f"pylvsd on {rec.node} exited: {log[-500:]}")
        try:
            with lab.inside(rec.node), ControlClient(timeout=2.0) as ctl:
                return ctl.ping()
        except OSError:
            return False

    try:
        wait_until(ready, timeout=_START_TIMEOUT, interval=0.02, what=f"pylvsd on {rec.node}")
    except TimeoutExpired as exc:
        raise LabError(str(exc)) from None


def _wait_pylvsd(lab: Lab, rec: ProcessRecord) -> None:
    """Until pylvsd answers and its health checks' first pass is over (ldirectord's start:
    the real servers that answer are in the table by then)."""

    def ready() -> bool:
        if not _alive(rec.pid):
            log = Path(rec.log).read_text(errors="replace").strip()
            raise LabError(f"pylvsd on {rec.node} exited: {log[-500:]}")
        try:
            with lab.inside(rec.node), ControlClient(timeout=2.0) as ctl:
                health = ctl.status()["components"].get("health", {})
                return bool(health.get("daemon_status", "running") == "running")
        except OSError:
            return False

    try:
        wait_until(ready, timeout=_START_TIMEOUT, interval=0.05, what=f"pylvsd on {rec.node}")
    except TimeoutExpired as exc:
        raise LabError(str(exc)) from None


def _prepare_realserver(lab: Lab, state: LabState, scenario: Scenario, node: Node) -> None:
    """``pylvs realserver`` on ``node``: in this process for dr and nat, as a process for tun."""
    with lab.inside(node.name):
        state.realserver_files.append(realserver.state_path())
    save_state(state)
    if scenario.method == "tun":
        argv = _python(
            "-m", "pylvs.cli.pylvs", "realserver", "--vip", scenario.vip, "--mode", "tun"
        )
        _start(lab, state, node.name, "decap", argv)
        return
    with lab.inside(node.name):
        try:
            realserver.setup(scenario.vip, scenario.method, node.gateway)
        except realserver.RealServerError as exc:
            raise LabError(f"{node.name}: {exc}") from None


def up(scenario_name: str, prefix: str) -> LabState:
    """Build and start ``scenario_name``; on any failure everything built so far is removed."""
    check_prefix(prefix)
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, veths, iptables)")
    scenario = load_scenario(scenario_name)
    existing = load_state(prefix)
    if existing is not None or lab_namespaces(prefix):
        what = f"scenario {existing.scenario!r}" if existing else "leftover namespaces"
        raise LabError(
            f"a lab with prefix {prefix!r} is already up ({what}): run `pylvs lab down` first"
        )
    state = LabState(
        prefix=prefix,
        scenario=scenario.name,
        scenario_path=str(scenario.path.resolve()),
        namespaces=namespaces(scenario, prefix),
    )
    # Saved before anything is built: a crash from here on leaves a state file down can use.
    save_state(state)
    lab = Lab(prefix=prefix)
    try:
        build_network(lab, scenario)
        pending: list[tuple[ProcessRecord, str]] = []
        for node in scenario.by_role("realserver"):
            _prepare_realserver(lab, state, scenario, node)
            argv = _python("-m", "pylvs.lab.servers", "--name", node.name)
            if scenario.family == 6:
                argv.append("--ipv6")
            argv += [a for port in node.http for a in ("--http", str(port))]
            argv += [a for port in node.udp_echo for a in ("--udp-echo", str(port))]
            pending.append((_start(lab, state, node.name, "servers", argv), "ready"))
        directors = []
        if not scenario.vip_by_ha:
            for node in scenario.by_role("director"):
                argv = _pylvsd_argv(scenario, state, node)
                directors.append(_start(lab, state, node.name, "pylvsd", argv))
        for rec in state.processes:
            if rec.what == "decap":
                _wait_log(rec, "decapsulating")
        for rec, text in pending:
            _wait_log(rec, text)
        for rec in directors:
            _wait_pylvsd(lab, rec)
        if scenario.heartbeat is not None:
            _start_cluster(lab, state, scenario)
        if scenario.keepalived is not None:
            _start_vrrp_cluster(lab, state, scenario)
        state.ready = True
        save_state(state)
    except BaseException:
        with contextlib.suppress(Exception):
            down(prefix)
        raise
    return state


# -- the heartbeat cluster of the directors -------------------------------------------------


def _pylvsd_argv(scenario: Scenario, state: LabState, node: Node) -> list[str]:
    config = scenario.config_of(node)  # its keepalived.conf, or the scenario's pylvs.toml
    argv = _python("-m", "pylvs.cli.pylvsd", "--foreground", "--config", str(config))
    if scenario.heartbeat is not None:
        hastate = lab_run_dir(state.prefix) / f"{node.name}-hastate"
        argv += ["--ha", state.ha_dir, "--ha-node", node.name, "--ha-state", str(hastate)]
    return argv


def _copy_ha_dir(state: LabState, scenario: Scenario) -> None:
    """The lab's copy of the heartbeat directory: heartbeat refuses an authkeys file that others
    may read, and git does not keep the mode of the one in netns-lab/."""
    assert scenario.heartbeat is not None
    dest = lab_run_dir(state.prefix) / "ha.d"
    shutil.copytree(scenario.heartbeat, dest)
    os.chmod(dest / "authkeys", 0o600)
    state.ha_dir = str(dest)
    save_state(state)


def _directors_in_order(scenario: Scenario) -> list[Node]:
    """The active director (haresources' preferred node) first."""
    return sorted(scenario.by_role("director"), key=lambda n: n.standby)


def _start_sync_backup(state: LabState, scenario: Scenario, node: Node, rec: ProcessRecord) -> None:
    """A backup connection sync daemon on ``node``, what ``pylvsadm --start-daemon backup
    --mcast-interface eth0 --syncid 1`` starts, as an administrator starts it before heartbeat:
    LVSSyncDaemonSwap::master swaps it for a master with the same interface and syncid on the
    node that takes the VIP (and starts a master with the defaults, eth0 and syncid 0, when no
    backup runs).

    It must be running before heartbeat acquires the group, which a director joining a cluster
    that holds its group does a few tens of milliseconds after pylvsd's loop starts: so the
    request is sent through the control socket the moment it accepts connections, during
    pylvsd's start-up, and pylvsd answers it in its loop's first turns. ``pylvsadm`` itself,
    a new Python process, would come too late."""
    iface = scenario.vip_interface_of(node)
    assert iface is not None  # the loader checks every director is on the VIP's LAN
    spec = DaemonSpec(state="backup", mcast_ifn=iface.name, syncid=SYNC_ID)

    def started() -> bool:
        if not _alive(rec.pid):
            log = Path(rec.log).read_text(errors="replace").strip()
            raise LabError(f"pylvsd on {node.name} exited: {log[-500:]}")
        try:
            with _control(state.prefix, node.name, timeout=_START_TIMEOUT) as ctl:
                ctl.start_daemon(spec)
        except (ConnectionRefusedError, FileNotFoundError):
            return False  # not listening yet
        except (OSError, IPVSError) as exc:
            raise LabError(f"backup sync daemon on {node.name}: {exc}") from None
        return True

    try:
        wait_until(started, timeout=_START_TIMEOUT, interval=0.005, what=f"pylvsd on {node.name}")
    except TimeoutExpired as exc:
        raise LabError(str(exc)) from None
    args = ["--start-daemon", "backup", "--mcast-interface", iface.name, "--syncid", str(SYNC_ID)]
    state.sync_daemons[node.name] = " ".join(["pylvsadm", *args])
    save_state(state)


def _start_director(lab: Lab, state: LabState, scenario: Scenario, node: Node) -> ProcessRecord:
    """pylvsd --ha on ``node`` and, as soon as it listens, its backup sync daemon; with
    keepalived, pylvsd --config <its keepalived.conf>, which starts the sync daemon itself."""
    rec = _start(lab, state, node.name, "pylvsd", _pylvsd_argv(scenario, state, node))
    if scenario.heartbeat is not None:
        _start_sync_backup(state, scenario, node, rec)
    _wait_pylvsd(lab, rec)
    return rec


def _start_cluster(lab: Lab, state: LabState, scenario: Scenario) -> None:
    """The directors one after the other, the preferred node first: it takes the VIP alone once
    initdead has passed, and the others join a cluster that already has it."""
    _copy_ha_dir(state, scenario)
    first, *others = _directors_in_order(scenario)
    _start_director(lab, state, scenario, first)
    _wait_cluster(
        state.prefix,
        scenario,
        lambda views: views[0].holds_vip,
        f"{first.name} to take the VIP",
        only=[first.name],
    )
    for node in others:
        _start_director(lab, state, scenario, node)
    _wait_cluster(state.prefix, scenario, _settled(scenario), "the directors to see each other")


def _start_vrrp_cluster(lab: Lab, state: LabState, scenario: Scenario) -> None:
    """The directors of a keepalived lab one after the other, the highest priority first: alone,
    it becomes MASTER once its master down interval has passed; the others then start as
    BACKUP, hear its advertisements and stay BACKUP. (Started together, each would be MASTER
    for an interval before the election settles: ha-peers.md saw it with keepalived.)"""
    first, *others = _directors_in_order(scenario)
    _start_director(lab, state, scenario, first)
    _wait_cluster(
        state.prefix,
        scenario,
        lambda views: views[0].vrrp_state == "MASTER" and views[0].holds_vip,
        f"{first.name} to become VRRP MASTER",
        only=[first.name],
    )
    for node in others:
        _start_director(lab, state, scenario, node)
    _wait_cluster(state.prefix, scenario, _settled(scenario), "the VRRP election to settle")


@dataclass
class DirectorView:
    """One director of a heartbeat or keepalived lab as its pylvsd and its interfaces tell it."""

    node: str
    answering: bool = False
    # keepalived labs: the VIP's vrrp_instance as pylvsd's ``vrrp-status`` reports it
    vrrp_state: str = ""  # MASTER, BACKUP, FAULT, INIT, STOP
    priority: int = 0  # configured
    effective_priority: int = 0  # with the trackers' weights
    master: str = ""  # the master's address as this node knows it
    # heartbeat labs
    status: str = ""  # this node's heartbeat status (active, ...)
    peers: dict[str, str] = field(default_factory=dict)  # other node -> status seen from here
    links: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> medium -> up|dead
    resources: str = ""  # all, local, foreign, none, transition
    generation: int = 0
    holds_vip: bool = False
    daemons: list[tuple[str, str, int]] = field(default_factory=list)  # state, ifname, syncid
    error: str = ""

    def describe(self) -> str:
        if not self.answering:
            vip = "; VIP still configured" if self.holds_vip else ""
            why = f" ({self.error})" if self.error else ""
            return f"{self.node}: pylvsd not answering{why}{vip}"
        if self.vrrp_state == "MISSING":
            return f"{self.node}: {self.error}"
        peers = ", ".join(f"{n} {s}" for n, s in self.peers.items())
        sync = ", ".join(f"{st} ({ifn}, syncid {sid})" for st, ifn, sid in self.daemons) or "none"
        if self.vrrp_state:
            return (
                f"{self.node}: VRRP {self.vrrp_state} (priority {self.priority}, effective "
                f"{self.effective_priority}, master {self.master or 'unknown'}), "
                f"{'holds' if self.holds_vip else 'no'} VIP; sync daemons {sync}"
            )
        return (
            f"{self.node}: heartbeat {self.status} (generation {self.generation}), resources "
            f"{self.resources}, {'holds' if self.holds_vip else 'no'} VIP; sees {peers}; "
            f"sync daemons {sync}"
        )


@contextlib.contextmanager
def _control(prefix: str, node: str, timeout: float = 2.0) -> Iterator[ControlClient]:
    with netcfg.in_netns(node_netns(prefix, node)), ControlClient(timeout=timeout) as ctl:
        yield ctl


def _holds(prefix: str, node: str, vip: str) -> bool:
    try:
        with netcfg.in_netns(node_netns(prefix, node)):
            return bool(netcfg.interfaces_with(vip))
    except (OSError, netcfg.NetcfgError):
        return False


def vip_holders(prefix: str, scenario: Scenario) -> list[str]:
    """The directors that have the VIP on an interface (two during a partition)."""
    return [n.name for n in scenario.by_role("director") if _holds(prefix, n.name, scenario.vip)]


def cluster_view(
    prefix: str, scenario: Scenario, only: list[str] | None = None
) -> list[DirectorView]:
    """Every director's heartbeat (or VRRP) and sync daemons as its pylvsd reports them
    (``ha-status`` or ``vrrp-status``, ``daemons``), and whether the VIP is on it."""
    views = []
    request = "vrrp-status" if scenario.keepalived is not None else "ha-status"
    for node in _directors_in_order(scenario):
        if only is not None and node.name not in only:
            continue
        view = DirectorView(node.name, holds_vip=_holds(prefix, node.name, scenario.vip))
        try:
            with _control(prefix, node.name) as ctl:
                st: dict[str, Any] = ctl.request(request)
                daemons = ctl.daemons()
        except (OSError, ValueError, IPVSError, netcfg.NetcfgError) as exc:
            view.error = str(exc)  # not running, or running without --ha / VRRP
            views.append(view)
            continue
        view.answering = True
        view.daemons = [(d.state, d.mcast_ifn, d.syncid) for d in daemons]
        if scenario.vrrp is not None:
            _fill_vrrp(view, st, scenario.vrrp.instance)
            views.append(view)
            continue
        view.status = str(st.get("status", ""))
        view.generation = int(st.get("generation", 0))
        view.resources = str(st.get("resources", {}).get("state", ""))
        for name, info in st.get("nodes", {}).items():
            if name != node.name:
                view.peers[name] = str(info.get("status", ""))
                view.links[name] = dict(info.get("links", {}))
        views.append(view)
    return views


def _fill_vrrp(view: DirectorView, st: dict[str, Any], instance: str) -> None:
    """The VIP's instance of a ``vrrp-status`` answer into ``view`` (see pylvs vrrp status)."""
    info = st.get("instances", {}).get(instance)
    if not isinstance(info, dict):
        view.vrrp_state = "MISSING"
        view.error = f"pylvsd runs no vrrp_instance {instance}"
        return
    view.vrrp_state = str(info.get("state", ""))
    view.priority = int(info.get("priority", 0))
    view.effective_priority = int(info.get("effective_priority", 0))
    view.master = str(info.get("master", ""))


Condition = Callable[[list[DirectorView]], bool]


def _settled(
    scenario: Scenario, holder: str | None = None, failed: set[str] | None = None
) -> Condition:
    """Every director answers and sees the others active (with VRRP: one is MASTER, the others
    BACKUP), exactly one holds the VIP (``holder`` if given), and the sync daemons follow it:
    master there, backup on the others, all with the lab's syncid (with keepalived: the one of
    lvs_sync_daemon, on its interface; none without lvs_sync_daemon). (Heartbeat may still
    report its resources in ``transition`` for a while: RQSTDELAY, 10 s after the first
    resource message.) Peers in ``failed`` (failed on purpose) may be dead."""
    if scenario.vrrp is not None:
        return _vrrp_settled(scenario.vrrp, holder)
    gone = failed or set()

    def check(views: list[DirectorView]) -> bool:
        if not all(v.answering for v in views):
            return False
        if any(s != "active" for v in views for n, s in v.peers.items() if n not in gone):
            return False
        holders = [v for v in views if v.holds_vip]
        if len(holders) != 1 or (holder is not None and holders[0].node != holder):
            return False
        for v in views:
            want = "master" if v.holds_vip else "backup"
            if [(st, sid) for st, _ifn, sid in v.daemons] != [(want, SYNC_ID)]:
                return False
        return True

    return check


def _vrrp_settled(vrrp: VrrpSetup, holder: str | None) -> Condition:
    def check(views: list[DirectorView]) -> bool:
        if not all(v.answering for v in views):
            return False
        masters = [v for v in views if v.vrrp_state == "MASTER"]
        if len(masters) != 1 or (holder is not None and masters[0].node != holder):
            return False
        # The others are BACKUP and have heard the master's advertisements.
        if any(v.vrrp_state != "BACKUP" or not v.master for v in views if v is not masters[0]):
            return False
        if [v.node for v in views if v.holds_vip] != [masters[0].node]:
            return False
        for v in views:
            want = []
            if vrrp.sync_interface is not None:
                role = "master" if v is masters[0] else "backup"
                want = [(role, vrrp.sync_interface, vrrp.syncid)]
            if v.daemons != want:
                return False
        return True

    return check


def _wait_cluster(
    prefix: str,
    scenario: Scenario,
    condition: Condition,
    what: str,
    timeout: float = _HA_TIMEOUT,
    only: list[str] | None = None,
) -> list[DirectorView]:
    last: list[list[DirectorView]] = [[]]

    def check() -> list[DirectorView] | None:
        last[0] = cluster_view(prefix, scenario, only)
        return last[0] if condition(last[0]) else None

    try:
        found = wait_until(check, timeout=timeout, interval=0.05, what=what)
    except TimeoutExpired as exc:
        seen = "; ".join(v.describe() for v in last[0])
        raise LabError(f"{exc} (last seen: {seen})") from None
    assert found is not None
    return found


def _expected_holder(scenario: Scenario) -> str | None:
    """Who has the VIP once the cluster is whole again: its preferred node with auto_failback
    on (with VRRP: the highest priority, unless nopreempt), whoever has it otherwise."""
    if scenario.vrrp is not None:
        return scenario.active_director.name if scenario.vrrp.preempt else None
    return scenario.active_director.name if scenario.auto_failback == "on" else None


def _remove_vip(prefix: str, node: str, vip: str) -> list[str]:
    """Remove ``vip`` from every interface of ``node`` (as a reboot does); what was removed."""
    ns = node_netns(prefix, node)
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "ip", "-j", "-4", "addr", "show"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    removed = []
    for link in json.loads(out or "[]"):
        for info in link.get("addr_info", []):
            if info.get("local") == vip:
                with netcfg.in_netns(ns):
                    netcfg.del_address(link["ifname"], vip, int(info["prefixlen"]))
                removed.append(f"{vip}/{info['prefixlen']} from {link['ifname']}")
    return removed


def _set_cables(prefix: str, node: Node, up: bool) -> list[str]:
    """The switch ports of ``node``'s interfaces up or down: its cables plugged or pulled."""
    ports = [node.port(iface) for iface in node.interfaces]
    with netcfg.in_netns(node_netns(prefix, SWITCH)):
        for port in ports:
            if up:
                netcfg.set_link_up(port)
            else:
                netcfg.set_link_down(port)
    return ports


DIRECTOR_FAILURES = ("kill", "term", "link")
# The record of a director's pylvsd that `fail` stopped: kill -9, or SIGTERM (a clean stop).
_STOPPED = {"kill": "pylvsd-killed", "term": "pylvsd-stopped"}


@dataclass
class FailResult:
    """What :func:`fail` did and, for a director, who has the VIP afterwards."""

    node: str
    how: str
    pid: int | None = None
    ports: list[str] = field(default_factory=list)  # link: the switch ports set down
    failed_at: float = 0.0  # time.monotonic() of the kill or of the cables pulled
    had_vip: bool = False
    holder: str | None = None  # the director that took the VIP over
    takeover_s: float | None = None  # from failed_at to the VIP on the holder
    holders: list[str] = field(default_factory=list)  # all directors with the VIP after
    vrrp_state: str = ""  # with VRRP: the failed director's state after (link: FAULT)


@dataclass
class HealResult:
    node: str
    how: str
    pid: int | None = None
    removed: list[str] = field(default_factory=list)  # kill: the stale VIP taken off
    holder: str | None = None
    seconds: float = 0.0  # from the heal to the cluster settled


def _fail_director(
    prefix: str, state: LabState, scenario: Scenario, node: Node, how: str
) -> FailResult:
    if not scenario.vip_by_ha:
        raise LabError(
            f"the {scenario.name!r} lab has no heartbeat or VRRP: nothing would take over from "
            f"{node.name}"
        )
    if how not in DIRECTOR_FAILURES:
        raise LabError(f"a director fails with --how {' or '.join(DIRECTOR_FAILURES)}, not {how!r}")
    if node.name in state.failed:
        raise LabError(f"{node.name} has already failed ({state.failed[node.name]}): heal it first")
    rec = state.process(node.name, "pylvsd")
    if rec is None or not _alive(rec.pid):
        raise LabError(f"pylvsd on {node.name} is not running")
    others = [n.name for n in scenario.by_role("director") if n.name != node.name]
    had_vip = _holds(prefix, node.name, scenario.vip)
    result = FailResult(node.name, how, had_vip=had_vip)
    if how in _STOPPED:
        result.failed_at = time.monotonic()
        # SIGTERM: heartbeat hands its resources over, VRRP sends a priority-0 advertisement and
        # removes the VIP before pylvsd exits; SIGKILL gives it no chance to.
        os.kill(rec.pid, signal.SIGKILL if how == "kill" else signal.SIGTERM)
        result.pid = rec.pid
        rec.what = _STOPPED[how]
    else:
        result.failed_at = time.monotonic()
        result.ports = _set_cables(prefix, node, up=False)
    state.failed[node.name] = how
    save_state(state)
    if had_vip:

        def taken() -> str | None:
            return next((o for o in others if _holds(prefix, o, scenario.vip)), None)

        try:
            result.holder = wait_until(taken, timeout=_HA_TIMEOUT, interval=0.01, what="takeover")
        except TimeoutExpired:
            seen = "; ".join(v.describe() for v in cluster_view(prefix, scenario))
            raise LabError(
                f"no director took the VIP over from {node.name} in {_HA_TIMEOUT:.0f} s "
                f"(seen: {seen})"
            ) from None
        result.takeover_s = time.monotonic() - result.failed_at
    if how in _STOPPED:
        # After the takeover: a stopping pylvsd hands the VIP over first and exits after.
        wait_until(lambda: not _alive(rec.pid), timeout=15, what=f"pylvsd {rec.pid} to exit")
    result.holders = vip_holders(prefix, scenario)
    if scenario.vrrp is not None:
        (view,) = cluster_view(prefix, scenario, only=[node.name])
        result.vrrp_state = view.vrrp_state
    if result.holder is None and result.holders:
        result.holder = result.holders[0]
    return result


def _heal_director(prefix: str, state: LabState, scenario: Scenario, node: Node) -> HealResult:
    how = state.failed.get(node.name)
    if how is None:
        raise LabError(f"{node.name} has not failed: nothing to heal")
    result = HealResult(node.name, how)
    started = time.monotonic()
    lab = Lab(prefix=prefix)
    if how in _STOPPED:
        rec = state.process(node.name, _STOPPED[how])
        assert rec is not None
        # A reboot: the address the dead heartbeat or VRRP left is gone when the node comes back.
        result.removed = _remove_vip(prefix, node.name, scenario.vip)
        state.processes.remove(rec)
        del state.failed[node.name]
        save_state(state)
        new = _start_director(lab, state, scenario, node)
        result.pid = new.pid
    else:
        before = {v.node: v.generation for v in cluster_view(prefix, scenario)}
        _set_cables(prefix, node, up=True)
        del state.failed[node.name]
        save_state(state)
    # Directors that are still failed (`pylvs lab fail` of another one) are left out: the
    # cluster is whole again without them, and the VIP may have to stay where it is.
    present = [n.name for n in scenario.by_role("director") if n.name not in state.failed]
    holder = _expected_holder(scenario)
    settled = _settled(scenario, holder if holder in present else None, set(state.failed))
    if how in _STOPPED:
        condition = settled
    else:
        # Both sides of a healed partition give their resources up and restart heartbeat (a new
        # generation): wait for that, then for one VIP. With VRRP the cut-off director was in
        # FAULT (no carrier on its interface: keepalived tracks it) and comes back as BACKUP,
        # preempting with the higher priority: one MASTER with the VIP is enough.
        def condition(views: list[DirectorView]) -> bool:
            if scenario.vrrp is not None:
                return settled(views)
            return all(v.generation > before.get(v.node, 0) for v in views) and settled(views)

    views = _wait_cluster(
        prefix, scenario, condition, f"the cluster to settle after {node.name}", only=present
    )
    result.holder = next(v.node for v in views if v.holds_vip)
    result.seconds = time.monotonic() - started
    return result


# -- fail and repair a real server ----------------------------------------------------------

FAILURES = ("stop", "hang")


def fail(prefix: str, node: str, how: str = "stop") -> ProcessRecord | FailResult:
    """Make ``node`` fail. A real server fails as a real one does: its servers stopped
    (``stop``: new connections are refused) or frozen (``hang``: the kernel still accepts,
    nothing answers); the directors' health checks take it out; :func:`repair` brings it back
    (returns its :class:`ProcessRecord`). A director of a heartbeat or keepalived lab fails by
    ``kill`` (kill -9 of pylvsd), ``term`` (SIGTERM, a clean stop) or ``link`` (cables pulled);
    this waits until another director has the VIP and returns a :class:`FailResult`."""
    state, scenario = running_scenario(prefix)
    if node in {n.name for n in scenario.by_role("director")}:
        return _fail_director(
            prefix, state, scenario, scenario.node(node), "kill" if how == "stop" else how
        )
    if how not in FAILURES:
        raise LabError(f"unknown failure {how!r}: one of {', '.join(FAILURES)}")
    if node not in {n.name for n in scenario.by_role("realserver")}:
        raise LabError(f"{node!r} is not a real server of the {scenario.name!r} lab")
    rec = state.process(node, "servers")
    if rec is None or not _alive(rec.pid):
        raise LabError(f"the servers of {node} are not running (already failed?)")
    if how == "hang":
        os.kill(rec.pid, signal.SIGSTOP)
        rec.what = "servers-hung"
    else:
        _stop_pids([rec.pid])
        rec.what = "servers-stopped"
    save_state(state)
    return rec


def heal(prefix: str, node: str) -> ProcessRecord | HealResult:
    """Undo :func:`fail`. A director: after ``kill`` or ``term``, any stale VIP removed (as a
    reboot does), pylvsd and its backup sync daemon started again; after ``link``, its cables
    plugged back (both sides of the partition restart heartbeat; with VRRP it leaves FAULT
    and preempts with the higher priority); then until the cluster is whole (without any
    director still failed), the VIP on one director (the preferred one with auto_failback on,
    or with VRRP's preemption). Returns a :class:`HealResult`.
    A real server: :func:`repair`."""
    state, scenario = running_scenario(prefix)
    if node in {n.name for n in scenario.by_role("director")}:
        return _heal_director(prefix, state, scenario, scenario.node(node))
    return repair(prefix, node)


def repair(prefix: str, node: str) -> ProcessRecord | HealResult:
    """Undo :func:`fail`: the stopped servers started again, or the frozen ones resumed; a
    director is healed (:func:`heal`)."""
    state, scenario = running_scenario(prefix)
    if node in {n.name for n in scenario.by_role("director")}:
        return _heal_director(prefix, state, scenario, scenario.node(node))
    rec = state.process(node, "servers-hung")
    if rec is not None:
        os.kill(rec.pid, signal.SIGCONT)
        rec.what = "servers"
        save_state(state)
        return rec
    rec = state.process(node, "servers-stopped")
    if rec is None:
        raise LabError(f"{node} has not failed: nothing to repair")
    state.processes.remove(rec)
    new = _start(Lab(prefix=prefix), state, node, "servers", rec.argv)
    _wait_log(new, "ready")
    return new


# -- down -----------------------------------------------------------------------------------


@dataclass
class DownReport:
    namespaces: list[str] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    swept: list[int] = field(default_factory=list)
    had_state: bool = False


def down(prefix: str) -> DownReport:
    """Remove the lab with ``prefix``: processes, namespaces, state. Safe to run twice."""
    check_prefix(prefix)
    report = DownReport()
    state = load_state(prefix)
    inside = lab_pids(prefix)
    if state is not None:
        report.had_state = True
        # Only pids that are still inside a lab namespace: a recorded pid that died may have been
        # reused by an unrelated process since.
        recorded = [rec.pid for rec in reversed(state.processes) if rec.pid in inside]
        report.stopped = _stop_pids(recorded)
    # Whatever else runs in the lab: started inside it, so the lab's to stop.
    report.swept = _stop_pids(sorted(lab_pids(prefix)))
    for name in lab_namespaces(prefix):
        netcfg.remove_netns(name)
        report.namespaces.append(name)
    if state is not None:
        for path in state.realserver_files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    remove_run_dir(prefix)
    return report


# -- status and exec ------------------------------------------------------------------------


@dataclass
class NodeStatus:
    node: str
    role: str
    netns: str
    exists: bool
    addresses: list[str]
    detail: str = ""
    processes: list[tuple[str, int, bool]] = field(default_factory=list)


def running_scenario(prefix: str) -> tuple[LabState, Scenario]:
    state = load_state(prefix)
    if state is None:
        leftovers = lab_namespaces(prefix)
        hint = (
            f" (leftover namespaces: {', '.join(leftovers)}; run `pylvs lab down`)"
            if leftovers
            else ""
        )
        raise LabError(f"no lab with prefix {prefix!r} is up{hint}")
    return state, load_scenario(state.scenario_path)


def _director_detail(ns: str, scenario: Scenario, node: Node) -> str:
    try:
        with netcfg.in_netns(ns):
            holds_vip = bool(netcfg.interfaces_with(scenario.vip))
            with ControlClient(timeout=2.0) as ctl:
                services = ctl.services()
                pid = ctl.status().get("pid")
    except (OSError, netcfg.NetcfgError) as exc:
        return f"pylvsd not answering ({exc})"
    if node.standby:
        role = "STANDBY: pylvsd configured and ready, takes over when it gets the VIP"
    else:
        role = "ACTIVE"
    vip = f"holds VIP {scenario.vip}" if holds_vip else "VIP not held"
    dests = sum(len(s.dests) for s in services)
    return f"{role}; {vip}; pylvsd: {len(services)} services, {dests} real servers (pid {pid})"


_FAILED_HOW = {
    "kill": "pylvsd killed (kill -9)",
    "term": "pylvsd stopped (SIGTERM)",
    "link": "cables pulled (partition)",
}


def _ha_detail(state: LabState, scenario: Scenario, view: DirectorView) -> str:
    """A heartbeat director: who it is now (ACTIVE: holds the VIP), what heartbeat says; a
    keepalived director: its VRRP state (MASTER holds the VIP)."""
    failed = state.failed.get(view.node)
    how = _FAILED_HOW.get(failed or "", "")
    heal = f"; `pylvs lab heal {view.node}` undoes it" if failed else ""
    vip = f"holds VIP {scenario.vip}" if view.holds_vip else "VIP not held"
    if not view.answering:
        dead = "VRRP" if scenario.vrrp is not None else "heartbeat"
        stale = f" (stale: left by the dead {dead})" if view.holds_vip else ""
        return f"FAILED: {how or 'pylvsd not answering'}; {vip}{stale}{heal}"
    if scenario.vrrp is not None:
        return _vrrp_detail(scenario.vrrp, view, vip, f"; FAILED: {how}{heal}" if how else "")
    role = "ACTIVE" if view.holds_vip else "STANDBY"
    peers = ", ".join(f"{n} {st}" for n, st in view.peers.items())
    sync = ", ".join(f"{st} on {ifn} (syncid {sid})" for st, ifn, sid in view.daemons) or "none"
    lines = [
        f"{role}; {vip}" + (f"; FAILED: {how}{heal}" if how else ""),
        f"heartbeat {view.status}, resources {view.resources}; sees {peers}",
        f"connection sync daemon: {sync}",
    ]
    return "\n".join(lines)


def _vrrp_detail(vrrp: VrrpSetup, view: DirectorView, vip: str, failed: str) -> str:
    """What a keepalived director's ``vrrp-status`` says about the VIP's instance."""
    sync = ", ".join(f"{st} on {ifn} (syncid {sid})" for st, ifn, sid in view.daemons) or "none"
    effective = (
        f" (effective {view.effective_priority})"
        if view.effective_priority != view.priority
        else ""
    )
    master = "this node" if view.vrrp_state == "MASTER" else view.master or "unknown"
    lines = [
        f"{view.vrrp_state}; {vip}{failed}",
        f"VRRP {vrrp.instance} (virtual_router_id {vrrp.vrid}, VRRPv{vrrp.version}, advert_int "
        f"{vrrp.advert_int:g} s): priority {view.priority}{effective}, master {master}",
        f"connection sync daemon: {sync}",
    ]
    return "\n".join(lines)


def status(prefix: str) -> tuple[LabState, Scenario, list[NodeStatus]]:
    state, scenario = running_scenario(prefix)
    present = set(lab_namespaces(prefix))
    views: dict[str, DirectorView] = {}
    if scenario.vip_by_ha:
        views = {v.node: v for v in cluster_view(prefix, scenario)}
    rows = []
    for node in scenario.nodes:
        ns = node_netns(prefix, node.name)
        row = NodeStatus(
            node=node.name,
            role=node.role + (" (standby)" if node.standby else ""),
            netns=ns,
            exists=ns in present,
            addresses=[f"{i.name} {i.address}" for i in node.interfaces],
        )
        view = views.get(node.name)
        if view is not None:
            row.role = node.role + (" (preferred)" if not node.standby else "")
            by = "heartbeat's IPaddr2"
            if scenario.vrrp is not None:
                row.role = f"{node.role} (priority {scenario.vrrp.priorities[node.name]})"
                by = f"virtual_ipaddress of {scenario.vrrp.instance}"
            if view.holds_vip:
                iface = scenario.vip_interface_of(node)
                name = iface.name if iface else "?"
                row.addresses.append(f"{name} {scenario.vip} (VIP, {by})")
        elif node.role == "director" and node is scenario.active_director:
            row.addresses.append(
                f"{scenario.vip_interface.name} {scenario.vip}/{scenario.vip_prefixlen} (VIP)"
            )
        if node.role == "realserver" and scenario.method in ("dr", "tun"):
            suppressed = "not advertised" if scenario.family == 6 else "ARP suppressed"
            row.addresses.append(f"lo {scenario.vip}/{scenario.vip_prefixlen} (VIP, {suppressed})")
        row.processes = [
            (r.what, r.pid, _alive(r.pid)) for r in state.processes if r.node == node.name
        ]
        if row.exists and view is not None:
            row.detail = _ha_detail(state, scenario, view)
        elif row.exists and node.role == "director":
            row.detail = _director_detail(ns, scenario, node)
        rows.append(row)
    return state, scenario, rows


def exec_argv(prefix: str, node: str, command: list[str]) -> list[str]:
    """The command line that runs ``command`` inside ``node`` (``ip netns exec``)."""
    _state, scenario = running_scenario(prefix)
    try:
        scenario.node(node)
    except KeyError:
        names = ", ".join(n.name for n in scenario.nodes)
        raise LabError(f"no node {node!r} in scenario {scenario.name} (nodes: {names})") from None
    if not command:
        command = [os.environ.get("SHELL", "/bin/sh")]
    return ["ip", "netns", "exec", node_netns(prefix, node), *command]
