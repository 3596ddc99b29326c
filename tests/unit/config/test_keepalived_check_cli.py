"""``pylvsd --config FILE --check``: validates any of the three formats, starts nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pylvs.cli import pylvsd

DATA = Path(__file__).resolve().parents[2] / "data"
# The examples Debian's keepalived package installs (scripts/setup installs it).
KEEPALIVED_SAMPLES = Path("/usr/share/doc/keepalived/samples")


@pytest.fixture(autouse=True)
def not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # --check needs no root: pretend not to be, so a start attempt would fail loudly.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


def check(path: Path | str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = pylvsd.main(["--config", str(path), "--check"])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_keepalived_conf(capsys: pytest.CaptureFixture[str]) -> None:
    path = KEEPALIVED_SAMPLES / "keepalived.conf.virtual_server_group"
    rc, out, err = check(path, capsys)
    assert rc == 0 and err == ""
    assert out.splitlines()[-1] == (
        f"{path}: keepalived.conf: 1 virtual servers (13 IPVS services), 2 real servers, "
        "0 vrrp instances"
    )


def test_keepalived_warnings_and_unused_keywords(capsys: pytest.CaptureFixture[str]) -> None:
    path = KEEPALIVED_SAMPLES / "keepalived.conf.vrrp.lvs_syncd"
    rc, out, _err = check(path, capsys)
    assert rc == 0
    assert f"warning: {path}:4: Unknown keyword 'VI_2'" in out.splitlines()
    assert out.splitlines()[-1].endswith(
        "1 virtual servers (1 IPVS services), 1 real servers, 3 vrrp instances"
    )


def test_a_bad_file_exits_1_with_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "keepalived" / "corpus" / "error-vrid.conf"
    rc, out, err = check(path, capsys)
    assert rc == 1
    assert err == f"pylvsd: {path}:5: (VI_1): VRID '300' not valid - must be between 1 & 255\n"
    assert out == f"{path}: keepalived.conf: not usable\n"


@pytest.mark.parametrize(
    ("name", "kind"), [("ldirectord.cf", "ldirectord.cf"), ("pylvs.toml", "pylvs.toml")]
)
def test_the_other_formats(name: str, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).parent / "data" / name
    rc, out, _err = check(path, capsys)
    assert rc == 0
    last = out.splitlines()[-1]
    assert last.startswith(f"{path}: {kind}: ") and last.endswith(" vrrp instances")


def test_a_bad_ldirectord_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ldirectord.cf"
    path.write_text("virtual=192.0.2.1:80\n\treal=10.0.0.1:80 gate abc\n")
    rc, _out, err = check(path, capsys)
    assert rc == 1 and err.startswith(f"pylvsd: {path}:2: ")


def test_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _out, err = check(tmp_path / "nope.conf", capsys)
    assert rc == 1 and "can not open file" in err


def test_check_needs_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert pylvsd.main(["--check"]) == 1
    assert capsys.readouterr().err == "pylvsd: --check needs --config FILE\n"
