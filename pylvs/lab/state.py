"""The state file of a running lab: what was built and which processes were started, by pid.

``pylvs lab down`` reads it to stop exactly those processes; when it is missing or stale (a crash
while building), down still finds the lab's namespaces by their prefix. One lab per prefix: the
files live in ``/run/pylvs/lab/<prefix>/`` together with the logs, generated configurations and
trace captures of that lab, and the directory is removed by down.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_PREFIX",
    "LabState",
    "ProcessRecord",
    "check_prefix",
    "default_prefix",
    "lab_run_dir",
    "load_state",
    "remove_run_dir",
    "save_state",
]

DEFAULT_PREFIX = "lvs-"
_RUN_ROOT = Path("/run/pylvs/lab")
_PREFIX = re.compile(r"[a-z][a-z0-9-]{0,14}-\Z")


def default_prefix() -> str:
    """``$PYLVS_LAB_PREFIX`` or ``lvs-``."""
    return os.environ.get("PYLVS_LAB_PREFIX", DEFAULT_PREFIX)


def check_prefix(prefix: str) -> str:
    """A prefix is lower-case letters, digits and dashes, ending in a dash (``lvs-``).

    The trailing dash keeps ``lvs-`` from matching the namespaces of a lab prefixed ``lvsx-``.
    """
    if not _PREFIX.match(prefix):
        raise ValueError(f"lab prefix {prefix!r}: use a-z, 0-9 and '-', end with '-' (e.g. lvs-)")
    return prefix


def lab_run_dir(prefix: str) -> Path:
    return _RUN_ROOT / prefix.rstrip("-")


@dataclass
class ProcessRecord:
    """One process started inside the lab."""

    node: str
    what: str  # "pylvsd", "servers", "decap", "tcpdump"; "-killed"/"-stopped"/"-hung" if failed
    pid: int
    argv: list[str]
    log: str = ""


@dataclass
class LabState:
    prefix: str
    scenario: str
    scenario_path: str
    namespaces: list[str] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    # /run/pylvs/realserver-<cookie>.json files written by pylvs.realserver in the lab's
    # namespaces: they outlive the namespaces unless removed.
    realserver_files: list[str] = field(default_factory=list)
    # With heartbeat: the lab's copy of the scenario's heartbeat directory (authkeys mode 600),
    # the connection sync daemon started on each director (node -> the pylvsadm command), and
    # the directors made to fail by `pylvs lab fail` (node -> "kill" or "link").
    ha_dir: str = ""
    sync_daemons: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    ready: bool = False

    def process(self, node: str, what: str) -> ProcessRecord | None:
        for rec in self.processes:
            if rec.node == node and rec.what == what:
                return rec
        return None


def _state_path(prefix: str) -> Path:
    return lab_run_dir(prefix) / "state.json"


def save_state(state: LabState) -> None:
    """Write atomically: a crash while saving leaves the previous file, never half of one."""
    path = _state_path(state.prefix)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=1))
    os.replace(tmp, path)


def load_state(prefix: str) -> LabState | None:
    """The state of the lab with ``prefix``; None if there is none (or it is unreadable)."""
    try:
        data = json.loads(_state_path(prefix).read_text())
        data["processes"] = [ProcessRecord(**p) for p in data.get("processes", [])]
        return LabState(**data)
    except (OSError, ValueError, TypeError):
        return None


def remove_run_dir(prefix: str) -> None:
    shutil.rmtree(lab_run_dir(prefix), ignore_errors=True)
