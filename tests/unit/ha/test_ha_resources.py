"""haresources resources as ResourceManager runs them: order, idempotent starts, a failed start
giving the group up, resource.d scripts, and the resources that live inside pylvsd."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pylvs.config.heartbeat import parse_haresources
from pylvs.ha.resources import GroupRunner, ResourceError, make_agent

SCRIPT = """#!/bin/sh
# a resource.d script: records its calls, keeps its state in a file
state="{state}.$1"
echo "$1 $2" >> "{calls}"
case "$2" in
  start) [ "$1" = broken ] && exit 1; touch "$state";;
  stop) rm -f "$state";;
  status) if [ -e "$state" ]; then echo "$1 running"; else echo "$1 is not running"; fi;;
esac
exit 0
"""


class Hooks:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.loaded: str | None = None
        self.sync: set[str] = {"backup"}

    def load_ldirectord(self, path: str) -> None:
        self.calls.append(f"load {path}")
        self.loaded = path

    def unload_ldirectord(self, path: str) -> None:
        self.calls.append(f"unload {path}")
        self.loaded = None

    def ldirectord_loaded(self, path: str) -> bool:
        return self.loaded == path

    def sync_swap(self, role: str, action: str) -> None:
        self.calls.append(f"sync {role} {action}")
        other = "backup" if role == "master" else "master"
        self.sync = {role} if action == "start" else {other}

    def sync_running(self, role: str) -> bool:
        return role in self.sync


def _ha_dir(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "resource.d").mkdir()
    calls = tmp_path / "calls"
    script = tmp_path / "resource.d" / "Svc"
    script.write_text(SCRIPT.format(state=tmp_path / "state", calls=calls))
    os.chmod(script, 0o755)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "lb.cf").write_text("# ldirectord.cf\n")
    return tmp_path, calls


def test_group_taken_left_to_right_and_given_up_right_to_left(tmp_path: Path) -> None:
    ha, calls = _ha_dir(tmp_path)
    groups = parse_haresources(
        "nodea Svc::one ldirectord::lb.cf LVSSyncDaemonSwap::master Svc::two\n"
    )
    hooks = Hooks()
    runner = GroupRunner(groups, str(ha), hooks)
    key = groups[0].key
    assert key == "Svc::one" and not runner.running(key)
    runner.take(key)
    assert runner.running(key)
    assert hooks.calls == [f"load {ha / 'conf' / 'lb.cf'}", "sync master start"]
    assert hooks.sync == {"master"}
    runner.take(key)  # already held: nothing started twice
    runner.give(key)
    assert not runner.running(key)
    assert hooks.calls[2:] == ["sync master stop", f"unload {ha / 'conf' / 'lb.cf'}"]
    assert hooks.sync == {"backup"}
    lines = calls.read_text().split("\n")
    starts = [line for line in lines if line.endswith("start")]
    stops = [line for line in lines if line.endswith("stop")]
    assert starts == ["one start", "two start"]
    assert stops == ["two stop", "one stop"]


def test_a_failed_start_gives_the_group_up(tmp_path: Path) -> None:
    ha, calls = _ha_dir(tmp_path)
    groups = parse_haresources("nodea Svc::one Svc::broken Svc::three\n")
    runner = GroupRunner(groups, str(ha))
    runner.take(groups[0].key)
    assert not runner.running(groups[0].key)
    lines = calls.read_text().split("\n")
    assert "three start" not in lines
    assert [x for x in lines if x.endswith("stop")] == ["three stop", "broken stop", "one stop"]


def test_unknown_resources_and_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    ha, _calls = _ha_dir(tmp_path)
    (res,) = parse_haresources("nodea NoSuchThing::x\n")[0].resources
    with pytest.raises(ResourceError, match="Cannot locate resource script NoSuchThing"):
        make_agent(res, str(ha), None)
    (res,) = parse_haresources("nodea LVSSyncDaemonSwap::sideways\n")[0].resources
    with pytest.raises(ResourceError, match="master or backup"):
        make_agent(res, str(ha), Hooks())
