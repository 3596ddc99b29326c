"""FILE_CHECK (keepalived 2.2.7 check_file.c, trackers/track_file.c): the parser's track_file
blocks, the value a track file holds, what it does to the table (pylvs.health.kakeeper), and the
component's inotify watch (pylvs.health.kamonitor) on real files in a temporary directory."""

from __future__ import annotations

import logging
import os
import select
from pathlib import Path

import pytest

from pylvs.config.keepalived import parse_keepalived
from pylvs.core.ipvs import IPVS
from pylvs.health.kakeeper import KaKeeper
from pylvs.health.kamonitor import KaMonitor
from pylvs.health.keepalived.file import parse_value, read_value

VIP, R1, R2 = "10.0.0.100", "10.0.0.1", "10.0.0.2"


class Effects:
    def __init__(self) -> None:
        self.scripts: list[str] = []

    def script(self, command: str, wait: float | None = None) -> None:
        self.scripts.append(command)


def _conf(path: str, check: str, track: str = "", r1: str = "") -> str:
    return (
        f"track_file state {{\n  file {path}\n{track}}}\n"
        f"virtual_server {VIP} 80 {{\n  lb_kind NAT\n  protocol TCP\n"
        f"  real_server {R1} 80 {{\n    weight 10\n{r1}    FILE_CHECK {{\n      track_file state\n"
        f"{check}    }}\n  }}\n"
        f"  real_server {R2} 80 {{\n    weight 1\n  }}\n}}\n"
    )


def _dests(table: IPVS) -> dict[str, int]:
    (svc,) = table.services()
    return {d.addr: d.weight for d in svc.dests}


def _keeper(text: str, value: int = 0) -> tuple[KaKeeper, IPVS]:
    table = IPVS()
    k = KaKeeper(table, Effects())
    k.start(parse_keepalived(text, "keepalived.conf"), {"state": value})
    return k, table


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"5\n", 5),
        (b"  -3 trailing words", -3),
        (b"0x10", 16),  # strtol base 0: hex
        (b"010", 8),  # ... and octal
        (b"abc", 0),  # no digits: 0
        (b"+7", 7),
        (b"2147483648", 2147483648),  # INT32_MAX + 1 is still accepted
        (b"2147483649", None),  # out of range: ignored
        (b"-2147483649", None),
    ],
)
def test_the_value_is_read_as_strtol_reads_it(data: bytes, value: int | None) -> None:
    assert parse_value(data) == value


def test_missing_or_empty_file_is_zero(tmp_path: Path) -> None:
    assert read_value(str(tmp_path / "none")) == 0
    (tmp_path / "empty").write_bytes(b"")
    assert read_value(str(tmp_path / "empty")) == 0


def test_parser_reads_track_file_blocks() -> None:
    text = (
        "track_file a {\n  file /run/a\n  weight -7 reverse\n  init_file 3 overwrite\n}\n"
        "track_file b {\n  weight 300\n}\n"
    )
    ka = parse_keepalived(text, "k.conf").keepalived
    assert ka is not None
    a = ka.track_files["a"]
    assert (a.path, a.weight, a.reverse, a.init_file, a.init_value, a.init_overwrite) == (
        "/run/a", -7, True, True, 3, True,
    )  # fmt: skip
    assert "b" not in ka.track_files  # no file: dropped
    assert any("No file set for track_file b - ignoring" in w for w in ka.warnings)
    assert any("Weight (300) for track_file b must be between" in w for w in ka.warnings)


def test_weight_zero_nonzero_value_is_down(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    k, table = _keeper(_conf("/tmp/x", "      weight 0\n"))
    assert _dests(table) == {R1: 10, R2: 1}
    k.file_changed("state", 1)
    assert _dests(table) == {R2: 1}
    assert "Removing service [10.0.0.1]:tcp:80 from VS [10.0.0.100]:tcp:80" in caplog.text
    k.file_changed("state", 7)  # still non-zero: nothing changes
    assert _dests(table) == {R2: 1}
    k.file_changed("state", 0)
    assert _dests(table) == {R1: 10, R2: 1}
    assert "Adding service [10.0.0.1]:tcp:80 to VS [10.0.0.100]:tcp:80" in caplog.text


def test_weight_zero_reverse_zero_is_down() -> None:
    # keepalived 2.2.7 quirk, kept: at start (set_track_file_checkers_down, init_service_rs)
    # a non-zero value is down with weight 0 whether reverse is set or not ...
    k, table = _keeper(_conf("/tmp/x", "      weight 0 reverse\n"), value=1)
    assert _dests(table) == {R2: 1}
    # ... and from then on a change follows reverse: zero is the fault, non-zero is up.
    k.file_changed("state", 0)
    assert _dests(table) == {R2: 1}
    k.file_changed("state", 2)
    assert _dests(table) == {R1: 10, R2: 1}
    k.file_changed("state", 0)
    assert _dests(table) == {R2: 1}


def test_non_zero_value_at_start_starts_down() -> None:
    _, table = _keeper(_conf("/tmp/x", "      weight 0\n"), value=3)
    assert _dests(table) == {R2: 1}
    # With inhibit_on_failure the real is in the table with weight 0.
    _, table = _keeper(_conf("/tmp/x", "      weight 0\n", r1="    inhibit_on_failure\n"), 3)
    assert _dests(table) == {R1: 0, R2: 1}


def test_weight_times_value_is_added_to_the_weight(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    k, table = _keeper(_conf("/tmp/x", "      weight 5\n"), value=2)
    assert _dests(table) == {R1: 20, R2: 1}  # 10 + 2 * 5
    k.file_changed("state", 4)
    assert _dests(table) == {R1: 30, R2: 1}
    assert "Changing weight from 20 to 30 for active service [10.0.0.1]:tcp:80" in caplog.text
    k.file_changed("state", -3)  # 10 - 15: weight 0, but still alive (not a fault)
    assert _dests(table) == {R1: 0, R2: 1}
    k.file_changed("state", 0)
    assert _dests(table) == {R1: 10, R2: 1}


def test_reverse_and_the_track_files_weight_by_default() -> None:
    k, table = _keeper(_conf("/tmp/x", "", track="  weight 2 reverse\n"), value=3)
    assert _dests(table) == {R1: 4, R2: 1}  # 10 - 3 * 2
    k.file_changed("state", 1)
    assert _dests(table) == {R1: 8, R2: 1}


def test_only_a_value_at_the_fault_is_down_with_a_weight() -> None:
    k, table = _keeper(_conf("/tmp/x", "      weight 1\n"))
    k.file_changed("state", -2147483648)  # value * weight <= IPVS_WEIGHT_FAULT
    assert _dests(table) == {R2: 1}
    k.file_changed("state", 1)
    assert _dests(table) == {R1: 11, R2: 1}


def test_unknown_track_file_ignores_the_checker() -> None:
    text = _conf("/tmp/x", "").replace("track_file state\n    ", "track_file other\n    ")
    cfg = parse_keepalived(text, "keepalived.conf")
    assert cfg.keepalived is not None
    assert any("track_file other not found" in w for w in cfg.keepalived.warnings)
    assert not any("FILE_CHECK" in line for line in cfg.not_run)
    table = IPVS()
    k = KaKeeper(table, Effects())
    k.start(cfg, {"state": 0})
    assert [ck.kind for ck in k.checkers] == []
    assert _dests(table) == {R1: 10, R2: 1}


def test_reload_with_a_non_zero_value_removes_the_real() -> None:
    k, table = _keeper(_conf("/tmp/x", "      weight 0\n"))
    assert _dests(table) == {R1: 10, R2: 1}
    k.start(parse_keepalived(_conf("/tmp/x", "      weight 0\n"), "keepalived.conf"), {"state": 1})
    assert _dests(table) == {R2: 1}


class _Loop:
    def call_soon(self, *args: object) -> None:
        raise AssertionError("a FILE_CHECK is not run in the pool")


def _wait_readable(fd: int) -> None:
    readable, _, _ = select.select([fd], [], [], 5.0)
    assert readable, "no inotify event within 5 s"


def test_monitor_watches_the_file_with_inotify(tmp_path: Path) -> None:
    path = tmp_path / "state"
    text = _conf(str(path), "      weight 0\n", track="  init_file 0\n")
    table = IPVS()
    m = KaMonitor(table, _Loop(), rand=lambda: 0.0)  # type: ignore[arg-type]
    try:
        m.apply(parse_keepalived(text, "keepalived.conf"))
        assert path.read_text() == "0\n"  # init_file created it
        assert _dests(table) == {R1: 10, R2: 1}
        assert m.deadline() is None  # nothing is scheduled: the file is watched
        ((fd, _),) = m.watch()
        path.write_text("1\n")
        _wait_readable(fd)
        m.ready(fd, 1, 0.0)
        assert _dests(table) == {R2: 1}
        (row,) = m.rows()
        assert (row["check"], row["state"], row["ok"]) == ("FILE_CHECK", "down", False)
        # Written elsewhere and moved in (IN_MOVED_TO), as tools replace files.
        other = tmp_path / "state.new"
        other.write_text("0\n")
        os.rename(other, path)
        _wait_readable(fd)
        m.ready(fd, 1, 0.0)
        assert _dests(table) == {R1: 10, R2: 1}
        path.write_text("5\n")
        _wait_readable(fd)
        m.ready(fd, 1, 0.0)
        assert _dests(table) == {R2: 1}
        path.unlink()  # a deleted file counts as 0
        _wait_readable(fd)
        m.ready(fd, 1, 0.0)
        assert _dests(table) == {R1: 10, R2: 1}
    finally:
        m.stop()
        m.close()
    assert m.watch() == []


def test_init_file_overwrite_and_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_text("9\n")
    text = _conf(str(path), "      weight 0\n", track="  init_file 0 overwrite\n")
    table = IPVS()
    m = KaMonitor(table, _Loop(), rand=lambda: 0.0)  # type: ignore[arg-type]
    try:
        m.apply(parse_keepalived(text, "keepalived.conf"))
        assert path.read_text() == "0\n"
        assert _dests(table) == {R1: 10, R2: 1}
        # A track file whose directory does not exist is dropped with its checkers.
        m.apply(parse_keepalived(_conf(str(tmp_path / "no" / "x"), ""), "keepalived.conf"))
        assert [r["check"] for r in m.rows()] == []
        assert _dests(table) == {R1: 10, R2: 1}
    finally:
        m.stop()
        m.close()
