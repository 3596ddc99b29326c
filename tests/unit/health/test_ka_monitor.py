"""The keepalived checker component's schedule (pylvs.health.kamonitor) with a fake clock.

Checks run synchronously in a stand-in pool and come back through a stand-in ``call_soon``, so a
test sees exactly when each checker is due: one second plus a random part of ``warmup`` first,
then ``delay_loop``, or ``delay_before_retry`` while retrying (check_api.c, check_tcp.c).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from pylvs.config.keepalived import parse_keepalived
from pylvs.core.ipvs import IPVS
from pylvs.health.check import CheckResult
from pylvs.health.kamonitor import KaMonitor


class FakeLoop:
    def __init__(self) -> None:
        self.soon: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.soon.append((fn, args))

    def run(self) -> None:
        soon, self.soon = self.soon, []
        for fn, args in soon:
            fn(*args)


class SyncPool:
    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []

    def submit(self, job: Callable[[], None]) -> None:
        self.jobs.append(job)

    def run(self) -> None:
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            job()

    def close(self) -> None:
        pass


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _monitor(text: str) -> tuple[KaMonitor, IPVS, FakeLoop, SyncPool, list[float]]:
    now = [100.0]
    table, loop, pool = IPVS(), FakeLoop(), SyncPool()
    m = KaMonitor(table, loop, clock=lambda: now[0], rand=lambda: 0.5)  # type: ignore[arg-type]
    m.pool.close()
    m.pool = pool  # type: ignore[assignment]
    m.apply(parse_keepalived(text, "keepalived.conf"))
    return m, table, loop, pool, now


def _step(m: KaMonitor, loop: FakeLoop, pool: SyncPool, now: list[float], at: float) -> None:
    now[0] = at
    m.due(at)
    pool.run()
    loop.run()


def test_schedule_warmup_retry_and_delay_loop() -> None:
    port = _closed_port()
    text = (
        "virtual_server 10.0.0.100 80 {\n  protocol TCP\n"
        f"  real_server 127.0.0.1 {port} {{\n    TCP_CHECK {{\n      connect_timeout 1\n"
        "      warmup 4\n      delay_loop 10\n      retry 1\n      delay_before_retry 2\n"
        "    }\n  }\n}\n"
    )
    m, table, loop, pool, now = _monitor(text)
    assert table.services()[0].dests[0].addr == "127.0.0.1"  # no alpha: in the table at start
    assert m.deadline() == 100.0 + 1.0 + 4 * 0.5  # BOOTSTRAP_DELAY + warmup * random
    _step(m, loop, pool, now, 103.0)
    # The first failure counts at once (retry_it starts at retry): removed, next in delay_loop.
    assert table.services()[0].dests == []
    assert m.deadline() == 113.0
    (row,) = m.rows()
    assert (row["check"], row["state"], row["ok"], row["checks"]) == ("TCP_CHECK", "down", False, 1)
    assert row["real"] == f"[127.0.0.1]:tcp:{port}"


def test_success_then_retries_use_delay_before_retry(monkeypatch: Any) -> None:
    text = (
        "virtual_server 10.0.0.100 80 {\n  protocol TCP\n  real_server 127.0.0.1 80 {\n"
        "    TCP_CHECK {\n      warmup 0\n      delay_loop 10\n      retry 2\n"
        "      delay_before_retry 3\n    }\n  }\n}\n"
    )
    results = [True, False, False, False]

    def fake(checker: Any, target: Any) -> CheckResult:
        return CheckResult(results.pop(0), "scripted", 0.0)

    monkeypatch.setattr("pylvs.health.kamonitor.run_checker", fake)
    m, table, loop, pool, now = _monitor(text)
    _step(m, loop, pool, now, 101.0)
    assert m.deadline() == 111.0
    _step(m, loop, pool, now, 111.0)
    assert m.deadline() == 114.0  # retry 1 of 2
    _step(m, loop, pool, now, 114.0)
    assert m.deadline() == 117.0  # retry 2 of 2
    assert len(table.services()[0].dests) == 1
    _step(m, loop, pool, now, 117.0)
    assert table.services()[0].dests == []
    assert m.deadline() == 127.0


def test_a_check_that_does_not_return_counts_as_failed(monkeypatch: Any) -> None:
    text = (
        "virtual_server 10.0.0.100 80 {\n  protocol TCP\n  real_server 127.0.0.1 80 {\n"
        "    TCP_CHECK {\n      warmup 0\n      connect_timeout 2\n    }\n  }\n}\n"
    )
    m, table, loop, pool, now = _monitor(text)
    now[0] = 101.0
    m.due(101.0)
    (job,) = pool.jobs
    pool.jobs = []
    m.runs[0].started = 101.0  # a worker took it up and hangs
    assert m.deadline() == 101.0 + 2.0 + 1.0
    m.due(104.0)
    assert table.services()[0].dests == []
    assert m.status()["overdue"] == 1
    monkeypatch.setattr(
        "pylvs.health.kamonitor.run_checker", lambda c, t: CheckResult(True, "late", 9.0)
    )
    job()  # its late result is dropped
    loop.run()
    assert table.services()[0].dests == []


def test_reload_keeps_the_rows_and_none_stops() -> None:
    text = (
        "virtual_server 10.0.0.100 80 {\n  protocol TCP\n  real_server 127.0.0.1 80 {\n"
        "    TCP_CHECK {\n      warmup 0\n    }\n  }\n}\n"
    )
    m, table, _, _, _ = _monitor(text)
    m.runs[0].checks = 5
    m.apply(parse_keepalived(text, "keepalived.conf"), reloading=True)
    assert m.rows()[0]["checks"] == 5
    assert m.status()["reloads"] == 1
    m.apply(None)
    assert table.services() == []
    assert m.rows() == []


def test_heartbeat_unload_stops_the_keepalived_checkers() -> None:
    """``ldirectord::FILE`` stop (Daemon.unload_config) of a keepalived.conf: its checkers stop
    and the virtual servers they keep go (clear_services)."""
    import contextlib
    import types

    from pylvs.daemon import Daemon

    text = (
        "virtual_server 10.0.0.100 80 {\n  protocol TCP\n"
        "  real_server 10.0.0.1 80 {\n    TCP_CHECK {\n    }\n  }\n}\n"
    )
    m, table, _, _, _ = _monitor(text)
    assert [s.addr for s in table.services()] == ["10.0.0.100"]
    calls: list[str] = []
    health = types.SimpleNamespace(
        stop=lambda: calls.append("stop"), apply=lambda cfg: calls.append("apply")
    )
    director = types.SimpleNamespace(batch=contextlib.nullcontext)
    daemon = types.SimpleNamespace(
        config_path="/etc/keepalived/keepalived.conf",
        director=director,
        health=health,
        kahealth=m,
    )
    Daemon.unload_config(daemon, "/etc/keepalived/keepalived.conf")  # type: ignore[arg-type]
    assert table.services() == [] and m.rows() == []
    assert calls == ["stop", "apply"] and daemon.config_path is None
