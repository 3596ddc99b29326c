"""A built pylvs carries what an installed one needs: the lab's scenarios and pylvs's version."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_the_lab_scenarios(tmp_path: Path) -> None:
    """Before, a built wheel had no netns-lab/*.toml, so an installed pylvs had no scenarios."""
    src = tmp_path / "src"  # built from a copy: a build leaves build/ and *.egg-info behind
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        src.mkdir(exist_ok=True)
        shutil.copy(REPO / name, src / name)
    for tree in ("pylvs", "netns-lab"):
        shutil.copytree(REPO / tree, src / tree, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("pylvs-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    marker = "/share/pylvs/netns-lab/"
    shipped = {n.split(marker, 1)[1] for n in names if marker in n}
    lab = REPO / "netns-lab"
    expected = {p.name for p in lab.iterdir() if p.suffix in (".toml", ".md")}
    # The heartbeat directories of the scenarios (farm.ha: ha.cf, authkeys, haresources) and
    # the keepalived ones (farmka.keepalived: a keepalived.conf per director).
    for pattern in ("*.ha", "*.keepalived"):
        expected |= {f"{d.name}/{p.name}" for d in lab.glob(pattern) for p in d.iterdir()}
    assert shipped == expected


def test_pylvs_and_pylvsd_say_their_version() -> None:
    from pylvs import __version__

    for module, expected in (("pylvs.cli.pylvs", f"pylvs {__version__}\n"),
                             ("pylvs.cli.pylvsd", f"pylvsd (pylvs) {__version__}\n")):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True,
                              text=True, check=True)  # fmt: skip
        assert done.stdout == expected
