"""Bring a lab scenario up and down, and report on it.

``up`` builds the network (:mod:`pylvs.lab.builder`), prepares the real servers with
:mod:`pylvs.realserver`, and starts the lab's programs inside the namespaces, each in its own
session so that it outlives the command: the HTTP/UDP echo servers on the real servers, the
userspace IPIP decapsulator on TUN real servers, and pylvsd on every director (the standby too,
with the same configuration but without the VIP). Every pid is written to the state file
(:mod:`pylvs.lab.state`) as soon as the process exists.

``down`` stops those processes by pid, then any other process still inside one of the lab's
namespaces (whatever runs there was started in the lab: by ``pylvs lab exec``, or a pylvsd that
``pylvsadm`` started), then deletes the namespaces, which takes their veths, bridges, addresses,
routes and iptables rules with them. It works from the prefix alone when the state file is gone or
the build crashed half-way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pylvs import realserver
from pylvs.ctl import ControlClient
from pylvs.io import netcfg
from pylvs.lab.builder import build_network, namespaces
from pylvs.lab.state import (
    LabState,
    ProcessRecord,
    check_prefix,
    lab_run_dir,
    load_state,
    remove_run_dir,
    save_state,
)
from pylvs.lab.topology import Node, Scenario, load_scenario
from pylvs.testing.netns import Lab, TimeoutExpired, wait_until

__all__ = [
    "DownReport",
    "LabError",
    "NodeStatus",
    "down",
    "exec_argv",
    "lab_namespaces",
    "lab_pids",
    "node_netns",
    "running_scenario",
    "status",
    "up",
]

_NETNS_DIR = "/run/netns"
_START_TIMEOUT = 20.0


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
            argv += [a for port in node.http for a in ("--http", str(port))]
            argv += [a for port in node.udp_echo for a in ("--udp-echo", str(port))]
            pending.append((_start(lab, state, node.name, "servers", argv), "ready"))
        directors = []
        for node in scenario.by_role("director"):
            argv = _python(
                "-m", "pylvs.cli.pylvsd", "--foreground", "--config", str(scenario.config_path)
            )
            directors.append(_start(lab, state, node.name, "pylvsd", argv))
        for rec in state.processes:
            if rec.what == "decap":
                _wait_log(rec, "decapsulating")
        for rec, text in pending:
            _wait_log(rec, text)
        for rec in directors:
            _wait_pylvsd(lab, rec)
        state.ready = True
        save_state(state)
    except BaseException:
        with contextlib.suppress(Exception):
            down(prefix)
        raise
    return state


# -- fail and repair a real server ----------------------------------------------------------

FAILURES = ("stop", "hang")


def fail(prefix: str, node: str, how: str = "stop") -> ProcessRecord:
    """Make real server ``node`` fail as a real one does: its servers stopped (``stop``: new
    connections are refused) or frozen (``hang``: the kernel still accepts, nothing answers).
    The directors' health checks take it out; :func:`repair` brings it back."""
    state, scenario = running_scenario(prefix)
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


def repair(prefix: str, node: str) -> ProcessRecord:
    """Undo :func:`fail`: the stopped servers started again, or the frozen ones resumed."""
    state, _scenario = running_scenario(prefix)
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
            holds_vip = any(netcfg.has_address(i.name, scenario.vip) for i in node.interfaces)
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


def status(prefix: str) -> tuple[LabState, Scenario, list[NodeStatus]]:
    state, scenario = running_scenario(prefix)
    present = set(lab_namespaces(prefix))
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
        if node.role == "director" and node is scenario.active_director:
            row.addresses.append(f"{scenario.vip_interface.name} {scenario.vip}/32 (VIP)")
        if node.role == "realserver" and scenario.method in ("dr", "tun"):
            row.addresses.append(f"lo {scenario.vip}/32 (VIP, ARP suppressed)")
        row.processes = [
            (r.what, r.pid, _alive(r.pid)) for r in state.processes if r.node == node.name
        ]
        if row.exists and node.role == "director":
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
