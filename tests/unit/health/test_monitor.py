"""The health component's scheduling, stepped with a fake clock and fake checks.

The checks run in the component's real thread pool; their results come back through a fake
loop's ``call_soon``, which the test drains, so every step is deterministic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from pylvs.config import parse
from pylvs.core.ipvs import IPVS
from pylvs.health import monitor as monitor_module
from pylvs.health.check import CheckResult, CheckTarget
from pylvs.health.monitor import HealthMonitor
from pylvs.testing.netns import wait_until

VIP = "203.0.113.10"


class FakeLoop:
    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.lock = threading.Lock()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        with self.lock:
            self.calls.append((fn, args))

    def drain(self) -> int:
        with self.lock:
            calls, self.calls = self.calls, []
        for fn, args in calls:
            fn(*args)
        return len(calls)


class Checks:
    """What the fake checks answer, per real address, and what they were asked."""

    def __init__(self) -> None:
        self.up: dict[str, bool] = {}
        self.asked: list[tuple[str, str]] = []
        self.block = threading.Event()
        self.hang: set[str] = set()

    def __call__(self, kind: str, target: CheckTarget, timeout: float, dyn: bool) -> CheckResult:
        self.asked.append((kind, target.rip))
        if target.rip in self.hang:
            self.block.wait(10)
        return CheckResult(self.up.get(target.rip, True), kind, 0.001)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Any:
    checks = Checks()
    monkeypatch.setattr(monitor_module, "run_check", checks)
    now = [100.0]
    loop = FakeLoop()
    table = IPVS()
    mon = HealthMonitor(table, loop, workers=4, clock=lambda: now[0])  # type: ignore[arg-type]
    yield mon, loop, table, checks, now
    checks.block.set()
    mon.close()


def _cfg(checktype: str = "connect", n_reals: int = 3, extra: str = "") -> Any:
    reals = "".join(f"\treal=198.51.100.{11 + i}:80 masq\n" for i in range(n_reals))
    return parse(
        f"checkinterval=5\nvirtual={VIP}:80\n{reals}\tprotocol=tcp\n\tchecktype={checktype}\n"
        f"{extra}virtual={VIP}:81\n{reals.replace(':80', ':81')}\tprotocol=tcp\n"
        f"\tchecktype={checktype}\n",
        "ldirectord.cf",
    )


def _step(mon: HealthMonitor, loop: FakeLoop, now: list[float], expect: int) -> None:
    mon.due(now[0])
    wait_until(lambda: len(loop.calls) >= expect, 5, what=f"{expect} results")
    loop.drain()
    now[0] += 0.1
    mon.due(now[0])  # the results, applied together


def _weights(table: IPVS) -> dict[tuple[int, str], int]:
    return {(s.port, d.addr): d.weight for s in table.services() for d in s.dests}


def test_each_distinct_real_is_checked_once_per_interval(env: Any) -> None:
    mon, loop, table, checks, now = env
    mon.apply(_cfg())
    assert mon.keeper.status == "starting"
    _step(mon, loop, now, 6)  # two virtuals x three reals, with different ports: six checks
    assert len(checks.asked) == 6
    assert mon.keeper.status == "running"
    assert len(_weights(table)) == 6
    mon.due(now[0] + 4.9)
    assert len(checks.asked) == 6  # not due yet
    assert mon.deadline() == pytest.approx(now[0] + 5)
    now[0] += 5
    checks.up["198.51.100.12"] = False
    _step(mon, loop, now, 6)
    assert len(checks.asked) == 12
    assert (80, "198.51.100.12") not in _weights(table)
    rows = {r["real"]: r for r in mon.rows()}
    assert rows["198.51.100.12:80"]["state"] == "down" and rows["198.51.100.12:80"]["failures"] == 1


def test_a_real_in_two_virtuals_with_the_same_settings_is_checked_once(env: Any) -> None:
    mon, loop, table, checks, now = env
    text = (
        f"virtual={VIP}:80\n\treal=198.51.100.11:80 masq\n\tprotocol=tcp\n\tchecktype=connect\n"
        f"virtual=203.0.113.11:80\n\treal=198.51.100.11:80 masq\n\tprotocol=tcp\n"
        "\tchecktype=connect\n"
    )
    mon.apply(parse(text, "x"))
    _step(mon, loop, now, 1)
    assert checks.asked == [("connect", "198.51.100.11")]
    assert [len(s.dests) for s in table.services()] == [1, 1]
    assert mon.rows()[0]["virtuals"] == [f"tcp:{VIP}:80", "tcp:203.0.113.11:80"]


def test_checktype_n_negotiates_first_then_every_nth(env: Any) -> None:
    mon, loop, _, checks, now = env
    mon.apply(_cfg("2", n_reals=1))
    kinds = []
    for _ in range(5):
        _step(mon, loop, now, 2)
        kinds.append(checks.asked[-1][0])
        now[0] += 5
    assert kinds == ["negotiate", "connect", "connect", "negotiate", "connect"]


def test_a_hung_check_costs_one_timeout_and_blocks_nothing_else(env: Any) -> None:
    mon, loop, table, checks, now = env
    checks.hang.add("198.51.100.11")
    mon.apply(_cfg(n_reals=3, extra="\tchecktimeout=2\n"))
    mon.due(now[0])
    wait_until(lambda: len(loop.calls) >= 4, 5, what="the other checks")
    loop.drain()
    now[0] += 0.1
    mon.due(now[0])
    assert (80, "198.51.100.12") in _weights(table)
    assert (80, "198.51.100.11") not in _weights(table)
    now[0] += 3.1  # past the timeout and the grace second since it started
    mon.due(now[0])
    assert mon.counters["overdue"] == 1
    row = {r["real"]: r for r in mon.rows()}["198.51.100.11:80"]
    assert row["ok"] is False and "did not return" in row["reason"]
    checks.block.set()  # the late result is dropped
    wait_until(lambda: loop.calls, 5, what="the late result")
    loop.drain()
    now[0] += 0.1
    mon.due(now[0])
    assert {r["real"]: r for r in mon.rows()}["198.51.100.11:80"]["ok"] is False


def test_checktype_on_and_off(env: Any) -> None:
    mon, _, table, checks, _ = env
    mon.apply(_cfg("on"))
    assert len(_weights(table)) == 6 and checks.asked == []  # up when the start is over
    mon.apply(_cfg("off"))
    assert _weights(table) == {(80, "198.51.100.11"): 1, (80, "198.51.100.12"): 1,
                               (80, "198.51.100.13"): 1, (81, "198.51.100.11"): 1,
                               (81, "198.51.100.12"): 1, (81, "198.51.100.13"): 1}  # fmt: skip
    assert mon.rows() == [] and mon.deadline() is None


def test_maintenancedir_forces_a_server_down(env: Any, tmp_path: Any) -> None:
    mon, loop, table, _, now = env
    cfg = _cfg(n_reals=2)
    cfg.maintenancedir = str(tmp_path)
    (tmp_path / "198.51.100.12:80").write_text("")
    mon.apply(cfg)
    _step(mon, loop, now, 4)
    assert sorted(_weights(table)) == [(80, "198.51.100.11"), (81, "198.51.100.11"),
                                       (81, "198.51.100.12")]  # fmt: skip
    states = {r["real"]: r["state"] for r in mon.rows()}
    assert states["198.51.100.12:80"] == "maintenance"


def test_hundreds_of_reals_are_checked_by_a_bounded_pool(env: Any) -> None:
    mon, loop, table, checks, now = env
    reals = "".join(f"\treal=10.0.{i >> 8}.{i & 255}:80 masq\n" for i in range(600))
    mon.apply(parse(f"virtual={VIP}:80\n{reals}\tprotocol=tcp\n\tchecktype=connect\n", "x"))
    before = threading.active_count()
    start = time.monotonic()
    _step(mon, loop, now, 600)
    assert len(checks.asked) == 600
    assert len(table.services()[0].dests) == 600
    assert threading.active_count() - before <= 4  # the pool's workers, no more
    assert time.monotonic() - start < 30
