"""pylvsd's heartbeat: a node of a Linux-HA heartbeat 3.0.6 cluster (``pylvsd --ha DIR``).

Two threads of their own, so that a busy data plane never delays a heartbeat:

* the **heartbeat thread** owns the media sockets (:mod:`pylvs.ha.media`) and the protocol
  (:class:`pylvs.core.hbprotocol.HeartbeatNode`): it waits for a datagram, a command or the
  protocol's next deadline, and sends what the protocol says;
* the **resource thread** runs the protocol's resource jobs one at a time with
  :class:`pylvs.ha.resources.GroupRunner` (taking an address over sends gratuitous ARP for a
  second), and hands each result back to the heartbeat thread.

The node's identity lives in a state directory as heartbeat keeps it in /var/lib/heartbeat:
``hb_uuid`` (16 bytes, made once) and ``hb_generation`` (raised at every start, so that the
peers refuse replays of an earlier life).

The daemon adds the service to its loop as a component (``heartbeat`` in the status), answers
``ha-status``, ``ha-standby`` and ``ha-takeover`` on the control socket with it, and on SIGTERM
asks it to hand everything over (:meth:`HeartbeatService.begin_shutdown`) before stopping.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import selectors
import socket
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pylvs.config.heartbeat import (
    HaConfig,
    HeartbeatConfigError,
    ResourceGroup,
    load_authkeys,
    load_ha_cf,
    load_haresources,
)
from pylvs.core.hbmembership import Timing
from pylvs.core.hbmsg import AuthKey
from pylvs.core.hbping import echo_request, parse_echo_reply
from pylvs.core.hbprotocol import HeartbeatNode, NodeConfig, Probe, Stopped, Transmit
from pylvs.core.hbresource import Job, Log, decode_resources
from pylvs.ha.media import MediumSocket, open_media
from pylvs.ha.resources import DirectorHooks, GroupRunner
from pylvs.loop import OwnThreads

__all__ = ["HeartbeatService", "load_identity", "nodename"]

log = logging.getLogger("pylvs.ha")

GENLEN = 16  # heartbeat.c: "%15lu\n"


def nodename() -> str:
    """``uname -n``, lower-cased, as heartbeat names this node."""
    return os.uname().nodename.lower()


def load_identity(state_dir: str | Path) -> tuple[bytes, int]:
    """This node's UUID (made once) and its generation, raised and written back."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    uuid_file = state / "hb_uuid"
    try:
        node_uuid = uuid_file.read_bytes()
    except OSError:
        node_uuid = b""
    if len(node_uuid) != 16:
        node_uuid = uuidlib.uuid4().bytes
        uuid_file.write_bytes(node_uuid)
    gen_file = state / "hb_generation"
    try:
        generation = int(gen_file.read_text().strip())
    except (OSError, ValueError):
        # IncrGeneration: "No Previous generation - starting at" a time-based one
        generation = int(time.time())
        log.warning("No Previous generation - starting at %d", generation + 1)
    generation += 1
    gen_file.write_text(f"{generation:>{GENLEN - 1}}\n")
    with open(gen_file, "rb") as f:
        os.fsync(f.fileno())
    return node_uuid, generation


def _load(
    ha_dir: str, me: str
) -> tuple[HaConfig, AuthKey, dict[int, AuthKey], list[ResourceGroup]]:
    d = Path(ha_dir)
    ha = load_ha_cf(d / "ha.cf", me)
    keys = load_authkeys(d / "authkeys")
    signing = keys.signing_key()
    checking = {n: k for n, k in keys.keys.items() if isinstance(k, AuthKey)}
    groups = load_haresources(d / "haresources", ha.nodes) if (d / "haresources").exists() else []
    return ha, signing, checking, groups


class _HeartbeatFormatter(logging.Formatter):
    """heartbeat's log lines: ``Dec 02 05:10:33 nodea heartbeat: [7725]: info: text``."""

    LEVELS = {"WARNING": "WARN", "ERROR": "ERROR", "CRITICAL": "CRIT", "DEBUG": "debug"}

    def __init__(self, me: str) -> None:
        super().__init__(datefmt="%b %d %H:%M:%S")
        self.me = me

    def format(self, record: logging.LogRecord) -> str:
        level = self.LEVELS.get(record.levelname, "info")
        text = record.getMessage().removeprefix("heartbeat: ")
        stamp = self.formatTime(record, self.datefmt)
        return f"{stamp} {self.me} heartbeat: [{record.process}]: {level}: {text}"


def _log_handlers(ha: HaConfig, me: str) -> list[logging.Handler]:
    """ha.cf's ``logfile``, ``debugfile`` (everything, debug included) and ``logfacility``."""
    handlers: list[logging.Handler] = []
    for path, level in ((ha.logfile, logging.INFO), (ha.debugfile, logging.DEBUG)):
        if path and path != "/dev/null":
            try:
                handler: logging.Handler = logging.FileHandler(path)
            except OSError as exc:
                log.error("heartbeat: cannot open log file %s: %s", path, exc)
                continue
            handler.setLevel(level)
            handler.setFormatter(_HeartbeatFormatter(me))
            handlers.append(handler)
    facility = logging.handlers.SysLogHandler.facility_names.get(ha.logfacility or "")
    if facility is not None and os.path.exists("/dev/log"):
        syslog = logging.handlers.SysLogHandler("/dev/log", facility)
        syslog.setFormatter(logging.Formatter("heartbeat: [%(process)d]: %(message)s"))
        handlers.append(syslog)
    return handlers


class HeartbeatService(OwnThreads):
    """The heartbeat of this pylvsd (see the module docstring)."""

    name = "heartbeat"

    def __init__(
        self,
        ha_dir: str,
        state_dir: str,
        hooks: DirectorHooks | None = None,
        me: str | None = None,
        announce: Callable[[str, str], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.ha_dir = ha_dir
        self.me = (me or nodename()).lower()
        self.ha, key, keys, self.groups = _load(ha_dir, self.me)
        self.log_handlers = _log_handlers(self.ha, self.me)
        for handler in self.log_handlers:
            log.addHandler(handler)
        if self.me not in self.ha.nodes:
            raise HeartbeatConfigError(
                self.ha.filename, 0, f"Current node [{self.me}] not in configuration!"
            )
        for note in self.ha.warnings:
            log.warning("%s", note)
        if self.ha.unused:
            log.info("ha.cf directives accepted but not used: %s", ", ".join(self.ha.unused))
        timing = Timing(
            self.ha.keepalive_ms / 1000,
            self.ha.deadtime_ms / 1000,
            self.ha.warntime_ms / 1000,
            self.ha.initdead_ms / 1000,
        )
        pings = []
        for ping in self.ha.ping_nodes:
            if ping.kind == "ping6":
                log.warning("ping6 node %s: IPv6 ping nodes are not supported yet", ping.name)
                continue
            pings.append((ping.name, tuple(ping.hosts)))
        self.cfg = NodeConfig(
            self.me,
            tuple(self.ha.nodes),
            timing,
            key,
            keys,
            tuple((g.key, g.node) for g in self.groups),
            self.ha.auto_failback,
            tuple(pings),
            self.ha.deadping_ms / 1000,
        )
        self.state_dir = state_dir
        self.uuid, self.generation = load_identity(state_dir)
        try:
            self.node = HeartbeatNode(self.cfg, self.uuid, self.generation, load=_loadavg())
        except ValueError as exc:
            raise HeartbeatConfigError(self.ha.filename, 0, str(exc)) from None
        self.ping_sock: socket.socket | None = None
        self._ping_seq = 0
        self.runner = GroupRunner(self.groups, ha_dir, hooks, announce)
        self.clock, self.wall = clock, wall
        self.media: list[MediumSocket] = []
        self.group_running = {g.key: False for g in self.groups}
        self._commands: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._threads: list[threading.Thread] = []
        self._running = False
        self.stopped = threading.Event()  # the graceful stop is complete
        self.shutting_down = False
        self._snapshot: dict[str, Any] = {}

    # -- life -----------------------------------------------------------------------------

    def start(self) -> None:
        self.media = open_media(self.ha.media)
        if self.cfg.ping_nodes:
            self.ping_sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            self.ping_sock.setblocking(False)
        self._running = True
        self._snapshot = self._status()  # until the heartbeat thread's first turn
        for target, name in ((self._heartbeat, "heartbeat"), (self._resources, "ha-resources")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()
        log.info(
            "heartbeat: node %s (generation %d) on %s; nodes %s; auto_failback %s",
            self.me,
            self.generation,
            ", ".join(f"{m.kind} {m.name}" for m in self.media),
            " ".join(self.ha.nodes),
            self.ha.auto_failback,
        )

    def begin_shutdown(self) -> None:
        """A graceful stop: hand every group over; :attr:`stopped` is set once it is done."""
        self.shutting_down = True
        self._command("shutdown", None)

    def standby(self, what: str = "all") -> str:
        """``hb_standby``: offer this node's resources to the other node."""
        if what not in ("all", "foreign", "local", "failback"):
            raise ValueError(f"wrong resources({what}): all, foreign, local or failback")
        self._command("standby", what)
        return f"Going standby [{'foreign' if what == 'failback' else what}]."

    def takeover(self, what: str = "all") -> str:
        """``hb_takeover``: ask the other node for its resources."""
        if what not in ("all", "foreign", "local", "failback"):
            raise ValueError(f"wrong resources({what}): all, foreign, local or failback")
        self._command("takeover", what)
        return f"Taking over [{what}]."

    def close(self) -> None:
        """Stop the threads (after :meth:`begin_shutdown`, or at once: a kill)."""
        self._running = False
        self._jobs.put(None)
        self._wake()
        for thread in self._threads:
            thread.join(timeout=5.0)
        for medium in self.media:
            medium.close()
        self.media = []
        if self.ping_sock is not None:
            self.ping_sock.close()
            self.ping_sock = None
        self._wake_r.close()
        self._wake_w.close()
        for handler in self.log_handlers:
            log.removeHandler(handler)
            handler.close()

    # -- the loop component (OwnThreads: the service lives in its own threads) -------------

    def status(self) -> dict[str, Any]:
        return dict(self._snapshot)

    # -- the heartbeat thread ---------------------------------------------------------------

    def _command(self, op: str, arg: Any) -> None:
        self._commands.put((op, arg))
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # already awake (buffer full) or closed

    def _heartbeat(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        for medium in self.media:
            sel.register(medium.sock, selectors.EVENT_READ, medium)
        if self.ping_sock is not None:
            sel.register(self.ping_sock, selectors.EVENT_READ, "ping")
        self._do(self.node.start(self.clock(), self.wall()))
        try:
            while self._running:
                node = self.node
                deadline = node.deadline()
                timeout = None if deadline is None else max(0.0, deadline - self.clock())
                for key, _mask in sel.select(min(timeout, 1.0) if timeout is not None else 1.0):
                    medium = key.data
                    if medium == "ping":
                        self._ping_replies()
                        continue
                    if medium is None:
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                        continue
                    while True:
                        data = medium.receive()
                        if data is None:
                            break
                        self._do(node.receive(data, medium.name, self.clock(), self.wall()))
                self._drain_commands()
                now = self.clock()
                deadline = node.deadline()
                if deadline is not None and deadline <= now:
                    node.load = _loadavg()
                    self._do(node.tick(now, self.wall()))
                self._snapshot = self._status()
        except Exception:
            log.exception("heartbeat thread failed")
            raise
        finally:
            sel.close()

    def _drain_commands(self) -> None:
        node = self.node
        while True:
            try:
                op, arg = self._commands.get_nowait()
            except queue.Empty:
                return
            now, wall = self.clock(), self.wall()
            if op == "standby":
                self._do(node.standby(arg, now, wall))
            elif op == "takeover":
                self._do(node.takeover(arg, now, wall))
            elif op == "shutdown":
                self._do(node.shutdown(now, wall))
            elif op == "job":
                job_id, before, after = arg
                self.group_running.update(after)
                self._do(node.job_done(job_id, before, now, wall))

    def _do(self, actions: list[object]) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                for medium in self.media:
                    medium.send(action.data)
            elif isinstance(action, Job):
                self._jobs.put(action)
            elif isinstance(action, Log):
                level = {"warn": logging.WARNING, "err": logging.ERROR, "debug": logging.DEBUG}
                log.log(level.get(action.level, logging.INFO), "heartbeat: %s", action.text)
            elif isinstance(action, Probe):
                self._probe(action.host)
            elif isinstance(action, Stopped):
                if action.restart and not self.shutting_down:
                    self._restart()
                else:
                    log.info("heartbeat: all HA resources relinquished; this node is stopped")
                    self.stopped.set()

    def _restart(self) -> None:
        """After a healed partition: start again as a new generation (heartbeat restarts)."""
        self.uuid, self.generation = load_identity(self.state_dir)
        log.info("heartbeat: restarting as generation %d", self.generation)
        self.node = HeartbeatNode(self.cfg, self.uuid, self.generation, load=_loadavg())
        self._do(self.node.start(self.clock(), self.wall()))

    def _probe(self, host: str) -> None:
        if self.ping_sock is None:
            return
        self._ping_seq += 1
        try:
            self.ping_sock.sendto(echo_request(self._ping_seq), (host, 0))
        except OSError:
            pass  # unreachable now: the ping node goes dead after deadping

    def _ping_replies(self) -> None:
        assert self.ping_sock is not None
        while True:
            try:
                packet, (source, _port) = self.ping_sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if parse_echo_reply(packet):
                self._do(self.node.ping_reply(source, self.clock(), self.wall()))

    # -- the resource thread ----------------------------------------------------------------

    def _resources(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or not self._running:
                return
            before: dict[str, bool] = {}
            after: dict[str, bool] = {}
            for key in job.groups:
                before[key] = self.runner.running(key)
                if job.op == "take":
                    self.runner.take(key)
                elif job.op == "give":
                    self.runner.give(key)
                after[key] = self.runner.running(key) if job.op != "status" else before[key]
            self._command("job", (job.id, before, after))

    # -- what ``pylvs ha status`` shows --------------------------------------------------------

    def _status(self) -> dict[str, Any]:
        node = self.node
        nodes: dict[str, Any] = {}
        for name in self.ha.nodes:
            links = {}
            if name != self.me:
                links = {m.name: node.link_status(name, m.name) for m in self.media}
            dt = None
            if name == self.me:
                dt = node.deadtime_advertised()
            elif node.membership is not None:
                dt = node.membership.advertised_deadtime(name)
            nodes[name] = {
                "status": node.node_status(name),
                "links": links,
                "deadtime_ms": None if dt is None else round(dt * 1000),
            }
        return {
            "node": self.me,
            "status": node.status,
            "generation": self.generation,
            "uuid": str(uuidlib.UUID(bytes=self.uuid)),
            "auto_failback": self.ha.auto_failback,
            "timing_ms": {
                "keepalive": self.ha.keepalive_ms,
                "deadtime": self.ha.deadtime_ms,
                "warntime": self.ha.warntime_ms,
                "initdead": self.ha.initdead_ms,
            },
            "nodes": nodes,
            "ping_nodes": {name: node.ping.status(name) for name in node.ping.names()},
            "resources": {
                "state": node.rm.resource_state(),
                "holds": decode_resources(node.rm.st.i_hold),
                "other_holds": decode_resources(node.rm.st.other_holds),
                "groups": [
                    {
                        "key": g.key,
                        "node": g.node,
                        "resources": [str(r) for r in g.resources],
                        "running": self.group_running.get(g.key, False),
                    }
                    for g in self.groups
                ],
            },
            "media": [
                {
                    "name": m.name,
                    "kind": m.kind,
                    "sent": m.sent,
                    "received": m.received,
                    "errors": m.errors,
                }
                for m in self.media
            ],
            "counters": dict(node.counters),
            "log": [f"{level}: {text}" for _t, level, text in list(node.log)[-20:]],
            "stopped": self.stopped.is_set(),
        }


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return ""
