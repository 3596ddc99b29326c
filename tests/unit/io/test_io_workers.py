"""The worker group's merge of listings and its forwarding of the operation table."""

from __future__ import annotations

import errno
import logging
from dataclasses import replace

import pytest

from pylvs.core.control import OPERATIONS, DestInfo, DestSpec, IPVSError, ServiceInfo, ServiceSpec
from pylvs.io.workers import EngineGroup, merge_services


def _info(conns: int, active: int) -> ServiceInfo:
    dest = DestInfo(4, "198.51.100.11", 80, 0, 1, 0, 0, active, 1, 0, stats=(conns, 2, 3, 4, 5))
    return ServiceInfo(4, 6, "203.0.113.10", 80, 0, "rr", 0, 0, 32, stats=(conns, 1, 1, 1, 1),
                       rates=(1, 0, 0, 0, 0), dests=[dest])  # fmt: skip


def test_merge_sums_every_counter() -> None:
    (merged,) = merge_services([[_info(2, 1)], [_info(3, 4)], [_info(0, 0)]])
    assert merged.stats == (5, 3, 3, 3, 3) and merged.rates == (3, 0, 0, 0, 0)
    (dest,) = merged.dests
    assert (dest.activeconns, dest.inactconns, dest.stats) == (5, 3, (5, 6, 9, 12, 15))


def test_merge_leaves_its_inputs_alone() -> None:
    first = _info(2, 1)
    merge_services([[first], [_info(3, 4)]])
    assert first.stats[0] == 2 and first.dests[0].activeconns == 1


def test_replicated_rows_are_validated_locally_before_any_worker() -> None:
    group = EngineGroup(2)  # no worker started: the local engine alone
    svc = ServiceSpec(protocol=6, addr="203.0.113.10", port=80, scheduler="rr")
    group.add_service(svc)
    with pytest.raises(IPVSError) as exc:
        group.add_service(svc)
    assert exc.value.errno == errno.EEXIST
    with pytest.raises(IPVSError) as exc:
        group.add_dest(replace(svc, port=81), DestSpec(addr="198.51.100.11"))
    assert exc.value.errno == errno.ESRCH
    assert [s.port for s in group.services()] == [80]


def test_every_replicated_row_is_forwarded() -> None:
    group = EngineGroup(2)
    for row in OPERATIONS:
        if row.replicated:
            assert callable(getattr(group, row.name))
    with pytest.raises(AttributeError):
        group.start_daemon  # noqa: B018 - not replicated: the director's sync manager refuses it


def test_worker_log_records_reach_the_daemons_handlers(caplog: pytest.LogCaptureFixture) -> None:
    """A worker's record crosses the log pipe with its level, text, pid and time."""
    from pylvs.io.workers import WorkerLogs, _PipeLogHandler

    logs = WorkerLogs()
    try:
        handler = _PipeLogHandler(logs.write_fd)
        record = logging.LogRecord(
            "pylvs.nfqueue", logging.WARNING, __file__, 1, "lost %d", (3,), None
        )
        record.process, record.created = 4242, 1000.0
        handler.emit(record)
        with caplog.at_level(logging.INFO):
            logs.drain()
        (got,) = [r for r in caplog.records if r.name == "pylvs.nfqueue"]
        assert (got.levelno, got.getMessage(), got.process, got.created) == (
            logging.WARNING,
            "lost 3",
            4242,
            1000.0,
        )
    finally:
        logs.close()
