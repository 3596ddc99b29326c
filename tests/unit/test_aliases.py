"""``pylvs ipvsadm-alias`` writes scripts that run pylvsadm, and only removes its own."""

import subprocess
from pathlib import Path

import pytest

from pylvs.cli import aliases
from pylvs.cli.pylvs import main


def test_install_and_remove(tmp_path: Path) -> None:
    fake = tmp_path / "pylvsadm"
    fake.write_text('#!/bin/sh\necho "args: $*"\ncat\n')
    fake.chmod(0o755)
    assert main(["ipvsadm-alias", "--bindir", str(tmp_path)]) == 0
    run = subprocess.run([tmp_path / "ipvsadm", "-L", "-n"], capture_output=True, text=True)
    assert run.stdout == "args: -L -n\n"
    save = subprocess.run([tmp_path / "ipvsadm-save", "-n"], capture_output=True, text=True)
    assert save.stdout == "args: -S -n\n"
    restore = subprocess.run(
        [tmp_path / "ipvsadm-restore"], input="# comment\n-A -t 192.0.2.1:80\n",
        capture_output=True, text=True,
    )  # fmt: skip
    assert restore.stdout == "args: -C\nargs: -R\n-A -t 192.0.2.1:80\n"
    assert main(["ipvsadm-alias", "--bindir", str(tmp_path), "--undo"]) == 0
    assert not (tmp_path / "ipvsadm").exists() and fake.exists()


def test_refuses_to_replace_a_real_ipvsadm(tmp_path: Path) -> None:
    (tmp_path / "ipvsadm").write_text("#!/bin/sh\n# the real one\n")
    with pytest.raises(FileExistsError):
        aliases.install(tmp_path, tmp_path / "pylvsadm")
    assert main(["ipvsadm-alias", "--bindir", str(tmp_path)]) == 1
